//! The differentiable operations, one file per family; each is an `impl Tape` block plus the small
//! [`Backward`](crate::Backward) structs that hold its saved state.

pub mod activation;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod loss;
pub mod pool;
pub(crate) mod reshape;

use crate::dims::Dims;
use crate::error::{AutogradError, Result};

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
