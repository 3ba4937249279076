//! Depthwise 2-D convolution (Keras `DepthwiseConv2D`): every input channel `c` is convolved with its own
//! `depth_multiplier` filters, giving output channels `c·dm + m`; kernel `(kh, kw, in_c, dm)`, NHWC, Keras'
//! strides, dilation and `valid`/`same` padding (the geometry of [`Conv2dGeometry`] with `out_c = in_c·dm`).
//!
//! Direct loops over output pixels and taps with the channels innermost (contiguous in NHWC, so they
//! vectorize); sums run over the taps in row-major order.

use kiln_kernels::Conv2dGeometry;

use crate::backward::{Backward, Grads};
use crate::dims::Dims;
use crate::error::{AutogradError, Result};
use crate::ops::conv2d::Conv2dParams;
use crate::recording::Recording;
use crate::tape::Var;

/// Calls `f(output pixel offset, input pixel offset, tap index)` for every output pixel and every tap of it that
/// lands inside the input (offsets are in pixels; multiply by the channel counts).
fn each_tap(g: &Conv2dGeometry, mut f: impl FnMut(usize, usize, usize)) {
    let (kh, kw) = (g.kernel_h(), g.kernel_w());
    for n in 0..g.batch() {
        for oy in 0..g.out_h() {
            for ox in 0..g.out_w() {
                let o = (n * g.out_h() + oy) * g.out_w() + ox;
                for ky in 0..kh {
                    let Some(iy) = g.input_row(oy, ky) else { continue };
                    for kx in 0..kw {
                        let Some(ix) = g.input_col(ox, kx) else { continue };
                        f(o, (n * g.in_h() + iy) * g.in_w() + ix, ky * kw + kx);
                    }
                }
            }
        }
    }
}

struct DepthwiseBackward {
    x: Var,
    w: Var,
    b: Option<Var>,
    geo: Conv2dGeometry,
    dm: usize,
}

impl Backward for DepthwiseBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let &DepthwiseBackward { x, w, b, geo, dm } = self;
        let ci = geo.in_c();
        let co = ci * dm;
        g.update(x, |st, dx, acc| {
            if !acc {
                dx.fill(0.0);
            }
            let (dy, wv) = (st.grad(out), st.value(w));
            each_tap(&geo, |o, i, t| {
                let (dyo, wt, dxi) =
                    (&dy[o * co..(o + 1) * co], &wv[t * co..(t + 1) * co], &mut dx[i * ci..(i + 1) * ci]);
                for (c, d) in dxi.iter_mut().enumerate() {
                    *d += (0..dm).map(|m| dyo[c * dm + m] * wt[c * dm + m]).sum::<f32>();
                }
            });
            Ok(())
        })?;
        g.update(w, |st, dw, acc| {
            if !acc {
                dw.fill(0.0);
            }
            let (dy, xv) = (st.grad(out), st.value(x));
            each_tap(&geo, |o, i, t| {
                let (dyo, xi, dwt) =
                    (&dy[o * co..(o + 1) * co], &xv[i * ci..(i + 1) * ci], &mut dw[t * co..(t + 1) * co]);
                for (k, d) in dwt.iter_mut().enumerate() {
                    *d += xi[k / dm] * dyo[k];
                }
            });
            Ok(())
        })?;
        if let Some(b) = b {
            g.update(b, |st, db, acc| {
                if !acc {
                    db.fill(0.0);
                }
                for row in st.grad(out).chunks_exact(co) {
                    db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}

impl Recording<'_, '_> {
    /// Depthwise convolution of `x: (n, h, w, c)` by `w: (kh, kw, c, dm)` (+ `b: (c·dm,)`): output channel
    /// `c·dm + m` is input channel `c` convolved with filter `m` of that channel.
    pub fn depthwise_conv2d(&mut self, x: Var, w: Var, b: Option<Var>, p: Conv2dParams) -> Result<Var> {
        let op = "depthwise_conv2d";
        let (xd, wd) = (self.check(op, x)?, self.check(op, w)?);
        if xd.rank() != 4 {
            return Err(AutogradError::Shape { op, what: "input", expected: "NHWC (rank 4)".into(), got: xd });
        }
        if wd.rank() != 4 || wd.get(2) != xd.get(3) || wd.get(3) == 0 {
            return Err(AutogradError::Shape {
                op,
                what: "kernel",
                expected: format!("(kh, kw, {}, depth_multiplier)", xd.get(3)),
                got: wd,
            });
        }
        let dm = wd.get(3);
        let co = xd.get(3) * dm;
        let geo = Conv2dGeometry::spec(xd.get(0), [xd.get(1), xd.get(2), xd.get(3)], [wd.get(0), wd.get(1)], co)
            .strides(p.strides.0, p.strides.1)
            .dilations(p.dilation.0, p.dilation.1)
            .padding(p.padding)
            .build()?;
        if let Some(b) = b {
            let bd = self.check(op, b)?;
            if bd.as_slice() != [co] {
                return Err(AutogradError::Shape { op, what: "bias", expected: format!("({co},)"), got: bd });
            }
        }
        let req = self.requires(&[x, w]) || b.is_some_and(|b| self.requires(&[b]));
        let ci = geo.in_c();
        let out = self.compute(op, Dims::new(&geo.output_shape())?, req, |st, y| {
            let (xv, wv) = (st.value(x), st.value(w));
            y.fill(0.0);
            each_tap(&geo, |o, i, t| {
                let (yo, xi, wt) = (&mut y[o * co..(o + 1) * co], &xv[i * ci..(i + 1) * ci], &wv[t * co..(t + 1) * co]);
                for (k, v) in yo.iter_mut().enumerate() {
                    *v += xi[k / dm] * wt[k];
                }
            });
            // The bias after the sums, as Keras adds it after the convolution.
            if let Some(b) = b {
                let bv = st.value(b);
                y.chunks_exact_mut(co).for_each(|row| row.iter_mut().zip(bv).for_each(|(v, b)| *v += b));
            }
            Ok(())
        })?;
        if req {
            self.record(out, DepthwiseBackward { x, w, b, geo, dm });
        }
        Ok(out)
    }
}
