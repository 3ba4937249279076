//! Per-thread scratch buffers for the convolution kernels: taken from a thread-local pool and returned on drop,
//! so that after the first call of a given size a convolution allocates nothing.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

thread_local! {
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A scratch buffer of `len` floats, returned to this thread's pool when dropped.
pub(crate) struct Scratch(Vec<f32>);

impl Scratch {
    /// A buffer of `len` floats with unspecified (but initialised) contents.
    pub(crate) fn take(len: usize) -> Self {
        // Best fit: the smallest pooled buffer that is large enough, else the largest one (which then grows).
        let mut v = POOL
            .with(|p| {
                let mut p = p.borrow_mut();
                let fit = (0..p.len()).filter(|&i| p[i].capacity() >= len).min_by_key(|&i| p[i].capacity());
                let pick = fit.or_else(|| (0..p.len()).max_by_key(|&i| p[i].capacity()));
                pick.map(|i| p.swap_remove(i))
            })
            .unwrap_or_default();
        if v.len() < len {
            v.resize(len, 0.0);
        }
        v.truncate(len);
        Scratch(v)
    }

    /// A buffer of `len` zeros.
    pub(crate) fn zeroed(len: usize) -> Self {
        let mut s = Scratch::take(len);
        s.0.fill(0.0);
        s
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        // Keep the capacity: `truncate` above never frees, so the next `take` of the same size does not allocate.
        let _ = POOL.try_with(|p| p.borrow_mut().push(v));
    }
}

impl Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
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
