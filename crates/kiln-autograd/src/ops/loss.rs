//! Losses and reductions with Keras semantics; each returns a single-element value (the batch mean).
//!
//! * `categorical_crossentropy(p, t)`: when `p` is the output of [`Recording::softmax`], the fused kernel works on the
//!   logits directly (`loss = logsumexp(z) − Σ t·z`, stable for any logits, gradient `(p·Σt − t)/rows`), which is
//!   what Keras does for a softmax output. Otherwise Keras' probability formula:
//!   `q = p / Σp`, clipped to `[1e-7, 1 − 1e-7]`, `loss = −Σ t·ln q`.
//! * `sparse_categorical_crossentropy(p, labels)`: the same with integer class labels.
//! * `mse(p, t)`: `mean((p − t)²)` over all elements. `mean` and `sum` over all elements.
//!
//! The `*_weighted` forms take one weight per row (Keras' `sample_weight`, which `class_weight` becomes): the loss
//! is `Σ wᵣ·lᵣ / rows` (Keras' `sum_over_batch_size` reduction) and each row's gradient is scaled by its weight.

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

/// Multiplies row `r` of `d` (rows of `cols`) by `w[r]`.
fn scale_rows(d: &mut [f32], cols: usize, w: &[f32]) {
    for (row, &w) in d.chunks_exact_mut(cols.max(1)).zip(w) {
        row.iter_mut().for_each(|v| *v *= w);
    }
}

/// `Σ wᵣ·lᵣ / rows` in f64, row order (`w` = 1 when absent).
fn weighted_mean(losses: &[f32], w: Option<&[f32]>) -> f32 {
    match w {
        None => mean_f64(losses),
        Some(w) if !losses.is_empty() => {
            let s: f64 = losses.iter().zip(w).map(|(&l, &w)| f64::from(l) * f64::from(w)).sum();
            (s / losses.len() as f64) as f32
        }
        Some(_) => 0.0,
    }
}

struct FusedXentBackward {
    z: Var,
    t: Var,
    w: Option<Var>,
    probs: usize,
    cols: usize,
    rows: usize,
}

impl Backward for FusedXentBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let &FusedXentBackward { z, t, w, probs, cols, rows } = self;
        g.set(z, |st, dz| {
            let scale = st.grad(out)[0] / rows.max(1) as f32;
            let p = &st.bufs[probs].as_slice()[..rows * cols];
            st.kernels().softmax_cross_entropy_backward(cols, p, st.value(t), scale, dz)?;
            if let Some(w) = w {
                scale_rows(dz, cols, st.value(w));
            }
            Ok(())
        })
    }
}

struct ProbXentBackward {
    p: Var,
    t: Var,
    w: Option<Var>,
    cols: usize,
    rows: usize,
}

impl Backward for ProbXentBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let &ProbXentBackward { p, t, w, cols, rows } = self;
        g.update(p, |st, dp, acc| {
            let base = st.grad(out)[0] / rows.max(1) as f32;
            let rows_of =
                st.value(p).chunks_exact(cols).zip(st.value(t).chunks_exact(cols)).zip(dp.chunks_exact_mut(cols));
            for (r, ((p, t), dp)) in rows_of.enumerate() {
                let scale = w.map_or(base, |w| base * st.value(w)[r]);
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
    w: Option<Var>,
    cols: usize,
    rows: usize,
    logits: bool,
}

impl Backward for SparseXentBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let &SparseXentBackward { p, labels, w, cols, rows, logits } = self;
        g.update(p, |st, dp, acc| {
            let base = st.grad(out)[0] / rows.max(1) as f32;
            let lab = st.value(labels);
            for (r, (x, dp)) in st.value(p).chunks_exact(cols).zip(dp.chunks_exact_mut(cols)).enumerate() {
                let scale = w.map_or(base, |w| base * st.value(w)[r]);
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
    w: Option<Var>,
    cols: usize,
}

impl Backward for MseBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let (p, t, w, cols) = (self.p, self.t, self.w, self.cols.max(1));
        for (v, sign) in [(p, 1.0f32), (t, -1.0)] {
            g.update(v, |st, d, acc| {
                let n = st.value(p).len().max(1) as f32;
                let base = sign * 2.0 * st.grad(out)[0] / n;
                for (i, ((d, &a), &b)) in d.iter_mut().zip(st.value(p)).zip(st.value(t)).enumerate() {
                    let scale = w.map_or(base, |w| base * st.value(w)[i / cols]);
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
        self.categorical_crossentropy_weighted(p, t, None)
    }

    /// Checks a per-row weight vector for a loss over `rows` rows.
    fn check_row_weights(&self, op: &'static str, w: Option<Var>, rows: usize) -> Result<()> {
        if let Some(w) = w {
            let wd = self.check(op, w)?;
            if wd.numel() != rows {
                return Err(AutogradError::Shape {
                    op,
                    what: "sample weights",
                    expected: format!("{rows} weights"),
                    got: wd,
                });
            }
        }
        Ok(())
    }

    /// [`Recording::categorical_crossentropy`] with one weight per row (`None`: all 1).
    pub fn categorical_crossentropy_weighted(&mut self, p: Var, t: Var, w: Option<Var>) -> Result<Var> {
        let op = "categorical_crossentropy";
        let pd = self.check(op, p)?;
        same_dims(op, "targets", pd, self.check(op, t)?)?;
        let (rows, cols) = rows_cols(op, pd)?;
        self.check_row_weights(op, w, rows)?;
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
            let view = self.view();
            let loss = weighted_mean(lb.as_slice(), w.map(|w| view.value(w)));
            self.tape.st.bufs[probs] = pb;
            self.tape.st.bufs[losses] = lb;
            res?;
            let out = self.compute(op, Dims::scalar(), req, |_, o| {
                o[0] = loss;
                Ok(())
            })?;
            if req {
                self.record(out, FusedXentBackward { z, t, w, probs, cols, rows });
            }
            return Ok(out);
        }
        let req = self.requires(&[p]);
        let out = self.compute(op, Dims::scalar(), req, |st, o| {
            let mut total = 0.0f64;
            if cols > 0 {
                for (r, (p, t)) in st.value(p).chunks_exact(cols).zip(st.value(t).chunks_exact(cols)).enumerate() {
                    let s: f32 = p.iter().sum();
                    let row: f32 = p.iter().zip(t).map(|(&p, &t)| t * (p / s).clamp(EPSILON, 1.0 - EPSILON).ln()).sum();
                    total -= f64::from(row) * w.map_or(1.0, |w| f64::from(st.value(w)[r]));
                }
            }
            o[0] = (total / rows.max(1) as f64) as f32;
            Ok(())
        })?;
        if req {
            self.record(out, ProbXentBackward { p, t, w, cols, rows });
        }
        Ok(out)
    }

    /// Keras `sparse_categorical_crossentropy` averaged over the batch; `labels` holds one class index per row
    /// of `p` (as floats). Works on the logits when `p = softmax(z)` was recorded on this tape.
    pub fn sparse_categorical_crossentropy(&mut self, p: Var, labels: Var) -> Result<Var> {
        self.sparse_categorical_crossentropy_weighted(p, labels, None)
    }

    /// [`Recording::sparse_categorical_crossentropy`] with one weight per row (`None`: all 1).
    pub fn sparse_categorical_crossentropy_weighted(&mut self, p: Var, labels: Var, w: Option<Var>) -> Result<Var> {
        let op = "sparse_categorical_crossentropy";
        let pd = self.check(op, p)?;
        let (rows, cols) = rows_cols(op, pd)?;
        self.check_row_weights(op, w, rows)?;
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
                    let wr = w.map_or(1.0, |w| f64::from(st.value(w)[r]));
                    total += wr
                        * if logits {
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
            self.record(out, SparseXentBackward { p: src, labels, w, cols, rows, logits });
        }
        Ok(out)
    }

    /// Mean squared error over all elements (Keras `mse` on equally sized rows).
    pub fn mse(&mut self, p: Var, t: Var) -> Result<Var> {
        self.mse_weighted(p, t, None)
    }

    /// [`Recording::mse`] with one weight per row (`None`: all 1): `Σᵣ wᵣ·Σ_c (p − t)² / (rows·cols)`.
    pub fn mse_weighted(&mut self, p: Var, t: Var, w: Option<Var>) -> Result<Var> {
        let op = "mse";
        let pd = self.check(op, p)?;
        same_dims(op, "targets", pd, self.check(op, t)?)?;
        let (rows, cols) = rows_cols(op, pd)?;
        self.check_row_weights(op, w, rows)?;
        let req = self.requires(&[p, t]);
        let out = self.compute(op, Dims::scalar(), req, |st, o| {
            let n = st.value(p).len().max(1) as f64;
            let s: f64 = st
                .value(p)
                .iter()
                .zip(st.value(t))
                .enumerate()
                .map(|(i, (&a, &b))| {
                    f64::from(a - b).powi(2) * w.map_or(1.0, |w| f64::from(st.value(w)[i / cols.max(1)]))
                })
                .sum();
            o[0] = (s / n) as f32;
            Ok(())
        })?;
        if req {
            self.record(out, MseBackward { p, t, w, cols });
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
