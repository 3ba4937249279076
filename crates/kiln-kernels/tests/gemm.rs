//! SGEMM against the f64 reference, for every ISA this host runs (an ISA it lacks prints `skipped`, and fails under
//! `KILN_REQUIRE_ISA`). Tolerance `|c − ref| ≤ 8·eps32·B` (KERNELS.md §1.6).

mod common;

use common::gemm::{GemmCase, check_gemm, gemm_case};
use common::{cases, runner, testable_kernels};
use kiln_kernels::{GemmGeometry, Isa, Threads};

fn property(isa: Isa) {
    let Some(k) = testable_kernels(isa) else { return };
    let kernels = k;
    runner(cases(256)).run(&gemm_case(), |case| check_gemm(kernels, &case, Threads::Single)).unwrap();
    // Pinned edge cases: NC block boundary, K across two KC blocks with beta ≠ 0, 1×1×1, k = 0 with beta = 0, and
    // an all-positive 258-deep reduction that one f32 chain per KC = 256 block summed to 8.14·eps32·B (found by
    // `KILN_PROPTEST_SEED=2 PROPTEST_CASES=3000`; held by the GEMM's 128-step chains, `blocking::CHAIN`).
    let pinned = [
        GemmCase {
            m: 143,
            n: 15,
            k: 258,
            trans_a: true,
            trans_b: false,
            pads: [0, 0, 0],
            alpha: -0.5,
            beta: -1.0,
            dist: 2,
            seed: 8517966480244204488,
        },
        GemmCase {
            m: 3,
            n: 4100,
            k: 5,
            trans_a: false,
            trans_b: false,
            pads: [0, 0, 1],
            alpha: 1.0,
            beta: 0.5,
            dist: 0,
            seed: 1,
        },
        GemmCase {
            m: 13,
            n: 33,
            k: 700,
            trans_a: true,
            trans_b: true,
            pads: [3, 0, 7],
            alpha: -0.5,
            beta: 1.0,
            dist: 2,
            seed: 2,
        },
        GemmCase {
            m: 1,
            n: 1,
            k: 1,
            trans_a: false,
            trans_b: true,
            pads: [0, 0, 0],
            alpha: 2.5,
            beta: 0.0,
            dist: 1,
            seed: 3,
        },
        GemmCase {
            m: 7,
            n: 9,
            k: 0,
            trans_a: false,
            trans_b: false,
            pads: [0, 0, 3],
            alpha: 1.0,
            beta: 0.0,
            dist: 0,
            seed: 4,
        },
        GemmCase {
            m: 7,
            n: 9,
            k: 0,
            trans_a: false,
            trans_b: false,
            pads: [0, 0, 3],
            alpha: 1.0,
            beta: -1.0,
            dist: 0,
            seed: 5,
        },
    ];
    for case in &pinned {
        check_gemm(kernels, case, Threads::Single).unwrap();
        check_gemm(kernels, case, Threads::Rayon).unwrap();
    }
}

#[test]
fn gemm_portable() {
    property(Isa::Portable);
}

#[test]
fn gemm_avx2() {
    property(Isa::Avx2Fma);
}

#[test]
fn gemm_avx512() {
    property(Isa::Avx512);
}

#[test]
fn gemm_neon() {
    // NEON is exercised under qemu by the harness-free `tests/neon.rs` (`cargo xtask neon`); on an aarch64 host
    // this runs it natively too.
    property(Isa::Neon);
}

#[test]
fn safe_entry_validates() {
    let g = GemmGeometry::new(4, 4, 4).unwrap();
    let (a, b) = (vec![1.0f32; 16], vec![1.0f32; 16]);
    let mut short = vec![0.0f32; 15];
    assert!(kiln_kernels::sgemm(&g, 1.0, &a, &b, 0.0, &mut short).is_err());
    let mut c = vec![0.0f32; 16];
    kiln_kernels::sgemm(&g, 1.0, &a, &b, 0.0, &mut c).unwrap();
    assert!(c.iter().all(|&v| v == 4.0));
}
