//! One training step of the Fashion-MNIST CNN (`kiln::flagships::fashion_cnn`: four 3×3 convolutions with
//! BatchNormalization, Adam) on a batch of 64 — `train_step/fashion/batch64` split over two data-parallel replicas
//! (as `cargo xtask train-fashion` trains) on 2 threads and on 1, and as one piece on 2 threads — then a per-layer breakdown of one replica's step (median of 60 profiled
//! steps, 1 thread) with each convolution's rate in direct-convolution GFLOP/s.
//!
//! Real images come from `FASHION_MNIST_DIR` when set, otherwise deterministic synthetic pixels.
//!
//! `cargo benches --bench fashion_step`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln::prelude::*;

const BATCH: usize = 64;

fn model(threads: usize) -> Model {
    let mut m = kiln::flagships::fashion_cnn().expect("model");
    m.compile("sparse_categorical_crossentropy", Optimizer::adam(), &["accuracy"]).expect("compile");
    m.set_threads(Some(threads)).expect("threads");
    m
}

fn batch() -> (Tensor, Tensor) {
    let n = BATCH;
    let (pixels, labels): (Vec<u8>, Vec<u8>) = match std::env::var_os("FASHION_MNIST_DIR").map(kiln::mnist::Mnist::load)
    {
        Some(Ok(m)) => (m.train.pixels()[..n * 784].to_vec(), m.train.labels()[..n].to_vec()),
        _ => ((0..n * 784).map(|i| ((i * 37) % 256) as u8).collect(), (0..n).map(|i| (i % 10) as u8).collect()),
    };
    let x = ImagesU8::new(&pixels, [28, 28, 1], 1.0).expect("images");
    let y: Vec<f32> = labels.iter().map(|&l| f32::from(l)).collect();
    (x.to_tensor().expect("x"), Tensor::from_vec(&[n], y).expect("y"))
}

fn bench(c: &mut Criterion) {
    let (x, y) = batch();
    let mut group = c.benchmark_group("train_step");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5)).sample_size(30);
    group.throughput(Throughput::Elements(BATCH as u64));
    for (threads, dp) in [(2, true), (1, true), (2, false)] {
        let mut m = model(threads);
        m.set_data_parallel(dp);
        let id = format!("{threads}t{}", if dp { "-data-parallel" } else { "" });
        group.bench_function(BenchmarkId::new("fashion/batch64", id), |b| {
            b.iter(|| m.train_on_batch(black_box(&x), &y).expect("step"))
        });
    }
    group.finish();
    breakdown(&x, &y);
}

/// Direct-convolution FLOPs of one pass of a `k×k` same-padded convolution.
fn conv_flops(batch: usize, hw: usize, cin: usize, cout: usize) -> f64 {
    2.0 * (batch * hw * hw * cout * 9 * cin) as f64
}

fn breakdown(x: &Tensor, y: &Tensor) {
    let mut m = model(1);
    let runs: Vec<_> = (0..70).map(|_| m.profile_step(x, y).expect("profile")).skip(10).collect();
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let total = median(runs.iter().map(|p| p.total).collect());
    println!("\nfashion train_step breakdown, {}, 1 thread, batch {BATCH}: total {total:?}", m.kernels().isa());
    let share = |d: Duration| 100.0 * d.as_secs_f64() / total.as_secs_f64();
    // (layer, spatial size, input channels, output channels) of the four convolutions.
    let convs = [("conv2d", 28, 1, 32), ("conv2d_1", 28, 32, 32), ("conv2d_2", 14, 32, 64), ("conv2d_3", 14, 64, 64)];
    for (i, l) in runs[0].layers.iter().enumerate() {
        let f = median(runs.iter().map(|p| p.layers[i].forward).collect());
        let b = median(runs.iter().map(|p| p.layers[i].backward).collect());
        let rate = convs.iter().find(|c| c.0 == l.name).map(|&(_, hw, ci, co)| {
            let passes = if ci == 1 { 2.0 } else { 3.0 };
            passes * conv_flops(BATCH, hw, ci, co) / (f + b).as_secs_f64() / 1e9
        });
        let rate = rate.map_or(String::new(), |r| format!("  {r:>6.1} GFLOP/s"));
        println!(
            "  {:<22} forward {:>9.1?} ({:>4.1}%)  backward {:>9.1?} ({:>4.1}%){rate}",
            l.name,
            f,
            share(f),
            b,
            share(b)
        );
    }
    let loss = median(runs.iter().map(|p| p.loss).collect());
    let opt = median(runs.iter().map(|p| p.optimizer).collect());
    println!("  loss {loss:>9.1?} ({:>4.1}%)  optimizer {opt:>9.1?} ({:>4.1}%)", share(loss), share(opt));
}

criterion_group!(benches, bench);
criterion_main!(benches);
