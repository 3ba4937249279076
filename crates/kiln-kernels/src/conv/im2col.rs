//! Tiled im2col + SGEMM: the general fallback and benchmark baseline. Output pixels are processed in tiles of at
//! most [`COL_BUDGET`] column-matrix elements per thread, so the scratch memory is bounded whatever the batch.
//!
//! Forward: `y[tile] = col[tile] · W` (`col` is `pixels × (kh·kw·in_c)`, HWIO weights are already that matrix).
//! Backward-data: `dcol = dy[tile] · Wᵀ`, then col2im adds each row back into `dx`. Backward-filter:
//! `dW += col[tile]ᵀ · dy[tile]`, tile after tile in a fixed order.

use super::scratch::{FirstError, Scratch, SharedOut};
use super::{parts, split};
use crate::dispatch::Kernels;
use crate::error::Result;
use crate::gemm::Threads;
use crate::geometry::{Conv2dGeometry, GemmGeometry, Transpose};

/// Largest column tile, in floats (512 KiB: half of this Zen 5's L2).
pub(crate) const COL_BUDGET: usize = 1 << 17;

/// Output pixels per tile: whole images' rows, at least one pixel, at most [`COL_BUDGET`] column elements.
fn tile_rows(g: &Conv2dGeometry) -> usize {
    let kc = g.kernel_h() * g.kernel_w() * g.in_c();
    (COL_BUDGET / kc).clamp(1, g.out_h() * g.out_w())
}

/// Writes the im2col rows of output pixels `p0 .. p0 + rows` of image `n` into `col` (`rows × kc`).
pub(crate) fn fill_col(g: &Conv2dGeometry, n: usize, p0: usize, rows: usize, x: &[f32], col: &mut [f32]) {
    let (ci, ow_n) = (g.in_c(), g.out_w());
    let kc = g.kernel_h() * g.kernel_w() * ci;
    for (r, row) in col.chunks_exact_mut(kc).take(rows).enumerate() {
        let (oh, ow) = ((p0 + r) / ow_n, (p0 + r) % ow_n);
        for kh in 0..g.kernel_h() {
            let ih = g.input_row(oh, kh);
            for kw in 0..g.kernel_w() {
                let dst = &mut row[(kh * g.kernel_w() + kw) * ci..][..ci];
                match (ih, g.input_col(ow, kw)) {
                    (Some(ih), Some(iw)) => dst.copy_from_slice(&x[g.input_index(n, ih, iw, 0)..][..ci]),
                    _ => dst.fill(0.0),
                }
            }
        }
    }
}

/// Adds the im2col rows in `col` back into image `n` of `dx` (the adjoint of [`fill_col`]).
fn add_col(g: &Conv2dGeometry, n: usize, p0: usize, rows: usize, col: &[f32], dx: &mut [f32]) {
    let (ci, ow_n) = (g.in_c(), g.out_w());
    let kc = g.kernel_h() * g.kernel_w() * ci;
    for (r, row) in col.chunks_exact(kc).take(rows).enumerate() {
        let (oh, ow) = ((p0 + r) / ow_n, (p0 + r) % ow_n);
        for kh in 0..g.kernel_h() {
            let Some(ih) = g.input_row(oh, kh) else { continue };
            for kw in 0..g.kernel_w() {
                let Some(iw) = g.input_col(ow, kw) else { continue };
                let src = &row[(kh * g.kernel_w() + kw) * ci..][..ci];
                let dst = &mut dx[g.input_index(n, ih, iw, 0)..][..ci];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += s;
                }
            }
        }
    }
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
    let (co, kc, pix) = (g.out_c(), g.kernel_h() * g.kernel_w() * g.in_c(), g.out_h() * g.out_w());
    let rows = tile_rows(g);
    let out = SharedOut::new(y);
    let per_image = pix * co;
    let errors = FirstError::new();
    split(parts(threads, g.batch()), g.batch(), |n0, nn| {
        let mut col = Scratch::take(rows * kc);
        for n in n0..n0 + nn {
            // SAFETY: each part owns images n0 .. n0 + nn of y; `y` outlives the split.
            let yn = unsafe { out.range(n * per_image, per_image) };
            for p0 in (0..pix).step_by(rows) {
                let r = rows.min(pix - p0);
                fill_col(g, n, p0, r, x, &mut col);
                let yt = &mut yn[p0 * co..(p0 + r) * co];
                // (The GEMM bounds each accumulator's chain itself: `gemm::blocking::CHAIN`.)
                let res = GemmGeometry::new(r, co, kc)
                    .and_then(|gg| k.sgemm_with(Threads::Single, &gg, 1.0, &col[..r * kc], w, 0.0, yt))
                    .and_then(|()| bias.map_or(Ok(()), |b| k.bias_add(yt, b)));
                if !errors.record(res) {
                    return;
                }
            }
        }
    });
    errors.into_result()
}

pub(crate) fn backward_data(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    let (co, kc, pix) = (g.out_c(), g.kernel_h() * g.kernel_w() * g.in_c(), g.out_h() * g.out_w());
    let rows = tile_rows(g);
    let per_in = g.in_h() * g.in_w() * g.in_c();
    dx.fill(0.0);
    let out = SharedOut::new(dx);
    let errors = FirstError::new();
    split(parts(threads, g.batch()), g.batch(), |n0, nn| {
        let mut col = Scratch::take(rows * kc);
        for n in n0..n0 + nn {
            // SAFETY: each part owns images n0 .. n0 + nn of dx; `dx` outlives the split. `add_col` indexes with
            // image-relative offsets, so hand it the image as image 0.
            let dxn = unsafe { out.range(n * per_in, per_in) };
            for p0 in (0..pix).step_by(rows) {
                let r = rows.min(pix - p0);
                let res = GemmGeometry::spec(r, kc, co).trans_b(Transpose::Yes).build().and_then(|gg| {
                    let dyt = &dy[(n * pix + p0) * co..(n * pix + p0 + r) * co];
                    k.sgemm_with(Threads::Single, &gg, 1.0, dyt, w, 0.0, &mut col[..r * kc])
                });
                if !errors.record(res) {
                    return;
                }
                add_col(g, 0, p0, r, &col, dxn);
            }
        }
    });
    errors.into_result()
}

pub(crate) fn backward_filter(
    k: &Kernels,
    g: &Conv2dGeometry,
    threads: Threads,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) -> Result<()> {
    let (co, kc, pix) = (g.out_c(), g.kernel_h() * g.kernel_w() * g.in_c(), g.out_h() * g.out_w());
    let rows = tile_rows(g);
    let mut col = Scratch::take(rows * kc);
    let mut first = true;
    for n in 0..g.batch() {
        for p0 in (0..pix).step_by(rows) {
            let r = rows.min(pix - p0);
            fill_col(g, n, p0, r, x, &mut col);
            let gg = GemmGeometry::spec(kc, co, r).trans_a(Transpose::Yes).build()?;
            let dyt = &dy[(n * pix + p0) * co..(n * pix + p0 + r) * co];
            k.sgemm_with(threads, &gg, 1.0, &col[..r * kc], dyt, if first { 0.0 } else { 1.0 }, dw)?;
            first = false;
        }
    }
    Ok(())
}
