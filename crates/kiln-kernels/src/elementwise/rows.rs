//! Row-wise kernels on row-major matrices: bias addition and column sums (bias gradients).

use crate::simd::Simd;

/// `y[r·c + j] += bias[j]`.
#[inline(always)]
pub(crate) fn bias_add<S: Simd>(s: S, channels: usize, y: &mut [f32], bias: &[f32]) {
    for row in y.chunks_exact_mut(channels) {
        let n = S::LANES;
        let mut j = 0;
        while j + n <= channels {
            let v = s.add(s.load(&row[j..]), s.load(&bias[j..]));
            s.store(&mut row[j..], v);
            j += n;
        }
        // Tail: scalar adds round exactly like the vector lanes.
        for (r, b) in row[j..].iter_mut().zip(&bias[j..]) {
            *r += *b;
        }
    }
}

/// Partial sums per column: 8 interleaved accumulators (rows r ≡ 0..7 mod 8), so an all-positive reduction over
/// many rows keeps its error within K = 8 (KERNELS.md §1.6).
const PARTIALS: usize = 8;

/// Interleaved accumulator sets of the narrow-matrix path of [`column_sums`].
const NARROW_SETS: usize = 4;

/// `db[j] = Σ_r dy[r·c + j]`.
#[inline(always)]
pub(crate) fn column_sums<S: Simd>(s: S, channels: usize, dy: &[f32], db: &mut [f32]) {
    let n = S::LANES;
    if channels < n {
        return column_sums_narrow(s, channels, dy, db);
    }
    let mut j = 0;
    while j < channels {
        let width = n.min(channels - j);
        let mut acc = [s.splat(0.0); PARTIALS];
        let mut buf = [0.0f32; 16];
        for (r, row) in dy.chunks_exact(channels).enumerate() {
            let v = if width == n {
                s.load(&row[j..])
            } else {
                buf[..width].copy_from_slice(&row[j..j + width]);
                s.load(&buf)
            };
            acc[r % PARTIALS] = s.add(acc[r % PARTIALS], v);
        }
        // Pairwise combination of the partials.
        let mut step = 1;
        while step < PARTIALS {
            for i in (0..PARTIALS).step_by(2 * step) {
                acc[i] = s.add(acc[i], acc[i + step]);
            }
            step *= 2;
        }
        let mut out = [0.0f32; 16];
        s.store(&mut out, acc[0]);
        db[j..j + width].copy_from_slice(&out[..width]);
        j += width;
    }
}

/// Column sums for fewer channels than lanes (conv1's bias gradient is 18432 × 3). A block of `LANES` rows is
/// exactly `channels` vectors, and lane `l` of vector `k` of every block holds column `(k·LANES + l) mod channels`,
/// so whole blocks are accumulated without per-row work (one lane per column in the row-wise path used 3 of 16
/// lanes and copied every row: ~335 Melem/s on every ISA). Blocks alternate between `NARROW_SETS` accumulator sets
/// to keep each lane's chain short; lanes are folded into columns at the end, rows past the last block added last.
#[inline(always)]
fn column_sums_narrow<S: Simd>(s: S, channels: usize, dy: &[f32], db: &mut [f32]) {
    let n = S::LANES;
    let block = n * channels;
    let mut acc = [[s.splat(0.0); 16]; NARROW_SETS];
    let blocks = dy.chunks_exact(block);
    let rest = blocks.remainder();
    for (b, blk) in blocks.enumerate() {
        let set = &mut acc[b % NARROW_SETS];
        for (k, a) in set.iter_mut().enumerate().take(channels) {
            *a = s.add(*a, s.load(&blk[k * n..]));
        }
    }
    let mut sums = [0.0f32; 16];
    let mut lanes = [0.0f32; 16];
    for k in 0..channels {
        let v = s.add(s.add(acc[0][k], acc[1][k]), s.add(acc[2][k], acc[3][k]));
        s.store(&mut lanes, v);
        for (l, &x) in lanes[..n].iter().enumerate() {
            sums[(k * n + l) % channels] += x;
        }
    }
    for row in rest.chunks_exact(channels) {
        for (t, &x) in sums.iter_mut().zip(row) {
            *t += x;
        }
    }
    db.copy_from_slice(&sums[..channels]);
}
