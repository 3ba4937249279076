//! SGEMM throughput (FLOP/s): every ISA this CPU supports, with the `matrixmultiply` and `gemm` crates as
//! baselines in the same group, on square sizes and the flagship Dense products (batch 32 and the data-parallel
//! half batch of 16), 1 and 2 threads.
//!
//! `cargo benches --bench gemm` (ids `gemm/<isa|baseline>/<shape>/<threads>t`)

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_kernels::{GemmGeometry, Isa, Kernels, Threads, Transpose};

struct Shape {
    name: &'static str,
    geometry: GemmGeometry,
}

fn shapes() -> Vec<Shape> {
    let mut v: Vec<Shape> = [64usize, 128, 256, 512, 1024]
        .into_iter()
        .map(|s| Shape {
            name: Box::leak(format!("square_{s}").into_boxed_str()),
            geometry: GemmGeometry::new(s, s, s).expect("valid"),
        })
        .collect();
    // The flagship Dense layers at batch 32 and on a data-parallel half batch (16 rows, what `train-mnist` runs on
    // 2 threads): forward X·W, backward-data dY·Wᵀ (at 16 rows the short stored-Bᵀ path), backward-weight Xᵀ·dY
    // (Xᵀ read in place); and Dense2's forward at batch 32.
    for m in [32usize, 16] {
        let name = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        v.push(Shape {
            name: name(format!("dense1_fwd_{m}x84x2400")),
            geometry: GemmGeometry::new(m, 84, 2400).expect("valid"),
        });
        v.push(Shape {
            name: name(format!("dense1_bwd_data_{m}x2400x84")),
            geometry: GemmGeometry::spec(m, 2400, 84).trans_b(Transpose::Yes).build().expect("valid"),
        });
        v.push(Shape {
            name: name(format!("dense1_bwd_weight_2400x84x{m}")),
            geometry: GemmGeometry::spec(2400, 84, m).trans_a(Transpose::Yes).build().expect("valid"),
        });
    }
    v.push(Shape { name: "dense2_fwd_32x10x84", geometry: GemmGeometry::new(32, 10, 84).expect("valid") });
    v
}

fn data(len: usize, salt: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7 + salt) % 17) as f32 / 17.0 - 0.5).collect()
}

/// Strides (row, column) of the stored operands for the baselines, which take general strides.
fn strides(g: &GemmGeometry) -> ((isize, isize), (isize, isize)) {
    let a = if g.trans_a().is_transposed() { (1, g.lda() as isize) } else { (g.lda() as isize, 1) };
    let b = if g.trans_b().is_transposed() { (1, g.ldb() as isize) } else { (g.ldb() as isize, 1) };
    (a, b)
}

#[allow(unsafe_code)]
fn baseline_matrixmultiply(g: &GemmGeometry, a: &[f32], b: &[f32], c: &mut [f32]) {
    let ((rsa, csa), (rsb, csb)) = strides(g);
    // SAFETY: the slices hold g.a_len(), g.b_len(), g.c_len() elements, which is what the strides address.
    unsafe {
        matrixmultiply::sgemm(
            g.m(),
            g.k(),
            g.n(),
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            g.ldc() as isize,
            1,
        )
    }
}

#[allow(unsafe_code)]
fn baseline_gemm(g: &GemmGeometry, a: &[f32], b: &[f32], c: &mut [f32], threads: usize) {
    let ((rsa, csa), (rsb, csb)) = strides(g);
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: as above. The gemm crate computes dst = alpha·dst + beta·lhs·rhs; read_dst = false ignores dst.
    unsafe {
        gemm::gemm(
            g.m(),
            g.n(),
            g.k(),
            c.as_mut_ptr(),
            1,
            g.ldc() as isize,
            false,
            a.as_ptr(),
            csa,
            rsa,
            b.as_ptr(),
            csb,
            rsb,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        )
    }
}

fn bench(c: &mut Criterion) {
    let pool2 = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("rayon pool");
    let mut group = c.benchmark_group("gemm");
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(20);
    for shape in shapes() {
        let g = shape.geometry;
        let (a, b) = (data(g.a_len(), 1), data(g.b_len(), 2));
        let mut out = vec![0.0f32; g.c_len()];
        // The baselines must compute the same product (their stride conventions differ from ours).
        let mut ours = vec![0.0f32; g.c_len()];
        kiln_kernels::sgemm(&g, 1.0, &a, &b, 0.0, &mut ours).expect("valid");
        let scale = ours.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        baseline_matrixmultiply(&g, &a, &b, &mut out);
        assert!(ours.iter().zip(&out).all(|(x, y)| (x - y).abs() <= 1e-4 * scale), "matrixmultiply differs");
        baseline_gemm(&g, &a, &b, &mut out, 1);
        assert!(ours.iter().zip(&out).all(|(x, y)| (x - y).abs() <= 1e-4 * scale), "gemm crate differs");
        group.throughput(Throughput::Elements(g.flops()));
        for threads in [1usize, 2] {
            let param = format!("{}/{threads}t", shape.name);
            for isa in Isa::available() {
                let k = Kernels::for_isa(isa).expect("available");
                group.bench_with_input(BenchmarkId::new(isa.name(), &param), &g, |bench, g| {
                    if threads == 1 {
                        bench.iter(|| k.sgemm_with(Threads::Single, g, 1.0, &a, &b, 0.0, black_box(&mut out)));
                    } else {
                        pool2.install(|| {
                            bench.iter(|| k.sgemm_with(Threads::Rayon, g, 1.0, &a, &b, 0.0, black_box(&mut out)))
                        });
                    }
                });
            }
            if threads == 1 {
                group.bench_with_input(BenchmarkId::new("matrixmultiply", &param), &g, |bench, g| {
                    bench.iter(|| baseline_matrixmultiply(g, &a, &b, black_box(&mut out)))
                });
            }
            group.bench_with_input(BenchmarkId::new("gemm-crate", &param), &g, |bench, g| {
                pool2.install(|| bench.iter(|| baseline_gemm(g, &a, &b, black_box(&mut out), threads)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
