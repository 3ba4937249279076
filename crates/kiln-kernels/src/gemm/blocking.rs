//! The BLIS/Goto loop nest (Goto & van de Geijn, TOMS 2008; Van Zee & van de Geijn, TOMS 2015), generic over the
//! microkernel, and the packing routines. Everything here is `#[inline(always)]` so that it is compiled inside each
//! ISA's `#[target_feature]` entry point together with that ISA's microkernel.
//!
//! ```text
//! for jc in 0..n step NC            B block  KC×NC  packed into NR-wide panels  (L3)
//!   for pc in 0..k step KC          beta for the first pc block, 1 after
//!     for ic in 0..m step MC        A block  MC×KC  packed into MR-tall panels  (L2)
//!       for jr in 0..nc step NR
//!         for ir in 0..mc step MR   microkernel: C[ir.., jr..] (MR×NR in registers)
//! ```
//! The K blocking depends only on `k`, and each C element is produced by the same sequence of operations whatever
//! tile (full or edge) or thread computes it, so results do not depend on how C is split across threads.

use std::cell::RefCell;

use super::task::GemmTask;
use crate::buffer::AlignedVec;

/// A register-blocked microkernel and its cache blocking.
pub(crate) trait MicroKernel {
    /// Rows of the register tile.
    const MR: usize;
    /// Columns of the register tile.
    const NR: usize;
    /// Rows of A per packed block (a multiple of MR).
    const MC: usize;
    /// Depth per packed block.
    const KC: usize;
    /// Columns of B per packed block (a multiple of NR).
    const NC: usize;

    /// `C[0..mr, 0..nr] = alpha·(A_panel · B_panel) + beta·C` (C not read when `beta == 0`).
    ///
    /// # Safety
    /// `a` holds `MR·k` floats (`a[p·MR + i]`), `b` holds `NR·k` floats (`b[p·NR + j]`) starting 64-byte aligned;
    /// `c` is valid for reads and writes of rows `0..mr` (stride `ldc`) and columns `0..nr`; `mr <= MR`,
    /// `nr <= NR`; the CPU supports the kernel's ISA.
    #[allow(clippy::too_many_arguments)]
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
    );
}

thread_local! {
    /// Packing buffers, reused across calls on each thread (no allocation after the first call of a size).
    static PACK: RefCell<(AlignedVec, AlignedVec)> = const { RefCell::new((AlignedVec::new(), AlignedVec::new())) };
}

/// Packs rows `0..mc` × depth `0..kc` of op(A) (from `a`, strides `rsa`, `csa`) into `mr_tile`-tall panels, zero-padding
/// the last panel.
///
/// # Safety
/// `a` addresses an `mc × kc` block of op(A) within its slice.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn pack_a(mr_tile: usize, mc: usize, kc: usize, a: *const f32, rsa: usize, csa: usize, dst: &mut [f32]) {
    for (panel, out) in dst.chunks_exact_mut(mr_tile * kc).take(mc.div_ceil(mr_tile)).enumerate() {
        let i0 = panel * mr_tile;
        let rows = (mc - i0).min(mr_tile);
        for p in 0..kc {
            let col = &mut out[p * mr_tile..(p + 1) * mr_tile];
            for (i, v) in col.iter_mut().enumerate() {
                // SAFETY: i0 + i < mc and p < kc: inside the block the caller vouches for.
                *v = if i < rows { unsafe { *a.add((i0 + i) * rsa + p * csa) } } else { 0.0 };
            }
        }
    }
}

/// Packs depth `0..kc` × columns `0..nc` of op(B) into `nr_tile`-wide panels, zero-padding the last panel.
///
/// # Safety
/// `b` addresses a `kc × nc` block of op(B) within its slice.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn pack_b(nr_tile: usize, kc: usize, nc: usize, b: *const f32, rsb: usize, csb: usize, dst: &mut [f32]) {
    for (panel, out) in dst.chunks_exact_mut(nr_tile * kc).take(nc.div_ceil(nr_tile)).enumerate() {
        let j0 = panel * nr_tile;
        let cols = (nc - j0).min(nr_tile);
        for p in 0..kc {
            let row = &mut out[p * nr_tile..(p + 1) * nr_tile];
            if csb == 1 && cols == nr_tile {
                // SAFETY: nr_tile contiguous elements of row p starting at column j0 lie inside the block.
                let src = unsafe { std::slice::from_raw_parts(b.add(p * rsb + j0), nr_tile) };
                row.copy_from_slice(src);
            } else {
                for (j, v) in row.iter_mut().enumerate() {
                    // SAFETY: p < kc and j0 + j < nc.
                    *v = if j < cols { unsafe { *b.add(p * rsb + (j0 + j) * csb) } } else { 0.0 };
                }
            }
        }
    }
}

/// Runs a whole task on the calling thread.
///
/// # Safety
/// The task's pointers and strides are valid for its `m × n × k` problem (see [`GemmTask`]) and the CPU supports
/// `K`'s ISA.
#[inline(always)]
pub(crate) unsafe fn run<K: MicroKernel>(t: &GemmTask) {
    if t.m == 0 || t.n == 0 {
        return;
    }
    if t.k == 0 {
        // C = beta·C; with beta = 0, C is overwritten without being read.
        for i in 0..t.m {
            // SAFETY: row i of C has n valid elements.
            let row = unsafe { std::slice::from_raw_parts_mut(t.c.add(i * t.ldc), t.n) };
            if t.beta == 0.0 {
                row.fill(0.0);
            } else {
                row.iter_mut().for_each(|v| *v *= t.beta);
            }
        }
        return;
    }
    PACK.with(|bufs| {
        let mut bufs = bufs.borrow_mut();
        let (pa, pb) = &mut *bufs;
        let kc_max = K::KC.min(t.k);
        let a_len = K::MC.min(t.m).div_ceil(K::MR) * K::MR * kc_max;
        let b_len = K::NC.min(t.n).div_ceil(K::NR) * K::NR * kc_max;
        if pa.len() < a_len {
            pa.resize(a_len, 0.0);
        }
        if pb.len() < b_len {
            pb.resize(b_len, 0.0);
        }
        for jc in (0..t.n).step_by(K::NC) {
            let nc = (t.n - jc).min(K::NC);
            for pc in (0..t.k).step_by(K::KC) {
                let kc = (t.k - pc).min(K::KC);
                let beta = if pc == 0 { t.beta } else { 1.0 };
                // SAFETY: rows pc..pc+kc and columns jc..jc+nc of op(B) are inside the task's B.
                unsafe { pack_b(K::NR, kc, nc, t.b.add(pc * t.rsb + jc * t.csb), t.rsb, t.csb, pb) };
                for ic in (0..t.m).step_by(K::MC) {
                    let mc = (t.m - ic).min(K::MC);
                    // SAFETY: rows ic..ic+mc and depth pc..pc+kc of op(A) are inside the task's A.
                    unsafe { pack_a(K::MR, mc, kc, t.a.add(ic * t.rsa + pc * t.csa), t.rsa, t.csa, pa) };
                    for jr in (0..nc).step_by(K::NR) {
                        let nr = (nc - jr).min(K::NR);
                        for ir in (0..mc).step_by(K::MR) {
                            let mr = (mc - ir).min(K::MR);
                            // SAFETY: the packed panels hold MR·kc and NR·kc floats; the C tile at
                            // (ic+ir, jc+jr) of size mr × nr is inside C; the entry point checked the ISA.
                            unsafe {
                                K::kernel(
                                    kc,
                                    pa.as_ptr().add(ir * kc),
                                    pb.as_ptr().add(jr * kc),
                                    t.c.add((ic + ir) * t.ldc + jc + jr),
                                    t.ldc,
                                    t.alpha,
                                    beta,
                                    mr,
                                    nr,
                                )
                            };
                        }
                    }
                }
            }
        }
    });
}
