//! Elementwise kernels for every ISA this host runs: `exp`, sigmoid, tanh, swish and ReLU over a sweep of f32 bit
//! patterns (every 613th, both signs: the whole range including ±∞, NaN, subnormals and the large |x| where the
//! naive `x·σ(x)` gives NaN), in ulps against f64; their backward passes; bias add and column sums.

mod common;

use common::activation::{
    check_backward, check_batch_norm, check_bias, check_fused_swish, check_optim, check_softmax, max_ulps, sweep,
};
use common::gemm::values;
use kiln_kernels::elementwise::{ULP_BOUND_ACTIVATION, ULP_BOUND_EXP};
use kiln_kernels::{Isa, Kernels};

fn kernels(isa: Isa) -> Option<&'static Kernels> {
    common::testable_kernels(isa)
}

/// Results that are subnormal may be off by this many 2⁻¹⁴⁹ steps (one rounding of a product near 2⁻¹²⁶).
const SUBNORMAL_ULPS: f64 = 4.0;

fn accuracy(isa: Isa) {
    let Some(k) = kernels(isa) else { return };
    let x = sweep(613);
    for (name, bound) in [
        ("exp", ULP_BOUND_EXP),
        ("sigmoid", ULP_BOUND_ACTIVATION),
        ("tanh", ULP_BOUND_ACTIVATION),
        ("swish", ULP_BOUND_ACTIVATION),
        ("relu", 0.0),
    ] {
        let (normal, sub) = max_ulps(k, name, &x).unwrap_or_else(|e| panic!("{e}"));
        println!("{isa} {name}: max {normal:.2} ulp (normal results), {sub:.2} × 2^-149 (subnormal results)");
        assert!(normal <= bound, "{isa} {name}: {normal} ulp > {bound}");
        assert!(sub <= SUBNORMAL_ULPS.max(bound), "{isa} {name}: subnormal error {sub} × 2^-149");
    }
}

fn fused_swish(isa: Isa) {
    let Some(k) = kernels(isa) else { return };
    check_fused_swish(k, &sweep(613)).unwrap_or_else(|e| panic!("{e}"));
}

/// BatchNormalization's channel kernels over random shapes (every vector tail, 1–70 channels) and values.
fn batch_norm_kernels(isa: Isa) {
    use proptest::prelude::*;
    let Some(k) = kernels(isa) else { return };
    let strategy = (0usize..40, 1usize..70, any::<u64>());
    common::runner(common::cases(64))
        .run(&strategy, |(rows, channels, seed)| check_batch_norm(k, rows, channels, seed).map_err(TestCaseError::fail))
        .unwrap_or_else(|e| panic!("{e}"));
}

fn derivatives_and_bias(isa: Isa) {
    let Some(k) = kernels(isa) else { return };
    // Moderate x (where gradients matter) plus extremes, and lengths 0..40 for every tail.
    for len in 0..40usize {
        let x: Vec<f32> = values(len, 0, len as u64).iter().map(|v| v * 30.0).collect();
        let dy = values(len, 0, 99 + len as u64);
        check_backward(k, &x, &dy).unwrap_or_else(|e| panic!("{e}"));
    }
    let extremes = [f32::INFINITY, f32::NEG_INFINITY, 200.0, -200.0, 0.0, -0.0, 1e-30, -1e-30, 88.0, -88.0];
    check_backward(k, &extremes, &[1.0; 10]).unwrap_or_else(|e| panic!("{e}"));
    for (rows, channels) in [
        (0, 3),
        (1, 1),
        (7, 3),
        (32, 6),
        (18432, 3),
        (20002, 3),
        (4001, 5),
        (33, 17),
        (5, 84),
        (2000, 10),
        (65, 15),
        (3, 2),
    ] {
        check_bias(k, rows, channels, (rows * 31 + channels) as u64).unwrap_or_else(|e| panic!("{e}"));
    }
    for (rows, cols) in [(1, 1), (5, 3), (32, 10), (7, 16), (3, 17), (2, 33), (0, 10)] {
        for scale in [1.0f32, 30.0, 1000.0] {
            check_softmax(k, rows, cols, scale, (rows * 100 + cols) as u64).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    for len in 0..40usize {
        check_optim(k, len, len as u64).unwrap_or_else(|e| panic!("{e}"));
    }
    check_optim(k, 2400 * 84 + 3, 7).unwrap_or_else(|e| panic!("{e}"));
    // A NaN logit makes its row NaN, and only its row.
    let z = [0.0f32, f32::NAN, 1.0, 2.0, 3.0, 4.0];
    let mut p = [0.0f32; 6];
    k.softmax(3, &z, &mut p).unwrap();
    assert!(p[..3].iter().all(|v| v.is_nan()) && p[3..].iter().all(|v| v.is_finite()));
    // Wrong shapes are errors.
    assert!(k.softmax(4, &z, &mut p).is_err());
    assert!(k.softmax_cross_entropy(3, &z, &z, &mut p, &mut [0.0; 3]).is_err());
    assert!(k.adam_step(&mut [0.0; 2], &[0.0; 2], &mut [0.0; 2], &mut [0.0; 2], Default::default(), 0).is_err());
    assert!(k.sgd_step(&mut [0.0; 2], &[0.0; 2], &mut [0.0; 1], Default::default()).is_err());
    let avg = kiln_kernels::optim::Average { other: &[0.0; 1], a: 0.5, b: 0.5 };
    let update = kiln_kernels::optim::Update::RmsProp { v: &mut [0.0; 2], p: Default::default() };
    assert!(k.averaged_step(&mut [0.0; 2], &[0.0; 2], update, avg).is_err());
    // Wrong shapes are errors.
    let mut y = vec![0.0f32; 7];
    assert!(k.bias_add(&mut y, &[0.0; 3]).is_err());
    assert!(k.bias_add(&mut y, &[]).is_err());
    assert!(k.column_sums(&y, &mut [0.0; 2]).is_err());
    assert!(k.swish(&y, &mut [0.0; 6]).is_err());
    assert!(k.swish_backward(&y, &[0.0; 7], &mut [0.0; 6]).is_err());
}

macro_rules! per_isa {
    ($($name:ident => $isa:expr),*) => {$(
        mod $name {
            #[test]
            fn accuracy() {
                super::accuracy($isa);
            }
            #[test]
            fn fused_swish() {
                super::fused_swish($isa);
            }
            #[test]
            fn derivatives_and_bias() {
                super::derivatives_and_bias($isa);
            }
            #[test]
            fn batch_norm_kernels() {
                super::batch_norm_kernels($isa);
            }
        }
    )*};
}

per_isa!(portable => kiln_kernels::Isa::Portable, avx2 => kiln_kernels::Isa::Avx2Fma,
         avx512 => kiln_kernels::Isa::Avx512, neon => kiln_kernels::Isa::Neon);
