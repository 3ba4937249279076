//! The fuzz bodies of `fuzz/` run on stable: random and adversarial bytes must give `Ok` or `Err`, never a panic.
//! Each property also checks that a fair share of inputs got through validation and ran the references, so the
//! bodies cannot silently degenerate into rejecting everything.

mod fuzz_bodies;

use std::cell::Cell;

use fuzz_bodies::Outcome;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn run(body: fn(&[u8]) -> Outcome, max_len: usize) {
    let ran = Cell::new(0usize);
    let total = Cell::new(0usize);
    let mut runner = TestRunner::new(Config { cases: 4096, failure_persistence: None, ..Config::default() });
    runner
        .run(&vec(any::<u8>(), 0..max_len), |bytes| {
            total.set(total.get() + 1);
            if body(&bytes) == Outcome::Ran {
                ran.set(ran.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    println!("{} of {} inputs ran the references", ran.get(), total.get());
    assert!(ran.get() * 20 >= total.get(), "only {} of {} inputs reached the references", ran.get(), total.get());
}

#[test]
fn conv2d_geometry_never_panics() {
    run(fuzz_bodies::conv2d_geometry, 64);
}

#[test]
fn conv2d_kernels_never_panic_and_agree_with_the_reference() {
    run(fuzz_bodies::conv2d_kernels, 64);
}

#[test]
fn gemm_geometry_never_panics() {
    run(fuzz_bodies::gemm_geometry, 48);
}

#[test]
fn adversarial_geometries() {
    let huge = [255u8; 200];
    assert_ne!(fuzz_bodies::conv2d_geometry(&huge), Outcome::Ran);
    assert_ne!(fuzz_bodies::gemm_geometry(&huge), Outcome::Ran);
    fuzz_bodies::conv2d_geometry(&[]);
    fuzz_bodies::gemm_geometry(&[]);
    // A plausible layer, then a huge explicit padding.
    let layer = [1u8, 6, 6, 1, 3, 3, 3, 1, 1, 1, 1, 0];
    assert_eq!(fuzz_bodies::conv2d_geometry(&layer), Outcome::Ran);
    let mut padded = layer.to_vec();
    padded[11] = 2;
    padded.extend([255, 255, 255, 255, 255, 255, 255, 255, 127, 0, 0, 0]);
    assert_ne!(fuzz_bodies::conv2d_geometry(&padded), Outcome::Ran);
}

/// Regression: libFuzzer (`cargo xtask fuzz`) found this input; explicit padding ≥ 2⁶³ with a huge stride kept
/// the output at 1×1 and overflowed the reference's signed tap arithmetic.
#[test]
fn fuzz_regression_huge_padding_and_stride() {
    let crash = [
        0x20, 0x62, 0x57, 0x55, 0x55, 0x55, 0x51, 0xd5, 0x51, 0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x83, 0x55,
        0x55, 0x55, 0xab,
    ];
    fuzz_bodies::conv2d_geometry(&crash);
}

/// Regression (harness): libFuzzer ran out of memory on this input — batch 0 (no work) with a kernel whose weight
/// gradient needs 15 GB. The geometry is valid; the body must not run the references on it.
#[test]
fn fuzz_regression_empty_batch_huge_weights() {
    let input = [
        0x00, 0x2d, 0x23, 0x19, 0xa4, 0xf1, 0x05, 0x46, 0xda, 0x01, 0x00, 0x00, 0x00, 0x00, 0xda, 0xff, 0xaa, 0x01,
        0xff, 0x00, 0x05, 0x00, 0x00, 0xda, 0xda, 0xe4, 0xdf, 0xf7,
    ];
    assert_ne!(fuzz_bodies::conv2d_geometry(&input), Outcome::Ran);
}
