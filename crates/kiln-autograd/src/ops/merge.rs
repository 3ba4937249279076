//! Merges of two values into one — Keras' `Add` and `Concatenate` — the joins of a functional graph (residual
//! blocks, branches). Both are binary; a merge of more inputs is a left fold of them, which for a sum is exactly
//! Keras' left-to-right `((x₀ + x₁) + x₂) + …` and for a concatenation the same values.
//!
//! Both are pure memory passes (one read of each input, one write), which the compiler vectorizes from the plain
//! loops; there is no arithmetic a hand-written kernel would do faster.

use crate::backward::{Backward, Grads};
use crate::dims::Dims;
use crate::error::{AutogradError, Result};
use crate::recording::Recording;
use crate::tape::Var;

struct AddBackward {
    a: Var,
    b: Var,
}

impl Backward for AddBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        crate::ops::pass_through(g, self.a, out)?;
        crate::ops::pass_through(g, self.b, out)
    }
}

/// A concatenation seen as rows: `outer` rows, each the `a_inner` values of `a` then the `b_inner` of `b`.
#[derive(Clone, Copy)]
struct ConcatGeo {
    outer: usize,
    a_inner: usize,
    b_inner: usize,
}

struct ConcatBackward {
    a: Var,
    b: Var,
    geo: ConcatGeo,
}

impl Backward for ConcatBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let ConcatGeo { outer, a_inner, b_inner } = self.geo;
        let row = a_inner + b_inner;
        for (v, offset, inner) in [(self.a, 0, a_inner), (self.b, a_inner, b_inner)] {
            g.update(v, |st, dx, acc| {
                let dy = st.grad(out);
                for r in 0..outer {
                    let src = &dy[r * row + offset..r * row + offset + inner];
                    let dst = &mut dx[r * inner..(r + 1) * inner];
                    if acc {
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                    } else {
                        dst.copy_from_slice(src);
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}

impl Recording<'_, '_> {
    /// `a + b` elementwise (Keras `Add` of two inputs); both of the same shape.
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        let op = "add";
        let (da, db) = (self.check(op, a)?, self.check(op, b)?);
        crate::ops::same_dims(op, "second input", da, db)?;
        let req = self.requires(&[a, b]);
        let out = self.compute(op, da, req, |st, y| {
            for ((y, a), b) in y.iter_mut().zip(st.value(a)).zip(st.value(b)) {
                *y = a + b;
            }
            Ok(())
        })?;
        if req {
            self.record(out, AddBackward { a, b });
        }
        Ok(out)
    }

    /// `a` and `b` joined along `axis` (Keras `Concatenate(axis)` of two inputs): every other dimension equal.
    pub fn concatenate(&mut self, a: Var, b: Var, axis: usize) -> Result<Var> {
        let op = "concatenate";
        let (da, db) = (self.check(op, a)?, self.check(op, b)?);
        if axis >= da.rank() {
            return Err(AutogradError::Shape {
                op,
                what: "axis",
                expected: format!("an axis below the rank {}", da.rank()),
                got: da,
            });
        }
        let fits = da.rank() == db.rank() && (0..da.rank()).all(|i| i == axis || da.get(i) == db.get(i));
        if !fits {
            return Err(AutogradError::Shape {
                op,
                what: "second input",
                expected: format!("the shape {da} except along axis {axis}"),
                got: db,
            });
        }
        let mut dims = da.as_slice().to_vec();
        dims[axis] += db.get(axis);
        let d = Dims::new(&dims)?;
        let outer: usize = da.as_slice()[..axis].iter().product();
        let geo = ConcatGeo {
            outer,
            a_inner: da.numel().checked_div(outer).unwrap_or(0),
            b_inner: db.numel().checked_div(outer).unwrap_or(0),
        };
        let req = self.requires(&[a, b]);
        let out = self.compute(op, d, req, |st, y| {
            let (va, vb) = (st.value(a), st.value(b));
            let (ai, bi) = (geo.a_inner, geo.b_inner);
            for r in 0..geo.outer {
                let row = &mut y[r * (ai + bi)..(r + 1) * (ai + bi)];
                row[..ai].copy_from_slice(&va[r * ai..(r + 1) * ai]);
                row[ai..].copy_from_slice(&vb[r * bi..(r + 1) * bi]);
            }
            Ok(())
        })?;
        if req {
            self.record(out, ConcatBackward { a, b, geo });
        }
        Ok(out)
    }
}
