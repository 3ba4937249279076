//! Global pooling over the spatial axes of NHWC (Keras `GlobalAveragePooling2D`, `GlobalMaxPooling2D`):
//! `(n, h, w, c)` → `(n, c)`. The maximum's gradient is shared equally among tied maxima, as TensorFlow's
//! `reduce_max` gradient does (unlike max pooling's first-maximum rule).

use crate::backward::{Backward, Grads};
use crate::dims::Dims;
use crate::error::{AutogradError, Result};
use crate::recording::Recording;
use crate::tape::Var;

/// `(n, h·w, c)` of an NHWC input.
fn nsc(op: &'static str, d: Dims) -> Result<(usize, usize, usize)> {
    if d.rank() != 4 {
        return Err(AutogradError::Shape { op, what: "input", expected: "NHWC (rank 4)".into(), got: d });
    }
    Ok((d.get(0), d.get(1) * d.get(2), d.get(3)))
}

struct GlobalAvgBackward {
    x: Var,
    n: usize,
    s: usize,
    c: usize,
}

impl Backward for GlobalAvgBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let (n, s, c) = (self.n, self.s, self.c);
        g.update(self.x, |st, dx, acc| {
            let dy = st.grad(out);
            for b in 0..n {
                for p in 0..s {
                    let row = &mut dx[(b * s + p) * c..(b * s + p + 1) * c];
                    for (ch, d) in row.iter_mut().enumerate() {
                        let v = dy[b * c + ch] / s as f32;
                        *d = if acc { *d + v } else { v };
                    }
                }
            }
            Ok(())
        })
    }
}

struct GlobalMaxBackward {
    x: Var,
    n: usize,
    s: usize,
    c: usize,
}

impl Backward for GlobalMaxBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let (n, s, c) = (self.n, self.s, self.c);
        g.update(self.x, |st, dx, acc| {
            let (xv, yv, dy) = (st.value(self.x), st.value(out), st.grad(out));
            if !acc {
                dx.fill(0.0);
            }
            for b in 0..n {
                for ch in 0..c {
                    let m = yv[b * c + ch];
                    let at = |p: usize| (b * s + p) * c + ch;
                    let ties = (0..s).filter(|&p| xv[at(p)] == m).count();
                    if ties == 0 {
                        continue; // a NaN maximum: TensorFlow's indicator is all zero too
                    }
                    let share = dy[b * c + ch] / ties as f32;
                    for p in (0..s).filter(|&p| xv[at(p)] == m) {
                        dx[at(p)] += share;
                    }
                }
            }
            Ok(())
        })
    }
}

impl Recording<'_, '_> {
    /// The mean over the spatial axes of `x: (n, h, w, c)` → `(n, c)` (sums in row-major order, then one
    /// division by `h·w`).
    pub fn global_avg_pool2d(&mut self, x: Var) -> Result<Var> {
        let op = "global_avg_pool2d";
        let (n, s, c) = nsc(op, self.check(op, x)?)?;
        let req = self.requires(&[x]);
        let out = self.compute(op, Dims::new(&[n, c])?, req, |st, y| {
            let xv = st.value(x);
            y.fill(0.0);
            for b in 0..n {
                let yb = &mut y[b * c..(b + 1) * c];
                for p in 0..s {
                    yb.iter_mut().zip(&xv[(b * s + p) * c..(b * s + p + 1) * c]).for_each(|(a, v)| *a += v);
                }
                yb.iter_mut().for_each(|a| *a /= s as f32);
            }
            Ok(())
        })?;
        if req {
            self.record(out, GlobalAvgBackward { x, n, s, c });
        }
        Ok(out)
    }

    /// The maximum over the spatial axes of `x: (n, h, w, c)` → `(n, c)`; NaN propagates.
    pub fn global_max_pool2d(&mut self, x: Var) -> Result<Var> {
        let op = "global_max_pool2d";
        let (n, s, c) = nsc(op, self.check(op, x)?)?;
        if s == 0 {
            return Err(AutogradError::Shape {
                op,
                what: "spatial size",
                expected: "≥ 1".into(),
                got: self.check(op, x)?,
            });
        }
        let req = self.requires(&[x]);
        let out = self.compute(op, Dims::new(&[n, c])?, req, |st, y| {
            let xv = st.value(x);
            for b in 0..n {
                let yb = &mut y[b * c..(b + 1) * c];
                yb.copy_from_slice(&xv[b * s * c..(b * s + 1) * c]);
                for p in 1..s {
                    for (m, &v) in yb.iter_mut().zip(&xv[(b * s + p) * c..(b * s + p + 1) * c]) {
                        if v > *m || v.is_nan() {
                            *m = v;
                        }
                    }
                }
            }
            Ok(())
        })?;
        if req {
            self.record(out, GlobalMaxBackward { x, n, s, c });
        }
        Ok(out)
    }
}
