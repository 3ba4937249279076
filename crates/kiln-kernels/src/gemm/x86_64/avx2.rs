//! AVX2+FMA SGEMM: a 6×16 microkernel (12 ymm accumulators, 2 B vectors, 1 broadcast; BLIS haswell's shape).
//! Edge tiles are computed in full into a stack tile and the valid part combined into C with the same operations
//! (`alpha·acc`, then a fused `beta·c + ·`), so edge and interior elements round identically.
//! Blocking: KC = 256 (B micro-panel 16 KB), MC = 144, NC = 4080 (BLIS `config/haswell`).

use std::arch::x86_64::*;

use crate::gemm::blocking::{self, MicroKernel, Tile, store_edge};
use crate::gemm::task::GemmTask;
use crate::simd::Simd;
use crate::simd::x86_64::Avx2 as Avx2Token;

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
    // `predict/flagship/batch1/avx2` 78.3 → 44.2 µs (criterion medians, `cargo benches --bench
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
    if let Some(bt) = blocking::takes_short(t, Avx2::NR, SHORT_MIN_M) {
        for r0 in (0..t.m).step_by(16) {
            let slab = t.rows(r0, 16.min(t.m - r0));
            // SAFETY: forwarded (a row slab of a valid task is valid); `takes_short` checked the strides; m ≤ 8:
            // one vector of rows, else two.
            unsafe {
                match (bt, slab.m) {
                    (true, ..=8) => gemm_short::<true, 1, 8>(&slab),
                    (true, _) => gemm_short::<true, 2, 6>(&slab),
                    (false, ..=SHORT_MIN_M) => blocking::run::<Avx2>(&slab),
                    (false, ..=8) => gemm_short::<false, 1, 8>(&slab),
                    (false, _) => gemm_short::<false, 2, 6>(&slab),
                }
            }
        }
        return;
    }
    // SAFETY: forwarded.
    unsafe { blocking::run::<Avx2>(t) }
}

/// A row-contiguous B takes the 16-row slabs only for more rows than this. Measured for [`blocking::takes_short`]
/// (minima of 2000 calls, one thread, a throwaway harness; both paths give the same bits):
///
/// | shape (m×n×k) | loop nest | 16-row slabs |
/// |---|---|---|
/// | 1×84×2400 (batch-1 inference: stays in the nest) | 24–29 µs | 50–67 µs |
/// | 4×84×2400 (stays in the nest) | 42–59 µs | 50–69 µs |
/// | 8×84×2400 | 69–90 µs | 54–78 µs |
/// | 12×84×2400 | 100–104 µs | 95 µs |
/// | 16×84×2400 (Dense1 forward, half batch) | 151 µs | 96 µs |
/// | 32×84×2400 (Dense1 forward, batch 32) | 248 µs | 173 µs |
/// | 32×2400×84, Bᵀ (Dense1 backward-data) | 205 µs | 162 µs |
/// | 16×10×84 (Dense2 forward) | 2.0 µs | 0.8 µs |
const SHORT_MIN_M: usize = 7;

/// Rows of a row-contiguous B that [`gemm_short`] prefetches ahead of its walk (a prefetch never faults, so it may
/// point past B's end).
const PREFETCH_ROWS: usize = 12;

/// The AVX2 form of the AVX-512 `gemm_short` (see there): a product of at most `8·NV` rows with a stored Bᵀ (`BT`:
/// the flagship Dense backward-data `dY·Wᵀ`, for which the loop nest transposes all of B into panels) or a
/// row-contiguous B (the Dense forward `X·W`, 84 columns in 16-column tiles), with the rows of C in the lanes of
/// `NV` vectors and B read in place. `acc[j][h]` holds `C[8h..8h + 8][j0 + j]` for `JB` columns
/// (`NV·JB + NV + 1 ≤ 16` registers); 8×8 register transposes turn them into rows of C. Each element is the loop
/// nest's FMA chain (ascending depth, restarted every `CHAIN` steps onto C, then `alpha·acc + beta·C`), so results
/// do not depend on the path.
///
/// # Safety
/// The task is valid (see [`GemmTask`]), `1 ≤ m ≤ 8·NV`, `n, k ≥ 1`, `rsb == 1` if `BT` and `csb == 1` if not,
/// `JB ≤ 8`; the CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_short<const BT: bool, const NV: usize, const JB: usize>(t: &GemmTask) {
    const CHAIN: usize = blocking::CHAIN;
    let (m, n, k) = (t.m, t.n, t.k);
    let rows_a = 8 * NV;
    let (mut at, mut run) = blocking::take_pack();
    if at.len() < rows_a * CHAIN {
        at.resize(rows_a * CHAIN, 0.0);
    }
    // With more than one depth slice, each column tile's running C stays in the accumulators' layout (rows in the
    // lanes) in `run`, folded slice by slice with the operations that would go onto C, and is transposed into C
    // once after the last slice: the Dense forward (K = 2400: 19 slices) transposed and stored every tile 19 times.
    let per_tile = JB * NV * 8;
    let folds = k > CHAIN;
    if folds && run.len() < n.div_ceil(JB) * per_tile {
        run.resize(n.div_ceil(JB) * per_tile, 0.0);
    }
    let lane = |j: usize, n: usize| if j < n { -1 } else { 0 };
    let (va, vb) = (_mm256_set1_ps(t.alpha), _mm256_set1_ps(t.beta));
    for p0 in (0..k).step_by(CHAIN) {
        let kk = CHAIN.min(k - p0);
        let last = p0 + kk == k;
        // op(A)ᵀ for depth p0..p0 + kk: at[q·8NV + i] = op(A)[i][p0 + q], zeros in lanes m..8NV (one A panel).
        // SAFETY: rows 0..m, depth p0..p0 + kk of op(A) are inside the task's A; at holds 8·NV·CHAIN floats; the
        // caller guarantees AVX2 and FMA.
        unsafe { blocking::pack_a_panel::<Avx2>(rows_a, m, kk, t.a.add(p0 * t.csa), t.rsa, t.csa, &mut at) };
        for j0 in (0..n).step_by(JB) {
            let nj = (n - j0).min(JB);
            // Columns j0..j0 + JB of op(B) from depth p0 (a stored Bᵀ: one pointer per column; a row-contiguous B
            // uses the first only); columns past n reuse column j0 (dropped).
            let mut rows = [t.b; JB];
            for (j, r) in rows.iter_mut().enumerate() {
                *r = t.b.wrapping_add((j0 + if j < nj { j } else { 0 }) * t.csb + p0 * t.rsb);
            }
            let mut acc = [[_mm256_setzero_ps(); NV]; JB];
            for q in 0..kk {
                if !BT {
                    // The walk down B's rows (stride `rsb`) outruns the hardware prefetcher.
                    let ahead = rows[0].wrapping_add((q + PREFETCH_ROWS) * t.rsb);
                    _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(JB - 1).cast());
                }
                let mut av = [_mm256_setzero_ps(); NV];
                for (h, x) in av.iter_mut().enumerate() {
                    // SAFETY: at holds 8·NV·CHAIN floats.
                    *x = unsafe { _mm256_loadu_ps(at.as_ptr().add(q * rows_a + 8 * h)) };
                }
                for (j, (row, r)) in acc.iter_mut().zip(&rows).enumerate() {
                    // SAFETY: column j0 + j < n (or j0) of op(B) at depth p0 + q < k: inside the task's B. A
                    // row-contiguous B addresses all JB columns from the first pointer.
                    let w = _mm256_set1_ps(unsafe {
                        if BT { *r.add(q) } else { *rows[0].add(q * t.rsb + j * usize::from(j < nj)) }
                    });
                    for (x, &a) in row.iter_mut().zip(&av) {
                        *x = _mm256_fmadd_ps(w, a, *x);
                    }
                }
            }
            let mask = _mm256_setr_epi32(
                lane(0, nj),
                lane(1, nj),
                lane(2, nj),
                lane(3, nj),
                lane(4, nj),
                lane(5, nj),
                lane(6, nj),
                lane(7, nj),
            );
            // C's new value for this slice, column by column (`y[j][h]`: rows 8h.. of column j0 + j):
            // `alpha·acc`, then `+ beta·C` on the first slice (beta ≠ 0) or `+ 1·C` on later ones — C being the
            // running value in `run` while slices remain.
            let mut y = [[_mm256_setzero_ps(); NV]; JB];
            for (yj, aj) in y.iter_mut().zip(&acc) {
                for (x, &a) in yj.iter_mut().zip(aj) {
                    *x = _mm256_mul_ps(a, va);
                }
            }
            let tile = run.as_mut_ptr().wrapping_add(j0 / JB * per_tile);
            if p0 > 0 {
                for (j, yj) in y.iter_mut().enumerate() {
                    for (h, x) in yj.iter_mut().enumerate() {
                        // SAFETY: later slices exist only when `folds`, and then `run` holds this tile's JB·NV
                        // vectors, written by the previous slice.
                        *x = _mm256_add_ps(unsafe { _mm256_loadu_ps(tile.add((j * NV + h) * 8)) }, *x);
                    }
                }
            } else if t.beta != 0.0 {
                for h in 0..NV {
                    let mut r = [_mm256_setzero_ps(); 16];
                    for (i2, x) in r[..8].iter_mut().enumerate() {
                        let i = 8 * h + i2;
                        if i < m {
                            // SAFETY: row i < m, columns j0..j0 + nj of C.
                            *x = unsafe { load_row(t.c.add(i * t.ldc + j0), nj, mask) };
                        }
                    }
                    transpose8(&mut r);
                    for (yj, &c) in y.iter_mut().zip(&r) {
                        yj[h] = _mm256_fmadd_ps(vb, c, yj[h]);
                    }
                }
            }
            if !last {
                for (j, yj) in y.iter().enumerate() {
                    for (h, &x) in yj.iter().enumerate() {
                        // SAFETY: `folds` holds (not the last slice), so `run` holds this tile's JB·NV vectors.
                        unsafe { _mm256_storeu_ps(tile.add((j * NV + h) * 8), x) };
                    }
                }
                continue;
            }
            for h in 0..NV {
                let mut r = [_mm256_setzero_ps(); 16];
                for (x, yj) in r.iter_mut().zip(&y) {
                    *x = yj[h];
                }
                transpose8(&mut r);
                for (i2, &x) in r[..8].iter().enumerate() {
                    let i = 8 * h + i2;
                    if i >= m {
                        break;
                    }
                    // SAFETY: row i < m, columns j0..j0 + nj of C.
                    unsafe { store_row(t.c.add(i * t.ldc + j0), nj, mask, x) };
                }
            }
        }
    }
    blocking::put_pack(at, run);
}

/// The first `nj ≤ 8` floats at `dst` (the other lanes zero). Whole rows of 6 or 8 columns, which the short path's
/// tiles are, take plain loads: AMD's masked moves are microcoded (on Zen 3 the masked stores of these rows were
/// a fifth of the Dense backward-data product).
///
/// # Safety
/// `nj` floats at `dst` are readable; `mask` enables exactly lanes `0..nj`; the CPU supports AVX2.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load_row(dst: *const f32, nj: usize, mask: __m256i) -> __m256 {
    // SAFETY: the caller's contract: nj floats readable at dst (the 64-bit load is an unaligned one).
    unsafe {
        match nj {
            8 => _mm256_loadu_ps(dst),
            6 => _mm256_set_m128(_mm_castsi128_ps(_mm_loadu_si64(dst.add(4).cast())), _mm_loadu_ps(dst)),
            _ => _mm256_maskload_ps(dst, mask),
        }
    }
}

/// Stores the first `nj ≤ 8` lanes of `y` at `dst` (see [`load_row`] for why rows of 6 and 8 take plain stores).
///
/// # Safety
/// `nj` floats at `dst` are writable; `mask` enables exactly lanes `0..nj`; the CPU supports AVX2.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store_row(dst: *mut f32, nj: usize, mask: __m256i, y: __m256) {
    // SAFETY: the caller's contract: nj floats writable at dst (the 64-bit store is an unaligned one).
    unsafe {
        match nj {
            8 => _mm256_storeu_ps(dst, y),
            6 => {
                _mm_storeu_ps(dst, _mm256_castps256_ps128(y));
                _mm_storeu_si64(dst.add(4).cast(), _mm_castps_si128(_mm256_extractf128_ps::<1>(y)));
            }
            _ => _mm256_maskstore_ps(dst, mask, y),
        }
    }
}

/// Transposes 8 vectors in registers, `r[j][i]` becoming `r[i][j]`: the Simd token's 8 × 8 transpose (vectors
/// 8..16 of its block are left as they are).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn transpose8(r: &mut [__m256; 16]) {
    // SAFETY: this function's target features are the token's ISA.
    unsafe { Avx2Token::new() }.transpose(r);
}

/// This ISA's GEMM.
pub(crate) static TABLE: crate::gemm::table::GemmTable = crate::gemm::table::GemmTable {
    name: "gemm/avx2/6x16",
    tile: (<Avx2 as crate::gemm::blocking::MicroKernel>::MR, <Avx2 as crate::gemm::blocking::MicroKernel>::NR),
    run: gemm,
};
