//! The error type of the autograd crate.

use kiln_kernels::KernelError;
use kiln_tensor::TensorError;
use thiserror::Error;

use crate::dims::Dims;

/// Everything a user of the [`Tape`](crate::Tape) can get wrong. No tape operation panics on user input.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum AutogradError {
    /// A kernel rejected its arguments (bad geometry, unsupported forced algorithm, …).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// Operand shapes that do not fit the operation.
    #[error("{op}: {what}: expected {expected}, got {got}")]
    Shape {
        /// The operation.
        op: &'static str,
        /// Which operand or dimension.
        what: &'static str,
        /// What was needed.
        expected: String,
        /// What was received.
        got: Dims,
    },
    /// More dimensions than [`MAX_RANK`](crate::MAX_RANK).
    #[error("a tensor of rank {rank} exceeds the tape's maximum rank {max}")]
    Rank {
        /// The rank requested.
        rank: usize,
        /// The maximum supported.
        max: usize,
    },
    /// A [`Var`](crate::Var) from another tape or from before the last [`Tape::record`](crate::Tape::record).
    #[error("{op}: variable {index} is stale or from another tape (reset since it was made?)")]
    StaleVar {
        /// The operation.
        op: &'static str,
        /// The variable's index.
        index: u32,
    },
    /// A [`ParamId`](crate::ParamId) that this tape does not hold.
    #[error("no parameter #{index} on this tape")]
    UnknownParam {
        /// The parameter index.
        index: u32,
    },
    /// `backward` was called on a value with more than one element.
    #[error("backward: the loss must be a single value, got shape {dims}")]
    NotScalar {
        /// The loss' shape.
        dims: Dims,
    },
    /// `backward` was called on a value that depends on no trainable parameter (or was made under `no_grad`).
    #[error("backward: the loss does not depend on anything that requires a gradient")]
    NoGradient,
    /// `backward_resume` without a backward pass stopped for an exchange.
    #[error("backward_resume: no backward pass is waiting for an exchange")]
    NotPaused,
    /// Whole-batch statistics whose sums do not fit the operation (the exchange was not set for it).
    #[error("{op}: the whole-batch sums have {got} values, expected {expected}")]
    Exchange {
        /// The operation.
        op: &'static str,
        /// Values expected.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A sparse label that is not a class index.
    #[error("{op}: label {label} in row {row} is not a class index in 0..{classes}")]
    Label {
        /// The operation.
        op: &'static str,
        /// The offending label value.
        label: f32,
        /// Its row.
        row: usize,
        /// Number of classes.
        classes: usize,
    },
    /// An out-of-range hyper-parameter (dropout rate, pool size …).
    #[error("{op}: {what} = {value} is out of range ({expected})")]
    Parameter {
        /// The operation.
        op: &'static str,
        /// The parameter.
        what: &'static str,
        /// Its value.
        value: f64,
        /// The accepted range.
        expected: &'static str,
    },
    /// Memory for a buffer could not be reserved.
    #[error("cannot allocate {elements} floats for {what}")]
    Alloc {
        /// What the buffer was for.
        what: &'static str,
        /// Its size.
        elements: usize,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = AutogradError> = std::result::Result<T, E>;
