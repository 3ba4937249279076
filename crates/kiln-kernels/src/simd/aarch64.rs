//! The NEON token for the [`Simd`] vocabulary (see `x86_64.rs` for the safety argument).

use std::arch::aarch64::*;

use super::Simd;

/// Advanced SIMD: 4 lanes.
#[derive(Clone, Copy)]
pub(crate) struct Neon(());

impl Neon {
    /// # Safety
    /// The CPU supports NEON.
    #[inline(always)]
    pub(crate) unsafe fn new() -> Self {
        Neon(())
    }
}

impl Simd for Neon {
    type V = float32x4_t;
    const LANES: usize = 4;
    const REGISTERS: usize = 32;
    #[inline(always)]
    fn splat(self, x: f32) -> float32x4_t {
        // SAFETY: the token proves NEON.
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> float32x4_t {
        let s = &s[..4];
        // SAFETY: 4 readable floats; NEON.
        unsafe { vld1q_f32(s.as_ptr()) }
    }
    #[inline(always)]
    unsafe fn load_ptr(self, p: *const f32) -> float32x4_t {
        // SAFETY: the caller guarantees 4 readable floats; the token proves NEON.
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: float32x4_t) {
        let s = &mut s[..4];
        // SAFETY: 4 writable floats; NEON.
        unsafe { vst1q_f32(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    unsafe fn store_ptr(self, p: *mut f32, v: float32x4_t) {
        // SAFETY: the caller guarantees 4 writable floats; the token proves NEON.
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    fn div(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vdivq_f32(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vmaxq_f32(a, b) }
    }
    #[inline(always)]
    fn min(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vminq_f32(a, b) }
    }
    #[inline(always)]
    fn abs(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vabsq_f32(a) }
    }
    #[inline(always)]
    fn sqrt(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vsqrtq_f32(a) }
    }
    #[inline(always)]
    fn select_lt(self, a: float32x4_t, b: float32x4_t, x: float32x4_t, y: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vbslq_f32(vcltq_f32(a, b), x, y) }
    }
    #[inline(always)]
    fn select_nan(self, a: float32x4_t, x: float32x4_t, y: float32x4_t) -> float32x4_t {
        // SAFETY: NEON. `a == a` is false exactly for NaN lanes.
        unsafe { vbslq_f32(vceqq_f32(a, a), y, x) }
    }
    #[inline(always)]
    fn pow2i(self, n: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)))) }
    }
    #[inline(always)]
    fn copysign(self, a: float32x4_t, s: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vbslq_f32(vdupq_n_u32(0x8000_0000), s, a) }
    }
    #[inline(always)]
    fn transpose(self, v: &mut [float32x4_t; 16]) {
        // SAFETY: NEON.
        unsafe {
            // Lane pairs (rows 0/1 and 2/3), then 64-bit halves.
            let (t0, t1) = (vtrn1q_f32(v[0], v[1]), vtrn2q_f32(v[0], v[1]));
            let (t2, t3) = (vtrn1q_f32(v[2], v[3]), vtrn2q_f32(v[2], v[3]));
            let d = |x: float32x4_t| vreinterpretq_f64_f32(x);
            v[0] = vreinterpretq_f32_f64(vtrn1q_f64(d(t0), d(t2)));
            v[1] = vreinterpretq_f32_f64(vtrn1q_f64(d(t1), d(t3)));
            v[2] = vreinterpretq_f32_f64(vtrn2q_f64(d(t0), d(t2)));
            v[3] = vreinterpretq_f32_f64(vtrn2q_f64(d(t1), d(t3)));
        }
    }
}
