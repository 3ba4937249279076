//! bf16 × bf16 → f32 GEMM against the f64 reference on the same bf16 values, for every ISA this host runs: the
//! widening path on each tier, and the native AVX-512 BF16 kernel where the CPU has it — which must also give the
//! widening path's bits (the pair order both use; no subnormals in these values). A tier or extension the host
//! lacks prints `skipped`, and fails under `KILN_REQUIRE_ISA` (`avx512bf16` for the extension).

mod common;

use common::gemm::{GemmCase, check_gemm_bf16, gemm_case};
use common::{cases, runner, testable_kernels};
use half::bf16;
use kiln_kernels::{DType, GemmGeometry, Isa, Kernels, Threads};
use proptest::prop_assert;

/// Odd depths (a zero partner pads the last pair), depths across the native kernel's 512-step K block and the
/// 128-step chains, the 16-row half batch (a 12- and a 4-row tile), and the flagship Dense widths.
fn pinned() -> Vec<GemmCase> {
    let case = |m, n, k, trans_a, trans_b, beta, dist, seed| GemmCase {
        m,
        n,
        k,
        trans_a,
        trans_b,
        pads: [seed as usize % 4, 0, 1],
        alpha: if seed % 2 == 0 { 1.0 } else { -0.5 },
        beta,
        dist,
        seed,
    };
    vec![
        case(1, 1, 1, false, false, 0.0, 0, 1),
        case(5, 7, 3, true, false, 1.0, 0, 2),
        case(16, 84, 2400, false, false, 0.0, 0, 3),
        case(16, 2400, 84, false, true, 0.0, 0, 4),
        case(2400, 84, 16, true, false, 0.0, 0, 5),
        case(13, 33, 1025, true, true, -1.0, 2, 6),
        case(25, 40, 129, false, false, 0.5, 1, 7),
        case(7, 9, 0, false, false, -1.0, 0, 8),
        case(481, 35, 257, false, true, 0.0, 2, 9),
    ]
}

fn widening(isa: Isa) {
    let Some(k) = testable_kernels(isa) else { return };
    let k = k.bf16_by_widening();
    assert!(!k.native(DType::BF16));
    runner(cases(128)).run(&gemm_case(), |case| check_gemm_bf16(k, &case, Threads::Single).map(drop)).unwrap();
    for case in &pinned() {
        check_gemm_bf16(k, case, Threads::Single).unwrap();
        check_gemm_bf16(k, case, Threads::Rayon).unwrap();
    }
}

#[test]
fn gemm_bf16_widening_portable() {
    widening(Isa::Portable);
}

#[test]
fn gemm_bf16_widening_avx2() {
    widening(Isa::Avx2Fma);
}

#[test]
fn gemm_bf16_widening_avx512() {
    widening(Isa::Avx512);
}

/// The native kernel: within the reference's bound, and the same bits as AVX-512's and AVX2's widening paths
/// (whose f32 kernels chain FMAs in the same order) for any thread split.
#[test]
fn gemm_bf16_native_avx512bf16() {
    match Isa::Avx512.testable_bf16() {
        Ok(true) => {}
        Ok(false) => return println!("skipped: avx512bf16 not detected on this host"),
        Err(e) => panic!("{e}"),
    }
    let native = Kernels::for_isa(Isa::Avx512).unwrap();
    assert!(native.native(DType::BF16));
    assert_eq!(native.gemm_name_for(DType::BF16), "gemm_bf16/avx512bf16/12x32");
    let wides: Vec<&Kernels> =
        [Isa::Avx512, Isa::Avx2Fma].into_iter().filter_map(Kernels::for_isa).map(Kernels::bf16_by_widening).collect();
    let same_bits = |case: &GemmCase, threads: Threads| -> Result<(), proptest::test_runner::TestCaseError> {
        let got = check_gemm_bf16(native, case, threads)?;
        for w in &wides {
            let want = check_gemm_bf16(w, case, Threads::Single)?;
            let differ =
                got.iter().zip(&want).filter(|(g, w)| g.to_bits() != w.to_bits() && !(g.is_nan() && w.is_nan()));
            prop_assert!(differ.count() == 0, "native and {} differ", w.gemm_name_for(DType::BF16));
        }
        Ok(())
    };
    runner(cases(128)).run(&gemm_case(), |case| same_bits(&case, Threads::Single)).unwrap();
    for case in &pinned() {
        same_bits(case, Threads::Single).unwrap();
        same_bits(case, Threads::Rayon).unwrap();
    }
}

/// Lengths and leading dimensions are validated on both paths; nothing panics.
#[test]
fn bad_arguments_are_typed_errors() {
    let g = GemmGeometry::new(4, 4, 3).unwrap();
    let (a, b) = (vec![bf16::ONE; 12], vec![bf16::ONE; 11]);
    let mut c = vec![0.0f32; 16];
    for isa in Isa::available() {
        let k = Kernels::for_isa(isa).unwrap();
        for k in [k, k.bf16_by_widening()] {
            assert!(k.gemm(Threads::Single, &g, 1.0, &a, &b, 0.0, &mut c).is_err(), "{isa}");
            let b = vec![bf16::ONE; 12];
            k.gemm(Threads::Rayon, &g, 1.0, &a, &b, 0.0, &mut c).unwrap();
            assert!(c.iter().all(|&v| v == 3.0));
        }
    }
}
