//! How many cases the workspace's property tests run: one knob for every crate's tests, so that the quick tier
//! (`cargo test --workspace`) and the long tier (`cargo xtask test-long`, which CI runs too) differ only in it.

/// Environment variable multiplying every property test's case count (`cargo xtask test-long` sets 10).
pub const ENV_TEST_SCALE: &str = "KILN_TEST_SCALE";

/// The case count of a property test whose quick-tier count is `base`: `base × KILN_TEST_SCALE` (default 1), or
/// `PROPTEST_CASES` when that is larger.
pub fn cases(base: u32) -> u32 {
    let var = |name: &str| std::env::var(name).ok().and_then(|s| s.trim().parse::<u32>().ok());
    let scaled = base.saturating_mul(var(ENV_TEST_SCALE).unwrap_or(1).max(1));
    var("PROPTEST_CASES").map_or(scaled, |n| n.max(scaled))
}
