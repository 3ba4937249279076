//! x86_64 GEMM kernels: AVX2+FMA and AVX-512.

pub(crate) mod avx2;
pub(crate) mod avx512;
