//! The vectorised functions (`exp`, sigmoid, swish, tanh, ReLU) and their backward passes, generic over the ISA's
//! `Simd` vocabulary.

use super::{Backward, Unary};
use crate::simd::{Op1, Op2, Simd, map, map2};

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
    // Two exponentials and two divisions before: `cargo benches --bench activation -- swish/` on
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
