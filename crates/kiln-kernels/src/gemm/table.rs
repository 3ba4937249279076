//! The GEMM family's dispatch table: one `static TABLE` per ISA, next to that ISA's microkernel
//! (`portable.rs`, `x86_64/{avx2,avx512}.rs`, `aarch64/neon.rs`), re-exported here under the ISA's name.

use super::task::GemmTask;

/// The GEMM of one ISA.
pub(crate) struct GemmTable {
    /// `gemm/<isa>/<MR>x<NR>`, used in logs and bench ids.
    pub(crate) name: &'static str,
    /// The microkernel's register tile `(MR, NR)`: the granule of the threaded split.
    pub(crate) tile: (usize, usize),
    /// The loop nest compiled for this ISA.
    pub(crate) run: unsafe fn(&GemmTask),
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
/// NEON GEMM.
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon {
    pub(crate) use crate::gemm::aarch64::neon::TABLE;
}
