//! The differentiable operations, one file per family; each is an `impl Tape` block plus the small
//! [`Backward`](crate::Backward) structs that hold its saved state.

pub mod activation;
pub mod affine_transform;
pub mod batch_norm;
pub mod cast;
pub mod conv2d;
pub mod dense;
pub mod depthwise_conv2d;
pub mod dropout;
pub mod flip;
pub mod global_pool;
pub mod loss;
pub mod merge;
pub mod pool;
pub(crate) mod reshape;
pub mod scalar_activation;

use crate::backward::Grads;
use crate::dims::Dims;
use crate::error::{AutogradError, Result};
use crate::tape::Var;

/// Adds the gradient of `out` unchanged to the gradient of `x` (same number of elements): the backward pass of
/// reshape and the input side of bias add.
pub(crate) fn pass_through(g: &mut Grads<'_>, x: Var, out: Var) -> Result<()> {
    g.update(x, |st, dx, acc| {
        let dy = st.grad(out);
        if acc {
            dx.iter_mut().zip(dy).for_each(|(d, s)| *d += s);
        } else {
            dx.copy_from_slice(dy);
        }
        Ok(())
    })
}

/// `(rows, cols)` of a value seen as a matrix over its last axis.
pub(crate) fn rows_cols(op: &'static str, d: Dims) -> Result<(usize, usize)> {
    if d.rank() == 0 {
        return Err(AutogradError::Shape { op, what: "rank", expected: "rank ≥ 1".into(), got: d });
    }
    let cols = d.last();
    let rows = d.numel().checked_div(cols).unwrap_or(0);
    Ok((rows, cols))
}

/// `Err(Shape)` unless `a == b`.
pub(crate) fn same_dims(op: &'static str, what: &'static str, a: Dims, b: Dims) -> Result<()> {
    if a != b {
        return Err(AutogradError::Shape { op, what, expected: a.to_string(), got: b });
    }
    Ok(())
}
