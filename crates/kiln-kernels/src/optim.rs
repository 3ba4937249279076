//! Optimizer update steps with Keras 3 formulas (elementwise, in place), one generic body per step compiled per
//! ISA like the activations.
//!
//! * RMSprop: `v = ρ·v + (1 − ρ)·g²`, `w −= lr·g / √(v + ε)` — ε *inside* the root, as Keras 3 (PyTorch and burn
//!   put it outside, which is not the notebook's optimizer). Keras defaults: lr 1e-3, ρ 0.9, ε 1e-7.
//! * Adam: `m = β₁m + (1 − β₁)g`, `v = β₂v + (1 − β₂)g²`, `w −= α·m / (√v + ε)` with
//!   `α = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)` (computed in f64 by the caller of the kernel). Defaults: 1e-3, 0.9, 0.999, 1e-7.
//! * SGD: `w −= lr·g`; with momentum `u = μ·u − lr·g`, then `w += u`, or with Nesterov `w += μ·u − lr·g`.
//!   Defaults: lr 0.01, μ 0.

use crate::simd::Simd;

/// RMSprop hyper-parameters (Keras 3 defaults via `Default`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsPropParams {
    /// Learning rate.
    pub lr: f32,
    /// Discount factor ρ of the moving average of squared gradients.
    pub rho: f32,
    /// ε, added inside the square root.
    pub epsilon: f32,
}

impl Default for RmsPropParams {
    fn default() -> Self {
        RmsPropParams { lr: 1e-3, rho: 0.9, epsilon: 1e-7 }
    }
}

/// Adam hyper-parameters (Keras 3 defaults via `Default`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamParams {
    /// Learning rate.
    pub lr: f32,
    /// β₁.
    pub beta_1: f32,
    /// β₂.
    pub beta_2: f32,
    /// ε, added outside the square root.
    pub epsilon: f32,
}

impl Default for AdamParams {
    fn default() -> Self {
        AdamParams { lr: 1e-3, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }
    }
}

/// SGD hyper-parameters (Keras 3 defaults via `Default`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdParams {
    /// Learning rate.
    pub lr: f32,
    /// Momentum μ (0 = plain SGD).
    pub momentum: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

impl Default for SgdParams {
    fn default() -> Self {
        SgdParams { lr: 0.01, momentum: 0.0, nesterov: false }
    }
}

/// One optimizer step's arguments (all slices of equal length, validated by the safe entry points).
pub(crate) enum Step<'a> {
    RmsProp { w: &'a mut [f32], g: &'a [f32], v: &'a mut [f32], p: RmsPropParams },
    Adam { w: &'a mut [f32], g: &'a [f32], m: &'a mut [f32], v: &'a mut [f32], alpha: f32, p: AdamParams },
    Sgd { w: &'a mut [f32], g: &'a [f32], u: &'a mut [f32], p: SgdParams },
}

/// Runs `f` over `LANES`-chunks of four equal-length slices (`a` and `b` possibly absent, as empty slices; absent
/// ones read as zeros and are not written), the tail through zero-padded stack vectors.
#[inline(always)]
fn zip4<S: Simd>(
    s: S,
    w: &mut [f32],
    g: &[f32],
    a: &mut [f32],
    b: &mut [f32],
    f: impl Fn(S::V, S::V, S::V, S::V) -> (S::V, S::V, S::V),
) {
    let n = S::LANES;
    let len = w.len();
    let (has_a, has_b) = (!a.is_empty(), !b.is_empty());
    let mut i = 0;
    let mut bufs = [[0.0f32; 16]; 4];
    while i < len {
        let k = n.min(len - i);
        let full = k == n;
        let load = |src: &[f32], buf: &mut [f32; 16]| {
            if full {
                s.load(&src[i..])
            } else {
                buf[..k].copy_from_slice(&src[i..i + k]);
                s.load(&buf[..])
            }
        };
        let [bw, bg, ba, bb] = &mut bufs;
        let (vw, vg) = (load(w, bw), load(g, bg));
        let va = if has_a { load(a, ba) } else { s.splat(0.0) };
        let vb = if has_b { load(b, bb) } else { s.splat(0.0) };
        let (nw, na, nb) = f(vw, vg, va, vb);
        let store = |dst: &mut [f32], v: S::V| {
            if full {
                s.store(&mut dst[i..], v);
            } else {
                let mut out = [0.0f32; 16];
                s.store(&mut out, v);
                dst[i..i + k].copy_from_slice(&out[..k]);
            }
        };
        store(w, nw);
        if has_a {
            store(a, na);
        }
        if has_b {
            store(b, nb);
        }
        i += k;
    }
}

#[inline(always)]
pub(crate) fn run<S: Simd>(s: S, step: Step<'_>) {
    match step {
        Step::RmsProp { w, g, v, p } => {
            let (rho, one_minus, lr, eps) = (s.splat(p.rho), s.splat(1.0 - p.rho), s.splat(p.lr), s.splat(p.epsilon));
            zip4(s, w, g, v, &mut [], |w, g, v, _| {
                let v = s.mul_add(s.mul(g, g), one_minus, s.mul(rho, v));
                let w = s.sub(w, s.div(s.mul(lr, g), s.sqrt(s.add(v, eps))));
                (w, v, v)
            });
        }
        Step::Adam { w, g, m, v, alpha, p } => {
            let (b1, c1) = (s.splat(p.beta_1), s.splat(1.0 - p.beta_1));
            let (b2, c2) = (s.splat(p.beta_2), s.splat(1.0 - p.beta_2));
            let (alpha, eps) = (s.splat(alpha), s.splat(p.epsilon));
            zip4(s, w, g, m, v, |w, g, m, v| {
                let m = s.mul_add(g, c1, s.mul(b1, m));
                let v = s.mul_add(s.mul(g, g), c2, s.mul(b2, v));
                let w = s.sub(w, s.div(s.mul(alpha, m), s.add(s.sqrt(v), eps)));
                (w, m, v)
            });
        }
        Step::Sgd { w, g, u, p } => {
            let (lr, mu) = (s.splat(p.lr), s.splat(p.momentum));
            if u.is_empty() {
                zip4(s, w, g, &mut [], &mut [], |w, g, _, _| (s.sub(w, s.mul(lr, g)), w, w));
            } else {
                let nesterov = p.nesterov;
                zip4(s, w, g, u, &mut [], |w, g, u, _| {
                    let lg = s.mul(lr, g);
                    let u = s.sub(s.mul(mu, u), lg);
                    let w = if nesterov { s.add(w, s.sub(s.mul(mu, u), lg)) } else { s.add(w, u) };
                    (w, u, u)
                });
            }
        }
    }
}
