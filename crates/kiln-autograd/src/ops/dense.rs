//! Matrix products: `matmul`, the fused `dense` (`x·W + b`, Keras layout `W: (in, out)`) and `bias_add`.

use kiln_kernels::{GemmGeometry, Transpose};

use crate::backward::{Backward, Grads};
use crate::dims::Dims;
use crate::error::{AutogradError, Result};
use crate::ops::rows_cols;
use crate::recording::Recording;
use crate::tape::Var;

fn matrix(op: &'static str, what: &'static str, d: Dims) -> Result<(usize, usize)> {
    if d.rank() != 2 {
        return Err(AutogradError::Shape { op, what, expected: "a matrix (rank 2)".into(), got: d });
    }
    Ok((d.get(0), d.get(1)))
}

/// Backward of `y = x·w (+ b)`: `dx = dy·wᵀ`, `dw = xᵀ·dy`, `db = Σ_rows dy`.
struct DenseBackward {
    x: Var,
    w: Var,
    b: Option<Var>,
    m: usize,
    k: usize,
    n: usize,
}

impl Backward for DenseBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let &DenseBackward { x, w, b, m, k, n } = self;
        g.update(x, |st, dx, acc| {
            let geo = GemmGeometry::spec(m, k, n).trans_b(Transpose::Yes).build()?;
            st.kernels().sgemm_with(
                st.threads(),
                &geo,
                1.0,
                st.grad(out),
                st.value(w),
                f32::from(u8::from(acc)),
                dx,
            )?;
            Ok(())
        })?;
        g.update(w, |st, dw, acc| {
            let geo = GemmGeometry::spec(k, n, m).trans_a(Transpose::Yes).build()?;
            st.kernels().sgemm_with(
                st.threads(),
                &geo,
                1.0,
                st.value(x),
                st.grad(out),
                f32::from(u8::from(acc)),
                dw,
            )?;
            Ok(())
        })?;
        if let Some(b) = b {
            g.set(b, |st, db| Ok(st.kernels().column_sums(st.grad(out), db)?))?;
        }
        Ok(())
    }
}

struct BiasAddBackward {
    x: Var,
    b: Var,
}

impl Backward for BiasAddBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        crate::ops::pass_through(g, self.x, out)?;
        g.set(self.b, |st, db| Ok(st.kernels().column_sums(st.grad(out), db)?))
    }
}

impl Recording<'_, '_> {
    /// `x·w + b` for `x: (m, k)`, `w: (k, n)` (Keras `Dense` kernel layout) and an optional `b: (n)`.
    pub fn dense(&mut self, x: Var, w: Var, b: Option<Var>) -> Result<Var> {
        let op = "dense";
        let (m, k) = matrix(op, "input", self.check(op, x)?)?;
        let wd = self.check(op, w)?;
        let (wk, n) = matrix(op, "kernel", wd)?;
        if wk != k {
            return Err(AutogradError::Shape { op, what: "kernel rows", expected: format!("({k}, n)"), got: wd });
        }
        if let Some(b) = b {
            let bd = self.check(op, b)?;
            if bd.as_slice() != [n] {
                return Err(AutogradError::Shape { op, what: "bias", expected: format!("({n},)"), got: bd });
            }
        }
        let req = self.requires(&[x, w]) || b.is_some_and(|b| self.requires(&[b]));
        let out = self.compute(op, Dims::new(&[m, n])?, req, |st, y| {
            let geo = GemmGeometry::new(m, n, k)?;
            st.kernels().sgemm_with(st.threads(), &geo, 1.0, st.value(x), st.value(w), 0.0, y)?;
            if let Some(b) = b
                && n > 0
            {
                st.kernels().bias_add(y, st.value(b))?;
            }
            Ok(())
        })?;
        if req {
            self.record(out, DenseBackward { x, w, b, m, k, n });
        }
        Ok(out)
    }

    /// Matrix product `a·b` of `a: (m, k)` and `b: (k, n)`.
    pub fn matmul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.dense(a, b, None)
    }

    /// `x + b` with `b` broadcast along the last axis of `x` (a bias per channel for NHWC activations).
    pub fn bias_add(&mut self, x: Var, b: Var) -> Result<Var> {
        let op = "bias_add";
        let d = self.check(op, x)?;
        let (_, cols) = rows_cols(op, d)?;
        let bd = self.check(op, b)?;
        if bd.as_slice() != [cols] {
            return Err(AutogradError::Shape { op, what: "bias", expected: format!("({cols},)"), got: bd });
        }
        let req = self.requires(&[x, b]);
        let out = self.compute(op, d, req, |st, y| {
            y.copy_from_slice(st.value(x));
            if cols > 0 {
                st.kernels().bias_add(y, st.value(b))?;
            }
            Ok(())
        })?;
        if req {
            self.record(out, BiasAddBackward { x, b });
        }
        Ok(out)
    }
}
