//! The convolution family's dispatch table, one `static TABLE` per ISA (stamped by `per_isa!` in `stamp.rs`),
//! and each ISA's register-tile sizes.

use super::direct::{Planar, Wgrad};
use super::igemm::{Igemm, IgemmWgrad};
use super::winograd::Transform;
use crate::simd::Simd;

/// The convolution kernels of one ISA.
pub(crate) struct ConvTable {
    /// Images per lane-batched direct group (forward, backward-data, backward-filter; the f32 lanes of a vector;
    /// 1: wide rows only).
    pub(crate) lanes: usize,
    pub(crate) direct_planar: unsafe fn(&mut Planar<'_>),
    pub(crate) direct_lanes: unsafe fn(&mut Planar<'_>),
    pub(crate) direct_wgrad: unsafe fn(&mut Wgrad<'_>),
    pub(crate) direct_wgrad_lanes: unsafe fn(&mut Wgrad<'_>),
    /// Implicit-GEMM register tile: (pixels, channels).
    pub(crate) igemm_tile: (usize, usize),
    pub(crate) igemm: unsafe fn(&mut Igemm<'_>),
    pub(crate) igemm_wgrad: unsafe fn(&mut IgemmWgrad<'_>),
    pub(crate) winograd_transform: unsafe fn(Transform<'_, '_>),
}

/// Register-tile sizes of the convolution kernels on one ISA: `V` vectors per direct register row (`VW` for
/// blocks of up to three channels), `T` taps per direct backward-filter row (`TW` likewise), an `MR × NV`-vector
/// implicit-GEMM tile; and whether the direct kernel batches images across vector lanes.
pub(crate) trait ConvTuning: Simd {
    const V: usize;
    const VW: usize;
    const T: usize;
    const TW: usize;
    const MR: usize;
    const NV: usize;
    const LANE_BATCHES: bool = true;
}

impl ConvTuning for crate::simd::Portable {
    const V: usize = 1;
    const VW: usize = 2;
    const T: usize = 1;
    const TW: usize = 2;
    const MR: usize = 4;
    const NV: usize = 2;
    // wide's 8×8 transpose goes element by element without AVX: lane-batched conv2 forward took 608 µs against
    // the wide rows' 566 (harness minima, batch 32), so the portable path keeps wide rows.
    const LANE_BATCHES: bool = false;
}

#[cfg(target_arch = "x86_64")]
impl ConvTuning for crate::simd::x86_64::Avx2 {
    const V: usize = 2;
    const VW: usize = 4;
    const T: usize = 1;
    const TW: usize = 3;
    const MR: usize = 6;
    const NV: usize = 2;
}

#[cfg(target_arch = "x86_64")]
impl ConvTuning for crate::simd::x86_64::Avx512 {
    const V: usize = 4;
    const VW: usize = 8;
    const T: usize = 3;
    const TW: usize = 5;
    const MR: usize = 12;
    const NV: usize = 2;
}

#[cfg(target_arch = "aarch64")]
impl ConvTuning for crate::simd::aarch64::Neon {
    const V: usize = 4;
    const VW: usize = 8;
    const T: usize = 3;
    const TW: usize = 5;
    const MR: usize = 8;
    const NV: usize = 3;
}

/// One ISA's `#[target_feature]` entries around the generic convolution kernels, and their table.
macro_rules! conv_entries {
    ($(#[$attr:meta])* Token = $t:ty, token = $token:expr) => {
        use $crate::conv::direct::{Planar, Wgrad};
        use $crate::conv::igemm::{Igemm, IgemmWgrad};
        use $crate::conv::table::{ConvTable, ConvTuning};
        use $crate::conv::winograd::Transform;
        use $crate::simd::Simd;

        /// # Safety
        /// The CPU supports this ISA.
        $(#[$attr])*
        unsafe fn direct_planar(job: &mut Planar<'_>) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::conv::direct::planar::<_, { <$t as ConvTuning>::V }, { <$t as ConvTuning>::VW }>(s, job)
        }
        /// # Safety
        /// The CPU supports this ISA.
        $(#[$attr])*
        unsafe fn direct_lanes(job: &mut Planar<'_>) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::conv::direct::lanes::<_, { <$t as ConvTuning>::V }, { <$t as ConvTuning>::VW }>(s, job)
        }
        /// # Safety
        /// The CPU supports this ISA.
        $(#[$attr])*
        unsafe fn direct_wgrad(job: &mut Wgrad<'_>) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::conv::direct::wgrad::<_, { <$t as ConvTuning>::T }, { <$t as ConvTuning>::TW }>(s, job)
        }
        /// # Safety
        /// The CPU supports this ISA.
        $(#[$attr])*
        unsafe fn direct_wgrad_lanes(job: &mut Wgrad<'_>) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::conv::direct::wgrad_lanes::<_, { <$t as ConvTuning>::T }, { <$t as ConvTuning>::TW }>(s, job)
        }
        /// # Safety
        /// The CPU supports this ISA; the weights are packed for this ISA's panel width.
        $(#[$attr])*
        unsafe fn igemm(job: &mut Igemm<'_>) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::conv::igemm::igemm::<_, { <$t as ConvTuning>::MR }, { <$t as ConvTuning>::NV }>(s, job)
        }
        /// # Safety
        /// The CPU supports this ISA.
        $(#[$attr])*
        unsafe fn igemm_wgrad(job: &mut IgemmWgrad<'_>) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::conv::igemm::igemm_wgrad::<_, { <$t as ConvTuning>::MR }, { <$t as ConvTuning>::NV }>(s, job)
        }
        /// # Safety
        /// The CPU supports this ISA.
        $(#[$attr])*
        unsafe fn winograd_transform(job: Transform<'_, '_>) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::conv::winograd::transform(s, job)
        }

        /// This ISA's convolution kernels.
        pub(crate) static TABLE: ConvTable = ConvTable {
            lanes: if <$t as ConvTuning>::LANE_BATCHES { <$t as Simd>::LANES } else { 1 },
            direct_planar,
            direct_lanes,
            direct_wgrad,
            direct_wgrad_lanes,
            igemm_tile: (<$t as ConvTuning>::MR, <$t as ConvTuning>::NV * <$t as Simd>::LANES),
            igemm,
            igemm_wgrad,
            winograd_transform,
        };
    };
}

per_isa!(conv_entries);
