//! bf16 × bf16 → f32 GEMM throughput (FLOP/s) beside Kiln's f32 GEMM on the same shapes: the native AVX-512 BF16
//! kernel where the CPU has it, the widening path of every ISA, and the f32 kernel of the best ISA (the ratio the
//! bf16 kernels are judged by), on 1024³ and the flagship Dense products, 1 and 2 threads; and the f32 ↔ bf16
//! conversions (elements/s).
//!
//! `cargo benches --bench gemm_bf16` (ids `gemm_bf16/<native|widening-isa|f32-isa>/<shape>/<threads>t`,
//! `convert/<isa>/<direction>`)

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use half::bf16;
use kiln_kernels::{DType, GemmGeometry, Isa, Kernels, Threads, Transpose};

fn shapes() -> Vec<(&'static str, GemmGeometry)> {
    let mut v = vec![("square_1024", GemmGeometry::new(1024, 1024, 1024).expect("valid"))];
    for m in [32usize, 16] {
        let name = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        v.push((name(format!("dense1_fwd_{m}x84x2400")), GemmGeometry::new(m, 84, 2400).expect("valid")));
        v.push((
            name(format!("dense1_bwd_data_{m}x2400x84")),
            GemmGeometry::spec(m, 2400, 84).trans_b(Transpose::Yes).build().expect("valid"),
        ));
        v.push((
            name(format!("dense1_bwd_weight_2400x84x{m}")),
            GemmGeometry::spec(2400, 84, m).trans_a(Transpose::Yes).build().expect("valid"),
        ));
    }
    v
}

fn data(len: usize, salt: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7 + salt) % 17) as f32 / 17.0 - 0.5).collect()
}

fn bench_gemm(c: &mut Criterion) {
    let pool2 = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("rayon pool");
    let mut group = c.benchmark_group("gemm_bf16");
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(20);
    let best = Kernels::best();
    // (id, kernels, bf16?) — the native table where the CPU has one, every ISA's widening path, and f32.
    let mut paths: Vec<(String, &'static Kernels, bool)> = Vec::new();
    if best.native(DType::BF16) {
        paths.push(("native".into(), best, true));
    }
    for isa in Isa::available() {
        let k = Kernels::for_isa(isa).expect("available").bf16_by_widening();
        paths.push((format!("widening-{isa}"), k, true));
    }
    paths.push((format!("f32-{}", best.isa()), best, false));
    for (name, g) in shapes() {
        let (a, b) = (data(g.a_len(), 1), data(g.b_len(), 2));
        let (a16, b16): (Vec<bf16>, Vec<bf16>) =
            (a.iter().map(|&x| bf16::from_f32(x)).collect(), b.iter().map(|&x| bf16::from_f32(x)).collect());
        let mut out = vec![0.0f32; g.c_len()];
        group.throughput(Throughput::Elements(g.flops()));
        for threads in [1usize, 2] {
            let param = format!("{name}/{threads}t");
            let policy = if threads == 1 { Threads::Single } else { Threads::Rayon };
            for (id, k, is_bf16) in &paths {
                group.bench_with_input(BenchmarkId::new(id, &param), &g, |bench, g| {
                    pool2.install(|| {
                        if *is_bf16 {
                            bench.iter(|| k.gemm(policy, g, 1.0, &a16, &b16, 0.0, black_box(&mut out)))
                        } else {
                            bench.iter(|| k.gemm(policy, g, 1.0, &a, &b, 0.0, black_box(&mut out)))
                        }
                    })
                });
            }
        }
    }
    group.finish();
}

fn bench_convert(c: &mut Criterion) {
    let mut group = c.benchmark_group("convert");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    // The flagship's largest activation per step: conv2d_1's output, 32 × 20 × 20 × 6 floats.
    let len = 32 * 20 * 20 * 6;
    let x = data(len, 3);
    let mut h = vec![bf16::ZERO; len];
    let mut y = vec![0.0f32; len];
    group.throughput(Throughput::Elements(len as u64));
    for isa in Isa::available() {
        let k = Kernels::for_isa(isa).expect("available");
        group.bench_function(BenchmarkId::new(isa.name(), "f32_to_bf16"), |bench| {
            bench.iter(|| k.f32_to_bf16(&x, black_box(&mut h)))
        });
        group.bench_function(BenchmarkId::new(isa.name(), "bf16_to_f32"), |bench| {
            bench.iter(|| k.bf16_to_f32(&h, black_box(&mut y)))
        });
        group.bench_function(BenchmarkId::new(isa.name(), "round_to_bf16"), |bench| {
            bench.iter(|| k.round_to_bf16(&x, black_box(&mut y)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_gemm, bench_convert);
criterion_main!(benches);
