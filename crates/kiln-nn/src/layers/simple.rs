//! Parameter-free layers: `Flatten`, `MaxPooling2D`, `Dropout`, `Activation`.

use kiln_autograd::{Activation as Act, ParamId, Params, PoolPadding, Recording, Var};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::error::{NnError, Result};
use crate::layer::{Layer, Pair, cfg_activation, cfg_name, cfg_pair, cfg_str};

macro_rules! no_params {
    () => {
        fn name(&self) -> Option<&str> {
            self.name.as_deref()
        }
        fn set_name(&mut self, name: String) {
            self.name = Some(name);
        }
        fn build(&mut self, _name: &str, input: &[usize], _params: &mut Params) -> Result<()> {
            self.output_shape(input).map(|_| ())
        }
        fn initialize(&self, _params: &mut Params, _rng: &mut ChaCha8Rng) -> Result<()> {
            Ok(())
        }
        fn weights(&self) -> Vec<(&'static str, ParamId)> {
            Vec::new()
        }
        fn box_clone(&self) -> Box<dyn Layer> {
            Box::new(self.clone())
        }
    };
}

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

/// Keras `MaxPooling2D(pool_size=2, strides=None → pool_size, padding="valid")` over NHWC.
#[derive(Debug, Clone)]
pub struct MaxPooling2D {
    name: Option<String>,
    pool_size: Pair,
    strides: Option<Pair>,
    padding: PoolPadding,
}

impl Default for MaxPooling2D {
    fn default() -> Self {
        MaxPooling2D { name: None, pool_size: Pair(2, 2), strides: None, padding: PoolPadding::Valid }
    }
}

impl MaxPooling2D {
    /// Pooling windows of `pool_size`, strides equal to the window.
    pub fn new(pool_size: impl Into<Pair>) -> Self {
        MaxPooling2D { pool_size: pool_size.into(), ..MaxPooling2D::default() }
    }
    /// Strides (default: the pool size).
    pub fn strides(mut self, s: impl Into<Pair>) -> Self {
        self.strides = Some(s.into());
        self
    }
    /// Padding (default valid).
    pub fn padding(mut self, p: PoolPadding) -> Self {
        self.padding = p;
        self
    }
    /// A fixed layer name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    fn stride(&self) -> Pair {
        self.strides.unwrap_or(self.pool_size)
    }
    /// Reads a `model.json` config.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let l = "MaxPooling2D";
        let padding = match cfg_str(l, cfg, "padding")? {
            "valid" => PoolPadding::Valid,
            "same" => PoolPadding::Same,
            _ => return Err(NnError::config(l, "`padding` must be \"valid\" or \"same\"")),
        };
        Ok(MaxPooling2D {
            name: cfg_name(cfg),
            pool_size: cfg_pair(l, cfg, "pool_size")?,
            strides: Some(cfg_pair(l, cfg, "strides")?),
            padding,
        })
    }
}

impl Layer for MaxPooling2D {
    no_params!();
    fn class_name(&self) -> &'static str {
        "MaxPooling2D"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let label = self.name.as_deref().unwrap_or("max_pooling2d");
        let [h, w, c] = input else {
            return Err(NnError::Data {
                what: "MaxPooling2D input",
                expected: "(height, width, channels)".into(),
                got: format!("{input:?}"),
            });
        };
        let (p, s) = (self.pool_size, self.stride());
        if p.0 == 0 || p.1 == 0 || s.0 == 0 || s.1 == 0 {
            return Err(NnError::config(label, "pool size and strides must be ≥ 1"));
        }
        let out = |n: usize, p: usize, s: usize| match self.padding {
            PoolPadding::Valid if n >= p => Ok((n - p) / s + 1),
            PoolPadding::Valid => Err(NnError::config(label, format!("pool {p} is larger than the input {n}"))),
            PoolPadding::Same => Ok(n.div_ceil(s)),
        };
        Ok(vec![out(*h, p.0, s.0)?, out(*w, p.1, s.1)?, *c])
    }
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, _training: bool) -> Result<Var> {
        let s = self.stride();
        Ok(rec.max_pool2d(x, (self.pool_size.0, self.pool_size.1), (s.0, s.1), self.padding)?)
    }
    fn config(&self) -> Value {
        let s = self.stride();
        let padding = if self.padding == PoolPadding::Same { "same" } else { "valid" };
        json!({
            "name": self.name,
            "pool_size": [self.pool_size.0, self.pool_size.1],
            "strides": [s.0, s.1],
            "padding": padding,
        })
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
