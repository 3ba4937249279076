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
use crate::geometry::checked_elements;
use crate::optim::{AdamParams, Replicated, RmsPropParams, SgdParams, Step, Update};
use crate::simd::{Op1, Op2, Simd, map, map2};

pub(crate) mod softmax;

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

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in two (Cody–Waite): `LN2_HI` has few significant bits so `n·LN2_HI` is exact for |n| ≤ 2⁹.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Above this, exp overflows to +∞.
const EXP_HI: f32 = 88.722_84;
/// Lower clamp of `exp_parts`: e^−120·120 < 2⁻¹⁵⁰, so everything below rounds to 0 even after the multiplication
/// by |x| in swish.
const EXP_PARTS_LO: f32 = -120.0;

/// `e^x = y·2ⁿ` with `y ∈ [0.7, 1.42]` and integral `n`, for `x` clamped to `[EXP_PARTS_LO, EXP_HI]`
/// (Cody–Waite reduction, Cephes' degree-5 polynomial). Keeping `n` apart lets callers multiply by other factors
/// before the final, single rounding into the subnormal range.
#[inline(always)]
fn exp_parts<S: Simd>(s: S, x: S::V) -> (S::V, S::V) {
    let xc = s.min(s.max(x, s.splat(EXP_PARTS_LO)), s.splat(EXP_HI));
    // n = round(x·log2 e) by the 1.5·2²³ trick (round to nearest even).
    let magic = s.splat(12_582_912.0);
    let n = s.sub(s.mul_add(xc, s.splat(LOG2E), magic), magic);
    let r = s.mul_add(n, s.splat(-LN2_HI), xc);
    let r = s.mul_add(n, s.splat(-LN2_LO), r);
    // Cephes expf: e^r ≈ 1 + r + r²·P(r) on |r| ≤ ln2/2.
    let mut p = s.splat(1.987_569_1e-4);
    p = s.mul_add(p, r, s.splat(0.0013982));
    p = s.mul_add(p, r, s.splat(0.008333452));
    p = s.mul_add(p, r, s.splat(0.041665796));
    p = s.mul_add(p, r, s.splat(0.16666666));
    p = s.mul_add(p, r, s.splat(0.5));
    (s.add(s.mul_add(s.mul(p, r), r, r), s.splat(1.0)), n)
}

/// `y·2ⁿ` for `n ∈ [−174, 128]`: `2ⁿ` is split as `2^(n−n₁)·2^n₁` with `n₁` clamped to the normal exponent range,
/// so both factors are representable and the only rounding is the final one (exact unless the result is
/// subnormal).
#[inline(always)]
fn scale2<S: Simd>(s: S, y: S::V, n: S::V) -> S::V {
    s.scale2(y, n)
}

#[inline(always)]
pub(crate) fn exp<S: Simd>(s: S, x: S::V) -> S::V {
    let (y, n) = exp_parts(s, x);
    let out = scale2(s, y, n);
    // Beyond the clamps: +∞ above, 0 below (where the clamped value already rounds to 0); NaN propagates.
    let out = s.select_lt(s.splat(EXP_HI), x, s.splat(f32::INFINITY), out);
    let out = s.select_lt(x, s.splat(EXP_PARTS_LO), s.splat(0.0), out);
    s.select_nan(x, x, out)
}

/// `(σ(x), 1 − σ(x))` from `e = e^−|x|`: for x ≥ 0, `1/(1+e)` and `e/(1+e)`; for x < 0 the two swap. Neither
/// exponential overflows, so results are accurate down into the subnormal range (σ(−100) ≈ 3.7e−44), where
/// `1/(1 + e^−x)` would overflow e^−x and flush to 0. NaN propagates.
#[inline(always)]
fn sigmoid_pair<S: Simd>(s: S, x: S::V) -> (S::V, S::V) {
    let e = exp(s, s.sub(s.splat(0.0), s.abs(x)));
    let inv = s.div(s.splat(1.0), s.add(s.splat(1.0), e));
    let ei = s.mul(e, inv);
    let zero = s.splat(0.0);
    (s.select_lt(x, zero, ei, inv), s.select_lt(x, zero, inv, ei))
}

#[inline(always)]
fn sigmoid<S: Simd>(s: S, x: S::V) -> S::V {
    sigmoid_pair(s, x).0
}

#[inline(always)]
fn swish<S: Simd>(s: S, x: S::V) -> S::V {
    swish_parts(s, x).0
}

/// `(x·σ(x), swish′(x))` from one exponential. Callers that use one of the two pay only for it (the other half is
/// dead code after inlining), so [`swish`], [`SwishGrad`] and the fused [`swish_with_derivative`] all run exactly
/// these operations: the fused forward's derivative is bitwise the one `swish_backward` computes.
#[inline(always)]
fn swish_parts<S: Simd>(s: S, x: S::V) -> (S::V, S::V) {
    let (zero, one) = (s.splat(0.0), s.splat(1.0));
    // One exponential, of −|x| (never overflows): e = y·2ⁿ, q = x · inv with inv = 1 / (1 + e), the reciprocal σ
    // needs too — one division per element instead of two (`x / (1 + e)` and `1 / (1 + e)`): swish_with_derivative
    // on 32×24×24×3, best of 4 × 4000 calls alternating old/new, AVX-512 35.3 → 31.3 µs (a zmm division is the
    // bottleneck there), AVX2 unchanged (82 µs); max error 2.63 → 2.92 ulp.
    // x ≥ 0: x·σ(x) = x / (1 + e^−x) = q.
    // x < 0: x·σ(x) = x·e^x / (1 + e^x) = (q·y)·2ⁿ, with 2ⁿ applied last so that for x ≲ −87 (e^x subnormal) the
    // product with x is formed at full precision and rounded once (x·σ(x) with a subnormal σ(x) was 46 ulp off).
    // Two exponentials and two divisions before: `cargo bench -p kiln-benches --bench activation -- swish/` on
    // 32×24×24×3, criterion change: AVX-512 +73 % (1.56 Gelem/s), AVX2 +45 %, portable +125 %; max error 2.63 ulp.
    // On AVX-512 each `scale2` is one vscalefps (same single rounding): 36.5 → 25.3 µs, median of 4 interleaved runs.
    let (y, n) = exp_parts(s, s.sub(zero, s.abs(x)));
    let e = scale2(s, y, n);
    let inv = s.div(one, s.add(one, e));
    let q = s.mul(x, inv);
    let out = s.select_lt(x, zero, scale2(s, s.mul(q, y), n), q);
    // −∞ → −0 (its limit); NaN propagates through `q`.
    let value = s.select_lt(x, s.splat(-150.0), s.splat(-0.0), out);
    // swish′ = σ·(1 + x·(1 − σ)), with σ and 1 − σ as in `sigmoid_pair` but from this e (the argument is ≤ 0 and
    // clamped at −120, where e rounds to 0 anyway, so `exp`'s overflow/underflow selects are not needed); guarded
    // at ±∞ where the limits are 1 and 0 (∞·0 would be NaN); NaN is restored at the end (the clamps would turn it
    // into a number).
    let ei = s.mul(e, inv);
    let (sig, rest) = (s.select_lt(x, zero, ei, inv), s.select_lt(x, zero, inv, ei));
    let d = s.mul(sig, s.mul_add(x, rest, one));
    let d = s.select_lt(s.splat(150.0), x, one, d);
    let d = s.select_lt(x, s.splat(-150.0), zero, d);
    (value, s.select_nan(x, x, d))
}

/// `y = swish(x)` and `d = swish′(x)` in one pass (one exponential per element): the training-mode forward, whose
/// backward is then `dx = dy·d` ([`Backward::Product`]) instead of a second exponential and division.
#[inline(always)]
pub(crate) fn swish_with_derivative<S: Simd>(s: S, x: &[f32], y: &mut [f32], d: &mut [f32]) {
    debug_assert!(x.len() == y.len() && x.len() == d.len());
    let n = S::LANES;
    let mut xc = x.chunks_exact(n);
    let mut yc = y.chunks_exact_mut(n);
    let mut dc = d.chunks_exact_mut(n);
    for ((xi, yi), di) in (&mut xc).zip(&mut yc).zip(&mut dc) {
        let (v, g) = swish_parts(s, s.load(xi));
        s.store(yi, v);
        s.store(di, g);
    }
    let (xr, yr, dr) = (xc.remainder(), yc.into_remainder(), dc.into_remainder());
    if !xr.is_empty() {
        let mut buf = [0.0f32; 16];
        buf[..xr.len()].copy_from_slice(xr);
        let (v, g) = swish_parts(s, s.load(&buf));
        let (mut bv, mut bg) = ([0.0f32; 16], [0.0f32; 16]);
        s.store(&mut bv, v);
        s.store(&mut bg, g);
        yr.copy_from_slice(&bv[..xr.len()]);
        dr.copy_from_slice(&bg[..xr.len()]);
    }
}

#[inline(always)]
fn tanh<S: Simd>(s: S, x: S::V) -> S::V {
    let ax = s.abs(x);
    // |x| < 0.625: Cephes tanhf polynomial x + x³·P(x²) (no cancellation near 0).
    let z = s.mul(x, x);
    let mut p = s.splat(-0.0057049887);
    p = s.mul_add(p, z, s.splat(0.02063909));
    p = s.mul_add(p, z, s.splat(-0.053739715));
    p = s.mul_add(p, z, s.splat(0.13331442));
    p = s.mul_add(p, z, s.splat(-0.3333328));
    let small = s.mul_add(s.mul(p, z), x, x);
    // Otherwise 1 − 2 / (e^{2|x|} + 1), with the sign of x.
    let e = exp(s, s.add(ax, ax));
    let large = s.copysign(s.sub(s.splat(1.0), s.div(s.splat(2.0), s.add(e, s.splat(1.0)))), x);
    s.select_lt(ax, s.splat(0.625), small, large)
}

#[inline(always)]
fn relu<S: Simd>(s: S, x: S::V) -> S::V {
    // max(x, 0) but NaN-propagating: only lanes with x < 0 become 0.
    s.select_lt(x, s.splat(0.0), s.splat(0.0), x)
}

/// Stamps a unit type implementing [`Op1`] with a generic function above.
macro_rules! op1 {
    ($name:ident, $f:ident) => {
        #[derive(Clone, Copy)]
        struct $name;
        impl<S: Simd> Op1<S> for $name {
            #[inline(always)]
            fn apply(self, s: S, x: S::V) -> S::V {
                $f(s, x)
            }
        }
    };
}

op1!(ExpOp, exp);
op1!(SigmoidOp, sigmoid);
op1!(TanhOp, tanh);
op1!(SwishOp, swish);
op1!(ReluOp, relu);

#[inline(always)]
pub(crate) fn unary<S: Simd>(s: S, op: Unary, x: &[f32], y: &mut [f32]) {
    match op {
        Unary::Exp => map(s, x, y, ExpOp),
        Unary::Sigmoid => map(s, x, y, SigmoidOp),
        Unary::Tanh => map(s, x, y, TanhOp),
        Unary::Swish => map(s, x, y, SwishOp),
        Unary::Relu => map(s, x, y, ReluOp),
    }
}

/// `dy·swish′(x)` (see [`swish_parts`]).
#[derive(Clone, Copy)]
struct SwishGrad;
impl<S: Simd> Op2<S> for SwishGrad {
    #[inline(always)]
    fn apply(self, s: S, x: S::V, g: S::V) -> S::V {
        s.mul(g, swish_parts(s, x).1)
    }
}

/// `dy·v`: the backward of an elementwise function whose derivative `v` was stored by the forward.
#[derive(Clone, Copy)]
struct ProductGrad;
impl<S: Simd> Op2<S> for ProductGrad {
    #[inline(always)]
    fn apply(self, s: S, v: S::V, g: S::V) -> S::V {
        s.mul(g, v)
    }
}

/// `dy` where `x > 0`, else 0.
#[derive(Clone, Copy)]
struct ReluGrad;
impl<S: Simd> Op2<S> for ReluGrad {
    #[inline(always)]
    fn apply(self, s: S, x: S::V, g: S::V) -> S::V {
        s.select_lt(s.splat(0.0), x, g, s.splat(0.0))
    }
}

/// `dy·y·(1 − y)` from the sigmoid output `y`.
#[derive(Clone, Copy)]
struct SigmoidGrad;
impl<S: Simd> Op2<S> for SigmoidGrad {
    #[inline(always)]
    fn apply(self, s: S, y: S::V, g: S::V) -> S::V {
        s.mul(g, s.mul(y, s.sub(s.splat(1.0), y)))
    }
}

/// `dy·(1 − y²)` from the tanh output `y`.
#[derive(Clone, Copy)]
struct TanhGrad;
impl<S: Simd> Op2<S> for TanhGrad {
    #[inline(always)]
    fn apply(self, s: S, y: S::V, g: S::V) -> S::V {
        s.mul(g, s.sub(s.splat(1.0), s.mul(y, y)))
    }
}

#[inline(always)]
pub(crate) fn backward<S: Simd>(s: S, op: Backward, v: &[f32], dy: &[f32], dx: &mut [f32]) {
    match op {
        Backward::Swish => map2(s, v, dy, dx, SwishGrad),
        Backward::Relu => map2(s, v, dy, dx, ReluGrad),
        Backward::Sigmoid => map2(s, v, dy, dx, SigmoidGrad),
        Backward::Tanh => map2(s, v, dy, dx, TanhGrad),
        Backward::Product => map2(s, v, dy, dx, ProductGrad),
    }
}

/// `y[r·c + j] += bias[j]`.
#[inline(always)]
pub(crate) fn bias_add<S: Simd>(s: S, channels: usize, y: &mut [f32], bias: &[f32]) {
    for row in y.chunks_exact_mut(channels) {
        let n = S::LANES;
        let mut j = 0;
        while j + n <= channels {
            let v = s.add(s.load(&row[j..]), s.load(&bias[j..]));
            s.store(&mut row[j..], v);
            j += n;
        }
        // Tail: scalar adds round exactly like the vector lanes.
        for (r, b) in row[j..].iter_mut().zip(&bias[j..]) {
            *r += *b;
        }
    }
}

/// Partial sums per column: 8 interleaved accumulators (rows r ≡ 0..7 mod 8), so an all-positive reduction over
/// many rows keeps its error within K = 8 (KERNELS.md §1.6).
const PARTIALS: usize = 8;

/// Interleaved accumulator sets of the narrow-matrix path of [`column_sums`].
const NARROW_SETS: usize = 4;

/// `db[j] = Σ_r dy[r·c + j]`.
#[inline(always)]
pub(crate) fn column_sums<S: Simd>(s: S, channels: usize, dy: &[f32], db: &mut [f32]) {
    let n = S::LANES;
    if channels < n {
        return column_sums_narrow(s, channels, dy, db);
    }
    let mut j = 0;
    while j < channels {
        let width = n.min(channels - j);
        let mut acc = [s.splat(0.0); PARTIALS];
        let mut buf = [0.0f32; 16];
        for (r, row) in dy.chunks_exact(channels).enumerate() {
            let v = if width == n {
                s.load(&row[j..])
            } else {
                buf[..width].copy_from_slice(&row[j..j + width]);
                s.load(&buf)
            };
            acc[r % PARTIALS] = s.add(acc[r % PARTIALS], v);
        }
        // Pairwise combination of the partials.
        let mut step = 1;
        while step < PARTIALS {
            for i in (0..PARTIALS).step_by(2 * step) {
                acc[i] = s.add(acc[i], acc[i + step]);
            }
            step *= 2;
        }
        let mut out = [0.0f32; 16];
        s.store(&mut out, acc[0]);
        db[j..j + width].copy_from_slice(&out[..width]);
        j += width;
    }
}

/// Column sums for fewer channels than lanes (conv1's bias gradient is 18432 × 3). A block of `LANES` rows is
/// exactly `channels` vectors, and lane `l` of vector `k` of every block holds column `(k·LANES + l) mod channels`,
/// so whole blocks are accumulated without per-row work (one lane per column in the row-wise path used 3 of 16
/// lanes and copied every row: ~335 Melem/s on every ISA). Blocks alternate between `NARROW_SETS` accumulator sets
/// to keep each lane's chain short; lanes are folded into columns at the end, rows past the last block added last.
#[inline(always)]
fn column_sums_narrow<S: Simd>(s: S, channels: usize, dy: &[f32], db: &mut [f32]) {
    let n = S::LANES;
    let block = n * channels;
    let mut acc = [[s.splat(0.0); 16]; NARROW_SETS];
    let blocks = dy.chunks_exact(block);
    let rest = blocks.remainder();
    for (b, blk) in blocks.enumerate() {
        let set = &mut acc[b % NARROW_SETS];
        for (k, a) in set.iter_mut().enumerate().take(channels) {
            *a = s.add(*a, s.load(&blk[k * n..]));
        }
    }
    let mut sums = [0.0f32; 16];
    let mut lanes = [0.0f32; 16];
    for k in 0..channels {
        let v = s.add(s.add(acc[0][k], acc[1][k]), s.add(acc[2][k], acc[3][k]));
        s.store(&mut lanes, v);
        for (l, &x) in lanes[..n].iter().enumerate() {
            sums[(k * n + l) % channels] += x;
        }
    }
    for row in rest.chunks_exact(channels) {
        for (t, &x) in sums.iter_mut().zip(row) {
            *t += x;
        }
    }
    db.copy_from_slice(&sums[..channels]);
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
        unsafe { (self.softmax)(softmax::SoftmaxOp::Softmax { cols, z, p }) };
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
        unsafe { (self.softmax)(softmax::SoftmaxOp::CrossEntropy { cols, z, t, p, loss }) };
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
        unsafe { (self.softmax)(softmax::SoftmaxOp::CrossEntropyBackward { cols, p, t, scale, dz }) };
        Ok(())
    }

    /// One RMSprop step in place on weights `w` and the moving average `v` (see [`crate::optim`]).
    pub fn rmsprop_step(&self, w: &mut [f32], g: &[f32], v: &mut [f32], p: RmsPropParams) -> Result<()> {
        self.optimizer_step("rmsprop_step", w, g, Update::RmsProp { v, p }, None)
    }

    /// One Adam step (step number `t ≥ 1`, counting from 1) in place on `w` and the moments `m`, `v`.
    #[allow(clippy::too_many_arguments)]
    pub fn adam_step(
        &self,
        w: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        p: AdamParams,
        t: u64,
    ) -> Result<()> {
        self.optimizer_step("adam_step", w, g, Update::Adam { m, v, p, t }, None)
    }

    /// One SGD step in place; `u` is the momentum buffer (same length as `w`), or empty when `p.momentum == 0`.
    pub fn sgd_step(&self, w: &mut [f32], g: &[f32], u: &mut [f32], p: SgdParams) -> Result<()> {
        self.optimizer_step("sgd_step", w, g, Update::Sgd { u, p }, None)
    }

    /// The data-parallel optimizer tail in one pass: the step of `update` on `w` with the averaged gradient
    /// `r.a·g + r.b·r.other` (not stored; `g` is left as it is), and the new weights copied into `r.mirror` —
    /// instead of three passes (average, step, copy) over buffers that do not fit in L2.
    pub fn replicated_step(&self, w: &mut [f32], g: &[f32], update: Update<'_>, r: Replicated<'_>) -> Result<()> {
        self.optimizer_step("replicated_step", w, g, update, Some(r))
    }

    fn optimizer_step(
        &self,
        op: &'static str,
        w: &mut [f32],
        g: &[f32],
        update: Update<'_>,
        rep: Option<Replicated<'_>>,
    ) -> Result<()> {
        same_len(op, "gradient", w.len(), g.len())?;
        match &update {
            Update::RmsProp { v, .. } => same_len(op, "velocity", w.len(), v.len())?,
            Update::Adam { m, v, t, .. } => {
                same_len(op, "first moment", w.len(), m.len())?;
                same_len(op, "second moment", w.len(), v.len())?;
                if *t == 0 {
                    return Err(KernelError::ZeroDim { op, dim: "t", got: 0 });
                }
            }
            Update::Sgd { u, p } => {
                if p.momentum != 0.0 || !u.is_empty() {
                    same_len(op, "momentum", w.len(), u.len())?;
                }
            }
        }
        if let Some(r) = &rep {
            same_len(op, "other gradient", w.len(), r.other.len())?;
            same_len(op, "mirror", w.len(), r.mirror.len())?;
        }
        // SAFETY: a `&Kernels` exists only for a supported ISA; equal lengths (or no SGD momentum buffer), t ≥ 1.
        unsafe { (self.optim)(Step { w, g, update, rep }) };
        Ok(())
    }

    fn run_unary(&self, op: Unary, name: &'static str, x: &[f32], y: &mut [f32]) -> Result<()> {
        same_len(name, "output", x.len(), y.len())?;
        // SAFETY: a `&Kernels` exists only for a supported ISA; lengths checked.
        unsafe { (self.unary)(op, x, y) };
        Ok(())
    }

    fn run_backward(&self, op: Backward, name: &'static str, v: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
        same_len(name, "output gradient", v.len(), dy.len())?;
        same_len(name, "input gradient", v.len(), dx.len())?;
        // SAFETY: a `&Kernels` exists only for a supported ISA; lengths checked.
        unsafe { (self.backward)(op, v, dy, dx) };
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
        unsafe { (self.swish_pair)(x, y, d) };
        Ok(())
    }
    /// `out = a·b` elementwise (one rounding per element), e.g. the backward `dx = dy·f′(x)` of an activation
    /// whose derivative the forward stored.
    pub fn multiply(&self, a: &[f32], b: &[f32], out: &mut [f32]) -> Result<()> {
        self.run_backward(Backward::Product, "multiply", a, b, out)
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
        unsafe { (self.bias_add)(bias.len(), y, bias) };
        Ok(())
    }

    /// Column sums of the row-major `dy` (`rows × db.len()`): the bias gradient `db[c] = Σ_r dy[r, c]`, with 8
    /// partial sums per column.
    pub fn column_sums(&self, dy: &[f32], db: &mut [f32]) -> Result<()> {
        matrix("column_sums", db.len(), dy.len())?;
        // SAFETY: supported ISA; dy is a whole number of rows of db.len() channels.
        unsafe { (self.column_sums)(db.len(), dy, db) };
        Ok(())
    }
}

/// Stamps the four `#[target_feature]` entry points of one ISA around the generic kernels above.
macro_rules! entries {
    ($features:literal, $token:expr) => {
        /// # Safety
        /// The CPU supports this ISA; `x.len() == y.len()`.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn unary(op: $crate::activation::Unary, x: &[f32], y: &mut [f32]) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::activation::unary(s, op, x, y)
        }
        /// # Safety
        /// The CPU supports this ISA; the three slices have equal lengths.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn backward(op: $crate::activation::Backward, v: &[f32], dy: &[f32], dx: &mut [f32]) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::activation::backward(s, op, v, dy, dx)
        }
        /// # Safety
        /// The CPU supports this ISA; the three slices have equal lengths.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn swish_pair(x: &[f32], y: &mut [f32], d: &mut [f32]) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::activation::swish_with_derivative(s, x, y, d)
        }
        /// # Safety
        /// The CPU supports this ISA; `y.len()` is a multiple of `channels == bias.len()`.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn bias_add(channels: usize, y: &mut [f32], bias: &[f32]) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::activation::bias_add(s, channels, y, bias)
        }
        /// # Safety
        /// The CPU supports this ISA; `dy.len()` is a multiple of `channels == db.len()`.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn column_sums(channels: usize, dy: &[f32], db: &mut [f32]) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::activation::column_sums(s, channels, dy, db)
        }
        /// # Safety
        /// The CPU supports this ISA; the slices are whole rows of `cols` (validated by the safe entry).
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn softmax(op: $crate::activation::softmax::SoftmaxOp<'_>) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::activation::softmax::run(s, op)
        }
        /// # Safety
        /// The CPU supports this ISA; the slices have equal lengths (validated by the safe entry).
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn optim(step: $crate::optim::Step<'_>) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::optim::run(s, step)
        }
    };
}

/// Portable entries (`wide`; no CPU feature needed, `#[target_feature]` not used).
pub(crate) mod portable {
    use crate::simd::Portable;

    /// # Safety
    /// `x.len() == y.len()` (kept `unsafe` for a uniform dispatch-table signature).
    pub(crate) unsafe fn unary(op: super::Unary, x: &[f32], y: &mut [f32]) {
        super::unary(Portable, op, x, y)
    }
    /// # Safety
    /// Equal lengths.
    pub(crate) unsafe fn backward(op: super::Backward, v: &[f32], dy: &[f32], dx: &mut [f32]) {
        super::backward(Portable, op, v, dy, dx)
    }
    /// # Safety
    /// Equal lengths.
    pub(crate) unsafe fn swish_pair(x: &[f32], y: &mut [f32], d: &mut [f32]) {
        super::swish_with_derivative(Portable, x, y, d)
    }
    /// # Safety
    /// `y.len()` is a multiple of `channels == bias.len()`.
    pub(crate) unsafe fn bias_add(channels: usize, y: &mut [f32], bias: &[f32]) {
        super::bias_add(Portable, channels, y, bias)
    }
    /// # Safety
    /// `dy.len()` is a multiple of `channels == db.len()`.
    pub(crate) unsafe fn column_sums(channels: usize, dy: &[f32], db: &mut [f32]) {
        super::column_sums(Portable, channels, dy, db)
    }
    /// # Safety
    /// Whole rows (validated by the safe entry).
    pub(crate) unsafe fn softmax(op: super::softmax::SoftmaxOp<'_>) {
        super::softmax::run(Portable, op)
    }
    /// # Safety
    /// Equal lengths (validated by the safe entry).
    pub(crate) unsafe fn optim(step: crate::optim::Step<'_>) {
        crate::optim::run(Portable, step)
    }
}

/// AVX-512 entries.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    entries!("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma", crate::simd::x86_64::Avx512::new());
}

/// AVX2+FMA entries.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    entries!("avx2,fma", crate::simd::x86_64::Avx2::new());
}

/// NEON entries.
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon {
    entries!("neon", crate::simd::aarch64::Neon::new());
}
