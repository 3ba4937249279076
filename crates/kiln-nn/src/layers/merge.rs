//! Functional merges: `Add` and `Concatenate`, the layers that join branches of a graph (residual blocks,
//! Inception-style branches). Called on several symbolic tensors ([`Call::call_on`](crate::symbolic::Call)).

use kiln_autograd::{Recording, Var};
use serde_json::{Value, json};

use crate::error::{NnError, Result};
use crate::layer::{Layer, cfg_name};

/// Keras `Add()([a, b, …])`: the elementwise sum of inputs of one shape, added left to right as Keras does.
#[derive(Debug, Clone, Default)]
pub struct Add {
    name: Option<String>,
}

impl Add {
    /// An add layer.
    pub fn new() -> Self {
        Add::default()
    }
    /// A fixed layer name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Reads a `model.json` config.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        Ok(Add { name: cfg_name(cfg) })
    }
    fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("add")
    }
}

impl Layer for Add {
    no_params!();
    fn class_name(&self) -> &'static str {
        "Add"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.output_shape_of(&[input])
    }
    fn output_shape_of(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let first = inputs.first().ok_or_else(|| NnError::config(self.label(), "needs at least one input"))?;
        if let Some(other) = inputs.iter().find(|s| s != &first) {
            return Err(NnError::config(
                self.label(),
                format!("inputs must have one shape; got {first:?} and {other:?}"),
            ));
        }
        Ok(first.to_vec())
    }
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, training: bool) -> Result<Var> {
        self.forward_of(rec, &[x], training)
    }
    fn forward_of(&self, rec: &mut Recording<'_, '_>, inputs: &[Var], _training: bool) -> Result<Var> {
        let (&first, rest) = inputs.split_first().ok_or_else(|| NnError::config(self.label(), "needs an input"))?;
        let mut sum = first;
        for &x in rest {
            sum = rec.add(sum, x)?;
        }
        Ok(sum)
    }
    fn config(&self) -> Value {
        json!({ "name": self.name })
    }
}

/// Keras `Concatenate(axis=-1)([a, b, …])`: inputs joined along `axis` (counted with the batch axis as Keras
/// does, negative from the end); every other dimension must agree.
#[derive(Debug, Clone)]
pub struct Concatenate {
    name: Option<String>,
    axis: i64,
}

impl Default for Concatenate {
    fn default() -> Self {
        Concatenate { name: None, axis: -1 }
    }
}

impl Concatenate {
    /// A concatenation along the last axis (Keras' default).
    pub fn new() -> Self {
        Concatenate::default()
    }
    /// The axis to join along (with the batch axis as 0; negative counts from the end).
    pub fn axis(mut self, axis: i64) -> Self {
        self.axis = axis;
        self
    }
    /// A fixed layer name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Reads a `model.json` config.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let axis = match cfg.get("axis") {
            None => -1,
            Some(v) => v.as_i64().ok_or_else(|| NnError::config("Concatenate", "`axis` must be an integer"))?,
        };
        Ok(Concatenate { name: cfg_name(cfg), axis })
    }
    fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("concatenate")
    }
    /// The axis within a sample's dimensions (the batched tensor's axis minus one) for per-sample rank `rank`.
    fn sample_axis(&self, rank: usize) -> Result<usize> {
        let full = rank as i64 + 1;
        let a = if self.axis < 0 { self.axis + full } else { self.axis };
        if a == 0 {
            return Err(NnError::config(self.label(), "joining along the batch axis (0) is not supported"));
        }
        if !(1..full).contains(&a) {
            return Err(NnError::config(
                self.label(),
                format!("axis {} is out of range for inputs of rank {full}", self.axis),
            ));
        }
        Ok(a as usize - 1)
    }
}

impl Layer for Concatenate {
    no_params!();
    fn class_name(&self) -> &'static str {
        "Concatenate"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.output_shape_of(&[input])
    }
    fn output_shape_of(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let first = inputs.first().ok_or_else(|| NnError::config(self.label(), "needs at least one input"))?;
        let axis = self.sample_axis(first.len())?;
        let mut out = first.to_vec();
        for other in &inputs[1..] {
            let fits = other.len() == first.len() && (0..first.len()).all(|i| i == axis || other[i] == first[i]);
            if !fits {
                return Err(NnError::config(
                    self.label(),
                    format!("inputs must agree in every dimension but axis {}; got {first:?} and {other:?}", self.axis),
                ));
            }
            out[axis] = out[axis]
                .checked_add(other[axis])
                .ok_or_else(|| NnError::config(self.label(), "the joined axis is too long"))?;
        }
        Ok(out)
    }
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, training: bool) -> Result<Var> {
        self.forward_of(rec, &[x], training)
    }
    fn forward_of(&self, rec: &mut Recording<'_, '_>, inputs: &[Var], _training: bool) -> Result<Var> {
        let (&first, rest) = inputs.split_first().ok_or_else(|| NnError::config(self.label(), "needs an input"))?;
        let axis = rec.dims(first)?.rank().saturating_sub(1);
        let axis = self.sample_axis(axis)? + 1;
        let mut joined = first;
        for &x in rest {
            joined = rec.concatenate(joined, x, axis)?;
        }
        Ok(joined)
    }
    fn config(&self) -> Value {
        json!({ "name": self.name, "axis": self.axis })
    }
}
