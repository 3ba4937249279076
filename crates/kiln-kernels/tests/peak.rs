//! The FMA throughput probe computes what it claims: on every ISA this host runs, its chains' sum after any
//! number of rounds equals the f64 evaluation of the same recurrences (relative 1e-6 per round: each FMA rounds
//! once, in f32), so no chain is dropped or folded away; and the measurement reports a positive figure for one
//! and two threads and refuses zero threads, rounds or round length. (No speed is asserted here: `cargo xtask
//! peak` states it.)

mod common;

use std::time::Duration;

use common::{cases, runner, testable_kernels};
use kiln_kernels::{Isa, KernelError};
use proptest::prelude::*;

fn check(k: &kiln_kernels::Kernels, iters: u64) -> Result<(), String> {
    let got = f64::from(k.fma_probe(iters));
    let want = k.fma_probe_reference(iters);
    let tol = want.abs() * 1e-6 * (iters as f64 + 8.0);
    if (got - want).abs() <= tol { Ok(()) } else { Err(format!("{}: {iters} rounds: {got} vs {want}", k.isa())) }
}

#[test]
fn the_probe_sums_its_chains_as_the_reference() {
    for isa in Isa::ALL {
        let Some(k) = testable_kernels(isa) else { continue };
        runner(cases(64)).run(&(0u64..4000), |iters| check(k, iters).map_err(TestCaseError::fail)).unwrap();
    }
}

#[test]
fn the_measurement_reports_every_thread_count_and_refuses_zeroes() {
    let k = kiln_kernels::Kernels::best();
    for threads in [1, 2] {
        let p = k.fma_peak(threads, Duration::from_millis(5), 3).unwrap();
        assert_eq!((p.isa, p.threads), (k.isa(), threads));
        assert!(p.best_gflops.is_finite() && p.best_gflops >= p.median_gflops && p.median_gflops > 0.0, "{p:?}");
    }
    for (threads, round, rounds) in [(0, 5, 3), (1, 0, 3), (1, 5, 0)] {
        let r = k.fma_peak(threads, Duration::from_millis(round), rounds);
        assert!(matches!(r, Err(KernelError::ZeroDim { op: "fma_peak", .. })), "{r:?}");
    }
}
