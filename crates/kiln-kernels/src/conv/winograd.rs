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
//! entry (so they vectorise to that ISA's width); the tuple GEMMs are that ISA's SGEMM.

// Register arrays are indexed by small constant-bound loops on purpose (they unroll into named registers).
#![allow(clippy::needless_range_loop)]

use super::scratch::{FirstError, Scratch, SharedOut};
use super::{WinogradTile, parts, split};
use crate::dispatch::Kernels;
use crate::error::Result;
use crate::gemm::Threads;
use crate::geometry::{Conv2dGeometry, GemmGeometry};
use crate::simd::Simd;

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
    bt: &[1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 1.0, 0.0, -1.0],
    g: &[1.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0.0, 0.0, 1.0],
    at: &[1.0, 1.0, 1.0, 0.0, 0.0, 1.0, -1.0, -1.0],
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
    at: &[
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
        0.0,
        0.0,
        S2 / 2.0,
        -S2 / 2.0,
        S2,
        -S2,
        0.0,
        0.0,
        0.5,
        0.5,
        2.0,
        2.0,
        0.0,
        0.0,
        S2 / 4.0,
        -S2 / 4.0,
        2.0 * S2,
        -2.0 * S2,
        1.0,
    ],
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
    at: &[1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, S2 / 2.0, -S2 / 2.0, S2, -S2, 1.0],
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

/// `out[i][c] = Σ_k mat[i][k] · inp[k][c]` for a `rows × cols` `mat`, over channel vectors of length `ch`, where
/// `inp[k]` is at `inp[k·is ..]` and `out[i]` at `out[i·os ..]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lincomb<S: Simd>(
    s: S,
    mat: &[f32],
    rows: usize,
    cols: usize,
    inp: &[f32],
    is: usize,
    out: &mut [f32],
    os: usize,
    ch: usize,
) {
    match (rows, cols) {
        (6, 6) => lincomb_n::<S, 6, 6>(s, mat, inp, is, out, os, ch),
        (4, 6) => lincomb_n::<S, 4, 6>(s, mat, inp, is, out, os, ch),
        (2, 6) => lincomb_n::<S, 2, 6>(s, mat, inp, is, out, os, ch),
        (4, 4) => lincomb_n::<S, 4, 4>(s, mat, inp, is, out, os, ch),
        (2, 4) => lincomb_n::<S, 2, 4>(s, mat, inp, is, out, os, ch),
        // Backward-filter: the dy-tile transform G (α × m) and the output transform Aᵀ (r × α).
        (4, 2) => lincomb_n::<S, 4, 2>(s, mat, inp, is, out, os, ch),
        (6, 4) => lincomb_n::<S, 6, 4>(s, mat, inp, is, out, os, ch),
        (6, 2) => lincomb_n::<S, 6, 2>(s, mat, inp, is, out, os, ch),
        (3, 4) => lincomb_n::<S, 3, 4>(s, mat, inp, is, out, os, ch),
        (3, 6) => lincomb_n::<S, 3, 6>(s, mat, inp, is, out, os, ch),
        (5, 6) => lincomb_n::<S, 5, 6>(s, mat, inp, is, out, os, ch),
        _ => unreachable!("no Winograd set has a {rows}x{cols} transform"),
    }
}

/// [`lincomb`] for a fixed shape: all `R` outputs of one channel vector accumulate in `R` independent registers
/// (one FMA chain per output would be latency-bound), every input vector is loaded once, and the matrix is
/// applied densely (branch-free; the sparse √2 matrices have ~4 nonzeros per row of 6).
#[inline(always)]
fn lincomb_n<S: Simd, const R: usize, const K: usize>(
    s: S,
    mat: &[f32],
    inp: &[f32],
    is: usize,
    out: &mut [f32],
    os: usize,
    ch: usize,
) {
    let l = S::LANES;
    let m: &[f32; 36] = &{
        let mut a = [0.0f32; 36];
        a[..R * K].copy_from_slice(&mat[..R * K]);
        a
    };
    let full = ch - ch % l;
    for c in (0..full).step_by(l) {
        let mut acc = [s.splat(0.0); R];
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
            let mut acc = 0.0f32;
            for k in 0..K {
                acc = m[i * K + k].mul_add(inp[k * is + c], acc);
            }
            out[i * os + c] = acc;
        }
    }
}

/// The f32 copies of a set's input and output transforms.
pub(crate) struct Coeffs {
    pub bt: [f32; 36],
    pub at: [f32; 24],
}

impl Coeffs {
    pub(crate) fn of(set: &WinogradSet) -> Self {
        let mut c = Coeffs { bt: [0.0; 36], at: [0.0; 24] };
        for (d, &s) in c.bt.iter_mut().zip(set.bt) {
            *d = s as f32;
        }
        for (d, &s) in c.at.iter_mut().zip(set.at) {
            *d = s as f32;
        }
        c
    }
}

/// A transform job for the per-ISA entry.
pub(crate) enum Transform<'a> {
    /// `v = Bᵀ d B` for one tile: `d` is α×α×ch (pixel-major), `v` is α² rows at stride `v_stride`.
    Input {
        alpha: usize,
        bt: &'a [f32],
        d: &'a [f32],
        tmp: &'a mut [f32],
        v: &'a mut [f32],
        v_stride: usize,
        ch: usize,
    },
    /// `y = Aᵀ M A` for one tile (any `m × α` matrix `at`): `mt` is α² rows at stride `m_stride`, `y` is m² rows
    /// at stride `y_stride`.
    Output {
        alpha: usize,
        m: usize,
        at: &'a [f32],
        mt: &'a [f32],
        m_stride: usize,
        tmp: &'a mut [f32],
        y: &'a mut [f32],
        y_stride: usize,
        ch: usize,
    },
}

/// Runs one transform (inlined into each ISA's entry).
#[inline(always)]
pub(crate) fn transform<S: Simd>(s: S, t: Transform<'_>) {
    match t {
        Transform::Input { alpha, bt, d, tmp, v, v_stride, ch } => {
            // tmp[i][j] = Σ_k Bᵀ[i][k] d[k][j]   (rows of d are α·ch apart, columns ch apart)
            for j in 0..alpha {
                lincomb(s, bt, alpha, alpha, &d[j * ch..], alpha * ch, &mut tmp[j * ch..], alpha * ch, ch);
            }
            // v[i][j] = Σ_k tmp[i][k] Bᵀ[j][k]
            for i in 0..alpha {
                lincomb(s, bt, alpha, alpha, &tmp[i * alpha * ch..], ch, &mut v[i * alpha * v_stride..], v_stride, ch);
            }
        }
        Transform::Output { alpha, m, at, mt, m_stride, tmp, y, y_stride, ch } => {
            // tmp[i][j] = Σ_k Aᵀ[i][k] M[k][j]   (i < m, j < α)
            for j in 0..alpha {
                lincomb(s, at, m, alpha, &mt[j * m_stride..], alpha * m_stride, &mut tmp[j * ch..], alpha * ch, ch);
            }
            // y[i][j] = Σ_k tmp[i][k] Aᵀ[j][k]
            for i in 0..m {
                lincomb(s, at, m, alpha, &tmp[i * alpha * ch..], ch, &mut y[i * m * y_stride..], y_stride, ch);
            }
        }
    }
}

/// Filter transform `U[ξ][i][o] = (G g Gᵀ)[ξ]` in f64 for `get(a, b, i, o)` (a kernel `r×r×cin×cout`), rounded.
fn filter_transform(
    set: &WinogradSet,
    cin: usize,
    cout: usize,
    get: impl Fn(usize, usize, usize, usize) -> f32,
) -> Vec<f32> {
    let (al, r) = (set.alpha, set.r);
    let mut u = vec![0.0f32; al * al * cin * cout];
    let mut gt = vec![0.0f64; al * r];
    for i in 0..cin {
        for o in 0..cout {
            // gt = G g   (α × r)
            for x in 0..al {
                for b in 0..r {
                    gt[x * r + b] = (0..r).map(|a| set.g[x * r + a] * f64::from(get(a, b, i, o))).sum();
                }
            }
            // U = gt Gᵀ  (α × α)
            for x in 0..al {
                for y in 0..al {
                    let v: f64 = (0..r).map(|b| gt[x * r + b] * set.g[y * r + b]).sum();
                    u[((x * al + y) * cin + i) * cout + o] = v as f32;
                }
            }
        }
    }
    u
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
/// for an `oh × ow` output.
#[derive(Clone, Copy)]
struct Layout {
    sh: usize,
    sw: usize,
    sc: usize,
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
    // GEMMs take the unpacked-B path (c128@28²: 28 tiles 178 GFLOP/s, 56 tiles 192, 113 tiles 144; convprobe).
    let block = (524_288 / (xi * (lay.sc + lay.oc))).clamp(8, 64);
    let blocks = tiles.div_ceil(block);
    let coeffs = Coeffs::of(set);
    let gemm = GemmGeometry::new(block, lay.oc, lay.sc)?;
    let out = SharedOut::new(dst);
    let errors = FirstError::new();
    split(parts(threads, blocks), blocks, |b0, nb| {
        let mut v = Scratch::take(xi * block * lay.sc);
        let mut mm = Scratch::take(xi * block * lay.oc);
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
                gather_patch(src, [lay.sh, lay.sw, lay.sc], n, (ty * m, lay.top), (tx * m, lay.left), al, &mut d);
                let job = Transform::Input {
                    alpha: al,
                    bt: &coeffs.bt,
                    d: &d,
                    tmp: &mut tmp,
                    v: &mut v[b * lay.sc..],
                    v_stride: block * lay.sc,
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
                    &v[x * block * lay.sc..][..block * lay.sc],
                    &u[x * lay.sc * lay.oc..][..lay.sc * lay.oc],
                    0.0,
                    &mut mm[x * block * lay.oc..][..block * lay.oc],
                );
                if !errors.record(res) {
                    return;
                }
            }
            for b in 0..nt {
                let t = t0 + b;
                let (n, r) = (t / (th * tw), t % (th * tw));
                let (ty, tx) = (r / tw, r % tw);
                let job = Transform::Output {
                    alpha: al,
                    m,
                    at: &coeffs.at,
                    mt: &mm[b * lay.oc..],
                    m_stride: block * lay.oc,
                    tmp: &mut tmp,
                    y: &mut y,
                    y_stride: lay.oc,
                    ch: lay.oc,
                };
                // SAFETY: as above.
                unsafe { (k.winograd_transform)(job) };
                for i in 0..m.min(lay.oh - ty * m) {
                    let row = (n * lay.oh + ty * m + i) * lay.ow + tx * m;
                    let cols = m.min(lay.ow - tx * m);
                    // SAFETY: output tiles are disjoint and each block (hence each tile) belongs to one part;
                    // dst outlives the split.
                    let o = unsafe { out.range(row * lay.oc, cols * lay.oc) };
                    for (j, px) in o.chunks_exact_mut(lay.oc).enumerate() {
                        let yv = &y[(i * m + j) * lay.oc..][..lay.oc];
                        for (c, (o, &v)) in px.iter_mut().zip(yv).enumerate() {
                            *o = v + bias.map_or(0.0, |b| b[c]);
                        }
                    }
                }
            }
        }
    });
    errors.into_result()
}

/// Copies the α×α patch of image `n` of the NHWC `src` (`[h, w, c]`) whose corner is at row `r.0 − r.1`,
/// column `c.0 − c.1` into `d` (pixel-major, `c` floats each), zero outside the image.
fn gather_patch(
    src: &[f32],
    [sh, sw, sc]: [usize; 3],
    n: usize,
    r: (usize, isize),
    c: (usize, isize),
    al: usize,
    d: &mut [f32],
) {
    for i in 0..al {
        let ih = (r.0 + i).checked_add_signed(-r.1).filter(|&h| h < sh);
        for j in 0..al {
            let dst = &mut d[(i * al + j) * sc..][..sc];
            match (ih, (c.0 + j).checked_add_signed(-c.1).filter(|&w| w < sw)) {
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
        let u = filter_transform(set, ci, co, |a, b, i, o| w[((a * set.r + b) * ci + i) * co + o]);
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
    let u = filter_transform(set, ci, co, |a, b, i, o| w[((a * set.r + b) * ci + i) * co + o]);
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
    let u = filter_transform(set, co, ci, |a, b, o, i| w[(((r - 1 - a) * r + (r - 1 - b)) * ci + i) * co + o]);
    let lay = Layout {
        sh: g.out_h(),
        sw: g.out_w(),
        sc: co,
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
    for (bi, t0) in (0..tiles).step_by(block).enumerate() {
        let nt = block.min(tiles - t0);
        for b in 0..nt {
            let t = t0 + b;
            let (n, rest) = (t / (th * tw), t % (th * tw));
            let (ty, tx) = (rest / tw, rest % tw);
            // Input patch α×α×ci at (ty·m − top, tx·m − left), zero outside.
            gather_patch(x, [g.in_h(), g.in_w(), ci], n, (ty * mt, top), (tx * mt, left), al, &mut d);
            let job = Transform::Input {
                alpha: al,
                bt,
                d: &d,
                tmp: &mut tmp,
                v: &mut v[b * ci..],
                v_stride: block * ci,
                ch: ci,
            };
            // SAFETY: supported ISA (a `&Kernels` exists); the transform indexes through checked slices.
            unsafe { (k.winograd_transform)(job) };
            // dy tile m×m×co, zero beyond the output.
            for i in 0..mt {
                for j in 0..mt {
                    let dst = &mut d[(i * mt + j) * co..][..co];
                    let (a, c) = (ty * mt + i, tx * mt + j);
                    if a < oh && c < ow {
                        dst.copy_from_slice(&dy[g.output_index(n, a, c, 0)..][..co]);
                    } else {
                        dst.fill(0.0);
                    }
                }
            }
            let job = Transform::Output {
                alpha: mt,
                m: al,
                at: gm,
                mt: &d,
                m_stride: co,
                tmp: &mut tmp,
                y: &mut u[b * co..],
                y_stride: block * co,
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
        alpha: al,
        m: r,
        at,
        mt: &m,
        m_stride: ci * co,
        tmp: &mut tmp,
        y: dw,
        y_stride: ci * co,
        ch: ci * co,
    };
    // SAFETY: as above.
    unsafe { (k.winograd_transform)(job) };
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
                    let job =
                        Transform::Input { alpha: al, bt: &c.bt, d: &d32, tmp: &mut tmp, v: &mut v, v_stride: ch, ch };
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
                        alpha: al,
                        m,
                        at: &c.at,
                        mt: &m32,
                        m_stride: ch,
                        tmp: &mut tmp,
                        y: &mut y,
                        y_stride: ch,
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

    #[test]
    fn filter_transform_matches_the_exact_matrices() {
        for set in sets() {
            let r = set.r;
            let g = vals(r * r, 5);
            let u = filter_transform(set, 1, 1, |a, b, _, _| g[a * r + b] as f32);
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
