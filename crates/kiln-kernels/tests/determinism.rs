//! Results do not depend on the number of threads: 1, 2 and 3 rayon threads give bitwise the same C as the
//! single-threaded path, for every ISA this host runs, on shapes that do get split (by rows and by columns).

mod common;

use common::gemm::values;
use kiln_kernels::{GemmGeometry, Isa, Kernels, PARALLEL_MIN_FLOPS, Threads, Transpose};

fn shapes() -> Vec<(GemmGeometry, &'static str)> {
    vec![
        (GemmGeometry::new(200, 300, 300).unwrap(), "200x300x300"),
        // The flagship Dense products: forward, backward-data (dY·Wᵀ), backward-weight (Xᵀ·dY).
        (GemmGeometry::new(32, 84, 2400).unwrap(), "dense fwd"),
        (GemmGeometry::spec(32, 2400, 84).trans_b(Transpose::Yes).build().unwrap(), "dense bwd-data"),
        (GemmGeometry::spec(2400, 84, 32).trans_a(Transpose::Yes).build().unwrap(), "dense bwd-weight"),
        (GemmGeometry::new(13, 700, 300).unwrap(), "13x700x300 (column split)"),
    ]
}

#[test]
fn thread_count_does_not_change_results() {
    for isa in Isa::available() {
        let kernels = Kernels::for_isa(isa).unwrap();
        for (g, name) in shapes() {
            assert!(g.flops() >= PARALLEL_MIN_FLOPS, "{name} must be large enough to be split");
            let a = values(g.a_len(), 0, 1);
            let b = values(g.b_len(), 2, 2);
            let c0 = values(g.c_len(), 0, 3);
            let mut single = c0.clone();
            kernels.sgemm_with(Threads::Single, &g, 1.0, &a, &b, 0.5, &mut single).unwrap();
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut c = c0.clone();
                pool.install(|| kernels.sgemm_with(Threads::Rayon, &g, 1.0, &a, &b, 0.5, &mut c)).unwrap();
                let same = c.iter().zip(&single).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{}: {name} with {threads} threads differs from 1 thread", kernels.gemm_name());
            }
        }
    }
}

/// A row of C does not depend on how many rows the product has: the loop nest's tiles, its short tile and the
/// 16-row paths (row-contiguous B and stored Bᵀ, one slab or several) compute each element with the same
/// operations. Every shape is computed whole and one row at a time (which takes another path for every size here),
/// bitwise compared.
#[test]
fn rows_do_not_depend_on_the_path() {
    for isa in Isa::available() {
        let kernels = Kernels::for_isa(isa).unwrap();
        for m in [4, 12, 13, 16, 20, 32, 64, 80] {
            let shapes = [
                GemmGeometry::new(m, 84, 2400).unwrap(),
                GemmGeometry::new(m, 10, 84).unwrap(),
                GemmGeometry::new(m, 33, 300).unwrap(),
                GemmGeometry::spec(m, 2400, 84).trans_b(Transpose::Yes).build().unwrap(),
                GemmGeometry::spec(m, 70, 200).trans_a(Transpose::Yes).trans_b(Transpose::Yes).build().unwrap(),
            ];
            for g in shapes {
                let a = values(g.a_len(), 0, 11);
                let b = values(g.b_len(), 2, 12);
                let c0 = values(g.c_len(), 0, 13);
                let mut whole = c0.clone();
                kernels.sgemm_with(Threads::Single, &g, 1.0, &a, &b, 0.5, &mut whole).unwrap();
                let (n, k) = (g.n(), g.k());
                for i in 0..m {
                    // Row i of op(A) as a 1-row matrix stored the same way.
                    let row: Vec<f32> = if g.trans_a().is_transposed() {
                        (0..k).map(|p| a[p * m + i]).collect()
                    } else {
                        a[i * k..(i + 1) * k].to_vec()
                    };
                    let g1 = GemmGeometry::spec(1, n, k).trans_a(g.trans_a()).trans_b(g.trans_b()).build().unwrap();
                    let mut c = c0[i * n..(i + 1) * n].to_vec();
                    kernels.sgemm_with(Threads::Single, &g1, 1.0, &row, &b, 0.5, &mut c).unwrap();
                    let same = c.iter().zip(&whole[i * n..]).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{}: {m}x{n}x{k} {g:?}: row {i} differs when computed alone", kernels.gemm_name());
                }
            }
        }
    }
}
