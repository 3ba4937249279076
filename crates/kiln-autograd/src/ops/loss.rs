//! Losses and reductions with Keras semantics; each returns a single-element value (the batch mean).
//!
//! * `categorical_crossentropy(p, t)`: when `p` is the output of [`Recording::softmax`], the fused kernel works on the
//!   logits directly (`loss = logsumexp(z) − Σ t·z`, stable for any logits, gradient `(p·Σt − t)/rows`), which is
//!   what Keras does for a softmax output. Otherwise Keras' probability formula:
//!   `q = p / Σp`, clipped to `[1e-7, 1 − 1e-7]`, `loss = −Σ t·ln q`.
//! * `sparse_categorical_crossentropy(p, labels)`: the same with integer class labels.
//! * `mse(p, t)`: `mean((p − t)²)` over all elements. `mean` and `sum` over all elements.

use crate::backward::{Backward, Grads};
use crate::dims::Dims;
use crate::error::{AutogradError, Result};
use crate::ops::{rows_cols, same_dims};
use crate::recording::Recording;
use crate::tape::{Var, View};

/// Keras' `backend.epsilon()`: the clipping bound of probability cross-entropies.
pub const EPSILON: f32 = 1e-7;

/// Mean of `values` accumulated in f64 in order (deterministic for any thread count).
fn mean_f64(values: &[f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    (values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64) as f32
}

struct FusedXentBackward {
    z: Var,
    t: Var,
    probs: usize,
    cols: usize,
    rows: usize,
}

impl Backward for FusedXentBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let &FusedXentBackward { z, t, probs, cols, rows } = self;
        g.set(z, |st, dz| {
            let scale = st.grad(out)[0] / rows.max(1) as f32;
            let p = &st.bufs[probs].as_slice()[..rows * cols];
            Ok(st.kernels().softmax_cross_entropy_backward(cols, p, st.value(t), scale, dz)?)
        })
    }
}

struct ProbXentBackward {
    p: Var,
    t: Var,
    cols: usize,
    rows: usize,
}

impl Backward for ProbXentBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let &ProbXentBackward { p, t, cols, rows } = self;
        g.update(p, |st, dp, acc| {
            let scale = st.grad(out)[0] / rows.max(1) as f32;
            for ((p, t), dp) in
                st.value(p).chunks_exact(cols).zip(st.value(t).chunks_exact(cols)).zip(dp.chunks_exact_mut(cols))
            {
                let s: f32 = p.iter().sum();
                // g_j = ∂loss/∂q_j = −t_j / q_j inside the clip range, 0 where clipped.
                let gq = |j: usize| {
                    let q = p[j] / s;
                    if (EPSILON..=1.0 - EPSILON).contains(&q) { -t[j] / q } else { 0.0 }
                };
                let dot: f32 = (0..cols).map(|j| gq(j) * p[j] / s).sum();
                for (j, d) in dp.iter_mut().enumerate() {
                    let v = scale * (gq(j) - dot) / s;
                    if acc { *d += v } else { *d = v }
                }
            }
            Ok(())
        })
    }
}

struct SparseXentBackward {
    p: Var,
    labels: Var,
    cols: usize,
    rows: usize,
    logits: bool,
}

impl Backward for SparseXentBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let &SparseXentBackward { p, labels, cols, rows, logits } = self;
        g.update(p, |st, dp, acc| {
            let scale = st.grad(out)[0] / rows.max(1) as f32;
            let lab = st.value(labels);
            for (r, (x, dp)) in st.value(p).chunks_exact(cols).zip(dp.chunks_exact_mut(cols)).enumerate() {
                let label = lab[r] as usize;
                if logits {
                    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let s: f64 = x.iter().map(|&v| f64::from(v - m).exp()).sum();
                    for (j, d) in dp.iter_mut().enumerate() {
                        let sm = (f64::from(x[j] - m).exp() / s) as f32;
                        let v = scale * (sm - f32::from(u8::from(j == label)));
                        if acc { *d += v } else { *d = v }
                    }
                } else {
                    let s: f32 = x.iter().sum();
                    let q = x[label] / s;
                    let gq = if (EPSILON..=1.0 - EPSILON).contains(&q) { -1.0 / q } else { 0.0 };
                    for (j, d) in dp.iter_mut().enumerate() {
                        let v = scale * (f32::from(u8::from(j == label)) * gq - gq * q) / s;
                        if acc { *d += v } else { *d = v }
                    }
                }
            }
            Ok(())
        })
    }
}

struct MseBackward {
    p: Var,
    t: Var,
}

impl Backward for MseBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let (p, t) = (self.p, self.t);
        for (v, sign) in [(p, 1.0f32), (t, -1.0)] {
            g.update(v, |st, d, acc| {
                let n = st.value(p).len().max(1) as f32;
                let scale = sign * 2.0 * st.grad(out)[0] / n;
                for ((d, &a), &b) in d.iter_mut().zip(st.value(p)).zip(st.value(t)) {
                    let v = scale * (a - b);
                    if acc { *d += v } else { *d = v }
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}

struct ReduceBackward {
    x: Var,
    mean: bool,
}

impl Backward for ReduceBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let mean = self.mean;
        g.update(self.x, |st: &View<'_>, dx, acc| {
            let mut v = st.grad(out)[0];
            if mean {
                v /= dx.len().max(1) as f32;
            }
            if acc {
                dx.iter_mut().for_each(|d| *d += v);
            } else {
                dx.fill(v);
            }
            Ok(())
        })
    }
}

impl Recording<'_, '_> {
    /// Keras `categorical_crossentropy` averaged over the batch; `t` holds one-hot (or soft) targets of the
    /// same shape as `p`. Uses the fused softmax kernel when `p = softmax(z)` was recorded on this tape.
    pub fn categorical_crossentropy(&mut self, p: Var, t: Var) -> Result<Var> {
        let op = "categorical_crossentropy";
        let pd = self.check(op, p)?;
        same_dims(op, "targets", pd, self.check(op, t)?)?;
        let (rows, cols) = rows_cols(op, pd)?;
        let logits = self.tape.st.nodes[p.index as usize].softmax_of.filter(|z| self.tape.st.node(op, *z).is_ok());
        if let Some(z) = logits {
            let req = self.requires(&[z]);
            let probs = self.tape.st.alloc("softmax probabilities", rows * cols)?;
            let losses = self.tape.st.alloc("row losses", rows)?;
            let mut pb = std::mem::take(&mut self.tape.st.bufs[probs]);
            let mut lb = std::mem::take(&mut self.tape.st.bufs[losses]);
            let res = if cols > 0 {
                self.tape.st.kernels().softmax_cross_entropy(
                    cols,
                    self.view().value(z),
                    self.view().value(t),
                    pb.as_mut_slice(),
                    lb.as_mut_slice(),
                )
            } else {
                Ok(())
            };
            let loss = mean_f64(lb.as_slice());
            self.tape.st.bufs[probs] = pb;
            self.tape.st.bufs[losses] = lb;
            res?;
            let out = self.compute(op, Dims::scalar(), req, |_, o| {
                o[0] = loss;
                Ok(())
            })?;
            if req {
                self.record(out, FusedXentBackward { z, t, probs, cols, rows });
            }
            return Ok(out);
        }
        let req = self.requires(&[p]);
        let out = self.compute(op, Dims::scalar(), req, |st, o| {
            let mut total = 0.0f64;
            if cols > 0 {
                for (p, t) in st.value(p).chunks_exact(cols).zip(st.value(t).chunks_exact(cols)) {
                    let s: f32 = p.iter().sum();
                    let row: f32 = p.iter().zip(t).map(|(&p, &t)| t * (p / s).clamp(EPSILON, 1.0 - EPSILON).ln()).sum();
                    total -= f64::from(row);
                }
            }
            o[0] = (total / rows.max(1) as f64) as f32;
            Ok(())
        })?;
        if req {
            self.record(out, ProbXentBackward { p, t, cols, rows });
        }
        Ok(out)
    }

    /// Keras `sparse_categorical_crossentropy` averaged over the batch; `labels` holds one class index per row
    /// of `p` (as floats). Works on the logits when `p = softmax(z)` was recorded on this tape.
    pub fn sparse_categorical_crossentropy(&mut self, p: Var, labels: Var) -> Result<Var> {
        let op = "sparse_categorical_crossentropy";
        let pd = self.check(op, p)?;
        let (rows, cols) = rows_cols(op, pd)?;
        let ld = self.check(op, labels)?;
        if ld.numel() != rows {
            return Err(AutogradError::Shape { op, what: "labels", expected: format!("{rows} labels"), got: ld });
        }
        for (row, &l) in self.view().value(labels).iter().enumerate() {
            if !(l >= 0.0 && l.fract() == 0.0 && (l as usize) < cols) {
                return Err(AutogradError::Label { op, label: l, row, classes: cols });
            }
        }
        let (src, logits) =
            match self.tape.st.nodes[p.index as usize].softmax_of.filter(|z| self.tape.st.node(op, *z).is_ok()) {
                Some(z) => (z, true),
                None => (p, false),
            };
        let req = self.requires(&[src]);
        let out = self.compute(op, Dims::scalar(), req, |st, o| {
            let lab = st.value(labels);
            let mut total = 0.0f64;
            if cols > 0 {
                for (r, x) in st.value(src).chunks_exact(cols).enumerate() {
                    let label = lab[r] as usize;
                    total += if logits {
                        let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let s: f64 = x.iter().map(|&v| f64::from(v - m).exp()).sum();
                        f64::from(m) + s.ln() - f64::from(x[label])
                    } else {
                        let s: f32 = x.iter().sum();
                        -f64::from((x[label] / s).clamp(EPSILON, 1.0 - EPSILON).ln())
                    };
                }
            }
            o[0] = (total / rows.max(1) as f64) as f32;
            Ok(())
        })?;
        if req {
            self.record(out, SparseXentBackward { p: src, labels, cols, rows, logits });
        }
        Ok(out)
    }

    /// Mean squared error over all elements (Keras `mse` on equally sized rows).
    pub fn mse(&mut self, p: Var, t: Var) -> Result<Var> {
        let op = "mse";
        let pd = self.check(op, p)?;
        same_dims(op, "targets", pd, self.check(op, t)?)?;
        let req = self.requires(&[p, t]);
        let out = self.compute(op, Dims::scalar(), req, |st, o| {
            let n = st.value(p).len().max(1) as f64;
            let s: f64 = st.value(p).iter().zip(st.value(t)).map(|(&a, &b)| f64::from(a - b).powi(2)).sum();
            o[0] = (s / n) as f32;
            Ok(())
        })?;
        if req {
            self.record(out, MseBackward { p, t });
        }
        Ok(out)
    }

    fn reduce(&mut self, op: &'static str, x: Var, mean: bool) -> Result<Var> {
        self.check(op, x)?;
        let req = self.requires(&[x]);
        let out = self.compute(op, Dims::scalar(), req, |st, o| {
            let v = st.value(x);
            o[0] = if mean { mean_f64(v) } else { v.iter().map(|&v| f64::from(v)).sum::<f64>() as f32 };
            Ok(())
        })?;
        if req {
            self.record(out, ReduceBackward { x, mean });
        }
        Ok(out)
    }

    /// Mean of all elements (0 for an empty value).
    pub fn mean(&mut self, x: Var) -> Result<Var> {
        self.reduce("mean", x, true)
    }

    /// Sum of all elements.
    pub fn sum(&mut self, x: Var) -> Result<Var> {
        self.reduce("sum", x, false)
    }
}
