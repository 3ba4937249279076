//! Per-image projective transforms of NHWC batches with bilinear interpolation — TensorFlow's
//! `ImageProjectiveTransformV3`, which Keras' `RandomTranslation`, `RandomRotation` and `RandomZoom` run through
//! `keras.ops.image.affine_transform`.
//!
//! Each image has 8 numbers `[a0, a1, a2, b0, b1, b2, c0, c1]` mapping an *output* pixel `(x, y)` (column, row) to
//! the input point `((a0·x + a1·y + a2)/k, (b0·x + b1·y + b2)/k)` with `k = c0·x + c1·y + 1`. A point outside the
//! image is first mapped back in by the fill mode (`reflect`: `dcba|abcd|dcba`; `wrap`; `nearest`; or `constant`,
//! which leaves it and reads `fill_value` outside), then the four neighbours are blended bilinearly, a neighbour
//! outside the image counting as `fill_value` — TensorFlow's order of operations, so outputs match it.
//!
//! The output is linear in the input image, so the backward pass scatters each output gradient to the four
//! neighbours with the same weights.

use crate::backward::{Backward, Grads};
use crate::dims::Dims;
use crate::error::{AutogradError, Result};
use crate::recording::Recording;
use crate::tape::Var;

/// How points outside the image are filled (Keras' `fill_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FillMode {
    /// Mirror about the edge, the edge pixel repeated (`d c b a | a b c d | d c b a`; Keras' default).
    #[default]
    Reflect,
    /// Repeat the image (`a b c d | a b c d | a b c d`).
    Wrap,
    /// The nearest edge pixel (`a a a a | a b c d | d d d d`).
    Nearest,
    /// A constant (`fill_value`).
    Constant,
}

impl FillMode {
    /// Keras' name.
    pub fn name(self) -> &'static str {
        match self {
            FillMode::Reflect => "reflect",
            FillMode::Wrap => "wrap",
            FillMode::Nearest => "nearest",
            FillMode::Constant => "constant",
        }
    }

    /// The mode of a Keras name.
    pub fn from_name(name: &str) -> Option<Self> {
        [FillMode::Reflect, FillMode::Wrap, FillMode::Nearest, FillMode::Constant]
            .into_iter()
            .find(|m| m.name() == name)
    }

    /// TensorFlow's `MapCoordinate`: an input coordinate along an axis of `len` pixels, mapped into the image.
    fn map(self, coord: f32, len: usize) -> f32 {
        let n = len as f32;
        let c = match self {
            FillMode::Constant => return coord,
            FillMode::Nearest => coord,
            FillMode::Reflect if len <= 1 => 0.0,
            FillMode::Reflect => {
                let sz2 = 2.0 * n;
                let mut c = coord;
                if c < 0.0 {
                    if c < sz2 {
                        c += sz2 * (-c / sz2).trunc();
                    }
                    c = if c < -n { c + sz2 } else { -c - 1.0 };
                } else if c > n - 1.0 {
                    c -= sz2 * (c / sz2).trunc();
                    if c >= n {
                        c = sz2 - c - 1.0;
                    }
                }
                c
            }
            FillMode::Wrap if len <= 1 => 0.0,
            FillMode::Wrap => {
                // TensorFlow divides by `len − 1` here (not `len`); kept, so that outputs match it.
                let (mut c, sz) = (coord, n - 1.0);
                if c < 0.0 {
                    c += n * ((-c / sz).trunc() + 1.0);
                } else if c > n - 1.0 {
                    c -= n * (c / sz).trunc();
                }
                c
            }
        };
        c.clamp(0.0, n - 1.0)
    }
}

#[derive(Clone, Copy)]
struct Geo {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    fill: FillMode,
    fill_value: f32,
}

impl Geo {
    /// Calls `f(output pixel index, [(input pixel index or None for the fill value, weight); 4])` for every output
    /// pixel of every image.
    fn each(&self, transforms: &[f32], mut f: impl FnMut(usize, [(Option<usize>, f32); 4])) {
        let (h, w) = (self.h, self.w);
        for b in 0..self.n {
            let t = &transforms[8 * b..8 * b + 8];
            for y in 0..h {
                for x in 0..w {
                    let (xf, yf) = (x as f32, y as f32);
                    let k = t[6] * xf + t[7] * yf + 1.0;
                    let (ix, iy) = ((t[0] * xf + t[1] * yf + t[2]) / k, (t[3] * xf + t[4] * yf + t[5]) / k);
                    let (ix, iy) = (self.fill.map(ix, w), self.fill.map(iy, h));
                    let (x0, y0) = (ix.floor(), iy.floor());
                    let (x1, y1) = (x0 + 1.0, y0 + 1.0);
                    let at = |py: f32, px: f32| -> Option<usize> {
                        (py >= 0.0 && px >= 0.0 && py < h as f32 && px < w as f32)
                            .then(|| (b * h + py as usize) * w + px as usize)
                    };
                    let o = (b * h + y) * w + x;
                    f(
                        o,
                        [
                            (at(y0, x0), (y1 - iy) * (x1 - ix)),
                            (at(y0, x1), (y1 - iy) * (ix - x0)),
                            (at(y1, x0), (iy - y0) * (x1 - ix)),
                            (at(y1, x1), (iy - y0) * (ix - x0)),
                        ],
                    );
                }
            }
        }
    }
}

struct AffineBackward {
    x: Var,
    transforms: Var,
    geo: Geo,
}

impl Backward for AffineBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let (geo, t) = (self.geo, self.transforms);
        g.update(self.x, |st, dx, acc| {
            if !acc {
                dx.fill(0.0);
            }
            let (dy, c) = (st.grad(out), geo.c);
            geo.each(st.value(t), |o, taps| {
                for (i, wgt) in taps {
                    if let Some(i) = i.filter(|_| wgt != 0.0) {
                        for ch in 0..c {
                            dx[i * c + ch] += wgt * dy[o * c + ch];
                        }
                    }
                }
            });
            Ok(())
        })
    }
}

impl Recording<'_, '_> {
    /// Transforms every image of `x: (n, h, w, c)` by its row of `transforms: (n, 8)` (see the module docs),
    /// bilinear, points outside filled by `fill` (`fill_value` for [`FillMode::Constant`] and for neighbours
    /// outside the image). The gradient flows to `x`.
    pub fn affine_transform(&mut self, x: Var, transforms: Var, fill: FillMode, fill_value: f32) -> Result<Var> {
        let op = "affine_transform";
        let d = self.check(op, x)?;
        if d.rank() != 4 {
            return Err(AutogradError::Shape { op, what: "input", expected: "NHWC (rank 4)".into(), got: d });
        }
        let geo = Geo { n: d.get(0), h: d.get(1), w: d.get(2), c: d.get(3), fill, fill_value };
        let td = self.check(op, transforms)?;
        if td.as_slice() != [geo.n, 8] {
            return Err(AutogradError::Shape { op, what: "transforms", expected: format!("({}, 8)", geo.n), got: td });
        }
        let req = self.requires(&[x]);
        let out = self.compute(op, Dims::new(d.as_slice())?, req, |st, y| {
            let (xv, c) = (st.value(x), geo.c);
            geo.each(st.value(transforms), |o, taps| {
                let yo = &mut y[o * c..(o + 1) * c];
                yo.fill(0.0);
                for (i, wgt) in taps {
                    match i {
                        Some(i) => yo.iter_mut().zip(&xv[i * c..(i + 1) * c]).for_each(|(v, &s)| *v += wgt * s),
                        None => yo.iter_mut().for_each(|v| *v += wgt * geo.fill_value),
                    }
                }
            });
            Ok(())
        })?;
        if req {
            self.record(out, AffineBackward { x, transforms, geo });
        }
        Ok(out)
    }
}
