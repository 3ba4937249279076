//! The AVX-512 (F/BW/DQ/VL with FMA) token: 16 lanes.

use std::arch::x86_64::*;

use crate::simd::{
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
