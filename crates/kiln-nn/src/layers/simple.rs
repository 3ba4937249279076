//! Parameter-free layers: `Flatten`, `Dropout`, `Activation`, `ReLU`.

use kiln_autograd::{Activation as Act, Recording, Var};
use serde_json::{Value, json};

use crate::error::{NnError, Result};
use crate::layer::{Layer, cfg_activation, cfg_name};

/// Keras `Flatten`: `(batch, d1, d2, …)` → `(batch, d1·d2·…)` in row-major order (H, W, then C fastest for
/// NHWC), so dense kernels line up with Keras'.
#[derive(Debug, Clone, Default)]
pub struct Flatten {
    name: Option<String>,
}

impl Flatten {
    /// A flatten layer.
    pub fn new() -> Self {
        Flatten::default()
    }
    /// A fixed layer name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Reads a `model.json` config.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        Ok(Flatten { name: cfg_name(cfg) })
    }
}

impl Layer for Flatten {
    no_params!();
    fn class_name(&self) -> &'static str {
        "Flatten"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let n = input.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let n = n.ok_or_else(|| {
            NnError::config(self.name.as_deref().unwrap_or("flatten"), format!("{input:?} has too many elements"))
        })?;
        Ok(vec![n])
    }
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, _training: bool) -> Result<Var> {
        Ok(rec.flatten(x)?)
    }
    fn config(&self) -> Value {
        json!({ "name": self.name })
    }
}

/// Keras `Dropout(rate)`: active only while training.
#[derive(Debug, Clone)]
pub struct Dropout {
    name: Option<String>,
    rate: f32,
}

impl Dropout {
    /// Drops each input with probability `rate` ∈ [0, 1) during training.
    pub fn new(rate: f32) -> Self {
        Dropout { name: None, rate }
    }
    /// A fixed layer name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Reads a `model.json` config.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let rate = cfg
            .get("rate")
            .and_then(Value::as_f64)
            .ok_or_else(|| NnError::config("Dropout", "`rate` must be a number"))?;
        Ok(Dropout { name: cfg_name(cfg), rate: rate as f32 })
    }
}

impl Layer for Dropout {
    no_params!();
    fn class_name(&self) -> &'static str {
        "Dropout"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(NnError::config(
                self.name.as_deref().unwrap_or("dropout"),
                format!("rate {} must be in [0, 1)", self.rate),
            ));
        }
        Ok(input.to_vec())
    }
    /// Keras: dropout in training only; the identity at inference.
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, training: bool) -> Result<Var> {
        if !training {
            return Ok(x);
        }
        Ok(rec.dropout(x, self.rate)?)
    }
    fn config(&self) -> Value {
        json!({ "name": self.name, "rate": self.rate })
    }
}

/// Keras `Activation(name)`: applies an activation function.
#[derive(Debug, Clone)]
pub struct Activation {
    name: Option<String>,
    activation: Act,
}

impl Activation {
    /// Applies `activation`.
    pub fn new(activation: Act) -> Self {
        Activation { name: None, activation }
    }
    /// A fixed layer name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Reads a `model.json` config.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        Ok(Activation { name: cfg_name(cfg), activation: cfg_activation("Activation", cfg)? })
    }
}

impl Layer for Activation {
    no_params!();
    fn is_relu(&self) -> bool {
        self.activation == Act::Relu
    }
    fn class_name(&self) -> &'static str {
        "Activation"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, _training: bool) -> Result<Var> {
        Ok(rec.activation(x, self.activation)?)
    }
    fn config(&self) -> Value {
        json!({ "name": self.name, "activation": self.activation.name() })
    }
}

/// Keras `ReLU()`: the rectifier as a layer of its own class (`max(x, 0)`). Keras' options `max_value`,
/// `negative_slope` and `threshold` are accepted only at their defaults (`None`, 0, 0); other values are refused
/// rather than approximated.
#[derive(Debug, Clone, Default)]
pub struct ReLU {
    name: Option<String>,
}

impl ReLU {
    /// A ReLU layer.
    pub fn new() -> Self {
        ReLU::default()
    }
    /// A fixed layer name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Reads a `model.json` (or Keras) config.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let name = cfg_name(cfg);
        let layer = || format!("{} (ReLU)", name.as_deref().unwrap_or("re_lu"));
        match cfg.get("max_value") {
            None | Some(Value::Null) => {}
            Some(v) => return Err(NnError::unsupported(layer(), "max_value", v)),
        }
        for key in ["negative_slope", "threshold"] {
            match cfg.get(key) {
                None => {}
                Some(v) if v.as_f64() == Some(0.0) => {}
                Some(v) => return Err(NnError::unsupported(layer(), key, v)),
            }
        }
        Ok(ReLU { name })
    }
}

impl Layer for ReLU {
    no_params!();
    fn is_relu(&self) -> bool {
        true
    }
    fn class_name(&self) -> &'static str {
        "ReLU"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, _training: bool) -> Result<Var> {
        Ok(rec.activation(x, Act::Relu)?)
    }
    fn config(&self) -> Value {
        json!({ "name": self.name, "max_value": null, "negative_slope": 0.0, "threshold": 0.0 })
    }
}
