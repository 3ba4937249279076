//! 2-D convolution (Keras `Conv2D` semantics: NHWC input, HWIO kernel, cross-correlation) through the kernels'
//! safe entry points with the tape's [`ConvOptions`](kiln_kernels::ConvOptions) (`Auto` by default).

use kiln_kernels::{Conv2dGeometry, Padding};

use crate::backward::{Backward, Grads};
use crate::dims::Dims;
use crate::error::{AutogradError, Result};
use crate::recording::Recording;
use crate::tape::Var;

/// Stride, dilation and padding of a convolution (the rest of the geometry comes from the operands' shapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// `(vertical, horizontal)` stride.
    pub strides: (usize, usize),
    /// `(vertical, horizontal)` dilation.
    pub dilation: (usize, usize),
    /// Padding rule (`Valid`, TensorFlow `Same`, or explicit).
    pub padding: Padding,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams { strides: (1, 1), dilation: (1, 1), padding: Padding::Valid }
    }
}

struct Conv2dBackward {
    x: Var,
    w: Var,
    b: Option<Var>,
    geo: Conv2dGeometry,
}

impl Backward for Conv2dBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let &Conv2dBackward { x, w, b, geo } = self;
        g.set(x, |st, dx| {
            st.kernels().conv2d_backward_data(&geo, st.conv_options(), st.grad(out), st.value(w), dx)?;
            Ok(())
        })?;
        g.set(w, |st, dw| {
            st.kernels().conv2d_backward_filter(&geo, st.conv_options(), st.value(x), st.grad(out), dw)?;
            Ok(())
        })?;
        if let Some(b) = b {
            g.set(b, |st, db| Ok(st.kernels().conv2d_bias_gradient(&geo, st.grad(out), db)?))?;
        }
        Ok(())
    }
}

impl Recording<'_, '_> {
    /// `conv2d(x, w) + b` for `x: (n, h, w, c_in)`, `w: (kh, kw, c_in, c_out)` and an optional `b: (c_out)`.
    pub fn conv2d(&mut self, x: Var, w: Var, b: Option<Var>, p: Conv2dParams) -> Result<Var> {
        let op = "conv2d";
        let xd = self.check(op, x)?;
        let wd = self.check(op, w)?;
        if xd.rank() != 4 {
            return Err(AutogradError::Shape { op, what: "input", expected: "NHWC (rank 4)".into(), got: xd });
        }
        if wd.rank() != 4 || wd.get(2) != xd.get(3) {
            return Err(AutogradError::Shape {
                op,
                what: "kernel",
                expected: format!("HWIO (kh, kw, {}, filters)", xd.get(3)),
                got: wd,
            });
        }
        let geo = Conv2dGeometry::spec(xd.get(0), [xd.get(1), xd.get(2), xd.get(3)], [wd.get(0), wd.get(1)], wd.get(3))
            .strides(p.strides.0, p.strides.1)
            .dilations(p.dilation.0, p.dilation.1)
            .padding(p.padding)
            .build()?;
        if let Some(b) = b {
            let bd = self.check(op, b)?;
            if bd.as_slice() != [geo.out_c()] {
                return Err(AutogradError::Shape {
                    op,
                    what: "bias",
                    expected: format!("({},)", geo.out_c()),
                    got: bd,
                });
            }
        }
        let req = self.requires(&[x, w]) || b.is_some_and(|b| self.requires(&[b]));
        let out = self.compute(op, Dims::new(&geo.output_shape())?, req, |st, y| {
            let bias = b.map(|b| st.value(b));
            st.kernels().conv2d_forward(&geo, st.conv_options(), st.value(x), st.value(w), bias, y)?;
            Ok(())
        })?;
        if req {
            self.record(out, Conv2dBackward { x, w, b, geo });
        }
        Ok(out)
    }
}
