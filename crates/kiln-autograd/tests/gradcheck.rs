//! Gradient checks: every operation's backward pass (computed in f32 by the kernels) against central finite
//! differences of an independent f64 forward, as proptests over shapes and values; plus the whole flagship
//! architecture at small size.
//!
//! Tolerance: with the output projected on a fixed vector `r` (`L = Σ rᵢ·yᵢ`), every analytic gradient element
//! must satisfy `|a − n| ≤ TOL·max|n| + ABS`, where `n` is the f64 central difference. The f32 backward sums at
//! most a few hundred O(1) products per element, so its rounding error is ≤ 8·eps32·300·max|n| ≈ 3e-4·max|n|
//! (KERNELS.md §1.6 with K = 8); the f64 difference with step h = 1e-6·max(1,|x|) is accurate to ~1e-9. TOL =
//! 2e-3 leaves a 6× margin, while any wrong term, sign or index is an O(1) relative error.

use kiln_autograd::{Conv2dParams, Params, PoolPadding, Recording, Tape, Var};
use kiln_kernels::{Conv2dGeometry, Padding};
use proptest::prelude::*;

const TOL: f64 = 2e-3;
const ABS: f64 = 1e-5;

type Build<'a> = &'a dyn Fn(&mut Recording<'_, '_>, &[Var]) -> kiln_autograd::Result<Var>;
type Forward<'a> = &'a dyn Fn(&[Vec<f64>]) -> Vec<f64>;

/// One operand: dimensions, values, and whether to check its gradient.
#[derive(Debug, Clone)]
struct Operand {
    dims: Vec<usize>,
    data: Vec<f32>,
    grad: bool,
}

fn op(dims: &[usize], data: Vec<f32>, grad: bool) -> Operand {
    assert_eq!(dims.iter().product::<usize>(), data.len());
    Operand { dims: dims.to_vec(), data, grad }
}

/// Output size and leading padding of a pooling window `p` with stride `s` along an axis of `size` (TensorFlow's
/// `same`, or `valid`).
fn pool_out(size: usize, p: usize, s: usize, same: bool) -> (usize, usize) {
    if same {
        let out = size.div_ceil(s);
        (out, ((out - 1) * s + p).saturating_sub(size) / 2)
    } else {
        ((size - p) / s + 1, 0)
    }
}

/// The fixed projection vector (no zero entries, mixed signs).
fn projection(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919 + 3) % 17) as f32 / 8.0 - 1.03).collect()
}

/// Builds the op on a tape (gradient operands as trainable parameters, the others as constants), back-propagates
/// the projection and compares every checked operand's gradient with central differences of `fwd`.
fn check(operands: &[Operand], build: Build<'_>, fwd: Forward<'_>) -> Result<(), TestCaseError> {
    let mut params = Params::new();
    let mut ids = Vec::new();
    for (i, o) in operands.iter().enumerate() {
        let t = kiln_tensor::Tensor::from_slice(&o.dims, &o.data).unwrap();
        ids.push(o.grad.then(|| params.add(format!("p{i}"), &t, true).unwrap()));
    }
    let mut tape = Tape::new();
    let mut rec = tape.record(&params);
    let vars: Vec<Var> = operands
        .iter()
        .zip(&ids)
        .map(|(o, id)| match id {
            Some(id) => rec.param(*id).unwrap(),
            None => rec.input(&o.dims, &o.data).unwrap(),
        })
        .collect();
    let out = build(&mut rec, &vars).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let got = rec.value(out).unwrap().to_vec();
    let r = projection(got.len());
    // The f32 forward agrees with the f64 one.
    let x64: Vec<Vec<f64>> = operands.iter().map(|o| o.data.iter().map(|&v| f64::from(v)).collect()).collect();
    let y64 = fwd(&x64);
    prop_assert_eq!(y64.len(), got.len());
    let ymax = y64.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (a, b) in got.iter().zip(&y64) {
        prop_assert!((f64::from(*a) - b).abs() <= TOL * ymax + ABS, "forward {a} vs {b}");
    }
    rec.backward_from(out, &r).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let loss = |x: &[Vec<f64>]| fwd(x).iter().zip(&r).map(|(y, &r)| y * f64::from(r)).sum::<f64>();
    for (k, (o, id)) in operands.iter().zip(&ids).enumerate() {
        let Some(id) = id else { continue };
        let analytic = tape.param_grad(*id).map(<[f32]>::to_vec).unwrap_or_else(|| vec![0.0; o.data.len()]);
        let mut numeric = Vec::with_capacity(o.data.len());
        let mut x = x64.clone();
        for j in 0..o.data.len() {
            let v = x[k][j];
            let h = 1e-6 * v.abs().max(1.0);
            x[k][j] = v + h;
            let up = loss(&x);
            x[k][j] = v - h;
            let down = loss(&x);
            x[k][j] = v;
            numeric.push((up - down) / (2.0 * h));
        }
        let nmax = numeric.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (j, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
            prop_assert!(
                (f64::from(*a) - n).abs() <= TOL * nmax + ABS,
                "operand {k} element {j}: analytic {a} vs numeric {n} (max |n| {nmax})"
            );
        }
    }
    Ok(())
}

fn values(len: usize, lo: f32, hi: f32) -> impl Strategy<Value = Vec<f32>> {
    // Keep clear of relu's kink and of ties in max pooling.
    proptest::collection::vec(lo..hi, len)
        .prop_map(|v| v.into_iter().map(|x| if x.abs() < 1e-3 { x + 2e-3 } else { x }).collect())
}

// ---- f64 forwards ------------------------------------------------------------------------------------------

fn rows(x: &[f64], cols: usize) -> impl Iterator<Item = &[f64]> {
    x.chunks_exact(cols)
}

fn softmax64(x: &[f64], cols: usize) -> Vec<f64> {
    let mut y = Vec::new();
    for r in rows(x, cols) {
        let m = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = r.iter().map(|v| (v - m).exp()).sum();
        y.extend(r.iter().map(|v| (v - m).exp() / s));
    }
    y
}

fn dense64(x: &[f64], w: &[f64], b: Option<&[f64]>, m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut y = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            y[i * n + j] = b.map_or(0.0, |b| b[j]) + (0..k).map(|p| x[i * k + p] * w[p * n + j]).sum::<f64>();
        }
    }
    y
}

fn swish64(v: f64) -> f64 {
    v / (1.0 + (-v).exp())
}

fn conv64(g: &Conv2dGeometry, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
    kiln_kernels::reference::conv2d_forward(g, x, w, b).unwrap().values
}

// ---- properties ---------------------------------------------------------------------------------------------

fn conv_case() -> impl Strategy<Value = (Conv2dGeometry, Vec<f32>, Vec<f32>, Vec<f32>)> {
    (1usize..3, 1usize..4, 1usize..5, 1usize..4, 1usize..3, 1usize..3, 0usize..4, 3usize..8)
        .prop_filter_map("geometry", |(n, ci, co, k, s, d, pad, hw)| {
            let padding = match pad {
                0 => Padding::Valid,
                1 => Padding::Same,
                2 => Padding::uniform(1),
                _ => Padding::Explicit { top: 0, bottom: 2, left: 1, right: 0 },
            };
            Conv2dGeometry::spec(n, [hw, hw + 1, ci], [k, k], co).stride(s).dilation(d).padding(padding).build().ok()
        })
        .prop_flat_map(|g| {
            (Just(g), values(g.input_len(), -2.0, 2.0), values(g.weight_len(), -1.0, 1.0), values(g.out_c(), -1.0, 1.0))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: kiln_kernels::testing::cases(24), ..ProptestConfig::default() })]

    #[test]
    fn conv2d((g, x, w, b) in conv_case(), with_bias in any::<bool>()) {
        let p = Conv2dParams {
            strides: (g.stride_h(), g.stride_w()),
            dilation: (g.dilation_h(), g.dilation_w()),
            padding: g.padding(),
        };
        let mut ops = vec![op(&g.input_shape(), x, true), op(&g.weight_shape(), w, true)];
        if with_bias {
            ops.push(op(&[g.out_c()], b, true));
        }
        check(
            &ops,
            &|t, v| t.conv2d(v[0], v[1], v.get(2).copied(), p),
            &|x| conv64(&g, &x[0], &x[1], x.get(2).map(Vec::as_slice)),
        )?;
    }

    #[test]
    fn dense(m in 1usize..5, k in 1usize..9, n in 1usize..7, seed in values(4 * 8 + 8 * 6 + 6, -1.5, 1.5), bias in any::<bool>()) {
        let ops = {
            let mut o = vec![op(&[m, k], seed[..m * k].to_vec(), true), op(&[k, n], seed[32..32 + k * n].to_vec(), true)];
            if bias { o.push(op(&[n], seed[80..80 + n].to_vec(), true)); }
            o
        };
        check(&ops, &|t, v| t.dense(v[0], v[1], v.get(2).copied()), &|x| dense64(&x[0], &x[1], x.get(2).map(Vec::as_slice), m, k, n))?;
        check(&ops[..2], &|t, v| t.matmul(v[0], v[1]), &|x| dense64(&x[0], &x[1], None, m, k, n))?;
    }

    #[test]
    fn bias_add_and_reshape(r in 1usize..5, c in 1usize..6, x in values(30, -2.0, 2.0), b in values(6, -1.0, 1.0)) {
        let ops = [op(&[r, c], x[..r * c].to_vec(), true), op(&[c], b[..c].to_vec(), true)];
        check(&ops, &|t, v| t.bias_add(v[0], v[1]), &|x| {
            x[0].chunks(c).flat_map(|row| row.iter().zip(&x[1]).map(|(a, b)| a + b).collect::<Vec<_>>()).collect()
        })?;
        // Flatten then a swish (so the reshaped gradient is not the identity seed).
        let x4 = op(&[r, 1, c, 1], x[..r * c].to_vec(), true);
        check(std::slice::from_ref(&x4), &|t, v| { let f = t.flatten(v[0])?; t.swish(f) }, &|x| x[0].iter().map(|&v| swish64(v)).collect())?;
        check(&[x4], &|t, v| { let f = t.reshape(v[0], &[c, r])?; t.tanh(f) }, &|x| x[0].iter().map(|v| v.tanh()).collect())?;
    }

    #[test]
    fn activations(r in 1usize..4, c in 1usize..9, x in values(32, -6.0, 6.0)) {
        let o = [op(&[r, c], x[..r * c].to_vec(), true)];
        check(&o, &|t, v| t.swish(v[0]), &|x| x[0].iter().map(|&v| swish64(v)).collect())?;
        check(&o, &|t, v| t.relu(v[0]), &|x| x[0].iter().map(|&v| v.max(0.0)).collect())?;
        check(&o, &|t, v| t.sigmoid(v[0]), &|x| x[0].iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect())?;
        check(&o, &|t, v| t.tanh(v[0]), &|x| x[0].iter().map(|v| v.tanh()).collect())?;
        check(&o, &|t, v| t.softmax(v[0]), &|x| softmax64(&x[0], c))?;
        check(&o, &|t, v| t.log_softmax(v[0]), &|x| softmax64(&x[0], c).iter().map(|p| p.ln()).collect())?;
    }

    #[test]
    fn losses(r in 1usize..5, c in 2usize..8, z in values(40, -4.0, 4.0), u in values(40, 0.05, 1.0), labels in proptest::collection::vec(0usize..8, 5)) {
        let labels: Vec<usize> = labels.iter().map(|&l| l % c).take(r).collect();
        let onehot: Vec<f32> = (0..r * c).map(|i| f32::from(u8::from(labels[i / c] == i % c))).collect();
        let lab: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
        let zs = z[..r * c].to_vec();
        let xent = |p: &[f64]| -> Vec<f64> {
            let mut total = 0.0;
            for (i, row) in p.chunks(c).enumerate() {
                let s: f64 = row.iter().sum();
                total -= (row[labels[i]] / s).clamp(1e-7, 1.0 - 1e-7).ln();
            }
            vec![total / r as f64]
        };
        // Fused: softmax feeding the loss (gradient flows to the logits).
        let ops = [op(&[r, c], zs.clone(), true), op(&[r, c], onehot.clone(), false)];
        check(&ops, &|t, v| { let p = t.softmax(v[0])?; t.categorical_crossentropy(p, v[1]) }, &|x| xent(&softmax64(&x[0], c)))?;
        let ops_s = [op(&[r, c], zs.clone(), true), op(&[r], lab.clone(), false)];
        check(&ops_s, &|t, v| { let p = t.softmax(v[0])?; t.sparse_categorical_crossentropy(p, v[1]) }, &|x| xent(&softmax64(&x[0], c)))?;
        // Unfused: probabilities from elsewhere (normalised by their sum, clipped, as Keras).
        let probs = [op(&[r, c], u[..r * c].to_vec(), true), op(&[r, c], onehot.clone(), false)];
        check(&probs, &|t, v| t.categorical_crossentropy(v[0], v[1]), &|x| xent(&x[0]))?;
        let probs_s = [op(&[r, c], u[..r * c].to_vec(), true), op(&[r], lab, false)];
        check(&probs_s, &|t, v| t.sparse_categorical_crossentropy(v[0], v[1]), &|x| xent(&x[0]))?;
        // mse (both sides), mean and sum.
        let two = [op(&[r, c], zs.clone(), true), op(&[r, c], u[..r * c].to_vec(), true)];
        check(&two, &|t, v| t.mse(v[0], v[1]), &|x| vec![x[0].iter().zip(&x[1]).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / (r * c) as f64])?;
        check(&two[..1], &|t, v| t.mean(v[0]), &|x| vec![x[0].iter().sum::<f64>() / (r * c) as f64])?;
        check(&two[..1], &|t, v| t.sum(v[0]), &|x| vec![x[0].iter().sum::<f64>()])?;
    }

    #[test]
    fn max_pool(n in 1usize..3, h in 2usize..7, w in 2usize..7, c in 1usize..4, p in 1usize..4, s in 1usize..3, same in any::<bool>(), x in values(2 * 6 * 6 * 3, -3.0, 3.0)) {
        let pad = if same { PoolPadding::Same } else { PoolPadding::Valid };
        prop_assume!(same || (p <= h && p <= w));
        let xs = x[..n * h * w * c].to_vec();
        let ((oh, top), (ow, left)) = (pool_out(h, p, s, same), pool_out(w, p, s, same));
        let fwd = move |x: &[Vec<f64>]| {
            let mut y = Vec::new();
            for b in 0..n { for oy in 0..oh { for ox in 0..ow { for ch in 0..c {
                let mut m = f64::NEG_INFINITY;
                for ky in 0..p { for kx in 0..p {
                    let (iy, ix) = ((oy * s + ky) as isize - top as isize, (ox * s + kx) as isize - left as isize);
                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                        m = m.max(x[0][((b * h + iy as usize) * w + ix as usize) * c + ch]);
                    }
                }}
                y.push(m);
            }}}}
            y
        };
        check(&[op(&[n, h, w, c], xs, true)], &|t, v| t.max_pool2d(v[0], (p, p), (s, s), pad), &fwd)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: kiln_kernels::testing::cases(24), ..ProptestConfig::default() })]

    /// Average pooling: TensorFlow's `avg_pool`, whose `same` windows average their real inputs only.
    #[test]
    fn avg_pool(n in 1usize..3, h in 2usize..7, w in 2usize..7, c in 1usize..4, p in 1usize..4, s in 1usize..3, same in any::<bool>(), x in values(2 * 6 * 6 * 3, -3.0, 3.0)) {
        let pad = if same { PoolPadding::Same } else { PoolPadding::Valid };
        prop_assume!(same || (p <= h && p <= w));
        let xs = x[..n * h * w * c].to_vec();
        let ((oh, top), (ow, left)) = (pool_out(h, p, s, same), pool_out(w, p, s, same));
        let fwd = move |x: &[Vec<f64>]| {
            let mut y = Vec::new();
            for b in 0..n { for oy in 0..oh { for ox in 0..ow { for ch in 0..c {
                let (mut sum, mut count) = (0.0, 0.0);
                for ky in 0..p { for kx in 0..p {
                    let (iy, ix) = ((oy * s + ky) as isize - top as isize, (ox * s + kx) as isize - left as isize);
                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                        sum += x[0][((b * h + iy as usize) * w + ix as usize) * c + ch];
                        count += 1.0;
                    }
                }}
                y.push(sum / count);
            }}}}
            y
        };
        check(&[op(&[n, h, w, c], xs, true)], &|t, v| t.avg_pool2d(v[0], (p, p), (s, s), pad), &fwd)?;
    }

    /// `add` and `concatenate` (along every axis), and a value used twice — `tanh(x) + x` and `x ++ x` — whose
    /// gradient must be the sum of both paths.
    #[test]
    fn merges(d0 in 1usize..4, d1 in 1usize..4, d2 in 1usize..4, extra in 1usize..4, axis in 0usize..3, x in values(3 * 6 * 6, -2.0, 2.0)) {
        let dims = [d0, d1, d2];
        let n = d0 * d1 * d2;
        let ops = [op(&dims, x[..n].to_vec(), true), op(&dims, x[n..2 * n].to_vec(), true)];
        check(&ops, &|t, v| t.add(v[0], v[1]), &|x| x[0].iter().zip(&x[1]).map(|(a, b)| a + b).collect())?;
        check(&ops[..1], &|t, v| { let h = t.tanh(v[0])?; t.add(h, v[0]) }, &|x| x[0].iter().map(|v| v.tanh() + v).collect())?;
        let mut bd = dims;
        bd[axis] = extra;
        let m: usize = bd.iter().product();
        let ops = [op(&dims, x[..n].to_vec(), true), op(&bd, x[2 * n..2 * n + m].to_vec(), true)];
        let concat64 = move |a: &[f64], b: &[f64]| {
            let outer: usize = dims[..axis].iter().product();
            let (ai, bi) = (a.len() / outer, b.len() / outer);
            (0..outer).flat_map(|r| a[r * ai..(r + 1) * ai].iter().chain(&b[r * bi..(r + 1) * bi]).copied().collect::<Vec<_>>()).collect::<Vec<f64>>()
        };
        check(&ops, &|t, v| { let c = t.concatenate(v[0], v[1], axis)?; t.tanh(c) }, &|x| concat64(&x[0], &x[1]).iter().map(|v| v.tanh()).collect())?;
        check(&ops[..1], &|t, v| t.concatenate(v[0], v[0], axis), &|x| concat64(&x[0], &x[0]))?;
    }

    /// Global average and maximum over the spatial axes (random values: no ties).
    #[test]
    fn global_pool(n in 1usize..3, h in 1usize..5, w in 1usize..5, c in 1usize..4, max in any::<bool>(), x in values(2 * 4 * 4 * 3, -3.0, 3.0)) {
        let xs = x[..n * h * w * c].to_vec();
        let fwd = move |x: &[Vec<f64>]| {
            let mut y = Vec::new();
            for b in 0..n { for ch in 0..c {
                let vals = (0..h * w).map(|p| x[0][(b * h * w + p) * c + ch]);
                y.push(if max { vals.fold(f64::NEG_INFINITY, f64::max) } else { vals.sum::<f64>() / (h * w) as f64 });
            }}
            y
        };
        check(&[op(&[n, h, w, c], xs, true)], &|t, v| if max { t.global_max_pool2d(v[0]) } else { t.global_avg_pool2d(v[0]) }, &fwd)?;
    }

    /// Leaky ReLU, ELU and GELU (values kept away from the kinks at 0, where the derivative jumps).
    #[test]
    fn scalar_activations(len in 1usize..40, which in 0usize..3, x in values(40, -3.0, 3.0)) {
        let xs: Vec<f32> = x[..len].iter().map(|&v| if v.abs() < 0.05 { v + 0.1 } else { v }).collect();
        let erf = |v: f64| libm::erf(v);
        let fwd = move |x: &[Vec<f64>]| -> Vec<f64> {
            x[0].iter().map(|&v| match which {
                0 => if v > 0.0 { v } else { 0.2 * v },
                1 => if v > 0.0 { v } else { v.exp() - 1.0 },
                _ => 0.5 * v * (1.0 + erf(v / 2f64.sqrt())),
            }).collect()
        };
        check(&[op(&[len], xs, true)], &|t, v| match which {
            0 => t.leaky_relu(v[0], 0.2),
            1 => t.elu(v[0], 1.0),
            _ => t.gelu(v[0]),
        }, &fwd)?;
    }

    /// `x·scale + offset`.
    #[test]
    fn rescale(len in 1usize..40, scale in -3.0f32..3.0, offset in -2.0f32..2.0, x in values(40, -3.0, 3.0)) {
        let xs = x[..len].to_vec();
        let fwd = move |x: &[Vec<f64>]| x[0].iter().map(|v| v * f64::from(scale) + f64::from(offset)).collect();
        check(&[op(&[len], xs, true)], &|t, v| t.rescale(v[0], scale, offset), &fwd)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: kiln_kernels::testing::cases(24), ..ProptestConfig::default() })]

    /// Batch normalization over the last axis, in training (the batch's biased mean and variance, whose
    /// gradients flow back) and in inference (fixed statistics), with scale and offset optional, and with a
    /// ReLU fused after it.
    #[test]
    fn batch_norm(r in 2usize..7, c in 1usize..5, training in any::<bool>(), affine in any::<bool>(), relu in any::<bool>(), x in values(6 * 4, -2.0, 2.0), gb in values(8, 0.5, 1.5), stats in values(8, 0.2, 1.2)) {
        let eps = 1e-3f32;
        let xs = x[..r * c].to_vec();
        let (gamma, beta) = (gb[..c].to_vec(), gb[4..4 + c].iter().map(|v| v - 1.0).collect::<Vec<_>>());
        let (mm, mv) = (stats[..c].iter().map(|v| v - 0.7).collect::<Vec<_>>(), stats[4..4 + c].to_vec());
        let (mm2, mv2) = (mm.clone(), mv.clone());
        let fwd = move |x: &[Vec<f64>]| -> Vec<f64> {
            let mut y = vec![0.0; r * c];
            for ch in 0..c {
                let col: Vec<f64> = (0..r).map(|i| x[0][i * c + ch]).collect();
                let (mean, var) = if training {
                    let m = col.iter().sum::<f64>() / r as f64;
                    (m, col.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / r as f64)
                } else {
                    (f64::from(mm2[ch]), f64::from(mv2[ch]))
                };
                let (g, b) = if affine { (x[1][ch], x[2][ch]) } else { (1.0, 0.0) };
                for i in 0..r {
                    let v = g * (col[i] - mean) / (var + f64::from(eps)).sqrt() + b;
                    y[i * c + ch] = if relu { v.max(0.0) } else { v };
                }
            }
            y
        };
        let mut ops = vec![op(&[r, c], xs, true)];
        if affine {
            ops.push(op(&[c], gamma, true));
            ops.push(op(&[c], beta, true));
        }
        check(&ops, &|t, v| {
            let (g, b) = if affine { (Some(v[1]), Some(v[2])) } else { (None, None) };
            if training {
                Ok(t.batch_norm_train(v[0], g, b, eps, relu)?.y)
            } else {
                let m = t.input(&[c], &mm)?;
                let s = t.input(&[c], &mv)?;
                t.batch_norm_inference(v[0], m, s, g, b, eps, relu)
            }
        }, &fwd)?;
    }

    /// A batch split over two tapes whose sums are exchanged (as the engine does) gives the whole batch's
    /// output and, weighted by the halves' shares, its gradients.
    #[test]
    fn batch_norm_split_equals_whole(r in 2usize..9, c in 1usize..5, x in values(8 * 4, -2.0, 2.0), gb in values(8, 0.5, 1.5)) {
        split_matches_whole(r, c, &x[..r * c], &gb[..c], &gb[4..4 + c])?;
    }
}

/// See `batch_norm_split_equals_whole`: the loss is the mean of `projection · y` over each tape's rows.
fn split_matches_whole(r: usize, c: usize, x: &[f32], gamma: &[f32], beta: &[f32]) -> Result<(), TestCaseError> {
    use kiln_autograd::Backprop;
    let mut params = Params::new();
    let g = params.add("gamma", &kiln_tensor::Tensor::from_slice(&[c], gamma).unwrap(), true).unwrap();
    let b = params.add("beta", &kiln_tensor::Tensor::from_slice(&[c], beta).unwrap(), true).unwrap();
    let n0 = r.div_ceil(2);
    let rows = [n0, r - n0];
    prop_assume!(rows[1] > 0);
    let t = |d: &[usize], v: &[f32]| kiln_tensor::Tensor::from_slice(d, v).unwrap();
    let xw = params.add("x", &t(&[r, c], x), true).unwrap();
    let xh = [
        params.add("x0", &t(&[n0, c], &x[..n0 * c]), true).unwrap(),
        params.add("x1", &t(&[rows[1], c], &x[n0 * c..]), true).unwrap(),
    ];
    let proj = projection(r * c);
    let fail = |e: kiln_autograd::AutogradError| TestCaseError::fail(e.to_string());
    // The whole batch on one tape.
    let mut whole = Tape::new();
    let (y_whole, dx_whole) = {
        let mut rec = whole.record(&params);
        let xv = rec.param(xw).map_err(fail)?;
        let (gv, bv) = (rec.param(g).map_err(fail)?, rec.param(b).map_err(fail)?);
        let y = rec.batch_norm_train(xv, Some(gv), Some(bv), 1e-3, false).map_err(fail)?.y;
        let seed: Vec<f32> = proj.iter().map(|p| p / r as f32).collect();
        rec.backward_from(y, &seed).map_err(fail)?;
        (rec.value(y).unwrap().to_vec(), rec.param_grad(xw).unwrap().to_vec())
    };
    // Two halves, exchanging their sums.
    let mut tapes = [Tape::new(), Tape::new()];
    for (t, &n) in tapes.iter_mut().zip(&rows) {
        t.set_share(n as f64 / r as f64);
    }
    let [t0, t1] = &mut tapes;
    let mut recs = [t0.record(&params), t1.record(&params)];
    // The replicas sum about a shift (any values, the same on both: a layer passes its moving mean).
    let shift: Vec<f32> = (0..c).map(|ch| 0.3 * ch as f32 - 0.2).collect();
    let mut xs = Vec::new();
    for (rec, id) in recs.iter_mut().zip(xh) {
        let v = rec.param(id).map_err(fail)?;
        let sv = rec.input(&[c], &shift).map_err(fail)?;
        rec.batch_norm_partials(v, Some(sv)).map_err(fail)?;
        xs.push((v, sv));
    }
    let sum = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a + b).collect::<Vec<f64>>();
    let global = sum(recs[0].exchange(), recs[1].exchange());
    let mut ys = Vec::new();
    for (rec, &(v, sv)) in recs.iter_mut().zip(&xs) {
        rec.set_exchange_global(&global);
        let (gv, bv) = (rec.param(g).map_err(fail)?, rec.param(b).map_err(fail)?);
        ys.push(rec.batch_norm_global(v, Some(sv), Some(gv), Some(bv), 1e-3, false).map_err(fail)?.y);
    }
    let mut y_split = recs[0].value(ys[0]).unwrap().to_vec();
    y_split.extend_from_slice(recs[1].value(ys[1]).unwrap());
    for (a, w) in y_split.iter().zip(&y_whole) {
        prop_assert!((a - w).abs() <= 1e-5 * (1.0 + w.abs()), "forward {a} vs {w}");
    }
    let mut passes = Vec::new();
    for (k, rec) in recs.iter_mut().enumerate() {
        let off = if k == 0 { 0 } else { n0 * c };
        let seed: Vec<f32> = proj[off..off + rows[k] * c].iter().map(|p| p / rows[k] as f32).collect();
        passes.push(rec.backward_begin(ys[k], &seed).map_err(fail)?);
    }
    prop_assert_eq!(&passes, &[Backprop::Exchange, Backprop::Exchange]);
    let global = sum(recs[0].exchange(), recs[1].exchange());
    for rec in &mut recs {
        rec.set_exchange_global(&global);
        prop_assert_eq!(rec.backward_resume().map_err(fail)?, Backprop::Done);
    }
    // Input gradients: each half's, weighted by its share, is the whole batch's on its rows.
    for (k, id) in xh.iter().enumerate() {
        let off = if k == 0 { 0 } else { n0 * c };
        let w = rows[k] as f32 / r as f32;
        for (j, &d) in tapes[k].param_grad(*id).unwrap().iter().enumerate() {
            let want = dx_whole[off + j];
            prop_assert!((w * d - want).abs() <= 1e-5 * (1.0 + want.abs()), "dx {} vs {want}", w * d);
        }
    }
    // Parameter gradients: the shares' weighted sum is the whole batch's.
    for id in [g, b] {
        let gw = whole.param_grad(id).unwrap();
        let (a0, a1) = (tapes[0].param_grad(id).unwrap(), tapes[1].param_grad(id).unwrap());
        for ch in 0..c {
            let w0 = rows[0] as f32 / r as f32;
            let got = w0 * a0[ch] + (1.0 - w0) * a1[ch];
            prop_assert!((got - gw[ch]).abs() <= 1e-5 * (1.0 + gw[ch].abs()), "param grad {got} vs {}", gw[ch]);
        }
    }
    Ok(())
}

/// Max pooling over more channels than the vectorized backward pass keeps flags for (the per-element path).
#[test]
fn max_pool_wide_channels() {
    let (h, w, c) = (2, 3, 260);
    let xs: Vec<f32> = (0..h * w * c).map(|i| ((i * 7919) % 1009) as f32 / 100.0 - 5.0).collect();
    let fwd = move |x: &[Vec<f64>]| -> Vec<f64> {
        (0..c)
            .map(|ch| {
                (0..2)
                    .flat_map(|iy| (0..2).map(move |ix| (iy, ix)))
                    .map(|(iy, ix)| x[0][(iy * w + ix) * c + ch])
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect()
    };
    check(&[op(&[1, h, w, c], xs, true)], &|t, v| t.max_pool2d(v[0], (2, 2), (2, 2), PoolPadding::Valid), &fwd)
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: kiln_kernels::testing::cases(24), ..ProptestConfig::default() })]

    /// The projective transform is linear in the image, so its backward pass must be its adjoint: for any image
    /// `x` and output weights `r`, `⟨T x, r⟩ = ⟨x, Tᵀ r⟩` (the dot-product test), in every fill mode except
    /// `constant` with a non-zero fill value (which is affine).
    #[test]
    fn affine_transform_backward_is_the_adjoint(h in 1usize..6, w in 1usize..6, c in 1usize..3, mode in 0usize..4, x in values(2 * 5 * 5 * 2, -2.0, 2.0), t in proptest::collection::vec(-1.5f32..1.5, 16)) {
        let mode = [kiln_autograd::FillMode::Reflect, kiln_autograd::FillMode::Wrap, kiln_autograd::FillMode::Nearest, kiln_autograd::FillMode::Constant][mode];
        let n = 2;
        let xs = x[..n * h * w * c].to_vec();
        // Near-identity transforms with a rotation/zoom part, a shift of a few pixels and a small projective part.
        let ts: Vec<f32> = (0..n).flat_map(|b| {
            let t = &t[8 * b..8 * b + 8];
            [1.0 + 0.3 * t[0], 0.3 * t[1], 3.0 * t[2], 0.3 * t[3], 1.0 + 0.3 * t[4], 3.0 * t[5], 0.01 * t[6], 0.01 * t[7]]
        }).collect();
        let mut params = Params::new();
        let id = params.add("x", &kiln_tensor::Tensor::from_slice(&[n, h, w, c], &xs).unwrap(), true).unwrap();
        let mut tape = Tape::new();
        let mut rec = tape.record(&params);
        let xv = rec.param(id).unwrap();
        let tv = rec.input(&[n, 8], &ts).unwrap();
        let y = rec.affine_transform(xv, tv, mode, 0.0).unwrap();
        let r = projection(n * h * w * c);
        let lhs: f64 = rec.value(y).unwrap().iter().zip(&r).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
        rec.backward_from(y, &r).unwrap();
        let g = tape.param_grad(id).unwrap();
        let rhs: f64 = xs.iter().zip(g).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
        let scale: f64 = xs.iter().map(|v| f64::from(v.abs())).sum::<f64>() * 2.0 + 1.0;
        prop_assert!((lhs - rhs).abs() <= 1e-5 * scale, "⟨Tx, r⟩ = {lhs} vs ⟨x, Tᵀr⟩ = {rhs}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: kiln_kernels::testing::cases(24), ..ProptestConfig::default() })]

    /// Depthwise convolution (Keras `DepthwiseConv2D`): strides, dilation, `same`/`valid`, depth multiplier.
    #[test]
    fn depthwise_conv2d(n in 1usize..3, h in 3usize..7, w in 3usize..7, c in 1usize..4, dm in 1usize..3, k in 1usize..4, s in 1usize..3, d in 1usize..3, same in any::<bool>(), bias in any::<bool>(), vals in values(2 * 6 * 6 * 3 + 3 * 3 * 3 * 2 + 6, -1.5, 1.5)) {
        let pad = if same { Padding::Same } else { Padding::Valid };
        let g = Conv2dGeometry::spec(n, [h, w, c], [k, k], c * dm).stride(s).dilation(d).padding(pad).build();
        prop_assume!(g.is_ok());
        let g = g.unwrap();
        let (nx, nw, co) = (n * h * w * c, k * k * c * dm, c * dm);
        let (xs, ws, bs) = (vals[..nx].to_vec(), vals[nx..nx + nw].to_vec(), vals[nx + nw..nx + nw + co].to_vec());
        let fwd = move |v: &[Vec<f64>]| -> Vec<f64> {
            let mut y = vec![0.0; g.output_len()];
            for b in 0..n { for oy in 0..g.out_h() { for ox in 0..g.out_w() { for ch in 0..c { for m in 0..dm {
                let mut acc = if bias { v[2][ch * dm + m] } else { 0.0 };
                for ky in 0..k { for kx in 0..k {
                    if let (Some(iy), Some(ix)) = (g.input_row(oy, ky), g.input_col(ox, kx)) {
                        acc += v[0][((b * h + iy) * w + ix) * c + ch] * v[1][((ky * k + kx) * c + ch) * dm + m];
                    }
                }}
                y[((b * g.out_h() + oy) * g.out_w() + ox) * co + ch * dm + m] = acc;
            }}}}}
            y
        };
        let mut ops = vec![op(&[n, h, w, c], xs, true), op(&[k, k, c, dm], ws, true)];
        if bias {
            ops.push(op(&[co], bs, true));
        }
        let params = Conv2dParams { strides: (s, s), dilation: (d, d), padding: pad };
        check(&ops, &|t, v| t.depthwise_conv2d(v[0], v[1], v.get(2).copied(), params), &fwd)?;
    }
}

/// Batch statistics stay accurate far from zero (a mean 10⁵ times the spread), where `E[x²] − E[x]²` summed in
/// f32 would cancel to noise: blocks are summed about their own first row and combined in f64.
#[test]
fn batch_norm_statistics_survive_a_large_mean() {
    let (r, c) = (100, 3);
    let xs: Vec<f32> = (0..r * c).map(|i| 1.0e4 + ((i * 7919) % 101) as f32 * 1e-3 * (1 + i % c) as f32).collect();
    let params = Params::new();
    let mut tape = Tape::new();
    let mut rec = tape.record(&params);
    let x = rec.input(&[r, c], &xs).unwrap();
    let out = rec.batch_norm_train(x, None, None, 1e-6, false).unwrap();
    let (mean, var) = (rec.value(out.mean).unwrap().to_vec(), rec.value(out.variance).unwrap().to_vec());
    for ch in 0..c {
        let col: Vec<f64> = (0..r).map(|i| f64::from(xs[i * c + ch])).collect();
        let m = col.iter().sum::<f64>() / r as f64;
        let v = col.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / r as f64;
        assert!((f64::from(mean[ch]) - m).abs() <= 1e-3, "mean {} vs {m}", mean[ch]);
        assert!((f64::from(var[ch]) - v).abs() <= 1e-3 * v, "variance {} vs {v}", var[ch]);
    }
}

/// Tied maxima share the gradient of a global maximum equally (TensorFlow's `reduce_max` gradient).
#[test]
fn global_max_shares_ties() {
    let mut params = Params::new();
    let x = kiln_tensor::Tensor::from_slice(&[1, 2, 2, 1], &[2.0, 5.0, 5.0, 1.0]).unwrap();
    let id = params.add("x", &x, true).unwrap();
    let mut tape = Tape::new();
    {
        let mut rec = tape.record(&params);
        let v = rec.param(id).unwrap();
        let y = rec.global_max_pool2d(v).unwrap();
        assert_eq!(rec.value(y).unwrap(), [5.0]);
        let l = rec.sum(y).unwrap();
        rec.backward(l).unwrap();
    }
    assert_eq!(tape.param_grad(id).unwrap(), [0.0, 0.5, 0.5, 0.0]);
}

/// Dropout: the kept fraction matches the rate, kept values are scaled by 1/(1 − rate), the gradient uses the
/// same mask, rate 0 is the identity, and the mask depends only on the seed.
#[test]
fn dropout() {
    let x: Vec<f32> = (0..4000).map(|i| 1.0 + (i % 7) as f32).collect();
    let mut params = Params::new();
    let id = params.add("x", &kiln_tensor::Tensor::from_slice(&[40, 100], &x).unwrap(), true).unwrap();
    let mut tape = Tape::new();
    tape.seed(7);
    let mut rec = tape.record(&params);
    let v = rec.param(id).unwrap();
    let y = rec.dropout(v, 0.25).unwrap();
    let yv = rec.value(y).unwrap().to_vec();
    let kept = yv.iter().filter(|&&v| v != 0.0).count() as f64 / 4000.0;
    assert!((kept - 0.75).abs() < 0.03, "kept fraction {kept}");
    for (a, b) in yv.iter().zip(&x) {
        assert!(*a == 0.0 || (a / b - 1.0 / 0.75).abs() < 1e-6);
    }
    let seed = projection(4000);
    rec.backward_from(y, &seed).unwrap();
    let g = tape.param_grad(id).unwrap();
    for ((g, y), (s, x)) in g.iter().zip(&yv).zip(seed.iter().zip(&x)) {
        assert!((g - s * y / x).abs() < 1e-5);
    }
    let mut rec = tape.record(&params);
    let v = rec.param(id).unwrap();
    assert_eq!(rec.dropout(v, 0.0).unwrap(), v);
    assert!(rec.dropout(v, 1.0).is_err());
    let mut again = Tape::new();
    again.seed(7);
    let mut rec = again.record(&params);
    let v2 = rec.param(id).unwrap();
    let y2 = rec.dropout(v2, 0.25).unwrap();
    assert_eq!(rec.value(y2).unwrap(), &yv[..]);
}

/// The fused softmax + cross-entropy equals the unfused probability formula where no clipping happens.
#[test]
fn fused_cross_entropy_equals_unfused() {
    let z: Vec<f32> = (0..60).map(|i| ((i * 37) % 11) as f32 * 0.4 - 2.0).collect();
    let t: Vec<f32> = (0..60).map(|i| f32::from(u8::from(i % 10 == (i / 10) % 10))).collect();
    let params = Params::new();
    let mut tape = Tape::new();
    let mut rec = tape.record(&params);
    let zv = rec.input(&[6, 10], &z).unwrap();
    let tv = rec.input(&[6, 10], &t).unwrap();
    let p = rec.softmax(zv).unwrap();
    let fused = rec.categorical_crossentropy(p, tv).unwrap();
    let copy = rec.value(p).unwrap().to_vec();
    let pc = rec.input(&[6, 10], &copy).unwrap();
    let unfused = rec.categorical_crossentropy(pc, tv).unwrap();
    let (a, b) = (rec.value(fused).unwrap()[0], rec.value(unfused).unwrap()[0]);
    assert!((a - b).abs() <= 1e-6 * a.abs().max(1.0), "fused {a} vs unfused {b}");
}

/// The flagship architecture (conv 5×5 swish → conv 5×5 swish → flatten → dense swish → dense softmax →
/// categorical cross-entropy) at small size: every parameter's gradient against f64 finite differences.
#[test]
fn flagship_model_gradients() {
    let (n, hw) = (2usize, 12usize);
    let g1 = Conv2dGeometry::spec(n, [hw, hw, 1], [5, 5], 3).build().unwrap();
    let g2 = Conv2dGeometry::spec(n, [8, 8, 3], [5, 5], 6).build().unwrap();
    let (flat, hidden, classes) = (4 * 4 * 6, 7usize, 10usize);
    let mut seed = 1u64;
    let mut rnd = |lo: f32, hi: f32, len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                lo + (hi - lo) * ((seed >> 40) as f32 / (1u64 << 24) as f32)
            })
            .collect()
    };
    let x = rnd(0.0, 1.0, g1.input_len());
    let t: Vec<f32> =
        (0..n * classes).map(|i| f32::from(u8::from(i % classes == (3 * (i / classes) + 1) % classes))).collect();
    let ops = vec![
        op(&g1.input_shape(), x, false),
        op(&[n, classes], t, false),
        op(&g1.weight_shape(), rnd(-0.4, 0.4, g1.weight_len()), true),
        op(&[3], rnd(-0.1, 0.1, 3), true),
        op(&g2.weight_shape(), rnd(-0.3, 0.3, g2.weight_len()), true),
        op(&[6], rnd(-0.1, 0.1, 6), true),
        op(&[flat, hidden], rnd(-0.3, 0.3, flat * hidden), true),
        op(&[hidden], rnd(-0.1, 0.1, hidden), true),
        op(&[hidden, classes], rnd(-0.5, 0.5, hidden * classes), true),
        op(&[classes], rnd(-0.1, 0.1, classes), true),
    ];
    let build = |t: &mut Recording<'_, '_>, v: &[Var]| {
        let h = t.conv2d(v[0], v[2], Some(v[3]), Conv2dParams::default())?;
        let h = t.swish(h)?;
        let h = t.conv2d(h, v[4], Some(v[5]), Conv2dParams::default())?;
        let h = t.swish(h)?;
        let h = t.flatten(h)?;
        let h = t.dense(h, v[6], Some(v[7]))?;
        let h = t.swish(h)?;
        let z = t.dense(h, v[8], Some(v[9]))?;
        let p = t.softmax(z)?;
        t.categorical_crossentropy(p, v[1])
    };
    let fwd = |x: &[Vec<f64>]| {
        let h: Vec<f64> = conv64(&g1, &x[0], &x[2], Some(&x[3])).into_iter().map(swish64).collect();
        let h: Vec<f64> = conv64(&g2, &h, &x[4], Some(&x[5])).into_iter().map(swish64).collect();
        let h: Vec<f64> = dense64(&h, &x[6], Some(&x[7]), n, flat, hidden).into_iter().map(swish64).collect();
        let p = softmax64(&dense64(&h, &x[8], Some(&x[9]), n, hidden, classes), classes);
        let loss: f64 = p.iter().zip(&x[1]).map(|(p, t)| -t * p.ln()).sum::<f64>() / n as f64;
        vec![loss]
    };
    check(&ops, &build, &fwd).unwrap();
}

/// Random flips: every sample comes out as itself or mirrored along the requested axes only, each axis about
/// half the time and independently; the backward pass routes each output gradient back to the input it came
/// from; the draws depend only on the seed.
#[test]
fn random_flip() {
    let (n, h, w, c) = (400, 3, 4, 2);
    let x: Vec<f32> = (0..n * h * w * c).map(|i| i as f32 / 100.0).collect();
    let t: Vec<f32> = (0..x.len()).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
    let mut params = Params::new();
    let id = params.add("x", &kiln_tensor::Tensor::from_slice(&[n, h, w, c], &x).unwrap(), true).unwrap();
    // L = mse(flip(x), t): dL/dy = 2(y − t)/N, which must arrive at the flipped-back positions of x.
    let run = |horizontal: bool, vertical: bool, seed: u64| {
        let mut tape = Tape::new();
        tape.seed(seed);
        let y = {
            let mut rec = tape.record(&params);
            let v = rec.param(id).unwrap();
            let y = rec.random_flip(v, horizontal, vertical).unwrap();
            let target = rec.input(&[n, h, w, c], &t).unwrap();
            let l = rec.mse(y, target).unwrap();
            let yv = rec.value(y).unwrap().to_vec();
            rec.backward(l).unwrap();
            yv
        };
        (y, tape.param_grad(id).unwrap().to_vec())
    };
    let idx = |b: usize, yy: usize, xx: usize| ((b * h + yy) * w + xx) * c;
    for (horizontal, vertical) in [(true, false), (false, true), (true, true)] {
        let (y, dx) = run(horizontal, vertical, 7);
        let (mut hs, mut vs) = (0, 0);
        for b in 0..n {
            let kinds = [(false, false), (true, false), (false, true), (true, true)].into_iter().find(|&(fx, fy)| {
                (!fx || horizontal)
                    && (!fy || vertical)
                    && (0..h).all(|yy| {
                        (0..w).all(|xx| {
                            let src = idx(b, if fy { h - 1 - yy } else { yy }, if fx { w - 1 - xx } else { xx });
                            y[idx(b, yy, xx)..idx(b, yy, xx) + c] == x[src..src + c]
                        })
                    })
            });
            let (fx, fy) = kinds.unwrap_or_else(|| panic!("sample {b} is not a flip along the allowed axes"));
            hs += usize::from(fx);
            vs += usize::from(fy);
            for yy in 0..h {
                for xx in 0..w {
                    let src = idx(b, if fy { h - 1 - yy } else { yy }, if fx { w - 1 - xx } else { xx });
                    for ch in 0..c {
                        let o = idx(b, yy, xx) + ch;
                        let want = 2.0 * (f64::from(y[o]) - f64::from(t[o])) / x.len() as f64;
                        let got = f64::from(dx[src + ch]);
                        assert!(
                            (got - want).abs() <= 1e-6 * want.abs() + 1e-9,
                            "gradient of sample {b}: {got} vs {want}"
                        );
                    }
                }
            }
        }
        // Binomial(400, ½): within ±4.5 standard deviations (±45) of 200.
        for (on, count) in [(horizontal, hs), (vertical, vs)] {
            assert!(if on { (155..=245).contains(&count) } else { count == 0 }, "{count} flips");
        }
        assert_eq!(run(horizontal, vertical, 7).0, y, "same seed, same flips");
        assert_ne!(run(horizontal, vertical, 8).0, y, "another seed, other flips");
    }
}
