//! Direct convolution for small channel counts (KERNELS.md §3): activations are converted at the boundary into
//! zero-padded *planar* images (`[C][Hp][Wp]`), and the output is computed in "wide rows": flat positions
//! `p = oh·Wp + ow` for every `ow < Wp` (not just `< OW`), so tap `(kh, kw)` is the constant offset `kh·Wp + kw`
//! and a whole output plane is one contiguous run of vectors (no masks, no row tails; the `Wp − OW` garbage
//! columns are dropped at the store). A register block holds up to [`BLOCK`] output channels × `V` vectors.
//!
//! Backward-data is the same kernel on `dy` placed `(kh − 1 − pad_top, kw − 1 − pad_left)` into a planar image of
//! `(in_h + kh − 1) × (in_w + kw − 1)` with the weights rotated by 180° and in/out channels swapped; a register
//! tile skips the kernel rows that meet only zero-padding rows for all its positions (exact zeros: the sums keep
//! their bits). Backward-filter reduces `dW[t][ci][co] = Σ_p dy[co][p] · x[ci][p + off_t]` with `dy` in the same
//! wide-row layout (garbage columns zeroed): `BLOCK` channels × `T` taps of vector accumulators, one horizontal
//! sum per image, images summed in fixed chunks of [`WGRAD_CHUNK`] so that any thread count gives the same bits.

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
/// Images per backward-filter partial sum.
pub(crate) const WGRAD_CHUNK: usize = 4;

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
    /// Flat tap offsets.
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
    /// Scratch: `cin` planes of `in_plane` and `cout` planes of `len`.
    pub inp: &'a mut [f32],
    pub dyw: &'a mut [f32],
    pub in_plane: usize,
    pub cin: usize,
    pub taps: &'a [usize],
    pub cout: usize,
    pub len: usize,
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

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<S: Simd, const C: usize, const V: usize>(
    s: S,
    inp: &[f32],
    in_plane: usize,
    cin: usize,
    taps: &[usize],
    w: &[f32],
    out: &mut [f32],
    len: usize,
    p: usize,
    nt: usize,
) {
    let l = S::LANES;
    let mut acc = [[s.splat(0.0); V]; C];
    // Block summation: the register chains cover `group` input channels (at most CHAIN terms, or one channel's
    // taps), then are added into the output plane; the first flush stores. conv2 forward (3 × 25 terms) is one
    // chain; its backward-data (6 × 25) is two.
    let group = (CHAIN / nt).max(1);
    for ci in 0..cin {
        let plane = &inp[ci * in_plane..][..in_plane];
        let wci = &w[ci * nt * C..][..taps.len() * C];
        for (t, &off) in taps.iter().enumerate() {
            let wt = &wci[t * C..][..C];
            let src = &plane[p + off..][..V * l];
            // Keep whichever operand set is smaller live across the inner loop: V input vectors or C
            // broadcast weights (C·V accumulators + that set + 1 must fit the register file; 33 spilled).
            if V <= C {
                let mut x = [s.splat(0.0); V];
                for v in 0..V {
                    x[v] = s.load(&src[v * l..]);
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
                    let x = s.load(&src[v * l..]);
                    for c in 0..C {
                        acc[c][v] = s.mul_add(x, wv[c], acc[c][v]);
                    }
                }
            }
        }
        if (ci + 1) % group == 0 || ci + 1 == cin {
            let first = ci < group;
            for c in 0..C {
                let o = &mut out[c * len + p..][..V * l];
                for v in 0..V {
                    let sum = if first { acc[c][v] } else { s.add(s.load(&o[v * l..]), acc[c][v]) };
                    s.store(&mut o[v * l..], sum);
                    acc[c][v] = s.splat(0.0);
                }
            }
        }
    }
}

#[inline(always)]
fn planar_block<S: Simd, const C: usize, const V: usize>(s: S, job: &mut Planar<'_>, cb: usize) {
    let (l, nt) = (S::LANES, job.taps.len());
    let w = &job.w[cb * job.cin * nt..][..C * job.cin * nt];
    let out = &mut job.out[cb * job.len..][..C * job.len];
    // Only planes with zero-padding rows skip taps (forward "valid" has none: no per-tile divisions then).
    let plane = job.plane;
    let skips = plane.pads_rows();
    let live = |p: usize, n: usize| if skips { plane.live_taps(p, n) } else { 0..nt };
    let mut p = 0;
    while p + V * l <= job.len {
        let live = live(p, V * l);
        let (taps, w) = (&job.taps[live.clone()], &w[live.start * C..]);
        tile::<S, C, V>(s, &*job.inp, job.in_plane, job.cin, taps, w, out, job.len, p, nt);
        p += V * l;
    }
    // Remainder in pairs, then singles: a one-vector tile does one FMA per broadcast weight (conv2 forward: 30
    // vectors = 7 × 4 + 2).
    while V > 2 && p + 2 * l <= job.len {
        let live = live(p, 2 * l);
        let (taps, w) = (&job.taps[live.clone()], &w[live.start * C..]);
        tile::<S, C, 2>(s, &*job.inp, job.in_plane, job.cin, taps, w, out, job.len, p, nt);
        p += 2 * l;
    }
    while p + l <= job.len {
        let live = live(p, l);
        let (taps, w) = (&job.taps[live.clone()], &w[live.start * C..]);
        tile::<S, C, 1>(s, &*job.inp, job.in_plane, job.cin, taps, w, out, job.len, p, nt);
        p += l;
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

#[inline(always)]
fn wgrad_block<S: Simd, const C: usize, const T: usize>(s: S, job: &mut Wgrad<'_>, cb: usize) {
    let nt = job.taps.len();
    for ci in 0..job.cin {
        let mut t0 = 0;
        while t0 + T <= nt {
            wgrad_taps::<S, C, T>(s, job, cb, ci, t0);
            t0 += T;
        }
        // The last, short group of taps with exactly the taps left (repeating a tap to fill `T` registers would
        // compute 27 taps for conv2's 25 at T = 3).
        match nt - t0 {
            0 => {}
            1 => wgrad_taps::<S, C, 1>(s, job, cb, ci, t0),
            2 => wgrad_taps::<S, C, 2>(s, job, cb, ci, t0),
            3 => wgrad_taps::<S, C, 3>(s, job, cb, ci, t0),
            4 => wgrad_taps::<S, C, 4>(s, job, cb, ci, t0),
            5 => wgrad_taps::<S, C, 5>(s, job, cb, ci, t0),
            6 => wgrad_taps::<S, C, 6>(s, job, cb, ci, t0),
            _ => {
                for t in t0..nt {
                    wgrad_taps::<S, C, 1>(s, job, cb, ci, t);
                }
            }
        }
    }
}

/// Taps `t0 .. t0 + T` of input channel `ci` against the `C` dy planes of block `cb`: `C × T` vector
/// accumulators over every wide-row position, added into `vacc`.
#[inline(always)]
fn wgrad_taps<S: Simd, const C: usize, const T: usize>(s: S, job: &mut Wgrad<'_>, cb: usize, ci: usize, t0: usize) {
    let l = S::LANES;
    let plane = &job.inp[ci * job.in_plane..][..job.in_plane];
    let dyw = &job.dyw[..job.cout * job.len];
    let mut acc = [[s.splat(0.0); T]; C];
    // Every window the loop reads, checked once: T input windows and C dy rows of `len` floats.
    let len = job.len - job.len % l;
    let mut xp = [plane.as_ptr(); T];
    for i in 0..T {
        xp[i] = plane[job.taps[t0 + i]..][..len].as_ptr();
    }
    let mut dp = [dyw.as_ptr(); C];
    for c in 0..C {
        dp[c] = dyw[(cb + c) * job.len..][..len].as_ptr();
    }
    let mut p = 0;
    while p + l <= len {
        let mut x = [s.splat(0.0); T];
        for i in 0..T {
            // SAFETY: p + LANES <= len, and each window holds len floats (sliced above).
            x[i] = unsafe { s.load_ptr(xp[i].add(p)) };
        }
        for c in 0..C {
            // SAFETY: as above, for the dy rows.
            let d = unsafe { s.load_ptr(dp[c].add(p)) };
            for i in 0..T {
                acc[c][i] = s.mul_add(d, x[i], acc[c][i]);
            }
        }
        p += l;
    }
    for i in 0..T {
        for c in 0..C {
            let slot = &mut job.vacc[(((t0 + i) * job.cin + ci) * job.cout + cb + c) * ROUND..][..l];
            s.store(slot, s.add(s.load(slot), acc[c][i]));
        }
    }
}

/// One chunk of images' backward-filter reduction: per image, x and dy to planar form, then every channel block
/// (`T` taps per register row, `TW` for blocks of up to three channels) adds its vector sums into `vacc`; one horizontal sum per weight at the end.
#[inline(always)]
pub(crate) fn wgrad<S: Simd, const T: usize, const TW: usize>(s: S, job: &mut Wgrad<'_>) {
    job.vacc.fill(0.0);
    for n in job.images.clone() {
        job.plane.fill(s, job.x, n, job.inp);
        job.dplane.fill_strided(s, job.dy, n, job.dyw, job.len);
        for (cb, c) in blocks(job.cout) {
            match c {
                1 => wgrad_block::<S, 1, TW>(s, job, cb),
                2 => wgrad_block::<S, 2, TW>(s, job, cb),
                3 => wgrad_block::<S, 3, TW>(s, job, cb),
                4 => wgrad_block::<S, 4, T>(s, job, cb),
                5 => wgrad_block::<S, 5, T>(s, job, cb),
                _ => wgrad_block::<S, BLOCK, T>(s, job, cb),
            }
        }
    }
    for (a, v) in job.acc.iter_mut().zip(job.vacc.chunks_exact(ROUND)) {
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
    /// The taps (a contiguous range, kernel rows being the outer index) that can meet a nonzero input for the
    /// `n` wide-row positions from `p`: a kernel row whose input rows are all zero padding for every output row of
    /// the run is skipped, since its products are exact zeros that leave the sums unchanged bit for bit.
    /// Backward-data's full padding makes these `(kh − 1)·kh` of the `kh·out_h` row pairs (conv2: 20 of 120).
    #[inline(always)]
    fn live_taps(&self, p: usize, n: usize) -> std::ops::Range<usize> {
        // Plane rows that can hold data: the source rows placed at `top` (clipped to the plane).
        let d0 = usize::try_from(self.top).unwrap_or(0).min(self.hp);
        let d1 = usize::try_from(self.top + self.sh as isize).unwrap_or(0).min(self.hp);
        let (r0, r1) = (p / self.wp, (p + n - 1) / self.wp);
        // Kernel row k is live if r + k ∈ [d0, d1) for some output row r ∈ [r0, r1].
        let k0 = d0.saturating_sub(r1).min(self.kh);
        let k1 = d1.saturating_sub(r0).min(self.kh).max(k0);
        k0 * self.kw..k1 * self.kw
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
    fn taps(&self) -> Taps {
        let mut t = Taps { inline: [0; INLINE_TAPS], len: self.kh * self.kw, heap: Vec::new() };
        let offsets = (0..self.kh).flat_map(|a| (0..self.kw).map(move |b| a * self.wp + b));
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
/// (+ bias), split over images.
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
) {
    let (len, ip) = (plane.len(), plane.in_plane());
    let taps = plane.taps();
    let (oh, ow) = (plane.out_h(), plane.out_w());
    let per = oh * ow * cout;
    let out = SharedOut::new(dst);
    split(parts(threads, batch), batch, |n0, nn| {
        let mut inp = Scratch::zeroed(plane.sc * ip);
        let mut wide = Scratch::take(cout * len);
        for n in n0..n0 + nn {
            // SAFETY: each part owns images n0 .. n0 + nn of dst; dst outlives the split.
            let dst = unsafe { out.range(n * per, per) };
            let mut job = Planar {
                plane,
                src,
                n,
                inp: &mut inp,
                in_plane: ip,
                cin: plane.sc,
                taps: &taps,
                w: wpk,
                cout,
                out: &mut wide,
                len,
                bias,
                dst,
            };
            // SAFETY: a `&Kernels` exists only for a supported ISA; the job's buffers were sized by `Plane` for
            // every position and tap it touches (and the kernel indexes through checked slices).
            unsafe { (k.direct_planar)(&mut job) };
        }
    });
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
    let plane = Plane::input(g);
    let (ci, co, nt) = (g.in_c(), g.out_c(), g.kernel_h() * g.kernel_w());
    let mut wpk = Scratch::take(g.weight_len());
    pack_blocks(co, ci, nt, &mut wpk, |o, i, t| w[(t * ci + i) * co + o]);
    run_planar(k, threads, g.batch(), plane, x, &wpk, co, bias, y);
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
    let (kh, kw) = (g.kernel_h(), g.kernel_w());
    let plane = Plane {
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
    .narrowed();
    let (ci, co, nt) = (g.in_c(), g.out_c(), kh * kw);
    let mut wpk = Scratch::take(g.weight_len());
    // Planar input channel = dy channel `o`, planar output channel = dx channel `i`, tap rotated by 180°.
    pack_blocks(ci, co, nt, &mut wpk, |i, o, t| w[((nt - 1 - t) * ci + i) * co + o]);
    run_planar(k, threads, g.batch(), plane, dy, &wpk, ci, None, dx);
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
    let plane = Plane::input(g);
    let (len, ip, taps) = (plane.len(), plane.in_plane(), plane.taps());
    let (co, oh, ow, wlen) = (g.out_c(), g.out_h(), g.out_w(), g.weight_len());
    let chunks = g.batch().div_ceil(WGRAD_CHUNK);
    let mut partials = Scratch::zeroed(chunks * wlen);
    let shared = SharedOut::new(&mut partials);
    let dplane = Plane { sh: oh, sw: ow, sc: co, top: 0, left: 0, hp: oh, wp: plane.wp, kh: 1, kw: 1, ow };
    split(parts(threads, chunks), chunks, |c0, nc| {
        let mut inp = Scratch::zeroed(plane.sc * ip);
        let mut dyw = Scratch::zeroed(co * len);
        let mut vacc = Scratch::take(wlen * ROUND);
        for chunk in c0..c0 + nc {
            // SAFETY: each part owns chunks c0 .. c0 + nc of the partials; they outlive the split.
            let acc = unsafe { shared.range(chunk * wlen, wlen) };
            let mut job = Wgrad {
                plane,
                dplane,
                x,
                dy,
                images: chunk * WGRAD_CHUNK..((chunk + 1) * WGRAD_CHUNK).min(g.batch()),
                inp: &mut inp,
                dyw: &mut dyw,
                in_plane: ip,
                cin: plane.sc,
                taps: &taps,
                cout: co,
                len,
                vacc: &mut vacc,
                acc,
            };
            // SAFETY: supported ISA (a `&Kernels` exists); buffers sized by `Plane` for every position and tap,
            // and the kernel indexes through checked slices.
            unsafe { (k.direct_wgrad)(&mut job) };
        }
    });
    // Chunks are summed in f64 in chunk order: the same bits for any thread count, and no error growth with the
    // batch (a long f32 chain of all-positive partials would drift; KERNELS.md §1.6).
    for (i, d) in dw.iter_mut().enumerate() {
        *d = partials.chunks_exact(wlen).map(|c| f64::from(c[i])).sum::<f64>() as f32;
    }
    Ok(())
}
