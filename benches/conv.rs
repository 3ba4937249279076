//! Convolution throughput (FLOP/s counted as direct convolution, `Conv2dGeometry::flops`): every algorithm that
//! applies × every ISA this CPU supports × forward, backward-data and backward-filter, on the flagship layers (batch
//! 32 and 256) and 3×3 `same` layers with 64/128/256 channels (batch 32), single-threaded.
//!
//! `cargo benches --bench conv` (ids `conv/<algo>/<isa>/<shape>/<pass>`; filter with e.g.
//! `-- 'conv/direct/avx512/conv1'`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::conv_cases;
use kiln_kernels::{AlignedVec, ConvAlgo, ConvOptions, ConvPass, Isa, Kernels, Threads, WinogradTile};

/// 64-byte aligned, as a `kiln_tensor::Tensor`'s storage (and PyTorch's CPU allocator) is: from a 16-byte aligned
/// `Vec`, every 64-byte vector store to an image straddles two cache lines.
fn data(len: usize, salt: usize) -> AlignedVec {
    (0..len).map(|i| ((i * 7 + salt) % 17) as f32 / 17.0 - 0.5).collect()
}

fn algos() -> [ConvAlgo; 6] {
    [
        ConvAlgo::Direct,
        ConvAlgo::ImplicitGemm,
        ConvAlgo::Im2col,
        ConvAlgo::Winograd(WinogradTile::F2x2K3x3),
        ConvAlgo::Winograd(WinogradTile::F4x4K3x3),
        ConvAlgo::Winograd(WinogradTile::F2x2K5x5),
    ]
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv");
    group.warm_up_time(Duration::from_millis(300));
    for case in conv_cases().expect("bench shapes are valid") {
        let g = case.geometry;
        // The flagship layers (≤ 0.1 GFLOP, microseconds per call) get 60 samples over 3 s: with 10 samples in 1 s
        // their medians moved by up to ±40 % between runs on a shared VM. The 3×3 layers (7.4 GFLOP, tens of
        // milliseconds per call) keep criterion's minimum of 10 samples.
        if g.flops() < 1_000_000_000 {
            group.sample_size(60).measurement_time(Duration::from_secs(3));
        } else {
            group.sample_size(10).measurement_time(Duration::from_secs(1));
        }
        let (x, w, b) = (data(g.input_len(), 1), data(g.weight_len(), 2), data(g.bias_len(), 3));
        let dy = data(g.output_len(), 4);
        let (mut y, mut dx, mut dw) =
            (AlignedVec::zeros(g.output_len()), AlignedVec::zeros(g.input_len()), AlignedVec::zeros(g.weight_len()));
        group.throughput(Throughput::Elements(g.flops()));
        for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
            let k = Kernels::for_isa(isa).expect("supported");
            for algo in algos() {
                for pass in [ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter] {
                    if algo.unsupported_reason(&g, pass).is_some() {
                        continue;
                    }
                    let opts = ConvOptions::algo(algo).threads(Threads::Single);
                    let id = BenchmarkId::from_parameter(format!("{algo}/{isa}/{}/{pass}", case.name));
                    group.bench_function(id, |bch| {
                        bch.iter(|| {
                            let r = match pass {
                                ConvPass::Forward => k.conv2d_forward(&g, opts, &x, &w, Some(&b), &mut y),
                                ConvPass::BackwardData => k.conv2d_backward_data(&g, opts, &dy, &w, &mut dx),
                                ConvPass::BackwardFilter => k.conv2d_backward_filter(&g, opts, &x, &dy, &mut dw),
                            };
                            black_box(r.expect("valid shapes"));
                        })
                    });
                }
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
