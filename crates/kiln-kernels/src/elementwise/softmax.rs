//! Row softmax and the fused softmax + categorical cross-entropy (forward and backward).
//!
//! Keras semantics: a `Dense(…, activation="softmax")` feeding `categorical_crossentropy` is computed by Keras 3
//! (TF backend) from the logits, `−Σ_c t_c · log_softmax(z)_c`, without the [1e-7, 1 − 1e-7] clipping applied to
//! free-standing probabilities; the gradient is `∂/∂z = p·Σ_c t_c − t`. Terms with `t_c = 0` contribute nothing
//! (also when `z_c = −∞`).

use crate::simd::{Simd, reduce_add, reduce_max};

/// The operations of this family, with their arguments.
pub(crate) enum SoftmaxOp<'a> {
    /// `p[r] = softmax(z[r])` for rows of `cols`.
    Softmax { cols: usize, z: &'a [f32], p: &'a mut [f32] },
    /// `p = softmax(z)`, `loss[r] = −Σ t·log_softmax(z[r])`.
    CrossEntropy { cols: usize, z: &'a [f32], t: &'a [f32], p: &'a mut [f32], loss: &'a mut [f32] },
    /// `dz = scale·(p·Σt − t)`.
    CrossEntropyBackward { cols: usize, p: &'a [f32], t: &'a [f32], scale: f32, dz: &'a mut [f32] },
}

/// Softmax of one row; returns `(max, Σ exp(z − max))`.
#[inline(always)]
fn softmax_row<S: Simd>(s: S, z: &[f32], p: &mut [f32]) -> (f32, f32) {
    let n = S::LANES;
    let full = z.len() / n * n;
    let mut vm = s.splat(f32::NEG_INFINITY);
    for c in z[..full].chunks_exact(n) {
        vm = s.max(vm, s.load(c));
    }
    let mut buf = [f32::NEG_INFINITY; 16];
    buf[..z.len() - full].copy_from_slice(&z[full..]);
    vm = s.max(vm, s.load(&buf));
    // A NaN anywhere propagates through exp below, whatever max() did with it.
    let m = reduce_max(s, vm);
    let vmax = s.splat(m);
    let mut vs = s.splat(0.0);
    for (zc, pc) in z[..full].chunks_exact(n).zip(p[..full].chunks_exact_mut(n)) {
        let e = super::math::exp(s, s.sub(s.load(zc), vmax));
        s.store(pc, e);
        vs = s.add(vs, e);
    }
    // Tail padded with −∞: exp(−∞ − m) = 0 adds nothing.
    let e = super::math::exp(s, s.sub(s.load(&buf), vmax));
    vs = s.add(vs, e);
    let mut out = [0.0f32; 16];
    s.store(&mut out, e);
    p[full..].copy_from_slice(&out[..z.len() - full]);
    let sum = reduce_add(s, vs);
    let vsum = s.splat(sum);
    for pc in p[..full].chunks_exact_mut(n) {
        let v = s.div(s.load(pc), vsum);
        s.store(pc, v);
    }
    for v in &mut p[full..] {
        *v /= sum;
    }
    (m, sum)
}

#[inline(always)]
pub(crate) fn run<S: Simd>(s: S, op: SoftmaxOp<'_>) {
    match op {
        SoftmaxOp::Softmax { cols, z, p } => {
            for (zr, pr) in z.chunks_exact(cols).zip(p.chunks_exact_mut(cols)) {
                softmax_row(s, zr, pr);
            }
        }
        SoftmaxOp::CrossEntropy { cols, z, t, p, loss } => {
            for (((zr, tr), pr), l) in
                z.chunks_exact(cols).zip(t.chunks_exact(cols)).zip(p.chunks_exact_mut(cols)).zip(loss)
            {
                let (m, sum) = softmax_row(s, zr, pr);
                let log_sum = sum.ln();
                *l = -zr.iter().zip(tr).filter(|(_, t)| **t != 0.0).map(|(z, t)| t * (z - m - log_sum)).sum::<f32>();
            }
        }
        SoftmaxOp::CrossEntropyBackward { cols, p, t, scale, dz } => {
            let n = S::LANES;
            for ((pr, tr), dr) in p.chunks_exact(cols).zip(t.chunks_exact(cols)).zip(dz.chunks_exact_mut(cols)) {
                let st: f32 = tr.iter().sum();
                let (vst, vscale) = (s.splat(st), s.splat(scale));
                let full = cols / n * n;
                for ((pc, tc), dc) in
                    pr[..full].chunks_exact(n).zip(tr[..full].chunks_exact(n)).zip(dr[..full].chunks_exact_mut(n))
                {
                    let v = s.mul(vscale, s.mul_add(s.load(pc), vst, s.sub(s.splat(0.0), s.load(tc))));
                    s.store(dc, v);
                }
                for ((pv, tv), dv) in pr[full..].iter().zip(&tr[full..]).zip(&mut dr[full..]) {
                    *dv = scale * pv.mul_add(st, -tv);
                }
            }
        }
    }
}
