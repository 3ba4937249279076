//! The register tiles of the direct kernel: `C` output channels × `V` positions of FMA chains over a window of
//! kernel taps, shared by the wide rows ([`super::planar`]) and the lane-batched rows ([`super::lanes`]).

// Register arrays are indexed by small constant-bound loops on purpose (they unroll into named registers).
#![allow(clippy::needless_range_loop)]

use super::*;
use crate::simd::Simd;
/// The taps a register tile computes: kernel rows `a0 .. a1` × kernel columns `b0 .. b1` of a `kw`-wide kernel
/// (the taps outside the rectangle meet only zero padding for every position of the tile: their products are exact
/// zeros, and skipping them leaves the sums' bits as they were).
#[derive(Clone, Copy)]
pub(super) struct Window {
    pub(super) a0: usize,
    pub(super) a1: usize,
    pub(super) b0: usize,
    pub(super) b1: usize,
    pub(super) kw: usize,
}

impl Window {
    /// Every tap of a `kh × kw` kernel.
    pub(super) fn all(kh: usize, kw: usize) -> Self {
        Window { a0: 0, a1: kh, b0: 0, b1: kw, kw }
    }
    pub(super) fn is_empty(&self) -> bool {
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
pub(super) fn tile<S: Simd, const C: usize, const V: usize, const D: usize>(
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
pub(super) struct Tiles<'a> {
    pub(super) inp: &'a [f32],
    pub(super) in_plane: usize,
    pub(super) cin: usize,
    pub(super) taps: &'a [usize],
    pub(super) w: &'a [f32],
    pub(super) len: usize,
    pub(super) xs: usize,
    pub(super) ys: usize,
}

impl Tiles<'_> {
    /// A tile of `n` positions — 1, 2 or `N` — from input position `p` and output position `q`, with two chain sets
    /// where [`two_sets`] says so (for `n = N` only if `N_DUAL`: the rows' full tiles keep one set).
    #[inline(always)]
    pub(super) fn run<S: Simd, const C: usize, const N: usize, const N_DUAL: bool>(
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
pub(super) fn two_sets<S: Simd>(chains: usize, cin: usize, taps: usize) -> bool {
    chains < 16 && 2 * chains + 4 <= S::REGISTERS && cin > (CHAIN / taps).max(1)
}
