//! Harness-free runner for the NEON kernels (`cargo xtask neon`): under qemu-user a spawned thread hangs, so this
//! `main` drives proptest's `TestRunner` on the main thread over the same `check_*` properties as the x86_64 tests,
//! calling only single-threaded entry points. Off aarch64 it prints `skipped` and succeeds.

mod common;

use std::process::ExitCode;

use common::gemm::{check_gemm, gemm_case};
use common::{cases, runner};
use kiln_kernels::{Isa, Kernels, Threads};

fn main() -> ExitCode {
    let mut passed = 0;
    let mut failed = 0;
    for isa in [Isa::Neon, Isa::Portable] {
        match isa.testable() {
            Ok(true) => {}
            Ok(false) => {
                println!("skipped: {isa} not detected on this host");
                continue;
            }
            Err(e) => {
                println!("FAILED: {e}");
                failed += 1;
                continue;
            }
        }
        if isa == Isa::Portable && !cfg!(target_arch = "aarch64") {
            // The portable path on x86_64 is covered by tests/gemm.rs.
            continue;
        }
        let kernels = Kernels::for_isa(isa).expect("supported ISA has a table");
        let result = runner(cases(256)).run(&gemm_case(), |case| check_gemm(kernels, &case, Threads::Single));
        match result {
            Ok(()) => {
                println!("test {}: ok", kernels.gemm_name());
                passed += 1;
            }
            Err(e) => {
                println!("test {}: FAILED: {e}", kernels.gemm_name());
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
