//! Reshape / flatten: a new shape over the same values; the gradient is copied back unchanged.

use crate::backward::{Backward, Grads};
use crate::error::Result;
use crate::tape::Var;

pub(crate) struct ReshapeBackward {
    pub(crate) x: Var,
}

impl Backward for ReshapeBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        crate::ops::pass_through(g, self.x, out)
    }
}
