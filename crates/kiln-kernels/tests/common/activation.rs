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
