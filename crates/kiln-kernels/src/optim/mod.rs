//! Optimizer update steps with Keras 3 formulas (elementwise, in place), one generic body per step compiled per
//! ISA like the activations.
//!
//! * RMSprop: `v = ρ·v + (1 − ρ)·g²`, `w −= lr·g / √(v + ε)` — ε *inside* the root, as Keras 3 (PyTorch and burn
//!   put it outside, which is not the notebook's optimizer). Keras defaults: lr 1e-3, ρ 0.9, ε 1e-7.
//! * Adam: `m = β₁m + (1 − β₁)g`, `v = β₂v + (1 − β₂)g²`, `w −= α·m / (√v + ε)` with
//!   `α = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)` (computed in f64 by the caller of the kernel). Defaults: 1e-3, 0.9, 0.999, 1e-7.
//! * SGD: `w −= lr·g`; with momentum `u = μ·u − lr·g`, then `w += u`, or with Nesterov `w += μ·u − lr·g`.
//!   Defaults: lr 0.01, μ 0.

mod kernels;
mod streams;
pub(crate) mod table;

pub(crate) use kernels::run;
pub use streams::{STAGGER_MIN, Stream, stream_buffer};

use crate::dispatch::Kernels;
use crate::error::{KernelError, Result};

/// RMSprop hyper-parameters (Keras 3 defaults via `Default`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsPropParams {
    /// Learning rate.
    pub lr: f32,
    /// Discount factor ρ of the moving average of squared gradients.
    pub rho: f32,
    /// ε, added inside the square root.
    pub epsilon: f32,
    /// Keras 3's decoupled weight decay (`weight_decay`; 0 = none, Keras' default except for AdamW): before the
    /// update, `w ← w − (w·weight_decay)·lr`, in that order, as Keras' `_apply_weight_decay`.
    pub weight_decay: f32,
}

impl Default for RmsPropParams {
    fn default() -> Self {
        RmsPropParams { lr: 1e-3, rho: 0.9, epsilon: 1e-7, weight_decay: 0.0 }
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
    /// Keras 3's decoupled weight decay (`weight_decay`; 0 = none, Keras' default except for AdamW): before the
    /// update, `w ← w − (w·weight_decay)·lr`, in that order, as Keras' `_apply_weight_decay`.
    pub weight_decay: f32,
}

impl Default for AdamParams {
    fn default() -> Self {
        AdamParams { lr: 1e-3, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, weight_decay: 0.0 }
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
    /// Keras 3's decoupled weight decay (`weight_decay`; 0 = none, Keras' default except for AdamW): before the
    /// update, `w ← w − (w·weight_decay)·lr`, in that order, as Keras' `_apply_weight_decay`.
    pub weight_decay: f32,
}

impl Default for SgdParams {
    fn default() -> Self {
        SgdParams { lr: 0.01, momentum: 0.0, nesterov: false, weight_decay: 0.0 }
    }
}

/// The optimizer and its state buffers for one step (each state slice as long as the weights; SGD without
/// momentum takes an empty `u`).
#[derive(Debug)]
pub enum Update<'a> {
    /// RMSprop with its moving average `v`.
    RmsProp {
        /// Moving average of squared gradients.
        v: &'a mut [f32],
        /// Hyper-parameters.
        p: RmsPropParams,
    },
    /// Adam with its moments, at step `t ≥ 1` (counting from 1).
    Adam {
        /// First moment.
        m: &'a mut [f32],
        /// Second moment.
        v: &'a mut [f32],
        /// Hyper-parameters.
        p: AdamParams,
        /// Step number, from 1.
        t: u64,
    },
    /// SGD with its momentum buffer `u` (empty when `p.momentum == 0`).
    Sgd {
        /// Momentum buffer.
        u: &'a mut [f32],
        /// Hyper-parameters.
        p: SgdParams,
    },
}

/// The data-parallel reduction fused into one optimizer pass (see
/// [`Kernels::averaged_step`](crate::Kernels::averaged_step)): the gradient used is `a·g + b·other`, computed per
/// vector (`b·other + a·g` with one fused multiply-add) and not stored.
#[derive(Debug, Clone, Copy)]
pub struct Average<'a> {
    /// The second replica's gradient.
    pub other: &'a [f32],
    /// Weight of the first replica's gradient (its share of the batch).
    pub a: f32,
    /// Weight of the second replica's gradient.
    pub b: f32,
}

/// One optimizer step's arguments (all slices of equal length, validated by the safe entry points; Adam's `t ≥ 1`).
pub(crate) struct Step<'a> {
    pub w: &'a mut [f32],
    pub g: &'a [f32],
    pub update: Update<'a>,
    pub avg: Option<Average<'a>>,
}

fn same_len(op: &'static str, name: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got { Ok(()) } else { Err(KernelError::SliceLen { op, name, expected, got }) }
}

impl Kernels {
    /// One RMSprop step in place on weights `w` and the moving average `v` (see [`crate::optim`]).
    pub fn rmsprop_step(&self, w: &mut [f32], g: &[f32], v: &mut [f32], p: RmsPropParams) -> Result<()> {
        self.optimizer_step("rmsprop_step", w, g, Update::RmsProp { v, p }, None)
    }

    /// One Adam step (step number `t ≥ 1`, counting from 1) in place on `w` and the moments `m`, `v`.
    #[allow(clippy::too_many_arguments)]
    pub fn adam_step(
        &self,
        w: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        p: AdamParams,
        t: u64,
    ) -> Result<()> {
        self.optimizer_step("adam_step", w, g, Update::Adam { m, v, p, t }, None)
    }

    /// One SGD step in place; `u` is the momentum buffer (same length as `w`), or empty when `p.momentum == 0`.
    pub fn sgd_step(&self, w: &mut [f32], g: &[f32], u: &mut [f32], p: SgdParams) -> Result<()> {
        self.optimizer_step("sgd_step", w, g, Update::Sgd { u, p }, None)
    }

    /// The data-parallel optimizer step in one pass: the step of `update` on `w` with the two replicas' gradients
    /// averaged, `avg.a·g + avg.b·avg.other` (not stored; `g` is left as it is) — instead of two passes (average,
    /// step) over buffers that do not fit in L2.
    pub fn averaged_step(&self, w: &mut [f32], g: &[f32], update: Update<'_>, avg: Average<'_>) -> Result<()> {
        self.optimizer_step("averaged_step", w, g, update, Some(avg))
    }

    fn optimizer_step(
        &self,
        op: &'static str,
        w: &mut [f32],
        g: &[f32],
        update: Update<'_>,
        avg: Option<Average<'_>>,
    ) -> Result<()> {
        same_len(op, "gradient", w.len(), g.len())?;
        match &update {
            Update::RmsProp { v, .. } => same_len(op, "velocity", w.len(), v.len())?,
            Update::Adam { m, v, t, .. } => {
                same_len(op, "first moment", w.len(), m.len())?;
                same_len(op, "second moment", w.len(), v.len())?;
                if *t == 0 {
                    return Err(KernelError::ZeroDim { op, dim: "t", got: 0 });
                }
            }
            Update::Sgd { u, p } => {
                if p.momentum != 0.0 || !u.is_empty() {
                    same_len(op, "momentum", w.len(), u.len())?;
                }
            }
        }
        if let Some(r) = &avg {
            same_len(op, "other gradient", w.len(), r.other.len())?;
        }
        // SAFETY: a `&Kernels` exists only for a supported ISA; equal lengths (or no SGD momentum buffer), t ≥ 1.
        unsafe { (self.optim.step)(Step { w, g, update, avg }) };
        Ok(())
    }
}
