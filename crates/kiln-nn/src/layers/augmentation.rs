//! Data augmentation layers (Keras' preprocessing layers that act only in training): `RandomFlip`. Their
//! randomness comes from the model's seed, step and replica, like `Dropout`'s, so a run is reproducible and
//! bitwise identical for any thread count.

use kiln_autograd::{Recording, Var};
use serde_json::{Value, json};

use crate::error::{NnError, Result};
use crate::layer::{Layer, cfg_name, cfg_str};

/// Which axes [`RandomFlip`] mirrors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlipMode {
    /// Left–right (`"horizontal"`).
    Horizontal,
    /// Top–bottom (`"vertical"`).
    Vertical,
    /// Both, each drawn independently (`"horizontal_and_vertical"`, Keras' default).
    #[default]
    HorizontalAndVertical,
}

impl FlipMode {
    fn name(self) -> &'static str {
        match self {
            FlipMode::Horizontal => "horizontal",
            FlipMode::Vertical => "vertical",
            FlipMode::HorizontalAndVertical => "horizontal_and_vertical",
        }
    }
}

/// Keras `RandomFlip(mode="horizontal_and_vertical")`: in training, each image is mirrored along the mode's axes,
/// each with probability ½; in inference it passes unchanged. Keras' `seed` argument is not taken: the draws
/// follow the model's seed ([`Model::set_seed`](crate::Model::set_seed)).
#[derive(Debug, Clone, Default)]
pub struct RandomFlip {
    name: Option<String>,
    mode: FlipMode,
}

impl RandomFlip {
    /// Flips along `mode`'s axes.
    pub fn new(mode: FlipMode) -> Self {
        RandomFlip { name: None, mode }
    }
    /// A fixed layer name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Reads a `model.json` (or Keras) config; a non-null `seed` is refused rather than ignored.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let mode = match cfg_str("RandomFlip", cfg, "mode")? {
            "horizontal" => FlipMode::Horizontal,
            "vertical" => FlipMode::Vertical,
            "horizontal_and_vertical" => FlipMode::HorizontalAndVertical,
            other => return Err(NnError::config("RandomFlip", format!("unknown mode `{other}`"))),
        };
        if cfg.get("seed").is_some_and(|s| !s.is_null()) {
            return Err(NnError::config("RandomFlip", "a per-layer `seed` is not supported (Kiln uses the model's)"));
        }
        Ok(RandomFlip { name: cfg_name(cfg), mode })
    }
}

impl Layer for RandomFlip {
    no_params!();
    fn class_name(&self) -> &'static str {
        "RandomFlip"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.len() != 3 {
            return Err(NnError::Data {
                what: "RandomFlip input",
                expected: "(height, width, channels)".into(),
                got: format!("{input:?}"),
            });
        }
        Ok(input.to_vec())
    }
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, training: bool) -> Result<Var> {
        if !training {
            return Ok(x);
        }
        let h = self.mode != FlipMode::Vertical;
        let v = self.mode != FlipMode::Horizontal;
        Ok(rec.random_flip(x, h, v)?)
    }
    fn config(&self) -> Value {
        json!({"name": self.name, "mode": self.mode.name(), "seed": null, "data_format": "channels_last"})
    }
}
