//! The validated, pointer-level description of one GEMM (or a disjoint block of one) that ISA entry points run.

use crate::geometry::GemmGeometry;
use crate::precision::Element;

/// `C[0..m, 0..n] = alpha·op(A)·op(B) + beta·C`, A and B of element `T` (C always `f32`), with `op(A)[i][p] = a[i·rsa + p·csa]`,
/// `op(B)[p][j] = b[p·rsb + j·csb]`, `C[i][j] = c[i·ldc + j]`.
///
/// Built only by [`GemmTask::new`] from a validated geometry and slices that passed [`GemmGeometry::check`], or by
/// [`GemmTask::rows`] / [`GemmTask::cols`] as a sub-block of such a task, so every index the loop nest forms is in
/// bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmTask<T: Element = f32> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub beta: f32,
    pub a: *const T,
    pub rsa: usize,
    pub csa: usize,
    pub b: *const T,
    pub rsb: usize,
    pub csb: usize,
    pub c: *mut f32,
    pub ldc: usize,
}

// SAFETY: a task is shared between rayon workers only as disjoint sub-blocks (`rows`/`cols`) of one validated
// problem: A and B are only read, and each worker writes a region of C no other worker touches. The raw pointers
// are derived from slices borrowed (`&`/`&mut`) for the whole parallel call, which outlives every worker.
unsafe impl<T: Element> Send for GemmTask<T> {}
// SAFETY: see `Send`: shared access is read-only for A/B and disjoint for C.
unsafe impl<T: Element> Sync for GemmTask<T> {}

impl<T: Element> GemmTask<T> {
    /// A task over whole slices that passed `g.check(a.len(), b.len(), c.len())`.
    pub(crate) fn new(g: &GemmGeometry, alpha: f32, a: &[T], b: &[T], beta: f32, c: &mut [f32]) -> Self {
        debug_assert!(g.check(a.len(), b.len(), c.len()).is_ok());
        let (rsa, csa) = if g.trans_a().is_transposed() { (1, g.lda()) } else { (g.lda(), 1) };
        let (rsb, csb) = if g.trans_b().is_transposed() { (1, g.ldb()) } else { (g.ldb(), 1) };
        GemmTask {
            m: g.m(),
            n: g.n(),
            k: g.k(),
            alpha,
            beta,
            a: a.as_ptr(),
            rsa,
            csa,
            b: b.as_ptr(),
            rsb,
            csb,
            c: c.as_mut_ptr(),
            ldc: g.ldc(),
        }
    }

    /// Rows `start..start+len` of C (and of op(A)). `start + len <= m`.
    pub(crate) fn rows(&self, start: usize, len: usize) -> Self {
        debug_assert!(start + len <= self.m);
        GemmTask {
            m: len,
            // `wrapping_add` keeps this safe: the offset stays inside the allocation whenever `len > 0`, and the
            // pointer is never dereferenced when `len == 0`.
            a: self.a.wrapping_add(start * self.rsa),
            c: self.c.wrapping_add(start * self.ldc),
            ..*self
        }
    }

    /// Columns `start..start+len` of C (and of op(B)). `start + len <= n`.
    pub(crate) fn cols(&self, start: usize, len: usize) -> Self {
        debug_assert!(start + len <= self.n);
        GemmTask { n: len, b: self.b.wrapping_add(start * self.csb), c: self.c.wrapping_add(start), ..*self }
    }

    /// `2·m·n·k`.
    pub(crate) fn flops(&self) -> u64 {
        2 * self.m as u64 * self.n as u64 * self.k as u64
    }
}
