//! Direct convolution for small channel counts (KERNELS.md §3): activations are converted at the boundary into
//! zero-padded *planar* images (`[C][Hp][Wp]`), and the output is computed in "wide rows": flat positions
//! `p = oh·Wp + ow` for every `ow < Wp` (not just `< OW`), so tap `(kh, kw)` is the constant offset `kh·Wp + kw`
//! and a whole output plane is one contiguous run of vectors (no masks, no row tails; the `Wp − OW` garbage
//! columns are dropped at the store). A register block holds up to [`BLOCK`] output channels × `V` vectors.
//!
//! Backward-data is the same kernel on `dy` placed `(kh − 1 − pad_top, kw − 1 − pad_left)` into a planar image of
//! `(in_h + kh − 1) × (in_w + kw − 1)` with the weights rotated by 180° and in/out channels swapped. Backward-filter
//! reduces `dW[t][ci][co] = Σ_p dy[co][p] · x[ci][p + off_t]` with `dy` in the same wide-row layout (garbage
//! columns zeroed): `BLOCK` channels × `T` taps of vector accumulators, one horizontal sum per image, images
//! summed in fixed chunks of [`WGRAD_CHUNK`] so that any thread count gives the same bits.

// Register arrays are indexed by small constant-bound loops on purpose (they unroll into named registers).
#![allow(clippy::needless_range_loop)]

use super::igemm::FLUSH;
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
/// Images per backward-filter partial sum.
pub(crate) const WGRAD_CHUNK: usize = 4;

/// One planar valid correlation: `out[co][p] = Σ_{ci, t} w[co][ci][t] · inp[ci][p + taps[t]]` for `p < len`.
pub(crate) struct Planar<'a> {
    /// `cin` planes of `in_plane` floats.
    pub inp: &'a [f32],
    pub in_plane: usize,
    pub cin: usize,
    /// Flat tap offsets.
    pub taps: &'a [usize],
    /// Weights packed per channel block (see [`pack_blocks`]).
    pub w: &'a [f32],
    pub cout: usize,
    /// `cout` planes of `len` floats.
    pub out: &'a mut [f32],
    /// Positions to compute (a multiple of [`ROUND`]).
    pub len: usize,
}

/// One image's backward-filter reduction, added into `acc` (`[tap][ci][co]`, i.e. HWIO).
pub(crate) struct Wgrad<'a> {
    pub inp: &'a [f32],
    pub in_plane: usize,
    pub cin: usize,
    pub taps: &'a [usize],
    /// `cout` planes of `len` floats, garbage positions zero.
    pub dy: &'a [f32],
    pub cout: usize,
    pub len: usize,
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
) {
    let l = S::LANES;
    let mut acc = [[s.splat(0.0); V]; C];
    let nt = taps.len();
    // Long reductions (cin · taps > FLUSH) are summed per input channel into the output plane (block summation,
    // as in the implicit GEMM); the flagship layers (25 and 75 terms) flush at most three times.
    let flush = cin * nt > FLUSH;
    for ci in 0..cin {
        let plane = &inp[ci * in_plane..][..in_plane];
        let wci = &w[ci * nt * C..][..nt * C];
        for (t, &off) in taps.iter().enumerate() {
            let wt = &wci[t * C..][..C];
            let src = &plane[p + off..][..V * l];
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
        }
        if flush {
            for c in 0..C {
                let o = &mut out[c * len + p..][..V * l];
                for v in 0..V {
                    let prev = if ci == 0 { s.splat(0.0) } else { s.load(&o[v * l..]) };
                    s.store(&mut o[v * l..], s.add(prev, acc[c][v]));
                    acc[c][v] = s.splat(0.0);
                }
            }
        }
    }
    if !flush {
        for c in 0..C {
            let o = &mut out[c * len + p..][..V * l];
            for v in 0..V {
                s.store(&mut o[v * l..], acc[c][v]);
            }
        }
    }
}

#[inline(always)]
fn planar_block<S: Simd, const C: usize, const V: usize>(s: S, job: &mut Planar<'_>, cb: usize) {
    let (l, nt) = (S::LANES, job.taps.len());
    let w = &job.w[cb * job.cin * nt..][..C * job.cin * nt];
    let out = &mut job.out[cb * job.len..][..C * job.len];
    let mut p = 0;
    while p + V * l <= job.len {
        tile::<S, C, V>(s, job.inp, job.in_plane, job.cin, job.taps, w, out, job.len, p);
        p += V * l;
    }
    while p + l <= job.len {
        tile::<S, C, 1>(s, job.inp, job.in_plane, job.cin, job.taps, w, out, job.len, p);
        p += l;
    }
}

/// The planar correlation over every channel block (`V` vectors per register row).
#[inline(always)]
pub(crate) fn planar<S: Simd, const V: usize>(s: S, job: &mut Planar<'_>) {
    for (cb, c) in blocks(job.cout) {
        match c {
            1 => planar_block::<S, 1, V>(s, job, cb),
            2 => planar_block::<S, 2, V>(s, job, cb),
            3 => planar_block::<S, 3, V>(s, job, cb),
            4 => planar_block::<S, 4, V>(s, job, cb),
            5 => planar_block::<S, 5, V>(s, job, cb),
            _ => planar_block::<S, BLOCK, V>(s, job, cb),
        }
    }
}

#[inline(always)]
fn wgrad_block<S: Simd, const C: usize, const T: usize>(s: S, job: &mut Wgrad<'_>, cb: usize) {
    let l = S::LANES;
    let nt = job.taps.len();
    for ci in 0..job.cin {
        let plane = &job.inp[ci * job.in_plane..][..job.in_plane];
        for t0 in (0..nt).step_by(T) {
            // A short last group repeats its last tap (in bounds, result discarded).
            let mut offs = [0usize; T];
            for (i, o) in offs.iter_mut().enumerate() {
                *o = job.taps[(t0 + i).min(nt - 1)];
            }
            let mut acc = [[s.splat(0.0); T]; C];
            let mut p = 0;
            while p + l <= job.len {
                let mut x = [s.splat(0.0); T];
                for i in 0..T {
                    x[i] = s.load(&plane[p + offs[i]..]);
                }
                for c in 0..C {
                    let d = s.load(&job.dy[(cb + c) * job.len + p..]);
                    for i in 0..T {
                        acc[c][i] = s.mul_add(d, x[i], acc[c][i]);
                    }
                }
                p += l;
            }
            for i in 0..T.min(nt - t0) {
                for c in 0..C {
                    job.acc[((t0 + i) * job.cin + ci) * job.cout + cb + c] += reduce_add(s, acc[c][i]);
                }
            }
        }
    }
}

/// One image's backward-filter reduction over every channel block (`T` taps per register row).
#[inline(always)]
pub(crate) fn wgrad<S: Simd, const T: usize>(s: S, job: &mut Wgrad<'_>) {
    for (cb, c) in blocks(job.cout) {
        match c {
            1 => wgrad_block::<S, 1, T>(s, job, cb),
            2 => wgrad_block::<S, 2, T>(s, job, cb),
            3 => wgrad_block::<S, 3, T>(s, job, cb),
            4 => wgrad_block::<S, 4, T>(s, job, cb),
            5 => wgrad_block::<S, 5, T>(s, job, cb),
            _ => wgrad_block::<S, BLOCK, T>(s, job, cb),
        }
    }
}

/// Geometry of one planar image: `hp × wp` plane holding a `sh × sw × sc` NHWC source placed at signed offset
/// `(top, left)`, correlated with a `kh × kw` kernel.
#[derive(Clone, Copy)]
struct Plane {
    sh: usize,
    sw: usize,
    sc: usize,
    top: isize,
    left: isize,
    hp: usize,
    wp: usize,
    kh: usize,
    kw: usize,
}

impl Plane {
    fn out_h(&self) -> usize {
        self.hp - self.kh + 1
    }
    fn out_w(&self) -> usize {
        self.wp - self.kw + 1
    }
    /// Wide-row positions computed per output plane.
    fn len(&self) -> usize {
        (self.out_h() * self.wp).next_multiple_of(ROUND)
    }
    /// Floats per input plane: every tap of every computed position stays inside.
    fn in_plane(&self) -> usize {
        (self.len() + (self.kh - 1) * self.wp + self.kw - 1).next_multiple_of(ROUND)
    }
    fn taps(&self) -> Vec<usize> {
        (0..self.kh).flat_map(|a| (0..self.kw).map(move |b| a * self.wp + b)).collect()
    }
    /// Writes image `n` of `src` into `planes` (`sc` planes of `in_plane`), zero elsewhere.
    fn fill(&self, src: &[f32], n: usize, planes: &mut [f32]) {
        planes.fill(0.0);
        let ip = self.in_plane();
        for h in 0..self.sh {
            let Some(r) = offset(h, self.top).filter(|&r| r < self.hp) else { continue };
            for w in 0..self.sw {
                let Some(c) = offset(w, self.left).filter(|&c| c < self.wp) else { continue };
                let px = &src[((n * self.sh + h) * self.sw + w) * self.sc..][..self.sc];
                for (ch, &v) in px.iter().enumerate() {
                    planes[ch * ip + r * self.wp + c] = v;
                }
            }
        }
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
        let mut inp = Scratch::take(plane.sc * ip);
        let mut wide = Scratch::take(cout * len);
        for n in n0..n0 + nn {
            plane.fill(src, n, &mut inp);
            let mut job =
                Planar { inp: &inp, in_plane: ip, cin: plane.sc, taps: &taps, w: wpk, cout, out: &mut wide, len };
            // SAFETY: a `&Kernels` exists only for a supported ISA; the job's buffers were sized by `Plane` for
            // every position and tap it touches (and the kernel indexes through checked slices).
            unsafe { (k.direct_planar)(&mut job) };
            // SAFETY: each part owns images n0 .. n0 + nn of dst; dst outlives the split.
            let yn = unsafe { out.range(n * per, per) };
            for (r, row) in yn.chunks_exact_mut(ow * cout).enumerate() {
                for (c, px) in row.chunks_exact_mut(cout).enumerate() {
                    for (co, v) in px.iter_mut().enumerate() {
                        *v = wide[co * len + r * plane.wp + c] + bias.map_or(0.0, |b| b[co]);
                    }
                }
            }
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
    let plane = Plane {
        sh: g.in_h(),
        sw: g.in_w(),
        sc: g.in_c(),
        top: g.pad_top() as isize,
        left: g.pad_left() as isize,
        hp: g.in_h() + g.pad_top() + g.pad_bottom(),
        wp: g.in_w() + g.pad_left() + g.pad_right(),
        kh: g.kernel_h(),
        kw: g.kernel_w(),
    };
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
    };
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
    let plane = Plane {
        sh: g.in_h(),
        sw: g.in_w(),
        sc: g.in_c(),
        top: g.pad_top() as isize,
        left: g.pad_left() as isize,
        hp: g.in_h() + g.pad_top() + g.pad_bottom(),
        wp: g.in_w() + g.pad_left() + g.pad_right(),
        kh: g.kernel_h(),
        kw: g.kernel_w(),
    };
    let (len, ip, taps) = (plane.len(), plane.in_plane(), plane.taps());
    let (co, oh, ow, wlen) = (g.out_c(), g.out_h(), g.out_w(), g.weight_len());
    let chunks = g.batch().div_ceil(WGRAD_CHUNK);
    let mut partials = Scratch::zeroed(chunks * wlen);
    let shared = SharedOut::new(&mut partials);
    split(parts(threads, chunks), chunks, |c0, nc| {
        let mut inp = Scratch::take(plane.sc * ip);
        let mut dyw = Scratch::zeroed(co * len);
        for chunk in c0..c0 + nc {
            // SAFETY: each part owns chunks c0 .. c0 + nc of the partials; they outlive the split.
            let acc = unsafe { shared.range(chunk * wlen, wlen) };
            for n in chunk * WGRAD_CHUNK..((chunk + 1) * WGRAD_CHUNK).min(g.batch()) {
                plane.fill(x, n, &mut inp);
                // dy in wide rows; positions with ow ≥ OW (and past OH·Wp) stay zero from `zeroed`.
                for r in 0..oh {
                    for c in 0..ow {
                        let px = &dy[((n * oh + r) * ow + c) * co..][..co];
                        for (o, &v) in px.iter().enumerate() {
                            dyw[o * len + r * plane.wp + c] = v;
                        }
                    }
                }
                let mut job = Wgrad {
                    inp: &inp,
                    in_plane: ip,
                    cin: plane.sc,
                    taps: &taps,
                    dy: &dyw,
                    cout: co,
                    len,
                    acc: &mut acc[..],
                };
                // SAFETY: supported ISA (a `&Kernels` exists); buffers sized by `Plane` for every position and
                // tap, and the kernel indexes through checked slices.
                unsafe { (k.direct_wgrad)(&mut job) };
            }
        }
    });
    // Chunks are summed in f64 in chunk order: the same bits for any thread count, and no error growth with the
    // batch (a long f32 chain of all-positive partials would drift; KERNELS.md §1.6).
    for (i, d) in dw.iter_mut().enumerate() {
        *d = partials.chunks_exact(wlen).map(|c| f64::from(c[i])).sum::<f64>() as f32;
    }
    Ok(())
}
