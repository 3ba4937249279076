//! The one-shot convolution entry points on [`Kernels`]: validate, resolve the algorithm, prepare the weights
//! into per-call scratch, run (a [`ConvPlan`](super::ConvPlan) keeps the prepared weights instead).

use super::plan::{self, WeightsFor};
use super::scratch::Scratch;
use super::{ConvAlgo, ConvOptions, ConvPass};
use crate::dispatch::Kernels;
use crate::error::Result;
use crate::geometry::Conv2dGeometry;

impl Kernels {
    /// `w` prepared for `pass` of `algo`, in pooled scratch.
    fn prepared(&self, g: &Conv2dGeometry, algo: ConvAlgo, pass: WeightsFor, w: &[f32]) -> Scratch {
        let mut out = Scratch::take(plan::prepared_len(self, g, algo, pass));
        plan::prepare(self, g, algo, pass, w, &mut out, &mut Vec::new());
        out
    }
}

impl Kernels {
    /// Forward pass `y = conv(x, w) + bias` (bias optional). Returns the algorithm that ran.
    ///
    /// `x` is NHWC `g.input_shape()`, `w` HWIO `g.weight_shape()`, `y` NHWC `g.output_shape()` (overwritten).
    pub fn conv2d_forward(
        &self,
        g: &Conv2dGeometry,
        opts: ConvOptions,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
    ) -> Result<ConvAlgo> {
        g.check_forward(x.len(), w.len(), bias.map(<[f32]>::len), y.len())?;
        opts.check_compute(self, "conv2d_forward")?;
        let algo = opts.algo.resolve(g, ConvPass::Forward, self.isa())?;
        if g.batch() == 0 {
            return Ok(algo);
        }
        let pw = self.prepared(g, algo, WeightsFor::Forward, w);
        plan::forward(self, g, algo, opts.threads, x, w, &pw, bias, y, None)?;
        Ok(algo)
    }

    /// Backward-data pass: `dx = ∂/∂x ⟨conv(x, w), dy⟩` (overwritten). Returns the algorithm that ran.
    pub fn conv2d_backward_data(
        &self,
        g: &Conv2dGeometry,
        opts: ConvOptions,
        dy: &[f32],
        w: &[f32],
        dx: &mut [f32],
    ) -> Result<ConvAlgo> {
        g.check_backward_data(dy.len(), w.len(), dx.len())?;
        opts.check_compute(self, "conv2d_backward_data")?;
        let algo = opts.algo.resolve(g, ConvPass::BackwardData, self.isa())?;
        if g.batch() == 0 {
            return Ok(algo);
        }
        let pw = self.prepared(g, algo, WeightsFor::BackwardData, w);
        plan::backward_data(self, g, algo, opts.threads, dy, w, &pw, dx)?;
        Ok(algo)
    }

    /// Backward-filter pass: `dw = ∂/∂w ⟨conv(x, w), dy⟩` (overwritten). Returns the algorithm that ran.
    pub fn conv2d_backward_filter(
        &self,
        g: &Conv2dGeometry,
        opts: ConvOptions,
        x: &[f32],
        dy: &[f32],
        dw: &mut [f32],
    ) -> Result<ConvAlgo> {
        g.check_backward_filter(x.len(), dy.len(), dw.len())?;
        opts.check_compute(self, "conv2d_backward_filter")?;
        let algo = opts.algo.resolve(g, ConvPass::BackwardFilter, self.isa())?;
        if g.batch() == 0 {
            dw.fill(0.0);
            return Ok(algo);
        }
        plan::backward_filter(self, g, algo, opts.threads, x, dy, dw, None)?;
        Ok(algo)
    }

    /// Bias gradient `db[c] = Σ_{n,h,w} dy[n,h,w,c]` (overwritten).
    pub fn conv2d_bias_gradient(&self, g: &Conv2dGeometry, dy: &[f32], db: &mut [f32]) -> Result<()> {
        g.check_bias_gradient(dy.len(), db.len())?;
        self.column_sums(dy, db)
    }
}
