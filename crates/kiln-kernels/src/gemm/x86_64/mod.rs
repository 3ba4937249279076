//! x86_64 GEMM kernels: AVX2+FMA, AVX-512, and AVX-512 BF16 for bf16 inputs.

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod avx512_bf16;
