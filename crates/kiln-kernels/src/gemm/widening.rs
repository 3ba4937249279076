//! bf16 GEMM on CPUs without bf16 arithmetic: the operands widened to f32 (exact) and the ISA's f32 GEMM.
//!
//! The widened copies put each pair of depth steps in the order `vdpbf16ps` and Arm's `BFDOT` accumulate them
//! (`p + 1`, then `p`; an odd depth gets a zero partner first), so this path computes every element with the same
//! f32 roundings as the native kernels (`x86_64/avx512_bf16.rs`): the results are bitwise equal unless an input,
//! product or partial sum is subnormal, which the native instructions flush to zero. The f32 GEMM's own guarantees
//! (any thread split gives the same bits) carry over. The cost over a native kernel is the two widened copies,
//! made once per call on the calling thread, and twice the bytes in the f32 kernel's panels.

use std::cell::RefCell;

use half::bf16;

use super::Threads;
use crate::buffer::AlignedVec;
use crate::dispatch::Kernels;
use crate::error::{KernelError, Result};
use crate::geometry::GemmGeometry;

thread_local! {
    /// The widened copies of A and B, reused across calls on each thread.
    static WIDE: RefCell<(AlignedVec, AlignedVec)> = const { RefCell::new((AlignedVec::new(), AlignedVec::new())) };
}

/// The position of depth step `p` in the widened copies: the two members of each pair swapped.
#[inline(always)]
fn slot(p: usize) -> usize {
    p ^ 1
}

#[inline(always)]
fn widen(x: bf16) -> f32 {
    f32::from_bits(u32::from(x.to_bits()) << 16)
}

/// `C = alpha·op(A)·op(B) + beta·C` for bf16 A and B through `k`'s f32 GEMM.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    k: &Kernels,
    threads: Threads,
    g: &GemmGeometry,
    alpha: f32,
    a: &[bf16],
    b: &[bf16],
    beta: f32,
    c: &mut [f32],
) -> Result<()> {
    const OP: &str = "gemm";
    g.check(a.len(), b.len(), c.len())?;
    let (m, n, depth) = (g.m(), g.n(), g.k());
    let padded = depth + depth % 2;
    let (rsa, csa) = if g.trans_a().is_transposed() { (1, g.lda()) } else { (g.lda(), 1) };
    let (rsb, csb) = if g.trans_b().is_transposed() { (1, g.ldb()) } else { (g.ldb(), 1) };
    let a_len = m.checked_mul(padded).ok_or(KernelError::Overflow { op: OP, what: "widened A" })?;
    let b_len = n.checked_mul(padded).ok_or(KernelError::Overflow { op: OP, what: "widened B" })?;
    let (mut aw, mut bw) = WIDE.with(|w| std::mem::take(&mut *w.borrow_mut()));
    let grown =
        aw.try_resize(a_len, 0.0).map_err(|_| KernelError::Alloc { op: OP, what: "widened A", elements: a_len });
    let grown = grown.and_then(|()| {
        bw.try_resize(b_len, 0.0).map_err(|_| KernelError::Alloc { op: OP, what: "widened B", elements: b_len })
    });
    let result = grown.and_then(|()| {
        // op(A)' row-major m × padded, op(B)' row-major padded × n; the odd depth's partner slot is zero.
        for (i, row) in aw.chunks_exact_mut(padded.max(1)).enumerate().take(if depth == 0 { 0 } else { m }) {
            if depth % 2 == 1 {
                row[depth - 1] = 0.0;
            }
            for p in 0..depth {
                row[slot(p)] = widen(a[i * rsa + p * csa]);
            }
        }
        if depth % 2 == 1 {
            bw[(depth - 1) * n..depth * n].fill(0.0);
        }
        for p in 0..depth {
            let row = &mut bw[slot(p) * n..(slot(p) + 1) * n];
            if csb == 1 {
                for (d, &s) in row.iter_mut().zip(&b[p * rsb..p * rsb + n]) {
                    *d = widen(s);
                }
            } else {
                for (j, d) in row.iter_mut().enumerate() {
                    *d = widen(b[p * rsb + j * csb]);
                }
            }
        }
        let wide = GemmGeometry::spec(m, n, padded).ldc(g.ldc()).build()?;
        k.gemm::<f32>(threads, &wide, alpha, &aw[..a_len], &bw[..b_len], beta, c)
    });
    WIDE.with(|w| *w.borrow_mut() = (aw, bw));
    result
}
