//! The safe convolution entry points on [`Kernels`]: validate once, resolve the algorithm, run it.

use super::{ConvAlgo, ConvOptions, ConvPass, direct, igemm, im2col, winograd};
use crate::dispatch::Kernels;
use crate::error::Result;
use crate::geometry::Conv2dGeometry;

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
        let algo = opts.algo.resolve(g, ConvPass::Forward)?;
        if g.batch() == 0 {
            return Ok(algo);
        }
        match algo {
            ConvAlgo::Direct => direct::forward(self, g, opts.threads, x, w, bias, y),
            ConvAlgo::ImplicitGemm => igemm::forward(self, g, opts.threads, x, w, bias, y),
            ConvAlgo::Im2col => im2col::forward(self, g, opts.threads, x, w, bias, y),
            ConvAlgo::Winograd(tile) => winograd::forward(self, g, tile, opts.threads, x, w, bias, y),
            ConvAlgo::Auto => unreachable!("resolve returns a concrete algorithm"),
        }?;
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
        let algo = opts.algo.resolve(g, ConvPass::BackwardData)?;
        if g.batch() == 0 {
            return Ok(algo);
        }
        match algo {
            ConvAlgo::Direct => direct::backward_data(self, g, opts.threads, dy, w, dx),
            ConvAlgo::ImplicitGemm => igemm::backward_data(self, g, opts.threads, dy, w, dx),
            ConvAlgo::Im2col => im2col::backward_data(self, g, opts.threads, dy, w, dx),
            ConvAlgo::Winograd(tile) => winograd::backward_data(self, g, tile, opts.threads, dy, w, dx),
            ConvAlgo::Auto => unreachable!("resolve returns a concrete algorithm"),
        }?;
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
        let algo = opts.algo.resolve(g, ConvPass::BackwardFilter)?;
        if g.batch() == 0 {
            dw.fill(0.0);
            return Ok(algo);
        }
        match algo {
            ConvAlgo::Direct => direct::backward_filter(self, g, opts.threads, x, dy, dw),
            ConvAlgo::ImplicitGemm => igemm::backward_filter(self, g, opts.threads, x, dy, dw),
            ConvAlgo::Im2col => im2col::backward_filter(self, g, opts.threads, x, dy, dw),
            ConvAlgo::Winograd(tile) => winograd::backward_filter(self, g, tile, opts.threads, x, dy, dw),
            ConvAlgo::Auto => unreachable!("resolve returns a concrete algorithm"),
        }?;
        Ok(algo)
    }

    /// Bias gradient `db[c] = Σ_{n,h,w} dy[n,h,w,c]` (overwritten).
    pub fn conv2d_bias_gradient(&self, g: &Conv2dGeometry, dy: &[f32], db: &mut [f32]) -> Result<()> {
        g.check_bias_gradient(dy.len(), db.len())?;
        self.column_sums(dy, db)
    }
}
