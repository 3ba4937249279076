//! A counting global allocator for tests that prove a code path allocates nothing (the kernels once warm, a
//! training step of the flagship model). It lives here so that the only `unsafe` stays in this crate:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: kiln_kernels::alloc_count::CountingAllocator = kiln_kernels::alloc_count::CountingAllocator;
//! let before = kiln_kernels::alloc_count::allocations();
//! // … the code under test …
//! assert_eq!(kiln_kernels::alloc_count::allocations() - before, 0);
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// Forwards to the system allocator and counts allocations (including reallocations) from every thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

/// Allocations counted so far by [`CountingAllocator`] (0 unless it is the global allocator).
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged; counting has no
// effect on the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by this allocator (i.e. by `System`) with `layout`, per the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (i.e. by `System`) with `layout`, per the caller.
        unsafe { System.dealloc(ptr, layout) }
    }
}
