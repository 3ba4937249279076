//! The GEMM family's dispatch table: one `static TABLE` per ISA, next to that ISA's microkernel
//! (`portable.rs`, `x86_64/{avx2,avx512}.rs`, `aarch64/neon.rs`), re-exported here under the ISA's name.

use super::task::GemmTask;
use crate::precision::Element;

/// The GEMM of one ISA for inputs of element `T` (`f32` for every ISA; bf16 where the ISA has bf16 arithmetic,
/// referenced from `Kernels::gemm_bf16`). `pub` only so the sealed `Element` trait may name it; its
/// module is private to the crate.
pub struct GemmTable<T: Element = f32> {
    /// `gemm/<isa>/<MR>x<NR>`, used in logs and bench ids.
    pub(crate) name: &'static str,
    /// The microkernel's register tile `(MR, NR)`: the granule of the threaded split.
    pub(crate) tile: (usize, usize),
    /// The loop nest compiled for this ISA.
    pub(crate) run: unsafe fn(&GemmTask<T>),
}

/// Portable (`wide`) GEMM.
pub(crate) mod portable {
    pub(crate) use crate::gemm::portable::TABLE;
}
/// AVX2+FMA GEMM.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    pub(crate) use crate::gemm::x86_64::avx2::TABLE;
}
/// AVX-512 GEMM.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    pub(crate) use crate::gemm::x86_64::avx512::TABLE;
}
/// AVX-512 BF16 GEMM (bf16 inputs).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512_bf16 {
    pub(crate) use crate::gemm::x86_64::avx512_bf16::TABLE;
}
/// NEON GEMM.
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon {
    pub(crate) use crate::gemm::aarch64::neon::TABLE;
}
