//! Harness-free runner for the NEON kernels (`cargo xtask neon`): under qemu-user a spawned thread hangs, so this
//! `main` drives proptest's `TestRunner` on the main thread over the same `check_*` properties as the x86_64 tests,
//! calling only single-threaded entry points. Off aarch64 it prints `skipped` and succeeds.

mod common;

use std::process::ExitCode;

use common::activation::{
    check_backward, check_batch_norm, check_bias, check_fused_swish, check_optim, check_softmax, max_ulps, sweep,
};
use common::conv::{algos, check_batching, check_conv, conv_case, lane_batched_geometries};
use common::gemm::{check_gemm, check_gemm_bf16, gemm_case, values};
use common::{cases, runner};
use kiln_kernels::elementwise::{ULP_BOUND_ACTIVATION, ULP_BOUND_EXP};
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
        // bf16 products: widened to the f32 kernel (no native NEON bf16 kernel yet, even under `-cpu max`).
        let result = runner(cases(64))
            .run(&gemm_case(), |case| check_gemm_bf16(kernels.bf16_by_widening(), &case, Threads::Single).map(drop));
        match result {
            Ok(()) => {
                println!("test gemm_bf16/{isa}/widening: ok");
                passed += 1;
            }
            Err(e) => {
                println!("test gemm_bf16/{isa}/widening: FAILED: {e}");
                failed += 1;
            }
        }
        match conversions(kernels) {
            Ok(()) => {
                println!("test convert/{isa}: ok");
                passed += 1;
            }
            Err(e) => {
                println!("test convert/{isa}: FAILED: {e}");
                failed += 1;
            }
        }
        for (algo, pass) in algos() {
            let result = runner(cases(24))
                .run(&conv_case(algo), |case| check_conv(kernels, algo, pass, &case, Threads::Single).map(|_| ()));
            match result {
                Ok(()) => {
                    println!("test conv/{algo}/{isa}/{pass}: ok");
                    passed += 1;
                }
                Err(e) => {
                    println!("test conv/{algo}/{isa}/{pass}: FAILED: {e}");
                    failed += 1;
                }
            }
        }
        let batching = lane_batched_geometries().iter().try_for_each(|g| check_batching(kernels, g, Threads::Single));
        match batching {
            Ok(()) => {
                println!("test conv/direct/{isa}/lane-batches: ok");
                passed += 1;
            }
            Err(e) => {
                println!("test conv/direct/{isa}/lane-batches: FAILED: {e}");
                failed += 1;
            }
        }
        match activations(kernels) {
            Ok(()) => {
                println!("test activation/{isa}: ok");
                passed += 1;
            }
            Err(e) => {
                println!("test activation/{isa}: FAILED: {e}");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// `tests/convert.rs` on a coarser sweep of f32 bit patterns (every 65 537th) and every bf16 pattern back.
fn conversions(k: &Kernels) -> Result<(), String> {
    let x: Vec<f32> = (0..=u32::MAX).step_by(65_537).map(f32::from_bits).collect();
    let mut y = vec![half::bf16::ZERO; x.len()];
    k.f32_to_bf16(&x, &mut y).map_err(|e| e.to_string())?;
    if let Some((xi, yi)) = x.iter().zip(&y).find(|(xi, yi)| yi.to_bits() != half::bf16::from_f32(**xi).to_bits()) {
        return Err(format!("f32_to_bf16({:#010x}) = {:#06x}", xi.to_bits(), yi.to_bits()));
    }
    let all: Vec<half::bf16> = (0..=u16::MAX).map(half::bf16::from_bits).collect();
    let mut wide = vec![0.0f32; all.len()];
    k.bf16_to_f32(&all, &mut wide).map_err(|e| e.to_string())?;
    match all.iter().zip(&wide).find(|(h, w)| w.to_bits() != u32::from(h.to_bits()) << 16) {
        Some((h, w)) => Err(format!("bf16_to_f32({:#06x}) = {:#010x}", h.to_bits(), w.to_bits())),
        None => Ok(()),
    }
}

/// The elementwise properties of `tests/activation.rs` (a coarser sweep: qemu is slow).
fn activations(k: &Kernels) -> Result<(), String> {
    let x = sweep(6007);
    for (name, bound) in [
        ("exp", ULP_BOUND_EXP),
        ("sigmoid", ULP_BOUND_ACTIVATION),
        ("tanh", ULP_BOUND_ACTIVATION),
        ("swish", ULP_BOUND_ACTIVATION),
    ] {
        let (normal, sub) = max_ulps(k, name, &x)?;
        println!("{} {name}: max {normal:.2} ulp, subnormal {sub:.2} x 2^-149", k.isa());
        if normal > bound || sub > 4.0 {
            return Err(format!("{name}: {normal} ulp (bound {bound}), subnormal {sub}"));
        }
    }
    for len in 0..40usize {
        let xs: Vec<f32> = values(len, 0, len as u64).iter().map(|v| v * 30.0).collect();
        check_backward(k, &xs, &values(len, 0, 99 + len as u64))?;
    }
    for (rows, channels) in [(7, 3), (32, 6), (300, 17)] {
        check_bias(k, rows, channels, rows as u64)?;
    }
    for (rows, channels) in [(0, 3), (5, 1), (9, 4), (7, 13), (33, 32), (3, 64)] {
        check_batch_norm(k, rows, channels, (rows * 71 + channels) as u64)?;
    }
    for (rows, cols) in [(5, 3), (32, 10), (3, 17)] {
        for scale in [1.0f32, 1000.0] {
            check_softmax(k, rows, cols, scale, rows as u64)?;
        }
    }
    for len in [0usize, 1, 3, 4, 5, 17, 100] {
        check_optim(k, len, len as u64)?;
    }
    check_fused_swish(k, &x)?;
    for iters in [0u64, 1, 7, 100, 3000] {
        let (got, want) = (f64::from(k.fma_probe(iters)), k.fma_probe_reference(iters));
        if (got - want).abs() > want.abs() * 1e-6 * (iters as f64 + 8.0) {
            return Err(format!("fma probe, {iters} rounds: {got} vs {want}"));
        }
    }
    Ok(())
}
