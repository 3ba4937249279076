//! Batch normalization over the last axis (Keras `BatchNormalization(axis=-1)`): `y = γ·(x − μ)/√(σ² + ε) + β`
//! per channel, with the batch's statistics in training and the moving ones in inference.
//!
//! Training statistics are over the **whole batch** even when it is split across data-parallel replicas. So the
//! training forward is two halves: [`Recording::batch_norm_partials`] writes this replica's sums (count,
//! Σ(x − s), Σ(x − s)² for a shift `s`) to the exchange, the engine adds every replica's in replica order, and
//! [`Recording::batch_norm_global`] normalizes with the totals. The backward rule needs the whole batch's Σ∂y
//! and Σ∂y·x̂ the same way ([`Backward::partials`]). On one replica [`Recording::batch_norm_train`] does both
//! halves at once.
//!
//! The variance is Keras' `E[x²] − E[x]²` (biased, as Keras' moving variance) taken about the shift — the
//! layer passes its moving mean, the same on every replica and close to the batch mean once it has warmed up —
//! so the difference does not cancel away; rows are summed in f32 blocks and the blocks in f64. The output is
//! computed as TensorFlow's `batch_normalization` does:
//! `a = γ/√(σ² + ε)`, `y = x·a + (β − μ·a)`.

use crate::backward::{Backward, Grads};
use crate::dims::Dims;
use crate::error::{AutogradError, Result};
use crate::ops::{rows_cols, same_dims};
use crate::recording::Recording;
use crate::tape::{Var, View};
use kiln_kernels::elementwise::channel::{BnGrad, BnGradCoefficients};

/// What a training batch normalization records: the output and the batch's mean and variance per channel (for
/// the layer's moving statistics).
#[derive(Debug, Clone, Copy)]
pub struct BatchNormOutput {
    /// The normalized, scaled and shifted values.
    pub y: Var,
    /// The batch mean per channel.
    pub mean: Var,
    /// The batch variance per channel (biased).
    pub variance: Var,
}

/// Per-channel `γ/√(σ² + ε)` and `1/√(σ² + ε)` from the variance and optional scale.
fn scale_of(var: f32, gamma: f32, eps: f32) -> (f32, f32) {
    let inv = 1.0 / (var + eps).sqrt();
    (inv * gamma, inv)
}

/// `γ[c]` or 1.
fn gamma_at(st: &View<'_>, gamma: Option<Var>, c: usize) -> f32 {
    gamma.map_or(1.0, |g| st.value(g)[c])
}

struct BatchNormBackward {
    x: Var,
    gamma: Option<Var>,
    beta: Option<Var>,
    mean: Var,
    variance: Var,
    epsilon: f32,
    /// Training (batch statistics: the input gradient needs whole-batch sums) or inference (fixed statistics).
    training: bool,
    /// A ReLU fused after the normalization: the output is activated, and gradient passes only where it is
    /// positive.
    relu: bool,
}

impl BatchNormBackward {
    /// This replica's Σ∂y and Σ∂y·x̂ per channel (f64, rows in order), written as the gradients of β and γ.
    fn local_sums(&self, out: Var, g: &mut Grads<'_>, sums: &mut Vec<f64>) -> Result<()> {
        let st = g.view();
        let (xv, dy, mean, var) = (st.value(self.x), st.grad(out), st.value(self.mean), st.value(self.variance));
        // With a fused ReLU the output is the activation, positive exactly where gradient passes; without one,
        // `dy` stands in and is never read as a mask.
        let (relu, yv) = (self.relu, if self.relu { st.value(out) } else { dy });
        let c = mean.len();
        sums.clear();
        sums.resize(2 * c, 0.0);
        let (s1, s2) = sums.split_at_mut(c);
        for_chunks(c, |c0, c1| {
            let w = c1 - c0;
            let (mut mu, mut inv) = ([0f32; CHUNK], [0f32; CHUNK]);
            for ch in c0..c1 {
                (mu[ch - c0], inv[ch - c0]) = (mean[ch], scale_of(var[ch], 1.0, self.epsilon).1);
            }
            // Rows in f32 blocks of `BLOCK` (so the loop vectorizes), the blocks added in f64.
            for ((xb, db), yb) in xv.chunks(BLOCK * c).zip(dy.chunks(BLOCK * c)).zip(yv.chunks(BLOCK * c)) {
                let (mut a1, mut a2) = ([0f32; CHUNK], [0f32; CHUNK]);
                for ((xr, dr), yr) in xb.chunks_exact(c).zip(db.chunks_exact(c)).zip(yb.chunks_exact(c)) {
                    let acc = a1[..w].iter_mut().zip(a2[..w].iter_mut());
                    let vals = xr[c0..c1].iter().zip(&dr[c0..c1]).zip(mu[..w].iter().zip(&inv[..w]));
                    for (((a1, a2), ((&x, &d), (&m, &i))), &y) in acc.zip(vals).zip(&yr[c0..c1]) {
                        let d = if !relu || y > 0.0 { d } else { 0.0 };
                        *a1 += d;
                        *a2 += d * ((x - m) * i);
                    }
                }
                for ch in 0..w {
                    s1[c0 + ch] += f64::from(a1[ch]);
                    s2[c0 + ch] += f64::from(a2[ch]);
                }
            }
        });
        let write = |g: &mut Grads<'_>, v: Option<Var>, s: &[f64]| -> Result<()> {
            match v {
                Some(v) => g.update(v, |_, d, acc| {
                    for (d, &s) in d.iter_mut().zip(s) {
                        if acc { *d += s as f32 } else { *d = s as f32 }
                    }
                    Ok(())
                }),
                None => Ok(()),
            }
        };
        write(g, self.beta, &sums[..c])?;
        write(g, self.gamma, &sums[c..])
    }
}

impl Backward for BatchNormBackward {
    fn partials(&self, out: Var, g: &mut Grads<'_>) -> Result<bool> {
        if !self.training || !g.view().requires_grad(self.x) {
            return Ok(false);
        }
        let mut sums = std::mem::take(g.exchange_local());
        let res = self.local_sums(out, g, &mut sums);
        let share = g.share();
        sums.iter_mut().for_each(|s| *s *= share);
        *g.exchange_local() = sums;
        res.map(|()| true)
    }

    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        if !g.view().requires_grad(self.x) {
            // Nothing exchanged: only the scale and offset need their (local) sums.
            let mut sums = std::mem::take(&mut g.st.exchange_local);
            let res = self.local_sums(out, g, &mut sums);
            g.st.exchange_local = sums;
            return res;
        }
        let (x, gamma, eps, mean_v, var_v, relu) =
            (self.x, self.gamma, self.epsilon, self.mean, self.variance, self.relu);
        let training = self.training;
        if !training {
            let mut sums = std::mem::take(&mut g.st.exchange_local);
            let res = self.local_sums(out, g, &mut sums);
            g.st.exchange_local = sums;
            res?;
        }
        let global = std::mem::take(&mut g.st.exchange_global);
        let mut coef = std::mem::take(&mut g.st.channel_coef);
        let res = g.update(x, |st, dx, acc| {
            let (xv, dy, mean, var) = (st.value(x), st.grad(out), st.value(mean_v), st.value(var_v));
            let c = mean.len();
            if training && global.len() != 2 * c {
                return Err(AutogradError::Exchange { op: "batch_norm backward", expected: 2 * c, got: global.len() });
            }
            // The replica's gradient is that of its own mean loss: the whole batch's sums (weighted by the
            // replicas' shares) are divided by this replica's row count.
            let n = (xv.len() / c.max(1)) as f64;
            coef.clear();
            coef.resize(4 * c, 0.0);
            let (scale, rest) = coef.split_at_mut(c);
            let (inv, rest) = rest.split_at_mut(c);
            let (m1, m2) = rest.split_at_mut(c);
            for ch in 0..c {
                (scale[ch], inv[ch]) = scale_of(var[ch], gamma_at(st, gamma, ch), eps);
                if training {
                    (m1[ch], m2[ch]) = ((global[ch] / n) as f32, (global[c + ch] / n) as f32);
                }
            }
            let k = BnGradCoefficients { scale, inv_std: inv, mean, mean_dy: m1, mean_dy_xhat: m2 };
            let relu_output = relu.then(|| st.value(out));
            let op = BnGrad { x: xv, dy, relu_output, training, accumulate: acc };
            st.kernels().batch_norm_backward_data(k, op, dx)?;
            Ok(())
        });
        g.st.channel_coef = coef;
        g.st.exchange_global = global;
        res
    }
}

/// Channels handled together with per-channel coefficients on the stack.
const CHUNK: usize = 64;

/// Rows summed in f32 before their sums are added in f64.
pub const BLOCK: usize = 16;

/// Calls `f(c0, c1)` for consecutive channel ranges of at most [`CHUNK`] covering `0..c`.
fn for_chunks(c: usize, mut f: impl FnMut(usize, usize)) {
    let mut c0 = 0;
    while c0 < c {
        let c1 = (c0 + CHUNK).min(c);
        f(c0, c1);
        c0 = c1;
    }
}

impl Recording<'_, '_> {
    fn bn_channels(&self, op: &'static str, x: Var, per_channel: &[Option<Var>]) -> Result<(usize, usize)> {
        let xd = self.check(op, x)?;
        let (rows, c) = rows_cols(op, xd)?;
        if c == 0 {
            return Err(AutogradError::Shape {
                op,
                what: "channels",
                expected: "at least one channel".into(),
                got: xd,
            });
        }
        for v in per_channel.iter().flatten() {
            same_dims(op, "per-channel value", Dims::new(&[c])?, self.check(op, *v)?)?;
        }
        Ok((rows, c))
    }

    /// The first half of a training batch normalization of `x` (channels last): this replica's row count and
    /// per-channel sums of `x − shift` and `(x − shift)²` as the exchange `[n, Σ…, Σ²…]`
    /// ([`Recording::exchange`]). The shift (e.g. the layer's moving mean, the same on every replica) keeps the
    /// variance `E[(x−s)²] − E[x−s]²` formed in f64 from the totals accurate once it is near the batch mean.
    /// Rows are summed in blocks of [`BLOCK`] in f32 about each block's first row (so the loop vectorizes and
    /// sees only the spread), and the blocks are moved to the shift and added in f64, in row order.
    pub fn batch_norm_partials(&mut self, x: Var, shift: Option<Var>) -> Result<()> {
        let (rows, c) = self.bn_channels("batch_norm", x, &[shift])?;
        let mut sums = std::mem::take(&mut self.tape.st.exchange_local);
        sums.clear();
        sums.resize(1 + 2 * c, 0.0);
        sums[0] = rows as f64;
        {
            let view = self.view();
            let (xv, sv) = (view.value(x), shift.map(|s| view.value(s)));
            let (s1, s2) = sums[1..].split_at_mut(c);
            for_chunks(c, |c0, c1| {
                let w = c1 - c0;
                for block in xv.chunks(BLOCK * c) {
                    // Each block is summed in f32 about its own first row (so the f32 sums see only the spread,
                    // whatever the mean), then moved to the common shift in f64.
                    let pivot = &block[c0..c1];
                    let (mut a1, mut a2) = ([0f32; CHUNK], [0f32; CHUNK]);
                    for xr in block.chunks_exact(c) {
                        let lanes = a1[..w].iter_mut().zip(a2[..w].iter_mut()).zip(xr[c0..c1].iter().zip(pivot));
                        for ((a1, a2), (&x, &p)) in lanes {
                            let v = x - p;
                            *a1 += v;
                            *a2 += v * v;
                        }
                    }
                    let nb = (block.len() / c) as f64;
                    for ch in 0..w {
                        let d = f64::from(pivot[ch]) - sv.map_or(0.0, |s| f64::from(s[c0 + ch]));
                        let (b1, b2) = (f64::from(a1[ch]), f64::from(a2[ch]));
                        s1[c0 + ch] += b1 + nb * d;
                        s2[c0 + ch] += b2 + 2.0 * d * b1 + nb * d * d;
                    }
                }
            });
        }
        self.tape.st.exchange_local = sums;
        Ok(())
    }

    /// The second half of a training batch normalization: normalizes `x` with the statistics of the whole
    /// batch's sums [`Recording::set_exchange_global`] holds (`[n, Σx…, Σx²…]` added over the replicas), then
    /// scales by `gamma` and shifts by `beta` (each optional, one value per channel), and with `relu` applies a
    /// ReLU in the same pass (a following `Activation("relu")` fused; the gradient passes where the output is
    /// positive, as ReLU's does).
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm_global(
        &mut self,
        x: Var,
        shift: Option<Var>,
        gamma: Option<Var>,
        beta: Option<Var>,
        epsilon: f32,
        relu: bool,
    ) -> Result<BatchNormOutput> {
        let op = "batch_norm";
        let (_, c) = self.bn_channels(op, x, &[shift, gamma, beta])?;
        let global = std::mem::take(&mut self.tape.st.exchange_global);
        let res = (|| {
            if global.len() != 1 + 2 * c || global[0] <= 0.0 {
                return Err(AutogradError::Exchange { op, expected: 1 + 2 * c, got: global.len() });
            }
            let n = global[0];
            let cd = Dims::new(&[c])?;
            let shift_at = |st: &View<'_>, ch: usize| shift.map_or(0.0, |s| f64::from(st.value(s)[ch]));
            let mean = self.compute("batch mean", cd, false, |st, m| {
                for (ch, m) in m.iter_mut().enumerate() {
                    *m = (shift_at(st, ch) + global[1 + ch] / n) as f32;
                }
                Ok(())
            })?;
            let variance = self.compute("batch variance", cd, false, |_, v| {
                for ch in 0..c {
                    let mu = global[1 + ch] / n;
                    v[ch] = (global[1 + c + ch] / n - mu * mu).max(0.0) as f32;
                }
                Ok(())
            })?;
            let y = self.normalize(x, [mean, variance], gamma, beta, epsilon, [true, relu])?;
            Ok(BatchNormOutput { y, mean, variance })
        })();
        self.tape.st.exchange_global = global;
        res
    }

    /// A training batch normalization on one replica: [`Recording::batch_norm_partials`] with its own sums as
    /// the whole batch's, then [`Recording::batch_norm_global`].
    pub fn batch_norm_train(
        &mut self,
        x: Var,
        gamma: Option<Var>,
        beta: Option<Var>,
        epsilon: f32,
        relu: bool,
    ) -> Result<BatchNormOutput> {
        self.batch_norm_partials(x, None)?;
        self.exchange_alone();
        self.batch_norm_global(x, None, gamma, beta, epsilon, relu)
    }

    /// Batch normalization with fixed statistics (inference): `mean` and `variance` per channel (a layer's moving
    /// statistics); with `relu` a fused ReLU as in [`Recording::batch_norm_global`].
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm_inference(
        &mut self,
        x: Var,
        mean: Var,
        variance: Var,
        gamma: Option<Var>,
        beta: Option<Var>,
        epsilon: f32,
        relu: bool,
    ) -> Result<Var> {
        self.bn_channels("batch_norm", x, &[Some(mean), Some(variance), gamma, beta])?;
        self.normalize(x, [mean, variance], gamma, beta, epsilon, [false, relu])
    }

    /// `y = x·a + b` per channel with `a = γ/√(σ² + ε)` and `b = β − μ·a`, then ReLU when `[_, relu]`;
    /// `[training, _]` says which statistics `[mean, variance]` are (the backward pass differs).
    fn normalize(
        &mut self,
        x: Var,
        [mean, variance]: [Var; 2],
        gamma: Option<Var>,
        beta: Option<Var>,
        epsilon: f32,
        [training, relu]: [bool; 2],
    ) -> Result<Var> {
        let xd = self.check("batch_norm", x)?;
        let req = self.requires(&[x]) || [gamma, beta].into_iter().flatten().any(|v| self.requires(&[v]));
        let mut coef = std::mem::take(&mut self.tape.st.channel_coef);
        let y = self.compute("batch_norm", xd, req, |st, y| {
            let (xv, m, var) = (st.value(x), st.value(mean), st.value(variance));
            let c = m.len();
            coef.clear();
            coef.resize(2 * c, 0.0);
            let (a, b) = coef.split_at_mut(c);
            for ch in 0..c {
                (a[ch], _) = scale_of(var[ch], gamma_at(st, gamma, ch), epsilon);
                b[ch] = beta.map_or(0.0, |v| st.value(v)[ch]) - m[ch] * a[ch];
            }
            st.kernels().channel_affine(xv, a, b, relu, y)?;
            Ok(())
        });
        self.tape.st.channel_coef = coef;
        let y = y?;
        if req {
            self.record(y, BatchNormBackward { x, gamma, beta, mean, variance, epsilon, training, relu });
        }
        Ok(y)
    }

    /// Keras' moving-statistics update `moving·momentum + value·(1 − momentum)` (no gradient; assign it to the
    /// state with [`Recording::assign`]).
    pub fn moving_average(&mut self, moving: Var, value: Var, momentum: f32) -> Result<Var> {
        let op = "moving_average";
        let d = self.check(op, moving)?;
        same_dims(op, "value", d, self.check(op, value)?)?;
        let rest = 1.0 - momentum;
        let out = self.compute(op, d, false, |st, o| {
            for ((o, &m), &v) in o.iter_mut().zip(st.value(moving)).zip(st.value(value)) {
                *o = m * momentum + v * rest;
            }
            Ok(())
        })?;
        Ok(out)
    }
}
