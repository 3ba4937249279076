//! Keras `DepthwiseConv2D`.

use kiln_autograd::{Activation, Conv2dParams, ParamId, Params, Recording, Var};
use kiln_kernels::{Conv2dGeometry, Padding};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::error::{NnError, Result};
use crate::layer::{
    KernelBias, Layer, Pair, cfg_activation, cfg_bool, cfg_name, cfg_padding, cfg_pair, cfg_usize, padding_json,
};

/// A depthwise 2-D convolution with Keras' arguments and defaults: `DepthwiseConv2D(kernel_size, strides=1,
/// padding="valid", depth_multiplier=1, dilation_rate=1, activation=None, use_bias=True)`. Each input channel is
/// convolved with its own `depth_multiplier` filters (output channel `c·dm + m`); kernel `(kh, kw, in, dm)`
/// initialised Glorot-uniform, bias `(in·dm,)` zeros. Inputs are NHWC.
#[derive(Debug, Clone)]
pub struct DepthwiseConv2D {
    name: Option<String>,
    kernel_size: Pair,
    strides: Pair,
    dilation_rate: Pair,
    padding: Padding,
    depth_multiplier: usize,
    activation: Activation,
    use_bias: bool,
    weights: KernelBias,
}

impl DepthwiseConv2D {
    /// A `kernel_size` kernel (`3` or `(3, 5)`) per input channel.
    pub fn new(kernel_size: impl Into<Pair>) -> Self {
        DepthwiseConv2D {
            name: None,
            kernel_size: kernel_size.into(),
            strides: Pair(1, 1),
            dilation_rate: Pair(1, 1),
            padding: Padding::Valid,
            depth_multiplier: 1,
            activation: Activation::Linear,
            use_bias: true,
            weights: KernelBias::default(),
        }
    }

    conv_builders!();
    /// Filters per input channel (default 1).
    pub fn depth_multiplier(mut self, m: usize) -> Self {
        self.depth_multiplier = m;
        self
    }

    fn geometry(&self, input: &[usize]) -> Result<Conv2dGeometry> {
        let label = self.name.as_deref().unwrap_or("depthwise_conv2d");
        let [h, w, c] = input else {
            return Err(NnError::Data {
                what: "DepthwiseConv2D input",
                expected: "(height, width, channels)".into(),
                got: format!("{input:?}"),
            });
        };
        if self.depth_multiplier == 0 {
            return Err(NnError::config(label, "depth_multiplier must be ≥ 1"));
        }
        let out_c = c.checked_mul(self.depth_multiplier).ok_or_else(|| NnError::config(label, "too many channels"))?;
        Ok(Conv2dGeometry::spec(1, [*h, *w, *c], [self.kernel_size.0, self.kernel_size.1], out_c)
            .strides(self.strides.0, self.strides.1)
            .dilations(self.dilation_rate.0, self.dilation_rate.1)
            .padding(self.padding)
            .build()?)
    }

    /// Reads a `model.json` (or Keras) config.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let l = "DepthwiseConv2D";
        let mut d = DepthwiseConv2D::new(cfg_pair(l, cfg, "kernel_size")?)
            .strides(cfg_pair(l, cfg, "strides")?)
            .dilation_rate(cfg_pair(l, cfg, "dilation_rate")?)
            .padding(cfg_padding(l, cfg)?)
            .depth_multiplier(cfg_usize(l, cfg, "depth_multiplier")?)
            .activation(cfg_activation(l, cfg)?)
            .use_bias(cfg_bool(l, cfg, "use_bias")?);
        d.name = cfg_name(cfg);
        Ok(d)
    }
}

impl Layer for DepthwiseConv2D {
    fn flops(&self, input: &[usize]) -> u64 {
        let taps = (self.kernel_size.0 * self.kernel_size.1) as u64;
        self.output_shape(input).map_or(0, |out| 2 * taps * out.iter().product::<usize>() as u64)
    }
    fn class_name(&self) -> &'static str {
        "DepthwiseConv2D"
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn set_name(&mut self, name: String) {
        self.name = Some(name);
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let g = self.geometry(input)?;
        Ok(vec![g.out_h(), g.out_w(), g.out_c()])
    }
    fn build(&mut self, name: &str, input: &[usize], params: &mut Params) -> Result<()> {
        let g = self.geometry(input)?;
        let shape = [self.kernel_size.0, self.kernel_size.1, g.in_c(), self.depth_multiplier];
        self.weights = KernelBias::build(name, &shape, self.use_bias.then_some(g.out_c()), params)?;
        Ok(())
    }
    fn initialize(&self, params: &mut Params, rng: &mut ChaCha8Rng) -> Result<()> {
        self.weights.initialize(params, rng)
    }
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, _training: bool) -> Result<Var> {
        let (w, b) = self.weights.vars("DepthwiseConv2D", rec)?;
        let p = Conv2dParams {
            strides: (self.strides.0, self.strides.1),
            dilation: (self.dilation_rate.0, self.dilation_rate.1),
            padding: self.padding,
        };
        let y = super::product::under_policy(rec, x, w, |rec, x, w| rec.depthwise_conv2d(x, w, b, p))?;
        Ok(rec.activation(y, self.activation)?)
    }
    fn weights(&self) -> Vec<(&'static str, ParamId)> {
        self.weights.weights()
    }
    fn config(&self) -> Value {
        json!({
            "name": self.name,
            "kernel_size": [self.kernel_size.0, self.kernel_size.1],
            "strides": [self.strides.0, self.strides.1],
            "dilation_rate": [self.dilation_rate.0, self.dilation_rate.1],
            "padding": padding_json(self.padding),
            "depth_multiplier": self.depth_multiplier,
            "activation": self.activation.name(),
            "use_bias": self.use_bias,
        })
    }
    fn box_clone(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}
