//! Dispatch: one `static` [`Kernels`] per ISA, made of the kernel families' tables for that ISA (GEMM, convolution,
//! elementwise, optimizers — each defined in its family's module and stamped per ISA by
//! `per_isa!` in `stamp.rs`). A `&Kernels` can only be obtained for an ISA the CPU supports
//! ([`Kernels::for_isa`]), which is what makes the single `unsafe` call per operation sound. [`Kernels::best`] is
//! chosen once per process from [`Isa::best`] (which honours `KILN_ISA`).

use std::fmt;
use std::sync::OnceLock;

use crate::conv::table::ConvTable;
use crate::elementwise::table::ElementwiseTable;
use crate::gemm::table::GemmTable;
use crate::isa::Isa;
use crate::optim::table::OptimTable;
use crate::peak::table::PeakTable;
use crate::precision::DType;

/// The kernels of one instruction set: one table per kernel family.
pub struct Kernels {
    isa: Isa,
    pub(crate) gemm: &'static GemmTable,
    /// Native bf16-input GEMM, for ISAs with a bf16 extension (used only where `isa.supports(BF16)`; elsewhere
    /// bf16 is widened to the f32 GEMM).
    pub(crate) gemm_bf16: Option<&'static GemmTable<half::bf16>>,
    pub(crate) conv: &'static ConvTable,
    pub(crate) elementwise: &'static ElementwiseTable,
    pub(crate) optim: &'static OptimTable,
    pub(crate) peak: &'static PeakTable,
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels").field("isa", &self.isa).field("gemm", &self.gemm.name).finish()
    }
}

/// The [`Kernels`] of the ISA whose family modules are named `$m`.
macro_rules! kernels_of {
    ($isa:expr, $m:ident) => {
        kernels_of!($isa, $m, None)
    };
    ($isa:expr, $m:ident, $bf16:expr) => {
        Kernels {
            isa: $isa,
            gemm: &crate::gemm::table::$m::TABLE,
            gemm_bf16: $bf16,
            conv: &crate::conv::table::$m::TABLE,
            elementwise: &crate::elementwise::table::$m::TABLE,
            optim: &crate::optim::table::$m::TABLE,
            peak: &crate::peak::table::$m::TABLE,
        }
    };
}

static PORTABLE: Kernels = kernels_of!(Isa::Portable, portable);
#[cfg(target_arch = "x86_64")]
static AVX2: Kernels = kernels_of!(Isa::Avx2Fma, avx2);
#[cfg(target_arch = "x86_64")]
static AVX512: Kernels = kernels_of!(Isa::Avx512, avx512, Some(&crate::gemm::table::avx512_bf16::TABLE));
/// AVX-512 with bf16 by widening even where the CPU has AVX-512 BF16 ([`Kernels::bf16_by_widening`]).
#[cfg(target_arch = "x86_64")]
static AVX512_WIDENING: Kernels = kernels_of!(Isa::Avx512, avx512);
#[cfg(target_arch = "aarch64")]
static NEON: Kernels = kernels_of!(Isa::Neon, neon);

impl Kernels {
    /// The table for `isa`, or `None` if this CPU (or this build's architecture) cannot run it.
    pub fn for_isa(isa: Isa) -> Option<&'static Kernels> {
        if !isa.is_supported() {
            return None;
        }
        match isa {
            Isa::Portable => Some(&PORTABLE),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => Some(&AVX2),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Some(&AVX512),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => Some(&NEON),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The table for [`Isa::best`], chosen once.
    pub fn best() -> &'static Kernels {
        static BEST: OnceLock<&'static Kernels> = OnceLock::new();
        BEST.get_or_init(|| Kernels::for_isa(Isa::best()).unwrap_or(&PORTABLE))
    }

    /// The instruction set.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Whether this table has kernels for `dtype` inputs: always — bf16 runs natively or by widening to f32.
    pub fn supports(&self, dtype: DType) -> bool {
        match dtype {
            DType::F32 | DType::BF16 => true,
        }
    }

    /// Whether this table computes `dtype` with the CPU's own arithmetic for it (`f32` always; bf16 with AVX-512
    /// BF16) rather than by widening to f32.
    pub fn native(&self, dtype: DType) -> bool {
        match dtype {
            DType::F32 => true,
            DType::BF16 => self.gemm_bf16.is_some() && self.isa.supports(DType::BF16),
        }
    }

    /// The same ISA with bf16 computed by widening to f32 even where the CPU has bf16 arithmetic: the reference the
    /// native kernels are checked against bit for bit, and a way to measure what the native kernels gain.
    pub fn bf16_by_widening(&self) -> &'static Kernels {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => &AVX512_WIDENING,
            // Every other table has no native bf16 kernel.
            isa => Kernels::for_isa(isa).unwrap_or(&PORTABLE),
        }
    }

    /// The name of the kernel products of `dtype` inputs run on: `gemm/<isa>/<MR>x<NR>`, or for bf16 the native
    /// `gemm_bf16/…` table or `gemm/<isa>/…+widening`.
    pub fn gemm_name_for(&self, dtype: DType) -> String {
        match dtype {
            DType::F32 => self.gemm.name.to_string(),
            DType::BF16 => match self.gemm_bf16.filter(|_| self.native(DType::BF16)) {
                Some(t) => t.name.to_string(),
                None => format!("{}+widening", self.gemm.name),
            },
        }
    }

    /// The GEMM kernel's name, `gemm/<isa>/<MR>x<NR>` (used in logs and bench ids).
    pub fn gemm_name(&self) -> &'static str {
        self.gemm.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_exist_exactly_for_supported_isas() {
        for isa in Isa::ALL {
            assert_eq!(Kernels::for_isa(isa).is_some(), isa.is_supported(), "{isa}");
            if let Some(k) = Kernels::for_isa(isa) {
                assert_eq!(k.isa(), isa);
                assert!(k.gemm_name().starts_with(&format!("gemm/{}/", isa.name())));
            }
        }
        assert_eq!(Kernels::best().isa(), Isa::best());
    }
}
