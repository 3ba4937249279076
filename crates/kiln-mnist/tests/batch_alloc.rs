//! After construction, producing batches allocates nothing: a counting global allocator proves it over two full
//! epochs (one-hot and index labels, with a partial last batch).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln_mnist::{BatchOptions, LabelFormat, Mnist};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn no_allocation_per_batch() {
    let dir = tempfile::tempdir().unwrap();
    common::write_dataset(dir.path(), true);
    let m = Mnist::load(dir.path()).unwrap();
    for labels in [LabelFormat::OneHot, LabelFormat::Index] {
        let mut batches = m.train.batches(BatchOptions { batch_size: 2, labels, ..BatchOptions::default() }).unwrap();
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let mut seen = 0;
        for _ in 0..2 {
            while let Some(b) = batches.next_batch() {
                seen += b.len();
                assert!(b.x.as_slice().iter().all(|v| v.is_finite()));
            }
            batches.start_epoch();
        }
        assert_eq!(seen, 10);
        assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), before, "batches allocated");
    }
}
