//! The bf16 side of the tape: `round_bf16` (value rounded to nearest even, the gradient rounded or passed on) and
//! `dense` on bf16 operands, which runs its three products on the bf16 GEMM.
//!
//! Reference: the same products in f64 on the bf16-rounded operands (and, backward, on the output gradient
//! rounded to bf16). Every product of two bf16 values is exact in f32, so the only error left is the f32
//! accumulation: per element `|got − ref| ≤ 8·eps32·Σ|aᵢ·bᵢ|` (KERNELS.md §1.6 with K = 8). A wrong rounding of
//! an operand is off by up to 2⁻⁹ relative per term — hundreds of times that bound for these sizes.

use half::bf16;
use kiln_autograd::{GradRounding, Params, Tape};
use kiln_kernels::Kernels;
use kiln_tensor::Tensor;
use proptest::prelude::*;

fn round(v: f32) -> f32 {
    bf16::from_f32(v).to_f32()
}

/// `sum_p a[i,p]·b[p,j]` and `sum_p |a[i,p]·b[p,j]|` in f64, for `a` read through `at(i, p)` and `b` through
/// `bt(p, j)`.
fn product(
    m: usize,
    n: usize,
    depth: usize,
    at: impl Fn(usize, usize) -> f32,
    bt: impl Fn(usize, usize) -> f32,
) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut abs) = (0.0f64, 0.0f64);
            for p in 0..depth {
                let t = f64::from(at(i, p)) * f64::from(bt(p, j));
                s += t;
                abs += t.abs();
            }
            out.push((s, abs));
        }
    }
    out
}

fn assert_close(what: &str, got: &[f32], want: &[(f64, f64)]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    let eps = f64::from(f32::EPSILON);
    for (i, (&g, &(r, abs))) in got.iter().zip(want).enumerate() {
        let tol = 8.0 * eps * abs + 1e-30;
        prop_assert!((f64::from(g) - r).abs() <= tol, "{what}[{i}]: {g} vs {r} (tolerance {tol:e})");
    }
    Ok(())
}

fn values(len: usize) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-3.0f32..3.0, len)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: kiln_kernels::testing::cases(24), ..ProptestConfig::default() })]

    /// `x·w + b` with `x` and `w` rounded to bf16 and the output rounded again, backward from a seed gradient
    /// (through the output's cast, or straight into the product, which then rounds it itself): every result
    /// against the f64 products of the rounded operands.
    #[test]
    fn dense_on_bf16_operands(m in 1usize..24, k in 1usize..70, n in 1usize..40, data in values(24 * 70 + 70 * 40 + 40 + 24 * 40), through_cast in any::<bool>()) {
        // The best table (the bf16 GEMM where the CPU has bf16 arithmetic) and one without it (the f32 GEMM).
        let best = Kernels::best();
        for kernels in [best, best.bf16_by_widening()] {
            dense_case(kernels, m, k, n, &data, through_cast)?;
        }
    }
}

fn dense_case(
    kernels: &'static Kernels,
    m: usize,
    k: usize,
    n: usize,
    data: &[f32],
    through_cast: bool,
) -> Result<(), TestCaseError> {
    let (xs, rest) = data.split_at(m * k);
    let (ws, rest) = rest.split_at(k * n);
    let (bs, rest) = rest.split_at(n);
    let seed = &rest[..m * n];
    let mut params = Params::new();
    let w_id = params.add("w", &Tensor::from_slice(&[k, n], ws).unwrap(), true).unwrap();
    let b_id = params.add("b", &Tensor::from_slice(&[n], bs).unwrap(), true).unwrap();
    let x_id = params.add("x", &Tensor::from_slice(&[m, k], xs).unwrap(), true).unwrap();
    let mut tape = Tape::with_kernels(kernels);
    let mut rec = tape.record(&params);
    let (x, w, b) = (rec.param(x_id).unwrap(), rec.param(w_id).unwrap(), rec.param(b_id).unwrap());
    let xr = rec.round_bf16(x, GradRounding::Bf16).unwrap();
    let wr = rec.round_bf16(w, GradRounding::Exact).unwrap();
    prop_assert!(rec.is_bf16(xr) && rec.is_bf16(wr) && !rec.is_bf16(x));
    let y = rec.dense(xr, wr, Some(b)).unwrap();
    let yr = rec.round_bf16(y, GradRounding::Bf16).unwrap();
    // Rounding a bf16 value again is the value itself.
    prop_assert_eq!(rec.round_bf16(yr, GradRounding::Bf16).unwrap(), yr);

    let xb: Vec<f32> = xs.iter().map(|&v| round(v)).collect();
    let wb: Vec<f32> = ws.iter().map(|&v| round(v)).collect();
    let mut want = product(m, n, k, |i, p| xb[i * k + p], |p, j| wb[p * n + j]);
    // The bias joins the sum (and its magnitude the bound: the f32 addition rounds relative to it).
    for (i, (s, abs)) in want.iter_mut().enumerate() {
        *s += f64::from(bs[i % n]);
        *abs += f64::from(bs[i % n].abs());
    }
    let y_got = rec.value(y).unwrap().to_vec();
    assert_close("y", &y_got, &want)?;
    let yr_got = rec.value(yr).unwrap().to_vec();
    prop_assert!(yr_got.iter().zip(&y_got).all(|(&a, &b)| a.to_bits() == round(b).to_bits()));

    // Backward: the gradient reaching the product is rounded to bf16 (by `yr`'s cast, or by the product).
    rec.backward_from(if through_cast { yr } else { y }, seed).unwrap();
    let dy: Vec<f32> = seed.iter().map(|&v| round(v)).collect();
    // dx = dy·wᵀ, then rounded by `xr`'s cast (Bf16).
    let dx_want = product(m, k, n, |i, p| dy[i * n + p], |p, j| wb[j * n + p]);
    let dx_got = tape.param_grad(x_id).unwrap().to_vec();
    for (i, (&g, &(r, abs))) in dx_got.iter().zip(&dx_want).enumerate() {
        prop_assert_eq!(g, round(g), "dx[{}] = {} is not a bf16 value", i, g);
        // One bf16 rounding (2⁻⁸ relative) on top of the accumulation bound.
        let tol = 8.0 * f64::from(f32::EPSILON) * abs + r.abs() / 256.0 + 1e-30;
        prop_assert!((f64::from(g) - r).abs() <= tol, "dx[{}]: {} vs {}", i, g, r);
    }
    // dw = xᵀ·dy, in full (the weight's cast passes its gradient on).
    let dw_want = product(k, n, m, |i, p| xb[p * k + i], |p, j| dy[p * n + j]);
    assert_close("dw", tape.param_grad(w_id).unwrap(), &dw_want)?;
    // db = column sums of the gradient as it reached the product (the bias is added in f32 before the cast).
    let dyb: Vec<f32> = if through_cast { dy.clone() } else { seed.to_vec() };
    let db_want = product(1, n, m, |_, _| 1.0, |p, j| dyb[p * n + j]);
    assert_close("db", tape.param_grad(b_id).unwrap(), &db_want)?;
    Ok(())
}

/// `round_bf16` rounds to nearest even like `half`, keeps NaN and infinities, and passes or rounds the gradient
/// as asked.
#[test]
fn round_bf16_values_and_gradients() {
    let xs = [1.0f32, 1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0, -2.7182817, 3.0e38, f32::INFINITY, f32::NAN, 1.0e-40];
    let seed = [1.0f32 + 1.0 / 512.0, 0.3, -0.1, 7.77, 1.0e-3, 2.0, 0.5, -1.0 / 3.0];
    for grad in [GradRounding::Bf16, GradRounding::Exact] {
        let mut params = Params::new();
        let id = params.add("x", &Tensor::from_slice(&[8], &xs).unwrap(), true).unwrap();
        let mut tape = Tape::new();
        let mut rec = tape.record(&params);
        let x = rec.param(id).unwrap();
        let y = rec.round_bf16(x, grad).unwrap();
        for (&got, &v) in rec.value(y).unwrap().iter().zip(&xs) {
            let want = bf16::from_f32(v).to_f32();
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{v}: {got} vs {want}");
        }
        rec.backward_from(y, &seed).unwrap();
        for (&g, &s) in tape.param_grad(id).unwrap().iter().zip(&seed) {
            let want = if grad == GradRounding::Bf16 { round(s) } else { s };
            assert_eq!(g.to_bits(), want.to_bits(), "{grad:?}: gradient {s}");
        }
    }
}
