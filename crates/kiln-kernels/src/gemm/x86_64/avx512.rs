//! AVX-512 SGEMM: a 12×32 microkernel (24 zmm accumulators, 2 B vectors, 1 broadcast) with masked edges.
//!
//! Tile choice (best of 15, GFLOP/s, 1 thread, same run; register-only zmm FMA peak measured at the same time:
//! ~170): 12×32 KC 256: 1024³ 128, 256³ 126, Dense fwd 68 / bwd-data 57 / bwd-weight 107; 6×64 KC 128: 131, 137,
//! 60 / 66 / 74; 8×48 KC 192: 128, 125, 75 / 66 / 102; 14×32 KC 192: 125, 128, 65 / 58 / 109. Square sizes are
//! within noise of each other; 12×32 is the best compromise for the flagship Dense shapes (M = 32, N = 84).
//!
//! ```text
//!            b[p][0..16]   b[p][16..32]
//! a[p][0]  [ acc[0][0]     acc[0][1]  ]      per p: 2 loads of B, 12 broadcasts of A, 24 FMAs
//!   ...    [   ...           ...      ]      Zen 5: 2 FMA pipes × 4 cycles → ≥ 8 independent chains (24 here)
//! a[p][11] [ acc[11][0]    acc[11][1] ]
//! ```
//! Blocking (KERNELS.md §4, Zen 5: 48 KB L1d, 1 MB L2): a B micro-panel of KC·32·4 B = 32 KB at KC = 256; an A
//! block of MC·KC·4 B = 480 KB at MC = 480.

use std::arch::x86_64::*;

use crate::gemm::blocking::{self, MicroKernel, Tile};
use crate::gemm::task::GemmTask;
use crate::simd::Simd;
use crate::simd::x86_64::Avx512 as Avx512Token;

pub(crate) struct Avx512;

impl MicroKernel for Avx512 {
    const MR: usize = 12;
    const NR: usize = 32;
    const MC: usize = 480;
    const KC: usize = 256;
    const NC: usize = 4096;
    const DIRECT_B: bool = true;
    const DIRECT_A: bool = true;
    // Batch-1 inference through the flagship Dense layer (1×2400·2400×84): the 4-row tile does a third of the
    // 12-row tile's broadcasts and FMAs: `predict/flagship/batch1/avx512` 61.3 → 34.6 µs (criterion medians,
    // same machine, `cargo benches --bench train_step -- predict`).
    const SMALL_MR: usize = 4;

    #[inline(always)]
    unsafe fn pack_transposed(tile: usize, rows: usize, kc: usize, src: *const f32, ld: usize, out: &mut [f32]) {
        debug_assert!(rows <= tile && out.len() >= tile * kc);
        if rows <= Self::SMALL_MR {
            // One to four rows (batch-1 inference): a strided copy beats 16×16 transposes of mostly empty rows
            // (`predict/flagship/batch1/avx512` was ~4 µs slower through the transposes).
            // SAFETY: forwarded contract.
            return unsafe { blocking::pack_transposed_scalar(tile, rows, kc, src, ld, out) };
        }
        // SAFETY: forwarded contract of `MicroKernel::pack_transposed`; the entry point checked AVX-512 support.
        unsafe { pack_transposed(tile, rows, kc, src, ld, out.as_mut_ptr()) }
    }

    #[inline(always)]
    unsafe fn kernel(t: &Tile) {
        // SAFETY: forwarded contract of `MicroKernel::kernel`; the entry point checked AVX-512 support.
        unsafe { ukernel::<{ Self::MR }, { Self::NR / 16 }>(t) }
    }

    #[inline(always)]
    unsafe fn kernel_small(t: &Tile) {
        // SAFETY: forwarded contract of `MicroKernel::kernel_small` (A panels 4 rows tall); AVX-512 checked.
        unsafe { ukernel::<{ Self::SMALL_MR }, { Self::NR / 16 }>(t) }
    }
}

/// Mask of the first `n` lanes (n clamped to 0..=16).
#[inline(always)]
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 { 0xFFFF } else { ((1u32 << n) - 1) as __mmask16 }
}

/// The microkernel for an `MR × 16·NV` tile: `MR·NV` zmm accumulators, `NV` B vectors and one broadcast per row.
///
/// # Safety
/// See [`MicroKernel::kernel`] with `NR = 16·NV`; requires AVX-512F.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
#[inline]
unsafe fn ukernel<const MR: usize, const NV: usize>(t: &Tile) {
    let Tile { k, a, lda, b, ldb, c, ldc, alpha, beta, mr, nr } = *t;
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    // Packed panels are zero-padded to NR columns; B read in place has only `nr` readable columns. A masked load
    // with all lanes set costs the same as a plain one, and masked-off lanes are never accessed (no fault).
    let mut load_mask = [0xFFFF as __mmask16; NV];
    if ldb != 16 * NV {
        for (v, m) in load_mask.iter_mut().enumerate() {
            *m = lanes(nr.saturating_sub(16 * v));
        }
    }
    for p in 0..k {
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            // SAFETY: lanes enabled in load_mask[v] are readable columns of B row p (see the trait's contract).
            *x = unsafe { _mm512_maskz_loadu_ps(load_mask[v], b.add(p * ldb + v * 16)) };
        }
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: a[p·lda + i] is readable for p < k, i < MR (the tile's contract).
            let ai = _mm512_set1_ps(unsafe { *a.add(p * lda + i) });
            for (r, &bx) in row.iter_mut().zip(&bv) {
                *r = _mm512_fmadd_ps(ai, bx, *r);
            }
        }
    }
    let (va, vb) = (_mm512_set1_ps(alpha), _mm512_set1_ps(beta));
    // Constant trip counts keep every `acc` index static, so the accumulators stay in registers.
    for (i, row) in acc.iter().enumerate() {
        if i >= mr {
            break;
        }
        for (v, &x) in row.iter().enumerate() {
            let mask = lanes(nr.saturating_sub(16 * v));
            // SAFETY: row i < mr of the C tile; masked lanes (columns ≥ nr) are neither read nor written.
            unsafe {
                let dst = c.add(i * ldc + 16 * v);
                let mut r = _mm512_mul_ps(x, va);
                if beta != 0.0 {
                    r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, dst), r);
                }
                _mm512_mask_storeu_ps(dst, mask, r);
            }
        }
    }
}

/// Transposes 16 vectors in registers, `r[j][p]` becoming `r[p][j]`: the Simd token's 16 × 16 transpose.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
#[inline]
fn transpose16(r: &mut [__m512; 16]) {
    // SAFETY: this function's target features are the token's ISA.
    unsafe { Avx512Token::new() }.transpose(r);
}

/// `out[p·tile + j] = src[j·ld + p]` for `j < rows`, `p < kc`, zeros in lanes `rows..tile`, through 16×16 register
/// transposes with masked loads and stores at the edges (see [`MicroKernel::pack_transposed`]).
///
/// # Safety
/// `src` addresses `rows` rows of `kc` readable floats with stride `ld`; `out` is valid for `tile·kc` writes;
/// `rows <= tile`; the CPU supports AVX-512F.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
#[inline]
unsafe fn pack_transposed(tile: usize, rows: usize, kc: usize, src: *const f32, ld: usize, out: *mut f32) {
    for j0 in (0..tile).step_by(16) {
        let (nj, store) = (rows.saturating_sub(j0).min(16), lanes(tile - j0));
        for p0 in (0..kc).step_by(16) {
            let np = (kc - p0).min(16);
            // All 16 loads and stores are issued (rows past `nj` with an empty mask, at row 0's address; depth
            // steps past `np` skipped by a branch), so that `r` is indexed by constants only and stays in registers
            // (a `take(nj)` loop spilled it to the stack).
            let mut r = [_mm512_setzero_ps(); 16];
            for (j, x) in r.iter_mut().enumerate() {
                let (mask, row) = if j < nj { (lanes(np), j0 + j) } else { (0, 0) };
                // SAFETY: row < rows (row 0 exists when this block is reached: nj = 0 only if rows ≤ j0, and then
                // the mask is empty and nothing is accessed), floats p0..p0 + np < kc of it; masked-off lanes are
                // not accessed.
                *x = unsafe { _mm512_maskz_loadu_ps(mask, src.add(row * ld + p0)) };
            }
            transpose16(&mut r);
            for (q, &x) in r.iter().enumerate() {
                if q < np {
                    // SAFETY: (p0 + q)·tile + j0 + lane < kc·tile for the stored lanes (lane < tile − j0).
                    unsafe { _mm512_mask_storeu_ps(out.add((p0 + q) * tile + j0), store, x) };
                }
            }
        }
    }
}

/// Runs a task with the AVX-512 kernel on the calling thread.
///
/// # Safety
/// The task is valid (see [`GemmTask`]) and the CPU supports AVX-512 F/BW/DQ/VL and FMA.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
pub(crate) unsafe fn gemm(t: &GemmTask) {
    if let Some(bt) = blocking::takes_short(t, Avx512::NR, SHORT_MIN_M) {
        for r0 in (0..t.m).step_by(16) {
            let slab = t.rows(r0, 16.min(t.m - r0));
            // SAFETY: forwarded (a row slab of a valid task is valid); `takes_short` checked the strides.
            unsafe {
                if bt {
                    gemm_short::<true, 12>(&slab)
                } else if slab.m > SHORT_MIN_M {
                    gemm_short::<false, 12>(&slab)
                } else {
                    blocking::run::<Avx512>(&slab)
                }
            }
        }
        return;
    }
    // SAFETY: forwarded.
    unsafe { blocking::run::<Avx512>(t) }
}

/// A row-contiguous B takes the 16-row slabs only for more rows than this (the 12-row tile of the nest is as fast up
/// to 12: 12×84×2400 42 µs through the nest, 53 µs as one slab). Measured for [`blocking::takes_short`]
/// (minima of 1000–3000 calls, one thread, a throwaway harness; both paths give the same bits):
///
/// | shape (m×n×k) | loop nest | 16-row slabs |
/// |---|---|---|
/// | 16×84×2400 (Dense1 forward, half batch) | 62 µs | 52 µs |
/// | 32×84×2400 (Dense1 forward, batch 32) | 127 µs | 103 µs |
/// | 32×2400×84, Bᵀ (Dense1 backward-data) | 124 µs | 92 µs |
/// | 64×84×2400 | 227–236 µs | 204–212 µs |
/// | 16×10×84 (Dense2 forward) | 0.9 µs | 0.5 µs |
/// | 32×84×10 (k below `SHORT_MIN_K`: stays in the nest) | 0.9 µs | 1.0–1.1 µs |
/// | 32×512×512 (n a multiple of 32: stays in the nest) | 137 µs | 163 µs |
/// | 32×1024×1024 (B of 4 MiB: stays in the nest) | 1036 µs | 1313 µs |
/// | 32×1024×1024, Bᵀ (stays in the nest) | 747 µs | 890 µs |
const SHORT_MIN_M: usize = 12;

/// A product of at most 16 rows, the rows of C in the lanes of one vector. With `BT`, B is a stored Bᵀ
/// (`op(B)[p][j] = b[j·csb + p]`): the flagship Dense backward-data `dY·Wᵀ` (16×2400, depth 84 per data-parallel
/// half batch), for which the loop nest transposes all of W into B panels on every call (40 % of that product's
/// time under perf). Without it, B is row-contiguous (`csb == 1`): the Dense forward `X·W` (16×84, depth 2400),
/// where the nest needs a 12-row and a 4-row tile and three 32-column tiles for 84 columns.
/// For `JB` columns at a time, `acc[j]` holds `C[0..16][j]`: per depth step one load of op(A)ᵀ (packed per
/// `CHAIN`-step slice, 16·CHAIN floats) and `JB` broadcasts of B read in place; a 16×16 register transpose then
/// turns the accumulators into rows of C. `JB` = 12 keeps the twelve row pointers of a stored Bᵀ in registers (16
/// spilled them to the stack; 16×2400×84: 48 µs with 16, 49.6 with 8, 46.1 with 12, against 70.1 through the loop
/// nest — minima of 3000 calls, a throwaway harness); a row-contiguous B addresses its `JB` columns from one
/// pointer, and 12 (84 = 7·12) beat 14 there too (16×84×2400: 51–52 against 54–55 µs).
///
/// Every element is the same FMA chain as in the loop nest (ascending depth, restarted every `CHAIN` steps and
/// accumulated onto C with `beta = 1`, then `alpha·acc + beta·C`), so the result does not depend on which path or
/// which column block computes it.
///
/// # Safety
/// The task is valid (see [`GemmTask`]), `1 ≤ m ≤ 16`, `n, k ≥ 1`, and `rsb == 1` if `BT`, `csb == 1` if not; the
/// CPU supports AVX-512F.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
unsafe fn gemm_short<const BT: bool, const JB: usize>(t: &GemmTask) {
    const CHAIN: usize = blocking::CHAIN;
    let (m, n, k) = (t.m, t.n, t.k);
    let (mut at, pb) = blocking::take_pack();
    if at.len() < 16 * CHAIN {
        at.resize(16 * CHAIN, 0.0);
    }
    let (va, vb) = (_mm512_set1_ps(t.alpha), _mm512_set1_ps(t.beta));
    for p0 in (0..k).step_by(CHAIN) {
        let kk = CHAIN.min(k - p0);
        // op(A)ᵀ for depth p0..p0 + kk: at[q·16 + i] = op(A)[i][p0 + q], zeros in lanes m..16 (one 16-tall A panel).
        // SAFETY: rows 0..m, depth p0..p0 + kk of op(A) are inside the task's A; at holds 16·CHAIN floats; the
        // caller guarantees AVX-512.
        unsafe { blocking::pack_a_panel::<Avx512>(16, m, kk, t.a.add(p0 * t.csa), t.rsa, t.csa, &mut at) };
        // The first slice applies the caller's beta; later ones accumulate onto C.
        let (beta, vbeta) = if p0 == 0 { (t.beta, vb) } else { (1.0, _mm512_set1_ps(1.0)) };
        for j0 in (0..n).step_by(JB) {
            let nj = (n - j0).min(JB);
            // Columns j0..j0 + JB of op(B) from depth p0 (a stored Bᵀ: one pointer per column; a row-contiguous B
            // uses the first only); columns past n reuse column j0 (their lanes are dropped).
            let mut rows = [t.b; JB];
            for (j, r) in rows.iter_mut().enumerate() {
                *r = t.b.wrapping_add((j0 + if j < nj { j } else { 0 }) * t.csb + p0 * t.rsb);
            }
            let mut acc = [_mm512_setzero_ps(); 16];
            for q in 0..kk {
                // SAFETY: at holds 16·CHAIN floats.
                let av = unsafe { _mm512_loadu_ps(at.as_ptr().add(q * 16)) };
                for (j, r) in rows.iter().enumerate() {
                    // SAFETY: column j0 + j < n (or j0) of op(B) at depth p0 + q < k: inside the task's B. A
                    // row-contiguous B addresses all JB columns from the first pointer (one register).
                    let bj = unsafe { if BT { *r.add(q) } else { *rows[0].add(q * t.rsb + j * usize::from(j < nj)) } };
                    acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(bj), av, acc[j]);
                }
            }
            transpose16(&mut acc);
            let col_mask = lanes(nj);
            for (i, &x) in acc.iter().enumerate() {
                if i >= m {
                    break;
                }
                // SAFETY: row i < m, columns j0..j0 + nj of C (masked lanes are not accessed).
                unsafe {
                    let dst = t.c.add(i * t.ldc + j0);
                    let mut r = _mm512_mul_ps(x, va);
                    if beta != 0.0 {
                        r = _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(col_mask, dst), r);
                    }
                    _mm512_mask_storeu_ps(dst, col_mask, r);
                }
            }
        }
    }
    blocking::put_pack(at, pb);
}

/// This ISA's GEMM.
pub(crate) static TABLE: crate::gemm::table::GemmTable = crate::gemm::table::GemmTable {
    name: "gemm/avx512/12x32",
    tile: (<Avx512 as crate::gemm::blocking::MicroKernel>::MR, <Avx512 as crate::gemm::blocking::MicroKernel>::NR),
    run: gemm,
};
