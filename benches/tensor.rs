//! Tensor-core throughput: f16/bf16 storage conversion and broadcast elementwise arithmetic, in elements/s.
//!
//! `cargo benches --bench tensor`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_tensor::Tensor;

fn conversions(c: &mut Criterion) {
    // One flagship Dense1 weight matrix (2400×84) — what a weights file stores.
    let w = Tensor::from_fn(&[2400, 84], |i| ((i % 977) as f32 - 488.0) * 1e-3).expect("shape");
    let mut group = c.benchmark_group("tensor/convert");
    group.throughput(Throughput::Elements(w.len() as u64));
    group.bench_function("to_f16/2400x84", |b| b.iter(|| black_box(&w).to_f16()));
    group.bench_function("to_bf16/2400x84", |b| b.iter(|| black_box(&w).to_bf16()));
    let h = w.to_f16();
    group.bench_function("from_f16/2400x84", |b| b.iter(|| black_box(&h).to_f32()));
    group.finish();
}

fn elementwise(c: &mut Criterion) {
    // A conv1 activation batch (32×24×24×3) plus a per-channel bias, and the same-shape case.
    let x = Tensor::from_fn(&[32, 24, 24, 3], |i| i as f32 * 1e-4).expect("shape");
    let bias = Tensor::from_slice(&[3], &[0.1, -0.2, 0.3]).expect("shape");
    let mut group = c.benchmark_group("tensor/elementwise");
    group.throughput(Throughput::Elements(x.len() as u64));
    group.bench_function("add_same_shape/32x24x24x3", |b| b.iter(|| black_box(&x).add(black_box(&x))));
    group.bench_function("add_bias_broadcast/32x24x24x3", |b| b.iter(|| black_box(&x).add(black_box(&bias))));
    let probs = Tensor::from_fn(&[10_000, 10], |i| ((i * 7919) % 101) as f32).expect("shape");
    group.throughput(Throughput::Elements(probs.len() as u64));
    group.bench_function("argmax_axis1/10000x10", |b| b.iter(|| black_box(&probs).argmax(1)));
    group.finish();
}

criterion_group!(benches, conversions, elementwise);
criterion_main!(benches);
