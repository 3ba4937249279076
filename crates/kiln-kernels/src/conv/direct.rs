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

use super::scratch::{Scratch, SharedOut};
use super::{parts, split};
use crate::dispatch::Kernels;
use crate::error::Result;
use crate::gemm::Threads;
use crate::geometry::Conv2dGeometry;
use crate::simd::{Simd, reduce_add};

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
    /// Scratch: `cin` planes of `in_plane` and `cout` planes of `dy_plane`.
    pub inp: &'a mut [f32],
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

/// The taps a register tile computes: kernel rows `a0 .. a1` × kernel columns `b0 .. b1` of a `kw`-wide kernel
/// (the taps outside the rectangle meet only zero padding for every position of the tile: their products are exact
/// zeros, and skipping them leaves the sums' bits as they were).
#[derive(Clone, Copy)]
struct Window {
    a0: usize,
    a1: usize,
    b0: usize,
    b1: usize,
    kw: usize,
}

impl Window {
    /// Every tap of a `kh × kw` kernel.
    fn all(kh: usize, kw: usize) -> Self {
        Window { a0: 0, a1: kh, b0: 0, b1: kw, kw }
    }
    fn is_empty(&self) -> bool {
        self.a0 >= self.a1 || self.b0 >= self.b1
    }
}

/// `C` output channels × `V` positions in registers ([`Tiles`] gives the planes and spacings): the input read
/// from position `p` (positions `xs` floats apart: a vector along a row, or a plane row down a column) at the taps
/// of `win`, the output written from position `q` (positions `ys` apart). With `D = 2` two channel groups' chains (see `group` below) run side by side, a tap of each in turn, for tiles too small to
/// keep the FMA units busy on their own: `C·V` chains of dependent FMAs cover only `C·V / 8` of two 4-cycle FMA
/// pipes (conv2 backward-data's 3 × 2 edge tiles: 75 %). Every chain gets the same terms in the same order and the
/// groups are added to the output in the same order as with `D = 1`, so the bits are the same.
#[inline(always)]
fn tile<S: Simd, const C: usize, const V: usize, const D: usize>(
    s: S,
    at: &Tiles<'_>,
    win: Window,
    out: &mut [f32],
    p: usize,
    q: usize,
) {
    let Tiles { inp, in_plane, cin, taps, w, len, xs, ys } = *at;
    let (l, nt, kw) = (S::LANES, taps.len(), win.kw);
    let mut acc = [[[s.splat(0.0); V]; C]; D];
    // Block summation: the register chains cover `group` input channels (at most CHAIN terms, or one channel's
    // taps), then are added into the output plane; the first flush stores. conv2 forward (3 × 25 terms) is one
    // chain; its backward-data (6 × 25) is two.
    let group = (CHAIN / nt).max(1);
    // The window's last row and column hold its largest offset (a·row + b·col grows with each).
    let reach = if win.is_empty() { 0 } else { taps[(win.a1 - 1) * kw + win.b1 - 1] + (V - 1) * xs + l };
    // Every tap's V vectors of channel `ci` lie in its slice (checked once per tile and channel, not per tap: the
    // per-tap slice checks were a third of the inner loop's instructions).
    let src = |ci: usize| &inp[ci * in_plane..][..in_plane][p..][..reach];
    let wts = |ci: usize| &w[ci * nt * C..][..nt * C];
    // One tap into chain set `d`: V input vectors times C broadcast weights (a macro: as a closure called from
    // the loops below, the accumulators went through memory).
    macro_rules! step {
        ($d:expr, $src:expr, $wt:expr, $off:expr) => {{
            let (src, wt, off): (&[f32], &[f32], usize) = ($src, $wt, $off);
            let acc = &mut acc[$d];
            // Keep whichever operand set is smaller live across the inner loop: V input vectors or C broadcast
            // weights (C·V accumulators + that set + 1 must fit the register file; 33 spilled).
            if V <= C {
                let mut x = [s.splat(0.0); V];
                for v in 0..V {
                    // SAFETY: off ≤ the window's last offset, so off + v·xs + LANES ≤ reach = src.len().
                    x[v] = unsafe { s.load_ptr(src.as_ptr().add(off + v * xs)) };
                }
                for c in 0..C {
                    let wv = s.splat(wt[c]);
                    for v in 0..V {
                        acc[c][v] = s.mul_add(x[v], wv, acc[c][v]);
                    }
                }
            } else {
                let mut wv = [s.splat(0.0); C];
                for c in 0..C {
                    wv[c] = s.splat(wt[c]);
                }
                for v in 0..V {
                    // SAFETY: as above.
                    let x = unsafe { s.load_ptr(src.as_ptr().add(off + v * xs)) };
                    for c in 0..C {
                        acc[c][v] = s.mul_add(x, wv[c], acc[c][v]);
                    }
                }
            }
        }};
    }
    let rows_whole = win.b0 == 0 && win.b1 == kw;
    // The window's taps of channel `ci` into chain set 0, or of channels `ci` and `cj` into sets 0 and 1, a tap
    // of each in turn. Whole kernel rows are one run of taps.
    macro_rules! channel {
        ($ci:expr) => {{
            let (x, wc) = (src($ci), wts($ci));
            if rows_whole {
                let t = win.a0 * kw..win.a1 * kw;
                for (wt, &off) in wc[t.start * C..t.end * C].chunks_exact(C).zip(&taps[t]) {
                    step!(0, x, wt, off);
                }
            } else {
                for a in win.a0..win.a1 {
                    let t = a * kw + win.b0..a * kw + win.b1;
                    for (wt, &off) in wc[t.start * C..t.end * C].chunks_exact(C).zip(&taps[t]) {
                        step!(0, x, wt, off);
                    }
                }
            }
        }};
        ($ci:expr, $cj:expr) => {{
            let (x0, w0, x1, w1) = (src($ci), wts($ci), src($cj), wts($cj));
            macro_rules! run {
                ($t:expr) => {{
                    let t: std::ops::Range<usize> = $t;
                    let (w0, w1) = (&w0[t.start * C..t.end * C], &w1[t.start * C..t.end * C]);
                    for ((a, b), &off) in w0.chunks_exact(C).zip(w1.chunks_exact(C)).zip(&taps[t]) {
                        step!(0, x0, a, off);
                        step!(1, x1, b, off);
                    }
                }};
            }
            if rows_whole {
                run!(win.a0 * kw..win.a1 * kw);
            } else {
                for a in win.a0..win.a1 {
                    run!(a * kw + win.b0..a * kw + win.b1);
                }
            }
        }};
    }
    // Adds chain set `d` into the output (stores it for the first group) and clears it.
    macro_rules! flush {
        ($d:expr, $first:expr) => {{
            for c in 0..C {
                let o = &mut out[c * len + q..][..(V - 1) * ys + l];
                for v in 0..V {
                    let sum = if $first { acc[$d][c][v] } else { s.add(s.load(&o[v * ys..]), acc[$d][c][v]) };
                    s.store(&mut o[v * ys..], sum);
                    acc[$d][c][v] = s.splat(0.0);
                }
            }
        }};
    }
    if D == 1 {
        // One chain set: flush after every `group` channels. (The two-set loop below with D = 1 computes the
        // same, but its code made conv2's forward ~5–9 % slower: harness minima 94.2 vs 87.6 µs alternating.)
        for ci in 0..cin {
            channel!(ci);
            if (ci + 1) % group == 0 || ci + 1 == cin {
                flush!(0, ci < group);
            }
        }
        return;
    }
    let groups = cin.div_ceil(group);
    let mut k = 0;
    while k < groups {
        let (c0, n0) = (k * group, group.min(cin - k * group));
        if D == 2 && k + 1 < groups {
            // Groups k and k + 1 (only the last group can be shorter).
            let (c1, n1) = (c0 + group, group.min(cin - c0 - group));
            for j in 0..n1 {
                channel!(c0 + j, c1 + j);
            }
            for j in n1..n0 {
                channel!(c0 + j);
            }
            flush!(0, k == 0);
            flush!(1, false);
            k += 2;
        } else {
            for j in 0..n0 {
                channel!(c0 + j);
            }
            flush!(0, k == 0);
            k += 1;
        }
    }
}

/// What the register tiles of one channel block share (see [`tile`]): `cin` input planes of `inp`, `in_plane`
/// floats apart, positions `xs` floats apart; every tap's offset (kernel rows outermost) and the block's packed
/// weights; output channels `len` floats apart, positions `ys` apart.
#[derive(Clone, Copy)]
struct Tiles<'a> {
    inp: &'a [f32],
    in_plane: usize,
    cin: usize,
    taps: &'a [usize],
    w: &'a [f32],
    len: usize,
    xs: usize,
    ys: usize,
}

impl Tiles<'_> {
    /// A tile of `n` positions — 1, 2 or `N` — from input position `p` and output position `q`, with two chain sets
    /// where [`two_sets`] says so (for `n = N` only if `N_DUAL`: the rows' full tiles keep one set).
    #[inline(always)]
    fn run<S: Simd, const C: usize, const N: usize, const N_DUAL: bool>(
        &self,
        s: S,
        n: usize,
        win: Window,
        out: &mut [f32],
        p: usize,
        q: usize,
    ) {
        match (n, two_sets::<S>(C * n, self.cin, self.taps.len())) {
            (1, true) => tile::<S, C, 1, 2>(s, self, win, out, p, q),
            (1, false) => tile::<S, C, 1, 1>(s, self, win, out, p, q),
            (2, true) => tile::<S, C, 2, 2>(s, self, win, out, p, q),
            (2, false) => tile::<S, C, 2, 1>(s, self, win, out, p, q),
            (_, true) if N_DUAL => tile::<S, C, N, 2>(s, self, win, out, p, q),
            _ => tile::<S, C, N, 1>(s, self, win, out, p, q),
        }
    }
}

/// Whether a tile of `chains = C·V` accumulators runs two channel groups' chains side by side (`D = 2` in
/// [`tile`]): when the `cin` channels of `taps` taps span more than one group, the tile has fewer than 16 chains
/// and twice its accumulators leave room for its operands. Fewer than 8 chains cannot fill two 4-cycle FMA pipes;
/// from 8 to 15 the longer loop body still paid (conv2 backward-data's 3 × 4 edge tiles: 14.5 → 12.9 % of the
/// samples, perf, AVX-512).
fn two_sets<S: Simd>(chains: usize, cin: usize, taps: usize) -> bool {
    chains < 16 && 2 * chains + 4 <= S::REGISTERS && cin > (CHAIN / taps).max(1)
}

#[inline(always)]
fn planar_block<S: Simd, const C: usize, const V: usize>(s: S, job: &mut Planar<'_>, cb: usize) {
    let l = S::LANES;
    let plane = job.plane;
    let nt = job.taps.len();
    let w = &job.w[cb * job.cin * nt..][..C * job.cin * nt];
    let out = &mut job.out[cb * job.len..][..C * job.len];
    let (inp, in_plane, cin, taps, len) = (&*job.inp, job.in_plane, job.cin, job.taps, job.len);
    let at = Tiles { inp, in_plane, cin, taps, w, len, xs: l, ys: l };
    // Only planes with zero-padding rows skip taps (forward "valid" has none: no per-tile divisions then).
    let skips = plane.pads_rows();
    let all = Window::all(plane.kh, plane.kw);
    let live = |p: usize, n: usize| {
        if skips {
            let rows = plane.live_rows(p / plane.wp, (p + n - 1) / plane.wp);
            Window { a0: rows.start, a1: rows.end, ..all }
        } else {
            all
        }
    };
    // A full tile only where its first and last vectors need every tap: next to zero-padding rows a tile's live
    // taps are those of its widest row span, so pairs there skip more (conv2 backward-data: the 4 + 4 edge rows'
    // 12 vectors compute 36 of their 60 vector × kernel-row products instead of 60).
    let whole = |p: usize| !skips || live(p, l).a1 - live(p, l).a0 == plane.kh;
    let mut p = 0;
    while p + l <= job.len {
        let n = if p + V * l <= job.len && whole(p) && whole(p + (V - 1) * l) {
            V
        } else if V > 2 && p + 2 * l <= job.len {
            // Remainder in pairs, then singles: a one-vector tile does one FMA per broadcast weight (conv2
            // forward: 30 vectors = 7 × 4 + 2).
            2
        } else {
            1
        };
        at.run::<S, C, V, false>(s, n, live(p, n * l), out, p, p);
        p += n * l;
    }
}

/// One image: NHWC → planar, the planar correlation over every channel block (`V` vectors per register row, `VW`
/// for blocks of up to three channels: same register count, per-tap scalar work spread over twice the FMAs), and
/// planar → NHWC with the bias. All three run inside the ISA's entry, so the layout loops vectorise for it too.
#[inline(always)]
pub(crate) fn planar<S: Simd, const V: usize, const VW: usize>(s: S, job: &mut Planar<'_>) {
    job.plane.fill(s, job.src, job.n, job.inp);
    for (cb, c) in blocks(job.cout) {
        match c {
            1 => planar_block::<S, 1, VW>(s, job, cb),
            2 => planar_block::<S, 2, VW>(s, job, cb),
            3 => planar_block::<S, 3, VW>(s, job, cb),
            4 => planar_block::<S, 4, V>(s, job, cb),
            5 => planar_block::<S, 5, V>(s, job, cb),
            _ => planar_block::<S, BLOCK, V>(s, job, cb),
        }
    }
    store(s, job.out, job.len, job.plane.wp, job.plane.out_w(), job.cout, job.bias, job.dst);
}

/// The lane-batched form of [`planar`] (every image landing whole in its plane): the `S::LANES` images `job.n ..`
/// sit one per vector lane, so a planar position is a vector of `LANES` floats (planes `[C][hp][wp][LANES]`, tap
/// offsets scaled by `LANES`, every load aligned). The register tiles then run along each output row's `out_w`
/// valid columns only — the wide rows' `wp − out_w` garbage columns (conv2 forward: 80 of 480 positions) are not
/// computed — with exactly the kernel rows and columns that meet data at the row and its edge columns
/// (conv2 backward-data: 10,000 of the 14,400 products of every tap at every position meet data; the tiles
/// compute 10,080), and each position gets the same FMA chain as in [`planar`] less exact zeros, so the same
/// bits. The layout costs a `LANES × LANES` transpose per `LANES` floats in and out (see [`lane_groups`]), done a
/// row (with side padding: a block of [`EDGE_ROWS`] rows) at a time just ahead of and just behind the tiles
/// (measured no faster here than whole-image passes, but the rows' data are then reused while still in L1).
#[inline(always)]
pub(crate) fn lanes<S: Simd, const V: usize, const VW: usize>(s: S, job: &mut Planar<'_>) {
    let plane = job.plane;
    let (rows, per_row) = (plane.out_h(), plane.out_w() * job.cout);
    let mut fill = LaneFill::new::<S>(&plane, job.in_plane);
    let mut store = LaneStore::new(job.bias, job.cout);
    // With side padding, rows go in blocks of EDGE_ROWS so that the edge columns can be tiled down the rows.
    let step = if plane.full_cols() == (0..plane.out_w()) { 1 } else { EDGE_ROWS };
    let mut r = 0;
    while r < rows {
        let nr = step.min(rows - r);
        // Output rows r .. r + nr read plane rows up to r + nr − 1 + kh, i.e. source rows up to that − top.
        let need = (r + nr - 1 + plane.kh).saturating_sub(fill.top).min(plane.sh);
        fill.to(s, &plane, job.src, job.n, job.inp, need * plane.sw * plane.sc);
        for (cb, c) in blocks(job.cout) {
            match c {
                1 => lanes_rows::<S, 1, VW>(s, job, cb, r, nr),
                2 => lanes_rows::<S, 2, VW>(s, job, cb, r, nr),
                3 => lanes_rows::<S, 3, VW>(s, job, cb, r, nr),
                4 => lanes_rows::<S, 4, V>(s, job, cb, r, nr),
                5 => lanes_rows::<S, 5, V>(s, job, cb, r, nr),
                _ => lanes_rows::<S, BLOCK, V>(s, job, cb, r, nr),
            }
        }
        store.to(s, job, (r + nr) * per_row);
        r += nr;
    }
}

/// Rows per block of [`lanes`] when the plane has side padding: the edge columns of a block whose rows all take
/// the same kernel rows are tiled down the block, `C × min(V, EDGE_ROWS)` accumulators with exactly the column's
/// live kernel columns, instead of as pairs along each row. conv2 backward-data on AVX-512 (per row: two 8-column
/// tiles and four edge pairs): the pairs were 23 % of the products at ~60 % of the FMA rate; harness minima,
/// batch 32, 104.2 → 95.8 µs with this and the chain sets of [`tile`].
const EDGE_ROWS: usize = 4;

/// Output rows `r .. r + nr` of one channel block of [`lanes`]: each row's columns by [`lanes_row`], except the
/// edge columns when the rows take the same kernel rows and fill a block, which go down the rows.
#[inline(always)]
fn lanes_rows<S: Simd, const C: usize, const V: usize>(s: S, job: &mut Planar<'_>, cb: usize, r: usize, nr: usize) {
    let plane = job.plane;
    let rows = plane.live_rows(r, r + nr - 1);
    let down = nr == EDGE_ROWS && (r..r + nr).all(|i| plane.live_rows(i, i) == rows);
    for i in r..r + nr {
        lanes_row::<S, C, V>(s, job, cb, i, !down);
    }
    if !down {
        return;
    }
    let (l, cin, cout, taps) = (S::LANES, job.cin, job.cout, job.taps);
    let nt = taps.len();
    let w = &job.w[cb * cin * nt..][..C * cin * nt];
    let out = &mut job.out[cb * l..];
    let (cols, wp) = (plane.out_w(), plane.wp);
    // A column's tile steps down the plane rows and the output rows.
    let (xs, ys) = (wp * l, cols * cout * l);
    let at = Tiles { inp: &*job.inp, in_plane: job.in_plane, cin, taps, w, len: l, xs, ys };
    let full = plane.full_cols();
    for x in (0..full.start).chain(full.end..cols) {
        let live = plane.live_cols(x, x);
        let win = Window { a0: rows.start, a1: rows.end, b0: live.start, b1: live.end, kw: plane.kw };
        // Tiles of min(V, EDGE_ROWS) rows (V is 1, 2, 4 or 8): as many accumulators as this ISA's row tiles.
        let h = V.min(EDGE_ROWS);
        for i in (r..r + nr).step_by(h) {
            let (px, qx) = ((i * wp + x) * l, (i * cols + x) * cout * l);
            if V >= EDGE_ROWS {
                at.run::<S, C, EDGE_ROWS, true>(s, h, win, out, px, qx);
            } else {
                at.run::<S, C, V, true>(s, h, win, out, px, qx);
            }
        }
    }
}

/// Output row `r` of one channel block of [`lanes`] (input position `(r·wp + x)·LANES` of the planes, output pixel
/// `r·out_w + x` of `cout` vectors), with the kernel rows that meet data for this row only. The columns whose taps
/// all meet data get `V`-column tiles (then pairs and singles); the columns near the side padding, where some
/// kernel columns meet only zeros, get pairs and singles with just their live kernel columns (conv2
/// backward-data: 4 + 4 of 24 columns, whose 40 column taps have 20 meeting data; their pairs compute 24) — if
/// `edges`.
#[inline(always)]
fn lanes_row<S: Simd, const C: usize, const V: usize>(s: S, job: &mut Planar<'_>, cb: usize, r: usize, edges: bool) {
    let (l, cin, cout, plane, taps) = (S::LANES, job.cin, job.cout, job.plane, job.taps);
    let nt = taps.len();
    let w = &job.w[cb * cin * nt..][..C * cin * nt];
    let out = &mut job.out[cb * l..];
    let ys = cout * l;
    let at = Tiles { inp: &*job.inp, in_plane: job.in_plane, cin, taps, w, len: l, xs: l, ys };
    let (cols, wp) = (plane.out_w(), plane.wp);
    let (p, q) = (r * wp * l, r * cols * ys);
    let rows = plane.live_rows(r, r);
    let row = Window { a0: rows.start, a1: rows.end, ..Window::all(plane.kh, plane.kw) };
    let full = plane.full_cols();
    // The edge columns only when asked (else [`lanes_rows`] tiles them down the rows).
    let (mut x, x_end) = if edges { (0, cols) } else { (full.start, full.end) };
    while x < x_end {
        let (n, win) = if full.contains(&x) && x + V <= full.end {
            (V, row)
        } else {
            // Within the full columns, or within one side's: a tile never mixes them.
            let end = if full.contains(&x) {
                full.end
            } else if x < full.start {
                full.start
            } else {
                cols
            };
            let n = if V > 2 && x + 2 <= end { 2 } else { 1 };
            let live = plane.live_cols(x, x + n - 1);
            (n, Window { b0: live.start, b1: live.end, ..row })
        };
        at.run::<S, C, V, false>(s, n, win, out, p + x * l, q + x * ys);
        x += n;
    }
}

/// Progress of [`lanes`]' input transpose: NHWC float `m` of every image goes to channel plane `c` (at `cip`),
/// position `pos`, column `x` of its row.
struct LaneFill {
    m: usize,
    c: usize,
    x: usize,
    cip: usize,
    pos: usize,
    top: usize,
    left: usize,
    ip: usize,
}

impl LaneFill {
    /// # Panics
    /// If the source does not land whole ([`Plane::whole`]; the caller checked it once per convolution).
    #[inline(always)]
    fn new<S: Simd>(plane: &Plane, ip: usize) -> Self {
        let (top, left) = plane.whole().expect("lane-batched planes hold whole images");
        LaneFill { m: 0, c: 0, x: 0, cip: 0, pos: (top * plane.wp + left) * S::LANES, top, left, ip }
    }

    #[inline(always)]
    fn next<S: Simd>(&mut self, plane: &Plane) {
        self.m += 1;
        self.c += 1;
        self.cip += self.ip;
        if self.c == plane.sc {
            (self.c, self.cip) = (0, 0);
            self.pos += S::LANES;
            self.x += 1;
            if self.x == plane.sw {
                self.x = 0;
                self.pos += (plane.wp - plane.sw) * S::LANES;
            }
        }
    }

    /// Transposes images `n0 .. n0 + LANES` of `src` into the planes (`sc` planes of `ip` floats, lane `i` = image
    /// `n0 + i`) up to NHWC float `upto` at least (whole runs of `LANES` floats, the last run partial). As in
    /// [`Plane::fill`], only the images' own positions are written (the padding was zeroed when the buffer was taken,
    /// [`Plane::lane_planes`]).
    ///
    /// # Panics
    /// If the planes are too short for the plane geometry.
    #[inline(always)]
    fn to<S: Simd>(&mut self, s: S, plane: &Plane, src: &[f32], n0: usize, planes: &mut [f32], upto: usize) {
        let l = S::LANES;
        let size = plane.sh * plane.sw * plane.sc;
        let images = &src[n0 * size..][..l * size];
        // The last position written, (top + sh − 1, left + sw − 1), ends inside every plane.
        let end = ((self.top + plane.sh - 1) * plane.wp + self.left + plane.sw) * l;
        assert!(end <= self.ip && plane.sc * self.ip <= planes.len(), "lane-batched plane sizes");
        let mut v = [s.splat(0.0); 16];
        while self.m < upto && self.m + l <= size {
            for i in 0..l {
                s.prefetch(images.as_ptr().wrapping_add(i * size + self.m + AHEAD));
            }
            let m = self.m;
            // SAFETY: row i < LANES reads floats i·size + m .. + LANES, and m + LANES ≤ size: inside `images`
            // (LANES · size floats).
            unsafe { s.load_transposed(|i| images.as_ptr().add(i * size + m), &mut v) };
            for vj in &v[..l] {
                s.prefetch(planes.as_ptr().wrapping_add(self.cip + self.pos + AHEAD));
                // SAFETY: cip ≤ (sc − 1)·ip and pos + LANES ≤ end ≤ ip (asserted above): inside `planes`.
                unsafe { s.store_ptr(planes.as_mut_ptr().add(self.cip + self.pos), *vj) };
                self.next::<S>(plane);
            }
        }
        while self.m < upto && self.m < size {
            let m = self.m;
            for (i, d) in planes[self.cip + self.pos..][..l].iter_mut().enumerate() {
                *d = images[i * size + m];
            }
            self.next::<S>(plane);
        }
    }
}

/// How far ahead (floats of each image or plane) the lane transposes prefetch the lines they will load and store:
/// two AVX-512 runs. A 16 × 16 transpose storing to 16 images 9,600 bytes apart (conv2's output) took ~48 ns from
/// L2 and ~25 ns with the lines prefetched (a stand-alone probe); in the kernels, harness minima alternating,
/// batch 32, AVX-512: conv2 forward 84.3 → 82.7 µs, backward-data 94.2 → 91.0, backward-filter 91.0 → 88.7.
const AHEAD: usize = 32;

/// Progress of [`lanes`]' output transpose: NHWC float `m` of every image, of channel `c`; and the biases of
/// floats `c, c + 1, …` for a run starting at channel `c` (`c < cout ≤ 16` in the direct kernel).
struct LaneStore {
    m: usize,
    c: usize,
    pattern: [f32; 32],
}

impl LaneStore {
    fn new(bias: Option<&[f32]>, cout: usize) -> Self {
        let mut pattern = [0.0f32; 32];
        if let Some(b) = bias {
            for (k, p) in pattern.iter_mut().enumerate() {
                *p = b[k % cout];
            }
        }
        LaneStore { m: 0, c: 0, pattern }
    }

    /// Writes the `LANES` images of a lane-batched result (`[out_h·out_w][cout][LANES]`: NHWC with a vector per
    /// float) to `job.dst` (`LANES` NHWC images of `out_h × out_w × cout`) up to float `upto` (whole runs of
    /// `LANES` floats transposed into one vector per image, and the last floats at the end), adding the bias.
    #[inline(always)]
    fn to<S: Simd>(&mut self, s: S, job: &mut Planar<'_>, upto: usize) {
        let l = S::LANES;
        let cout = job.cout;
        let per = job.plane.out_h() * job.plane.out_w() * cout;
        let (out, dst) = (&job.out[..per * l], &mut job.dst[..l * per]);
        assert!(upto <= per, "lane-batched store range");
        let mut v = [s.splat(0.0); 16];
        let step = l % cout;
        while self.m + l <= upto {
            let m = self.m;
            let run = &out[m * l..][..l * l];
            // SAFETY: row j < LANES reads floats j·LANES .. + LANES of `run` (LANES² floats).
            unsafe { s.load_transposed(|j| run.as_ptr().add(j * l), &mut v) };
            let bias = s.load(&self.pattern[self.c..]);
            // The channel of the next run's first float (no division per run: `step < cout`).
            self.c += step;
            if self.c >= cout {
                self.c -= cout;
            }
            for (i, vi) in v[..l].iter().enumerate() {
                // Each image's line AHEAD floats on: every run stores to LANES lines in LANES images, and without
                // the hint each store missed L1 (a batch's outputs live in L2) and the transposes waited on it.
                s.prefetch(dst.as_ptr().wrapping_add(i * per + m + AHEAD));
                // SAFETY: i < LANES and m + LANES ≤ upto ≤ per: inside `dst` (LANES · per floats).
                unsafe { s.store_ptr(dst.as_mut_ptr().add(i * per + m), s.add(*vi, bias)) };
            }
            self.m += l;
        }
        if upto == per {
            for m in self.m..per {
                for (i, &y) in out[m * l..][..l].iter().enumerate() {
                    dst[i * per + m] = y + self.pattern[self.c];
                }
                self.c = if self.c + 1 == cout { 0 } else { self.c + 1 };
            }
            self.m = per;
        }
    }
}

#[inline(always)]
fn wgrad_block<S: Simd, const C: usize, const T: usize>(s: S, job: &mut Wgrad<'_>, cb: usize, runs: Runs) {
    let nt = job.taps.len();
    for ci in 0..job.cin {
        // Rather than a last group of one tap (load-bound: C + 1 loads for C FMAs), end with T + 1 taps when their
        // C·(T + 1) accumulators, T + 1 inputs and a dy vector fit the registers (conv2 on AVX-512: 25 = 7·3 + 4).
        let wide_last = nt > T && nt % T == 1 && C * (T + 1) + T + 2 <= S::REGISTERS;
        let end = if wide_last { nt - (T + 1) } else { nt };
        let mut t0 = 0;
        while t0 + T <= end {
            wgrad_taps::<S, C, T>(s, job, cb, ci, t0, runs);
            t0 += T;
        }
        // The last, short group of taps with exactly the taps left (repeating a tap to fill `T` registers would
        // compute 27 taps for conv2's 25 at T = 3).
        match nt - t0 {
            0 => {}
            1 => wgrad_taps::<S, C, 1>(s, job, cb, ci, t0, runs),
            2 => wgrad_taps::<S, C, 2>(s, job, cb, ci, t0, runs),
            3 => wgrad_taps::<S, C, 3>(s, job, cb, ci, t0, runs),
            4 => wgrad_taps::<S, C, 4>(s, job, cb, ci, t0, runs),
            5 => wgrad_taps::<S, C, 5>(s, job, cb, ci, t0, runs),
            6 => wgrad_taps::<S, C, 6>(s, job, cb, ci, t0, runs),
            _ => {
                for t in t0..nt {
                    wgrad_taps::<S, C, 1>(s, job, cb, ci, t, runs);
                }
            }
        }
    }
}

/// The positions a backward-filter pass reduces over: `rows` runs of `n` vectors, run `k` starting at position
/// `x0 + k·step` of the input planes (plus each tap's offset) and of the dy planes. Single images: one run over
/// the wide rows; lane groups: each output row's `out_w` valid columns.
#[derive(Clone, Copy)]
struct Runs {
    x0: usize,
    step: usize,
    rows: usize,
    n: usize,
}

/// Taps `t0 .. t0 + T` of input channel `ci` against the `C` dy planes of block `cb`: `C × T` vector
/// accumulators over the positions of `runs`, added into `vacc`.
#[inline(always)]
fn wgrad_taps<S: Simd, const C: usize, const T: usize>(
    s: S,
    job: &mut Wgrad<'_>,
    cb: usize,
    ci: usize,
    t0: usize,
    runs: Runs,
) {
    let l = S::LANES;
    let plane = &job.inp[ci * job.in_plane..][..job.in_plane];
    let dyw = &job.dyw[..job.cout * job.dy_plane];
    let mut acc = [[s.splat(0.0); T]; C];
    if runs.rows > 0 && runs.n > 0 {
        // Every window the loop reads, checked once: T input windows and C dy windows of `span` floats.
        let span = (runs.rows - 1) * runs.step + runs.n * l;
        let mut xp = [plane.as_ptr(); T];
        for i in 0..T {
            xp[i] = plane[runs.x0 + job.taps[t0 + i]..][..span].as_ptr();
        }
        let mut dp = [dyw.as_ptr(); C];
        for c in 0..C {
            dp[c] = dyw[(cb + c) * job.dy_plane + runs.x0..][..span].as_ptr();
        }
        for k in 0..runs.rows {
            let mut p = k * runs.step;
            for _ in 0..runs.n {
                let mut x = [s.splat(0.0); T];
                for i in 0..T {
                    // SAFETY: p + LANES ≤ (rows − 1)·step + n·LANES = span, and each window holds span floats.
                    x[i] = unsafe { s.load_ptr(xp[i].add(p)) };
                }
                for c in 0..C {
                    // SAFETY: as above, for the dy windows.
                    let d = unsafe { s.load_ptr(dp[c].add(p)) };
                    for i in 0..T {
                        acc[c][i] = s.mul_add(d, x[i], acc[c][i]);
                    }
                }
                p += l;
            }
        }
    }
    for i in 0..T {
        for c in 0..C {
            let slot = &mut job.vacc[(((t0 + i) * job.cin + ci) * job.cout + cb + c) * ROUND..][..l];
            s.store(slot, s.add(s.load(slot), acc[c][i]));
        }
    }
}

/// Every channel block's taps over `runs`.
#[inline(always)]
fn wgrad_blocks<S: Simd, const T: usize, const TW: usize>(s: S, job: &mut Wgrad<'_>, runs: Runs) {
    for (cb, c) in blocks(job.cout) {
        match c {
            1 => wgrad_block::<S, 1, TW>(s, job, cb, runs),
            2 => wgrad_block::<S, 2, TW>(s, job, cb, runs),
            3 => wgrad_block::<S, 3, TW>(s, job, cb, runs),
            4 => wgrad_block::<S, 4, T>(s, job, cb, runs),
            5 => wgrad_block::<S, 5, T>(s, job, cb, runs),
            _ => wgrad_block::<S, BLOCK, T>(s, job, cb, runs),
        }
    }
}

/// One chunk of images' backward-filter reduction: per image, x and dy to planar form, then every channel block
/// (`T` taps per register row, `TW` for blocks of up to three channels) adds its vector sums into `vacc`; one horizontal sum per weight at the end.
#[inline(always)]
pub(crate) fn wgrad<S: Simd, const T: usize, const TW: usize>(s: S, job: &mut Wgrad<'_>) {
    job.vacc.fill(0.0);
    let runs = Runs { x0: 0, step: 0, rows: 1, n: job.len / S::LANES };
    for n in job.images.clone() {
        job.plane.fill(s, job.x, n, job.inp);
        job.dplane.fill_strided(s, job.dy, n, job.dyw, job.len);
        wgrad_blocks::<S, T, TW>(s, job, runs);
    }
    reduce_chunk(s, job);
}

/// Output rows per lane-batched backward-filter pass: a pass reads `rows + kh − 1` rows of one input plane and
/// `rows` rows of every dy plane (conv2, 16 lanes: 12 + 37 KB), and ends with one read-modify-write of its
/// `C × T` partial-sum vectors. Harness minima, conv2 backward-filter, AVX-512, 12 alternating rounds: 1 row
/// 110.7 µs, 2 rows 94.9, 4 rows 91.3.
const WGRAD_LANE_ROWS: usize = 4;

/// The lane-batched form of [`wgrad`] for the `LANES` images of `job.images` (one per vector lane, planes as in
/// [`lanes`]; `dyw` holds the dy planes in the same `[C][hp][wp][LANES]` layout): the passes run over each output
/// row's `out_w` valid columns only — the wide rows' garbage columns (conv2: 80 of 480 positions) are not
/// computed — a few rows at a time, transposing input and dy rows just ahead of them. Each vector lane sums its
/// own image; the chunk's horizontal sums then add the `LANES` images.
#[inline(always)]
pub(crate) fn wgrad_lanes<S: Simd, const T: usize, const TW: usize>(s: S, job: &mut Wgrad<'_>) {
    let l = S::LANES;
    job.vacc.fill(0.0);
    let (plane, dplane, n0) = (job.plane, job.dplane, job.images.start);
    let mut xfill = LaneFill::new::<S>(&plane, job.in_plane);
    let mut dfill = LaneFill::new::<S>(&dplane, job.dy_plane);
    let oh = plane.out_h();
    let mut r = 0;
    while r < oh {
        let rows = WGRAD_LANE_ROWS.min(oh - r);
        let need = (r + rows + plane.kh - 1).saturating_sub(xfill.top).min(plane.sh);
        xfill.to(s, &plane, job.x, n0, job.inp, need * plane.sw * plane.sc);
        dfill.to(s, &dplane, job.dy, n0, job.dyw, (r + rows) * dplane.sw * dplane.sc);
        let runs = Runs { x0: r * plane.wp * l, step: plane.wp * l, rows, n: plane.out_w() };
        wgrad_blocks::<S, T, TW>(s, job, runs);
        r += rows;
    }
    reduce_chunk(s, job);
}

/// Writes the chunk's sums (`acc`): one horizontal sum per weight of `vacc`.
#[inline(always)]
fn reduce_chunk<S: Simd>(s: S, job: &mut Wgrad<'_>) {
    // The horizontal sums, `LANES` weights at a time: their vectors transposed, then added in lane order — the
    // bits of `reduce_add` per weight. (LLVM vectorised the per-weight loop with gathers: ~9 % of conv2's
    // backward-filter.)
    let l = S::LANES;
    let full = job.acc.len() - job.acc.len() % l;
    let mut v = [s.splat(0.0); 16];
    for j in (0..full).step_by(l) {
        for (i, vi) in v[..l].iter_mut().enumerate() {
            *vi = s.load(&job.vacc[(j + i) * ROUND..]);
        }
        s.transpose(&mut v);
        let sum = v[1..l].iter().fold(v[0], |a, &b| s.add(a, b));
        s.store(&mut job.acc[j..], sum);
    }
    for (a, v) in job.acc[full..].iter_mut().zip(job.vacc[full * ROUND..].chunks_exact(ROUND)) {
        *a = reduce_add(s, s.load(v));
    }
}

/// Geometry of one planar image: `hp × wp` plane holding a `sh × sw × sc` NHWC source placed at signed offset
/// `(top, left)`, correlated with a `kh × kw` kernel into `ow` valid output columns per wide row.
#[derive(Clone, Copy)]
pub(crate) struct Plane {
    sh: usize,
    sw: usize,
    sc: usize,
    top: isize,
    left: isize,
    hp: usize,
    wp: usize,
    kh: usize,
    kw: usize,
    ow: usize,
}

impl Plane {
    /// The zero-padded input of `g`.
    fn input(g: &Conv2dGeometry) -> Self {
        Plane {
            sh: g.in_h(),
            sw: g.in_w(),
            sc: g.in_c(),
            top: g.pad_top() as isize,
            left: g.pad_left() as isize,
            hp: g.in_h() + g.pad_top() + g.pad_bottom(),
            wp: g.in_w() + g.pad_left() + g.pad_right(),
            kh: g.kernel_h(),
            kw: g.kernel_w(),
            ow: 0,
        }
        .narrowed()
    }
    /// The `dy` of `g` placed `(kh − 1 − pad_top, kw − 1 − pad_left)` into a plane of `(in_h + kh − 1) ×
    /// (in_w + kw − 1)`: correlated with the rotated kernel, it gives `dx` (backward-data).
    fn output_grad(g: &Conv2dGeometry) -> Self {
        let (kh, kw) = (g.kernel_h(), g.kernel_w());
        Plane {
            sh: g.out_h(),
            sw: g.out_w(),
            sc: g.out_c(),
            top: (kh - 1) as isize - g.pad_top() as isize,
            left: (kw - 1) as isize - g.pad_left() as isize,
            hp: g.in_h() + kh - 1,
            wp: g.in_w() + kw - 1,
            kh,
            kw,
            ow: 0,
        }
        .narrowed()
    }
    /// Sets `ow` for the fully padded row width `wp` (`sw + left + right`), then narrows the rows: the right padding
    /// of one row also serves as the left padding of the next, so `wp = sw + max(left, right)` zeros suffice
    /// (output column `j` reads columns `j − left .. j − left + kw` of its row, and the zeros between two rows' data
    /// cover both reaches) — as long as the `ow` outputs still fit in a row. Backward-data's full padding (`kw − 1`
    /// both sides) goes from `sw + 2(kw − 1)` to `sw + kw − 1` columns, which then are all valid: conv2's
    /// wide rows shrink from 28 to 24 (14 % fewer FMAs, no garbage column). Cropped sources (negative padding)
    /// keep the full width.
    fn narrowed(mut self) -> Self {
        self.ow = self.wp - self.kw + 1;
        let right = self.wp as isize - self.left - self.sw as isize;
        if let (Ok(left), Ok(right)) = (usize::try_from(self.left), usize::try_from(right)) {
            self.wp = (self.sw + left.max(right)).max(self.ow);
        }
        self
    }
    /// Whether some output row's kernel window reaches a row of zero padding.
    fn pads_rows(&self) -> bool {
        self.top > 0 || self.top + (self.sh as isize) < self.hp as isize
    }
    /// The kernel rows that can meet a nonzero input for output rows `r0 ..= r1`: a kernel row whose input rows
    /// are all zero padding for every output row of a tile is skipped, since its products are exact zeros that
    /// leave the sums unchanged bit for bit. Backward-data's full padding makes these `(kh − 1)·kh` of the
    /// `kh·out_h` row pairs (conv2: 20 of 120).
    #[inline(always)]
    fn live_rows(&self, r0: usize, r1: usize) -> std::ops::Range<usize> {
        // Plane rows that can hold data: the source rows placed at `top` (clipped to the plane).
        let d0 = usize::try_from(self.top).unwrap_or(0).min(self.hp);
        let d1 = usize::try_from(self.top + self.sh as isize).unwrap_or(0).min(self.hp);
        // Kernel row k is live if r + k ∈ [d0, d1) for some output row r ∈ [r0, r1].
        let k0 = d0.saturating_sub(r1).min(self.kh);
        let k1 = d1.saturating_sub(r0).min(self.kh).max(k0);
        k0..k1
    }
    /// The kernel columns that can meet a nonzero input for output columns `c0 ..= c1` of a row, for a plane whose
    /// source lands whole ([`Plane::whole`]): row `r`'s data are its columns `left .. left + sw`, and a tap past
    /// the row's end reads the next row's left padding (a narrowed row's zeros, see [`Plane::narrowed`]).
    #[inline(always)]
    fn live_cols(&self, c0: usize, c1: usize) -> std::ops::Range<usize> {
        let (left, end) = (usize::try_from(self.left).unwrap_or(0), usize::try_from(self.left).unwrap_or(0) + self.sw);
        let k0 = left.saturating_sub(c1).min(self.kw);
        let k1 = end.saturating_sub(c0).min(self.kw).max(k0);
        k0..k1
    }
    /// The output columns whose every kernel column meets data (see [`Plane::live_cols`]).
    fn full_cols(&self) -> std::ops::Range<usize> {
        let left = usize::try_from(self.left).unwrap_or(0);
        let start = left.min(self.ow);
        start..(left + self.sw + 1).saturating_sub(self.kw).min(self.ow).max(start)
    }
    fn out_h(&self) -> usize {
        self.hp - self.kh + 1
    }
    fn out_w(&self) -> usize {
        self.ow
    }
    /// Wide-row positions computed per output plane.
    fn len(&self) -> usize {
        (self.out_h() * self.wp).next_multiple_of(ROUND)
    }
    /// Floats per input plane: every tap of every computed position stays inside.
    fn in_plane(&self) -> usize {
        (self.len() + (self.kh - 1) * self.wp + self.kw - 1).next_multiple_of(ROUND)
    }
    /// Every tap's offset in planes of positions `step` floats apart (`LANES` for lane-batched planes).
    fn taps(&self, step: usize) -> Taps {
        let mut t = Taps { inline: [0; INLINE_TAPS], len: self.kh * self.kw, heap: Vec::new() };
        let offsets = (0..self.kh).flat_map(|a| (0..self.kw).map(move |b| (a * self.wp + b) * step));
        if t.len <= INLINE_TAPS {
            for (d, o) in t.inline.iter_mut().zip(offsets) {
                *d = o;
            }
        } else {
            t.heap = offsets.collect();
        }
        t
    }
    /// Writes image `n` of `src` into `planes` (`sc` planes of `in_plane`). Only the image's own positions are
    /// written — the same ones for every image of a geometry — so the padding is zero as long as the buffer was
    /// zeroed once before its first image (the callers take it with `Scratch::zeroed`): zeroing every plane per
    /// image was a memset of 4.6 k floats per conv2 backward-filter image. The channel count is dispatched once,
    /// outside the row loop: with the dispatch inside, LLVM's code for the whole loop got 20× slower even for one
    /// channel (2.3 µs instead of 0.11 µs per 28×28 image).
    #[inline(always)]
    fn fill<S: Simd>(&self, s: S, src: &[f32], n: usize, planes: &mut [f32]) {
        self.fill_strided(s, src, n, planes, self.in_plane())
    }

    /// [`Plane::fill`] with planes `ip` floats apart.
    #[inline(always)]
    fn fill_strided<S: Simd>(&self, s: S, src: &[f32], n: usize, planes: &mut [f32], ip: usize) {
        match self.sc {
            1 => self.fill_c::<S, 1>(s, src, n, planes, ip),
            2 => self.fill_c::<S, 2>(s, src, n, planes, ip),
            3 => self.fill_c::<S, 3>(s, src, n, planes, ip),
            4 => self.fill_c::<S, 4>(s, src, n, planes, ip),
            6 => self.fill_c::<S, 6>(s, src, n, planes, ip),
            8 => self.fill_c::<S, 8>(s, src, n, planes, ip),
            16 => self.fill_c::<S, 16>(s, src, n, planes, ip),
            _ => self.fill_any(src, n, planes, ip),
        }
    }

    /// Rows of image `n` that land in the plane: (source row, its plane row), and the source column range.
    #[inline(always)]
    fn rows<'s>(&self, n: usize, src: &'s [f32]) -> (std::ops::Range<usize>, usize, &'s [f32]) {
        let w0 = usize::try_from(-self.left).unwrap_or(0).min(self.sw);
        let w1 = self.sw.min(offset(self.wp, -self.left).unwrap_or(0)).max(w0);
        let c0 = offset(w0, self.left).unwrap_or(0);
        (w0..w1, c0, &src[n * self.sh * self.sw * self.sc..][..self.sh * self.sw * self.sc])
    }

    #[inline(always)]
    fn fill_c<S: Simd, const C: usize>(&self, s: S, src: &[f32], n: usize, planes: &mut [f32], ip: usize) {
        let (cols, c0, image) = self.rows(n, src);
        let width = cols.len();
        // The whole image lands uncropped (every forward and flagship case): one multi-row conversion.
        let top = usize::try_from(self.top).ok().filter(|&t| t + self.sh <= self.hp);
        if let Some(top) = top.filter(|_| width == self.sw) {
            let at = top * self.wp + c0;
            if self.wp == width {
                // No padding columns (valid geometry): the rows are contiguous on both sides, so the image is one
                // run — one copy for a single channel (not one per row), one deinterleave without row ends.
                if C == 1 {
                    planes[at..][..image.len()].copy_from_slice(image);
                } else {
                    s.deinterleave::<C>(image, &mut planes[at..], ip);
                }
                return;
            }
            if C > 1 {
                s.deinterleave_rows::<C>(image, width, &mut planes[at..], self.wp, ip);
                return;
            }
        }
        for (h, row) in image.chunks_exact(self.sw * C).enumerate() {
            let Some(r) = offset(h, self.top).filter(|&r| r < self.hp) else { continue };
            let run = &row[cols.start * C..][..width * C];
            let at = r * self.wp + c0;
            if C == 1 {
                planes[at..][..width].copy_from_slice(run);
            } else {
                s.deinterleave::<C>(run, &mut planes[at..], ip);
            }
        }
    }

    /// Scratch for `sc` lane-batched planes of `lip` floats (`lanes` floats per position) whose padding — every
    /// position the images do not fill: the rows above and below, the columns beside each row, the tail — is
    /// zero; the images' own positions are left as they are (the fill overwrites them). Zeroing whole planes
    /// was a 393 KB memset per conv2 backward-data call (~4 % of it); the padding is 44 % of that.
    fn lane_planes(&self, lip: usize, lanes: usize) -> Scratch {
        let mut b = Scratch::take(self.sc * lip);
        let Some((top, left)) = self.whole() else {
            b.fill(0.0);
            return b;
        };
        for plane in b.chunks_exact_mut(lip) {
            // Data row r occupies positions (top + r)·wp + left .. + sw; zero the gap before each and after the last.
            let mut start = 0;
            for r in 0..self.sh {
                let row = (top + r) * self.wp + left;
                plane[start * lanes..row * lanes].fill(0.0);
                start = row + self.sw;
            }
            plane[start * lanes..].fill(0.0);
        }
        b
    }
    /// Where the whole source lands in the plane: `(top, left)` when no row or column is cropped (every forward
    /// plane), the condition of [`Plane::fill_lanes`].
    fn whole(&self) -> Option<(usize, usize)> {
        let top = usize::try_from(self.top).ok()?;
        let left = usize::try_from(self.left).ok()?;
        (top + self.sh <= self.hp && left + self.sw <= self.wp).then_some((top, left))
    }
    #[inline(always)]
    fn fill_any(&self, src: &[f32], n: usize, planes: &mut [f32], ip: usize) {
        let sc = self.sc;
        let (cols, c0, image) = self.rows(n, src);
        for (h, row) in image.chunks_exact(self.sw * sc).enumerate() {
            let Some(r) = offset(h, self.top).filter(|&r| r < self.hp) else { continue };
            let run = &row[cols.start * sc..cols.end * sc];
            for ch in 0..sc {
                let dst = &mut planes[ch * ip + r * self.wp + c0..][..cols.len()];
                for (d, px) in dst.iter_mut().zip(run.chunks_exact(sc)) {
                    *d = px[ch];
                }
            }
        }
    }
}

/// Writes one image (`rows × ow × C`, NHWC) from the wide planar result (`C` planes `len` apart, rows `wp`
/// apart), adding the bias.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn store_c<S: Simd, const C: usize>(
    s: S,
    wide: &[f32],
    len: usize,
    wp: usize,
    ow: usize,
    bias: Option<&[f32]>,
    image: &mut [f32],
) {
    let mut b = [0.0f32; C];
    if let Some(bias) = bias {
        b.copy_from_slice(&bias[..C]);
    }
    if wp == ow {
        // Every wide-row position is an output (backward-data's narrowed rows): one contiguous run of pixels.
        s.interleave::<C>(wide, len, b, image);
    } else {
        s.interleave_rows::<C>(wide, wp, len, b, ow, image);
    }
}

#[inline(always)]
fn store_any(wide: &[f32], len: usize, wp: usize, ow: usize, cout: usize, bias: Option<&[f32]>, image: &mut [f32]) {
    for (r, row) in image.chunks_exact_mut(ow * cout).enumerate() {
        for co in 0..cout {
            let b = bias.map_or(0.0, |b| b[co]);
            for (px, &v) in row.chunks_exact_mut(cout).zip(&wide[co * len + r * wp..][..ow]) {
                px[co] = v + b;
            }
        }
    }
}

/// Writes one image from the wide planar result, the channel count dispatched once per image.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn store<S: Simd>(
    s: S,
    wide: &[f32],
    len: usize,
    wp: usize,
    ow: usize,
    cout: usize,
    bias: Option<&[f32]>,
    image: &mut [f32],
) {
    match cout {
        1 => store_c::<S, 1>(s, wide, len, wp, ow, bias, image),
        2 => store_c::<S, 2>(s, wide, len, wp, ow, bias, image),
        3 => store_c::<S, 3>(s, wide, len, wp, ow, bias, image),
        4 => store_c::<S, 4>(s, wide, len, wp, ow, bias, image),
        6 => store_c::<S, 6>(s, wide, len, wp, ow, bias, image),
        8 => store_c::<S, 8>(s, wide, len, wp, ow, bias, image),
        16 => store_c::<S, 16>(s, wide, len, wp, ow, bias, image),
        _ => store_any(wide, len, wp, ow, cout, bias, image),
    }
}

/// Kernels with up to this many taps (7×7 and 8×8) keep their offsets on the stack: a training step must not
/// allocate once warm.
const INLINE_TAPS: usize = 64;

/// Tap offsets, on the stack for kernels of up to [`INLINE_TAPS`] taps.
struct Taps {
    inline: [usize; INLINE_TAPS],
    len: usize,
    heap: Vec<usize>,
}

impl Taps {
    /// No taps.
    fn empty() -> Self {
        Taps { inline: [0; INLINE_TAPS], len: 0, heap: Vec::new() }
    }
}

impl std::ops::Deref for Taps {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        if self.len <= INLINE_TAPS { &self.inline[..self.len] } else { &self.heap }
    }
}

fn offset(i: usize, by: isize) -> Option<usize> {
    i.checked_add_signed(by)
}

/// Runs the planar correlation for every image: `dst[n]` (NHWC, `out_h × out_w × cout`) = wide-row result
/// (+ bias), split over images — the first `groups · LANES` images in lane-batched groups ([`lanes`]), the rest one
/// by one ([`planar`]).
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
) {
    let (len, ip) = (plane.len(), plane.in_plane());
    // Tap offsets for single images, and times LANES for lane groups (built only if there are groups).
    let taps = plane.taps(1);
    let ltaps = if groups > 0 { plane.taps(k.lanes) } else { Taps::empty() };
    let (oh, ow) = (plane.out_h(), plane.out_w());
    let per = oh * ow * cout;
    let lip = ip * k.lanes;
    let out = SharedOut::new(dst);
    let batched = groups * k.lanes;
    // Work units: the lane groups, then the single images.
    let units = groups + (batch - batched);
    split(parts(threads, units), units, |u0, nu| {
        let (mut single, mut grouped) = (None, None);
        for u in u0..u0 + nu {
            let (n, images, bufs, ip, len, taps) = if u < groups {
                // Input planes as the wide rows' with a vector per float, output pixels of cout vectors.
                let b = grouped.get_or_insert_with(|| (plane.lane_planes(lip, k.lanes), Scratch::take(per * k.lanes)));
                (u * k.lanes, k.lanes, b, lip, 0, &ltaps[..])
            } else {
                let b = single.get_or_insert_with(|| (Scratch::zeroed(plane.sc * ip), Scratch::take(cout * len)));
                (batched + u - groups, 1, b, ip, len, &taps[..])
            };
            // SAFETY: each part owns the images of its units in dst; dst outlives the split.
            let dst = unsafe { out.range(n * per, images * per) };
            let mut job = Planar {
                plane,
                src,
                n,
                inp: &mut bufs.0,
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
            unsafe { if images > 1 { (k.direct_lanes)(&mut job) } else { (k.direct_planar)(&mut job) } };
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

pub(crate) fn forward(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<()> {
    let groups = lane_groups(&Plane::input(g), g.out_c(), g.batch(), k.lanes);
    forward_groups(k, g, threads, x, w, bias, y, groups)
}

/// [`forward`] with the first `groups · LANES` images lane-batched.
#[allow(clippy::too_many_arguments)]
fn forward_groups(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    groups: usize,
) -> Result<()> {
    let plane = Plane::input(g);
    let (ci, co, nt) = (g.in_c(), g.out_c(), g.kernel_h() * g.kernel_w());
    let mut wpk = Scratch::take(g.weight_len());
    pack_blocks(co, ci, nt, &mut wpk, |o, i, t| w[(t * ci + i) * co + o]);
    run_planar(k, threads, g.batch(), plane, x, &wpk, co, bias, y, groups);
    Ok(())
}

pub(crate) fn backward_data(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    let groups = lane_groups(&Plane::output_grad(g), g.in_c(), g.batch(), k.lanes);
    backward_data_groups(k, g, threads, dy, w, dx, groups)
}

/// [`backward_data`] with the first `groups · LANES` images lane-batched.
fn backward_data_groups(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    groups: usize,
) -> Result<()> {
    let plane = Plane::output_grad(g);
    let (ci, co, nt) = (g.in_c(), g.out_c(), g.kernel_h() * g.kernel_w());
    let mut wpk = Scratch::take(g.weight_len());
    // Planar input channel = dy channel `o`, planar output channel = dx channel `i`, tap rotated by 180°.
    pack_blocks(ci, co, nt, &mut wpk, |i, o, t| w[((nt - 1 - t) * ci + i) * co + o]);
    run_planar(k, threads, g.batch(), plane, dy, &wpk, ci, None, dx, groups);
    Ok(())
}

pub(crate) fn backward_filter(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) -> Result<()> {
    // The forward's rule: the same planes, garbage positions and floats transposed (conv2: 16.7 % fewer FMAs).
    let groups = lane_groups(&Plane::input(g), g.out_c(), g.batch(), k.lanes);
    backward_filter_groups(k, g, threads, x, dy, dw, groups)
}

/// [`backward_filter`] with the first `groups · LANES` images in lane-batched chunks of `LANES` images (the rest in
/// chunks of [`WGRAD_CHUNK`]).
fn backward_filter_groups(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    groups: usize,
) -> Result<()> {
    let plane = Plane::input(g);
    let (len, ip) = (plane.len(), plane.in_plane());
    let (co, oh, ow, wlen, lanes) = (g.out_c(), g.out_h(), g.out_w(), g.weight_len(), k.lanes);
    let taps = plane.taps(1);
    let ltaps = if groups > 0 { plane.taps(lanes) } else { Taps::empty() };
    let batched = groups * lanes;
    let chunks = groups + (g.batch() - batched).div_ceil(WGRAD_CHUNK);
    let mut partials = Scratch::zeroed(chunks * wlen);
    let shared = SharedOut::new(&mut partials);
    let dplane = Plane { sh: oh, sw: ow, sc: co, top: 0, left: 0, hp: oh, wp: plane.wp, kh: 1, kw: 1, ow };
    // A lane group's dy planes: the wide rows' positions, a vector each (the garbage columns are never read).
    let (lip, ldp) = (ip * lanes, len * lanes);
    split(parts(threads, chunks), chunks, |c0, nc| {
        let (mut single, mut grouped) = (None, None);
        let mut vacc = Scratch::take(wlen * ROUND);
        for chunk in c0..c0 + nc {
            let (images, bufs, in_plane, dy_plane, taps) = if chunk < groups {
                let b = grouped.get_or_insert_with(|| (plane.lane_planes(lip, k.lanes), Scratch::take(co * ldp)));
                (chunk * lanes..(chunk + 1) * lanes, b, lip, ldp, &ltaps[..])
            } else {
                let b = single.get_or_insert_with(|| (Scratch::zeroed(plane.sc * ip), Scratch::zeroed(co * len)));
                let n0 = batched + (chunk - groups) * WGRAD_CHUNK;
                (n0..(n0 + WGRAD_CHUNK).min(g.batch()), b, ip, len, &taps[..])
            };
            // SAFETY: each part owns chunks c0 .. c0 + nc of the partials; they outlive the split.
            let acc = unsafe { shared.range(chunk * wlen, wlen) };
            let mut job = Wgrad {
                plane,
                dplane,
                x,
                dy,
                images,
                inp: &mut bufs.0,
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
            unsafe { if chunk < groups { (k.direct_wgrad_lanes)(&mut job) } else { (k.direct_wgrad)(&mut job) } };
        }
    });
    // Chunks are summed in f64 in chunk order: the same bits for any thread count, and no error growth with the
    // batch (a long f32 chain of all-positive partials would drift; KERNELS.md §1.6).
    for (i, d) in dw.iter_mut().enumerate() {
        *d = partials.chunks_exact(wlen).map(|c| f64::from(c[i])).sum::<f64>() as f32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Padding;
    use crate::isa::Isa;
    use proptest::prelude::*;
    use proptest::test_runner::{RngAlgorithm, TestRng};

    /// Values from proptest's seeded generator, in [−1, 1) (raw pixels 0..255 when `pixels`).
    fn values(len: usize, seed: u64, pixels: bool) -> Vec<f32> {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
        let unit = |rng: &mut TestRng| (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
        (0..len).map(|_| if pixels { (unit(&mut rng) * 256.0).floor() } else { 2.0 * unit(&mut rng) - 1.0 }).collect()
    }

    /// The ISAs this host runs that have a lane-batched direct kernel.
    fn lane_kernels() -> Vec<&'static Kernels> {
        [Isa::Avx512, Isa::Avx2Fma, Isa::Neon, Isa::Portable]
            .into_iter()
            .filter_map(Kernels::for_isa)
            .filter(|k| k.lanes > 1)
            .collect()
    }

    #[test]
    fn lane_groups_follow_the_cost_rule() {
        let conv1 = Conv2dGeometry::spec(32, [28, 28, 1], [5, 5], 3).build().unwrap();
        let conv2 = Conv2dGeometry::spec(32, [24, 24, 3], [5, 5], 6).build().unwrap();
        for lanes in [4, 8, 16] {
            assert_eq!(lane_groups(&Plane::input(&conv1), 3, 32, lanes), 0, "conv1: one input channel");
            assert_eq!(lane_groups(&Plane::input(&conv2), 6, 32, lanes), 32 / lanes, "conv2");
            assert_eq!(lane_groups(&Plane::output_grad(&conv2), 3, 32, lanes), 32 / lanes, "conv2 backward-data");
            assert_eq!(lane_groups(&Plane::output_grad(&conv1), 1, 32, lanes), 0, "conv1 backward-data");
            // Backward-filter takes the forward's rule (the same planes and positions).
        }
        assert_eq!(lane_groups(&Plane::input(&conv2), 6, 32, 1), 0, "no lane-batched kernel");
        let small = Conv2dGeometry::spec(15, [24, 24, 3], [5, 5], 6).build().unwrap();
        assert_eq!(lane_groups(&Plane::input(&small), 6, 15, 16), 0, "fewer images than lanes");
    }

    /// One tile with one and with two chain sets (`D`), positions `xs` apart, every window of a `kh × kw` kernel
    /// whose rows start at `a0` and columns at `b0`: the output bits (channels `len` apart, positions `ys`).
    fn tile_bits<const C: usize, const V: usize, const D: usize>(
        cin: usize,
        (kh, kw): (usize, usize),
        win: Window,
        xs: usize,
        seed: u64,
    ) -> Vec<u32> {
        use crate::simd::Portable;
        let l = <Portable as Simd>::LANES;
        let wp = 16;
        let taps: Vec<usize> = (0..kh).flat_map(|a| (0..kw).map(move |b| (a * wp + b) * l)).collect();
        let in_plane = ((kh + V) * wp + kw) * l * (xs / l).max(1);
        let inp = values(cin * in_plane, seed, false);
        let w = values(cin * taps.len() * C, seed ^ 0x77, false);
        let (len, ys) = (V * 2 * l, 2 * l);
        let mut out = vec![f32::NAN; C * len];
        let at = Tiles { inp: &inp, in_plane, cin, taps: &taps, w: &w, len, xs, ys };
        tile::<Portable, C, V, D>(Portable, &at, win, &mut out, 0, 0);
        (0..C)
            .flat_map(|c| (0..V).flat_map(move |v| c * len + v * ys..c * len + v * ys + l))
            .map(|i| out[i].to_bits())
            .collect()
    }

    #[test]
    fn two_chain_sets_keep_the_bits() {
        // 25 taps: groups of 3 channels (2–3 groups, the last one short or not); 9 taps: groups of 10.
        for (kh, kw, cins) in [(5usize, 5usize, 2..=8usize), (3, 3, 9..=23)] {
            for cin in cins {
                for (a0, a1, b0, b1) in [(0, kh, 0, kw), (1, kh, 0, kw), (0, kh - 1, 1, kw), (2, 3, 2, 3)] {
                    let win = Window { a0, a1, b0, b1, kw };
                    let seed = (cin * 100 + a0 * 10 + b0) as u64;
                    let l = <crate::simd::Portable as Simd>::LANES;
                    for xs in [l, 16 * l] {
                        let ctx = format!("{kh}×{kw}, cin {cin}, window {a0}..{a1} × {b0}..{b1}, xs {xs}");
                        assert_eq!(
                            tile_bits::<3, 2, 1>(cin, (kh, kw), win, xs, seed),
                            tile_bits::<3, 2, 2>(cin, (kh, kw), win, xs, seed),
                            "{ctx}"
                        );
                        assert_eq!(
                            tile_bits::<1, 1, 1>(cin, (kh, kw), win, xs, seed),
                            tile_bits::<1, 1, 2>(cin, (kh, kw), win, xs, seed),
                            "{ctx}"
                        );
                        assert_eq!(
                            tile_bits::<2, 1, 1>(cin, (kh, kw), win, xs, seed),
                            tile_bits::<2, 1, 2>(cin, (kh, kw), win, xs, seed),
                            "{ctx}"
                        );
                    }
                }
            }
        }
    }

    fn case() -> impl Strategy<Value = (Conv2dGeometry, bool, bool, u64)> {
        let pad =
            prop_oneof![
                Just(Padding::Valid),
                Just(Padding::Same),
                (0..=2usize, 0..=2usize, 0..=2usize, 0..=2usize)
                    .prop_map(|(top, bottom, left, right)| Padding::Explicit { top, bottom, left, right }),
            ];
        (
            (4..=37usize, proptest::sample::select(vec![2usize, 3, 6, 7, 8])),
            proptest::sample::select(vec![1usize, 3, 6, 7, 15, 16]),
            (proptest::sample::select(vec![1usize, 3, 5]), proptest::sample::select(vec![1usize, 3, 5])),
            (1..=12usize, 1..=12usize),
            pad,
            (any::<bool>(), any::<bool>(), any::<u64>()),
        )
            .prop_filter_map("valid geometry", |((n, ci), co, (kh, kw), (h, w), pad, (bias, pixels, seed))| {
                let g = Conv2dGeometry::spec(n, [h, w, ci], [kh, kw], co).padding(pad).build().ok()?;
                Some((g, bias, pixels, seed))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// Lane-batched groups (forced, whatever the cost rule says) give the wide-row kernel's bits, which the
        /// reference property (tests/conv.rs) checks: every batch size around the lane counts, padded and valid
        /// planes, with and without bias, one and two threads; forward and backward-data (whose tiles skip other
        /// zero-padding taps than the wide rows' do).
        #[test]
        fn lane_batched_forward_matches_wide_rows_bitwise((g, bias, pixels, seed) in case()) {
            for k in lane_kernels() {
                let x = values(g.input_len(), seed, pixels);
                let w = values(g.weight_len(), seed ^ 0x51, false);
                let b = bias.then(|| values(g.bias_len(), seed ^ 0x3c, false));
                let run = |groups: usize, threads: Threads| {
                    let mut y = vec![f32::NAN; g.output_len()];
                    forward_groups(k, &g, threads, &x, &w, b.as_deref(), &mut y, groups).unwrap();
                    y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                };
                let wide = run(0, Threads::Single);
                let groups = g.batch() / k.lanes;
                prop_assert_eq!(&run(groups, Threads::Single), &wide, "{} {} groups", k.isa(), groups);
                prop_assert_eq!(&run(groups, Threads::Rayon), &wide, "{} {} groups, threads", k.isa(), groups);
            }
        }

        /// Lane-batched backward-filter chunks (forced) pass the f64 reference with K = 8 — the chunks of
        /// `LANES` images sum in another order than the wide rows' chunks of 8, so other bits — and give the
        /// same bits with one and two threads.
        #[test]
        fn lane_batched_backward_filter_matches_reference((g, _bias, pixels, seed) in case()) {
            for k in lane_kernels() {
                let x = values(g.input_len(), seed, pixels);
                let dy = values(g.output_len(), seed ^ 0xa7, false);
                let want = crate::reference::conv2d_backward_filter(&g, &x, &dy).unwrap();
                let groups = g.batch() / k.lanes;
                let run = |threads: Threads| {
                    let mut dw = vec![f32::NAN; g.weight_len()];
                    backward_filter_groups(k, &g, threads, &x, &dy, &mut dw, groups).unwrap();
                    dw
                };
                let single = run(Threads::Single);
                if let Err(e) = want.check(single.iter().copied(), 8.0) {
                    prop_assert!(false, "{} {} groups: {}", k.isa(), groups, e);
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                prop_assert_eq!(bits(&run(Threads::Rayon)), bits(&single), "{} {} groups, threads", k.isa(), groups);
            }
        }

        #[test]
        fn lane_batched_backward_data_matches_wide_rows_bitwise((g, _bias, pixels, seed) in case()) {
            // Lane groups need every image whole in its plane: padding up to kernel − 1 on each side.
            prop_assume!(Plane::output_grad(&g).whole().is_some());
            for k in lane_kernels() {
                let dy = values(g.output_len(), seed, pixels);
                let w = values(g.weight_len(), seed ^ 0x51, false);
                let run = |groups: usize, threads: Threads| {
                    let mut dx = vec![f32::NAN; g.input_len()];
                    backward_data_groups(k, &g, threads, &dy, &w, &mut dx, groups).unwrap();
                    dx.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                };
                let wide = run(0, Threads::Single);
                let groups = g.batch() / k.lanes;
                prop_assert_eq!(&run(groups, Threads::Single), &wide, "{} {} groups", k.isa(), groups);
                prop_assert_eq!(&run(groups, Threads::Rayon), &wide, "{} {} groups, threads", k.isa(), groups);
            }
        }
    }
}
