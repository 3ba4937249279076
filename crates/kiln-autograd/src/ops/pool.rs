//! 2-D max and average pooling over NHWC (Keras `MaxPooling2D`, `AveragePooling2D`): `valid` or TensorFlow `same`
//! padding (padded positions never win a maximum and are left out of an average, as TensorFlow's `avg_pool`).
//! Max pooling's backward pass routes each output gradient to the first maximum of its window (recomputed from the
//! saved input, so nothing extra is stored); average pooling's spreads it evenly over the window's real inputs.

use crate::backward::{Backward, Grads};
use crate::dims::Dims;
use crate::error::{AutogradError, Result};
use crate::recording::Recording;
use crate::tape::Var;

/// Padding of a pooling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PoolPadding {
    /// Windows lie inside the input.
    #[default]
    Valid,
    /// TensorFlow `same`: `out = ⌈in / stride⌉`, extra rows/columns split with the odd one at the bottom/right.
    Same,
}

#[derive(Debug, Clone, Copy)]
struct PoolGeo {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    ph: usize,
    pw: usize,
    sh: usize,
    sw: usize,
    top: usize,
    left: usize,
    oh: usize,
    ow: usize,
}

impl PoolGeo {
    /// Index into `x` of the first maximum of output window `(n, oy, ox)` in channel `ch`.
    fn argmax(&self, x: &[f32], n: usize, oy: usize, ox: usize, ch: usize) -> usize {
        let mut best = usize::MAX;
        let mut best_v = f32::NEG_INFINITY;
        for ky in 0..self.ph {
            let Some(iy) = (oy * self.sh + ky).checked_sub(self.top).filter(|&y| y < self.h) else { continue };
            for kx in 0..self.pw {
                let Some(ix) = (ox * self.sw + kx).checked_sub(self.left).filter(|&x| x < self.w) else { continue };
                let i = ((n * self.h + iy) * self.w + ix) * self.c + ch;
                // `>` keeps the first maximum; NaN wins so that it propagates like TensorFlow's max.
                if best == usize::MAX || x[i] > best_v || x[i].is_nan() && !best_v.is_nan() {
                    best = i;
                    best_v = x[i];
                }
            }
        }
        best
    }
}

impl PoolGeo {
    /// The input rows (or columns) of window `o` along an axis: `[start, end)` clipped to the input.
    fn span(o: usize, stride: usize, pool: usize, pad: usize, size: usize) -> (usize, usize) {
        let lo = (o * stride).saturating_sub(pad);
        let hi = (o * stride + pool).saturating_sub(pad).min(size);
        (lo, hi)
    }

    /// Calls `f(output index of channel 0, input indices of channel 0 in the window, window count)` for every
    /// output window; channel `ch` adds `ch` to both indices.
    fn each_window(&self, mut f: impl FnMut(usize, &mut dyn Iterator<Item = usize>, usize)) {
        let mut o = 0;
        for n in 0..self.n {
            for oy in 0..self.oh {
                let (y0, y1) = Self::span(oy, self.sh, self.ph, self.top, self.h);
                for ox in 0..self.ow {
                    let (x0, x1) = Self::span(ox, self.sw, self.pw, self.left, self.w);
                    let count = (y1 - y0) * (x1 - x0);
                    let mut inputs =
                        (y0..y1).flat_map(|iy| (x0..x1).map(move |ix| ((n * self.h + iy) * self.w + ix) * self.c));
                    f(o, &mut inputs, count);
                    o += self.c;
                }
            }
        }
    }
}

struct AvgPoolBackward {
    x: Var,
    geo: PoolGeo,
}

impl Backward for AvgPoolBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let geo = self.geo;
        g.update(self.x, |st, dx, acc| {
            if !acc {
                dx.fill(0.0);
            }
            let dy = st.grad(out);
            // As TensorFlow's AvgPoolGrad: each input of a window receives the window's gradient / its count.
            geo.each_window(|o, inputs, count| {
                for i in inputs {
                    for ch in 0..geo.c {
                        dx[i + ch] += dy[o + ch] / count as f32;
                    }
                }
            });
            Ok(())
        })
    }
}

struct MaxPoolBackward {
    x: Var,
    geo: PoolGeo,
}

impl Backward for MaxPoolBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let geo = self.geo;
        let x = self.x;
        g.update(x, |st, dx, acc| {
            if !acc {
                dx.fill(0.0);
            }
            let (xv, yv, dy) = (st.value(x), st.value(out), st.grad(out));
            let c = geo.c;
            if c > CHUNK {
                // Wide inputs: one window and channel at a time.
                let mut o = 0;
                for n in 0..geo.n {
                    for oy in 0..geo.oh {
                        for ox in 0..geo.ow {
                            for ch in 0..c {
                                let i = geo.argmax(xv, n, oy, ox, ch);
                                if i != usize::MAX {
                                    dx[i] += dy[o];
                                }
                                o += 1;
                            }
                        }
                    }
                }
                return Ok(());
            }
            // Each output's gradient goes to the first input of its window holding the maximum's bits: the
            // forward pass copied the first maximum (or first NaN), so that is the one it chose. All channels of a
            // window go together on integer bits, so the loop vectorizes.
            geo.each_window(|o, inputs, _| {
                // All ones while a channel's gradient has not been routed yet.
                let mut open = [u32::MAX; CHUNK];
                let (yr, dyr, open) = (&yv[o..o + c], &dy[o..o + c], &mut open[..c]);
                for i in inputs {
                    let (xr, dxr) = (&xv[i..i + c], &mut dx[i..i + c]);
                    for ch in 0..c {
                        let hit = open[ch] & 0u32.wrapping_sub(u32::from(xr[ch].to_bits() == yr[ch].to_bits()));
                        dxr[ch] += f32::from_bits(dyr[ch].to_bits() & hit);
                        open[ch] &= !hit;
                    }
                }
            });
            Ok(())
        })
    }
}

/// Most channels whose "gradient already routed" flags are kept on the stack (wider inputs take the slow path).
const CHUNK: usize = 256;

fn out_and_pad(
    op: &'static str,
    input: usize,
    pool: usize,
    stride: usize,
    padding: PoolPadding,
) -> Result<(usize, usize)> {
    match padding {
        PoolPadding::Valid => {
            if input < pool {
                return Err(AutogradError::Parameter {
                    op,
                    what: "pool size",
                    value: pool as f64,
                    expected: "≤ the input size with valid padding",
                });
            }
            Ok(((input - pool) / stride + 1, 0))
        }
        PoolPadding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride + pool).saturating_sub(input);
            Ok((out, total / 2))
        }
    }
}

impl Recording<'_, '_> {
    /// The geometry of pooling `x` (checked).
    fn pool_geo(
        &self,
        op: &'static str,
        x: Var,
        pool: (usize, usize),
        strides: (usize, usize),
        padding: PoolPadding,
    ) -> Result<PoolGeo> {
        let d = self.check(op, x)?;
        if d.rank() != 4 {
            return Err(AutogradError::Shape { op, what: "input", expected: "NHWC (rank 4)".into(), got: d });
        }
        for (what, v) in [("pool height", pool.0), ("pool width", pool.1), ("stride", strides.0), ("stride", strides.1)]
        {
            if v == 0 {
                return Err(AutogradError::Parameter { op, what, value: 0.0, expected: "≥ 1" });
            }
        }
        let (n, h, w, c) = (d.get(0), d.get(1), d.get(2), d.get(3));
        let (oh, top) = out_and_pad(op, h, pool.0, strides.0, padding)?;
        let (ow, left) = out_and_pad(op, w, pool.1, strides.1, padding)?;
        Ok(PoolGeo { n, h, w, c, ph: pool.0, pw: pool.1, sh: strides.0, sw: strides.1, top, left, oh, ow })
    }

    /// Average pooling of `x: (n, h, w, c)` with windows `pool = (ph, pw)` and `strides` (Keras default: the
    /// pool); with `same` padding each average is over the window's real inputs only. Sums run over the window
    /// in row-major order, then one division by the count, as TensorFlow's `avg_pool`.
    pub fn avg_pool2d(
        &mut self,
        x: Var,
        pool: (usize, usize),
        strides: (usize, usize),
        padding: PoolPadding,
    ) -> Result<Var> {
        let op = "avg_pool2d";
        let geo = self.pool_geo(op, x, pool, strides, padding)?;
        let req = self.requires(&[x]);
        let out = self.compute(op, Dims::new(&[geo.n, geo.oh, geo.ow, geo.c])?, req, |st, y| {
            let xv = st.value(x);
            y.fill(0.0);
            geo.each_window(|o, inputs, count| {
                for i in inputs {
                    for ch in 0..geo.c {
                        y[o + ch] += xv[i + ch];
                    }
                }
                for v in &mut y[o..o + geo.c] {
                    *v /= count as f32;
                }
            });
            Ok(())
        })?;
        if req {
            self.record(out, AvgPoolBackward { x, geo });
        }
        Ok(out)
    }

    /// Max pooling of `x: (n, h, w, c)` with windows `pool = (ph, pw)` and `strides` (Keras default: the pool).
    pub fn max_pool2d(
        &mut self,
        x: Var,
        pool: (usize, usize),
        strides: (usize, usize),
        padding: PoolPadding,
    ) -> Result<Var> {
        let op = "max_pool2d";
        let geo = self.pool_geo(op, x, pool, strides, padding)?;
        let PoolGeo { n, c, oh, ow, .. } = geo;
        let req = self.requires(&[x]);
        let out = self.compute(op, Dims::new(&[n, oh, ow, c])?, req, |st, y| {
            let xv = st.value(x);
            geo.each_window(|o, inputs, count| {
                let y = &mut y[o..o + c];
                if count == 0 {
                    y.fill(f32::NEG_INFINITY);
                    return;
                }
                let mut first = true;
                for i in inputs {
                    let row = &xv[i..i + c];
                    if first {
                        y.copy_from_slice(row);
                        first = false;
                        continue;
                    }
                    // `>` keeps the first maximum; NaN wins so that it propagates like TensorFlow's max
                    // (branch-free, so that it vectorizes).
                    for (m, &v) in y.iter_mut().zip(row) {
                        #[allow(clippy::eq_op)]
                        let take = v > *m || (v != v) & (*m == *m);
                        *m = if take { v } else { *m };
                    }
                }
            });
            Ok(())
        })?;
        if req {
            self.record(out, MaxPoolBackward { x, geo });
        }
        Ok(out)
    }
}
