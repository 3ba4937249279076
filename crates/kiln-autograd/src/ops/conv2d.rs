//! 2-D convolution (Keras `Conv2D` semantics: NHWC input, HWIO kernel, cross-correlation) through a
//! [`ConvPlan`] per call site of the step, kept on the tape from step to step: the weights are packed (or
//! Winograd-transformed) once per weight version, and the forward's converted input is kept for the
//! backward-filter pass when the algorithms allow it.

use kiln_kernels::{Conv2dGeometry, ConvPlan, KeptInput, Padding};

use crate::backward::{Backward, Grads};
use crate::dims::Dims;
use crate::error::{AutogradError, Result};
use crate::recording::Recording;
use crate::tape::{State, Var};

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
    /// The plan's place on the tape, and what its forward kept.
    plan: usize,
    kept: Option<KeptInput>,
}

/// Takes plan `i` out of the tape's state while an op uses it (it is put back by [`put_plan`]).
fn take_plan(st: &mut State, i: usize) -> Result<ConvPlan> {
    st.plans.get_mut(i).and_then(Option::take).ok_or(AutogradError::Parameter {
        op: "conv2d",
        what: "plan",
        value: i as f64,
        expected: "the plan its forward made (the tape was reset in between?)",
    })
}

fn put_plan(st: &mut State, i: usize, plan: ConvPlan) {
    st.plans[i] = Some(plan);
}

impl Backward for Conv2dBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let &Conv2dBackward { x, w, b, geo, plan: at, kept } = self;
        let mut plan = take_plan(g.st, at)?;
        plan.set_threads(g.st.conv.threads);
        let res = (|| {
            g.set(x, |st, dx| Ok(plan.backward_data(st.grad(out), st.value(w), st.version(w), dx)?))?;
            g.set(w, |st, dw| Ok(plan.backward_filter(st.value(x), st.grad(out), dw, kept)?))?;
            if let Some(b) = b {
                g.set(b, |st, db| Ok(st.kernels().conv2d_bias_gradient(&geo, st.grad(out), db)?))?;
            }
            Ok(())
        })();
        put_plan(g.st, at, plan);
        res
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
        // This call site's plan: the one of the same place last step if it fits, else a new one.
        let st = &mut self.tape.st;
        let at = st.convs;
        st.convs += 1;
        if st.plans.len() <= at {
            st.plans.resize_with(at + 1, || None);
        }
        let fits = st.plans[at].as_ref().is_some_and(|p| {
            p.geometry() == &geo && p.options().algo == st.conv.algo && std::ptr::eq(p.kernels(), st.kernels)
        });
        if !fits {
            st.plans[at] = Some(st.kernels.conv_plan(&geo, st.conv)?);
        }
        let mut plan = take_plan(st, at)?;
        plan.set_threads(st.conv.threads);
        // The input is kept for backward-filter when the weights will get a gradient.
        let keep = self.requires(&[w]);
        let mut kept = None;
        let res = self.compute(op, Dims::new(&geo.output_shape())?, req, |st, y| {
            let bias = b.map(|b| st.value(b));
            kept = plan.forward(st.value(x), st.value(w), st.version(w), bias, y, keep)?;
            Ok(())
        });
        put_plan(&mut self.tape.st, at, plan);
        let out = res?;
        if req {
            self.record(out, Conv2dBackward { x, w, b, geo, plan: at, kept });
        }
        Ok(out)
    }
}
