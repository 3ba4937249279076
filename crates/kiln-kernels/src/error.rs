//! The error type of the kernel crate.

use thiserror::Error;

/// Everything a caller of `kiln-kernels` can get wrong: bad shapes, bad slice lengths, bad ISA names.
///
/// Kernels never panic on user input; every public entry point validates its arguments once and returns one of
/// these variants instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KernelError {
    /// A dimension that must be at least 1 was 0 (or an explicit geometry made an output dimension empty).
    #[error("{op}: `{dim}` must be at least 1, got {got}")]
    ZeroDim {
        /// The operation being validated, e.g. `"conv2d"`.
        op: &'static str,
        /// The name of the offending dimension.
        dim: &'static str,
        /// The value received.
        got: usize,
    },
    /// A size computation overflowed `usize` (or the element count exceeds what a slice may address).
    #[error("{op}: size of `{what}` overflows the address space")]
    Overflow {
        /// The operation being validated.
        op: &'static str,
        /// What was being computed.
        what: &'static str,
    },
    /// The (dilated) kernel does not fit in the (padded) input.
    #[error("{op}: the {axis} extent of the dilated kernel ({kernel}) exceeds the padded input ({input})")]
    KernelLargerThanInput {
        /// The operation being validated.
        op: &'static str,
        /// `"height"` or `"width"`.
        axis: &'static str,
        /// Effective (dilated) kernel extent.
        kernel: usize,
        /// Input extent including padding.
        input: usize,
    },
    /// A leading dimension is smaller than the row it has to hold.
    #[error("{op}: leading dimension `{name}` = {got} is smaller than the row length {min}")]
    LeadingDim {
        /// The operation being validated.
        op: &'static str,
        /// `"lda"`, `"ldb"` or `"ldc"`.
        name: &'static str,
        /// The leading dimension received.
        got: usize,
        /// The smallest admissible value.
        min: usize,
    },
    /// A slice is shorter (or, where an exact length is required, of another length) than the geometry needs.
    #[error("{op}: `{name}` has {got} elements, expected {expected}")]
    SliceLen {
        /// The operation being validated.
        op: &'static str,
        /// Which argument.
        name: &'static str,
        /// Elements required.
        expected: usize,
        /// Elements received.
        got: usize,
    },
    /// A forced algorithm cannot run this geometry or pass (e.g. Winograd with stride 2).
    #[error("{op}: algorithm `{what}` does not apply: {reason}")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The algorithm that was forced.
        what: String,
        /// Why it does not apply.
        reason: &'static str,
    },
    /// Memory for a buffer could not be allocated.
    #[error("{op}: cannot allocate {elements} floats for {what}")]
    Alloc {
        /// The operation.
        op: &'static str,
        /// What the buffer holds.
        what: &'static str,
        /// Its length in floats.
        elements: usize,
    },
    /// A kernel was asked for in a number format its ISA has no table for on this CPU.
    #[error("{op}: no {dtype} kernel for ISA `{isa}` on this CPU")]
    UnsupportedDType {
        /// The operation.
        op: &'static str,
        /// The format asked for.
        dtype: crate::precision::DType,
        /// The ISA of the kernel table used.
        isa: &'static str,
    },
    /// A number format name Kiln does not know.
    #[error("unknown number format `{0}` (expected float32 or bfloat16)")]
    UnknownDType(String),
    /// An ISA name (from `KILN_ISA`, `KILN_REQUIRE_ISA` or a caller) that Kiln does not know.
    #[error("unknown ISA `{0}` (expected one of: portable, avx2, avx512, neon)")]
    UnknownIsa(String),
    /// An ISA was required (`KILN_REQUIRE_ISA`) but this host cannot run it.
    #[error("ISA `{isa}` is required by KILN_REQUIRE_ISA but is not supported by this CPU")]
    IsaRequired {
        /// The ISA that was required.
        isa: &'static str,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;
