//! Per-channel kernels on row-major `rows × channels` activations (NHWC is `(N·H·W) × C`): BatchNormalization's
//! normalization `y = x·a + b` and its input gradient, each optionally fused with a following ReLU so the
//! activation costs no pass of its own. Every element gets the same operations, in the same order, as the plain
//! loops they replace (a product then a sum, no fused multiply-add), so results do not depend on the ISA.

use crate::simd::Simd;

/// `max(v, 0)` keeping NaN, as the ReLU kernel: only lanes with `v < 0` become 0.
#[inline(always)]
fn relu<S: Simd>(s: S, v: S::V) -> S::V {
    s.select_lt(v, s.splat(0.0), s.splat(0.0), v)
}

/// The scalar form of [`relu`], for tails.
#[inline(always)]
fn relu1(v: f32) -> f32 {
    if v < 0.0 { 0.0 } else { v }
}

/// `y[r, j] = x[r, j]·a[j] + b[j]`, then ReLU when `relu`.
#[inline(always)]
pub(crate) fn channel_affine<S: Simd>(s: S, x: &[f32], a: &[f32], b: &[f32], relu_after: bool, y: &mut [f32]) {
    let c = a.len();
    let n = S::LANES;
    for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        let mut j = 0;
        while j + n <= c {
            let v = s.add(s.mul(s.load(&xr[j..]), s.load(&a[j..])), s.load(&b[j..]));
            s.store(&mut yr[j..], if relu_after { relu(s, v) } else { v });
            j += n;
        }
        for k in j..c {
            let v = xr[k] * a[k] + b[k];
            yr[k] = if relu_after { relu1(v) } else { v };
        }
    }
}

/// Per-channel coefficients of BatchNormalization's input gradient (all of one length, the channel count).
#[derive(Debug, Clone, Copy)]
pub struct BnGradCoefficients<'a> {
    /// `γ/√(σ² + ε)`.
    pub scale: &'a [f32],
    /// `1/√(σ² + ε)`.
    pub inv_std: &'a [f32],
    /// The batch mean.
    pub mean: &'a [f32],
    /// Training: the whole batch's `Σ∂y / n` per channel, for this replica's rows; inference: unused (any
    /// slice of the channel count).
    pub mean_dy: &'a [f32],
    /// Training: the whole batch's `Σ∂y·x̂ / n`; inference: unused.
    pub mean_dy_xhat: &'a [f32],
}

/// The operands of `Kernels::batch_norm_backward_data` (`rows × channels` each).
pub struct BnGrad<'a> {
    /// The layer's input.
    pub x: &'a [f32],
    /// The gradient of the layer's output.
    pub dy: &'a [f32],
    /// With a fused ReLU: the (activated) output, whose non-positive entries pass no gradient.
    pub relu_output: Option<&'a [f32]>,
    /// Batch statistics (training) or fixed ones (inference: `dx = ∂y·scale`).
    pub training: bool,
    /// Whether to add to `dx` rather than overwrite it.
    pub accumulate: bool,
}

/// `dx = scale·((g − mean_dy) − x̂·mean_dy_xhat)` with `x̂ = (x − mean)·inv_std` (training) or `dx = g·scale`
/// (inference), where `g` is `∂y`, zeroed where the fused ReLU's output is not positive.
#[inline(always)]
pub(crate) fn batch_norm_backward_data<S: Simd>(s: S, k: BnGradCoefficients<'_>, op: BnGrad<'_>, dx: &mut [f32]) {
    let c = k.scale.len();
    let n = S::LANES;
    let rows = dx.len().checked_div(c).unwrap_or(0);
    for r in 0..rows {
        let at = r * c;
        let (xr, gr, dr) = (&op.x[at..at + c], &op.dy[at..at + c], &mut dx[at..at + c]);
        let yr = op.relu_output.map(|y| &y[at..at + c]);
        let mut j = 0;
        while j + n <= c {
            let mut g = s.load(&gr[j..]);
            if let Some(y) = yr {
                g = s.select_lt(s.splat(0.0), s.load(&y[j..]), g, s.splat(0.0));
            }
            let v = if op.training {
                let xhat = s.mul(s.sub(s.load(&xr[j..]), s.load(&k.mean[j..])), s.load(&k.inv_std[j..]));
                let t = s.sub(s.sub(g, s.load(&k.mean_dy[j..])), s.mul(xhat, s.load(&k.mean_dy_xhat[j..])));
                s.mul(s.load(&k.scale[j..]), t)
            } else {
                s.mul(g, s.load(&k.scale[j..]))
            };
            let v = if op.accumulate { s.add(s.load(&dr[j..]), v) } else { v };
            s.store(&mut dr[j..], v);
            j += n;
        }
        for i in j..c {
            let g = match yr {
                Some(y) if y[i] > 0.0 => gr[i],
                Some(_) => 0.0,
                None => gr[i],
            };
            let v = if op.training {
                let xhat = (xr[i] - k.mean[i]) * k.inv_std[i];
                k.scale[i] * (g - k.mean_dy[i] - xhat * k.mean_dy_xhat[i])
            } else {
                g * k.scale[i]
            };
            dr[i] = if op.accumulate { dr[i] + v } else { v };
        }
    }
}
