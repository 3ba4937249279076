//! Indirect ("implicit") GEMM over NHWC (Dukhan, "The Indirect Convolution Algorithm"; KERNELS.md §3): a register
//! tile of `MR` destination pixels × `NV` vectors of channels; the reduction runs over (tap, source channel),
//! reading each pixel's source row through a [`Gather`] (a row of zeros where the tap falls into padding), so no
//! column matrix is ever built. Weights are packed once per call into `NR`-wide panels `[panel][tap][k][NR]`.
//!
//! - Forward: destination = output pixels, source = `x`, `k` = input channel.
//! - Backward-data: destination = input pixels, source = `dy`; tap `(kh, kw)` of input pixel `(ih, iw)` reads
//!   output pixel `((ih + pad_top − kh·dil) / stride, …)` when that division is exact and in range, else zeros —
//!   any stride, padding and dilation; `k` = output channel, weights transposed per tap.
//! - Backward-filter: for each tap, `dW[tap] = Xᵀ_tap · dy` as a register tile of `MR` input channels × `NV`
//!   vectors of output channels, reducing over every pixel of the batch in fixed chunks of [`WGRAD_CHUNK`]
//!   pixels whose partial sums are added in f64, so each weight is computed by one thread in one fixed order.

// Register arrays are indexed by small constant-bound loops on purpose (they unroll into named registers).
#![allow(clippy::needless_range_loop)]

use super::scratch::{Scratch, SharedOut};
use super::{parts, split};
use crate::dispatch::Kernels;
use crate::error::Result;
use crate::gemm::Threads;
use crate::geometry::Conv2dGeometry;
use crate::simd::Simd;

/// Longest chain of products summed into one register before it is added to the running total. A single f32
/// chain over a long all-positive reduction drifts: the property test caught K = 8.2 at 425 terms (tap × channel)
/// with one accumulator; block summation keeps the error at O(FLUSH + terms / FLUSH).
pub(crate) const FLUSH: usize = 32;

/// Pixels per register-accumulated partial sum in backward-filter.
pub(crate) const WGRAD_CHUNK: usize = 256;

/// How a destination pixel and a tap select a source row.
#[derive(Clone, Copy)]
pub(crate) struct Gather {
    /// Destination grid per image.
    pub dst_h: usize,
    pub dst_w: usize,
    /// Source image (NHWC) dimensions.
    pub src_h: usize,
    pub src_w: usize,
    pub src_c: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    pub dilation: (usize, usize),
    pub pad: (usize, usize),
    /// `false`: forward (source = x). `true`: transposed (source = dy, destination = input pixels).
    pub transposed: bool,
}

impl Gather {
    fn forward(g: &Conv2dGeometry) -> Self {
        Gather {
            dst_h: g.out_h(),
            dst_w: g.out_w(),
            src_h: g.in_h(),
            src_w: g.in_w(),
            src_c: g.in_c(),
            kw: g.kernel_w(),
            stride: (g.stride_h(), g.stride_w()),
            dilation: (g.dilation_h(), g.dilation_w()),
            pad: (g.pad_top(), g.pad_left()),
            transposed: false,
        }
    }

    fn transposed(g: &Conv2dGeometry) -> Self {
        Gather {
            dst_h: g.in_h(),
            dst_w: g.in_w(),
            src_h: g.out_h(),
            src_w: g.out_w(),
            src_c: g.out_c(),
            transposed: true,
            ..Gather::forward(g)
        }
    }

    #[inline(always)]
    fn axis(&self, d: usize, k: usize, stride: usize, dil: usize, pad: usize, src: usize) -> Option<usize> {
        if self.transposed {
            let num = (d + pad).checked_sub(k * dil)?;
            (num % stride == 0).then_some(num / stride).filter(|&o| o < src)
        } else {
            (d * stride + k * dil).checked_sub(pad).filter(|&i| i < src)
        }
    }

    /// Image and destination coordinates of flat pixel `pix`.
    #[inline(always)]
    pub(crate) fn decode(&self, pix: usize) -> (usize, usize, usize) {
        let per = self.dst_h * self.dst_w;
        let (n, r) = (pix / per, pix % per);
        (n, r / self.dst_w, r % self.dst_w)
    }

    /// Offset of the source row for the decoded destination pixel `(n, a, b)` and tap `(kh, kw)`.
    #[inline(always)]
    pub(crate) fn source(&self, (n, a, b): (usize, usize, usize), kh: usize, kw: usize) -> Option<usize> {
        let h = self.axis(a, kh, self.stride.0, self.dilation.0, self.pad.0, self.src_h)?;
        let w = self.axis(b, kw, self.stride.1, self.dilation.1, self.pad.1, self.src_w)?;
        Some(((n * self.src_h + h) * self.src_w + w) * self.src_c)
    }
}

/// Destination pixels `p0 .. p0 + dst.len() / cout` of an indirect GEMM.
pub(crate) struct Igemm<'a> {
    pub src: &'a [f32],
    pub gather: Gather,
    /// Packed weights `[panel][tap][k][nr]`, `nr` = the ISA's `NV · LANES`.
    pub w: &'a [f32],
    pub taps: usize,
    pub cout: usize,
    pub bias: Option<&'a [f32]>,
    /// At least `gather.src_c` zeros.
    pub zeros: &'a [f32],
    pub p0: usize,
    pub dst: &'a mut [f32],
}

#[inline(always)]
pub(crate) fn igemm<S: Simd, const MR: usize, const NV: usize>(s: S, job: &mut Igemm<'_>) {
    let (l, kd, taps, cout) = (S::LANES, job.gather.src_c, job.taps, job.cout);
    let nr = NV * l;
    let pixels = job.dst.len() / cout;
    for (panel, wp) in job.w.chunks_exact(taps * kd * nr).enumerate() {
        let c0 = panel * nr;
        let width = nr.min(cout - c0);
        for m0 in (0..pixels).step_by(MR) {
            let rows = MR.min(pixels - m0);
            let mut acc = [[s.splat(0.0); NV]; MR];
            let mut part = [[s.splat(0.0); NV]; MR];
            let mut at = [(0usize, 0usize, 0usize); MR];
            for (m, d) in at.iter_mut().enumerate().take(rows) {
                *d = job.gather.decode(job.p0 + m0 + m);
            }
            for t in 0..taps {
                let (kh, kw) = (t / job.gather.kw, t % job.gather.kw);
                let mut src: [&[f32]; MR] = [&job.zeros[..kd]; MR];
                for (m, r) in src.iter_mut().enumerate().take(rows) {
                    if let Some(o) = job.gather.source(at[m], kh, kw) {
                        *r = &job.src[o..][..kd];
                    }
                }
                let wt = &wp[t * kd * nr..][..kd * nr];
                for k0 in (0..kd).step_by(FLUSH) {
                    for k in k0..(k0 + FLUSH).min(kd) {
                        let wk = &wt[k * nr..][..nr];
                        let mut b = [s.splat(0.0); NV];
                        for v in 0..NV {
                            b[v] = s.load(&wk[v * l..]);
                        }
                        for m in 0..MR {
                            let a = s.splat(src[m][k]);
                            for v in 0..NV {
                                part[m][v] = s.mul_add(a, b[v], part[m][v]);
                            }
                        }
                    }
                    // Two-level summation: a chain of at most FLUSH products, then one add into the total.
                    for m in 0..MR {
                        for v in 0..NV {
                            acc[m][v] = s.add(acc[m][v], part[m][v]);
                            part[m][v] = s.splat(0.0);
                        }
                    }
                }
            }
            for (m, accm) in acc.iter().enumerate().take(rows) {
                let out = &mut job.dst[(m0 + m) * cout + c0..][..width];
                let mut buf = [0.0f32; 64];
                for v in 0..NV {
                    s.store(&mut buf[v * l..], accm[v]);
                }
                for (j, o) in out.iter_mut().enumerate() {
                    *o = buf[j] + job.bias.map_or(0.0, |b| b[c0 + j]);
                }
            }
        }
    }
}

/// One backward-filter block: taps `t`, input channels `ci0 .. ci0 + MR`, output panel `c0 .. c0 + NV·LANES`.
pub(crate) struct IgemmWgrad<'a> {
    pub x: &'a [f32],
    pub dy: &'a [f32],
    pub gather: Gather,
    pub pixels: usize,
    pub cout: usize,
    pub tap: usize,
    pub ci0: usize,
    pub c0: usize,
    /// `MR × NV·LANES` results (row = input channel), overwritten.
    pub out: &'a mut [f32],
}

#[inline(always)]
pub(crate) fn igemm_wgrad<S: Simd, const MR: usize, const NV: usize>(s: S, job: &mut IgemmWgrad<'_>) {
    let (l, cin, cout) = (S::LANES, job.gather.src_c, job.cout);
    let nr = NV * l;
    let (rows, width) = (MR.min(cin - job.ci0), nr.min(cout - job.c0));
    let (kh, kw) = (job.tap / job.gather.kw, job.tap % job.gather.kw);
    let mut total = [[0.0f64; 64]; MR];
    let mut at = job.gather.decode(0);
    for p0 in (0..job.pixels).step_by(WGRAD_CHUNK) {
        let mut acc = [[s.splat(0.0); NV]; MR];
        for p in p0..(p0 + WGRAD_CHUNK).min(job.pixels) {
            // Walk (n, a, b) incrementally instead of dividing per pixel.
            let here = at;
            at.2 += 1;
            if at.2 == job.gather.dst_w {
                at = (at.0, at.1 + 1, 0);
                if at.1 == job.gather.dst_h {
                    at = (at.0 + 1, 0, 0);
                }
            }
            let Some(o) = job.gather.source(here, kh, kw) else { continue };
            let xr = &job.x[o + job.ci0..][..rows];
            let dr = &job.dy[p * cout + job.c0..][..width];
            let mut b = [s.splat(0.0); NV];
            if width == nr {
                for v in 0..NV {
                    b[v] = s.load(&dr[v * l..]);
                }
            } else {
                let mut buf = [0.0f32; 64];
                buf[..width].copy_from_slice(dr);
                for v in 0..NV {
                    b[v] = s.load(&buf[v * l..]);
                }
            }
            for m in 0..rows.min(MR) {
                let a = s.splat(xr[m]);
                for v in 0..NV {
                    acc[m][v] = s.mul_add(a, b[v], acc[m][v]);
                }
            }
        }
        for m in 0..rows {
            let mut buf = [0.0f32; 64];
            for v in 0..NV {
                s.store(&mut buf[v * l..], acc[m][v]);
            }
            for j in 0..width {
                total[m][j] += f64::from(buf[j]);
            }
        }
    }
    for m in 0..rows {
        for j in 0..width {
            job.out[m * nr + j] = total[m][j] as f32;
        }
    }
}

/// Floats of the weights packed for `nr`-wide panels: forward (`kd = in_c` rows to `out_c` columns) or
/// backward-data (`out_c` to `in_c`).
pub(crate) fn packed_len(g: &Conv2dGeometry, nr: usize, backward_data: bool) -> usize {
    let (ci, co, taps) = (g.in_c(), g.out_c(), g.kernel_h() * g.kernel_w());
    let (kd, cout) = if backward_data { (co, ci) } else { (ci, co) };
    cout.div_ceil(nr) * taps * kd * nr
}

/// The forward's weights packed for `nr`-wide panels ([`packed_len`] floats).
pub(crate) fn pack_forward(g: &Conv2dGeometry, nr: usize, w: &[f32], out: &mut [f32]) {
    let (ci, co, taps) = (g.in_c(), g.out_c(), g.kernel_h() * g.kernel_w());
    pack(taps, ci, co, nr, out, |t, i, o| w[(t * ci + i) * co + o]);
}

/// Backward-data's weights (channels swapped) packed for `nr`-wide panels ([`packed_len`] floats).
pub(crate) fn pack_backward_data(g: &Conv2dGeometry, nr: usize, w: &[f32], out: &mut [f32]) {
    let (ci, co, taps) = (g.in_c(), g.out_c(), g.kernel_h() * g.kernel_w());
    pack(taps, co, ci, nr, out, |t, o, i| w[(t * ci + i) * co + o]);
}

/// Packs `get(tap, k, c)` into `[panel][tap][k][nr]` panels of `w`, zero-padding the last panel.
fn pack(taps: usize, kd: usize, cout: usize, nr: usize, w: &mut [f32], get: impl Fn(usize, usize, usize) -> f32) {
    let panels = cout.div_ceil(nr);
    w.fill(0.0);
    for panel in 0..panels {
        for t in 0..taps {
            for k in 0..kd {
                let row = &mut w[((panel * taps + t) * kd + k) * nr..][..nr];
                for (j, v) in row.iter_mut().enumerate().take(cout.saturating_sub(panel * nr)) {
                    *v = get(t, k, panel * nr + j);
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    k: &Kernels,
    threads: Threads,
    gather: Gather,
    src: &[f32],
    w: &[f32],
    taps: usize,
    cout: usize,
    bias: Option<&[f32]>,
    dst: &mut [f32],
) {
    let mr = k.conv.igemm_tile.0;
    let pixels = dst.len() / cout;
    let tiles = pixels.div_ceil(mr);
    let out = SharedOut::new(dst);
    split(parts(threads, tiles), tiles, |t0, nt| {
        let zeros = Scratch::zeroed(gather.src_c);
        let p0 = t0 * mr;
        let np = (nt * mr).min(pixels - p0);
        // SAFETY: each part owns the pixels of its tiles; dst outlives the split.
        let d = unsafe { out.range(p0 * cout, np * cout) };
        let mut job = Igemm { src, gather, w, taps, cout, bias, zeros: &zeros, p0, dst: d };
        // SAFETY: supported ISA (a `&Kernels` exists); the weights were packed for this ISA's panel width and the
        // kernel indexes through checked slices.
        unsafe { (k.conv.igemm)(&mut job) };
    });
}

/// Forward with weights packed by [`pack_forward`] for this ISA's panel width.
pub(crate) fn forward(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    x: &[f32],
    wp: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let taps = g.kernel_h() * g.kernel_w();
    run(k, threads, Gather::forward(g), x, wp, taps, g.out_c(), bias, y);
}

/// Backward-data with weights packed by [`pack_backward_data`] for this ISA's panel width.
pub(crate) fn backward_data(k: &Kernels, g: &Conv2dGeometry, threads: Threads, dy: &[f32], wp: &[f32], dx: &mut [f32]) {
    let taps = g.kernel_h() * g.kernel_w();
    run(k, threads, Gather::transposed(g), dy, wp, taps, g.in_c(), None, dx);
}

pub(crate) fn backward_filter(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) -> Result<()> {
    let (ci, co, taps) = (g.in_c(), g.out_c(), g.kernel_h() * g.kernel_w());
    let (mr, nr) = k.conv.igemm_tile;
    let gather = Gather::forward(g);
    let pixels = g.batch() * g.out_h() * g.out_w();
    let (ci_tiles, panels) = (ci.div_ceil(mr), co.div_ceil(nr));
    let blocks = taps * ci_tiles * panels;
    let mut results = Scratch::take(blocks * mr * nr);
    let shared = SharedOut::new(&mut results);
    split(parts(threads, blocks), blocks, |b0, nb| {
        for b in b0..b0 + nb {
            let (tap, rest) = (b / (ci_tiles * panels), b % (ci_tiles * panels));
            // SAFETY: each block owns its own `mr × nr` slot of the results; they outlive the split.
            let out = unsafe { shared.range(b * mr * nr, mr * nr) };
            let mut job = IgemmWgrad {
                x,
                dy,
                gather,
                pixels,
                cout: co,
                tap,
                ci0: (rest / panels) * mr,
                c0: (rest % panels) * nr,
                out,
            };
            // SAFETY: supported ISA (a `&Kernels` exists); the kernel indexes through checked slices.
            unsafe { (k.conv.igemm_wgrad)(&mut job) };
        }
    });
    for b in 0..blocks {
        let (tap, rest) = (b / (ci_tiles * panels), b % (ci_tiles * panels));
        let (ci0, c0) = ((rest / panels) * mr, (rest % panels) * nr);
        for m in 0..mr.min(ci - ci0) {
            let src = &results[(b * mr + m) * nr..][..nr.min(co - c0)];
            dw[(tap * ci + ci0 + m) * co + c0..][..src.len()].copy_from_slice(src);
        }
    }
    Ok(())
}
