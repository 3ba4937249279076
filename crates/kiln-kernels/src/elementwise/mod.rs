//! Elementwise kernels: a vectorised `exp`, sigmoid, tanh, swish (SiLU) and ReLU with their backward passes, bias
//! addition and column sums (bias gradients). Each is written once, generically over the crate's `Simd`
//! vocabulary, and compiled per ISA inside a `#[target_feature]` entry reached through [`Kernels`].
//!
//! Accuracy, measured by `tests/activation.rs` over every 613th f32 bit pattern of both signs plus special values,
//! in ulps of the correctly rounded result (AVX-512, AVX2 and portable alike; `cargo test -p kiln-kernels --test
//! activation -- --nocapture`): `exp` 0.98 (asserted ≤ [`ULP_BOUND_EXP`] = 2), `sigmoid` 2.45, `tanh` 1.25,
//! `swish` 2.77 (asserted ≤ [`ULP_BOUND_ACTIVATION`] = 4); subnormal results within 0.96·2⁻¹⁴⁹. Limits:
//! `exp(+∞) = +∞`, `exp(−∞) = 0`; `sigmoid(±∞) = 1, 0`;
//! `swish(+∞) = +∞`, `swish(−∞) = −0` (the limit, where the naive `x·σ(x)` gives NaN); `swish′(±∞) = 1, 0`;
//! NaN in, NaN out.

use crate::dispatch::Kernels;
use crate::error::{KernelError, Result};
use crate::geometry::{checked_elements, expect_len};

pub mod channel;
pub(crate) mod convert;
mod math;
mod rows;
pub(crate) mod softmax;
pub(crate) mod table;

pub(crate) use math::{backward, swish_with_derivative, unary};
pub(crate) use rows::{bias_add, column_sums};

/// Asserted max error of `exp` in ulp (normal results).
pub const ULP_BOUND_EXP: f64 = 2.0;
/// Asserted max error of `sigmoid`, `swish` and `tanh` in ulp (normal results).
pub const ULP_BOUND_ACTIVATION: f64 = 4.0;

/// A unary elementwise function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unary {
    Exp,
    Sigmoid,
    Tanh,
    Swish,
    Relu,
}

/// A backward (gradient) elementwise function `dx = f(v, dy)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backward {
    /// `v = x`: `dx = dy·σ(x)·(1 + x·(1 − σ(x)))`.
    Swish,
    /// `v = x`: `dx = dy` where `x > 0`, else 0.
    Relu,
    /// `v = y = σ(x)`: `dx = dy·y·(1 − y)`.
    Sigmoid,
    /// `v = y = tanh(x)`: `dx = dy·(1 − y²)`.
    Tanh,
    /// `v = f′(x)` stored by the forward: `dx = dy·v`.
    Product,
}

fn same_len(op: &'static str, name: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got { Ok(()) } else { Err(KernelError::SliceLen { op, name, expected, got }) }
}

fn matrix(op: &'static str, channels: usize, len: usize) -> Result<usize> {
    if channels == 0 {
        return Err(KernelError::ZeroDim { op, dim: "channels", got: 0 });
    }
    if !len.is_multiple_of(channels) {
        return Err(KernelError::SliceLen {
            op,
            name: "matrix",
            expected: len.div_ceil(channels) * channels,
            got: len,
        });
    }
    checked_elements(op, "matrix", &[len / channels, channels])?;
    Ok(len / channels)
}

/// Rows of a row-major matrix of `len` elements with `cols` columns.
fn rows_of(op: &'static str, cols: usize, len: usize) -> Result<usize> {
    matrix(op, cols, len)
}

impl Kernels {
    /// Row softmax of the row-major `z` (`rows × cols`): `p[r] = exp(z[r] − max) / Σ exp(z[r] − max)`.
    pub fn softmax(&self, cols: usize, z: &[f32], p: &mut [f32]) -> Result<()> {
        rows_of("softmax", cols, z.len())?;
        same_len("softmax", "output", z.len(), p.len())?;
        // SAFETY: supported ISA; whole rows, equal lengths.
        unsafe { (self.elementwise.softmax)(softmax::SoftmaxOp::Softmax { cols, z, p }) };
        Ok(())
    }

    /// Fused softmax + categorical cross-entropy from logits `z` and targets `t` (both `rows × cols`): writes the
    /// probabilities `p` and the per-row losses `loss[r] = −Σ_c t·log_softmax(z[r])` (Keras' fused path).
    pub fn softmax_cross_entropy(
        &self,
        cols: usize,
        z: &[f32],
        t: &[f32],
        p: &mut [f32],
        loss: &mut [f32],
    ) -> Result<()> {
        let rows = rows_of("softmax_cross_entropy", cols, z.len())?;
        same_len("softmax_cross_entropy", "targets", z.len(), t.len())?;
        same_len("softmax_cross_entropy", "probabilities", z.len(), p.len())?;
        same_len("softmax_cross_entropy", "losses", rows, loss.len())?;
        // SAFETY: supported ISA; validated lengths.
        unsafe { (self.elementwise.softmax)(softmax::SoftmaxOp::CrossEntropy { cols, z, t, p, loss }) };
        Ok(())
    }

    /// Gradient of `scale · Σ_r loss[r]` with respect to the logits: `dz = scale·(p·Σ_c t − t)` (`scale = 1/rows`
    /// for a batch mean).
    pub fn softmax_cross_entropy_backward(
        &self,
        cols: usize,
        p: &[f32],
        t: &[f32],
        scale: f32,
        dz: &mut [f32],
    ) -> Result<()> {
        rows_of("softmax_cross_entropy_backward", cols, p.len())?;
        same_len("softmax_cross_entropy_backward", "targets", p.len(), t.len())?;
        same_len("softmax_cross_entropy_backward", "logit gradient", p.len(), dz.len())?;
        // SAFETY: supported ISA; validated lengths.
        unsafe { (self.elementwise.softmax)(softmax::SoftmaxOp::CrossEntropyBackward { cols, p, t, scale, dz }) };
        Ok(())
    }

    fn run_unary(&self, op: Unary, name: &'static str, x: &[f32], y: &mut [f32]) -> Result<()> {
        same_len(name, "output", x.len(), y.len())?;
        // SAFETY: a `&Kernels` exists only for a supported ISA; lengths checked.
        unsafe { (self.elementwise.unary)(op, x, y) };
        Ok(())
    }

    fn run_backward(&self, op: Backward, name: &'static str, v: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
        same_len(name, "output gradient", v.len(), dy.len())?;
        same_len(name, "input gradient", v.len(), dx.len())?;
        // SAFETY: a `&Kernels` exists only for a supported ISA; lengths checked.
        unsafe { (self.elementwise.backward)(op, v, dy, dx) };
        Ok(())
    }

    /// `y = eˣ` elementwise (≤ [`ULP_BOUND_EXP`] ulp).
    pub fn exp(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        self.run_unary(Unary::Exp, "exp", x, y)
    }
    /// `y = 1 / (1 + e⁻ˣ)`.
    pub fn sigmoid(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        self.run_unary(Unary::Sigmoid, "sigmoid", x, y)
    }
    /// `y = tanh x`.
    pub fn tanh(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        self.run_unary(Unary::Tanh, "tanh", x, y)
    }
    /// `y = x·σ(x)` (Keras `swish`, PyTorch `SiLU`).
    pub fn swish(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        self.run_unary(Unary::Swish, "swish", x, y)
    }
    /// `y = max(x, 0)` (NaN stays NaN).
    pub fn relu(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        self.run_unary(Unary::Relu, "relu", x, y)
    }
    /// `dx = dy · swish′(x)`, from the forward input `x`.
    pub fn swish_backward(&self, x: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
        self.run_backward(Backward::Swish, "swish_backward", x, dy, dx)
    }
    /// `y = x·σ(x)` and `d = swish′(x)` in one pass: the forward of a training step, which then needs no second
    /// exponential in the backward (`dx = dy·d`, [`Kernels::multiply`]). `y` is bitwise [`Kernels::swish`]'s
    /// result and `dy·d` bitwise [`Kernels::swish_backward`]'s.
    pub fn swish_with_derivative(&self, x: &[f32], y: &mut [f32], d: &mut [f32]) -> Result<()> {
        same_len("swish_with_derivative", "output", x.len(), y.len())?;
        same_len("swish_with_derivative", "derivative", x.len(), d.len())?;
        // SAFETY: a `&Kernels` exists only for a supported ISA; lengths checked.
        unsafe { (self.elementwise.swish_pair)(x, y, d) };
        Ok(())
    }
    /// `out = a·b` elementwise (one rounding per element), e.g. the backward `dx = dy·f′(x)` of an activation
    /// whose derivative the forward stored.
    pub fn multiply(&self, a: &[f32], b: &[f32], out: &mut [f32]) -> Result<()> {
        self.run_backward(Backward::Product, "multiply", a, b, out)
    }
    /// `y = bf16(x)` elementwise, rounding to nearest even; NaN stays NaN (quieted), subnormals are rounded, not
    /// flushed. Bitwise `half::bf16::from_f32` on every ISA.
    pub fn f32_to_bf16(&self, x: &[f32], y: &mut [half::bf16]) -> Result<()> {
        same_len("f32_to_bf16", "output", x.len(), y.len())?;
        // SAFETY: a `&Kernels` exists only for a supported ISA; lengths checked.
        unsafe { (self.elementwise.to_bf16)(x, y) };
        Ok(())
    }
    /// `y = f32(x)` elementwise: exact, the bit shift (a NaN keeps its payload, signalling or not).
    pub fn bf16_to_f32(&self, x: &[half::bf16], y: &mut [f32]) -> Result<()> {
        same_len("bf16_to_f32", "output", x.len(), y.len())?;
        // SAFETY: a `&Kernels` exists only for a supported ISA; lengths checked.
        unsafe { (self.elementwise.from_bf16)(x, y) };
        Ok(())
    }
    /// `y = f32(bf16(x))`: [`Kernels::f32_to_bf16`] and back in one pass, for bf16 values kept in f32 storage (the
    /// operands of a `mixed_bfloat16` layer). `x` and `y` may not alias; round in place with a copy.
    pub fn round_to_bf16(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        same_len("round_to_bf16", "output", x.len(), y.len())?;
        // SAFETY: a `&Kernels` exists only for a supported ISA; lengths checked.
        unsafe { (self.elementwise.round_to_bf16)(x, y) };
        Ok(())
    }
    /// `dx = dy` where `x > 0`, else 0.
    pub fn relu_backward(&self, x: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
        self.run_backward(Backward::Relu, "relu_backward", x, dy, dx)
    }
    /// `dx = dy · y·(1 − y)`, from the forward output `y`.
    pub fn sigmoid_backward(&self, y: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
        self.run_backward(Backward::Sigmoid, "sigmoid_backward", y, dy, dx)
    }
    /// `dx = dy · (1 − y²)`, from the forward output `y`.
    pub fn tanh_backward(&self, y: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
        self.run_backward(Backward::Tanh, "tanh_backward", y, dy, dx)
    }

    /// Adds `bias` (length `channels`) to every row of the row-major `y` (`rows × channels`; NHWC activations are
    /// `(N·H·W) × C`). Each element gets exactly one f32 addition.
    pub fn bias_add(&self, y: &mut [f32], bias: &[f32]) -> Result<()> {
        matrix("bias_add", bias.len(), y.len())?;
        // SAFETY: supported ISA; y is a whole number of rows of bias.len() channels.
        unsafe { (self.elementwise.bias_add)(bias.len(), y, bias) };
        Ok(())
    }

    /// BatchNormalization's normalization of the row-major `x` (`rows × a.len()`): `y[r, j] = x[r, j]·a[j] + b[j]`
    /// (a product, then a sum: no fused multiply-add, so every ISA gives the same bits), then ReLU when `relu` —
    /// a following ReLU fused into the same pass.
    pub fn channel_affine(&self, x: &[f32], a: &[f32], b: &[f32], relu: bool, y: &mut [f32]) -> Result<()> {
        let op = "channel_affine";
        matrix(op, a.len(), x.len())?;
        expect_len(op, "b", a.len(), b.len())?;
        expect_len(op, "y", x.len(), y.len())?;
        // SAFETY: supported ISA; x and y are whole rows of a.len() == b.len() channels.
        unsafe { (self.elementwise.channel_affine)(x, a, b, relu, y) };
        Ok(())
    }

    /// BatchNormalization's input gradient, optionally through a fused ReLU (see [`channel::BnGrad`]): with batch
    /// statistics `dx = scale·((g − mean_dy) − x̂·mean_dy_xhat)`, `x̂ = (x − mean)·inv_std`; with fixed ones
    /// `dx = g·scale`; `g` is `∂y`, zero where the ReLU output is not positive. Same operations in the same order
    /// on every ISA.
    pub fn batch_norm_backward_data(
        &self,
        k: channel::BnGradCoefficients<'_>,
        op: channel::BnGrad<'_>,
        dx: &mut [f32],
    ) -> Result<()> {
        let name = "batch_norm_backward_data";
        let c = k.scale.len();
        matrix(name, c, dx.len())?;
        for (what, v) in [("inv_std", k.inv_std), ("mean", k.mean), ("mean_dy", k.mean_dy)] {
            expect_len(name, what, c, v.len())?;
        }
        expect_len(name, "mean_dy_xhat", c, k.mean_dy_xhat.len())?;
        expect_len(name, "x", dx.len(), op.x.len())?;
        expect_len(name, "dy", dx.len(), op.dy.len())?;
        if let Some(y) = op.relu_output {
            expect_len(name, "relu_output", dx.len(), y.len())?;
        }
        // SAFETY: supported ISA; every operand checked above.
        unsafe { (self.elementwise.batch_norm_backward_data)(k, op, dx) };
        Ok(())
    }

    /// Column sums of the row-major `dy` (`rows × db.len()`): the bias gradient `db[c] = Σ_r dy[r, c]`, with 8
    /// partial sums per column.
    pub fn column_sums(&self, dy: &[f32], db: &mut [f32]) -> Result<()> {
        matrix("column_sums", db.len(), dy.len())?;
        // SAFETY: supported ISA; dy is a whole number of rows of db.len() channels.
        unsafe { (self.elementwise.column_sums)(db.len(), dy, db) };
        Ok(())
    }
}
