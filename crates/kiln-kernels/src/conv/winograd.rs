//! Winograd minimal filtering (Lavin & Gray 2016; matrices and accuracy in KERNELS.md §1.2 and §1.5):
//! F(2×2,3×3) with points {0, ±1, ∞}, and F(4×4,3×3) / F(2×2,5×5) with the √2 points
//! {0, ±√2/2, ±√2, ∞}, which share one 6×6 input transform `Bᵀ`.
//!
//! Per block of output tiles: the input transform `V = Bᵀ d B` writes `[ξ][tile][c_in]`; α² SGEMMs
//! `M[ξ] = V[ξ] · U[ξ]` (tiles × c_in · c_in × c_out) run through the dispatch table's GEMM; the output transform
//! `Y = Aᵀ M A` adds the bias and stores the tile clipped to the output. The filter transform `U = G g Gᵀ` is
//! computed in f64 once per call ([`WinogradWeights`] keeps it across calls while the weights do not change).
//! Backward-data is the forward algorithm on `dy` placed with offset `(r − 1 − pad_top, r − 1 − pad_left)` and the
//! weights rotated by 180° with in/out channels swapped (KERNELS.md §2.1).
//!
//! The transforms are plain loops over contiguous channels, compiled inside each ISA's `#[target_feature]`
//! entry (so they vectorise to that ISA's width); the tuple GEMMs are that ISA's SGEMM. The fixed sets' `Bᵀ` and
//! `Aᵀ` run in factored form (`Mat1d`: 14 instead of 36 operations per 6-point `Bᵀ`); a patch inside the
//! image is transformed where it lies (only patches that meet the padding are gathered), and a whole output tile
//! is written by the output transform straight into its output rows, bias included.

// Register arrays are indexed by small constant-bound loops on purpose (they unroll into named registers).
#![allow(clippy::needless_range_loop)]

use super::scratch::{FirstError, Scratch, SharedOut};
use super::{WinogradTile, parts, split};
use crate::dispatch::Kernels;
use crate::error::Result;
use crate::gemm::Threads;
use crate::geometry::{Conv2dGeometry, GemmGeometry};
use crate::simd::Simd;
use std::ops::Range;

const S2: f64 = std::f64::consts::SQRT_2;

/// One Winograd algorithm F(m×m, r×r): `Bᵀ` (α×α), `G` (α×r), `Aᵀ` (m×α), α = m + r − 1.
#[derive(Debug)]
pub struct WinogradSet {
    /// Output tile side.
    pub m: usize,
    /// Kernel side.
    pub r: usize,
    /// Input tile side α = m + r − 1.
    pub alpha: usize,
    /// Input transform, row-major α×α.
    pub bt: &'static [f64],
    /// Filter transform, row-major α×r.
    pub g: &'static [f64],
    /// Output transform, row-major m×α.
    pub at: &'static [f64],
}

/// F(2×2, 3×3), points {0, 1, −1, ∞} (the paper's matrices).
pub static F2X3: WinogradSet = WinogradSet {
    m: 2,
    r: 3,
    alpha: 4,
    bt: &BT4,
    g: &[1.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0.0, 0.0, 1.0],
    at: &AT2X4,
};

/// The 6×6 input transform of the √2 point set {0, √2/2, −√2/2, √2, −√2, ∞}.
const BT6: [f64; 36] = [
    1.0,
    0.0,
    -2.5,
    0.0,
    1.0,
    0.0, //
    0.0,
    -S2,
    -2.0,
    S2 / 2.0,
    1.0,
    0.0, //
    0.0,
    S2,
    -2.0,
    -S2 / 2.0,
    1.0,
    0.0, //
    0.0,
    -S2 / 2.0,
    -0.5,
    S2,
    1.0,
    0.0, //
    0.0,
    S2 / 2.0,
    -0.5,
    -S2,
    1.0,
    0.0, //
    0.0,
    1.0,
    0.0,
    -2.5,
    0.0,
    1.0,
];

/// F(4×4, 3×3) with the √2 points.
pub static F4X3: WinogradSet = WinogradSet {
    m: 4,
    r: 3,
    alpha: 6,
    bt: &BT6,
    g: &[
        1.0,
        0.0,
        0.0,
        -2.0 / 3.0,
        -S2 / 3.0,
        -1.0 / 3.0,
        -2.0 / 3.0,
        S2 / 3.0,
        -1.0 / 3.0,
        1.0 / 6.0,
        S2 / 6.0,
        1.0 / 3.0,
        1.0 / 6.0,
        -S2 / 6.0,
        1.0 / 3.0,
        0.0,
        0.0,
        1.0,
    ],
    at: &AT4X6,
};

/// F(2×2, 5×5) with the √2 points (same `Bᵀ` as [`F4X3`]).
pub static F2X5: WinogradSet = WinogradSet {
    m: 2,
    r: 5,
    alpha: 6,
    bt: &BT6,
    g: &[
        1.0,
        0.0,
        0.0,
        0.0,
        0.0,
        -2.0 / 3.0,
        -S2 / 3.0,
        -1.0 / 3.0,
        -S2 / 6.0,
        -1.0 / 6.0,
        -2.0 / 3.0,
        S2 / 3.0,
        -1.0 / 3.0,
        S2 / 6.0,
        -1.0 / 6.0,
        1.0 / 6.0,
        S2 / 6.0,
        1.0 / 3.0,
        S2 / 3.0,
        2.0 / 3.0,
        1.0 / 6.0,
        -S2 / 6.0,
        1.0 / 3.0,
        -S2 / 3.0,
        2.0 / 3.0,
        0.0,
        0.0,
        0.0,
        0.0,
        1.0,
    ],
    at: &AT2X6,
};

impl WinogradTile {
    /// The matrices of a concrete tile (`None` for `Auto`).
    pub fn set(self) -> Option<&'static WinogradSet> {
        match self {
            WinogradTile::Auto => None,
            WinogradTile::F2x2K3x3 => Some(&F2X3),
            WinogradTile::F4x4K3x3 => Some(&F4X3),
            WinogradTile::F2x2K5x5 => Some(&F2X5),
        }
    }
}

/// One 1-D transform: a small matrix applied along one axis of a tile. The matrices of the fixed sets have
/// factored forms (even/odd pairs of rows share their partial sums), 2–3× fewer operations than the dense product
/// and no larger error bound (every intermediate is a partial sum of the same terms); anything else — the
/// backward-filter `G` and `Aᵀ` — is applied densely.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Mat1d<'a> {
    /// A `rows × cols` row-major matrix.
    Dense { mat: &'a [f32], rows: usize, cols: usize },
    /// `Bᵀ` of F(2×2,3×3) (4×4, entries 0/±1).
    Bt4,
    /// `Aᵀ` of F(2×2,3×3) (2×4).
    At2x4,
    /// The shared 6×6 `Bᵀ` of the √2 points.
    Bt6,
    /// `Aᵀ` of F(4×4,3×3) with the √2 points (4×6).
    At4x6,
    /// `Aᵀ` of F(2×2,5×5) with the √2 points (2×6).
    At2x6,
}

/// `f64` matrix → `f32` (const, so the known matrices can be compared by value).
const fn to_f32<const N: usize>(m: &[f64; N]) -> [f32; N] {
    let mut out = [0.0f32; N];
    let mut i = 0;
    while i < N {
        out[i] = m[i] as f32;
        i += 1;
    }
    out
}

const AT4X6: [f64; 24] = [
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    0.0, //
    0.0,
    S2 / 2.0,
    -S2 / 2.0,
    S2,
    -S2,
    0.0, //
    0.0,
    0.5,
    0.5,
    2.0,
    2.0,
    0.0, //
    0.0,
    S2 / 4.0,
    -S2 / 4.0,
    2.0 * S2,
    -2.0 * S2,
    1.0,
];
const AT2X6: [f64; 12] = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, S2 / 2.0, -S2 / 2.0, S2, -S2, 1.0];
const BT4: [f64; 16] = [1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 1.0, 0.0, -1.0];
const AT2X4: [f64; 8] = [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, -1.0, -1.0];

impl<'a> Mat1d<'a> {
    /// The transform for a row-major `rows × cols` matrix: a factored form when `mat` is one of the known
    /// matrices (compared by value), else dense.
    pub(crate) fn of(mat: &'a [f32], rows: usize, cols: usize) -> Self {
        let known: [(&[f32], Mat1d<'static>); 5] = [
            (&const { to_f32(&BT6) }, Mat1d::Bt6),
            (&const { to_f32(&AT4X6) }, Mat1d::At4x6),
            (&const { to_f32(&AT2X6) }, Mat1d::At2x6),
            (&const { to_f32(&BT4) }, Mat1d::Bt4),
            (&const { to_f32(&AT2X4) }, Mat1d::At2x4),
        ];
        for (m, form) in known {
            if form.shape() == (rows, cols) && mat.get(..rows * cols) == Some(m) {
                return form;
            }
        }
        Mat1d::Dense { mat, rows, cols }
    }

    /// `(rows, cols)`.
    pub(crate) fn shape(&self) -> (usize, usize) {
        match *self {
            Mat1d::Dense { rows, cols, .. } => (rows, cols),
            Mat1d::Bt4 => (4, 4),
            Mat1d::At2x4 => (2, 4),
            Mat1d::Bt6 => (6, 6),
            Mat1d::At4x6 => (4, 6),
            Mat1d::At2x6 => (2, 6),
        }
    }
}

/// Arithmetic on one channel vector or one channel, so each factored transform is written once for the vector
/// body and the scalar tail.
trait Lanes: Copy {
    type V: Copy;
    fn c(self, x: f32) -> Self::V;
    fn ld(self, s: &[f32]) -> Self::V;
    fn st(self, s: &mut [f32], v: Self::V);
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c`.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
}

#[derive(Clone, Copy)]
struct Wide<S>(S);

impl<S: Simd> Lanes for Wide<S> {
    type V = S::V;
    #[inline(always)]
    fn c(self, x: f32) -> S::V {
        self.0.splat(x)
    }
    #[inline(always)]
    fn ld(self, s: &[f32]) -> S::V {
        self.0.load(s)
    }
    #[inline(always)]
    fn st(self, s: &mut [f32], v: S::V) {
        self.0.store(s, v)
    }
    #[inline(always)]
    fn add(self, a: S::V, b: S::V) -> S::V {
        self.0.add(a, b)
    }
    #[inline(always)]
    fn sub(self, a: S::V, b: S::V) -> S::V {
        self.0.sub(a, b)
    }
    #[inline(always)]
    fn mul(self, a: S::V, b: S::V) -> S::V {
        self.0.mul(a, b)
    }
    #[inline(always)]
    fn fma(self, a: S::V, b: S::V, c: S::V) -> S::V {
        self.0.mul_add(a, b, c)
    }
}

#[derive(Clone, Copy)]
struct One;

impl Lanes for One {
    type V = f32;
    #[inline(always)]
    fn c(self, x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn ld(self, s: &[f32]) -> f32 {
        s[0]
    }
    #[inline(always)]
    fn st(self, s: &mut [f32], v: f32) {
        s[0] = v;
    }
    #[inline(always)]
    fn add(self, a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn sub(self, a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    fn mul(self, a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    fn fma(self, a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// The factored forms on the channels at offset `c`: `out[i·os + c] = Σ_k mat[i][k]·inp[k·is + c]` (+ `bias[c]`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn factored<L: Lanes>(
    l: L,
    form: Mat1d<'_>,
    inp: &[f32],
    is: usize,
    out: &mut [f32],
    os: usize,
    c: usize,
    bias: Option<&[f32]>,
) {
    const R2: f32 = std::f32::consts::SQRT_2;
    let x = |k: usize| l.ld(&inp[k * is + c..]);
    let b = bias.map(|b| l.ld(&b[c..]));
    let mut put = |i: usize, v: L::V| l.st(&mut out[i * os + c..], b.map_or(v, |b| l.add(v, b)));
    match form {
        Mat1d::Bt6 => {
            let (d0, d1, d2, d3, d4, d5) = (x(0), x(1), x(2), x(3), x(4), x(5));
            put(0, l.fma(l.c(-2.5), d2, l.add(d0, d4)));
            // Rows 1/2: (d4 − 2·d2) ∓ (√2·d1 − √2/2·d3); rows 3/4: (d4 − d2/2) ∓ (√2/2·d1 − √2·d3).
            let p = l.fma(l.c(-2.0), d2, d4);
            let q = l.fma(l.c(R2), d1, l.mul(l.c(-R2 / 2.0), d3));
            put(1, l.sub(p, q));
            put(2, l.add(p, q));
            let p = l.fma(l.c(-0.5), d2, d4);
            let q = l.fma(l.c(R2 / 2.0), d1, l.mul(l.c(-R2), d3));
            put(3, l.sub(p, q));
            put(4, l.add(p, q));
            put(5, l.fma(l.c(-2.5), d3, l.add(d1, d5)));
        }
        Mat1d::At4x6 | Mat1d::At2x6 => {
            let (m0, m1, m2, m3, m4, m5) = (x(0), x(1), x(2), x(3), x(4), x(5));
            let (a, bb, cc, dd) = (l.add(m1, m2), l.sub(m1, m2), l.add(m3, m4), l.sub(m3, m4));
            put(0, l.add(l.add(m0, a), cc));
            if form == Mat1d::At2x6 {
                put(1, l.fma(l.c(R2 / 2.0), bb, l.fma(l.c(R2), dd, m5)));
            } else {
                put(1, l.fma(l.c(R2 / 2.0), bb, l.mul(l.c(R2), dd)));
                put(2, l.fma(l.c(0.5), a, l.add(cc, cc)));
                put(3, l.fma(l.c(R2 / 4.0), bb, l.fma(l.c(2.0 * R2), dd, m5)));
            }
        }
        Mat1d::Bt4 => {
            let (d0, d1, d2, d3) = (x(0), x(1), x(2), x(3));
            put(0, l.sub(d0, d2));
            put(1, l.add(d1, d2));
            put(2, l.sub(d2, d1));
            put(3, l.sub(d1, d3));
        }
        Mat1d::At2x4 => {
            let (m0, m1, m2, m3) = (x(0), x(1), x(2), x(3));
            put(0, l.add(l.add(m0, m1), m2));
            put(1, l.sub(l.sub(m1, m2), m3));
        }
        Mat1d::Dense { .. } => unreachable!("dense matrices go through lincomb"),
    }
}

/// `out[i][c] = Σ_k mat[i][k] · inp[k][c]` (+ `bias[c]`) over channel vectors of length `ch`, where `inp[k]` is
/// at `inp[k·is ..]` and `out[i]` at `out[i·os ..]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn apply1d<S: Simd>(
    s: S,
    mat: Mat1d<'_>,
    inp: &[f32],
    is: usize,
    out: &mut [f32],
    os: usize,
    ch: usize,
    bias: Option<&[f32]>,
) {
    let Mat1d::Dense { mat, rows, cols } = mat else {
        let full = ch - ch % S::LANES;
        for c in (0..full).step_by(S::LANES) {
            factored(Wide(s), mat, inp, is, out, os, c, bias);
        }
        for c in full..ch {
            factored(One, mat, inp, is, out, os, c, bias);
        }
        return;
    };
    match (rows, cols) {
        (6, 6) => lincomb_n::<S, 6, 6>(s, mat, inp, is, out, os, ch, bias),
        (4, 6) => lincomb_n::<S, 4, 6>(s, mat, inp, is, out, os, ch, bias),
        (2, 6) => lincomb_n::<S, 2, 6>(s, mat, inp, is, out, os, ch, bias),
        (4, 4) => lincomb_n::<S, 4, 4>(s, mat, inp, is, out, os, ch, bias),
        (2, 4) => lincomb_n::<S, 2, 4>(s, mat, inp, is, out, os, ch, bias),
        // Backward-filter: the dy-tile transform G (α × m) and the output transform Aᵀ (r × α).
        (4, 2) => lincomb_n::<S, 4, 2>(s, mat, inp, is, out, os, ch, bias),
        (6, 4) => lincomb_n::<S, 6, 4>(s, mat, inp, is, out, os, ch, bias),
        (6, 2) => lincomb_n::<S, 6, 2>(s, mat, inp, is, out, os, ch, bias),
        (3, 4) => lincomb_n::<S, 3, 4>(s, mat, inp, is, out, os, ch, bias),
        (3, 6) => lincomb_n::<S, 3, 6>(s, mat, inp, is, out, os, ch, bias),
        (5, 6) => lincomb_n::<S, 5, 6>(s, mat, inp, is, out, os, ch, bias),
        _ => unreachable!("no Winograd set has a {rows}x{cols} transform"),
    }
}

/// The dense product for a fixed shape: all `R` outputs of one channel vector accumulate in `R` independent
/// registers (one FMA chain per output would be latency-bound), every input vector is loaded once, and the matrix
/// is applied densely (branch-free).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lincomb_n<S: Simd, const R: usize, const K: usize>(
    s: S,
    mat: &[f32],
    inp: &[f32],
    is: usize,
    out: &mut [f32],
    os: usize,
    ch: usize,
    bias: Option<&[f32]>,
) {
    let l = S::LANES;
    let m: &[f32; 36] = &{
        let mut a = [0.0f32; 36];
        a[..R * K].copy_from_slice(&mat[..R * K]);
        a
    };
    let full = ch - ch % l;
    for c in (0..full).step_by(l) {
        let init = bias.map_or(s.splat(0.0), |b| s.load(&b[c..]));
        let mut acc = [init; R];
        for k in 0..K {
            let x = s.load(&inp[k * is + c..]);
            for i in 0..R {
                // Broadcast at the use (an embedded-broadcast operand on AVX-512): hoisting all R·K broadcasts
                // spilled 36 registers per call, which dominated at 64 channels (4 vectors per call).
                acc[i] = s.mul_add(s.splat(m[i * K + k]), x, acc[i]);
            }
        }
        for i in 0..R {
            s.store(&mut out[i * os + c..], acc[i]);
        }
    }
    for c in full..ch {
        for i in 0..R {
            let mut acc = bias.map_or(0.0, |b| b[c]);
            for k in 0..K {
                acc = m[i * K + k].mul_add(inp[k * is + c], acc);
            }
            out[i * os + c] = acc;
        }
    }
}

/// The f32 forms of a set's input and output transforms.
pub(crate) struct Coeffs {
    bt: [f32; 36],
    at: [f32; 24],
    alpha: usize,
    m: usize,
}

impl Coeffs {
    pub(crate) fn of(set: &WinogradSet) -> Self {
        let mut c = Coeffs { bt: [0.0; 36], at: [0.0; 24], alpha: set.alpha, m: set.m };
        for (d, &s) in c.bt.iter_mut().zip(set.bt) {
            *d = s as f32;
        }
        for (d, &s) in c.at.iter_mut().zip(set.at) {
            *d = s as f32;
        }
        c
    }
    /// `Bᵀ`.
    pub(crate) fn bt(&self) -> Mat1d<'_> {
        Mat1d::of(&self.bt, self.alpha, self.alpha)
    }
    /// `Aᵀ`.
    pub(crate) fn at(&self) -> Mat1d<'_> {
        Mat1d::of(&self.at, self.m, self.alpha)
    }
}

/// A transform job for the per-ISA entry.
pub(crate) enum Transform<'a, 'r> {
    /// `v = Bᵀ d B` for one tile (`Bᵀ` α×α): `d` is α rows of α pixels of `ch` floats, rows `d_row` apart and
    /// pixels `ch` apart (a gathered patch, or the image itself); `v` is α² rows at stride `v_stride`.
    Input {
        bt: Mat1d<'a>,
        d: &'a [f32],
        d_row: usize,
        tmp: &'a mut [f32],
        v: &'a mut [f32],
        v_stride: usize,
        ch: usize,
    },
    /// `y = Aᵀ M A` (+ bias) for one tile (any `m × α` matrix `Aᵀ`): `mt` is α² rows at stride `m_stride`; row
    /// `i < m` of the result goes to `y[i]`, its `m` pixels `y_stride` apart.
    Output {
        at: Mat1d<'a>,
        mt: &'a [f32],
        m_stride: usize,
        tmp: &'a mut [f32],
        y: &'r mut [&'a mut [f32]],
        y_stride: usize,
        bias: Option<&'a [f32]>,
        ch: usize,
    },
}

/// Runs one transform (inlined into each ISA's entry).
#[inline(always)]
pub(crate) fn transform<S: Simd>(s: S, t: Transform<'_, '_>) {
    match t {
        Transform::Input { bt, d, d_row, tmp, v, v_stride, ch } => {
            let alpha = bt.shape().1;
            // tmp[i][j] = Σ_k Bᵀ[i][k] d[k][j]
            for j in 0..alpha {
                apply1d(s, bt, &d[j * ch..], d_row, &mut tmp[j * ch..], alpha * ch, ch, None);
            }
            // v[i][j] = Σ_k tmp[i][k] Bᵀ[j][k]
            for i in 0..alpha {
                apply1d(s, bt, &tmp[i * alpha * ch..], ch, &mut v[i * alpha * v_stride..], v_stride, ch, None);
            }
        }
        Transform::Output { at, mt, m_stride, tmp, y, y_stride, bias, ch } => {
            let (m, alpha) = at.shape();
            // tmp[i][j] = Σ_k Aᵀ[i][k] M[k][j]   (i < m, j < α)
            for j in 0..alpha {
                apply1d(s, at, &mt[j * m_stride..], alpha * m_stride, &mut tmp[j * ch..], alpha * ch, ch, None);
            }
            // y[i][j] = Σ_k tmp[i][k] Aᵀ[j][k] (+ bias)
            for (i, row) in y.iter_mut().enumerate().take(m) {
                apply1d(s, at, &tmp[i * alpha * ch..], ch, row, y_stride, ch, bias);
            }
        }
    }
}

/// Splits `y` into `n` rows `row` floats apart (the last row takes the rest), for [`Transform::Output`].
pub(crate) fn rows_of(y: &mut [f32], n: usize, row: usize) -> [&mut [f32]; 6] {
    let mut rows: [&mut [f32]; 6] = Default::default();
    let mut rest = y;
    for (i, r) in rows.iter_mut().enumerate().take(n) {
        if i + 1 == n {
            *r = std::mem::take(&mut rest);
        } else {
            let (a, b) = std::mem::take(&mut rest).split_at_mut(row);
            *r = a;
            rest = b;
        }
    }
    rows
}

/// Tap `u < r` and dy row `a < out` meet when input row `a − pad + u` lies in `0..input` (stride 1, dilation 1):
/// the `own` indices (of `own` in all) that meet some index of the `other` side (`other` in all) — the relation is
/// symmetric in taps and dy rows, so one rule serves both.
fn meeting(pad: usize, input: usize, own: usize, other: usize) -> Range<usize> {
    let hi = (pad + input).min(own);
    (pad + 1).saturating_sub(other).min(hi)..hi
}

/// The kernel rows and columns that meet the image for at least one output. On an image smaller than the kernel
/// (a 1×1 image under `same` padding meets only the centre tap) the others contribute exactly nothing, but the
/// Winograd transforms mix every weight of the tile into every output, so their rounding would be error on a result
/// that does not involve them (KERNELS.md §1.5 (c)): they are left out of the filter transform.
fn live_taps(g: &Conv2dGeometry) -> [Range<usize>; 2] {
    [meeting(g.pad_top(), g.in_h(), g.kernel_h(), g.out_h()), meeting(g.pad_left(), g.in_w(), g.kernel_w(), g.out_w())]
}

/// The dy rows and columns that meet an input pixel through some tap. Under padding wider than `r − 1` the outer dy
/// rows meet none: they contribute exactly nothing to either backward pass, but left in, the transforms would pair
/// them with every pixel of their tile and their rounding would land on results that do not involve them.
fn live_dy(g: &Conv2dGeometry) -> [Range<usize>; 2] {
    [meeting(g.pad_top(), g.in_h(), g.out_h(), g.kernel_h()), meeting(g.pad_left(), g.in_w(), g.out_w(), g.kernel_w())]
}

/// Filter transform `U[ξ][i][o] = (G g Gᵀ)[ξ]` in f64 of HWIO weights `w` (`r×r×cin×cout`), rounded once; with
/// `rotated`, of the kernel turned by 180° and with its channels swapped (`g'[a][b][o][i] = w[r−1−a][r−1−b][i][o]`,
/// backward-data), giving `U[ξ][o][i]`. Taps outside `live` (rows, columns of `w`) are taken as zero. The loops
/// run along `cout`, contiguous in both `w` and `U`.
fn filter_transform(
    set: &WinogradSet,
    cin: usize,
    cout: usize,
    w: &[f32],
    rotated: bool,
    live: &[Range<usize>; 2],
) -> Vec<f32> {
    let (al, r) = (set.alpha, set.r);
    let mut u = vec![0.0f32; al * al * cin * cout];
    // gt[x][b][o] = Σ_a G[x][a] g[a][b][o], then U[x][y][o] = Σ_b gt[x][b][o] G[y][b], for one input channel.
    let mut gt = vec![0.0f64; al * r * cout];
    let mut acc = vec![0.0f64; cout];
    for i in 0..cin {
        let tap = |a: usize, b: usize| {
            let (a, b) = if rotated { (r - 1 - a, r - 1 - b) } else { (a, b) };
            (live[0].contains(&a) && live[1].contains(&b)).then(|| &w[((a * r + b) * cin + i) * cout..][..cout])
        };
        gt.fill(0.0);
        for x in 0..al {
            for a in 0..r {
                let c = set.g[x * r + a];
                if c == 0.0 {
                    continue;
                }
                for b in 0..r {
                    let Some(tap) = tap(a, b) else { continue };
                    for (g, &v) in gt[(x * r + b) * cout..][..cout].iter_mut().zip(tap) {
                        *g += c * f64::from(v);
                    }
                }
            }
        }
        for x in 0..al {
            for y in 0..al {
                acc.fill(0.0);
                for b in 0..r {
                    let c = set.g[y * r + b];
                    for (s, &g) in acc.iter_mut().zip(&gt[(x * r + b) * cout..][..cout]) {
                        *s += g * c;
                    }
                }
                for (d, &s) in u[((x * al + y) * cin + i) * cout..][..cout].iter_mut().zip(&acc) {
                    *d = s as f32;
                }
            }
        }
    }
    if !rotated {
        return u;
    }
    // Swap the channels of every ξ (`[ci][co]` → `[co][ci]`) in 16×16 blocks, so both sides stay in cache lines.
    let mut t = vec![0.0f32; u.len()];
    for (src, dst) in u.chunks_exact(cin * cout).zip(t.chunks_exact_mut(cin * cout)) {
        for i0 in (0..cin).step_by(16) {
            for o0 in (0..cout).step_by(16) {
                for i in i0..(i0 + 16).min(cin) {
                    for o in o0..(o0 + 16).min(cout) {
                        dst[o * cin + i] = src[i * cout + o];
                    }
                }
            }
        }
    }
    t
}

/// Transformed weights, reusable while the weights they came from do not change.
#[derive(Debug, Clone)]
pub struct WinogradWeights {
    tile: WinogradTile,
    cin: usize,
    cout: usize,
    u: Vec<f32>,
}

impl WinogradWeights {
    /// The tile these weights were transformed for.
    pub fn tile(&self) -> WinogradTile {
        self.tile
    }
}

/// The source placement of one Winograd pass: a `sh × sw × sc` NHWC image read at signed offset `(top, left)`
/// for an `oh × ow` output; source rows and columns outside `live` (`[lo, hi)` each) are read as zero.
#[derive(Clone, Copy)]
struct Layout {
    sh: usize,
    sw: usize,
    sc: usize,
    live: [(usize, usize); 2],
    top: isize,
    left: isize,
    oh: usize,
    ow: usize,
    oc: usize,
}

#[allow(clippy::too_many_arguments)]
fn run(
    k: &Kernels,
    set: &WinogradSet,
    lay: Layout,
    batch: usize,
    threads: Threads,
    u: &[f32],
    src: &[f32],
    bias: Option<&[f32]>,
    dst: &mut [f32],
) -> Result<()> {
    let (m, al) = (set.m, set.alpha);
    let xi = al * al;
    let (th, tw) = (lay.oh.div_ceil(m), lay.ow.div_ceil(m));
    let tiles = batch * th * tw;
    // Tiles per block: transformed input and output of a block within ~2 MiB, and at most 64 so that the tuple
    // GEMMs take the unpacked-B path (c128@28²: 28 tiles 178 GFLOP/s, 56 tiles 192, 113 tiles 144; convprobe) —
    // 60, a whole number of AVX-512 (12), AVX2 (6) and portable (4) row tiles, rather than 64 = 5·12 + 4: c128@28²
    // F(4,3) forward 27.0–29.1 → 26.9–27.8 ms (minima of 40 calls, three alternating runs), c64@56² unchanged.
    let block = (524_288 / (xi * (lay.sc + lay.oc))).clamp(8, 60);
    let blocks = tiles.div_ceil(block);
    let coeffs = Coeffs::of(set);
    let (bt, at) = (coeffs.bt(), coeffs.at());
    let gemm = GemmGeometry::new(block, lay.oc, lay.sc)?;
    let (vs, ms) = (block * lay.sc, block * lay.oc);
    let out = SharedOut::new(dst);
    let errors = FirstError::new();
    split(parts(threads, blocks), blocks, |b0, nb| {
        let mut v = Scratch::take(xi * vs);
        let mut mm = Scratch::take(xi * ms);
        let mut d = Scratch::take(xi * lay.sc);
        let mut tmp = Scratch::take(xi * lay.sc.max(lay.oc));
        let mut y = Scratch::take(m * m * lay.oc);
        for blk in b0..b0 + nb {
            let t0 = blk * block;
            let nt = block.min(tiles - t0);
            // Input transform of every tile of the block (a short last block leaves stale rows: their GEMM
            // outputs are never stored).
            for b in 0..nt {
                let t = t0 + b;
                let (n, r) = (t / (th * tw), t % (th * tw));
                let (ty, tx) = (r / tw, r % tw);
                // A patch inside the image is transformed in place (rows `sw·sc` apart); one that meets the
                // padding is gathered with zeros first.
                let (py, px) = ((ty * m) as isize - lay.top, (tx * m) as isize - lay.left);
                let [(r0, r1), (c0, c1)] = lay.live;
                let inside = py >= r0 as isize && px >= c0 as isize && py as usize + al <= r1 && px as usize + al <= c1;
                let (src_d, d_row) = if inside {
                    (&src[((n * lay.sh + py as usize) * lay.sw + px as usize) * lay.sc..], lay.sw * lay.sc)
                } else {
                    let at = [(ty * m, lay.top), (tx * m, lay.left)];
                    gather_patch(src, [lay.sh, lay.sw, lay.sc], lay.live, n, at, al, &mut d);
                    (&d[..], al * lay.sc)
                };
                let job = Transform::Input {
                    bt,
                    d: src_d,
                    d_row,
                    tmp: &mut tmp,
                    v: &mut v[b * lay.sc..],
                    v_stride: vs,
                    ch: lay.sc,
                };
                // SAFETY: supported ISA (a `&Kernels` exists); the transform indexes through checked slices.
                unsafe { (k.winograd_transform)(job) };
            }
            for x in 0..xi {
                let res = k.sgemm_with(
                    Threads::Single,
                    &gemm,
                    1.0,
                    &v[x * vs..][..block * lay.sc],
                    &u[x * lay.sc * lay.oc..][..lay.sc * lay.oc],
                    0.0,
                    &mut mm[x * ms..][..block * lay.oc],
                );
                if !errors.record(res) {
                    return;
                }
            }
            for b in 0..nt {
                let t = t0 + b;
                let (n, r) = (t / (th * tw), t % (th * tw));
                let (ty, tx) = (r / tw, r % tw);
                let (rows, cols) = (m.min(lay.oh - ty * m), m.min(lay.ow - tx * m));
                let start = |i: usize| ((n * lay.oh + ty * m + i) * lay.ow + tx * m) * lay.oc;
                let full = rows == m && cols == m;
                // A whole tile is written straight into its output rows (bias added by the transform); a tile
                // clipped by the output edge goes through `y` and is copied clipped.
                let mut out_rows: [&mut [f32]; 6] = if full {
                    // SAFETY: output tiles are disjoint, each block (hence each tile and its rows) belongs to one
                    // part, and dst outlives the split.
                    std::array::from_fn(|i| if i < m { unsafe { out.range(start(i), m * lay.oc) } } else { &mut [] })
                } else {
                    rows_of(&mut y[..], m, m * lay.oc)
                };
                let job = Transform::Output {
                    at,
                    mt: &mm[b * lay.oc..],
                    m_stride: ms,
                    tmp: &mut tmp,
                    y: &mut out_rows,
                    y_stride: lay.oc,
                    bias,
                    ch: lay.oc,
                };
                // SAFETY: as above.
                unsafe { (k.winograd_transform)(job) };
                if !full {
                    for i in 0..rows {
                        // SAFETY: as above.
                        let o = unsafe { out.range(start(i), cols * lay.oc) };
                        o.copy_from_slice(&y[i * m * lay.oc..][..cols * lay.oc]);
                    }
                }
            }
        }
    });
    errors.into_result()
}

/// Copies the α×α patch of image `n` of the NHWC `src` (`[h, w, c]`) whose corner is at row `r.0 − r.1`,
/// column `c.0 − c.1` into `d` (pixel-major, `c` floats each), zero outside the `live` rows and columns (`[lo, hi)`
/// within the image).
fn gather_patch(
    src: &[f32],
    [sh, sw, sc]: [usize; 3],
    [(r0, r1), (c0, c1)]: [(usize, usize); 2],
    n: usize,
    [r, c]: [(usize, isize); 2],
    al: usize,
    d: &mut [f32],
) {
    for i in 0..al {
        let ih = (r.0 + i).checked_add_signed(-r.1).filter(|&h| (r0..r1).contains(&h));
        for j in 0..al {
            let dst = &mut d[(i * al + j) * sc..][..sc];
            match (ih, (c.0 + j).checked_add_signed(-c.1).filter(|&w| (c0..c1).contains(&w))) {
                (Some(h), Some(w)) => dst.copy_from_slice(&src[((n * sh + h) * sw + w) * sc..][..sc]),
                _ => dst.fill(0.0),
            }
        }
    }
}

fn set_for(tile: WinogradTile, g: &Conv2dGeometry) -> &'static WinogradSet {
    let tile = if tile == WinogradTile::Auto { super::winograd_tile(g) } else { tile };
    tile.set().unwrap_or(&F2X3)
}

impl Kernels {
    /// Transforms HWIO weights for Winograd `tile` (resolved from `g` if `Auto`): keep the result while `w` does
    /// not change and pass it to [`Kernels::conv2d_forward_winograd`].
    pub fn winograd_weights(&self, g: &Conv2dGeometry, tile: WinogradTile, w: &[f32]) -> Result<WinogradWeights> {
        let algo = super::ConvAlgo::Winograd(tile).resolve(g, super::ConvPass::Forward)?;
        crate::geometry::expect_len("winograd_weights", "weights", g.weight_len(), w.len())?;
        let super::ConvAlgo::Winograd(tile) = algo else { unreachable!("resolve keeps the family") };
        let set = set_for(tile, g);
        let (ci, co) = (g.in_c(), g.out_c());
        // Every tap, so the weights serve any image size of this channel geometry.
        let u = filter_transform(set, ci, co, w, false, &[0..set.r, 0..set.r]);
        Ok(WinogradWeights { tile, cin: ci, cout: co, u })
    }

    /// Forward pass with weights already transformed by [`Kernels::winograd_weights`].
    pub fn conv2d_forward_winograd(
        &self,
        g: &Conv2dGeometry,
        threads: Threads,
        x: &[f32],
        weights: &WinogradWeights,
        bias: Option<&[f32]>,
        y: &mut [f32],
    ) -> Result<()> {
        let algo = super::ConvAlgo::Winograd(weights.tile).resolve(g, super::ConvPass::Forward)?;
        g.check_forward(x.len(), g.weight_len(), bias.map(<[f32]>::len), y.len())?;
        if (weights.cin, weights.cout) != (g.in_c(), g.out_c()) || algo != super::ConvAlgo::Winograd(weights.tile) {
            return Err(crate::KernelError::Unsupported {
                op: "conv2d_forward_winograd",
                what: algo.to_string(),
                reason: "the transformed weights were made for another geometry",
            });
        }
        if g.batch() == 0 {
            return Ok(());
        }
        run_forward(self, g, set_for(weights.tile, g), threads, &weights.u, x, bias, y)
    }
}

#[allow(clippy::too_many_arguments)]
fn run_forward(
    k: &Kernels,
    g: &Conv2dGeometry,
    set: &WinogradSet,
    threads: Threads,
    u: &[f32],
    x: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<()> {
    let lay = Layout {
        sh: g.in_h(),
        sw: g.in_w(),
        sc: g.in_c(),
        // Every input pixel meets some output through some tap (out = in + pads − r + 1).
        live: [(0, g.in_h()), (0, g.in_w())],
        top: g.pad_top() as isize,
        left: g.pad_left() as isize,
        oh: g.out_h(),
        ow: g.out_w(),
        oc: g.out_c(),
    };
    run(k, set, lay, g.batch(), threads, u, x, bias, y)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    k: &Kernels,
    g: &Conv2dGeometry,
    tile: WinogradTile,
    threads: Threads,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<()> {
    let set = set_for(tile, g);
    let (ci, co) = (g.in_c(), g.out_c());
    let u = filter_transform(set, ci, co, w, false, &live_taps(g));
    run_forward(k, g, set, threads, &u, x, bias, y)
}

pub(crate) fn backward_data(
    k: &Kernels,
    g: &Conv2dGeometry,
    tile: WinogradTile,
    threads: Threads,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    let set = set_for(tile, g);
    let (ci, co, r) = (g.in_c(), g.out_c(), set.r);
    // Rotated by 180°, channels swapped: g'[a][b][o][i] = w[r−1−a][r−1−b][i][o].
    let u = filter_transform(set, ci, co, w, true, &live_taps(g));
    let dy_live = live_dy(g);
    let lay = Layout {
        sh: g.out_h(),
        sw: g.out_w(),
        sc: co,
        live: [(dy_live[0].start, dy_live[0].end), (dy_live[1].start, dy_live[1].end)],
        top: (r - 1) as isize - g.pad_top() as isize,
        left: (r - 1) as isize - g.pad_left() as isize,
        oh: g.in_h(),
        ow: g.in_w(),
        oc: ci,
    };
    run(k, set, lay, g.batch(), threads, &u, dy, None, dx)
}

/// A Winograd algorithm F(m, r) built from its finite points plus ∞ by the construction of KERNELS.md §1.1:
/// `Aᵀ[i][j] = a_j^i`; `G[j][k] = a_j^k / Π_{l≠j}(a_j − a_l)`; row j of `Bᵀ` = ascending coefficients of
/// `M(x)/(x − a_j)` with `M(x) = Π_l (x − a_l)`; the ∞ row of `Bᵀ` is `M(x)`, the ∞ row of `G` and column of `Aᵀ`
/// are unit vectors. With the √2 points this reproduces the `Bᵀ` of [`F4X3`] exactly.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    pub m: usize,
    #[cfg_attr(not(test), allow(dead_code))] // read by the identity test
    pub r: usize,
    pub alpha: usize,
    pub bt: Vec<f64>,
    pub g: Vec<f64>,
    pub at: Vec<f64>,
}

pub(crate) fn construct(points: &[f64], m: usize, r: usize) -> Built {
    let alpha = m + r - 1;
    debug_assert_eq!(points.len(), alpha - 1);
    // M(x), ascending coefficients (degree α − 1).
    let mut mp = vec![1.0f64];
    for &a in points {
        let mut next = vec![0.0; mp.len() + 1];
        for (i, &c) in mp.iter().enumerate() {
            next[i] -= a * c;
            next[i + 1] += c;
        }
        mp = next;
    }
    let deg = alpha - 1;
    let mut bt = vec![0.0; alpha * alpha];
    let mut g = vec![0.0; alpha * r];
    let mut at = vec![0.0; m * alpha];
    for (j, &a) in points.iter().enumerate() {
        // Synthetic division M(x) / (x − a): q[i−1] = c[i] + a·q[i].
        let mut q = vec![0.0; deg];
        q[deg - 1] = mp[deg];
        for i in (1..deg).rev() {
            q[i - 1] = mp[i] + a * q[i];
        }
        bt[j * alpha..j * alpha + deg].copy_from_slice(&q);
        let denom: f64 = points.iter().enumerate().filter(|&(l, _)| l != j).map(|(_, &b)| a - b).product();
        for k in 0..r {
            g[j * r + k] = a.powi(k as i32) / denom;
        }
        for i in 0..m {
            at[i * alpha + j] = a.powi(i as i32);
        }
    }
    bt[deg * alpha..].copy_from_slice(&mp);
    g[deg * r + r - 1] = 1.0;
    at[(m - 1) * alpha + deg] = 1.0;
    Built { m, r, alpha, bt, g, at }
}

/// The backward-filter algorithm for a forward tile: F(r×r, m×m) — dy tiles of the forward output tile `m` play
/// the filter, input patches of α = r + m − 1 the data, and the output is the r×r kernel (KERNELS.md §2.1):
/// F(3×3,2×2) with points {0, ±1}; F(3×3,4×4) and F(5×5,2×2) with the √2 points (the forward 6×6 input transform).
pub(crate) fn wgrad_set(tile: WinogradTile) -> Built {
    let sqrt2 = [0.0, S2 / 2.0, -S2 / 2.0, S2, -S2];
    match tile {
        WinogradTile::F4x4K3x3 => construct(&sqrt2, 3, 4),
        WinogradTile::F2x2K5x5 => construct(&sqrt2, 5, 2),
        _ => construct(&[0.0, 1.0, -1.0], 3, 2),
    }
}

/// The f32 matrices (`Bᵀ`, `G`, `Aᵀ`) of [`wgrad_set`], built once per process rather than on every call.
fn wgrad_coeffs(tile: WinogradTile) -> &'static (Built, [Vec<f32>; 3]) {
    use std::sync::OnceLock;
    static SETS: [OnceLock<(Built, [Vec<f32>; 3])>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match tile {
        WinogradTile::F4x4K3x3 => 1,
        WinogradTile::F2x2K5x5 => 2,
        _ => 0,
    };
    SETS[slot].get_or_init(|| {
        let set = wgrad_set(tile);
        let to32 = |v: &[f64]| v.iter().map(|&c| c as f32).collect::<Vec<f32>>();
        let coeffs = [to32(&set.bt), to32(&set.g), to32(&set.at)];
        (set, coeffs)
    })
}

/// Backward-filter by Winograd: per block of dy tiles, `V = Bᵀ x B` of the input patches and `U = G dy Gᵀ` of the
/// dy tiles, then per tile element ξ one GEMM `M[ξ] += V[ξ]ᵀ · U[ξ]` (c_in × c_out, reducing over the block's
/// tiles, blocks in a fixed order), and finally `dW = Aᵀ M A` for every (c_in, c_out) pair.
pub(crate) fn backward_filter(
    k: &Kernels,
    g: &Conv2dGeometry,
    tile: WinogradTile,
    threads: Threads,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) -> Result<()> {
    let tile = if tile == WinogradTile::Auto { super::winograd_tile(g) } else { tile };
    let (set, [bt, gm, at]) = wgrad_coeffs(tile);
    let (mt, r, al) = (tile.m(), set.m, set.alpha);
    let (bt, gm, at) = (Mat1d::of(bt, al, al), Mat1d::of(gm, al, mt), Mat1d::of(at, r, al));
    let xi = al * al;
    let (ci, co, oh, ow) = (g.in_c(), g.out_c(), g.out_h(), g.out_w());
    let (th, tw) = (oh.div_ceil(mt), ow.div_ceil(mt));
    let tiles = g.batch() * th * tw;
    let block = (262_144 / (xi * (ci + co))).clamp(16, 256).min(tiles);
    let mut v = Scratch::take(xi * block * ci);
    let mut u = Scratch::take(xi * block * co);
    let mut m = Scratch::zeroed(xi * ci * co);
    let mut d = Scratch::take(xi * ci.max(co));
    let mut tmp = Scratch::take(xi * ci.max(co).max(ci * co));
    let gemm = |rows: usize| GemmGeometry::spec(ci, co, rows).trans_a(crate::geometry::Transpose::Yes).build();
    let (top, left) = (g.pad_top() as isize, g.pad_left() as isize);
    let live_dy = live_dy(g);
    for (bi, t0) in (0..tiles).step_by(block).enumerate() {
        let nt = block.min(tiles - t0);
        for b in 0..nt {
            let t = t0 + b;
            let (n, rest) = (t / (th * tw), t % (th * tw));
            let (ty, tx) = (rest / tw, rest % tw);
            // Input patch α×α×ci at (ty·m − top, tx·m − left), zero outside.
            let image = [(0, g.in_h()), (0, g.in_w())];
            gather_patch(x, [g.in_h(), g.in_w(), ci], image, n, [(ty * mt, top), (tx * mt, left)], al, &mut d);
            let job = Transform::Input {
                bt,
                d: &d,
                d_row: al * ci,
                tmp: &mut tmp,
                v: &mut v[b * ci..],
                v_stride: block * ci,
                ch: ci,
            };
            // SAFETY: supported ISA (a `&Kernels` exists); the transform indexes through checked slices.
            unsafe { (k.winograd_transform)(job) };
            // dy tile m×m×co, zero beyond the output and where dy meets no input pixel.
            for i in 0..mt {
                for j in 0..mt {
                    let dst = &mut d[(i * mt + j) * co..][..co];
                    let (a, c) = (ty * mt + i, tx * mt + j);
                    if live_dy[0].contains(&a) && live_dy[1].contains(&c) {
                        dst.copy_from_slice(&dy[g.output_index(n, a, c, 0)..][..co]);
                    } else {
                        dst.fill(0.0);
                    }
                }
            }
            let job = Transform::Output {
                at: gm,
                mt: &d,
                m_stride: co,
                tmp: &mut tmp,
                y: &mut rows_of(&mut u[b * co..], al, al * block * co),
                y_stride: block * co,
                bias: None,
                ch: co,
            };
            // SAFETY: as above.
            unsafe { (k.winograd_transform)(job) };
        }
        let gg = gemm(nt)?;
        for e in 0..xi {
            k.sgemm_with(
                threads,
                &gg,
                1.0,
                &v[e * block * ci..][..nt * ci],
                &u[e * block * co..][..nt * co],
                if bi == 0 { 0.0 } else { 1.0 },
                &mut m[e * ci * co..][..ci * co],
            )?;
        }
    }
    // dW[u][v][ci][co] = (Aᵀ M A)[u][v] for every (ci, co): one output transform over ci·co "channels", which
    // writes HWIO directly.
    let job = Transform::Output {
        at,
        mt: &m,
        m_stride: ci * co,
        tmp: &mut tmp,
        y: &mut rows_of(dw, r, r * ci * co),
        y_stride: ci * co,
        bias: None,
        ch: ci * co,
    };
    // SAFETY: as above.
    unsafe { (k.winograd_transform)(job) };
    // A tap that meets no input pixel has an exactly zero gradient (see `live_taps`).
    let live = live_taps(g);
    for (t, px) in dw.chunks_exact_mut(ci * co).enumerate() {
        if !(live[0].contains(&(t / r)) && live[1].contains(&(t % r))) {
            px.fill(0.0);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The transforms alone, on single tiles: the matrices against the exact 1-D identity (f64), and each f32
    //! transform of every testable ISA against the same matrix product in f64.

    use super::*;
    use crate::isa::Isa;

    fn sets() -> [&'static WinogradSet; 3] {
        [&F2X3, &F4X3, &F2X5]
    }

    /// Deterministic values in [-1, 1).
    fn vals(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            })
            .collect()
    }

    /// `Aᵀ[(G g) ⊙ (Bᵀ d)]` equals the direct correlation `y_i = Σ_k d_{i+k} g_k` (1-D, f64).
    #[test]
    fn matrices_compute_the_correlation() {
        for set in sets() {
            check_identity(set);
        }
    }

    fn check_identity(set: &WinogradSet) {
        {
            let (m, r, al) = (set.m, set.r, set.alpha);
            for seed in 0..50 {
                let (d, g) = (vals(al, seed), vals(r, seed + 1000));
                let gg: Vec<f64> = (0..al).map(|x| (0..r).map(|k| set.g[x * r + k] * g[k]).sum()).collect();
                let bd: Vec<f64> = (0..al).map(|x| (0..al).map(|k| set.bt[x * al + k] * d[k]).sum()).collect();
                for i in 0..m {
                    let wino: f64 = (0..al).map(|x| set.at[i * al + x] * gg[x] * bd[x]).sum();
                    let direct: f64 = (0..r).map(|k| d[i + k] * g[k]).sum();
                    assert!((wino - direct).abs() < 1e-13, "F({m},{r}) seed {seed}: {wino} vs {direct}");
                }
            }
        }
    }

    #[test]
    fn construction_reproduces_the_published_sqrt2_matrices_and_wgrad_sets_are_exact() {
        let b = construct(&[0.0, S2 / 2.0, -S2 / 2.0, S2, -S2], 4, 3);
        for (x, y) in b.bt.iter().zip(F4X3.bt).chain(b.g.iter().zip(F4X3.g)).chain(b.at.iter().zip(F4X3.at)) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
        for tile in [WinogradTile::F2x2K3x3, WinogradTile::F4x4K3x3, WinogradTile::F2x2K5x5] {
            let w = wgrad_set(tile);
            let set = WinogradSet { m: w.m, r: w.r, alpha: w.alpha, bt: w.bt.leak(), g: w.g.leak(), at: w.at.leak() };
            check_identity(&set);
        }
    }

    /// `out = M x Mᵀ` in f64 for an `rows × cols` matrix `mat` and a `cols × cols` tile.
    fn sandwich(mat: &[f64], rows: usize, cols: usize, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut out = vec![0.0; rows * rows];
        let mut bound = vec![0.0; rows * rows];
        for i in 0..rows {
            for j in 0..rows {
                for a in 0..cols {
                    for b in 0..cols {
                        let t = mat[i * cols + a] * x[a * cols + b] * mat[j * cols + b];
                        out[i * rows + j] += t;
                        bound[i * rows + j] += t.abs();
                    }
                }
            }
        }
        (out, bound)
    }

    #[test]
    fn transforms_match_the_exact_matrices_on_single_tiles() {
        for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
            let k = crate::Kernels::for_isa(isa).expect("supported");
            for set in sets() {
                let c = Coeffs::of(set);
                let (m, al) = (set.m, set.alpha);
                // 19 channels: one AVX-512 vector plus a scalar tail (two AVX2 vectors plus a tail).
                let ch = 19;
                for seed in 0..20 {
                    // Input transform: V = Bᵀ d B for each channel.
                    let d = vals(al * al * ch, seed);
                    let d32: Vec<f32> = d.iter().map(|&v| v as f32).collect();
                    let (mut tmp, mut v) = (vec![0.0f32; al * al * ch], vec![f32::NAN; al * al * ch]);
                    let job = Transform::Input {
                        bt: c.bt(),
                        d: &d32,
                        d_row: al * ch,
                        tmp: &mut tmp,
                        v: &mut v,
                        v_stride: ch,
                        ch,
                    };
                    // SAFETY: the table exists only for a supported ISA.
                    unsafe { (k.winograd_transform)(job) };
                    for cc in 0..ch {
                        let tile: Vec<f64> = (0..al * al).map(|p| f64::from(d32[p * ch + cc])).collect();
                        let (want, bound) = sandwich(set.bt, al, al, &tile);
                        for (p, (&w, &b)) in want.iter().zip(&bound).enumerate() {
                            let got = f64::from(v[p * ch + cc]);
                            assert!(
                                (got - w).abs() <= 8.0 * f64::from(f32::EPSILON) * b.max(f64::MIN_POSITIVE),
                                "{isa} F({m},{}) input transform: {got} vs {w}",
                                set.r
                            );
                        }
                    }
                    // Output transform: Y = Aᵀ M A.
                    let mm = vals(al * al * ch, seed + 77);
                    let m32: Vec<f32> = mm.iter().map(|&v| v as f32).collect();
                    let mut y = vec![f32::NAN; m * m * ch];
                    let job = Transform::Output {
                        at: c.at(),
                        mt: &m32,
                        m_stride: ch,
                        tmp: &mut tmp,
                        y: &mut rows_of(&mut y, m, m * ch),
                        y_stride: ch,
                        bias: None,
                        ch,
                    };
                    // SAFETY: as above.
                    unsafe { (k.winograd_transform)(job) };
                    for cc in 0..ch {
                        let tile: Vec<f64> = (0..al * al).map(|p| f64::from(m32[p * ch + cc])).collect();
                        let (want, bound) = sandwich(set.at, m, al, &tile);
                        for (p, (&w, &b)) in want.iter().zip(&bound).enumerate() {
                            let got = f64::from(y[p * ch + cc]);
                            assert!(
                                (got - w).abs() <= 8.0 * f64::from(f32::EPSILON) * b,
                                "{isa} F({m},{}) output transform: {got} vs {w}",
                                set.r
                            );
                        }
                    }
                }
            }
        }
    }

    /// The transforms the kernels run are the factored forms (so the single-tile test above checks them), and a
    /// matrix that differs from a known one in one entry stays dense.
    #[test]
    fn known_matrices_take_their_factored_forms() {
        for (set, want) in [
            (&F2X3, (Mat1d::Bt4, Mat1d::At2x4)),
            (&F4X3, (Mat1d::Bt6, Mat1d::At4x6)),
            (&F2X5, (Mat1d::Bt6, Mat1d::At2x6)),
        ] {
            let c = Coeffs::of(set);
            assert_eq!((c.bt(), c.at()), want);
        }
        // The √2 backward-filter sets share the forward input transform (the {0, ±1} one has other signs: dense).
        for tile in [WinogradTile::F4x4K3x3, WinogradTile::F2x2K5x5] {
            let (set, [bt, _, _]) = wgrad_coeffs(tile);
            assert_eq!(Mat1d::of(bt, set.alpha, set.alpha), Mat1d::Bt6, "{tile:?}");
        }
        let mut off = Coeffs::of(&F4X3).bt;
        off[7] += 1e-3;
        assert!(matches!(Mat1d::of(&off, 6, 6), Mat1d::Dense { rows: 6, cols: 6, .. }));
    }

    #[test]
    fn filter_transform_matches_the_exact_matrices() {
        for set in sets() {
            let r = set.r;
            let g = vals(r * r, 5);
            let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
            let u = filter_transform(set, 1, 1, &g32, false, &[0..r, 0..r]);
            let g64: Vec<f64> = g.iter().map(|&v| f64::from(v as f32)).collect();
            // U = G g Gᵀ with G (α × r).
            let al = set.alpha;
            for x in 0..al {
                for y in 0..al {
                    let want: f64 = (0..r)
                        .flat_map(|a| (0..r).map(move |b| (a, b)))
                        .map(|(a, b)| set.g[x * r + a] * g64[a * r + b] * set.g[y * r + b])
                        .sum();
                    let got = f64::from(u[x * al + y]);
                    assert!((got - want).abs() <= f64::from(f32::EPSILON) * want.abs().max(1e-30), "{got} vs {want}");
                }
            }
        }
    }
}
