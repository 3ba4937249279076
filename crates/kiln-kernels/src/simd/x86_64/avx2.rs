//! The AVX2+FMA token: 8 lanes.

use std::arch::x86_64::*;

use crate::simd::{Route, Simd, deinterleave_len, deinterleave_scalar, interleave_len, interleave_scalar};

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
