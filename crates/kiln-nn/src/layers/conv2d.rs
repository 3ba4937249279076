//! Keras `Conv2D`.

use kiln_autograd::{Activation, Conv2dParams, ParamId, Params, Recording, Var};
use kiln_kernels::{Conv2dGeometry, Padding};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::error::{NnError, Result};
use crate::layer::{
    KernelBias, Layer, Pair, cfg_activation, cfg_bool, cfg_name, cfg_padding, cfg_pair, cfg_usize, padding_json,
};

/// A 2-D convolution layer with Keras' arguments and defaults: `Conv2D(filters, kernel_size, strides=1,
/// padding="valid", dilation_rate=1, activation=None, use_bias=True)`, kernel `(kh, kw, in, filters)`
/// initialised Glorot-uniform, bias zeros. Inputs are NHWC.
#[derive(Debug, Clone)]
pub struct Conv2D {
    name: Option<String>,
    filters: usize,
    kernel_size: Pair,
    strides: Pair,
    dilation_rate: Pair,
    padding: Padding,
    activation: Activation,
    use_bias: bool,
    weights: KernelBias,
}

impl Conv2D {
    /// `filters` output channels with a `kernel_size` kernel (`5` or `(5, 3)`).
    pub fn new(filters: usize, kernel_size: impl Into<Pair>) -> Self {
        Conv2D {
            name: None,
            filters,
            kernel_size: kernel_size.into(),
            strides: Pair(1, 1),
            dilation_rate: Pair(1, 1),
            padding: Padding::Valid,
            activation: Activation::Linear,
            use_bias: true,
            weights: KernelBias::default(),
        }
    }

    conv_builders!();

    fn geometry(&self, input: &[usize]) -> Result<Conv2dGeometry> {
        self.geometry_for(input, 1)
    }

    fn geometry_for(&self, input: &[usize], batch: usize) -> Result<Conv2dGeometry> {
        let label = self.name.as_deref().unwrap_or("conv2d");
        let [h, w, c] = input else {
            return Err(NnError::Data {
                what: "Conv2D input",
                expected: "(height, width, channels)".into(),
                got: format!("{input:?}"),
            });
        };
        if self.filters == 0 {
            return Err(NnError::config(label, "filters must be ≥ 1"));
        }
        Ok(Conv2dGeometry::spec(batch, [*h, *w, *c], [self.kernel_size.0, self.kernel_size.1], self.filters)
            .strides(self.strides.0, self.strides.1)
            .dilations(self.dilation_rate.0, self.dilation_rate.1)
            .padding(self.padding)
            .build()?)
    }

    /// Reads a `model.json` config.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let l = "Conv2D";
        let padding = cfg_padding(l, cfg)?;
        let mut c = Conv2D::new(cfg_usize(l, cfg, "filters")?, cfg_pair(l, cfg, "kernel_size")?)
            .strides(cfg_pair(l, cfg, "strides")?)
            .dilation_rate(cfg_pair(l, cfg, "dilation_rate")?)
            .padding(padding)
            .activation(cfg_activation(l, cfg)?)
            .use_bias(cfg_bool(l, cfg, "use_bias")?);
        c.name = cfg_name(cfg);
        Ok(c)
    }
}

impl Layer for Conv2D {
    fn class_name(&self) -> &'static str {
        "Conv2D"
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
        self.weights = KernelBias::build(name, &g.weight_shape(), self.use_bias.then_some(self.filters), params)?;
        Ok(())
    }
    fn initialize(&self, params: &mut Params, rng: &mut ChaCha8Rng) -> Result<()> {
        self.weights.initialize(params, rng)
    }
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, _training: bool) -> Result<Var> {
        let (w, b) = self.weights.vars("Conv2D", rec)?;
        let p = Conv2dParams {
            strides: (self.strides.0, self.strides.1),
            dilation: (self.dilation_rate.0, self.dilation_rate.1),
            padding: self.padding,
        };
        let y = super::product::under_policy(rec, x, w, |rec, x, w| rec.conv2d(x, w, b, p))?;
        Ok(rec.activation(y, self.activation)?)
    }
    fn weights(&self) -> Vec<(&'static str, ParamId)> {
        self.weights.weights()
    }
    fn conv_geometry(&self, input: &[usize], batch: usize) -> Option<Conv2dGeometry> {
        self.geometry_for(input, batch).ok()
    }
    fn flops(&self, input: &[usize]) -> u64 {
        self.geometry_for(input, 1).map_or(0, |g| g.flops())
    }
    fn config(&self) -> Value {
        let padding = padding_json(self.padding);
        json!({
            "name": self.name,
            "filters": self.filters,
            "kernel_size": [self.kernel_size.0, self.kernel_size.1],
            "strides": [self.strides.0, self.strides.1],
            "dilation_rate": [self.dilation_rate.0, self.dilation_rate.1],
            "padding": padding,
            "activation": self.activation.name(),
            "use_bias": self.use_bias,
        })
    }
    fn box_clone(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}
