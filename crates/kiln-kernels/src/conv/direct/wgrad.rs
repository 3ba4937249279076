//! Backward-filter: `dW[t][ci][co] = Σ_p dy[co][p] · x[ci][p + off_t]` in vector partial sums per chunk of images.

// Register arrays are indexed by small constant-bound loops on purpose (they unroll into named registers).
#![allow(clippy::needless_range_loop)]

use super::lanes::LaneFill;
use super::*;
use crate::simd::Simd;
use crate::simd::reduce_add;

#[inline(always)]
pub(super) fn wgrad_block<S: Simd, const C: usize, const T: usize>(s: S, job: &mut Wgrad<'_>, cb: usize, runs: Runs) {
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
pub(super) struct Runs {
    x0: usize,
    pub(super) step: usize,
    pub(super) rows: usize,
    pub(super) n: usize,
}

/// Taps `t0 .. t0 + T` of input channel `ci` against the `C` dy planes of block `cb`: `C × T` vector
/// accumulators over the positions of `runs`, added into `vacc`.
#[inline(always)]
pub(super) fn wgrad_taps<S: Simd, const C: usize, const T: usize>(
    s: S,
    job: &mut Wgrad<'_>,
    cb: usize,
    ci: usize,
    t0: usize,
    runs: Runs,
) {
    let l = S::LANES;
    let plane = &job.inp[job.inp_base + ci * job.in_plane..][..job.in_plane];
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
pub(super) fn wgrad_blocks<S: Simd, const T: usize, const TW: usize>(s: S, job: &mut Wgrad<'_>, runs: Runs) {
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

/// One chunk of images' backward-filter reduction: per image, x (unless the forward kept its planes) and dy to
/// planar form, then every channel block
/// (`T` taps per register row, `TW` for blocks of up to three channels) adds its vector sums into `vacc`; one horizontal sum per weight at the end.
#[inline(always)]
pub(crate) fn wgrad<S: Simd, const T: usize, const TW: usize>(s: S, job: &mut Wgrad<'_>) {
    job.vacc.fill(0.0);
    let runs = Runs { x0: 0, step: 0, rows: 1, n: job.len / S::LANES };
    for (i, n) in job.images.clone().enumerate() {
        if job.kept {
            job.inp_base = i * job.cin * job.in_plane;
        } else {
            job.plane.fill(s, job.x, n, job.inp);
        }
        job.dplane.fill_strided(s, job.dy, n, job.dyw, job.len);
        wgrad_blocks::<S, T, TW>(s, job, runs);
    }
    reduce_chunk(s, job);
}

/// Output rows per lane-batched backward-filter pass: a pass reads `rows + kh − 1` rows of one input plane and
/// `rows` rows of every dy plane (conv2, 16 lanes: 12 + 37 KB), and ends with one read-modify-write of its
/// `C × T` partial-sum vectors. Harness minima, conv2 backward-filter, AVX-512, 12 alternating rounds: 1 row
/// 110.7 µs, 2 rows 94.9, 4 rows 91.3.
pub(super) const WGRAD_LANE_ROWS: usize = 4;

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
        if !job.kept {
            xfill.to(s, &plane, job.x, n0, job.inp, need * plane.sw * plane.sc);
        }
        dfill.to(s, &dplane, job.dy, n0, job.dyw, (r + rows) * dplane.sw * dplane.sc);
        let runs = Runs { x0: r * plane.wp * l, step: plane.wp * l, rows, n: plane.out_w() };
        wgrad_blocks::<S, T, TW>(s, job, runs);
        r += rows;
    }
    reduce_chunk(s, job);
}

/// Writes the chunk's sums (`acc`): one horizontal sum per weight of `vacc`.
#[inline(always)]
pub(super) fn reduce_chunk<S: Simd>(s: S, job: &mut Wgrad<'_>) {
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
