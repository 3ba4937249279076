//! Elementwise-kernel properties, shared by `tests/activation.rs` and the harness-free `tests/neon.rs`.

use kiln_kernels::Kernels;
use kiln_kernels::reference::{K_DIRECT, bias_gradient};

/// `err <= tol`, false for a NaN error.
fn within(err: f64, tol: f64) -> bool {
    err <= tol
}

/// f64 references with the documented limits.
pub fn reference(name: &str, x: f64) -> f64 {
    match name {
        "exp" => x.exp(),
        "sigmoid" => 1.0 / (1.0 + (-x).exp()),
        "tanh" => x.tanh(),
        "swish" => {
            if x == f64::NEG_INFINITY {
                -0.0
            } else {
                x / (1.0 + (-x).exp())
            }
        }
        "relu" => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        _ => unreachable!("unknown function {name}"),
    }
}

pub fn run(k: &Kernels, name: &str, x: &[f32], y: &mut [f32]) {
    match name {
        "exp" => k.exp(x, y),
        "sigmoid" => k.sigmoid(x, y),
        "tanh" => k.tanh(x, y),
        "swish" => k.swish(x, y),
        "relu" => k.relu(x, y),
        _ => unreachable!(),
    }
    .expect("equal lengths");
}

/// Error of `got` against the exact `want`, in ulps of the correctly rounded f32 result (spacing 2⁻¹⁴⁹ in the
/// subnormal range). Returns (ulps, whether the correctly rounded result is normal). Mismatched special values give
/// infinity.
pub fn ulps(got: f32, want: f64) -> (f64, bool) {
    let rounded = want as f32;
    if want.is_nan() {
        return (if got.is_nan() { 0.0 } else { f64::INFINITY }, true);
    }
    if rounded.is_infinite() || got.is_infinite() || got.is_nan() {
        return (if got == rounded { 0.0 } else { f64::INFINITY }, true);
    }
    let normal = rounded.abs() >= f32::MIN_POSITIVE;
    let spacing = if normal { 2f64.powi(rounded.abs().log2().floor() as i32 - 23) } else { 2f64.powi(-149) };
    ((f64::from(got) - want).abs() / spacing, normal)
}

/// Every `stride`-th f32 bit pattern (both signs) plus special values.
pub fn sweep(stride: u32) -> Vec<f32> {
    let mut v: Vec<f32> = (0..=u32::MAX / stride).map(|i| f32::from_bits(i * stride)).collect();
    v.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1e-45,
        88.72283,
        88.72284,
        -87.33655,
        -103.97207,
        -103.9721,
        0.625,
        -0.625,
        0.624_999_94,
        17.0,
        -17.0,
    ]);
    v
}

/// Max ulp error of `name` on `x` (normal results, subnormal results), failing on any special-value mismatch.
pub fn max_ulps(k: &Kernels, name: &str, x: &[f32]) -> Result<(f64, f64), String> {
    let mut y = vec![0.0f32; x.len()];
    run(k, name, x, &mut y);
    let (mut normal_max, mut sub_max) = (0.0f64, 0.0f64);
    for (&xi, &yi) in x.iter().zip(&y) {
        let (e, normal) = ulps(yi, reference(name, f64::from(xi)));
        if e.is_infinite() {
            return Err(format!("{}: {name}({xi:e}) = {yi:e}, expected {:e}", k.isa(), reference(name, f64::from(xi))));
        }
        if normal {
            normal_max = normal_max.max(e);
        } else {
            sub_max = sub_max.max(e);
        }
    }
    Ok((normal_max, sub_max))
}

/// Backward kernels against f64 formulas; returns the max relative error (in units of eps32) over `x`.
pub fn check_backward(k: &Kernels, x: &[f32], dy: &[f32]) -> Result<(), String> {
    let n = x.len();
    let mut dx = vec![f32::NAN; n];
    // swish′, from x.
    k.swish_backward(x, dy, &mut dx).map_err(|e| e.to_string())?;
    for i in 0..n {
        let xv = f64::from(x[i]);
        let s = 1.0 / (1.0 + (-xv).exp());
        let d = match xv {
            f64::INFINITY => 1.0,
            f64::NEG_INFINITY => 0.0,
            _ => s + xv * s * (1.0 - s),
        };
        let want = f64::from(dy[i]) * d;
        // σ and e^−x each carry a few ulps; the product a few more: 16·eps relative, plus an absolute floor.
        let tol = 16.0 * f64::from(f32::EPSILON) * want.abs() + 1e-37;
        if !within((f64::from(dx[i]) - want).abs(), tol) {
            return Err(format!(
                "{}: swish_backward({:e}, {:e}) = {:e}, expected {want:e}",
                k.isa(),
                x[i],
                dy[i],
                dx[i]
            ));
        }
    }
    // relu′: exact.
    k.relu_backward(x, dy, &mut dx).map_err(|e| e.to_string())?;
    for i in 0..n {
        let want = if x[i] > 0.0 { dy[i] } else { 0.0 };
        if dx[i].to_bits() != want.to_bits() && !(dx[i] == 0.0 && want == 0.0) {
            return Err(format!("{}: relu_backward({}, {}) = {}", k.isa(), x[i], dy[i], dx[i]));
        }
    }
    // sigmoid′ and tanh′ from the outputs: at most 3 roundings each.
    let mut y = vec![0.0f32; n];
    k.sigmoid(x, &mut y).map_err(|e| e.to_string())?;
    k.sigmoid_backward(&y, dy, &mut dx).map_err(|e| e.to_string())?;
    for i in 0..n {
        let (yv, g) = (f64::from(y[i]), f64::from(dy[i]));
        let want = g * yv * (1.0 - yv);
        if !within((f64::from(dx[i]) - want).abs(), 4.0 * f64::from(f32::EPSILON) * want.abs() + 1e-38) {
            return Err(format!("{}: sigmoid_backward at {} = {}, expected {want}", k.isa(), y[i], dx[i]));
        }
    }
    k.tanh(x, &mut y).map_err(|e| e.to_string())?;
    k.tanh_backward(&y, dy, &mut dx).map_err(|e| e.to_string())?;
    for i in 0..n {
        let (yv, g) = (f64::from(y[i]), f64::from(dy[i]));
        let want = g * (1.0 - yv * yv);
        // 1 − y² cancels near |y| = 1: bound the error by the terms' magnitude.
        let tol = 4.0 * f64::from(f32::EPSILON) * g.abs() * (1.0 + yv * yv) + 1e-38;
        if !within((f64::from(dx[i]) - want).abs(), tol) {
            return Err(format!("{}: tanh_backward at {} = {}, expected {want}", k.isa(), y[i], dx[i]));
        }
    }
    Ok(())
}

/// `bias_add` is exactly one f32 addition per element; `column_sums` is within K = 8 of the f64 reference.
pub fn check_bias(k: &Kernels, rows: usize, channels: usize, seed: u64) -> Result<(), String> {
    let y0 = super::gemm::values(rows * channels, (seed % 4) as u8, seed);
    let bias = super::gemm::values(channels, 0, seed ^ 77);
    let mut y = y0.clone();
    k.bias_add(&mut y, &bias).map_err(|e| e.to_string())?;
    for (i, (&got, &orig)) in y.iter().zip(&y0).enumerate() {
        let want = orig + bias[i % channels];
        if got.to_bits() != want.to_bits() {
            return Err(format!("{}: bias_add element {i}: {got} vs {want}", k.isa()));
        }
    }
    let mut db = vec![f32::NAN; channels];
    k.column_sums(&y0, &mut db).map_err(|e| e.to_string())?;
    let want = bias_gradient(rows, channels, &y0).map_err(|e| e.to_string())?;
    want.check(db.iter().copied(), K_DIRECT).map_err(|e| format!("{}: column_sums {rows}x{channels}: {e}", k.isa()))
}

const EPS: f64 = f32::EPSILON as f64;

/// Softmax, fused cross-entropy and its gradient against f64, for `rows × cols` logits scaled by `scale`.
pub fn check_softmax(k: &Kernels, rows: usize, cols: usize, scale: f32, seed: u64) -> Result<(), String> {
    let z: Vec<f32> = super::gemm::values(rows * cols, 0, seed).iter().map(|v| v * scale).collect();
    // One-hot targets, except every third row with soft labels summing to 1.
    let mut t = vec![0.0f32; rows * cols];
    for r in 0..rows {
        if r % 3 == 2 {
            t[r * cols..(r + 1) * cols].fill(1.0 / cols as f32);
        } else {
            t[r * cols + (seed as usize + r * 7) % cols] = 1.0;
        }
    }
    let (mut p, mut p2, mut loss) = (vec![f32::NAN; z.len()], vec![f32::NAN; z.len()], vec![f32::NAN; rows]);
    k.softmax(cols, &z, &mut p).map_err(|e| e.to_string())?;
    k.softmax_cross_entropy(cols, &z, &t, &mut p2, &mut loss).map_err(|e| e.to_string())?;
    if p.iter().zip(&p2).any(|(a, b)| a.to_bits() != b.to_bits()) {
        return Err(format!("{}: fused probabilities differ from softmax", k.isa()));
    }
    for r in 0..rows {
        let zr: Vec<f64> = z[r * cols..(r + 1) * cols].iter().map(|&v| f64::from(v)).collect();
        let m = zr.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = zr.iter().map(|v| (v - m).exp()).sum();
        let mut want_loss = 0.0;
        let mut loss_scale = 0.0;
        for c in 0..cols {
            let want = (zr[c] - m).exp() / sum;
            let got = f64::from(p[r * cols + c]);
            // z − m is rounded to f32 (absolute error ≤ eps·|z − m|), which exp turns into a relative error of
            // eps·|z − m| (its condition number); exp itself ≤ 1 ulp, the row sum and one division: 8·eps more.
            if !within((got - want).abs(), (8.0 + (zr[c] - m).abs()) * EPS * want + 1e-44) {
                return Err(format!(
                    "{}: softmax[{r},{c}] = {got:e}, expected {want:e} ({rows}x{cols}, scale {scale})",
                    k.isa()
                ));
            }
            let tc = f64::from(t[r * cols + c]);
            if tc != 0.0 {
                want_loss -= tc * (zr[c] - m - sum.ln());
                loss_scale += tc * ((zr[c] - m).abs() + sum.ln().abs() + 1.0);
            }
        }
        let got = f64::from(loss[r]);
        if !within((got - want_loss).abs(), 8.0 * EPS * loss_scale) {
            return Err(format!("{}: loss[{r}] = {got:e}, expected {want_loss:e}", k.isa()));
        }
    }
    let mut dz = vec![f32::NAN; z.len()];
    let s = 1.0 / rows.max(1) as f32;
    k.softmax_cross_entropy_backward(cols, &p, &t, s, &mut dz).map_err(|e| e.to_string())?;
    for r in 0..rows {
        let st: f64 = t[r * cols..(r + 1) * cols].iter().map(|&v| f64::from(v)).sum();
        for c in 0..cols {
            let i = r * cols + c;
            let (pv, tv) = (f64::from(p[i]), f64::from(t[i]));
            let want = f64::from(s) * (pv * st - tv);
            let tol = 4.0 * EPS * f64::from(s) * (pv * st.abs() + tv.abs()) + 1e-44;
            if !within((f64::from(dz[i]) - want).abs(), tol) {
                return Err(format!("{}: dz[{r},{c}] = {:e}, expected {want:e}", k.isa(), dz[i]));
            }
        }
    }
    Ok(())
}

/// One step of each optimizer against its f64 formula (Keras 3), for `len` parameters.
pub fn check_optim(k: &Kernels, len: usize, seed: u64) -> Result<(), String> {
    use kiln_kernels::optim::{AdamParams, Average, RmsPropParams, SgdParams, Update};
    let w0 = super::gemm::values(len, 0, seed);
    let g = super::gemm::values(len, 0, seed ^ 1);
    let s0: Vec<f32> = super::gemm::values(len, 2, seed ^ 2).iter().map(|v| v * 0.01).collect();
    let close = |what: &str, got: &[f32], want: &[f64], scale: &[f64]| -> Result<(), String> {
        for i in 0..got.len() {
            if !within((f64::from(got[i]) - want[i]).abs(), 8.0 * EPS * scale[i] + 1e-38) {
                return Err(format!("{}: {what}[{i}] = {:e}, expected {:e}", k.isa(), got[i], want[i]));
            }
        }
        Ok(())
    };
    let f = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let (wd, gd, sd) = (f(&w0), f(&g), f(&s0));

    // RMSprop.
    let p = RmsPropParams::default();
    let (mut w, mut v) = (w0.clone(), s0.clone());
    k.rmsprop_step(&mut w, &g, &mut v, p).map_err(|e| e.to_string())?;
    let (rho, lr, eps) = (f64::from(p.rho), f64::from(p.lr), f64::from(p.epsilon));
    let v_ref: Vec<f64> = (0..len).map(|i| rho * sd[i] + (1.0 - rho) * gd[i] * gd[i]).collect();
    let step: Vec<f64> = (0..len).map(|i| lr * gd[i] / (v_ref[i] + eps).sqrt()).collect();
    close("rmsprop v", &v, &v_ref, &v_ref)?;
    let w_ref: Vec<f64> = (0..len).map(|i| wd[i] - step[i]).collect();
    close("rmsprop w", &w, &w_ref, &(0..len).map(|i| wd[i].abs() + step[i].abs()).collect::<Vec<_>>())?;

    // ε inside the root is what distinguishes Keras' RMSprop from PyTorch's: with v = 0 and |g| ~ 1e-4 the two
    // differ tenfold (√(1e-9 + 1e-7) vs √1e-9 + 1e-7).
    let g_small: Vec<f32> = g.iter().map(|x| x * 1e-4).collect();
    let (mut w, mut v) = (w0.clone(), vec![0.0f32; len]);
    k.rmsprop_step(&mut w, &g_small, &mut v, p).map_err(|e| e.to_string())?;
    let step: Vec<f64> = (0..len)
        .map(|i| {
            let gi = f64::from(g_small[i]);
            lr * gi / ((1.0 - rho) * gi * gi + eps).sqrt()
        })
        .collect();
    let w_ref: Vec<f64> = (0..len).map(|i| wd[i] - step[i]).collect();
    close("rmsprop w (small g)", &w, &w_ref, &(0..len).map(|i| wd[i].abs() + step[i].abs()).collect::<Vec<_>>())?;

    // The data-parallel fused step: gradient a·g + b·h on the fly, g untouched. Compared with the
    // separate step on the f32-rounded average (the fused form rounds a·g once more: a few eps of the step).
    let h = super::gemm::values(len, 0, seed ^ 3);
    let (a, b) = (0.625f32, 0.375f32);
    let avg: Vec<f32> =
        g.iter().zip(&h).map(|(&x, &y)| (f64::from(a) * f64::from(x) + f64::from(b) * f64::from(y)) as f32).collect();
    let slots = |n: usize| -> Vec<Vec<f32>> { (0..n).map(|_| s0.iter().map(|x| x.abs()).collect()).collect() };
    for which in 0..3 {
        let (mut w1, mut w2) = (w0.clone(), w0.clone());
        let (mut s1, mut s2) = (slots(2), slots(2));
        let [s1a, s1b] = &mut s1[..] else { unreachable!() };
        let [s2a, s2b] = &mut s2[..] else { unreachable!() };
        let g_before = g.clone();
        let r = Average { other: &h, a, b };
        let sgd = SgdParams { lr: 0.01, momentum: 0.9, nesterov: false, ..SgdParams::default() };
        let res = match which {
            0 => k.rmsprop_step(&mut w2, &avg, s2a, RmsPropParams::default()).and_then(|()| {
                k.averaged_step(&mut w1, &g, Update::RmsProp { v: s1a, p: RmsPropParams::default() }, r)
            }),
            1 => k.adam_step(&mut w2, &avg, s2a, s2b, AdamParams::default(), 2).and_then(|()| {
                k.averaged_step(&mut w1, &g, Update::Adam { m: s1a, v: s1b, p: AdamParams::default(), t: 2 }, r)
            }),
            _ => k
                .sgd_step(&mut w2, &avg, s2a, sgd)
                .and_then(|()| k.averaged_step(&mut w1, &g, Update::Sgd { u: s1a, p: sgd }, r)),
        };
        res.map_err(|e| e.to_string())?;
        let want = f(&w2);
        close("averaged w", &w1, &want, &(0..len).map(|i| wd[i].abs() + (want[i] - wd[i]).abs()).collect::<Vec<_>>())?;
        if g != g_before {
            return Err(format!("{}: averaged step: g was written", k.isa()));
        }
    }

    // Adam at step t = 3.
    let p = AdamParams::default();
    let (mut w, mut m, mut v) = (w0.clone(), s0.clone(), s0.iter().map(|x| x * x).collect::<Vec<f32>>());
    let (md, vd) = (f(&m), f(&v));
    k.adam_step(&mut w, &g, &mut m, &mut v, p, 3).map_err(|e| e.to_string())?;
    let (b1, b2) = (f64::from(p.beta_1), f64::from(p.beta_2));
    let alpha = f64::from(p.lr) * (1.0 - b2.powi(3)).sqrt() / (1.0 - b1.powi(3));
    let m_ref: Vec<f64> = (0..len).map(|i| b1 * md[i] + (1.0 - b1) * gd[i]).collect();
    let v_ref: Vec<f64> = (0..len).map(|i| b2 * vd[i] + (1.0 - b2) * gd[i] * gd[i]).collect();
    let step: Vec<f64> = (0..len).map(|i| alpha * m_ref[i] / (v_ref[i].sqrt() + f64::from(p.epsilon))).collect();
    close("adam m", &m, &m_ref, &(0..len).map(|i| b1 * md[i].abs() + gd[i].abs()).collect::<Vec<_>>())?;
    close("adam v", &v, &v_ref, &v_ref)?;
    let w_ref: Vec<f64> = (0..len).map(|i| wd[i] - step[i]).collect();
    close("adam w", &w, &w_ref, &(0..len).map(|i| wd[i].abs() + step[i].abs()).collect::<Vec<_>>())?;

    // Decoupled weight decay (Keras 3 `weight_decay`, AdamW): the step on `w` with decay equals, bit for bit, the
    // step without decay on `w − (w·wd)·lr` computed in f32 in Keras' order — every optimizer, averaged or not.
    let (wdec, lr) = (0.004f32, 0.05f32);
    let decayed: Vec<f32> = w0.iter().map(|&x| x - (x * wdec) * lr).collect();
    for which in 0..3 {
        let (mut w1, mut w2) = (w0.clone(), decayed.clone());
        let (mut a1, mut b1, mut a2, mut b2) = (s0.clone(), s0.clone(), s0.clone(), s0.clone());
        for a in [&mut a1, &mut b1, &mut a2, &mut b2] {
            a.iter_mut().for_each(|x| *x = x.abs());
        }
        let rms = RmsPropParams { lr, ..RmsPropParams::default() };
        let adam = AdamParams { lr, ..AdamParams::default() };
        let sgd = SgdParams { lr, momentum: 0.9, nesterov: true, ..SgdParams::default() };
        let (u1, u2) = match which {
            0 => (
                Update::RmsProp { v: &mut a1, p: RmsPropParams { weight_decay: wdec, ..rms } },
                Update::RmsProp { v: &mut a2, p: rms },
            ),
            1 => (
                Update::Adam { m: &mut a1, v: &mut b1, p: AdamParams { weight_decay: wdec, ..adam }, t: 4 },
                Update::Adam { m: &mut a2, v: &mut b2, p: adam, t: 4 },
            ),
            _ => (
                Update::Sgd { u: &mut a1, p: SgdParams { weight_decay: wdec, ..sgd } },
                Update::Sgd { u: &mut a2, p: sgd },
            ),
        };
        let r = Average { other: &g, a: 0.25, b: 0.75 };
        k.averaged_step(&mut w1, &g, u1, r)
            .and_then(|()| k.averaged_step(&mut w2, &g, u2, r))
            .map_err(|e| e.to_string())?;
        if w1.iter().zip(&w2).any(|(x, y)| x.to_bits() != y.to_bits()) {
            return Err(format!("{}: weight decay of optimizer {which} differs from w − (w·wd)·lr first", k.isa()));
        }
    }

    // SGD: plain, momentum, Nesterov.
    for (momentum, nesterov) in [(0.0f32, false), (0.9, false), (0.9, true)] {
        let p = SgdParams { lr: 0.01, momentum, nesterov, ..SgdParams::default() };
        let mut w = w0.clone();
        let mut u = if momentum == 0.0 { Vec::new() } else { s0.clone() };
        k.sgd_step(&mut w, &g, &mut u, p).map_err(|e| e.to_string())?;
        let (mu, lr) = (f64::from(momentum), 0.01f64);
        let u_ref: Vec<f64> = (0..len).map(|i| if momentum == 0.0 { 0.0 } else { mu * sd[i] - lr * gd[i] }).collect();
        let w_ref: Vec<f64> = (0..len)
            .map(|i| match (momentum == 0.0, nesterov) {
                (true, _) => wd[i] - lr * gd[i],
                (false, false) => wd[i] + u_ref[i],
                (false, true) => wd[i] + mu * u_ref[i] - lr * gd[i],
            })
            .collect();
        let scale: Vec<f64> = (0..len).map(|i| wd[i].abs() + sd[i].abs() + lr * gd[i].abs()).collect();
        close("sgd w", &w, &w_ref, &scale)?;
        if momentum != 0.0 {
            close("sgd u", &u, &u_ref, &scale)?;
        }
    }
    Ok(())
}

/// The training forward `swish_with_derivative` gives bitwise `swish`'s values, and `multiply(d, dy)` bitwise
/// `swish_backward`'s gradients (the stored derivative is the same computation), over `sweep` and its last 0..40
/// elements (every tail length); `multiply` is the exact f32 product; mismatched lengths are errors.
pub fn check_fused_swish(k: &Kernels, sweep: &[f32]) -> Result<(), String> {
    let isa = k.isa();
    let mut cases: Vec<&[f32]> = vec![sweep];
    for len in 0..40.min(sweep.len() / 2) {
        cases.push(&sweep[sweep.len() - 20 - len..sweep.len() - 20]);
    }
    for x in cases {
        let n = x.len();
        let dy: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 12.5).collect();
        let (mut y, mut y2, mut d) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        let (mut dx, mut dx2) = (vec![0.0f32; n], vec![0.0f32; n]);
        k.swish(x, &mut y).map_err(|e| e.to_string())?;
        k.swish_with_derivative(x, &mut y2, &mut d).map_err(|e| e.to_string())?;
        k.swish_backward(x, &dy, &mut dx).map_err(|e| e.to_string())?;
        k.multiply(&d, &dy, &mut dx2).map_err(|e| e.to_string())?;
        for i in 0..n {
            if y[i].to_bits() != y2[i].to_bits() {
                return Err(format!("{isa}: swish({:e}) = {} but fused {}", x[i], y[i], y2[i]));
            }
            if dx[i].to_bits() != dx2[i].to_bits() {
                return Err(format!("{isa}: swish′({:e})·dy = {} but stored {}", x[i], dx[i], dx2[i]));
            }
            let p = d[i] * dy[i];
            if p.to_bits() != dx2[i].to_bits() && !(p.is_nan() && dx2[i].is_nan()) {
                return Err(format!("{isa}: multiply({}, {}) = {} not {p}", d[i], dy[i], dx2[i]));
            }
        }
    }
    let x = [1.0f32; 7];
    let bad = [
        k.swish_with_derivative(&x, &mut [0.0; 7], &mut [0.0; 6]).is_ok(),
        k.swish_with_derivative(&x, &mut [0.0; 6], &mut [0.0; 7]).is_ok(),
        k.multiply(&x, &[0.0; 6], &mut [0.0; 7]).is_ok(),
        k.multiply(&x, &[0.0; 7], &mut [0.0; 8]).is_ok(),
    ];
    if bad.iter().any(|&b| b) {
        return Err(format!("{isa}: mismatched lengths accepted: {bad:?}"));
    }
    Ok(())
}

/// BatchNormalization's per-channel kernels on `rows × channels` values (every ISA: the same bits as the plain
/// f32 loops they replace — a product then a sum, no FMA — for each combination of fused ReLU, training and
/// accumulation), and against f64 within `8·eps32` of each element's term magnitudes: a handful of roundings of
/// O(1) terms.
pub fn check_batch_norm(k: &Kernels, rows: usize, channels: usize, seed: u64) -> Result<(), String> {
    use kiln_kernels::elementwise::channel::{BnGrad, BnGradCoefficients};
    let v = |n: usize, s: u64, scale: f32, offset: f32| -> Vec<f32> {
        super::gemm::values(n, 0, seed ^ s).iter().map(|x| x * scale + offset).collect()
    };
    let n = rows * channels;
    // Some inputs exactly at the ReLU's kink (0 after normalization) come from x = mean.
    let mut x = v(n, 1, 3.0, 0.5);
    let mean = v(channels, 2, 1.0, 0.5);
    for (i, xv) in x.iter_mut().enumerate().step_by(7) {
        *xv = mean[i % channels];
    }
    let (a, b) = (v(channels, 3, 2.0, 0.1), v(channels, 4, 1.0, 0.0));
    let inv = v(channels, 5, 0.5, 1.0);
    let (m1, m2) = (v(channels, 6, 0.3, 0.0), v(channels, 7, 0.3, 0.0));
    let dy = v(n, 8, 1.0, 0.0);
    let dx0 = v(n, 9, 1.0, 0.0);
    let isa = k.isa();
    let tol = |terms: f64| 8.0 * EPS * terms + f64::MIN_POSITIVE;
    for relu in [false, true] {
        let mut y = vec![f32::NAN; n];
        k.channel_affine(&x, &a, &b, relu, &mut y).map_err(|e| e.to_string())?;
        for (i, &got) in y.iter().enumerate() {
            let j = i % channels;
            let plain = x[i] * a[j] + b[j];
            let want = if relu && plain < 0.0 { 0.0 } else { plain };
            if got.to_bits() != want.to_bits() {
                return Err(format!(
                    "{isa}: channel_affine {rows}x{channels} relu {relu} element {i}: {got} vs {want}"
                ));
            }
            let exact = f64::from(x[i]) * f64::from(a[j]) + f64::from(b[j]);
            let exact = if relu { exact.max(0.0) } else { exact };
            let terms = (f64::from(x[i]) * f64::from(a[j])).abs() + f64::from(b[j]).abs();
            if !within((f64::from(got) - exact).abs(), tol(terms)) {
                return Err(format!("{isa}: channel_affine element {i}: {got} vs f64 {exact}"));
            }
        }
        let coef = BnGradCoefficients { scale: &a, inv_std: &inv, mean: &mean, mean_dy: &m1, mean_dy_xhat: &m2 };
        for training in [false, true] {
            for accumulate in [false, true] {
                let mut dx = dx0.clone();
                let op = BnGrad { x: &x, dy: &dy, relu_output: relu.then_some(&y[..]), training, accumulate };
                k.batch_norm_backward_data(coef, op, &mut dx).map_err(|e| e.to_string())?;
                for (i, &got) in dx.iter().enumerate() {
                    let j = i % channels;
                    let g = if relu && y[i] <= 0.0 { 0.0 } else { dy[i] };
                    let (plain, exact, terms) = if training {
                        let xhat = (x[i] - mean[j]) * inv[j];
                        let xh64 = (f64::from(x[i]) - f64::from(mean[j])) * f64::from(inv[j]);
                        let t64 = f64::from(g) - f64::from(m1[j]) - xh64 * f64::from(m2[j]);
                        let terms = f64::from(a[j]).abs()
                            * (f64::from(g).abs() + f64::from(m1[j]).abs() + (xh64 * f64::from(m2[j])).abs());
                        (a[j] * (g - m1[j] - xhat * m2[j]), f64::from(a[j]) * t64, terms)
                    } else {
                        (g * a[j], f64::from(g) * f64::from(a[j]), (f64::from(g) * f64::from(a[j])).abs())
                    };
                    let (want, exact, terms) = if accumulate {
                        (dx0[i] + plain, f64::from(dx0[i]) + exact, terms + f64::from(dx0[i]).abs())
                    } else {
                        (plain, exact, terms)
                    };
                    if got.to_bits() != want.to_bits() {
                        return Err(format!(
                            "{isa}: batch_norm_backward_data {rows}x{channels} relu {relu} training {training} \
                             accumulate {accumulate} element {i}: {got} vs {want}"
                        ));
                    }
                    if !within((f64::from(got) - exact).abs(), tol(terms)) {
                        return Err(format!("{isa}: batch_norm_backward_data element {i}: {got} vs f64 {exact}"));
                    }
                }
            }
        }
    }
    // Mismatched operands are typed errors.
    let mut short = vec![0.0f32; n.saturating_sub(1)];
    if n > 0 && k.channel_affine(&x, &a, &b, false, &mut short).is_ok() {
        return Err(format!("{isa}: channel_affine accepted a short output"));
    }
    if k.channel_affine(&x, &a, &b[..channels - 1], false, &mut vec![0.0; n]).is_ok() {
        return Err(format!("{isa}: channel_affine accepted a short shift"));
    }
    Ok(())
}
