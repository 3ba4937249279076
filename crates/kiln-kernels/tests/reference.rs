//! Validation of the f64 references themselves (KERNELS.md §6): the backward references (scatter loops) agree
//! with the forward reference (a gather loop) by the adjoint identity
//! `<conv(x,w), dy> = <x, bwd_data(dy,w)> = <w, bwd_filter(x,dy)>` and by central finite differences, and the
//! forward agrees with an independent im2col + GEMM formulation. Each property runs ≥ 256 random geometries and
//! asserts that strides 2–3, `same` padding, dilation 2 and 1×1 images were among them.

mod common;

use common::{ConvLimits, Coverage, cases, conv_geometry, runner, values};
use kiln_kernels::reference::{
    bias_gradient, conv2d_backward_data, conv2d_backward_filter, conv2d_bias_gradient, conv2d_forward, gemm,
};
use kiln_kernels::{Conv2dGeometry, GemmGeometry, Transpose};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A geometry with input, weights, output gradient and bias drawn for it.
fn conv_case(l: ConvLimits) -> impl Strategy<Value = (Conv2dGeometry, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>)> {
    conv_geometry(l).prop_flat_map(|g| {
        (Just(g), values(g.input_len()), values(g.weight_len()), values(g.output_len()), values(g.bias_len()))
    })
}

const ADJOINT_LIMITS: ConvLimits = ConvLimits { batch: 3, channels: 5, image: 10, kernel: 5 };

#[test]
fn adjoint_identity() {
    let coverage = Coverage::default();
    let mut runner = runner(cases(256));
    runner
        .run(&conv_case(ADJOINT_LIMITS), |(g, x, w, dy, bias)| {
            coverage.record(&g);
            let y = conv2d_forward(&g, &x, &w, None).unwrap();
            let dx = conv2d_backward_data(&g, &dy, &w).unwrap();
            let dw = conv2d_backward_filter(&g, &x, &dy).unwrap();
            let lhs = dot(&y.values, &dy);
            let via_data = dot(&x, &dx.values);
            let via_filter = dot(&w, &dw.values);
            // Every sum is bounded by S = Σ_o |dy_o|·Σ_rf |x||w|; f64 rounding is ≪ 1e-12·S.
            let scale: f64 = y.bounds.iter().zip(&dy).map(|(b, d)| b * d.abs()).sum();
            let tol = 1e-12 * scale;
            prop_assert!((lhs - via_data).abs() <= tol, "<y,dy> = {lhs} but <x,dx> = {via_data} ({g:?})");
            prop_assert!((lhs - via_filter).abs() <= tol, "<y,dy> = {lhs} but <w,dw> = {via_filter} ({g:?})");
            // Bias: <conv(x,w,b) − conv(x,w), dy> = <b, db>.
            let yb = conv2d_forward(&g, &x, &w, Some(&bias)).unwrap();
            let db = conv2d_bias_gradient(&g, &dy).unwrap();
            let lhs_b = dot(&yb.values, &dy) - lhs;
            let rhs_b = dot(&bias, &db.values);
            let tol_b = 1e-12 * (scale + yb.bounds.iter().zip(&dy).map(|(b, d)| b * d.abs()).sum::<f64>());
            prop_assert!((lhs_b - rhs_b).abs() <= tol_b, "bias adjoint {lhs_b} vs {rhs_b}");
            Ok(())
        })
        .unwrap();
    coverage.assert_covered(256, 8);
}

/// L(x, w) = Σ_o r_o·y_o + ½·y_o², so dL/dy = r + y. Central differences of this quadratic are exact up to
/// rounding, so any disagreement beyond rounding is a wrong gradient.
fn loss(g: &Conv2dGeometry, x: &[f64], w: &[f64], r: &[f64]) -> f64 {
    let y = conv2d_forward(g, x, w, None).unwrap();
    y.values.iter().zip(r).map(|(y, r)| r * y + 0.5 * y * y).sum()
}

const FD_LIMITS: ConvLimits = ConvLimits { batch: 2, channels: 3, image: 7, kernel: 3 };

#[test]
fn finite_differences() {
    let coverage = Coverage::default();
    let mut runner = runner(cases(256));
    let strategy = conv_case(FD_LIMITS).prop_flat_map(|(g, x, w, r, _)| {
        let x: Vec<f64> = x.iter().map(|v| v / 128.0).collect(); // keep raw-pixel draws O(1)
        (Just((g, x, w)), values(r.len()).prop_map(|r| r.iter().map(|v| v / 128.0).collect::<Vec<f64>>()))
    });
    runner
        .run(&strategy, |((g, x, w), r)| {
            coverage.record(&g);
            let y = conv2d_forward(&g, &x, &w, None).unwrap();
            let dl_dy: Vec<f64> = y.values.iter().zip(&r).map(|(y, r)| r + y).collect();
            let dx = conv2d_backward_data(&g, &dl_dy, &w).unwrap();
            let dw = conv2d_backward_filter(&g, &x, &dl_dy).unwrap();
            let h = 1e-3;
            let l0 = loss(&g, &x, &w, &r).abs().max(1.0);
            let check = |analytic: f64, fd: f64, bound: f64, what: &str, i: usize| -> Result<(), TestCaseError> {
                // Rounding: ~eps64·|L|/h in the difference quotient; the analytic side is exact to ~eps64·bound.
                let tol = 1e-9 * (l0 + bound);
                prop_assert!(
                    (analytic - fd).abs() <= tol,
                    "d L/d {what}[{i}]: backward {analytic} vs finite difference {fd} ({g:?})"
                );
                Ok(())
            };
            let mut xp = x.clone();
            for i in 0..x.len() {
                xp[i] = x[i] + h;
                let lp = loss(&g, &xp, &w, &r);
                xp[i] = x[i] - h;
                let lm = loss(&g, &xp, &w, &r);
                xp[i] = x[i];
                check(dx.values[i], (lp - lm) / (2.0 * h), dx.bounds[i], "x", i)?;
            }
            let mut wp = w.clone();
            for i in 0..w.len() {
                wp[i] = w[i] + h;
                let lp = loss(&g, &x, &wp, &r);
                wp[i] = w[i] - h;
                let lm = loss(&g, &x, &wp, &r);
                wp[i] = w[i];
                check(dw.values[i], (lp - lm) / (2.0 * h), dw.bounds[i], "w", i)?;
            }
            Ok(())
        })
        .unwrap();
    coverage.assert_covered(256, 8);
}

/// The forward reference equals an independently written im2col (from the definition, in signed arithmetic)
/// followed by the GEMM reference.
#[test]
fn forward_matches_im2col_gemm() {
    let coverage = Coverage::default();
    let mut runner = runner(cases(256));
    runner
        .run(&conv_case(ADJOINT_LIMITS), |(g, x, w, _, bias)| {
            coverage.record(&g);
            let rows = g.batch() * g.out_h() * g.out_w();
            let depth = g.kernel_h() * g.kernel_w() * g.in_c();
            let mut cols = vec![0.0f64; rows * depth];
            for n in 0..g.batch() {
                for oh in 0..g.out_h() {
                    for ow in 0..g.out_w() {
                        let row = (n * g.out_h() + oh) * g.out_w() + ow;
                        for kh in 0..g.kernel_h() {
                            for kw in 0..g.kernel_w() {
                                let ih = (oh * g.stride_h() + kh * g.dilation_h()) as i64 - g.pad_top() as i64;
                                let iw = (ow * g.stride_w() + kw * g.dilation_w()) as i64 - g.pad_left() as i64;
                                if ih < 0 || iw < 0 || ih >= g.in_h() as i64 || iw >= g.in_w() as i64 {
                                    continue;
                                }
                                for c in 0..g.in_c() {
                                    let src = ((n * g.in_h() + ih as usize) * g.in_w() + iw as usize) * g.in_c() + c;
                                    cols[row * depth + (kh * g.kernel_w() + kw) * g.in_c() + c] = x[src];
                                }
                            }
                        }
                    }
                }
            }
            let gg = GemmGeometry::new(rows, g.out_c(), depth).unwrap();
            // Bias enters as beta·C with C = the bias broadcast over rows.
            let c: Vec<f64> = (0..rows).flat_map(|_| bias.iter().copied()).collect();
            let via_gemm = gemm(&gg, 1.0, &cols, &w, 1.0, &c).unwrap();
            let direct = conv2d_forward(&g, &x, &w, Some(&bias)).unwrap();
            prop_assert_eq!(via_gemm.values.len(), direct.values.len());
            for (i, (a, b)) in via_gemm.values.iter().zip(&direct.values).enumerate() {
                prop_assert!((a - b).abs() <= 1e-12 * direct.bounds[i].max(1e-300), "output {i}: {a} vs {b}");
            }
            Ok(())
        })
        .unwrap();
    coverage.assert_covered(256, 8);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// The GEMM reference computes the same product whatever the storage (transposes, padded leading dimensions),
    /// and honours alpha/beta; beta = 0 never reads C.
    #[test]
    fn gemm_layouts_agree(
        (m, n, k) in (0..7usize, 0..7usize, 0..7usize),
        (ta, tb) in (any::<bool>(), any::<bool>()),
        (pa, pb, pc) in (0..3usize, 0..3usize, 0..3usize),
        seed in any::<u64>(),
        (alpha, beta) in (-2.0f32..2.0, prop_oneof![Just(0.0f32), -2.0f32..2.0]),
    ) {
        let val = |i: usize| (((i as u64).wrapping_mul(6364136223846793005).wrapping_add(seed) >> 40) % 2001) as f64 / 1000.0 - 1.0;
        let a: Vec<f64> = (0..m * k).map(val).collect();
        let b: Vec<f64> = (0..k * n).map(|i| val(i + 1000)).collect();
        let c0: Vec<f64> = (0..m * n).map(|i| val(i + 2000)).collect();
        // Expected, by the definition.
        let mut expected = vec![0.0f64; m * n];
        for i in 0..m { for j in 0..n {
            let s: f64 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            expected[i * n + j] = f64::from(alpha) * s + if beta == 0.0 { 0.0 } else { f64::from(beta) * c0[i * n + j] };
        }}
        // Store A, B, C in the requested layouts with gaps filled by NaN (which must never be read).
        let store = |src: &[f64], rows: usize, cols: usize, trans: bool, pad: usize| -> (Vec<f64>, usize) {
            let (sr, sc) = if trans { (cols, rows) } else { (rows, cols) };
            let ld = sc.max(1) + pad;
            let mut out = vec![f64::NAN; sr * ld];
            for r in 0..rows { for c in 0..cols {
                let (i, j) = if trans { (c, r) } else { (r, c) };
                out[i * ld + j] = src[r * cols + c];
            }}
            (out, ld)
        };
        let (sa, lda) = store(&a, m, k, ta, pa);
        let (sb, ldb) = store(&b, k, n, tb, pb);
        let (mut sc, ldc) = store(&c0, m, n, false, pc);
        if beta == 0.0 { for v in sc.iter_mut() { *v = f64::NAN; } }
        let g = GemmGeometry::spec(m, n, k)
            .trans_a(Transpose::from_bool(ta)).trans_b(Transpose::from_bool(tb))
            .lda(lda).ldb(ldb).ldc(ldc).build().unwrap();
        let r = gemm(&g, alpha, &sa, &sb, beta, &sc).unwrap();
        prop_assert_eq!(r.values.len(), m * n);
        for (i, (got, want)) in r.values.iter().zip(&expected).enumerate() {
            prop_assert!((got - want).abs() <= 1e-12 * r.bounds[i].max(1e-300), "C[{}]: {} vs {}", i, got, want);
        }
    }

    /// The bias gradient is the column sum, and its scale the column sum of magnitudes.
    #[test]
    fn bias_gradient_is_column_sum(rows in 0..20usize, channels in 1..9usize, seed in any::<u32>()) {
        let dy: Vec<f64> = (0..rows * channels).map(|i| f64::from((i as u32).wrapping_mul(2654435761) ^ seed) / f64::from(u32::MAX) - 0.5).collect();
        let r = bias_gradient(rows, channels, &dy).unwrap();
        for c in 0..channels {
            let s: f64 = (0..rows).map(|i| dy[i * channels + c]).sum();
            let a: f64 = (0..rows).map(|i| dy[i * channels + c].abs()).sum();
            prop_assert!((r.values[c] - s).abs() <= 1e-12 * a.max(1e-300));
            prop_assert!((r.bounds[c] - a).abs() <= 1e-12 * a.max(1e-300));
        }
    }
}
