//! # kiln-kernels
//!
//! f32 GEMM and 2-D convolution kernels for CPUs (and a bf16-input GEMM with f32 accumulation), chosen at run time from the CPU's features (see [`isa`]), with
//! naive f64 references that specify them ([`reference`](mod@reference)).
//!
//! The crate works on plain slices and validated geometry ([`geometry`]); it has no tensor type. Every public
//! entry point validates its arguments once and returns a [`KernelError`] instead of panicking. `unsafe` code is
//! confined to the ISA-specific kernel files, each block with a `SAFETY:` justification.

#![deny(unsafe_op_in_unsafe_fn)]

// First: the per-ISA stamping macro the family modules use.
#[macro_use]
mod stamp;

pub mod alloc_count;
pub mod buffer;
pub mod conv;
pub mod dispatch;
pub mod elementwise;
pub mod error;
pub mod float_env;
pub mod gemm;
pub mod geometry;
pub mod isa;
pub mod optim;
pub mod peak;
pub mod precision;
pub mod reference;
pub(crate) mod simd;
pub mod testing;

pub use buffer::AlignedVec;
pub use conv::{ConvAlgo, ConvOptions, ConvPass, ConvPlan, KeptInput, WinogradTile};
pub use dispatch::Kernels;
pub use error::{KernelError, Result};
pub use float_env::{FlushDenormals, flush_denormals, set_flush_denormals};
pub use gemm::{PARALLEL_MIN_FLOPS, Threads, sgemm};
pub use geometry::{Conv2dGeometry, Conv2dSpec, GemmGeometry, GemmSpec, Padding, Transpose};
pub use isa::Isa;
pub use peak::FmaPeak;
pub use precision::{DType, Element};
