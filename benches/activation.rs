//! Elementwise kernels per ISA (elements/s) on the flagship network's sizes: swish forward/backward on the conv1
//! activations (32×24×24×3) and the Dense1 output (32×84), exp, the fused softmax + cross-entropy on 32×10 logits,
//! one RMSprop step over all 203,068 parameters, and the conv1 bias gradient (column sums of 18,432×3).
//!
//! `cargo benches --bench activation`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_kernels::elementwise::channel::{BnGrad, BnGradCoefficients};
use kiln_kernels::{Isa, Kernels};

fn data(len: usize, salt: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7 + salt) % 23) as f32 / 4.0 - 3.0).collect()
}

/// Elements of one replica's activations after the Fashion flagship's first convolutions (batch 32, 28×28×32).
const FASHION_BN: usize = 32 * 28 * 28 * 32;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("activation");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(30);
    let conv1 = 32 * 24 * 24 * 3;
    let (x, dy) = (data(conv1, 1), data(conv1, 2));
    let mut out = vec![0.0f32; conv1];
    let logits = data(32 * 10, 3);
    let mut targets = vec![0.0f32; 32 * 10];
    for r in 0..32 {
        targets[r * 10 + r % 10] = 1.0;
    }
    let (mut probs, mut losses) = (vec![0.0f32; 320], vec![0.0f32; 32]);
    let params = 203_068;
    let (mut w, g, mut v) = (data(params, 4), data(params, 5), vec![0.0f32; params]);
    let mut db = vec![0.0f32; 3];
    let mut deriv = vec![0.0f32; conv1];
    for isa in Isa::available() {
        let k = Kernels::for_isa(isa).expect("available");
        group.throughput(Throughput::Elements(conv1 as u64));
        group.bench_function(BenchmarkId::new("swish", format!("{isa}/32x24x24x3")), |b| {
            b.iter(|| k.swish(black_box(&x), &mut out))
        });
        group.bench_function(BenchmarkId::new("swish_backward", format!("{isa}/32x24x24x3")), |b| {
            b.iter(|| k.swish_backward(black_box(&x), &dy, &mut out))
        });
        // The training pair: forward storing swish′, backward multiplying by it.
        group.bench_function(BenchmarkId::new("swish_with_derivative", format!("{isa}/32x24x24x3")), |b| {
            b.iter(|| k.swish_with_derivative(black_box(&x), &mut out, &mut deriv))
        });
        group.bench_function(BenchmarkId::new("multiply", format!("{isa}/32x24x24x3")), |b| {
            b.iter(|| k.multiply(black_box(&deriv), &dy, &mut out))
        });
        group.bench_function(BenchmarkId::new("exp", format!("{isa}/32x24x24x3")), |b| {
            b.iter(|| k.exp(black_box(&x), &mut out))
        });
        group.bench_function(BenchmarkId::new("column_sums", format!("{isa}/18432x3")), |b| {
            b.iter(|| k.column_sums(black_box(&dy), &mut db))
        });
        // BatchNormalization + ReLU of the Fashion flagship's first layers: one replica's 32×28×28×32 activations.
        let (bn_x, bn_dy) = (data(FASHION_BN, 6), data(FASHION_BN, 7));
        let (bn_a, bn_b) = (data(32, 8), data(32, 9));
        let (mut bn_y, mut bn_dx) = (vec![0.0f32; FASHION_BN], vec![0.0f32; FASHION_BN]);
        group.throughput(Throughput::Elements(FASHION_BN as u64));
        group.bench_function(BenchmarkId::new("batch_norm_relu", format!("{isa}/32x28x28x32")), |b| {
            b.iter(|| k.channel_affine(black_box(&bn_x), &bn_a, &bn_b, true, &mut bn_y))
        });
        let _ = k.channel_affine(&bn_x, &bn_a, &bn_b, true, &mut bn_y);
        let coef =
            BnGradCoefficients { scale: &bn_a, inv_std: &bn_b, mean: &bn_a, mean_dy: &bn_b, mean_dy_xhat: &bn_a };
        group.bench_function(BenchmarkId::new("batch_norm_relu_backward_data", format!("{isa}/32x28x28x32")), |b| {
            b.iter(|| {
                let op = BnGrad { x: &bn_x, dy: &bn_dy, relu_output: Some(&bn_y), training: true, accumulate: false };
                k.batch_norm_backward_data(coef, op, black_box(&mut bn_dx))
            })
        });
        group.throughput(Throughput::Elements(32 * 84));
        group.bench_function(BenchmarkId::new("swish", format!("{isa}/32x84")), |b| {
            b.iter(|| k.swish(black_box(&x[..32 * 84]), &mut out[..32 * 84]))
        });
        group.throughput(Throughput::Elements(320));
        group.bench_function(BenchmarkId::new("softmax_cross_entropy", format!("{isa}/32x10")), |b| {
            b.iter(|| k.softmax_cross_entropy(10, black_box(&logits), &targets, &mut probs, &mut losses))
        });
        group.throughput(Throughput::Elements(params as u64));
        group.bench_function(BenchmarkId::new("rmsprop_step", format!("{isa}/203068")), |b| {
            b.iter(|| k.rmsprop_step(&mut w, black_box(&g), &mut v, Default::default()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
