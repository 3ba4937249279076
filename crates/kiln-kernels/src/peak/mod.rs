//! The FMA throughput probe: the f32 FLOP/s this CPU's fused multiply-adds reach with one ISA, on one thread or on
//! several at once — the ceiling Kiln states its training speed against (`cargo xtask peak`, and the fraction of
//! peak the training jobs report). As the shared `peak.c`: independent accumulator chains `acc = acc·a + b`, as
//! many as the registers hold beside the two constants (enough to hide the FMA latency on two pipes), counted as
//! 2 FLOPs per lane per FMA.

pub(crate) mod table;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::dispatch::Kernels;
use crate::error::{KernelError, Result};
use crate::isa::Isa;
use crate::simd::{Simd, reduce_add};

/// Independent chains for an ISA with `registers` vector registers.
pub(crate) const fn chain_count(registers: usize) -> usize {
    match registers {
        32.. => 24,
        16.. => 12,
        _ => 6,
    }
}

/// `iters` rounds of `N` chains; the sum of the final accumulators.
#[inline(always)]
fn chains<S: Simd, const N: usize>(s: S, iters: u64) -> f32 {
    let (a, b) = (s.splat(0.999_999), s.splat(1e-7));
    let mut acc = [s.splat(0.0); N];
    for (i, v) in acc.iter_mut().enumerate() {
        *v = s.splat(i as f32 * 1e-3);
    }
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = s.mul_add(*v, a, b);
        }
    }
    let mut sum = acc[0];
    for v in &acc[1..] {
        sum = s.add(sum, *v);
    }
    reduce_add(s, sum)
}

/// The probe for `S`, with its chain count.
#[inline(always)]
pub(crate) fn chains_for<S: Simd>(s: S, iters: u64) -> f32 {
    match chain_count(S::REGISTERS) {
        24 => chains::<S, 24>(s, iters),
        12 => chains::<S, 12>(s, iters),
        _ => chains::<S, 6>(s, iters),
    }
}

/// A measured FMA throughput.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FmaPeak {
    /// The ISA whose FMAs ran.
    pub isa: Isa,
    /// Threads running the probe at once.
    pub threads: usize,
    /// The best round, in GFLOP/s summed over the threads.
    pub best_gflops: f64,
    /// The median round.
    pub median_gflops: f64,
}

impl Kernels {
    /// The chains' sum after `iters` rounds on this ISA (compare with [`Kernels::fma_probe_reference`]).
    pub fn fma_probe(&self, iters: u64) -> f32 {
        // SAFETY: a `&Kernels` exists only for an ISA the CPU supports.
        unsafe { (self.peak.run)(iters) }
    }

    /// What [`Kernels::fma_probe`] computes, in f64: every chain `v ← v·a + b` from `v₀ = i·10⁻³`, times the
    /// lanes.
    pub fn fma_probe_reference(&self, iters: u64) -> f64 {
        let (a, b) = (f64::from(0.999_999f32), f64::from(1e-7f32));
        (0..self.peak.chains)
            .map(|i| {
                let mut v = f64::from(i as f32 * 1e-3);
                for _ in 0..iters {
                    v = v * a + b;
                }
                v * self.peak.lanes as f64
            })
            .sum()
    }

    /// FLOPs of one round of every chain (2 per lane per FMA).
    fn fma_flops_per_iter(&self) -> u64 {
        (self.peak.chains * self.peak.lanes * 2) as u64
    }

    /// Measures this ISA's FMA throughput: `threads` threads (the calling one included) run the probe at once,
    /// `rounds` timed rounds of about `round` each after a warm-up round (clock ramp, AVX-512 licence); a round's
    /// figure is the sum of the threads' FLOP/s.
    pub fn fma_peak(&self, threads: usize, round: Duration, rounds: usize) -> Result<FmaPeak> {
        for (dim, got) in [("threads", threads), ("rounds", rounds), ("round (µs)", round.as_micros() as usize)] {
            if got == 0 {
                return Err(KernelError::ZeroDim { op: "fma_peak", dim, got });
            }
        }
        // Rounds sized from a short calibration run.
        let calib = 20_000u64;
        let t = Instant::now();
        std::hint::black_box(self.fma_probe(calib));
        let per_iter = t.elapsed().as_secs_f64().max(1e-9) / calib as f64;
        let iters = ((round.as_secs_f64() / per_iter) as u64).max(1000);
        let barrier = Barrier::new(threads);
        let one = |rates: &mut Vec<f64>| {
            for r in 0..=rounds {
                barrier.wait();
                let t = Instant::now();
                std::hint::black_box(self.fma_probe(iters));
                let secs = t.elapsed().as_secs_f64().max(1e-9);
                if r > 0 {
                    rates.push((iters * self.fma_flops_per_iter()) as f64 / secs / 1e9);
                }
            }
        };
        let mut per_thread = vec![Vec::with_capacity(rounds); threads];
        std::thread::scope(|scope| {
            let (first, rest) = per_thread.split_at_mut(1);
            for rates in rest.iter_mut() {
                scope.spawn(|| one(rates));
            }
            one(&mut first[0]);
        });
        let mut totals: Vec<f64> = (0..rounds).map(|r| per_thread.iter().map(|t| t[r]).sum()).collect();
        totals.sort_by(f64::total_cmp);
        Ok(FmaPeak { isa: self.isa(), threads, best_gflops: totals[rounds - 1], median_gflops: totals[rounds / 2] })
    }
}
