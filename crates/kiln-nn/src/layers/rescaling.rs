//! Keras `Rescaling(scale, offset=0.0)`: `inputs * scale + offset`, in training and inference alike (e.g.
//! `Rescaling(1/255)` turns raw pixels into [0, 1] inside the model).

use kiln_autograd::{Recording, Var};
use serde_json::{Value, json};

use crate::error::{NnError, Result};
use crate::layer::{Layer, cfg_name};

/// Keras `Rescaling(scale, offset=0.0)`.
#[derive(Debug, Clone)]
pub struct Rescaling {
    name: Option<String>,
    scale: f32,
    offset: f32,
}

impl Rescaling {
    /// `inputs * scale`.
    pub fn new(scale: f32) -> Self {
        Rescaling { name: None, scale, offset: 0.0 }
    }
    /// Adds `offset` after scaling.
    pub fn offset(mut self, offset: f32) -> Self {
        self.offset = offset;
        self
    }
    /// A fixed layer name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Reads a `model.json` config.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let num = |k: &str, default: Option<f32>| -> Result<f32> {
            match cfg.get(k) {
                None if default.is_some() => Ok(default.unwrap_or_default()),
                v => v
                    .and_then(Value::as_f64)
                    .map(|v| v as f32)
                    .ok_or_else(|| NnError::config("Rescaling", format!("`{k}` must be a number"))),
            }
        };
        Ok(Rescaling { name: cfg_name(cfg), scale: num("scale", None)?, offset: num("offset", Some(0.0))? })
    }
}

impl Layer for Rescaling {
    no_params!();
    fn class_name(&self) -> &'static str {
        "Rescaling"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if !(self.scale.is_finite() && self.offset.is_finite()) {
            return Err(NnError::config(
                self.name.as_deref().unwrap_or("rescaling"),
                "scale and offset must be finite",
            ));
        }
        Ok(input.to_vec())
    }
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, _training: bool) -> Result<Var> {
        Ok(rec.rescale(x, self.scale, self.offset)?)
    }
    fn config(&self) -> Value {
        let f = |v: f32| -> f64 { v.to_string().parse().unwrap_or(f64::from(v)) };
        json!({"name": self.name, "scale": f(self.scale), "offset": f(self.offset)})
    }
}
