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

mod filter;
mod matrices;
mod transform;
mod wgrad;

pub use filter::WinogradWeights;
use filter::{filter_transform, live_dy, live_taps};
pub(crate) use matrices::WinogradSet;
use matrices::*;
pub(crate) use transform::{Coeffs, Mat1d, Transform, rows_of, transform};
pub(crate) use wgrad::backward_filter;

use super::scratch::{FirstError, Scratch, SharedOut};
use super::{WinogradTile, parts, split};
use crate::dispatch::Kernels;
use crate::error::Result;
use crate::gemm::Threads;
use crate::geometry::{Conv2dGeometry, GemmGeometry};

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
                unsafe { (k.conv.winograd_transform)(job) };
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
                unsafe { (k.conv.winograd_transform)(job) };
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
        let algo = super::ConvAlgo::Winograd(tile).resolve(g, super::ConvPass::Forward, self.isa())?;
        crate::geometry::expect_len("winograd_weights", "weights", g.weight_len(), w.len())?;
        let super::ConvAlgo::Winograd(tile) = algo else { unreachable!("resolve keeps the family") };
        let set = set_for(tile, g);
        let (ci, co) = (g.in_c(), g.out_c());
        // Every tap, so the weights serve any image size of this channel geometry.
        let mut u = vec![0.0; set.alpha * set.alpha * ci * co];
        filter_transform(set, ci, co, w, false, &[0..set.r, 0..set.r], &mut u, &mut Vec::new());
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
        let algo = super::ConvAlgo::Winograd(weights.tile).resolve(g, super::ConvPass::Forward, self.isa())?;
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

/// Floats of the weights transformed for `tile` on `g` (forward or backward-data).
pub(crate) fn transformed_len(g: &Conv2dGeometry, tile: WinogradTile) -> usize {
    let al = set_for(tile, g).alpha;
    al * al * g.in_c() * g.out_c()
}

/// The forward's transformed weights `U = G g Gᵀ` ([`transformed_len`] floats), from the taps that meet the image.
pub(crate) fn transform_forward(g: &Conv2dGeometry, tile: WinogradTile, w: &[f32], u: &mut [f32], f64s: &mut Vec<f64>) {
    let set = set_for(tile, g);
    filter_transform(set, g.in_c(), g.out_c(), w, false, &live_taps(g), u, f64s);
}

/// Backward-data's transformed weights: rotated by 180°, channels swapped (`g'[a][b][o][i] = w[r−1−a][r−1−b][i][o]`).
pub(crate) fn transform_backward_data(
    g: &Conv2dGeometry,
    tile: WinogradTile,
    w: &[f32],
    u: &mut [f32],
    f64s: &mut Vec<f64>,
) {
    let set = set_for(tile, g);
    filter_transform(set, g.in_c(), g.out_c(), w, true, &live_taps(g), u, f64s);
}

/// Forward with weights transformed by [`transform_forward`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    k: &Kernels,
    g: &Conv2dGeometry,
    tile: WinogradTile,
    threads: Threads,
    x: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<()> {
    run_forward(k, g, set_for(tile, g), threads, u, x, bias, y)
}

/// Backward-data with weights transformed by [`transform_backward_data`].
pub(crate) fn backward_data(
    k: &Kernels,
    g: &Conv2dGeometry,
    tile: WinogradTile,
    threads: Threads,
    dy: &[f32],
    u: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    let set = set_for(tile, g);
    let (ci, co, r) = (g.in_c(), g.out_c(), set.r);
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
    run(k, set, lay, g.batch(), threads, u, dy, None, dx)
}

#[cfg(test)]
mod tests;
