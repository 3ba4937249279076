//! [`Plane`]: the geometry of one zero-padded planar image and its NHWC ↔ planar conversions.

use super::*;
use crate::conv::scratch::Scratch;
use crate::simd::Simd;

/// Geometry of one planar image: `hp × wp` plane holding a `sh × sw × sc` NHWC source placed at signed offset
/// `(top, left)`, correlated with a `kh × kw` kernel into `ow` valid output columns per wide row.
#[derive(Clone, Copy)]
pub(crate) struct Plane {
    pub(super) sh: usize,
    pub(super) sw: usize,
    pub(super) sc: usize,
    pub(super) top: isize,
    pub(super) left: isize,
    pub(super) hp: usize,
    pub(super) wp: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) ow: usize,
}

impl Plane {
    /// The zero-padded input of `g`.
    pub(super) fn input(g: &Conv2dGeometry) -> Self {
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
    pub(super) fn output_grad(g: &Conv2dGeometry) -> Self {
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
    pub(super) fn narrowed(mut self) -> Self {
        self.ow = self.wp - self.kw + 1;
        let right = self.wp as isize - self.left - self.sw as isize;
        if let (Ok(left), Ok(right)) = (usize::try_from(self.left), usize::try_from(right)) {
            self.wp = (self.sw + left.max(right)).max(self.ow);
        }
        self
    }
    /// Whether some output row's kernel window reaches a row of zero padding.
    pub(super) fn pads_rows(&self) -> bool {
        self.top > 0 || self.top + (self.sh as isize) < self.hp as isize
    }
    /// The kernel rows that can meet a nonzero input for output rows `r0 ..= r1`: a kernel row whose input rows
    /// are all zero padding for every output row of a tile is skipped, since its products are exact zeros that
    /// leave the sums unchanged bit for bit. Backward-data's full padding makes these `(kh − 1)·kh` of the
    /// `kh·out_h` row pairs (conv2: 20 of 120).
    #[inline(always)]
    pub(super) fn live_rows(&self, r0: usize, r1: usize) -> std::ops::Range<usize> {
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
    pub(super) fn live_cols(&self, c0: usize, c1: usize) -> std::ops::Range<usize> {
        let (left, end) = (usize::try_from(self.left).unwrap_or(0), usize::try_from(self.left).unwrap_or(0) + self.sw);
        let k0 = left.saturating_sub(c1).min(self.kw);
        let k1 = end.saturating_sub(c0).min(self.kw).max(k0);
        k0..k1
    }
    /// The output columns whose every kernel column meets data (see [`Plane::live_cols`]).
    pub(super) fn full_cols(&self) -> std::ops::Range<usize> {
        let left = usize::try_from(self.left).unwrap_or(0);
        let start = left.min(self.ow);
        start..(left + self.sw + 1).saturating_sub(self.kw).min(self.ow).max(start)
    }
    pub(super) fn out_h(&self) -> usize {
        self.hp - self.kh + 1
    }
    pub(super) fn out_w(&self) -> usize {
        self.ow
    }
    /// Wide-row positions computed per output plane.
    pub(super) fn len(&self) -> usize {
        (self.out_h() * self.wp).next_multiple_of(ROUND)
    }
    /// Floats per input plane: every tap of every computed position stays inside.
    pub(super) fn in_plane(&self) -> usize {
        (self.len() + (self.kh - 1) * self.wp + self.kw - 1).next_multiple_of(ROUND)
    }
    /// Every tap's offset in planes of positions `step` floats apart (`LANES` for lane-batched planes).
    pub(super) fn taps(&self, step: usize) -> Taps {
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
    pub(super) fn fill<S: Simd>(&self, s: S, src: &[f32], n: usize, planes: &mut [f32]) {
        self.fill_strided(s, src, n, planes, self.in_plane())
    }

    /// [`Plane::fill`] with planes `ip` floats apart.
    #[inline(always)]
    pub(super) fn fill_strided<S: Simd>(&self, s: S, src: &[f32], n: usize, planes: &mut [f32], ip: usize) {
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
    pub(super) fn rows<'s>(&self, n: usize, src: &'s [f32]) -> (std::ops::Range<usize>, usize, &'s [f32]) {
        let w0 = usize::try_from(-self.left).unwrap_or(0).min(self.sw);
        let w1 = self.sw.min(offset(self.wp, -self.left).unwrap_or(0)).max(w0);
        let c0 = offset(w0, self.left).unwrap_or(0);
        (w0..w1, c0, &src[n * self.sh * self.sw * self.sc..][..self.sh * self.sw * self.sc])
    }

    #[inline(always)]
    pub(super) fn fill_c<S: Simd, const C: usize>(&self, s: S, src: &[f32], n: usize, planes: &mut [f32], ip: usize) {
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
    pub(super) fn lane_planes(&self, lip: usize, lanes: usize) -> Scratch {
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
    pub(super) fn whole(&self) -> Option<(usize, usize)> {
        let top = usize::try_from(self.top).ok()?;
        let left = usize::try_from(self.left).ok()?;
        (top + self.sh <= self.hp && left + self.sw <= self.wp).then_some((top, left))
    }
    #[inline(always)]
    pub(super) fn fill_any(&self, src: &[f32], n: usize, planes: &mut [f32], ip: usize) {
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

/// Kernels with up to this many taps (7×7 and 8×8) keep their offsets on the stack: a training step must not
/// allocate once warm.
pub(super) const INLINE_TAPS: usize = 64;

/// Tap offsets, on the stack for kernels of up to [`INLINE_TAPS`] taps.
pub(super) struct Taps {
    pub(super) inline: [usize; INLINE_TAPS],
    pub(super) len: usize,
    pub(super) heap: Vec<usize>,
}

impl Taps {
    /// No taps.
    pub(super) fn empty() -> Self {
        Taps { inline: [0; INLINE_TAPS], len: 0, heap: Vec::new() }
    }
}

impl std::ops::Deref for Taps {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        if self.len <= INLINE_TAPS { &self.inline[..self.len] } else { &self.heap }
    }
}

pub(super) fn offset(i: usize, by: isize) -> Option<usize> {
    i.checked_add_signed(by)
}
