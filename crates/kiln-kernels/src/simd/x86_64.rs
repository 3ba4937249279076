//! AVX-512 and AVX2+FMA tokens for the [`Simd`] vocabulary.
//!
//! Every method calls `std::arch` intrinsics in an `unsafe` block justified by the token: a token is created only
//! by `unsafe fn new`, whose callers (the `#[target_feature]` entry points reached through the dispatch table)
//! guarantee the CPU has the ISA. Loads and stores go through slices indexed first (`s[..LANES]`), so they are
//! bounds-checked.

use std::arch::x86_64::*;

use super::{
    Route, Simd, deinterleave_by_rows, deinterleave_len, deinterleave_scalar, interleave_by_rows, interleave_len,
    interleave_scalar, rows_len,
};

/// AVX-512 F/BW/DQ/VL with FMA: 16 lanes.
#[derive(Clone, Copy)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// # Safety
    /// The CPU supports AVX-512 F/BW/DQ/VL and FMA.
    #[inline(always)]
    pub(crate) unsafe fn new() -> Self {
        Avx512(())
    }
    /// The first two rounds of a 16 × 16 transpose: pairs of rows (ps) and pairs of pairs (pd) of `v`.
    #[inline(always)]
    fn pairs(self, v: &[__m512; 16]) -> [__m512; 16] {
        // SAFETY: AVX-512F.
        unsafe {
            let mut t = [_mm512_setzero_ps(); 16];
            for i in 0..8 {
                t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
            }
            let mut u = [_mm512_setzero_ps(); 16];
            for q in 0..4 {
                let (a0, a1, b0, b1) = (t[4 * q], t[4 * q + 1], t[4 * q + 2], t[4 * q + 3]);
                let pd = |x: __m512| _mm512_castps_pd(x);
                u[4 * q] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(a0), pd(b0)));
                u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(a0), pd(b0)));
                u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(a1), pd(b1)));
                u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(a1), pd(b1)));
            }
            u
        }
    }
}

/// AVX2 with FMA: 8 lanes.
#[derive(Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[inline(always)]
    pub(crate) unsafe fn new() -> Self {
        Avx2(())
    }
    /// The first two rounds of an 8 × 8 transpose: pairs of rows (ps), then pairs of pairs (shuffle) of `v`.
    #[inline(always)]
    fn pairs(self, v: &[__m256; 16]) -> [__m256; 8] {
        // SAFETY: AVX.
        unsafe {
            let mut t = [_mm256_setzero_ps(); 8];
            for i in 0..4 {
                t[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
                t[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
            }
            let mut u = [_mm256_setzero_ps(); 8];
            for h in 0..2 {
                u[4 * h] = _mm256_shuffle_ps::<0x44>(t[4 * h], t[4 * h + 2]);
                u[4 * h + 1] = _mm256_shuffle_ps::<0xee>(t[4 * h], t[4 * h + 2]);
                u[4 * h + 2] = _mm256_shuffle_ps::<0x44>(t[4 * h + 1], t[4 * h + 3]);
                u[4 * h + 3] = _mm256_shuffle_ps::<0xee>(t[4 * h + 1], t[4 * h + 3]);
            }
            u
        }
    }
}

impl Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;
    const REGISTERS: usize = 32;
    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m512 {
        let s = &s[..16];
        // SAFETY: 16 readable floats; AVX-512F.
        unsafe { _mm512_loadu_ps(s.as_ptr()) }
    }
    #[inline(always)]
    unsafe fn load_ptr(self, p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable floats; the token proves AVX-512F.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: __m512) {
        let s = &mut s[..16];
        // SAFETY: 16 writable floats; AVX-512F.
        unsafe { _mm512_storeu_ps(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    unsafe fn store_ptr(self, p: *mut f32, v: __m512) {
        // SAFETY: the caller guarantees 16 writable floats; the token proves AVX-512F.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    fn prefetch(self, p: *const f32) {
        // SAFETY: prefetcht0 is a hint (SSE, baseline on x86_64): it never faults and writes nothing.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F.
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512F.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F.
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F.
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    fn abs(self, a: __m512) -> __m512 {
        // SAFETY: AVX-512F.
        unsafe { _mm512_abs_ps(a) }
    }
    #[inline(always)]
    fn sqrt(self, a: __m512) -> __m512 {
        // SAFETY: AVX-512F.
        unsafe { _mm512_sqrt_ps(a) }
    }
    #[inline(always)]
    fn select_lt(self, a: __m512, b: __m512, x: __m512, y: __m512) -> __m512 {
        // SAFETY: AVX-512F.
        unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b), y, x) }
    }
    #[inline(always)]
    fn select_nan(self, a: __m512, x: __m512, y: __m512) -> __m512 {
        // SAFETY: AVX-512F.
        unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a), y, x) }
    }
    #[inline(always)]
    fn pow2i(self, n: __m512) -> __m512 {
        // SAFETY: AVX-512F.
        unsafe {
            let e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(e))
        }
    }
    #[inline(always)]
    fn copysign(self, a: __m512, s: __m512) -> __m512 {
        // SAFETY: AVX-512F (AVX-512DQ for the float logic ops).
        unsafe {
            let sign = _mm512_set1_ps(-0.0);
            _mm512_or_ps(_mm512_andnot_ps(sign, a), _mm512_and_ps(sign, s))
        }
    }
    #[inline(always)]
    fn scale2(self, y: __m512, n: __m512) -> __m512 {
        // vscalefps: y·2^⌊n⌋ with a single rounding, subnormal results included (no FTZ/DAZ in Rust code).
        // SAFETY: AVX-512F.
        unsafe { _mm512_scalef_ps(y, n) }
    }
    #[inline(always)]
    fn transpose(self, v: &mut [__m512; 16]) {
        // Four rounds of 16 shuffles: pairs of rows (ps), pairs of pairs (pd) — vector 4q + e then holds element
        // e of each 128-bit quarter of rows 4(q mod 4) .. +4 — then two rounds of quarter shuffles.
        let u = self.pairs(v);
        // SAFETY: AVX-512F.
        unsafe {
            let mut t = [_mm512_setzero_ps(); 16];
            // u[4q + e], quarter k: element 4k + e of rows 4q .. 4q + 4.
            for h in 0..2 {
                for e in 0..4 {
                    let (a, b) = (u[8 * h + e], u[8 * h + 4 + e]);
                    // Quarters 0, 2 (elements e, 8 + e) and 1, 3 (4 + e, 12 + e) of rows 8h .. 8h + 8.
                    t[8 * h + e] = _mm512_shuffle_f32x4::<0x88>(a, b);
                    t[8 * h + 4 + e] = _mm512_shuffle_f32x4::<0xdd>(a, b);
                }
            }
            for e in 0..8 {
                v[e] = _mm512_shuffle_f32x4::<0x88>(t[e], t[8 + e]);
                v[8 + e] = _mm512_shuffle_f32x4::<0xdd>(t[e], t[8 + e]);
            }
        }
    }
    #[inline(always)]
    unsafe fn load_transposed(self, row: impl Fn(usize) -> *const f32, v: &mut [__m512; 16]) {
        // The 256-bit round by the loads: w[j] = (row a, floats 0..8 | row b, floats 0..8) and w[8 + j] = the same
        // of floats 8..16, as one load and one insert from memory each (a load port and port 0 or 5, where the
        // shuffles below take port 5 only). Rows are read in the order σ(i) (bits 2 and 3 of i swapped) so that
        // after the ps and pd rounds one round of quarter shuffles finishes the transpose: 48 shuffles instead of
        // 64 (a stand-alone probe, 16 × 16 blocks in L1: ~24 → ~19 ns per block).
        let sigma = |i: usize| (i & 3) | ((i >> 3) & 1) << 2 | ((i >> 2) & 1) << 3;
        // SAFETY: AVX-512F; every row(i) .. row(i) + 16 is readable (the caller's guarantee), and the reads are
        // its two halves.
        unsafe {
            let mut w = [_mm512_setzero_ps(); 16];
            for j in 0..8 {
                let (a, b) = (row(sigma(j)), row(sigma(j + 8)));
                let half = |p: *const f32, q: *const f32| {
                    let lo = _mm512_castps_pd(_mm512_castps256_ps512(_mm256_loadu_ps(p)));
                    _mm512_castpd_ps(_mm512_insertf64x4::<1>(lo, _mm256_castps_pd(_mm256_loadu_ps(q))))
                };
                w[j] = half(a, b);
                w[8 + j] = half(a.add(8), b.add(8));
            }
            let u = self.pairs(&w);
            for h in 0..2 {
                for e in 0..4 {
                    let (a, b) = (u[8 * h + e], u[8 * h + 4 + e]);
                    v[8 * h + e] = _mm512_shuffle_f32x4::<0x88>(a, b);
                    v[8 * h + 4 + e] = _mm512_shuffle_f32x4::<0xdd>(a, b);
                }
            }
        }
    }
    #[inline(always)]
    fn deinterleave<const C: usize>(self, src: &[f32], dst: &mut [f32], stride: usize) {
        if !(2..=8).contains(&C) {
            return deinterleave_scalar::<C>(src, dst, stride);
        }
        // One row: the block loop of `deinterleave_rows` (its blocks never cross a row end then).
        let n = deinterleave_len::<C>(src, dst, stride);
        deinterleave_blocks512::<C>(self, src, n, dst, n, stride);
    }
    #[inline(always)]
    fn deinterleave_rows<const C: usize>(
        self,
        src: &[f32],
        width: usize,
        dst: &mut [f32],
        row_stride: usize,
        stride: usize,
    ) {
        let rows = rows_len::<C>(src.len(), width, dst.len(), row_stride, stride);
        if !(2..=8).contains(&C) || (rows > 1 && width < 16) {
            return deinterleave_by_rows::<_, C>(self, src, width, dst, row_stride, stride);
        }
        deinterleave_blocks512::<C>(self, src, width, dst, row_stride, stride);
    }
    #[inline(always)]
    fn interleave_rows<const C: usize>(
        self,
        src: &[f32],
        row_stride: usize,
        stride: usize,
        add: [f32; C],
        width: usize,
        dst: &mut [f32],
    ) {
        let rows = rows_len::<C>(dst.len(), width, src.len(), row_stride, stride);
        if !(2..=8).contains(&C) || (rows > 1 && width < 16) {
            return interleave_by_rows::<_, C>(self, src, row_stride, stride, add, width, dst);
        }
        interleave_blocks512::<C>(self, src, row_stride, stride, add, width, dst);
    }
    #[inline(always)]
    fn interleave<const C: usize>(self, src: &[f32], stride: usize, add: [f32; C], dst: &mut [f32]) {
        if !(2..=8).contains(&C) {
            return interleave_scalar::<C>(src, stride, add, dst);
        }
        // One row: the block loop of `interleave_rows`.
        let n = interleave_len::<C>(src, stride, dst);
        interleave_blocks512::<C>(self, src, n, stride, add, n, dst);
    }
}

/// The block loop of [`Avx512`]'s `deinterleave_rows` (and, with one row, `deinterleave`), kept out of the trait
/// methods so that no `#[inline(always)]` call cycle forms through the per-row fallback (LLVM then left the
/// intrinsics out of line: 7× slower). The token proves AVX-512; the sizes are checked here (`rows_len`), as is
/// the condition that a block spans at most two rows.
#[inline(always)]
fn deinterleave_blocks512<const C: usize>(
    _: Avx512,
    src: &[f32],
    width: usize,
    dst: &mut [f32],
    row_stride: usize,
    stride: usize,
) {
    let rows = rows_len::<C>(src.len(), width, dst.len(), row_stride, stride);
    assert!(width >= 16 || rows <= 1, "a block spans at most two rows");
    // The image as one run of pixels in blocks of 16 (a 20-pixel row no longer costs a full and a 4-lane
    // block): a block's lanes go to at most two planar rows (width ≥ 16, or a single row), by two masked
    // stores; the last block is partial (masked loads of its `r·C` floats).
    let t = &Pairs512::<C>::PLANAR;
    let n = rows * width;
    for p0 in (0..n).step_by(16) {
        let r = (n - p0).min(16);
        let (row, col) = (p0 / width, p0 % width);
        // Lanes 0..k stay in `row`, k..r start the next row.
        let k = r.min(width - col);
        // Full blocks (r = 16 pixels; k = 16 in one row) take plain loads and stores: masked ones of all 16 lanes
        // cost this kernel ~40 % on conv1's backward-filter dy (24-pixel rows).
        // SAFETY: AVX-512F (the token). Loads touch only src[p0·C .. (p0 + r)·C] (masked lanes do not fault; a full
        // block's plain loads read exactly those 16·C floats). Lanes 0..k are stored to row `row`, columns
        // col..col + k ≤ width; lanes k..r (only when row + 1 < rows, since p0 + r ≤ n) to row + 1, columns
        // 0..r − k, through the address of that row minus k, which is at or after column col + k ≤ width ≤
        // row_stride of row `row`: in bounds, and rows_len checked the last row of the last channel.
        unsafe {
            let mut v = [_mm512_setzero_ps(); C];
            if r == 16 {
                for (j, vj) in v.iter_mut().enumerate() {
                    *vj = _mm512_loadu_ps(src.as_ptr().add(p0 * C + j * 16));
                }
            } else {
                for (j, vj) in v.iter_mut().enumerate() {
                    let live = (r * C).saturating_sub(j * 16).min(16);
                    *vj = _mm512_maskz_loadu_ps(lanes16(live), src.as_ptr().add(p0 * C + j * 16));
                }
            }
            let out = route512(&v, t);
            if k == 16 {
                for (c, o) in out.iter().enumerate() {
                    _mm512_storeu_ps(dst.as_mut_ptr().add(c * stride + row * row_stride + col), *o);
                }
            } else {
                for (c, o) in out.iter().enumerate() {
                    let base = dst.as_mut_ptr().add(c * stride + row * row_stride);
                    _mm512_mask_storeu_ps(base.add(col), lanes16(k), *o);
                    if k < r {
                        _mm512_mask_storeu_ps(base.add(row_stride - k), lanes16(r) & !lanes16(k), *o);
                    }
                }
            }
        }
    }
}

/// The block loop of [`Avx512`]'s `interleave_rows` (and, with one row, `interleave`); see
/// [`deinterleave_blocks512`].
#[inline(always)]
fn interleave_blocks512<const C: usize>(
    _: Avx512,
    src: &[f32],
    row_stride: usize,
    stride: usize,
    add: [f32; C],
    width: usize,
    dst: &mut [f32],
) {
    let rows = rows_len::<C>(dst.len(), width, src.len(), row_stride, stride);
    assert!(width >= 16 || rows <= 1, "a block spans at most two rows");
    let t = &Pairs512::<C>::INTERLEAVED;
    let n = rows * width;
    for p0 in (0..n).step_by(16) {
        let r = (n - p0).min(16);
        let (row, col) = (p0 / width, p0 % width);
        let k = r.min(width - col);
        // SAFETY: as in `deinterleave_blocks512` with loads and stores swapped (plain ones for full blocks): masked
        // loads of row `row` (columns col..col + k) and of row + 1 (columns 0..r − k, through its address minus k,
        // in bounds), masked stores of dst[p0·C .. (p0 + r)·C] (sizes checked by rows_len).
        unsafe {
            let mut v = [_mm512_setzero_ps(); C];
            for (c, vc) in v.iter_mut().enumerate() {
                let base = src.as_ptr().add(c * stride + row * row_stride);
                let x = if k == 16 {
                    _mm512_loadu_ps(base.add(col))
                } else {
                    let x = _mm512_maskz_loadu_ps(lanes16(k), base.add(col));
                    if k < r { _mm512_mask_loadu_ps(x, lanes16(r) & !lanes16(k), base.add(row_stride - k)) } else { x }
                };
                *vc = _mm512_add_ps(x, _mm512_set1_ps(add[c]));
            }
            let out = route512(&v, t);
            if r == 16 {
                for (j, o) in out.iter().enumerate() {
                    _mm512_storeu_ps(dst.as_mut_ptr().add(p0 * C + j * 16), *o);
                }
            } else {
                for (j, o) in out.iter().enumerate() {
                    let live = (r * C).saturating_sub(j * 16).min(16);
                    _mm512_mask_storeu_ps(dst.as_mut_ptr().add(p0 * C + j * 16), lanes16(live), *o);
                }
            }
        }
    }
}

impl Simd for Avx2 {
    type V = __m256;
    const LANES: usize = 8;
    const REGISTERS: usize = 16;
    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        // SAFETY: the token proves AVX2.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m256 {
        let s = &s[..8];
        // SAFETY: 8 readable floats; AVX.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }
    #[inline(always)]
    unsafe fn load_ptr(self, p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable floats; the token proves AVX.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: __m256) {
        let s = &mut s[..8];
        // SAFETY: 8 writable floats; AVX.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    unsafe fn store_ptr(self, p: *mut f32, v: __m256) {
        // SAFETY: the caller guarantees 8 writable floats; the token proves AVX.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    fn prefetch(self, p: *const f32) {
        // SAFETY: prefetcht0 is a hint (SSE, baseline on x86_64): it never faults and writes nothing.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    fn abs(self, a: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), a) }
    }
    #[inline(always)]
    fn sqrt(self, a: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_sqrt_ps(a) }
    }
    #[inline(always)]
    fn select_lt(self, a: __m256, b: __m256, x: __m256, y: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_LT_OQ>(a, b)) }
    }
    #[inline(always)]
    fn select_nan(self, a: __m256, x: __m256, y: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a)) }
    }
    #[inline(always)]
    fn pow2i(self, n: __m256) -> __m256 {
        // SAFETY: AVX2.
        unsafe {
            let e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e))
        }
    }
    #[inline(always)]
    fn copysign(self, a: __m256, s: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe {
            let sign = _mm256_set1_ps(-0.0);
            _mm256_or_ps(_mm256_andnot_ps(sign, a), _mm256_and_ps(sign, s))
        }
    }
    #[inline(always)]
    fn transpose(self, v: &mut [__m256; 16]) {
        // u[4h + e], half k: element 4k + e of rows 4h .. 4h + 4.
        let u = self.pairs(v);
        // SAFETY: AVX.
        unsafe {
            for e in 0..4 {
                v[e] = _mm256_permute2f128_ps::<0x20>(u[e], u[4 + e]);
                v[4 + e] = _mm256_permute2f128_ps::<0x31>(u[e], u[4 + e]);
            }
        }
    }
    #[inline(always)]
    unsafe fn load_transposed(self, row: impl Fn(usize) -> *const f32, v: &mut [__m256; 16]) {
        // The 128-bit round by the loads (one load and one insert from memory per vector: a load port and any
        // vector ALU port, where the shuffles take port 5): w[j] = (row j, floats 0..4 | row 4 + j, floats 0..4)
        // and w[4 + j] = the same of floats 4..8; the ps and shuffle rounds then leave the transpose in order.
        // SAFETY: AVX; every row(i) .. row(i) + 8 is readable (the caller's guarantee), and the reads are its two
        // halves.
        unsafe {
            let mut w = [_mm256_setzero_ps(); 16];
            for j in 0..4 {
                let (a, b) = (row(j), row(4 + j));
                let half = |p: *const f32, q: *const f32| {
                    _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(_mm_loadu_ps(p)), _mm_loadu_ps(q))
                };
                w[j] = half(a, b);
                w[4 + j] = half(a.add(4), b.add(4));
            }
            v[..8].copy_from_slice(&self.pairs(&w));
        }
    }
    #[inline(always)]
    fn deinterleave<const C: usize>(self, src: &[f32], dst: &mut [f32], stride: usize) {
        let n = deinterleave_len::<C>(src, dst, stride);
        if !(2..=8).contains(&C) {
            return deinterleave_scalar::<C>(src, dst, stride);
        }
        let t = &Singles256::<C>::PLANAR;
        let blocks = n / 8;
        for b in 0..blocks {
            // SAFETY: pixels b·8 .. b·8 + 8 < n: the C input vectors lie in src and each output row in dst (sizes
            // checked by deinterleave_len).
            unsafe {
                let mut v = [_mm256_setzero_ps(); C];
                for (k, vk) in v.iter_mut().enumerate() {
                    *vk = _mm256_loadu_ps(src.as_ptr().add((b * C + k) * 8));
                }
                let out = route256(&v, t);
                for (c, o) in out.iter().enumerate() {
                    _mm256_storeu_ps(dst.as_mut_ptr().add(c * stride + b * 8), *o);
                }
            }
        }
        deinterleave_scalar::<C>(&src[blocks * 8 * C..], &mut dst[blocks * 8..], stride);
    }
    #[inline(always)]
    fn interleave<const C: usize>(self, src: &[f32], stride: usize, add: [f32; C], dst: &mut [f32]) {
        let n = interleave_len::<C>(src, stride, dst);
        if !(2..=8).contains(&C) {
            return interleave_scalar::<C>(src, stride, add, dst);
        }
        let t = &Singles256::<C>::INTERLEAVED;
        let blocks = n / 8;
        for b in 0..blocks {
            // SAFETY: as in `deinterleave`, with the roles of src and dst swapped (checked by interleave_len).
            unsafe {
                let mut v = [_mm256_setzero_ps(); C];
                for (c, vc) in v.iter_mut().enumerate() {
                    *vc = _mm256_add_ps(_mm256_loadu_ps(src.as_ptr().add(c * stride + b * 8)), _mm256_set1_ps(add[c]));
                }
                let out = route256(&v, t);
                for (k, o) in out.iter().enumerate() {
                    _mm256_storeu_ps(dst.as_mut_ptr().add((b * C + k) * 8), *o);
                }
            }
        }
        interleave_scalar::<C>(&src[blocks * 8..], stride, add, &mut dst[blocks * 8 * C..]);
    }
}

/// The mask of the first `n ≤ 16` lanes.
#[inline(always)]
fn lanes16(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as u16
}

/// AVX-512 form of a [`Route`]: per output vector `o` and input pair `q` (vectors `2q`, `2q + 1`), the
/// `vpermt2ps` index of every lane taken from that pair and the mask of those lanes.
struct Pairs512<const C: usize>;

/// Per (output vector, input pair): lane indices into the pair, and the lanes taken from it.
struct PairTable {
    idx: [[[i32; 16]; 8]; 16],
    mask: [[u16; 8]; 16],
}

const fn pair_table(c: usize, planar: bool) -> PairTable {
    let r = Route::new(c, 16, planar);
    let mut t = PairTable { idx: [[[0; 16]; 8]; 16], mask: [[0; 8]; 16] };
    if c > 16 {
        return t; // never applied: the callers take the scalar path for C > 8
    }
    let mut o = 0;
    while o < c {
        let mut m = 0;
        while m < 16 {
            let (sv, q) = (r.src[o][m], r.src[o][m] / 2);
            t.idx[o][q][m] = (r.lane[o][m] + 16 * (sv % 2)) as i32;
            t.mask[o][q] |= 1 << m;
            m += 1;
        }
        o += 1;
    }
    t
}

impl<const C: usize> Pairs512<C> {
    const PLANAR: PairTable = pair_table(C, true);
    const INTERLEAVED: PairTable = pair_table(C, false);
}

/// Applies a routing table to `C ≤ 16` AVX-512 vectors: one `vpermt2ps` per contributing input pair, merged by
/// mask. The table is a compile-time constant, so the loops and the `mask == 0` tests fold away.
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn route512<const C: usize>(v: &[__m512; C], t: &PairTable) -> [__m512; C] {
    // SAFETY: AVX-512F (the caller's contract); index vectors are read from 16-element arrays. (Plain loops, not
    // `array::from_fn`: a closure body would be compiled without the target features and call the intrinsics.)
    unsafe {
        let mut out = [_mm512_setzero_ps(); C];
        for (o, r) in out.iter_mut().enumerate() {
            for q in 0..C.div_ceil(2) {
                let m = t.mask[o][q];
                if m == 0 {
                    continue;
                }
                let idx = _mm512_loadu_si512(t.idx[o][q].as_ptr().cast());
                let p = _mm512_permutex2var_ps(v[2 * q], idx, v[(2 * q + 1).min(C - 1)]);
                *r = if m == u16::MAX { p } else { _mm512_mask_mov_ps(*r, m, p) };
            }
        }
        out
    }
}

/// AVX2 form of a [`Route`]: per output vector and input vector, the `vpermps` index of every lane taken from that
/// input and the blend mask of those lanes (all ones where taken).
struct Singles256<const C: usize>;

/// Per (output vector, input vector): lane indices, the lanes taken (−1) or not (0), and the same as a bit mask.
struct SingleTable {
    idx: [[[i32; 8]; 8]; 8],
    mask: [[[i32; 8]; 8]; 8],
    lanes: [[u8; 8]; 8],
}

const fn single_table(c: usize, planar: bool) -> SingleTable {
    let r = Route::new(if c > 8 { 8 } else { c }, 8, planar);
    let mut t = SingleTable { idx: [[[0; 8]; 8]; 8], mask: [[[0; 8]; 8]; 8], lanes: [[0; 8]; 8] };
    if c > 8 {
        return t; // never applied: the callers take the scalar path for C > 8
    }
    let mut o = 0;
    while o < c {
        let mut m = 0;
        while m < 8 {
            let sv = r.src[o][m];
            t.idx[o][sv][m] = r.lane[o][m] as i32;
            t.mask[o][sv][m] = -1;
            t.lanes[o][sv] |= 1 << m;
            m += 1;
        }
        o += 1;
    }
    t
}

impl<const C: usize> Singles256<C> {
    const PLANAR: SingleTable = single_table(C, true);
    const INTERLEAVED: SingleTable = single_table(C, false);
}

/// Applies a routing table to `C ≤ 8` AVX2 vectors: one `vpermps` per contributing input, merged by `vblendvps`.
///
/// # Safety
/// AVX2.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // index loops over constant bounds unroll fully; the iterator form did not
unsafe fn route256<const C: usize>(v: &[__m256; C], t: &SingleTable) -> [__m256; C] {
    // SAFETY: AVX2 (the caller's contract); index and mask vectors are read from 8-element arrays. Plain loops, as
    // in `route512`.
    unsafe {
        let mut out = [_mm256_setzero_ps(); C];
        for o in 0..C {
            for k in 0..C {
                let m = t.lanes[o][k];
                if m == 0 {
                    continue;
                }
                let p = _mm256_permutevar8x32_ps(v[k], _mm256_loadu_si256(t.idx[o][k].as_ptr().cast()));
                out[o] = if m == u8::MAX {
                    p
                } else {
                    _mm256_blendv_ps(out[o], p, _mm256_castsi256_ps(_mm256_loadu_si256(t.mask[o][k].as_ptr().cast())))
                };
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{deinterleave_scalar, interleave_scalar};

    /// Every pixel count from 0 to 40 (whole blocks, partial blocks, tails only), several strides, channel counts
    /// with and without a vector route, against the scalar definition; floats outside the written range must stay
    /// untouched (NaN sentinels).
    fn check<S: Simd, const C: usize>(s: S) {
        for n in 0..=40 {
            for extra in [0, 3, 17] {
                let stride = n + extra;
                let src: Vec<f32> = (0..n * C).map(|i| i as f32 * 0.5 - 7.0).collect();
                let mut want = vec![f32::NAN; C * stride + 5];
                let mut got = want.clone();
                deinterleave_scalar::<C>(&src, &mut want, stride);
                s.deinterleave::<C>(&src, &mut got, stride);
                assert_eq!(
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "deinterleave C={C} n={n} stride={stride}"
                );
                let add: [f32; C] = std::array::from_fn(|c| c as f32 * 100.0);
                let planes: Vec<f32> = (0..C * stride).map(|i| i as f32 * 0.25 + 1.0).collect();
                let mut want = vec![f32::NAN; n * C];
                let mut got = want.clone();
                interleave_scalar::<C>(&planes, stride, add, &mut want);
                s.interleave::<C>(&planes, stride, add, &mut got);
                assert_eq!(want, got, "interleave C={C} n={n} stride={stride}");
            }
        }
    }

    /// The multi-row forms against row-by-row scalar conversion: widths below, at and above one block, row
    /// strides with and without gaps, NaN sentinels in the gaps.
    fn check_rows<S: Simd, const C: usize>(s: S) {
        for width in [1, 5, 15, 16, 17, 20, 24, 31, 33, 40] {
            for rows in 0..=4 {
                for gap in [0, 4, 9] {
                    let rs = width + gap;
                    let stride = rows * rs + 3;
                    let src: Vec<f32> = (0..rows * width * C).map(|i| i as f32 - 3.5).collect();
                    let mut want = vec![f32::NAN; C * stride + 2];
                    let mut got = want.clone();
                    for r in 0..rows {
                        deinterleave_scalar::<C>(&src[r * width * C..][..width * C], &mut want[r * rs..], stride);
                    }
                    s.deinterleave_rows::<C>(&src, width, &mut got, rs, stride);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&want), bits(&got), "deinterleave_rows C={C} w={width} rows={rows} rs={rs}");
                    let add: [f32; C] = std::array::from_fn(|c| c as f32 * 10.0);
                    let planes: Vec<f32> = (0..C * stride).map(|i| i as f32 * 0.5).collect();
                    let mut want = vec![f32::NAN; rows * width * C];
                    let mut got = want.clone();
                    for r in 0..rows {
                        let out = &mut want[r * width * C..][..width * C];
                        interleave_scalar::<C>(&planes[r * rs..], stride, add, out);
                    }
                    s.interleave_rows::<C>(&planes, rs, stride, add, width, &mut got);
                    assert_eq!(want, got, "interleave_rows C={C} w={width} rows={rows} rs={rs}");
                }
            }
        }
    }

    /// The shuffle transposes against the definition (lane i of vector j = lane j of row i); vectors past
    /// `LANES` are left alone.
    fn check_transpose<S: Simd>(s: S) {
        let l = S::LANES;
        let rows: Vec<[f32; 16]> = (0..16).map(|i| std::array::from_fn(|j| (i * 16 + j) as f32)).collect();
        let mut v: [S::V; 16] = std::array::from_fn(|i| s.load(&rows[i]));
        s.transpose(&mut v);
        for (j, vj) in v.iter().enumerate() {
            let mut got = [0.0f32; 16];
            s.store(&mut got, *vj);
            let want: Vec<f32> = (0..l).map(|i| if j < l { rows[i][j] } else { rows[j][i] }).collect();
            assert_eq!(&got[..l], &want[..], "vector {j}");
        }
        // The same block loaded from rows 37 floats apart (unaligned, not contiguous) by load_transposed, whose
        // σ row order and half-vector inserts must give the same vectors; vectors past LANES are left alone.
        let flat: Vec<f32> = (0..16 * 37).map(|k| if k % 37 < 16 { rows[k / 37][k % 37] } else { f32::NAN }).collect();
        let mut w: [S::V; 16] = std::array::from_fn(|i| s.load(&rows[i]));
        // SAFETY: row i reads floats 37·i .. 37·i + LANES of `flat` (16 · 37 floats).
        unsafe { s.load_transposed(|i| flat.as_ptr().add(37 * i), &mut w) };
        for (j, (wj, vj)) in w.iter().zip(&v).enumerate() {
            let (mut got, mut want) = ([0.0f32; 16], [0.0f32; 16]);
            s.store(&mut got, *wj);
            s.store(&mut want, *vj);
            assert_eq!(got, want, "load_transposed vector {j}");
        }
    }

    fn all<S: Simd>(s: S) {
        check_transpose(s);
        check_rows::<S, 1>(s);
        check_rows::<S, 3>(s);
        check_rows::<S, 6>(s);
        check_rows::<S, 8>(s);
        check_rows::<S, 9>(s);
        check::<S, 1>(s);
        check::<S, 2>(s);
        check::<S, 3>(s);
        check::<S, 4>(s);
        check::<S, 5>(s);
        check::<S, 6>(s);
        check::<S, 7>(s);
        check::<S, 8>(s);
        check::<S, 9>(s);
        check::<S, 16>(s);
    }

    #[test]
    fn avx512_interleave_matches_scalar() {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: AVX-512F detected just above.
            all(unsafe { Avx512::new() });
        }
    }

    #[test]
    fn avx2_interleave_matches_scalar() {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA detected just above.
            all(unsafe { Avx2::new() });
        }
    }
}
