//! The lane-batched rows: `LANES` images with one image per vector lane (see [`lanes`]).

// Register arrays are indexed by small constant-bound loops on purpose (they unroll into named registers).
#![allow(clippy::needless_range_loop)]

use super::tiles::{Tiles, Window};
use super::*;
use crate::simd::Simd;

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
pub(super) const EDGE_ROWS: usize = 4;

/// Output rows `r .. r + nr` of one channel block of [`lanes`]: each row's columns by [`lanes_row`], except the
/// edge columns when the rows take the same kernel rows and fill a block, which go down the rows.
#[inline(always)]
pub(super) fn lanes_rows<S: Simd, const C: usize, const V: usize>(
    s: S,
    job: &mut Planar<'_>,
    cb: usize,
    r: usize,
    nr: usize,
) {
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
pub(super) fn lanes_row<S: Simd, const C: usize, const V: usize>(
    s: S,
    job: &mut Planar<'_>,
    cb: usize,
    r: usize,
    edges: bool,
) {
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
pub(super) struct LaneFill {
    pub(super) m: usize,
    pub(super) c: usize,
    pub(super) x: usize,
    pub(super) cip: usize,
    pub(super) pos: usize,
    pub(super) top: usize,
    pub(super) left: usize,
    pub(super) ip: usize,
}

impl LaneFill {
    /// # Panics
    /// If the source does not land whole ([`Plane::whole`]; the caller checked it once per convolution).
    #[inline(always)]
    pub(super) fn new<S: Simd>(plane: &Plane, ip: usize) -> Self {
        let (top, left) = plane.whole().expect("lane-batched planes hold whole images");
        LaneFill { m: 0, c: 0, x: 0, cip: 0, pos: (top * plane.wp + left) * S::LANES, top, left, ip }
    }

    #[inline(always)]
    pub(super) fn next<S: Simd>(&mut self, plane: &Plane) {
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
    pub(super) fn to<S: Simd>(&mut self, s: S, plane: &Plane, src: &[f32], n0: usize, planes: &mut [f32], upto: usize) {
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
pub(super) const AHEAD: usize = 32;

/// Progress of [`lanes`]' output transpose: NHWC float `m` of every image, of channel `c`; and the biases of
/// floats `c, c + 1, …` for a run starting at channel `c` (`c < cout ≤ 16` in the direct kernel).
pub(super) struct LaneStore {
    pub(super) m: usize,
    pub(super) c: usize,
    pub(super) pattern: [f32; 32],
}

impl LaneStore {
    pub(super) fn new(bias: Option<&[f32]>, cout: usize) -> Self {
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
    pub(super) fn to<S: Simd>(&mut self, s: S, job: &mut Planar<'_>, upto: usize) {
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
