//! AVX-512 SGEMM: a 12×32 microkernel (24 zmm accumulators, 2 B vectors, 1 broadcast) with masked edge stores.
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

use crate::gemm::blocking::{self, MicroKernel};
use crate::gemm::task::GemmTask;

pub(crate) struct Avx512;

impl MicroKernel for Avx512 {
    const MR: usize = 12;
    const NR: usize = 32;
    const MC: usize = 480;
    const KC: usize = 256;
    const NC: usize = 4096;

    #[inline(always)]
    unsafe fn kernel(
        k: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        alpha: f32,
        beta: f32,
        mr: usize,
        nr: usize,
    ) {
        // SAFETY: forwarded contract of `MicroKernel::kernel`; the entry point checked AVX-512 support.
        unsafe { ukernel_12x32(k, a, b, c, ldc, alpha, beta, mr, nr) }
    }
}

/// Mask of the first `n` lanes (n clamped to 0..=16).
#[inline(always)]
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 { 0xFFFF } else { ((1u32 << n) - 1) as __mmask16 }
}

/// # Safety
/// See [`MicroKernel::kernel`]; requires AVX-512F.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn ukernel_12x32(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    mr: usize,
    nr: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; 12];
    for p in 0..k {
        // SAFETY: b holds 32·k floats, a holds 12·k floats (packed panels).
        let (b0, b1) = unsafe { (_mm512_loadu_ps(b.add(p * 32)), _mm512_loadu_ps(b.add(p * 32 + 16))) };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: p·12 + i < 12·k.
            let ai = _mm512_set1_ps(unsafe { *a.add(p * 12 + i) });
            row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
        }
    }
    let (m0, m1) = (lanes(nr), lanes(nr.saturating_sub(16)));
    let (va, vb) = (_mm512_set1_ps(alpha), _mm512_set1_ps(beta));
    for (i, row) in acc.iter().enumerate().take(mr) {
        // SAFETY: row i < mr of the C tile; masked lanes (columns ≥ nr) are neither read nor written.
        unsafe {
            let dst = c.add(i * ldc);
            let mut r0 = _mm512_mul_ps(row[0], va);
            let mut r1 = _mm512_mul_ps(row[1], va);
            if beta != 0.0 {
                r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, dst), r0);
                r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, dst.add(16)), r1);
            }
            _mm512_mask_storeu_ps(dst, m0, r0);
            _mm512_mask_storeu_ps(dst.add(16), m1, r1);
        }
    }
}

/// Runs a task with the AVX-512 kernel on the calling thread.
///
/// # Safety
/// The task is valid (see [`GemmTask`]) and the CPU supports AVX-512 F/BW/DQ/VL and FMA.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
pub(crate) unsafe fn gemm(t: &GemmTask) {
    // SAFETY: forwarded.
    unsafe { blocking::run::<Avx512>(t) }
}
