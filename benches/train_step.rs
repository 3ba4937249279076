//! One full training step of the flagship model (forward, fused softmax cross-entropy, backward, RMSprop
//! update) on a batch of 32 raw-pixel MNIST images — `train_step/flagship/batch32` on the best ISA and the
//! default thread pool, plus every available ISA with 1 and 2 threads — and batch-1 inference latency
//! (`predict/flagship/batch1/<isa>`). `-data-parallel` variants split each batch over two replicas
//! (`Model::set_data_parallel`); `flagship/batch32/policy/<float32|mixed_bfloat16>/<gemm>` compare the dtype
//! policies (two threads, data-parallel). Throughput is in images per second. After the measurements a per-layer
//! breakdown of the step (median of 300 profiled steps per ISA, 1 thread) is printed, with each pass's GFLOP/s and
//! fraction of the one-thread FMA peak and the bytes per step (estimated from the plan).
//!
//! Real images come from `MNIST_DIR` when set, otherwise deterministic synthetic pixels.
//!
//! `cargo benches --bench train_step`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_kernels::Isa;
use kiln_nn::prelude::*;
use kiln_tensor::Tensor;

fn model() -> Model {
    let inputs = Input::new(&[28, 28, 1]);
    let x = Conv2D::new(3, 5).activation(ActivationFn::Swish).call(&inputs).expect("conv2d");
    let x = Conv2D::new(6, 5).activation(ActivationFn::Swish).call(&x).expect("conv2d_1");
    let x = Flatten::new().call(&x).expect("flatten");
    let x = Dense::new(84).activation(ActivationFn::Swish).call(&x).expect("dense");
    let outputs = Dense::new(10).activation(ActivationFn::Softmax).call(&x).expect("dense_1");
    let mut m = Model::new(&inputs, &outputs).expect("model");
    m.compile("categorical_crossentropy", Optimizer::rmsprop(), &["accuracy"]).expect("compile");
    m
}

fn batch() -> (Tensor, Tensor) {
    let (pixels, labels): (Vec<u8>, Vec<u8>) = match std::env::var_os("MNIST_DIR").map(kiln_mnist::Mnist::load) {
        Some(Ok(m)) => (m.train.pixels()[..32 * 784].to_vec(), m.train.labels()[..32].to_vec()),
        _ => ((0..32 * 784).map(|i| ((i * 37) % 256) as u8).collect(), (0..32).map(|i| (i % 10) as u8).collect()),
    };
    let x = ImagesU8::new(&pixels, [28, 28, 1], 1.0).expect("images");
    let y = OneHot::new(&labels, 10).expect("labels");
    (x.to_tensor().expect("x"), y.to_tensor().expect("y"))
}

fn bench(c: &mut Criterion) {
    let (x, y) = batch();
    let mut group = c.benchmark_group("train_step");
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3)).sample_size(40);
    group.throughput(Throughput::Elements(32));
    let mut m = model();
    group.bench_function("flagship/batch32", |b| b.iter(|| m.train_on_batch(black_box(&x), &y).expect("step")));
    for isa in Isa::available() {
        for (threads, dp) in [(1, false), (2, false), (1, true), (2, true)] {
            let mut m = model();
            m.set_isa(isa).expect("isa");
            m.set_threads(Some(threads)).expect("threads");
            m.set_data_parallel(dp);
            let id = format!("{isa}/{threads}t{}", if dp { "-data-parallel" } else { "" });
            group.bench_function(BenchmarkId::new("flagship/batch32", id), |b| {
                b.iter(|| m.train_on_batch(black_box(&x), &y).expect("step"))
            });
        }
    }
    // Keras' mixed_bfloat16 policy beside float32, data-parallel on both threads as the training job runs it.
    for policy in [DTypePolicy::Float32, DTypePolicy::MixedBfloat16] {
        let mut m = model();
        m.set_threads(Some(2)).expect("threads");
        m.set_data_parallel(true);
        m.set_dtype_policy_to(policy);
        let id = format!("{policy}/{}", policy.product_gemm(m.kernels()).replace(['/', ' '], "-"));
        group.bench_function(BenchmarkId::new("flagship/batch32/policy", id), |b| {
            b.iter(|| m.train_on_batch(black_box(&x), &y).expect("step"))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("predict");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2)).sample_size(50);
    group.throughput(Throughput::Elements(1));
    for isa in Isa::available() {
        let mut m = model();
        m.set_isa(isa).expect("isa");
        m.set_threads(None).expect("threads");
        let one = x.rows(0..1).expect("one image");
        group.bench_function(BenchmarkId::new("flagship/batch1", isa.to_string()), |b| {
            b.iter(|| m.predict_on_batch(black_box(&one)).expect("predict"))
        });
    }
    group.finish();

    for isa in Isa::available() {
        breakdown(isa, &x, &y);
    }
}

/// Median per-layer forward/backward times over 300 profiled steps (1 thread), with each layer's share, its
/// GFLOP/s (training FLOPs from the layers' geometry) and their fraction of this ISA's one-thread FMA peak, and the
/// bytes the step moves (estimated from the plan).
fn breakdown(isa: Isa, x: &Tensor, y: &Tensor) {
    let mut m = model();
    m.set_isa(isa).expect("isa");
    m.set_threads(Some(1)).expect("threads");
    let peak = m.kernels().fma_peak(1, Duration::from_millis(100), 5).expect("peak probe").best_gflops;
    let runs: Vec<_> = (0..330).map(|_| m.profile_step(x, y).expect("profile")).skip(30).collect();
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let total = median(runs.iter().map(|p| p.total).collect());
    let batch = x.shape().dims()[0] as f64;
    let flops = m.train_flops_per_layer();
    let bytes = m.step_bytes(x.shape().dims()[0]);
    let step_gflops = batch * m.train_flops_per_sample() as f64 / total.as_secs_f64() / 1e9;
    println!(
        "\ntrain_step breakdown, {isa}, 1 thread, median of {} steps: total {total:?} = {:.1} GFLOP/s, {:.1} % of \
         the one-thread FMA peak ({peak:.1} GFLOP/s); {:.2} MB moved per step (estimate: activations {:.2}, weights \
         {:.2}, optimizer {:.2}) = {:.1} GB/s",
        runs.len(),
        step_gflops,
        100.0 * step_gflops / peak,
        bytes.total() as f64 / 1e6,
        bytes.activations as f64 / 1e6,
        bytes.weights as f64 / 1e6,
        bytes.optimizer as f64 / 1e6,
        bytes.total() as f64 / total.as_secs_f64() / 1e9,
    );
    let share = |d: Duration| 100.0 * d.as_secs_f64() / total.as_secs_f64();
    // GFLOP/s of a pass and its % of the peak ("" for a pass without FMA-bound products).
    let rate = |f: u64, d: Duration| {
        if f == 0 {
            String::new()
        } else {
            let g = batch * f as f64 / d.as_secs_f64() / 1e9;
            format!("{g:>5.1} GFLOP/s {:>4.1}%", 100.0 * g / peak)
        }
    };
    for (i, l) in runs[0].layers.iter().enumerate() {
        let f = median(runs.iter().map(|p| p.layers[i].forward).collect());
        let b = median(runs.iter().map(|p| p.layers[i].backward).collect());
        let (ff, bf) = flops.get(i).map_or((0, 0), |l| (l.forward, l.backward));
        println!(
            "  {:<9} forward {:>9.1?} ({:>4.1}%) {:<20}  backward {:>9.1?} ({:>4.1}%) {}",
            l.name,
            f,
            share(f),
            rate(ff, f),
            b,
            share(b),
            rate(bf, b)
        );
    }
    let loss = median(runs.iter().map(|p| p.loss).collect());
    let opt = median(runs.iter().map(|p| p.optimizer).collect());
    println!(
        "  loss      {loss:>9.1?} ({:>4.1}%)  optimizer {opt:>9.1?} ({:>4.1}%, {:.1} GB/s)",
        share(loss),
        share(opt),
        bytes.optimizer as f64 / opt.as_secs_f64() / 1e9
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
