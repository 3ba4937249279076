//! Per-thread scratch buffers for the convolution kernels: taken from a thread-local pool and returned on drop,
//! so that after the first call of a given size a convolution allocates nothing.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use crate::buffer::AlignedVec;

thread_local! {
    static POOL: RefCell<Vec<AlignedVec>> = const { RefCell::new(Vec::new()) };
}

/// A scratch buffer of `len` floats starting on a 64-byte boundary, returned to this thread's pool when dropped.
///
/// The alignment matters: the planar kernels' "aligned" vector loads and stores (dy rows, output planes) would
/// otherwise each straddle two cache lines — `Vec<f32>` from the system allocator is only 16-byte aligned — which
/// doubled the load-port work of the backward-filter reduction.
pub(crate) struct Scratch {
    buf: AlignedVec,
    len: usize,
}

impl Scratch {
    /// A buffer of `len` floats with unspecified (but initialised) contents.
    pub(crate) fn take(len: usize) -> Self {
        // Best fit: the smallest pooled buffer that is large enough, else the largest one (which then grows).
        let mut buf = POOL
            .with(|p| {
                let mut p = p.borrow_mut();
                let fit = (0..p.len()).filter(|&i| p[i].len() >= len).min_by_key(|&i| p[i].len());
                let pick = fit.or_else(|| (0..p.len()).max_by_key(|&i| p[i].len()));
                pick.map(|i| p.swap_remove(i))
            })
            .unwrap_or_default();
        // Buffers only grow (never shrink, which would zero their tail), so taking a smaller size is free.
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        Scratch { buf, len }
    }

    /// A buffer of `len` zeros.
    pub(crate) fn zeroed(len: usize) -> Self {
        let mut s = Scratch::take(len);
        s.fill(0.0);
        s
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.buf);
        let _ = POOL.try_with(|p| p.borrow_mut().push(v));
    }
}

impl Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

/// An output slice shared between threads through its address, from which each thread takes disjoint `&mut`
/// ranges (images, tiles, blocks); see the SAFETY note at each use.
pub(crate) struct SharedOut {
    ptr: usize,
    len: usize,
}

impl SharedOut {
    pub(crate) fn new(data: &mut [f32]) -> Self {
        SharedOut { ptr: data.as_mut_ptr() as usize, len: data.len() }
    }
    /// # Safety
    /// Concurrent callers ask for disjoint ranges, and the slice `new` was given outlives every use.
    #[allow(clippy::mut_from_ref)] // the point of the type: disjoint `&mut` ranges handed to threads
    pub(crate) unsafe fn range(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start.checked_add(len).is_some_and(|e| e <= self.len), "range inside the output");
        // SAFETY: in bounds (asserted); disjointness and lifetime are the caller's contract.
        unsafe { std::slice::from_raw_parts_mut((self.ptr as *mut f32).add(start), len) }
    }
}

/// The first error reported by any of the threads of a split (errors there mean a broken internal invariant,
/// but they are returned, not swallowed).
pub(crate) struct FirstError(std::sync::Mutex<Option<crate::KernelError>>);

impl FirstError {
    pub(crate) fn new() -> Self {
        FirstError(std::sync::Mutex::new(None))
    }
    /// Keeps `r`'s error if it is the first; returns whether `r` was `Ok`.
    pub(crate) fn record(&self, r: crate::Result<()>) -> bool {
        match r {
            Ok(()) => true,
            Err(e) => {
                self.0.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                false
            }
        }
    }
    pub(crate) fn into_result(self) -> crate::Result<()> {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner()).map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::Scratch;

    #[test]
    fn scratch_is_cache_line_aligned_and_reused() {
        for len in [1, 15, 16, 17, 1000, 4097, 3] {
            let s = Scratch::take(len);
            assert_eq!(s.len(), len);
            assert_eq!(s.as_ptr() as usize % 64, 0, "len {len}");
        }
        let z = Scratch::zeroed(300);
        assert!(z.iter().all(|&v| v == 0.0));
    }
}
