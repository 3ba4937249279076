//! NEON SGEMM: an 8×12 microkernel (24 q-register accumulators, 3 B vectors; BLIS armv8a's shape), stack-tile
//! edges combined with the same operations as interior tiles.

use std::arch::aarch64::*;

use crate::gemm::blocking::{self, MicroKernel, Tile, store_edge};
use crate::gemm::task::GemmTask;

pub(crate) struct Neon;

impl MicroKernel for Neon {
    const MR: usize = 8;
    const NR: usize = 12;
    const MC: usize = 120;
    /// BLIS/tblis use KC = 640 on armv8a, but one accumulator then sums 640 products: with all-positive data the
    /// property test found 11·eps32·B at k = 641 (`cargo xtask neon`), over the K = 8 bound of KERNELS.md §1.6.
    /// KC = 256 (as on x86_64) bounds each chain to 256 terms; later K blocks are summed in C.
    const KC: usize = 256;
    const NC: usize = 3072;

    #[inline(always)]
    unsafe fn kernel(t: &Tile) {
        debug_assert_eq!((t.lda, t.ldb), (8, 12), "the NEON kernel reads packed panels only");
        // SAFETY: forwarded contract; the entry point checked NEON support.
        unsafe { ukernel_8x12(t) }
    }
}

/// # Safety
/// See [`MicroKernel::kernel`]; requires NEON.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn ukernel_8x12(t: &Tile) {
    let Tile { k, a, b, c, ldc, alpha, beta, mr, nr, .. } = *t;
    let mut acc = [[vdupq_n_f32(0.0); 3]; 8];
    for p in 0..k {
        // SAFETY: b holds 12·k floats, a holds 8·k floats.
        let bv = unsafe { [vld1q_f32(b.add(p * 12)), vld1q_f32(b.add(p * 12 + 4)), vld1q_f32(b.add(p * 12 + 8))] };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: p·8 + i < 8·k.
            let ai = vdupq_n_f32(unsafe { *a.add(p * 8 + i) });
            for (r, &bj) in row.iter_mut().zip(&bv) {
                *r = vfmaq_f32(*r, bj, ai);
            }
        }
    }
    let va = vdupq_n_f32(alpha);
    if mr == 8 && nr == 12 {
        let vb = vdupq_n_f32(beta);
        for (i, row) in acc.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                // SAFETY: the full 8×12 tile is inside C.
                unsafe {
                    let dst = c.add(i * ldc + 4 * j);
                    let mut r = vmulq_f32(v, va);
                    if beta != 0.0 {
                        r = vfmaq_f32(r, vb, vld1q_f32(dst));
                    }
                    vst1q_f32(dst, r);
                }
            }
        }
    } else {
        let mut tile = [0.0f32; 8 * 12];
        for (i, row) in acc.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                // SAFETY: 4 floats at tile[i·12 + 4j..].
                unsafe { vst1q_f32(tile.as_mut_ptr().add(i * 12 + 4 * j), vmulq_f32(v, va)) };
            }
        }
        // SAFETY: the tile holds 8 rows of 12; the C tile is valid per the contract.
        unsafe { store_edge(&tile, 12, t) };
    }
}

/// Runs a task with the NEON kernel on the calling thread.
///
/// # Safety
/// The task is valid (see [`GemmTask`]) and the CPU supports NEON.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn gemm(t: &GemmTask) {
    // SAFETY: forwarded.
    unsafe { blocking::run::<Neon>(t) }
}

/// This ISA's GEMM.
pub(crate) static TABLE: crate::gemm::table::GemmTable = crate::gemm::table::GemmTable {
    name: "gemm/neon/8x12",
    tile: (<Neon as crate::gemm::blocking::MicroKernel>::MR, <Neon as crate::gemm::blocking::MicroKernel>::NR),
    run: gemm,
};
