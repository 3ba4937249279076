//! Portable SGEMM on `wide::f32x8`: a 4×16 microkernel with 8 independent accumulators (KERNELS.md §1.6: fallbacks
//! keep ≥ 8 partial sums). `wide` selects its implementation at compile time, so on x86_64 this is SSE2 code (an
//! `f32x8` is two xmm registers) and on aarch64 NEON; without a hardware FMA, `mul_add` is a multiply and an add.

use wide::f32x8;

use super::blocking::{self, MicroKernel, Tile, store_edge};
use super::task::GemmTask;

pub(crate) struct Portable;

impl MicroKernel for Portable {
    const MR: usize = 4;
    const NR: usize = 16;
    const MC: usize = 128;
    const KC: usize = 256;
    const NC: usize = 4096;

    #[inline(always)]
    unsafe fn kernel(t: &Tile) {
        debug_assert_eq!((t.lda, t.ldb), (4, 16), "the portable kernel reads packed panels only");
        // SAFETY: a and b hold 4·k and 16·k floats (packed panels).
        let (a, b) = unsafe { (std::slice::from_raw_parts(t.a, 4 * t.k), std::slice::from_raw_parts(t.b, 16 * t.k)) };
        let mut acc = [[f32x8::ZERO; 2]; 4];
        for (ap, bp) in a.chunks_exact(4).zip(b.chunks_exact(16)) {
            let b0 = f32x8::new([bp[0], bp[1], bp[2], bp[3], bp[4], bp[5], bp[6], bp[7]]);
            let b1 = f32x8::new([bp[8], bp[9], bp[10], bp[11], bp[12], bp[13], bp[14], bp[15]]);
            for (row, &ai) in acc.iter_mut().zip(ap) {
                let ai = f32x8::splat(ai);
                row[0] = ai.mul_add(b0, row[0]);
                row[1] = ai.mul_add(b1, row[1]);
            }
        }
        let va = f32x8::splat(t.alpha);
        // A whole tile with beta 0 or 1 (every tile but the edges) is stored by vectors; the values are those
        // `store_edge` would store (`alpha·acc`, plus `c` — exactly its FMA with beta 1). Through the scalar
        // `store_edge` the stores took ~1/5 of a depth-16 product (the Dense weight gradient): minima of 600 calls,
        // old → new, 2 rounds: 2400×84×16 Aᵀ 397/390 → 318/317 µs, 32×84×2400 849/700 → 617/615, 16×2400×84 Bᵀ
        // 309/309 → 271/271.
        if t.mr == Self::MR && t.nr == Self::NR && (t.beta == 0.0 || t.beta == 1.0) {
            for (i, row) in acc.iter().enumerate() {
                // SAFETY: a whole tile: row i of C has 16 valid columns at c + i·ldc (the tile contract), and no
                // other reference to them exists during the call.
                let dst = unsafe { std::slice::from_raw_parts_mut(t.c.add(i * t.ldc), 16) };
                for (half, v) in dst.chunks_exact_mut(8).zip(row) {
                    let mut r = *v * va;
                    if t.beta == 1.0 {
                        r += f32x8::new([half[0], half[1], half[2], half[3], half[4], half[5], half[6], half[7]]);
                    }
                    half.copy_from_slice(&r.to_array());
                }
            }
            return;
        }
        let mut tile = [0.0f32; 4 * 16];
        for (i, row) in acc.iter().enumerate() {
            tile[i * 16..i * 16 + 8].copy_from_slice(&(row[0] * va).to_array());
            tile[i * 16 + 8..i * 16 + 16].copy_from_slice(&(row[1] * va).to_array());
        }
        // SAFETY: the tile holds 4 rows of 16; the C tile is valid per the contract.
        unsafe { store_edge(&tile, 16, t) };
    }
}

/// Runs a task with the portable kernel on the calling thread.
///
/// # Safety
/// The task is valid (see [`GemmTask`]).
pub(crate) unsafe fn gemm(t: &GemmTask) {
    // SAFETY: forwarded; the portable kernel needs no CPU feature.
    unsafe { blocking::run::<Portable>(t) }
}

/// This ISA's GEMM.
pub(crate) static TABLE: crate::gemm::table::GemmTable = crate::gemm::table::GemmTable {
    name: "gemm/portable/4x16",
    tile: (<Portable as crate::gemm::blocking::MicroKernel>::MR, <Portable as crate::gemm::blocking::MicroKernel>::NR),
    run: gemm,
};
