//! The GEMM property, shared by `tests/gemm.rs` (every x86_64 ISA) and the harness-free `tests/neon.rs`.

use kiln_kernels::reference::{self, K_DIRECT};
use kiln_kernels::{GemmGeometry, Kernels, Threads, Transpose};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// A GEMM problem: sizes, layout, scalars and a value seed.
#[derive(Debug, Clone)]
pub struct GemmCase {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    /// Extra elements per stored row of A, B, C (0 = contiguous).
    pub pads: [usize; 3],
    pub alpha: f32,
    pub beta: f32,
    /// 0: U(−1,1); 1: raw pixels 0..255; 2: all positive U(0,1) (long reductions); 3: sparse.
    pub dist: u8,
    pub seed: u64,
}

/// Sizes around every ISA's tile edges (MR 4/6/8/12, NR 12/16/32) and cache blocks (MC 128/144/480).
fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => 1..=18usize,
        2 => 23..=35usize,
        1 => 36..=70usize,
        1 => prop_oneof![Just(47usize), Just(97), Just(127), Just(129), Just(143), Just(145), Just(481)],
    ]
}

/// Depths: 0, 1, small, around the KC blocks (256, 640) and beyond.
fn depth() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(0usize),
        4 => 1..=40usize,
        1 => 250..=262usize,
        1 => prop_oneof![Just(513usize), Just(641), Just(700)],
    ]
}

pub fn gemm_case() -> impl Strategy<Value = GemmCase> {
    (
        (dim(), dim(), depth()),
        (any::<bool>(), any::<bool>()),
        proptest::array::uniform3(prop_oneof![3 => Just(0usize), 1 => Just(3usize), 1 => Just(7usize)]),
        (prop_oneof![Just(1.0f32), Just(-0.5), Just(2.5)], prop_oneof![Just(0.0f32), Just(1.0), Just(0.5), Just(-1.0)]),
        (0u8..4, any::<u64>()),
    )
        .prop_filter("keep the f64 reference cheap", |((m, n, k), ..)| m * n * (*k).max(1) <= 1_500_000)
        .prop_map(|((m, n, k), (trans_a, trans_b), pads, (alpha, beta), (dist, seed))| GemmCase {
            m,
            n,
            k,
            trans_a,
            trans_b,
            pads,
            alpha,
            beta,
            dist,
            seed,
        })
}

/// Deterministic values for a case (xorshift), drawn from the case's distribution.
pub fn values(len: usize, dist: u8, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            match dist {
                0 => 2.0 * u - 1.0,
                1 => (u * 256.0).floor(),
                2 => u,
                _ => {
                    if u < 0.8 {
                        0.0
                    } else {
                        10.0 * u - 9.0
                    }
                }
            }
        })
        .collect()
}

/// Stores a dense `rows × cols` matrix with row stride `ld`, NaN in the gaps and in `guard` trailing elements.
fn store(dense: &[f32], rows: usize, cols: usize, ld: usize, guard: usize) -> Vec<f32> {
    let len = if rows == 0 || cols == 0 { 0 } else { (rows - 1) * ld + cols };
    let mut out = vec![f32::NAN; len + guard];
    for r in (0..rows).filter(|_| cols > 0) {
        out[r * ld..r * ld + cols].copy_from_slice(&dense[r * cols..(r + 1) * cols]);
    }
    out
}

const GUARD: usize = 5;

/// The case's geometry with the given leading dimensions.
fn geometry(case: &GemmCase, lda: usize, ldb: usize, ldc: usize) -> Result<GemmGeometry, TestCaseError> {
    GemmGeometry::spec(case.m, case.n, case.k)
        .trans_a(Transpose::from_bool(case.trans_a))
        .trans_b(Transpose::from_bool(case.trans_b))
        .lda(lda)
        .ldb(ldb)
        .ldc(ldc)
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))
}

/// Every element of C outside its `m × n` block (gaps and guard band, NaN-filled by [`store`]) is still NaN.
fn untouched_outside(c: &[f32], m: usize, n: usize, ldc: usize, name: &str) -> Result<(), TestCaseError> {
    for (idx, v) in c.iter().enumerate() {
        let (row, col) = (idx / ldc, idx % ldc);
        let inside = row < m && col < n;
        prop_assert!(inside || v.is_nan(), "{name}: guard/gap element {idx} was written ({v})");
    }
    Ok(())
}

/// Runs `kernels` on the case and compares with the f64 reference (K = 8), checking that NaN gaps and guard bands
/// around C survive and that `beta = 0` does not read C.
pub fn check_gemm(kernels: &Kernels, case: &GemmCase, threads: Threads) -> Result<(), TestCaseError> {
    let GemmCase { m, n, k, trans_a, trans_b, pads, alpha, beta, dist, seed } = *case;
    let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
    let (br, bc) = if trans_b { (n, k) } else { (k, n) };
    let (lda, ldb, ldc) = (ac.max(1) + pads[0], bc.max(1) + pads[1], n.max(1) + pads[2]);
    let a = store(&values(ar * ac, dist, seed), ar, ac, lda, GUARD);
    let b = store(&values(br * bc, dist, seed ^ 0x9e37_79b9), br, bc, ldb, GUARD);
    let c0 = values(m * n, 0, seed ^ 0x5555);
    let mut c = store(&c0, m, n, ldc, GUARD);
    let g = geometry(case, lda, ldb, ldc)?;
    let want = reference::gemm(&g, alpha, &a, &b, beta, &c).map_err(|e| TestCaseError::fail(e.to_string()))?;
    if beta == 0.0 {
        // C must not be read: poison its valid elements too.
        for i in 0..m {
            c[i * ldc..i * ldc + n].fill(f32::NAN);
        }
    }
    kernels.sgemm_with(threads, &g, alpha, &a, &b, beta, &mut c).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let got = (0..m).flat_map(|i| c[i * ldc..i * ldc + n].to_vec());
    want.check(got, K_DIRECT).map_err(|e| TestCaseError::fail(format!("{}: {e}", kernels.gemm_name())))?;
    untouched_outside(&c, m, n, ldc, kernels.gemm_name())?;
    Ok(())
}

/// The bf16 twin of [`check_gemm`]: A and B rounded to bfloat16 (NaN in the gaps), `Kernels::gemm::<bf16>`
/// against the f64 reference on the same (exactly widened) values with the f32 GEMM's tolerance — every bf16
/// product is exact in f32, so what remains is the f32 accumulation the f32 bound covers. Returns C (with its
/// gaps) for bitwise comparisons between paths.
pub fn check_gemm_bf16(kernels: &Kernels, case: &GemmCase, threads: Threads) -> Result<Vec<f32>, TestCaseError> {
    use half::bf16;
    let GemmCase { m, n, k, trans_a, trans_b, pads, alpha, beta, dist, seed } = *case;
    let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
    let (br, bc) = if trans_b { (n, k) } else { (k, n) };
    let (lda, ldb, ldc) = (ac.max(1) + pads[0], bc.max(1) + pads[1], n.max(1) + pads[2]);
    let round = |v: Vec<f32>| v.into_iter().map(|x| bf16::from_f32(x).to_f32()).collect::<Vec<f32>>();
    let a = store(&round(values(ar * ac, dist, seed)), ar, ac, lda, GUARD);
    let b = store(&round(values(br * bc, dist, seed ^ 0x9e37_79b9)), br, bc, ldb, GUARD);
    let (a16, b16): (Vec<bf16>, Vec<bf16>) =
        (a.iter().map(|&x| bf16::from_f32(x)).collect(), b.iter().map(|&x| bf16::from_f32(x)).collect());
    let c0 = values(m * n, 0, seed ^ 0x5555);
    let mut c = store(&c0, m, n, ldc, GUARD);
    let g = geometry(case, lda, ldb, ldc)?;
    let want = reference::gemm(&g, alpha, &a, &b, beta, &c).map_err(|e| TestCaseError::fail(e.to_string()))?;
    if beta == 0.0 {
        for i in 0..m {
            c[i * ldc..i * ldc + n].fill(f32::NAN);
        }
    }
    let name = kernels.gemm_name_for(kiln_kernels::DType::BF16);
    kernels.gemm(threads, &g, alpha, &a16, &b16, beta, &mut c).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let got = (0..m).flat_map(|i| c[i * ldc..i * ldc + n].to_vec());
    want.check(got, K_DIRECT).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
    untouched_outside(&c, m, n, ldc, &name)?;
    Ok(c)
}
