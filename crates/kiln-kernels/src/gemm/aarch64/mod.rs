//! aarch64 GEMM kernels.

pub(crate) mod neon;
