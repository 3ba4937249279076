//! Keras `Dense`.

use kiln_autograd::{Activation, ParamId, Params, Recording, Var};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::error::{NnError, Result};
use crate::layer::{KernelBias, Layer, cfg_activation, cfg_bool, cfg_name, cfg_usize};

/// A fully connected layer, Keras `Dense(units, activation=None, use_bias=True)`: `y = act(x·W + b)` with the
/// kernel `W: (in, units)` initialised Glorot-uniform and a zero bias. Input rank 1 (per sample).
#[derive(Debug, Clone)]
pub struct Dense {
    name: Option<String>,
    units: usize,
    activation: Activation,
    use_bias: bool,
    weights: KernelBias,
}

impl Dense {
    /// A layer of `units` outputs.
    pub fn new(units: usize) -> Self {
        Dense { name: None, units, activation: Activation::Linear, use_bias: true, weights: KernelBias::default() }
    }

    /// Activation (default linear). `Softmax` before a cross-entropy loss trains through the fused kernel.
    pub fn activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }

    /// Whether to add a bias (default true).
    pub fn use_bias(mut self, on: bool) -> Self {
        self.use_bias = on;
        self
    }

    /// A fixed layer name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Reads a `model.json` config.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let l = "Dense";
        let mut d = Dense::new(cfg_usize(l, cfg, "units")?)
            .activation(cfg_activation(l, cfg)?)
            .use_bias(cfg_bool(l, cfg, "use_bias")?);
        d.name = cfg_name(cfg);
        Ok(d)
    }

    fn input_units(&self, input: &[usize]) -> Result<usize> {
        match input {
            [n] => Ok(*n),
            _ => Err(NnError::Data {
                what: "Dense input",
                expected: "a vector per sample (add a Flatten layer before Dense)".into(),
                got: format!("{input:?}"),
            }),
        }
    }
}

impl Layer for Dense {
    fn flops(&self, input: &[usize]) -> u64 {
        2 * input.iter().product::<usize>() as u64 * self.units as u64
    }
    fn class_name(&self) -> &'static str {
        "Dense"
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn set_name(&mut self, name: String) {
        self.name = Some(name);
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.input_units(input)?;
        if self.units == 0 {
            return Err(NnError::config(self.name.as_deref().unwrap_or("dense"), "units must be ≥ 1"));
        }
        Ok(vec![self.units])
    }
    fn build(&mut self, name: &str, input: &[usize], params: &mut Params) -> Result<()> {
        let n = self.input_units(input)?;
        self.weights = KernelBias::build(name, &[n, self.units], self.use_bias.then_some(self.units), params)?;
        Ok(())
    }
    fn initialize(&self, params: &mut Params, rng: &mut ChaCha8Rng) -> Result<()> {
        self.weights.initialize(params, rng)
    }
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, _training: bool) -> Result<Var> {
        let (w, b) = self.weights.vars("Dense", rec)?;
        let y = super::product::under_policy(rec, x, w, |rec, x, w| rec.dense(x, w, b))?;
        Ok(rec.activation(y, self.activation)?)
    }
    fn weights(&self) -> Vec<(&'static str, ParamId)> {
        self.weights.weights()
    }
    fn config(&self) -> Value {
        json!({
            "name": self.name,
            "units": self.units,
            "activation": self.activation.name(),
            "use_bias": self.use_bias,
        })
    }
    fn box_clone(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}
