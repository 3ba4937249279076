//! The 1-D and 2-D tile transforms (`Bᵀ d B`, `Aᵀ M A`, and the dense ones of backward-filter), generic over the
//! ISA's `Simd` vocabulary and compiled inside each ISA's entry.

// Register arrays are indexed by small constant-bound loops on purpose (they unroll into named registers).
#![allow(clippy::needless_range_loop)]

use super::matrices::*;
use crate::simd::Simd;

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
    pub(super) bt: [f32; 36],
    pub(super) at: [f32; 24],
    pub(super) alpha: usize,
    pub(super) m: usize,
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
