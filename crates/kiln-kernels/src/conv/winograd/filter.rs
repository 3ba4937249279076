//! The filter transform `U = G g Gᵀ` (in f64, rounded once) and the live-tap rules that keep taps meeting only
//! padding out of it.

use std::ops::Range;

use super::WinogradTile;
use super::matrices::WinogradSet;
use crate::conv::scratch::Scratch;
use crate::geometry::Conv2dGeometry;

/// Tap `u < r` and dy row `a < out` meet when input row `a − pad + u` lies in `0..input` (stride 1, dilation 1):
/// the `own` indices (of `own` in all) that meet some index of the `other` side (`other` in all) — the relation is
/// symmetric in taps and dy rows, so one rule serves both.
pub(super) fn meeting(pad: usize, input: usize, own: usize, other: usize) -> Range<usize> {
    let hi = (pad + input).min(own);
    (pad + 1).saturating_sub(other).min(hi)..hi
}

/// The kernel rows and columns that meet the image for at least one output. On an image smaller than the kernel
/// (a 1×1 image under `same` padding meets only the centre tap) the others contribute exactly nothing, but the
/// Winograd transforms mix every weight of the tile into every output, so their rounding would be error on a result
/// that does not involve them (KERNELS.md §1.5 (c)): they are left out of the filter transform.
pub(super) fn live_taps(g: &Conv2dGeometry) -> [Range<usize>; 2] {
    [meeting(g.pad_top(), g.in_h(), g.kernel_h(), g.out_h()), meeting(g.pad_left(), g.in_w(), g.kernel_w(), g.out_w())]
}

/// The dy rows and columns that meet an input pixel through some tap. Under padding wider than `r − 1` the outer dy
/// rows meet none: they contribute exactly nothing to either backward pass, but left in, the transforms would pair
/// them with every pixel of their tile and their rounding would land on results that do not involve them.
pub(super) fn live_dy(g: &Conv2dGeometry) -> [Range<usize>; 2] {
    [meeting(g.pad_top(), g.in_h(), g.out_h(), g.kernel_h()), meeting(g.pad_left(), g.in_w(), g.out_w(), g.kernel_w())]
}

/// Filter transform `U[ξ][i][o] = (G g Gᵀ)[ξ]` in f64 of HWIO weights `w` (`r×r×cin×cout`), rounded once; with
/// `rotated`, of the kernel turned by 180° and with its channels swapped (`g'[a][b][o][i] = w[r−1−a][r−1−b][i][o]`,
/// backward-data), giving `U[ξ][o][i]`. Taps outside `live` (rows, columns of `w`) are taken as zero. The loops
/// run along `cout`, contiguous in both `w` and `U`. Writes the `α²·cin·cout` floats of `out`; `f64s` is the
/// caller's scratch for the f64 partial sums (kept by a plan, so a transform per weight version allocates nothing
/// once warm).
#[allow(clippy::too_many_arguments)]
pub(super) fn filter_transform(
    set: &WinogradSet,
    cin: usize,
    cout: usize,
    w: &[f32],
    rotated: bool,
    live: &[Range<usize>; 2],
    out: &mut [f32],
    f64s: &mut Vec<f64>,
) {
    let (al, r) = (set.alpha, set.r);
    // Rotated weights are transformed into scratch, then transposed into `out`.
    let mut unrotated = rotated.then(|| Scratch::take(al * al * cin * cout));
    let u: &mut [f32] = match &mut unrotated {
        Some(s) => s,
        None => out,
    };
    // gt[x][b][o] = Σ_a G[x][a] g[a][b][o], then U[x][y][o] = Σ_b gt[x][b][o] G[y][b], for one input channel.
    f64s.clear();
    f64s.resize(al * r * cout + cout, 0.0);
    let (gt, acc) = f64s.split_at_mut(al * r * cout);
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
                for (d, &s) in u[((x * al + y) * cin + i) * cout..][..cout].iter_mut().zip(acc.iter()) {
                    *d = s as f32;
                }
            }
        }
    }
    let Some(u) = unrotated else { return };
    // Swap the channels of every ξ (`[ci][co]` → `[co][ci]`) in 16×16 blocks, so both sides stay in cache lines.
    for (src, dst) in u.chunks_exact(cin * cout).zip(out.chunks_exact_mut(cin * cout)) {
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
}

/// Transformed weights, reusable while the weights they came from do not change.
#[derive(Debug, Clone)]
pub struct WinogradWeights {
    pub(super) tile: WinogradTile,
    pub(super) cin: usize,
    pub(super) cout: usize,
    pub(super) u: Vec<f32>,
}

impl WinogradWeights {
    /// The tile these weights were transformed for.
    pub fn tile(&self) -> WinogradTile {
        self.tile
    }
}
