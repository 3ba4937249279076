//! Direct convolution for small channel counts (KERNELS.md §3): activations are converted at the boundary into
//! zero-padded *planar* images (`[C][Hp][Wp]`), and the output is computed in "wide rows": flat positions
//! `p = oh·Wp + ow` for every `ow < Wp` (not just `< OW`), so tap `(kh, kw)` is the constant offset `kh·Wp + kw`
//! and a whole output plane is one contiguous run of vectors (no masks, no row tails; the `Wp − OW` garbage
//! columns are dropped at the store). A register block holds up to [`BLOCK`] output channels × `V` vectors.
//!
//! Backward-data is the same kernel on `dy` placed `(kh − 1 − pad_top, kw − 1 − pad_left)` into a planar image of
//! `(in_h + kh − 1) × (in_w + kw − 1)` with the weights rotated by 180° and in/out channels swapped; a register
//! tile skips the kernel rows (and, lane-batched, the kernel columns) that meet only zero padding for all its
//! positions. That keeps the sums' bits: a skipped product is an exact zero, and adding a zero changes an
//! accumulator only if it is −0, which a chain starting at +0 never is (in round-to-nearest, `x + (−x)` and
//! `+0 + −0` are +0) — so any two tile shapes give the same bits for finite weights. When it pays
//! ([`lane_groups`]: conv2's three passes), groups of `LANES` images run with one image per vector
//! lane ([`lanes`]). Backward-filter reduces `dW[t][ci][co] = Σ_p dy[co][p] · x[ci][p + off_t]` with `dy` in the same
//! wide-row layout (garbage columns zeroed): `BLOCK` channels × `T` taps of vector accumulators, one horizontal
//! sum per weight and chunk, images summed in fixed chunks of [`WGRAD_CHUNK`] so that any thread count gives the
//! same bits — or, when the forward's rule takes lane groups, chunks of `LANES` images with one image per lane
//! ([`wgrad_lanes`]) first.

// Register arrays are indexed by small constant-bound loops on purpose (they unroll into named registers).
#![allow(clippy::needless_range_loop)]

mod lanes;
mod planar;
mod plane;
mod tiles;
mod wgrad;

pub(crate) use lanes::lanes;
pub(crate) use planar::planar;
pub(crate) use plane::Plane;
use plane::Taps;
pub(crate) use wgrad::{wgrad, wgrad_lanes};

use super::scratch::{Scratch, SharedOut};
use super::{parts, split};
use crate::dispatch::Kernels;
use crate::gemm::Threads;
use crate::geometry::Conv2dGeometry;

/// Most output channels in one register block.
pub(crate) const BLOCK: usize = 6;
/// Planar rows are padded to a multiple of this many floats (the widest vector), which every `V · LANES` divides
/// into whole vectors.
pub(crate) const ROUND: usize = 16;
/// Longest register chain of the direct kernel before block summation flushes it (one channel's taps if longer):
/// a single all-positive chain of 425 terms reached K = 8.2 in the property test, and sequential f32 error grows
/// about as 0.35·√L (KERNELS.md §1.6), ≈ 3.4 at 96 terms.
pub(crate) const CHAIN: usize = 96;
/// Images per backward-filter partial sum (each ends in one horizontal sum per weight). 8 rather than 4: conv2's
/// backward-filter 131.8 → 121.8 µs (harness minima, batch 32, AVX-512), the reductions having been ~6 % of it;
/// the worst error with all-positive U(0,1) data stayed under 1 eps32·B (conv2 and conv1 at batch 256: 0.45–0.50
/// → 0.53–0.63; 40×40×8 → 16, 3×3, batch 64: 0.86 → 0.88), against the K = 8 bound.
pub(crate) const WGRAD_CHUNK: usize = 8;

/// One planar valid correlation: `out[co][p] = Σ_{ci, t} w[co][ci][t] · inp[ci][p + taps[t]]` for `p < len`.
pub(crate) struct Planar<'a> {
    /// The planar image geometry, and the NHWC source image `n` of `src` that fills `inp`.
    pub plane: Plane,
    pub src: &'a [f32],
    pub n: usize,
    /// `cin` planes of `in_plane` floats (scratch).
    pub inp: &'a mut [f32],
    pub in_plane: usize,
    pub cin: usize,
    /// Every tap's input offset (kernel rows outermost).
    pub taps: &'a [usize],
    /// Weights packed per channel block (see [`pack_blocks`]).
    pub w: &'a [f32],
    pub cout: usize,
    /// `cout` planes of `len` floats (scratch).
    pub out: &'a mut [f32],
    /// Positions to compute (a multiple of [`ROUND`]).
    pub len: usize,
    pub bias: Option<&'a [f32]>,
    /// The NHWC output image (`out_h × out_w × cout`).
    pub dst: &'a mut [f32],
}

/// One image's backward-filter reduction, added into `acc` (`[tap][ci][co]`, i.e. HWIO).
pub(crate) struct Wgrad<'a> {
    /// Planar geometry of `x` and of `dy` (whose planes are `len` apart, garbage positions zero).
    pub plane: Plane,
    pub dplane: Plane,
    pub x: &'a [f32],
    pub dy: &'a [f32],
    /// The images of this chunk.
    pub images: std::ops::Range<usize>,
    /// `cin` planes of `in_plane` per image: scratch the job fills, or with `kept` the planes the forward left
    /// (one image's after another for single images).
    pub inp: &'a mut [f32],
    pub kept: bool,
    /// Where the current image's planes start in `inp`.
    pub inp_base: usize,
    /// Scratch: `cout` planes of `dy_plane`.
    pub dyw: &'a mut [f32],
    pub in_plane: usize,
    pub cin: usize,
    pub taps: &'a [usize],
    pub cout: usize,
    /// Wide-row positions per image (single images).
    pub len: usize,
    /// Floats from one dy plane to the next in `dyw` (`len` for single images).
    pub dy_plane: usize,
    /// Scratch: one vector of partial sums (16 floats) per weight.
    pub vacc: &'a mut [f32],
    /// The chunk's sums (`[tap][ci][co]`), overwritten.
    pub acc: &'a mut [f32],
}

/// Output-channel blocks: `cout` split as evenly as possible into blocks of at most [`BLOCK`].
fn blocks(cout: usize) -> impl Iterator<Item = (usize, usize)> {
    let nb = cout.div_ceil(BLOCK);
    (0..nb).map(move |b| {
        let start = b * cout / nb;
        (start, (b + 1) * cout / nb - start)
    })
}

/// Packs `get(co, ci, t)` into the block layout: block `(cb, c)` at `cb·cin·taps`, element `(ci·taps + t)·c + j`.
fn pack_blocks(cout: usize, cin: usize, taps: usize, out: &mut [f32], get: impl Fn(usize, usize, usize) -> f32) {
    for (cb, c) in blocks(cout) {
        let blk = &mut out[cb * cin * taps..][..c * cin * taps];
        for ci in 0..cin {
            for t in 0..taps {
                for j in 0..c {
                    blk[(ci * taps + t) * c + j] = get(cb + j, ci, t);
                }
            }
        }
    }
}

/// Where the forward's input planes of every work unit go when they are kept for backward-filter (see
/// [`KeptPlanes`]); `None`: into each part's scratch.
type Keep<'a> = Option<&'a mut [f32]>;

/// The layout of the forward's input planes kept for backward-filter: the `groups` lane-batched groups first
/// (`group` floats each: `cin` planes of `LANES` floats per position), then the single images (`single` floats
/// each). The padding positions must be zero (the images' fills never write them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeptPlanes {
    pub(crate) groups: usize,
    pub(crate) group: usize,
    pub(crate) single: usize,
    pub(crate) len: usize,
}

impl KeptPlanes {
    /// The layout for the forward of `g` on `k` (the same lane groups as backward-filter's: the forward's rule).
    pub(crate) fn of(k: &Kernels, g: &Conv2dGeometry) -> Self {
        Self::with_groups(k, g, lane_groups(&Plane::input(g), g.out_c(), g.batch(), k.conv.lanes))
    }
    /// The layout with `groups` lane-batched groups.
    fn with_groups(k: &Kernels, g: &Conv2dGeometry, groups: usize) -> Self {
        let plane = Plane::input(g);
        let single = plane.sc * plane.in_plane();
        let group = single * k.conv.lanes;
        let len = groups * group + (g.batch() - groups * k.conv.lanes) * single;
        KeptPlanes { groups, group, single, len }
    }
    /// Where unit `u` (a group below `groups`, else single image `u − groups` after them) starts.
    fn unit(&self, u: usize) -> (usize, usize) {
        if u < self.groups {
            (u * self.group, self.group)
        } else {
            (self.groups * self.group + (u - self.groups) * self.single, self.single)
        }
    }
}

/// Runs the planar correlation for every image: `dst[n]` (NHWC, `out_h × out_w × cout`) = wide-row result
/// (+ bias), split over images — the first `groups · LANES` images in lane-batched groups ([`lanes`]), the rest one
/// by one ([`planar`]). With `keep`, each unit's input planes are written into its place of that buffer (laid out
/// as [`KeptPlanes`], padding zero) and left there.
#[allow(clippy::too_many_arguments)]
fn run_planar(
    k: &Kernels,
    threads: Threads,
    batch: usize,
    plane: Plane,
    src: &[f32],
    wpk: &[f32],
    cout: usize,
    bias: Option<&[f32]>,
    dst: &mut [f32],
    groups: usize,
    keep: Keep<'_>,
) {
    let (len, ip) = (plane.len(), plane.in_plane());
    // Tap offsets for single images, and times LANES for lane groups (built only if there are groups).
    let taps = plane.taps(1);
    let ltaps = if groups > 0 { plane.taps(k.conv.lanes) } else { Taps::empty() };
    let (oh, ow) = (plane.out_h(), plane.out_w());
    let per = oh * ow * cout;
    let lip = ip * k.conv.lanes;
    let layout = KeptPlanes { groups, group: plane.sc * lip, single: plane.sc * ip, len: 0 };
    let kept = keep.map(SharedOut::new);
    let out = SharedOut::new(dst);
    let batched = groups * k.conv.lanes;
    // Work units: the lane groups, then the single images.
    let units = groups + (batch - batched);
    split(parts(threads, units), units, |u0, nu| {
        let (mut single, mut grouped) = (None, None);
        for u in u0..u0 + nu {
            let (n, images, bufs, ip, len, taps) = if u < groups {
                // Input planes as the wide rows' with a vector per float, output pixels of cout vectors.
                let b = grouped.get_or_insert_with(|| {
                    let inp = kept.is_none().then(|| plane.lane_planes(lip, k.conv.lanes));
                    (inp, Scratch::take(per * k.conv.lanes))
                });
                (u * k.conv.lanes, k.conv.lanes, b, lip, 0, &ltaps[..])
            } else {
                let b = single.get_or_insert_with(|| {
                    (kept.is_none().then(|| Scratch::zeroed(plane.sc * ip)), Scratch::take(cout * len))
                });
                (batched + u - groups, 1, b, ip, len, &taps[..])
            };
            // SAFETY: each part owns the images of its units in dst; dst outlives the split.
            let dst = unsafe { out.range(n * per, images * per) };
            let inp: &mut [f32] = match (&kept, &mut bufs.0) {
                (Some(kept), _) => {
                    let (at, len) = layout.unit(u);
                    // SAFETY: each part owns its units' places in the kept planes; the buffer outlives the split.
                    unsafe { kept.range(at, len) }
                }
                (None, Some(scratch)) => scratch,
                (None, None) => unreachable!("a part without kept planes takes scratch planes"),
            };
            let mut job = Planar {
                plane,
                src,
                n,
                inp,
                in_plane: ip,
                cin: plane.sc,
                taps,
                w: wpk,
                cout,
                out: &mut bufs.1,
                len,
                bias,
                dst,
            };
            // SAFETY: a `&Kernels` exists only for a supported ISA; the job's buffers were sized by `Plane` for
            // every position and tap it touches (times `LANES` for a group: whole images land, `groups` was
            // chosen by `lane_groups`), and the kernel indexes through checked slices.
            unsafe { if images > 1 { (k.conv.direct_lanes)(&mut job) } else { (k.conv.direct_planar)(&mut job) } };
        }
    });
}

/// How many groups of `lanes` images a planar correlation of `batch` images into `cout` channels runs lane-batched
/// ([`lanes`]): all it can when that pays, none otherwise. It pays when the vector FMAs it saves per image exceed
/// four times the vectors it transposes (`(in + out)/lanes` floats at ~4 shuffles per vector, shuffles issuing at
/// half the FMA rate), and the input has more than one channel (one channel's wide-row planes are a plain copy).
/// The FMAs saved are `cin·cout/lanes` times the position × tap products the wide rows compute (every position of
/// `len`, skipping kernel rows only per vector: a lower bound of [`planar`]'s) less the lane rows' (the `out_w`
/// valid columns, each with exactly its live kernel rows and columns). Flagship conv2 forward (3 → 6, 24² → 20²):
/// the wide rows' 80 garbage positions, 2,250 FMAs saved vs 258 vectors transposed — lane-batched; its
/// backward-data (6 → 3, 24² from 20² padded by 4): the zero-padding taps, 12,000 − 10,000 products, also 2,250
/// vs 258 — lane-batched; conv1 forward (1 → 3, 28² → 24²): one channel (450 vs 157) — wide rows.
fn lane_groups(plane: &Plane, cout: usize, batch: usize, lanes: usize) -> usize {
    if lanes <= 1 || plane.sc <= 1 || plane.whole().is_none() {
        return 0;
    }
    let wide: usize = (0..plane.len())
        .step_by(lanes)
        .map(|p| plane.live_rows(p / plane.wp, (p + lanes - 1) / plane.wp).len() * plane.kw * lanes)
        .sum();
    let rows: usize = (0..plane.out_h()).map(|r| plane.live_rows(r, r).len()).sum();
    let cols: usize = (0..plane.out_w()).map(|c| plane.live_cols(c, c).len()).sum();
    let saved = plane.sc * cout * wide.saturating_sub(rows * cols) / lanes;
    let moved = (plane.sh * plane.sw * plane.sc + plane.out_h() * plane.out_w() * cout) / lanes;
    if saved > 4 * moved { batch / lanes } else { 0 }
}

/// The forward's weights packed per channel block (`g.weight_len()` floats).
pub(crate) fn pack_forward(g: &Conv2dGeometry, w: &[f32], out: &mut [f32]) {
    let (ci, co, nt) = (g.in_c(), g.out_c(), g.kernel_h() * g.kernel_w());
    pack_blocks(co, ci, nt, out, |o, i, t| w[(t * ci + i) * co + o]);
}

/// Backward-data's weights: rotated by 180°, channels swapped (planar input channel = dy channel `o`, planar
/// output channel = dx channel `i`), packed per channel block (`g.weight_len()` floats).
pub(crate) fn pack_backward_data(g: &Conv2dGeometry, w: &[f32], out: &mut [f32]) {
    let (ci, co, nt) = (g.in_c(), g.out_c(), g.kernel_h() * g.kernel_w());
    pack_blocks(ci, co, nt, out, |i, o, t| w[((nt - 1 - t) * ci + i) * co + o]);
}

/// Forward with weights packed by [`pack_forward`]; with `keep` (laid out as [`KeptPlanes::of`], padding zero),
/// the input planes are left there for [`backward_filter`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    x: &[f32],
    wpk: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    keep: Keep<'_>,
) {
    let groups = lane_groups(&Plane::input(g), g.out_c(), g.batch(), k.conv.lanes);
    forward_groups(k, g, threads, x, wpk, bias, y, groups, keep);
}

/// [`forward`] with the first `groups · LANES` images lane-batched.
#[allow(clippy::too_many_arguments)]
fn forward_groups(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    x: &[f32],
    wpk: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    groups: usize,
    keep: Keep<'_>,
) {
    run_planar(k, threads, g.batch(), Plane::input(g), x, wpk, g.out_c(), bias, y, groups, keep);
}

/// Backward-data with weights packed by [`pack_backward_data`].
pub(crate) fn backward_data(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    dy: &[f32],
    wpk: &[f32],
    dx: &mut [f32],
) {
    let groups = lane_groups(&Plane::output_grad(g), g.in_c(), g.batch(), k.conv.lanes);
    backward_data_groups(k, g, threads, dy, wpk, dx, groups);
}

/// [`backward_data`] with the first `groups · LANES` images lane-batched.
fn backward_data_groups(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    dy: &[f32],
    wpk: &[f32],
    dx: &mut [f32],
    groups: usize,
) {
    run_planar(k, threads, g.batch(), Plane::output_grad(g), dy, wpk, g.in_c(), None, dx, groups, None);
}

/// Backward-filter; with `kept` (the input planes a [`forward`] of the same `x` left), x is not converted again.
pub(crate) fn backward_filter(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    kept: Keep<'_>,
) {
    // The forward's rule: the same planes, garbage positions and floats transposed (conv2: 16.7 % fewer FMAs).
    let groups = lane_groups(&Plane::input(g), g.out_c(), g.batch(), k.conv.lanes);
    backward_filter_groups(k, g, threads, x, dy, dw, groups, kept);
}

/// [`backward_filter`] with the first `groups · LANES` images in lane-batched chunks of `LANES` images (the rest in
/// chunks of [`WGRAD_CHUNK`]).
#[allow(clippy::too_many_arguments)]
fn backward_filter_groups(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    groups: usize,
    kept: Keep<'_>,
) {
    let plane = Plane::input(g);
    let (len, ip) = (plane.len(), plane.in_plane());
    let (co, oh, ow, wlen, lanes) = (g.out_c(), g.out_h(), g.out_w(), g.weight_len(), k.conv.lanes);
    let taps = plane.taps(1);
    let ltaps = if groups > 0 { plane.taps(lanes) } else { Taps::empty() };
    let batched = groups * lanes;
    let chunks = groups + (g.batch() - batched).div_ceil(WGRAD_CHUNK);
    let mut partials = Scratch::zeroed(chunks * wlen);
    let shared = SharedOut::new(&mut partials);
    let dplane = Plane { sh: oh, sw: ow, sc: co, top: 0, left: 0, hp: oh, wp: plane.wp, kh: 1, kw: 1, ow };
    // A lane group's dy planes: the wide rows' positions, a vector each (the garbage columns are never read).
    let (lip, ldp) = (ip * lanes, len * lanes);
    let layout = KeptPlanes { groups, group: plane.sc * lip, single: plane.sc * ip, len: 0 };
    let kept = kept.map(SharedOut::new);
    split(parts(threads, chunks), chunks, |c0, nc| {
        let (mut single, mut grouped) = (None, None);
        let mut vacc = Scratch::take(wlen * ROUND);
        for chunk in c0..c0 + nc {
            let (images, bufs, in_plane, dy_plane, taps) = if chunk < groups {
                let b = grouped.get_or_insert_with(|| {
                    let inp = kept.is_none().then(|| plane.lane_planes(lip, k.conv.lanes));
                    (inp, Scratch::take(co * ldp))
                });
                (chunk * lanes..(chunk + 1) * lanes, b, lip, ldp, &ltaps[..])
            } else {
                let b = single.get_or_insert_with(|| {
                    (kept.is_none().then(|| Scratch::zeroed(plane.sc * ip)), Scratch::zeroed(co * len))
                });
                let n0 = batched + (chunk - groups) * WGRAD_CHUNK;
                (n0..(n0 + WGRAD_CHUNK).min(g.batch()), b, ip, len, &taps[..])
            };
            let inp: &mut [f32] = match (&kept, &mut bufs.0) {
                (Some(kept), _) => {
                    // The chunk's units: its group, or its single images one after another.
                    let (at, _) = layout.unit(if chunk < groups { chunk } else { groups + images.start - batched });
                    let n = if chunk < groups { layout.group } else { images.len() * layout.single };
                    // SAFETY: each part owns its chunks' places in the kept planes (disjoint units); the buffer
                    // outlives the split. Only read here.
                    unsafe { kept.range(at, n) }
                }
                (None, Some(scratch)) => scratch,
                (None, None) => unreachable!("a part without kept planes takes scratch planes"),
            };
            // SAFETY: each part owns chunks c0 .. c0 + nc of the partials; they outlive the split.
            let acc = unsafe { shared.range(chunk * wlen, wlen) };
            let mut job = Wgrad {
                plane,
                dplane,
                x,
                dy,
                images,
                inp,
                kept: kept.is_some(),
                inp_base: 0,
                dyw: &mut bufs.1,
                in_plane,
                cin: plane.sc,
                taps,
                cout: co,
                len,
                dy_plane,
                vacc: &mut vacc,
                acc,
            };
            // SAFETY: supported ISA (a `&Kernels` exists); buffers sized by `Plane` for every position and tap
            // (times `LANES` for a group: whole images land, `groups` was chosen by `lane_groups`), and the
            // kernel indexes through checked slices.
            unsafe {
                if chunk < groups { (k.conv.direct_wgrad_lanes)(&mut job) } else { (k.conv.direct_wgrad)(&mut job) }
            };
        }
    });
    // Chunks are summed in f64 in chunk order: the same bits for any thread count, and no error growth with the
    // batch (a long f32 chain of all-positive partials would drift; KERNELS.md §1.6).
    for (i, d) in dw.iter_mut().enumerate() {
        *d = partials.chunks_exact(wlen).map(|c| f64::from(c[i])).sum::<f64>() as f32;
    }
}

#[cfg(test)]
mod tests;
