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
