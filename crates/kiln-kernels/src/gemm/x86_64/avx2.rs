//! AVX2+FMA SGEMM: a 6×16 microkernel (12 ymm accumulators, 2 B vectors, 1 broadcast; BLIS haswell's shape).
//! Edge tiles are computed in full into a stack tile and the valid part combined into C with the same operations
//! (`alpha·acc`, then a fused `beta·c + ·`), so edge and interior elements round identically.
//! Blocking: KC = 256 (B micro-panel 16 KB), MC = 144, NC = 4080 (BLIS `config/haswell`).

use std::arch::x86_64::*;

use crate::gemm::blocking::{self, MicroKernel, Tile, store_edge};
use crate::gemm::task::GemmTask;

pub(crate) struct Avx2;

impl MicroKernel for Avx2 {
    const MR: usize = 6;
    const NR: usize = 16;
    const MC: usize = 144;
    const KC: usize = 256;
    const NC: usize = 4080;
    const DIRECT_B: bool = true;
    const DIRECT_A: bool = true;

    // Batch-1 inference (Dense 1×2400·2400×84): a 2-row tile instead of paying for 6 rows of broadcasts and FMAs:
    // `predict/flagship/batch1/avx2` 78.3 → 44.2 µs (criterion medians, `cargo bench -p kiln-benches --bench
    // train_step -- predict`).
    const SMALL_MR: usize = 2;

    #[inline(always)]
    unsafe fn kernel(t: &Tile) {
        // SAFETY: forwarded contract; the entry point checked AVX2+FMA support.
        unsafe { ukernel_x16::<6>(t) }
    }

    #[inline(always)]
    unsafe fn kernel_small(t: &Tile) {
        // SAFETY: forwarded contract of `kernel_small` (A panels 2 rows tall); AVX2+FMA checked.
        unsafe { ukernel_x16::<2>(t) }
    }
}

/// The `MR × 16` microkernel (`MR ≤ 6`: 6 for the main tile, 2 for short products).
///
/// # Safety
/// See [`MicroKernel::kernel`] with A panels `MR` tall; requires AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn ukernel_x16<const MR: usize>(t: &Tile) {
    let Tile { k, a, lda, b, ldb, c, ldc, alpha, beta, mr, nr } = *t;
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    // One rank-1 update of the 6×16 tile (a macro, not a closure taking `&mut acc`: that kept the accumulators in
    // memory and cost ~25 % at 256³).
    macro_rules! step {
        ($p:expr, $b0:expr, $b1:expr) => {
            let (b0, b1) = ($b0, $b1);
            for (i, row) in acc.iter_mut().enumerate() {
                // SAFETY: a[p·lda + i] is readable for p < k, i < MR (the tile's contract).
                let ai = _mm256_set1_ps(unsafe { *a.add($p * lda + i) });
                row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
            }
        };
    }
    if ldb == 16 || nr == 16 {
        for p in 0..k {
            // SAFETY: 16 readable floats at row p of B (packed panel, or a full-width tile read in place).
            let (b0, b1) = unsafe { (_mm256_loadu_ps(b.add(p * ldb)), _mm256_loadu_ps(b.add(p * ldb + 8))) };
            step!(p, b0, b1);
        }
    } else {
        // B read in place at the right edge: only `nr` columns are readable; masked-off lanes are not accessed.
        let lane = |j: i32| if (j as usize) < nr { -1 } else { 0 };
        let m0 = _mm256_setr_epi32(lane(0), lane(1), lane(2), lane(3), lane(4), lane(5), lane(6), lane(7));
        let m1 = _mm256_setr_epi32(lane(8), lane(9), lane(10), lane(11), lane(12), lane(13), lane(14), lane(15));
        for p in 0..k {
            // SAFETY: lanes enabled in m0/m1 are columns < nr of B row p.
            let (b0, b1) =
                unsafe { (_mm256_maskload_ps(b.add(p * ldb), m0), _mm256_maskload_ps(b.add(p * ldb + 8), m1)) };
            step!(p, b0, b1);
        }
    }
    let va = _mm256_set1_ps(alpha);
    if mr == MR && nr == 16 {
        let vb = _mm256_set1_ps(beta);
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: the full MR×16 tile is inside C.
            unsafe {
                let dst = c.add(i * ldc);
                let mut r0 = _mm256_mul_ps(row[0], va);
                let mut r1 = _mm256_mul_ps(row[1], va);
                if beta != 0.0 {
                    r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(dst), r0);
                    r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(dst.add(8)), r1);
                }
                _mm256_storeu_ps(dst, r0);
                _mm256_storeu_ps(dst.add(8), r1);
            }
        }
    } else {
        let mut tile = [0.0f32; 6 * 16]; // MR ≤ 6 rows of 16
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: 16 floats at tile[i·16..].
            unsafe {
                _mm256_storeu_ps(tile.as_mut_ptr().add(i * 16), _mm256_mul_ps(row[0], va));
                _mm256_storeu_ps(tile.as_mut_ptr().add(i * 16 + 8), _mm256_mul_ps(row[1], va));
            }
        }
        // SAFETY: the tile holds 6 rows of 16; the C tile is valid per the contract.
        unsafe { store_edge(&tile, 16, t) };
    }
}

/// Runs a task with the AVX2 kernel on the calling thread.
///
/// # Safety
/// The task is valid (see [`GemmTask`]) and the CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn gemm(t: &GemmTask) {
    // SAFETY: forwarded.
    unsafe { blocking::run::<Avx2>(t) }
}
