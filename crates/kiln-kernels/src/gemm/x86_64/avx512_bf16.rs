//! AVX-512 BF16 GEMM: bf16 A and B, f32 C, on `vdpbf16ps` (16 lanes × a pair of depth steps per instruction: twice
//! the products of an f32 FMA at the same issue rate).
//!
//! Panels hold *pairs* along the depth: a 32-bit word `a[p] | a[p+1] << 16` per row (A) or column (B), so one
//! broadcast of A's word and one load of 16 of B's words feed a `vdpbf16ps` that adds `a[p+1]·b[p+1]` and then
//! `a[p]·b[p]` to each f32 accumulator. An odd depth is padded with a zero pair member. Measured on a Zen 5 over
//! 1.6 M lanes, each of those two additions rounds to nearest like an f32 FMA whose product is exact (a bf16
//! product always is): so the widening path (`gemm/widening.rs`), which runs the f32 kernels on the same depth order,
//! gives the same bits whenever no input, product or partial sum is subnormal (`vdpbf16ps` flushes those to zero).
//!
//! The loop nest is the f32 one's (`blocking.rs`) on pairs: a 12×32 register tile (24 zmm accumulators), chains of
//! [`blocking::CHAIN`] depth steps accumulated onto C, K blocks of [`KC`] (a multiple of the chain), so each C
//! element gets the same sequence of roundings as on the widening path and on any thread split.

use std::arch::x86_64::*;
use std::mem::transmute;

use half::bf16;

use crate::gemm::blocking::{self, CHAIN};
use crate::gemm::task::GemmTask;
use crate::simd::Simd;
use crate::simd::x86_64::Avx512 as Avx512Token;

/// Rows of the register tile.
const MR: usize = 12;
/// Columns of the register tile (two zmm of 16 f32).
const NR: usize = 32;
/// Rows of A per packed block.
const MC: usize = 480;
/// Depth per packed block: 512 steps = 256 pairs, a B panel of 256·32·4 B = 32 KB (L1d 48 KB on Zen 5).
const KC: usize = 512;
/// Columns of B per packed block.
const NC: usize = 4096;

const _: () = assert!(KC.is_multiple_of(CHAIN) && CHAIN.is_multiple_of(2));

/// Mask of the first `n` lanes (n clamped to 0..=16).
#[inline(always)]
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 { 0xFFFF } else { ((1u32 << n) - 1) as __mmask16 }
}

/// Packs `lines` rows (A) or columns (B) of depth `kc` into one panel of pair words `out[q·tile + l]`,
/// `q < ⌈kc/2⌉`, `l < tile`, zero in lanes `lines..tile`. Element `(l, p)` is at `src[l·ls + p·ps]`, `ls` or `ps` is 1.
///
/// Lines contiguous (`ls == 1`: row-major B, a stored Aᵀ): two depth rows are widened to 32-bit lanes and
/// interleaved, 16 lines per step. Depth contiguous (`ps == 1`: row-major A, a stored Bᵀ): a pair is already one
/// 32-bit word, so the panel is a 16×16 transpose of words (the f32 transpose; it only moves bits). Through scalar
/// loops these packs took longer than the products of the flagship Dense shapes.
///
/// # Safety
/// Every `(l, p)` with `l < lines`, `p < kc` addresses a readable element; `out` holds `tile·⌈kc/2⌉` words;
/// `lines ≤ tile`; the CPU has AVX-512 F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")]
#[inline]
unsafe fn pack_pairs(tile: usize, lines: usize, kc: usize, src: *const bf16, ls: usize, ps: usize, out: &mut [u32]) {
    let pairs = kc.div_ceil(2);
    let out = &mut out[..tile * pairs];
    if lines < tile {
        out.fill(0);
    }
    let dst = out.as_mut_ptr();
    if ls == 1 {
        for q in 0..pairs {
            let p = 2 * q;
            for l0 in (0..lines).step_by(16) {
                let mask = lanes(lines - l0);
                // SAFETY: lines l0..l0 + 16 (masked to < lines) of depth p and, when p + 1 < kc, p + 1 are
                // readable; the panel row q has `tile` words from q·tile, of which lanes l0.. < lines are written.
                unsafe {
                    let lo = _mm256_maskz_loadu_epi16(mask, src.add(p * ps + l0).cast());
                    let hi = if p + 1 < kc {
                        _mm256_maskz_loadu_epi16(mask, src.add((p + 1) * ps + l0).cast())
                    } else {
                        _mm256_setzero_si256()
                    };
                    let w =
                        _mm512_or_si512(_mm512_cvtepu16_epi32(lo), _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(hi)));
                    _mm512_mask_storeu_epi32(dst.add(q * tile + l0).cast(), mask, w);
                }
            }
        }
    } else {
        // A GemmTask has a unit stride on one side of each operand.
        debug_assert_eq!(ps, 1);
        let whole = kc / 2;
        for l0 in (0..lines).step_by(16) {
            let nl = (lines - l0).min(16);
            for q0 in (0..whole).step_by(16) {
                let nq = (whole - q0).min(16);
                let mut r = [_mm512_setzero_ps(); 16];
                for (j, x) in r.iter_mut().enumerate() {
                    // Lines past nl load nothing (empty mask at line l0's address), keeping `r` in registers.
                    let (mask, line) = if j < nl { (lanes(nq), l0 + j) } else { (0, l0) };
                    // SAFETY: words q0..q0 + nq of line `line` are elements 2q0..2(q0 + nq) ≤ kc of it, readable;
                    // masked-off lanes are not accessed.
                    *x = unsafe { _mm512_maskz_loadu_ps(mask, src.add(line * ls + 2 * q0).cast()) };
                }
                transpose16(&mut r);
                for (q, &x) in r.iter().enumerate().take(nq) {
                    // SAFETY: panel row q0 + q < pairs, lanes l0..l0 + nl ≤ lines ≤ tile.
                    unsafe { _mm512_mask_storeu_ps(dst.add((q0 + q) * tile + l0).cast(), lanes(nl), x) };
                }
            }
        }
        if kc % 2 == 1 {
            for l in 0..lines {
                // SAFETY: element kc − 1 of line l is readable; its partner is the zero padding.
                out[whole * tile + l] = u32::from(unsafe { *src.add(l * ls + kc - 1) }.to_bits());
            }
        }
    }
}

/// Transposes 16 vectors in registers, `r[j][p]` becoming `r[p][j]` (moves bits only).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
#[inline]
fn transpose16(r: &mut [__m512; 16]) {
    // SAFETY: this function's target features are the token's ISA.
    unsafe { Avx512Token::new() }.transpose(r);
}

/// `acc + a[2j+1]·b[2j+1] + a[2j]·b[2j]` per lane j: `vdpbf16ps` on pair words held as integer vectors.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")]
#[inline]
fn dot_pairs(acc: __m512, a: __m512i, b: __m512i) -> __m512 {
    // SAFETY: `__m512bh` is 512 bits of 32 bf16 like `__m512i` (plain data, every bit pattern valid); std::arch has
    // no load or cast into it.
    let (ah, bh) = unsafe { (transmute::<__m512i, __m512bh>(a), transmute::<__m512i, __m512bh>(b)) };
    _mm512_dpbf16_ps(acc, ah, bh)
}

/// Stores `alpha·x + beta·C` into the `mask`ed lanes at `dst` — the f32 kernels' epilogue (`alpha·acc`, then one
/// FMA with `beta·C`; C not read when `beta == 0`), so both paths give the same bits.
///
/// # Safety
/// The lanes of `mask` at `dst` are valid for reads and writes.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")]
#[inline]
unsafe fn store_c(x: __m512, va: __m512, vb: __m512, beta: f32, dst: *mut f32, mask: __mmask16) {
    let mut r = _mm512_mul_ps(x, va);
    if beta != 0.0 {
        // SAFETY: caller's contract; masked-off lanes are not accessed.
        r = _mm512_fmadd_ps(vb, unsafe { _mm512_maskz_loadu_ps(mask, dst) }, r);
    }
    // SAFETY: as above.
    unsafe { _mm512_mask_storeu_ps(dst, mask, r) };
}

/// `C[0..mr, 0..nr] = alpha·acc + beta·C` after `acc` = the pair panels' product over `pairs` words; `R` rows of
/// the panel (of height [`MR`]) are computed, `R ≥ mr`.
///
/// # Safety
/// `a` holds `MR·pairs` words, `b` holds `NR·pairs`; the C tile of `mr × nr` (stride `ldc`) is valid; `mr ≤ R`,
/// `nr ≤ 16·NV`; the CPU has AVX-512 F/BW and BF16.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn ukernel<const R: usize, const NV: usize, const A_ROWS: bool>(
    pairs: usize,
    a: ASource,
    b: BSource,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    mr: usize,
    nr: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    // An in-place A (`A_ROWS`): row i's word of pair q at rows[i] + q (rows past mr repeat row 0; their lanes are
    // discarded). A panel is addressed from one pointer; the mode is a type parameter so that the panel kernel is
    // compiled as if the other did not exist (a run-time match on it cost Dense backward-weight, depth 16, 10 %).
    let (mut rows, panel) = (
        [std::ptr::null::<u32>(); R],
        match a {
            ASource::Panel(words) => words,
            ASource::Rows { .. } => std::ptr::null(),
        },
    );
    if let ASource::Rows { a, lda } = a {
        for (i, r) in rows.iter_mut().enumerate() {
            *r = a.wrapping_add(if i < mr { i * lda } else { 0 }).cast();
        }
    }
    let mut masks = [0u16; NV];
    for (v, m) in masks.iter_mut().enumerate() {
        *m = lanes(nr.saturating_sub(16 * v));
    }
    for q in 0..pairs {
        let mut bv = [_mm512_setzero_si512(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = match b {
                // SAFETY: words q·NR + 16v.. of the B panel (NR words per pair step, 16·NV ≤ NR of them used).
                BSource::Panel(words) => unsafe { _mm512_loadu_si512(words.add(q * NR + v * 16).cast()) },
                // SAFETY: rows 2q and (when below `depth`) 2q + 1 of op(B) from this tile's first column, lanes
                // < nr readable (masked loads never touch the others).
                BSource::Rows { b, ldb, depth } => unsafe {
                    let lo = _mm256_maskz_loadu_epi16(masks[v], b.add(2 * q * ldb + 16 * v).cast());
                    let hi = if 2 * q + 1 < depth {
                        _mm256_maskz_loadu_epi16(masks[v], b.add((2 * q + 1) * ldb + 16 * v).cast())
                    } else {
                        _mm256_setzero_si256()
                    };
                    _mm512_or_si512(_mm512_cvtepu16_epi32(lo), _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(hi)))
                },
            };
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let word = if A_ROWS {
                // SAFETY: pair q of a row of an in-place A, whose depth is even (`ASource::Rows`): elements 2q,
                // 2q + 1 of the row, one unaligned word.
                unsafe { rows[i].add(q).read_unaligned() }
            } else {
                // SAFETY: word q·MR + i of the A panel, i < R ≤ MR.
                unsafe { *panel.add(q * MR + i) }
            };
            let ai = _mm512_set1_epi32(word as i32);
            for (r, &bx) in row.iter_mut().zip(&bv) {
                *r = dot_pairs(*r, ai, bx);
            }
        }
    }
    let (va, vb) = (_mm512_set1_ps(alpha), _mm512_set1_ps(beta));
    for (i, row) in acc.iter().enumerate() {
        if i >= mr {
            break;
        }
        for (v, &x) in row.iter().enumerate() {
            let mask = lanes(nr.saturating_sub(16 * v));
            // SAFETY: row i < mr of the C tile, columns < nr (the mask).
            unsafe { store_c(x, va, vb, beta, c.add(i * ldc + 16 * v), mask) };
        }
    }
}

/// One tile with the narrowest kernel that covers `mr` rows and `nr` columns (a 16-row product, a data-parallel
/// half batch, is a 12-row and a 4-row tile, not two 12-row ones).
///
/// # Safety
/// As [`ukernel`] with `R = MR`, `NV = 2`.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    pairs: usize,
    a: ASource,
    b: BSource,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    mr: usize,
    nr: usize,
) {
    // SAFETY: forwarded; each kernel computes at least mr rows and nr columns of the panels' (zero-padded) tile.
    unsafe {
        let rows = matches!(a, ASource::Rows { .. });
        match (mr, nr > 16, rows) {
            (9.., true, false) => ukernel::<12, 2, false>(pairs, a, b, c, ldc, alpha, beta, mr, nr),
            (5..=8, true, false) => ukernel::<8, 2, false>(pairs, a, b, c, ldc, alpha, beta, mr, nr),
            (_, true, false) => ukernel::<4, 2, false>(pairs, a, b, c, ldc, alpha, beta, mr, nr),
            (9.., false, false) => ukernel::<12, 1, false>(pairs, a, b, c, ldc, alpha, beta, mr, nr),
            (5..=8, false, false) => ukernel::<8, 1, false>(pairs, a, b, c, ldc, alpha, beta, mr, nr),
            (_, false, false) => ukernel::<4, 1, false>(pairs, a, b, c, ldc, alpha, beta, mr, nr),
            (9.., true, true) => ukernel::<12, 2, true>(pairs, a, b, c, ldc, alpha, beta, mr, nr),
            (5..=8, true, true) => ukernel::<8, 2, true>(pairs, a, b, c, ldc, alpha, beta, mr, nr),
            (_, true, true) => ukernel::<4, 2, true>(pairs, a, b, c, ldc, alpha, beta, mr, nr),
            (9.., false, true) => ukernel::<12, 1, true>(pairs, a, b, c, ldc, alpha, beta, mr, nr),
            (5..=8, false, true) => ukernel::<8, 1, true>(pairs, a, b, c, ldc, alpha, beta, mr, nr),
            (_, false, true) => ukernel::<4, 1, true>(pairs, a, b, c, ldc, alpha, beta, mr, nr),
        }
    }
}

/// Where a tile's B comes from: a packed panel of pair words, or a row-contiguous op(B) read in place (rows of
/// `ldb` bf16 from the tile's first column, `depth` rows left in this chain slice), its pairs interleaved in
/// registers. In place, a short product (the Dense forward, M = 16 or 32) saves packing all of B for a few A
/// tiles; the interleave costs four more vector operations per 32 columns and pair step.
#[derive(Clone, Copy)]
enum BSource {
    Panel(*const u32),
    Rows { b: *const bf16, ldb: usize, depth: usize },
}

/// Where a tile's A comes from: a packed panel of pair words ([`MR`] per pair step), or a row-major op(A) of even
/// depth read in place (rows of `lda` bf16 from the tile's first row and this slice's first pair), each pair one
/// unaligned word. In place, the Dense forward (M = 16, K = 2400) saves packing A on every call.
#[derive(Clone, Copy)]
enum ASource {
    Panel(*const u32),
    Rows { a: *const bf16, lda: usize },
}

/// Largest `m` for which a row-contiguous B is read in place instead of packed.
const DIRECT_B_MAX_M: usize = 64;

/// Runs a task on the calling thread.
///
/// # Safety
/// The task is valid (see [`GemmTask`]) and the CPU supports AVX-512 F/BW/DQ/VL, FMA and AVX-512 BF16.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")]
pub(crate) unsafe fn gemm(t: &GemmTask<bf16>) {
    if t.m == 0 || t.n == 0 {
        return;
    }
    if t.k == 0 {
        // SAFETY: forwarded.
        return unsafe { blocking::scale_c(t.m, t.n, t.c, t.ldc, t.beta) };
    }
    if t.rsb == 1 && t.csb != 1 && t.m <= SHORT_BT_MAX_M {
        for r0 in (0..t.m).step_by(16) {
            // SAFETY: a row slab of a valid task is valid; B is a stored Bᵀ; the caller guarantees the ISA.
            unsafe { gemm_short_bt::<12>(&t.rows(r0, 16.min(t.m - r0))) };
        }
        return;
    }
    let (mut pa, mut pb) = blocking::take_pack();
    let kc_max = KC.min(t.k);
    let a_words = MC.min(t.m).div_ceil(MR) * MR * kc_max.div_ceil(2);
    let b_words = NC.min(t.n).div_ceil(NR) * NR * kc_max.div_ceil(2);
    if pa.len() < a_words {
        pa.resize(a_words, 0.0);
    }
    if pb.len() < b_words {
        pb.resize(b_words, 0.0);
    }
    {
        // The f32 buffers hold the pair words (same size and alignment; only moved, never used as floats).
        let pa: &mut [u32] = bytemuck::cast_slice_mut(&mut pa[..]);
        let pb: &mut [u32] = bytemuck::cast_slice_mut(&mut pb[..]);
        for jc in (0..t.n).step_by(NC) {
            let nc = (t.n - jc).min(NC);
            for pc in (0..t.k).step_by(KC) {
                let kc = (t.k - pc).min(KC);
                let pairs = kc.div_ceil(2);
                let beta = if pc == 0 { t.beta } else { 1.0 };
                // With one A block, each B panel is packed right before its sweep of A tiles (still in L1).
                let direct = t.csb == 1 && t.m <= DIRECT_B_MAX_M;
                let per_panel = !direct && t.m <= MC;
                if !direct && !per_panel {
                    for (jr, out) in pb.chunks_exact_mut(NR * pairs).take(nc.div_ceil(NR)).enumerate() {
                        let j0 = jc + jr * NR;
                        // SAFETY: columns j0..j0 + cols, depth pc..pc + kc of op(B) are inside B; out holds
                        // NR·pairs words.
                        unsafe {
                            pack_pairs(NR, (t.n - j0).min(NR), kc, t.b.add(pc * t.rsb + j0 * t.csb), t.csb, t.rsb, out)
                        };
                    }
                }
                // Row-major A of even depth in a short product: read in place (every pair a whole word).
                let direct_a = t.csa == 1 && t.k.is_multiple_of(2) && t.m <= DIRECT_B_MAX_M;
                for ic in (0..t.m).step_by(MC) {
                    let mc = (t.m - ic).min(MC);
                    for (ir, out) in
                        pa.chunks_exact_mut(MR * pairs).take(if direct_a { 0 } else { mc.div_ceil(MR) }).enumerate()
                    {
                        let i0 = ic + ir * MR;
                        // SAFETY: rows i0..i0 + rows, depth pc..pc + kc of op(A) are inside A; out holds MR·pairs
                        // words.
                        unsafe {
                            pack_pairs(MR, (t.m - i0).min(MR), kc, t.a.add(i0 * t.rsa + pc * t.csa), t.rsa, t.csa, out)
                        };
                    }
                    for jr in (0..nc).step_by(NR) {
                        let nr = (nc - jr).min(NR);
                        let b_panel = if per_panel {
                            // SAFETY: as for the whole-block pack; pb holds NR·pairs words.
                            unsafe {
                                pack_pairs(NR, nr, kc, t.b.add(pc * t.rsb + (jc + jr) * t.csb), t.csb, t.rsb, pb)
                            };
                            0
                        } else {
                            jr * pairs
                        };
                        // Rows pc.., columns jc + jr.. of op(B) in place (`wrapping_add`: only offset here).
                        let b_rows = t.b.wrapping_add(pc * t.rsb + jc + jr);
                        for ir in (0..mc).step_by(MR) {
                            let mr = (mc - ir).min(MR);
                            for q0 in (0..pairs).step_by(CHAIN / 2) {
                                let n_pairs = (CHAIN / 2).min(pairs - q0);
                                // SAFETY: the A panel of rows ir.. holds MR·pairs words from ir·pairs, the B panel
                                // NR·pairs from b_panel; pair q0 starts q0 steps in; the C tile (ic+ir, jc+jr) of
                                // mr × nr is inside C; the entry point's caller guarantees the ISA.
                                unsafe {
                                    tile(
                                        n_pairs,
                                        if direct_a {
                                            ASource::Rows {
                                                a: t.a.wrapping_add((ic + ir) * t.rsa + pc + 2 * q0),
                                                lda: t.rsa,
                                            }
                                        } else {
                                            ASource::Panel(pa.as_ptr().add(ir * pairs + q0 * MR))
                                        },
                                        if direct {
                                            BSource::Rows {
                                                b: b_rows.wrapping_add(2 * q0 * t.rsb),
                                                ldb: t.rsb,
                                                depth: kc - 2 * q0,
                                            }
                                        } else {
                                            BSource::Panel(pb.as_ptr().add(b_panel + q0 * NR))
                                        },
                                        t.c.add((ic + ir) * t.ldc + jc + jr),
                                        t.ldc,
                                        t.alpha,
                                        if q0 == 0 { beta } else { 1.0 },
                                        mr,
                                        nr,
                                    )
                                };
                            }
                        }
                    }
                }
            }
        }
    }
    blocking::put_pack(pa, pb);
}

/// Largest `m` whose product with a stored Bᵀ runs as 16-row slabs of [`gemm_short_bt`].
const SHORT_BT_MAX_M: usize = 64;

/// A product of at most 16 rows with a stored Bᵀ (`op(B)[p][j] = b[j·csb + p]`): the Dense backward-data `dY·Wᵀ`,
/// whose B panels the loop nest would pack from all of W on every call. A stored Bᵀ already holds each column's
/// depth pairs as adjacent bf16, one 32-bit word: here the rows of C are the lanes, `acc[j]` holds `C[0..16][j]`,
/// and each pair step is one load of A's pair words (packed per chain slice) and `JB` broadcasts of B's words read
/// in place; a 16×16 transpose then turns the accumulators into rows of C. Every element gets the loop nest's
/// operations in the nest's order (pairs ascending, restarted every [`CHAIN`] steps onto C with `beta = 1`, the
/// same epilogue), so the path never changes results.
///
/// # Safety
/// The task is valid (see [`GemmTask`]), `m ≤ 16`, `n, k ≥ 1`, `rsb == 1`; the CPU has AVX-512 F/BW and BF16.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")]
unsafe fn gemm_short_bt<const JB: usize>(t: &GemmTask<bf16>) {
    let (m, n, k) = (t.m, t.n, t.k);
    let (mut at, pb) = blocking::take_pack();
    if at.len() < 16 * CHAIN / 2 {
        at.resize(16 * CHAIN / 2, 0.0);
    }
    {
        let at: &mut [u32] = bytemuck::cast_slice_mut(&mut at[..]);
        let (va, vb) = (_mm512_set1_ps(t.alpha), _mm512_set1_ps(t.beta));
        for p0 in (0..k).step_by(CHAIN) {
            let kk = CHAIN.min(k - p0);
            // A's pair words for depth p0..p0 + kk: at[q·16 + i], zero in lanes m..16 and in an odd depth's partner.
            // SAFETY: rows 0..m, depth p0..p0 + kk of op(A) are inside A; `at` holds 16·CHAIN/2 words.
            unsafe { pack_pairs(16, m, kk, t.a.add(p0 * t.csa), t.rsa, t.csa, at) };
            let (beta, vbeta) = if p0 == 0 { (t.beta, vb) } else { (1.0, _mm512_set1_ps(1.0)) };
            for j0 in (0..n).step_by(JB) {
                let nj = (n - j0).min(JB);
                // Column j0 + j of op(B) from depth p0 (columns past n repeat column j0; their lanes are dropped).
                let mut cols = [t.b; JB];
                for (j, col) in cols.iter_mut().enumerate() {
                    *col = t.b.wrapping_add((j0 + if j < nj { j } else { 0 }) * t.csb + p0);
                }
                let mut acc = [_mm512_setzero_ps(); 16];
                for q in 0..kk.div_ceil(2) {
                    // SAFETY: `at` holds 16 words per pair step q < ⌈kk/2⌉.
                    let av = unsafe { _mm512_loadu_si512(at.as_ptr().add(q * 16).cast()) };
                    for (x, &col) in acc.iter_mut().zip(&cols) {
                        let word = if 2 * q + 1 < kk {
                            // SAFETY: elements 2q and 2q + 1 < kk of the column (depth < k): one unaligned word.
                            unsafe { col.add(2 * q).cast::<u32>().read_unaligned() }
                        } else {
                            // An odd depth's last element alone (its partner may lie past B): a zero partner, as
                            // packed. SAFETY: element kk − 1 of the column is inside B.
                            u32::from(unsafe { *col.add(2 * q) }.to_bits())
                        };
                        *x = dot_pairs(*x, av, _mm512_set1_epi32(word as i32));
                    }
                }
                transpose16(&mut acc);
                let mask = lanes(nj);
                for (i, &x) in acc.iter().enumerate().take(m) {
                    // SAFETY: row i < m, columns j0..j0 + nj of C (the mask).
                    unsafe { store_c(x, va, vbeta, beta, t.c.add(i * t.ldc + j0), mask) };
                }
            }
        }
    }
    blocking::put_pack(at, pb);
}

/// This ISA's bf16 GEMM (used only where the CPU has AVX-512 BF16; see `precision.rs`).
pub(crate) static TABLE: crate::gemm::table::GemmTable<bf16> =
    crate::gemm::table::GemmTable { name: "gemm_bf16/avx512bf16/12x32", tile: (MR, NR), run: gemm };
