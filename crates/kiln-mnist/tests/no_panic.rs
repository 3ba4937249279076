//! Random and mutated IDX bytes (truncated, wrong magic, huge dimensions, overflowing products, garbage and
//! truncated gzip) never panic, and parsing never allocates much more than the input's real content: a counting
//! global allocator records the peak heap use of each case.

mod common;
mod fuzz_bodies;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::gzip;
use kiln_mnist::idx::{IdxType, encode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting bytes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counters are process-wide: tests that read them run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Inputs: arbitrary bytes, or a valid file (raw or gzip) then mutated.
fn inputs() -> impl Strategy<Value = Vec<u8>> {
    let valid = (
        prop_oneof![Just(IdxType::U8), Just(IdxType::I16), Just(IdxType::F32), Just(IdxType::F64)],
        proptest::collection::vec(0u32..6, 1..4),
    )
        .prop_map(|(t, dims)| {
            let n: u32 = dims.iter().product();
            encode(t, &dims, &vec![7u8; n as usize * t.size()])
        });
    let huge_dims = proptest::collection::vec(any::<u32>(), 1..6).prop_map(|d| encode(IdxType::U8, &d, &[1, 2, 3]));
    let base = prop_oneof![valid, huge_dims, proptest::collection::vec(any::<u8>(), 0..64)];
    (base, any::<bool>(), 0usize..6, any::<u64>()).prop_map(|(bytes, gz, mutation, r)| {
        let mut b = if gz { gzip(&bytes) } else { bytes };
        let len = b.len().max(1);
        match mutation {
            0 => {}
            1 => b.truncate(r as usize % len),
            2 => {
                if let Some(x) = b.get_mut(r as usize % len) {
                    *x ^= (r >> 32) as u8 | 1;
                }
            }
            3 => b.extend_from_slice(&r.to_le_bytes()),
            4 => {
                // Garbage after a gzip magic.
                b = [0x1f, 0x8b].iter().copied().chain(r.to_le_bytes()).chain(b).collect();
            }
            _ => {
                if b.len() > 2 {
                    b[0] = (r & 0xff) as u8;
                }
            }
        }
        b
    })
}

#[test]
fn never_panics_and_memory_stays_bounded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut runner = TestRunner::new(Config {
        cases: kiln_kernels::testing::cases(4096),
        failure_persistence: None,
        ..Config::default()
    });
    let accepted = std::cell::Cell::new(0usize);
    runner
        .run(&inputs(), |bytes| {
            let base = CURRENT.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            if fuzz_bodies::idx_file(&bytes) {
                accepted.set(accepted.get() + 1);
            }
            let extra = PEAK.load(Ordering::Relaxed).saturating_sub(base);
            // The input is < 200 bytes; its true content < 64 KiB. Anything near the announced sizes would be MBs.
            prop_assert!(extra < 1 << 20, "parsing {} bytes allocated {extra} bytes", bytes.len());
            Ok(())
        })
        .unwrap();
    println!("{} of 4096 inputs parsed", accepted.get());
    assert!(accepted.get() > 100, "the strategy must also produce valid files");
}

#[test]
fn lying_headers_allocate_only_real_data() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Raw: announce 16 MiB (the body's cap) but provide 3 bytes; gzip: the same, compressed.
    for bytes in [encode(IdxType::U8, &[1 << 24], &[1, 2, 3]), gzip(&encode(IdxType::U8, &[1 << 24], &[1, 2, 3]))] {
        let base = CURRENT.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        assert!(!fuzz_bodies::idx_file(&bytes));
        assert!(PEAK.load(Ordering::Relaxed) - base < 1 << 20);
    }
}
