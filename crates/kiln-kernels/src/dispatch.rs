//! Dispatch tables: one `static` [`Kernels`] per ISA, holding plain function pointers to that ISA's entry points.
//! A `&Kernels` can only be obtained for an ISA the CPU supports ([`Kernels::for_isa`]), which is what makes the
//! single `unsafe` call per operation family sound. [`Kernels::best`] is chosen once per process from
//! [`Isa::best`] (which honours `KILN_ISA`).

use std::fmt;
use std::sync::OnceLock;

use crate::activation::{self, Backward, Unary};
use crate::conv;
use crate::gemm;
use crate::gemm::task::GemmTask;
use crate::isa::Isa;

/// The kernels of one instruction set.
pub struct Kernels {
    isa: Isa,
    gemm_name: &'static str,
    pub(crate) gemm_tile: (usize, usize),
    pub(crate) gemm: unsafe fn(&GemmTask),
    pub(crate) unary: unsafe fn(Unary, &[f32], &mut [f32]),
    pub(crate) backward: unsafe fn(Backward, &[f32], &[f32], &mut [f32]),
    pub(crate) swish_pair: unsafe fn(&[f32], &mut [f32], &mut [f32]),
    pub(crate) bias_add: unsafe fn(usize, &mut [f32], &[f32]),
    pub(crate) column_sums: unsafe fn(usize, &[f32], &mut [f32]),
    pub(crate) softmax: unsafe fn(activation::softmax::SoftmaxOp<'_>),
    pub(crate) optim: unsafe fn(crate::optim::Step<'_>),
    pub(crate) direct_planar: unsafe fn(&mut crate::conv::direct::Planar<'_>),
    pub(crate) direct_wgrad: unsafe fn(&mut crate::conv::direct::Wgrad<'_>),
    /// Images per lane-batched direct group (forward, backward-data, backward-filter; the f32 lanes of a vector;
    /// 1: wide rows only).
    pub(crate) lanes: usize,
    pub(crate) direct_lanes: unsafe fn(&mut crate::conv::direct::Planar<'_>),
    pub(crate) direct_wgrad_lanes: unsafe fn(&mut crate::conv::direct::Wgrad<'_>),
    /// Implicit-GEMM register tile: (pixels, channels).
    pub(crate) igemm_tile: (usize, usize),
    pub(crate) igemm: unsafe fn(&mut crate::conv::igemm::Igemm<'_>),
    pub(crate) igemm_wgrad: unsafe fn(&mut crate::conv::igemm::IgemmWgrad<'_>),
    pub(crate) winograd_transform: unsafe fn(crate::conv::winograd::Transform<'_, '_>),
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels").field("isa", &self.isa).field("gemm", &self.gemm_name).finish()
    }
}

static PORTABLE: Kernels = Kernels {
    isa: Isa::Portable,
    gemm_name: "gemm/portable/4x16",
    gemm_tile: (4, 16),
    gemm: gemm::portable::gemm,
    unary: activation::portable::unary,
    backward: activation::portable::backward,
    swish_pair: activation::portable::swish_pair,
    bias_add: activation::portable::bias_add,
    column_sums: activation::portable::column_sums,
    softmax: activation::portable::softmax,
    optim: activation::portable::optim,
    direct_planar: conv::portable::direct_planar,
    direct_wgrad: conv::portable::direct_wgrad,
    // wide's 8×8 transpose goes element by element without AVX: lane-batched conv2 forward took 608 µs against
    // the wide rows' 566 (harness minima, batch 32), so the portable path keeps wide rows.
    lanes: 1,
    direct_lanes: conv::portable::direct_lanes,
    direct_wgrad_lanes: conv::portable::direct_wgrad_lanes,
    igemm_tile: (4, 16),
    igemm: conv::portable::igemm,
    igemm_wgrad: conv::portable::igemm_wgrad,
    winograd_transform: conv::portable::winograd_transform,
};

#[cfg(target_arch = "x86_64")]
static AVX2: Kernels = Kernels {
    isa: Isa::Avx2Fma,
    gemm_name: "gemm/avx2/6x16",
    gemm_tile: (6, 16),
    gemm: gemm::x86_64::avx2::gemm,
    unary: activation::avx2::unary,
    backward: activation::avx2::backward,
    swish_pair: activation::avx2::swish_pair,
    bias_add: activation::avx2::bias_add,
    column_sums: activation::avx2::column_sums,
    softmax: activation::avx2::softmax,
    optim: activation::avx2::optim,
    direct_planar: conv::avx2::direct_planar,
    direct_wgrad: conv::avx2::direct_wgrad,
    lanes: 8,
    direct_lanes: conv::avx2::direct_lanes,
    direct_wgrad_lanes: conv::avx2::direct_wgrad_lanes,
    igemm_tile: (6, 16),
    igemm: conv::avx2::igemm,
    igemm_wgrad: conv::avx2::igemm_wgrad,
    winograd_transform: conv::avx2::winograd_transform,
};

#[cfg(target_arch = "x86_64")]
static AVX512: Kernels = Kernels {
    isa: Isa::Avx512,
    gemm_name: "gemm/avx512/12x32",
    gemm_tile: (12, 32),
    gemm: gemm::x86_64::avx512::gemm,
    unary: activation::avx512::unary,
    backward: activation::avx512::backward,
    swish_pair: activation::avx512::swish_pair,
    bias_add: activation::avx512::bias_add,
    column_sums: activation::avx512::column_sums,
    softmax: activation::avx512::softmax,
    optim: activation::avx512::optim,
    direct_planar: conv::avx512::direct_planar,
    direct_wgrad: conv::avx512::direct_wgrad,
    lanes: 16,
    direct_lanes: conv::avx512::direct_lanes,
    direct_wgrad_lanes: conv::avx512::direct_wgrad_lanes,
    igemm_tile: (12, 32),
    igemm: conv::avx512::igemm,
    igemm_wgrad: conv::avx512::igemm_wgrad,
    winograd_transform: conv::avx512::winograd_transform,
};

#[cfg(target_arch = "aarch64")]
static NEON: Kernels = Kernels {
    isa: Isa::Neon,
    gemm_name: "gemm/neon/8x12",
    gemm_tile: (8, 12),
    gemm: gemm::aarch64::neon::gemm,
    unary: activation::neon::unary,
    backward: activation::neon::backward,
    swish_pair: activation::neon::swish_pair,
    bias_add: activation::neon::bias_add,
    column_sums: activation::neon::column_sums,
    softmax: activation::neon::softmax,
    optim: activation::neon::optim,
    direct_planar: conv::neon::direct_planar,
    direct_wgrad: conv::neon::direct_wgrad,
    lanes: 4,
    direct_lanes: conv::neon::direct_lanes,
    direct_wgrad_lanes: conv::neon::direct_wgrad_lanes,
    igemm_tile: (8, 12),
    igemm: conv::neon::igemm,
    igemm_wgrad: conv::neon::igemm_wgrad,
    winograd_transform: conv::neon::winograd_transform,
};

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

    /// The GEMM kernel's name, `gemm/<isa>/<MR>x<NR>` (used in logs and bench ids).
    pub fn gemm_name(&self) -> &'static str {
        self.gemm_name
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
