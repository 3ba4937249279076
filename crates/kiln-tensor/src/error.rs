//! The error type of the tensor crate.

use thiserror::Error;

use crate::shape::Shape;

/// Everything a user of [`Tensor`](crate::Tensor) can get wrong. No tensor operation panics on user input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TensorError {
    /// The number of elements supplied does not match the shape.
    #[error("{op}: shape {shape} needs {expected} elements, got {got}")]
    LengthMismatch {
        /// The operation.
        op: &'static str,
        /// The requested shape.
        shape: Shape,
        /// Elements the shape needs.
        expected: usize,
        /// Elements supplied.
        got: usize,
    },
    /// Two shapes that must agree (or broadcast) do not.
    #[error("{op}: shapes {left} and {right} are incompatible")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// The left operand's shape.
        left: Shape,
        /// The right operand's shape.
        right: Shape,
    },
    /// An axis index beyond the tensor's rank.
    #[error("{op}: axis {axis} is out of range for a tensor of rank {rank}")]
    AxisOutOfRange {
        /// The operation.
        op: &'static str,
        /// The axis requested.
        axis: usize,
        /// The tensor's rank.
        rank: usize,
    },
    /// A reduction over an axis of length 0 (argmax of nothing).
    #[error("{op}: axis {axis} of shape {shape} is empty")]
    EmptyAxis {
        /// The operation.
        op: &'static str,
        /// The axis.
        axis: usize,
        /// The shape.
        shape: Shape,
    },
    /// The operation needs a tensor of another rank.
    #[error("{op}: expected a tensor of rank {expected}, got shape {shape}")]
    Rank {
        /// The operation.
        op: &'static str,
        /// The rank required (as text: `"2"`, `"at least 1"`).
        expected: &'static str,
        /// The shape received.
        shape: Shape,
    },
    /// A batch range outside `0..=batch`.
    #[error("batch range {start}..{end} is out of bounds for batch size {batch}")]
    BatchRange {
        /// Range start.
        start: usize,
        /// Range end.
        end: usize,
        /// The tensor's batch (first) dimension.
        batch: usize,
    },
    /// The product of the dimensions overflows what a buffer may hold.
    #[error("shape {dims:?} has too many elements")]
    Overflow {
        /// The dimensions.
        dims: Vec<usize>,
    },
    /// A data source was given inconsistent samples (a pixel count that is not a whole number of images, a label
    /// beyond the classes).
    #[error("{what}: expected {expected}, got {got}")]
    Data {
        /// Which data.
        what: &'static str,
        /// What was expected.
        expected: String,
        /// What was found.
        got: String,
    },
    /// The allocation of the tensor's storage failed.
    #[error("cannot allocate {elements} elements: {reason}")]
    Alloc {
        /// Elements requested.
        elements: usize,
        /// What the allocator said.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = TensorError> = std::result::Result<T, E>;
