//! [`Backward`]: one recorded step of the reverse pass, with its explicit saved state (DESIGN.md rule 12).

use std::any::Any;

use crate::error::Result;
use crate::params::Params;
use crate::tape::{State, Var, View};

/// The reverse-mode rule of one operation. Implementations are small structs holding exactly the state the rule
/// needs (input variables, geometry); values are read back from the tape rather than copied.
///
/// `Any` lets the tape overwrite last step's record in place when the same operation recurs at the same position,
/// so a repeated training step does not allocate.
pub trait Backward: Any + Send + Sync {
    /// Adds this operation's contribution to its inputs' gradients, given the gradient of its output `out`.
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()>;

    /// For a rule that needs sums over the whole batch when the batch is split across replicas (batch
    /// normalization): writes this replica's partial sums ([`Grads::exchange_local`]) and returns true; the pass
    /// then stops until the sums of every replica are set ([`Grads::exchange_global`]) and resumes with
    /// [`Backward::backward`]. Other rules return false (the default).
    fn partials(&self, out: Var, g: &mut Grads<'_>) -> Result<bool> {
        let _ = (out, g);
        Ok(false)
    }
}

/// What a [`Backward`] step sees: read access to every value and gradient, write access to input gradients.
pub struct Grads<'a> {
    pub(crate) st: &'a mut State,
    pub(crate) params: &'a Params,
    pub(crate) borrowed: &'a [&'a [f32]],
}

impl Grads<'_> {
    /// Read access (values, dimensions, gradients, kernels).
    pub fn view(&self) -> View<'_> {
        View { st: self.st, params: self.params, borrowed: self.borrowed }
    }

    /// The buffer for this replica's partial sums ([`Backward::partials`]), cleared.
    pub fn exchange_local(&mut self) -> &mut Vec<f64> {
        self.st.exchange_local.clear();
        &mut self.st.exchange_local
    }

    /// The sums over every replica of the last exchange.
    pub fn exchange_global(&self) -> &[f64] {
        &self.st.exchange_global
    }

    /// This replica's share of the batch (weight of its gradient partials; 1 on a single replica).
    pub fn share(&self) -> f64 {
        self.st.share
    }

    /// Calls `f(view, grad_of_v, accumulate)`: with `accumulate == false` `f` must overwrite the buffer,
    /// otherwise add to it. Does nothing when `v` needs no gradient.
    pub fn update(&mut self, v: Var, f: impl FnOnce(&View<'_>, &mut [f32], bool) -> Result<()>) -> Result<()> {
        self.st.update_grad(self.params, self.borrowed, v, f)
    }

    /// Calls `f(view, out)` where `out` must be overwritten with (this contribution to) the gradient of `v`;
    /// when `v` already has a gradient the contribution is computed aside and added. Does nothing when `v` needs
    /// no gradient.
    pub fn set(&mut self, v: Var, f: impl FnOnce(&View<'_>, &mut [f32]) -> Result<()>) -> Result<()> {
        self.st.set_grad(self.params, self.borrowed, v, f)
    }
}
