//! One image in wide rows: NHWC → planar, the planar correlation per channel block, planar → NHWC.

use super::tiles::{Tiles, Window};
use super::*;
use crate::simd::Simd;

#[inline(always)]
pub(super) fn planar_block<S: Simd, const C: usize, const V: usize>(s: S, job: &mut Planar<'_>, cb: usize) {
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

/// Writes one image (`rows × ow × C`, NHWC) from the wide planar result (`C` planes `len` apart, rows `wp`
/// apart), adding the bias.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn store_c<S: Simd, const C: usize>(
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
pub(super) fn store_any(
    wide: &[f32],
    len: usize,
    wp: usize,
    ow: usize,
    cout: usize,
    bias: Option<&[f32]>,
    image: &mut [f32],
) {
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
pub(super) fn store<S: Simd>(
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
