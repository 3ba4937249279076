//! The optimizer steps' per-vector bodies, one generic loop over four equal-length slices.

use super::{AdamParams, Average, RmsPropParams, SgdParams, Step, Update};
use crate::simd::Simd;

/// Adam's step size `α = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)`, in f64.
fn adam_alpha(p: &AdamParams, t: u64) -> f32 {
    let t = i32::try_from(t).unwrap_or(i32::MAX);
    (f64::from(p.lr) * (1.0 - f64::from(p.beta_2).powi(t)).sqrt() / (1.0 - f64::from(p.beta_1).powi(t))) as f32
}

/// A per-vector update `(w, g, a, b) → (w′, a′, b′)` (see `simd::Op1` for why not a closure).
trait Op4<S: Simd>: Copy {
    fn apply(self, s: S, w: S::V, g: S::V, a: S::V, b: S::V) -> (S::V, S::V, S::V);
    /// `(weight_decay, lr)` of the decoupled weight decay applied to `w` before `apply`.
    fn decay(self) -> (f32, f32);
}

/// Loads `k ≤ LANES` floats at `src[i..]`, through a zero-padded buffer when `k < LANES`.
#[inline(always)]
fn load_at<S: Simd>(s: S, src: &[f32], i: usize, k: usize, buf: &mut [f32; 16]) -> S::V {
    if k == S::LANES {
        s.load(&src[i..])
    } else {
        buf[..k].copy_from_slice(&src[i..i + k]);
        s.load(&buf[..])
    }
}

/// Stores the first `k ≤ LANES` lanes of `v` at `dst[i..]`.
#[inline(always)]
fn store_at<S: Simd>(s: S, dst: &mut [f32], i: usize, k: usize, v: S::V) {
    if k == S::LANES {
        s.store(&mut dst[i..], v);
    } else {
        let mut out = [0.0f32; 16];
        s.store(&mut out, v);
        dst[i..i + k].copy_from_slice(&out[..k]);
    }
}

/// Runs `f` over `LANES`-chunks of four equal-length slices (`a` and `b` possibly absent, as empty slices; absent
/// ones read as zeros and are not written), the tail through zero-padded stack vectors. With `avg`, the gradient
/// fed to `f` is `avg.a·g + avg.b·avg.other`.
#[inline(always)]
fn zip4<S: Simd, F: Op4<S>>(
    s: S,
    w: &mut [f32],
    g: &[f32],
    a: &mut [f32],
    b: &mut [f32],
    avg: Option<Average<'_>>,
    f: F,
) {
    let n = S::LANES;
    let len = w.len();
    let (has_a, has_b) = (!a.is_empty(), !b.is_empty());
    let mut bufs = [[0.0f32; 16]; 5];
    let (wd, lr) = f.decay();
    let mut i = 0;
    while i < len {
        let k = n.min(len - i);
        let [bw, bg, ba, bb, bo] = &mut bufs;
        let (mut vw, mut vg) = (load_at(s, w, i, k, bw), load_at(s, g, i, k, bg));
        if wd != 0.0 {
            vw = s.sub(vw, s.mul(s.mul(vw, s.splat(wd)), s.splat(lr)));
        }
        if let Some(r) = &avg {
            let vo = load_at(s, r.other, i, k, bo);
            vg = s.mul_add(s.splat(r.b), vo, s.mul(s.splat(r.a), vg));
        }
        let va = if has_a { load_at(s, a, i, k, ba) } else { s.splat(0.0) };
        let vb = if has_b { load_at(s, b, i, k, bb) } else { s.splat(0.0) };
        let (nw, na, nb) = f.apply(s, vw, vg, va, vb);
        store_at(s, w, i, k, nw);
        if has_a {
            store_at(s, a, i, k, na);
        }
        if has_b {
            store_at(s, b, i, k, nb);
        }
        i += k;
    }
}

#[derive(Clone, Copy)]
struct RmsPropOp(RmsPropParams);
impl<S: Simd> Op4<S> for RmsPropOp {
    #[inline(always)]
    fn apply(self, s: S, w: S::V, g: S::V, v: S::V, _: S::V) -> (S::V, S::V, S::V) {
        let p = self.0;
        let v = s.mul_add(s.mul(g, g), s.splat(1.0 - p.rho), s.mul(s.splat(p.rho), v));
        let w = s.sub(w, s.div(s.mul(s.splat(p.lr), g), s.sqrt(s.add(v, s.splat(p.epsilon)))));
        (w, v, v)
    }
    #[inline(always)]
    fn decay(self) -> (f32, f32) {
        (self.0.weight_decay, self.0.lr)
    }
}

#[derive(Clone, Copy)]
struct AdamOp(AdamParams, f32);
impl<S: Simd> Op4<S> for AdamOp {
    #[inline(always)]
    fn apply(self, s: S, w: S::V, g: S::V, m: S::V, v: S::V) -> (S::V, S::V, S::V) {
        let (p, alpha) = (self.0, self.1);
        let m = s.mul_add(g, s.splat(1.0 - p.beta_1), s.mul(s.splat(p.beta_1), m));
        let v = s.mul_add(s.mul(g, g), s.splat(1.0 - p.beta_2), s.mul(s.splat(p.beta_2), v));
        let w = s.sub(w, s.div(s.mul(s.splat(alpha), m), s.add(s.sqrt(v), s.splat(p.epsilon))));
        (w, m, v)
    }
    #[inline(always)]
    fn decay(self) -> (f32, f32) {
        (self.0.weight_decay, self.0.lr)
    }
}

#[derive(Clone, Copy)]
struct SgdOp(SgdParams);
impl<S: Simd> Op4<S> for SgdOp {
    #[inline(always)]
    fn apply(self, s: S, w: S::V, g: S::V, u: S::V, _: S::V) -> (S::V, S::V, S::V) {
        let p = self.0;
        let lg = s.mul(s.splat(p.lr), g);
        if p.momentum == 0.0 {
            return (s.sub(w, lg), u, u);
        }
        let mu = s.splat(p.momentum);
        let u = s.sub(s.mul(mu, u), lg);
        let w = if p.nesterov { s.add(w, s.sub(s.mul(mu, u), lg)) } else { s.add(w, u) };
        (w, u, u)
    }
    #[inline(always)]
    fn decay(self) -> (f32, f32) {
        (self.0.weight_decay, self.0.lr)
    }
}

#[inline(always)]
pub(crate) fn run<S: Simd>(s: S, step: Step<'_>) {
    let Step { w, g, update, avg } = step;
    match update {
        Update::RmsProp { v, p } => zip4(s, w, g, v, &mut [], avg, RmsPropOp(p)),
        Update::Adam { m, v, p, t } => zip4(s, w, g, m, v, avg, AdamOp(p, adam_alpha(&p, t))),
        // Plain SGD has no momentum buffer (`u` empty): `SgdOp` then ignores it.
        Update::Sgd { u, p } => zip4(s, w, g, u, &mut [], avg, SgdOp(p)),
    }
}
