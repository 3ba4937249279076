//! Strategies and helpers shared by the kernel test files and the harness-free NEON runner.
#![allow(dead_code)]

pub mod activation;
pub mod conv;
pub mod gemm;

use std::cell::Cell;

use kiln_kernels::{Conv2dGeometry, Conv2dSpec, Padding};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// The dispatch table of `isa` if this host can test it; prints `skipped` otherwise, and panics when the ISA is
/// required (`KILN_REQUIRE_ISA`) but missing.
pub fn testable_kernels(isa: kiln_kernels::Isa) -> Option<&'static kiln_kernels::Kernels> {
    match isa.testable() {
        Ok(true) => Some(kiln_kernels::Kernels::for_isa(isa).expect("a testable ISA has a table")),
        Ok(false) => {
            println!("skipped: {isa} not detected on this host");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

#[allow(unused_imports)]
pub use kiln_kernels::testing::cases;

/// A reproducible runner: fixed seed unless `KILN_PROPTEST_SEED` (a u64) says otherwise, so CI failures replay.
pub fn runner(cases: u32) -> TestRunner {
    let seed: u64 = std::env::var("KILN_PROPTEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x6b69_6c6e);
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i as u64)).to_le_bytes());
    }
    let config = Config { cases, max_global_rejects: 100_000, failure_persistence: None, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// Limits for [`conv_geometry`].
#[derive(Debug, Clone, Copy)]
pub struct ConvLimits {
    /// Largest batch.
    pub batch: usize,
    /// Largest channel count (input and output).
    pub channels: usize,
    /// Largest image side.
    pub image: usize,
    /// Largest kernel side.
    pub kernel: usize,
}

/// Random convolution geometry biased to edges: 1×1 images and kernel = image are frequent, strides 1–3,
/// dilations 1–2, padding valid / same / explicit 0–3 (possibly asymmetric).
pub fn conv_geometry(l: ConvLimits) -> impl Strategy<Value = Conv2dGeometry> {
    let side = move || prop_oneof![1 => Just(1usize), 4 => 1..=l.image];
    let stride = || prop_oneof![2 => Just(1usize), 1 => 2..=3usize];
    let padding = prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        (0..=3usize, 0..=3usize, 0..=3usize, 0..=3usize).prop_map(|(top, bottom, left, right)| Padding::Explicit {
            top,
            bottom,
            left,
            right
        }),
    ];
    (
        1..=l.batch,
        (side(), side(), 1..=l.channels, 1..=l.channels),
        (1..=l.kernel, 1..=l.kernel),
        (stride(), stride(), 1..=2usize, 1..=2usize),
        padding,
        any::<bool>(),
    )
        .prop_filter_map("geometry must be valid", |(n, (h, w, ci, co), (kh, kw), (sh, sw, dh, dw), pad, fit)| {
            // Half the time shrink an oversize kernel to the image, which makes kernel = image common.
            let (kh, kw) = if fit && pad == Padding::Valid { (kh.min(h), kw.min(w)) } else { (kh, kw) };
            let spec: Conv2dSpec = Conv2dGeometry::spec(n, [h, w, ci], [kh, kw], co).strides(sh, sw);
            let spec = if fit { spec } else { spec.dilations(dh, dw) };
            spec.padding(pad).build().ok()
        })
}

/// `len` values drawn from one of the test distributions: U(−1, 1), raw pixels U{0..255}, sparse (80 % zeros),
/// or all-positive U(0, 1).
pub fn values(len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        proptest::collection::vec(-1.0f64..1.0, len),
        proptest::collection::vec((0u8..=255).prop_map(f64::from), len),
        proptest::collection::vec(prop_oneof![4 => Just(0.0f64), 1 => -2.0f64..2.0], len),
        proptest::collection::vec(0.0f64..1.0, len),
    ]
}

/// Counts how often each geometric feature occurred, so a test can prove its cases covered them.
#[derive(Default)]
pub struct Coverage {
    pub cases: Cell<usize>,
    pub stride2plus: Cell<usize>,
    pub same: Cell<usize>,
    pub explicit: Cell<usize>,
    pub dilation2: Cell<usize>,
    pub image1x1: Cell<usize>,
    pub kernel_eq_image: Cell<usize>,
}

impl Coverage {
    pub fn record(&self, g: &Conv2dGeometry) {
        let bump = |c: &Cell<usize>, yes: bool| c.set(c.get() + usize::from(yes));
        bump(&self.cases, true);
        bump(&self.stride2plus, g.stride_h() >= 2 || g.stride_w() >= 2);
        bump(&self.same, g.padding() == Padding::Same);
        bump(&self.explicit, matches!(g.padding(), Padding::Explicit { .. }));
        bump(&self.dilation2, g.dilation_h() == 2 || g.dilation_w() == 2);
        bump(&self.image1x1, g.in_h() == 1 && g.in_w() == 1);
        bump(&self.kernel_eq_image, g.kernel_h() == g.in_h() && g.kernel_w() == g.in_w());
    }

    /// Fails unless there were at least `min_cases` cases and every feature occurred at least `min_each` times.
    pub fn assert_covered(&self, min_cases: usize, min_each: usize) {
        let report = format!(
            "cases {}, stride>=2 {}, same {}, explicit {}, dilation 2 {}, 1x1 image {}, kernel = image {}",
            self.cases.get(),
            self.stride2plus.get(),
            self.same.get(),
            self.explicit.get(),
            self.dilation2.get(),
            self.image1x1.get(),
            self.kernel_eq_image.get()
        );
        println!("coverage: {report}");
        assert!(self.cases.get() >= min_cases, "too few cases: {report}");
        for c in [&self.stride2plus, &self.same, &self.explicit, &self.dilation2, &self.image1x1, &self.kernel_eq_image]
        {
            assert!(c.get() >= min_each, "a feature was not covered: {report}");
        }
    }
}
