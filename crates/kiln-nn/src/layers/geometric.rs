//! Keras' geometric augmentation layers — `RandomTranslation`, `RandomRotation`, `RandomZoom` — active only in
//! training: each image gets its own random transform (drawn from the model's seed, step and replica, like
//! `Dropout`'s masks), applied by TensorFlow's projective transform with bilinear interpolation and Keras' fill
//! modes (`kiln_autograd::ops::affine_transform`). The transforms are Keras' for the same draws; the draws
//! themselves come from Kiln's generator, not TensorFlow's.

use kiln_autograd::{FillMode, Recording, Var};
use rand::RngExt;
use serde_json::{Value, json};

use crate::error::{NnError, Result};
use crate::layer::{Layer, cfg_name};

/// A factor range `(lower, upper)`; Keras' single number `f` is `(−f, f)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Factor(pub f32, pub f32);

impl From<f32> for Factor {
    fn from(f: f32) -> Self {
        Factor(-f.abs(), f.abs())
    }
}

impl From<(f32, f32)> for Factor {
    fn from((lo, hi): (f32, f32)) -> Self {
        Factor(lo, hi)
    }
}

impl Factor {
    fn check(self, layer: &str, what: &str) -> Result<()> {
        if !(self.0.is_finite() && self.1.is_finite() && self.0 <= self.1) {
            return Err(NnError::config(layer, format!("`{what}` must be finite with lower ≤ upper")));
        }
        Ok(())
    }

    fn draw(self, rng: &mut rand_chacha::ChaCha8Rng) -> f32 {
        if self.0 == self.1 { self.0 } else { rng.random_range(self.0..self.1) }
    }

    fn json(self) -> Value {
        let f = |v: f32| -> f64 { v.to_string().parse().unwrap_or(f64::from(v)) };
        json!([f(self.0), f(self.1)])
    }

    fn from_json(layer: &str, v: Option<&Value>, key: &str) -> Result<Option<Self>> {
        let bad = || NnError::config(layer, format!("`{key}` must be a number or a pair of numbers"));
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(Some(Factor::from(n.as_f64().ok_or_else(bad)? as f32))),
            Some(Value::Array(a)) if a.len() == 2 => {
                let lo = a[0].as_f64().ok_or_else(bad)? as f32;
                let hi = a[1].as_f64().ok_or_else(bad)? as f32;
                Ok(Some(Factor(lo, hi)))
            }
            Some(_) => Err(bad()),
        }
    }
}

/// What the three layers share: fill mode and value, and Keras' config keys for them.
#[derive(Debug, Clone, Copy)]
struct Fill {
    mode: FillMode,
    value: f32,
}

impl Fill {
    fn from_config(layer: &str, cfg: &Value) -> Result<Self> {
        let mode = match cfg.get("fill_mode").and_then(Value::as_str) {
            None => FillMode::Reflect,
            Some(m) => {
                FillMode::from_name(m).ok_or_else(|| NnError::config(layer, format!("unknown fill_mode `{m}`")))?
            }
        };
        if let Some(i) = cfg.get("interpolation").and_then(Value::as_str).filter(|&i| i != "bilinear") {
            return Err(NnError::config(layer, format!("interpolation `{i}` is not supported (only bilinear)")));
        }
        if cfg.get("seed").is_some_and(|s| !s.is_null()) {
            return Err(NnError::config(layer, "a per-layer `seed` is not supported (Kiln uses the model's)"));
        }
        let value = cfg.get("fill_value").and_then(Value::as_f64).unwrap_or(0.0) as f32;
        Ok(Fill { mode, value })
    }

    fn config(self, cfg: &mut Value) {
        cfg["fill_mode"] = json!(self.mode.name());
        cfg["interpolation"] = json!("bilinear");
        cfg["seed"] = Value::Null;
        cfg["fill_value"] = json!(f64::from(self.value));
        cfg["data_format"] = json!("channels_last");
    }
}

fn image_shape(layer: &str, input: &[usize]) -> Result<Vec<usize>> {
    if input.len() != 3 {
        return Err(NnError::Data {
            what: "augmentation input",
            expected: format!("(height, width, channels) for {layer}"),
            got: format!("{input:?}"),
        });
    }
    Ok(input.to_vec())
}

/// Draws one transform per image of `x` with `make(rng, height, width, out)` and applies it.
fn transform(
    rec: &mut Recording<'_, '_>,
    x: Var,
    fill: Fill,
    make: impl Fn(&mut rand_chacha::ChaCha8Rng, f32, f32, &mut [f32]),
) -> Result<Var> {
    let d = rec.dims(x)?;
    let (n, h, w) = (d.get(0), d.get(1) as f32, d.get(2) as f32);
    let t = rec.input_random(&[n, 8], |rng, t| {
        for row in t.chunks_exact_mut(8) {
            make(rng, h, w, row);
        }
    })?;
    Ok(rec.affine_transform(x, t, fill.mode, fill.value)?)
}

/// The builder methods the three layers share: fill mode, fill value, name.
macro_rules! fill_builders {
    () => {
        /// How points outside the image are filled (default reflect).
        pub fn fill_mode(mut self, mode: FillMode) -> Self {
            self.fill.mode = mode;
            self
        }
        /// The value of `constant` filling (default 0).
        pub fn fill_value(mut self, v: f32) -> Self {
            self.fill.value = v;
            self
        }
        /// A fixed layer name.
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.name = Some(name.into());
            self
        }
    };
}

macro_rules! geometric_layer_common {
    ($class:literal) => {
        fn class_name(&self) -> &'static str {
            $class
        }
        fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
            self.check()?;
            image_shape($class, input)
        }
    };
}

/// Keras `RandomTranslation(height_factor, width_factor, fill_mode="reflect", interpolation="bilinear",
/// fill_value=0.0)`: in training each image moves by a random fraction of its height and width (`f` means
/// `[−f, f]`); in inference it passes unchanged.
#[derive(Debug, Clone)]
pub struct RandomTranslation {
    name: Option<String>,
    height: Factor,
    width: Factor,
    fill: Fill,
}

impl RandomTranslation {
    /// Random shifts within `height_factor` × height and `width_factor` × width.
    pub fn new(height_factor: impl Into<Factor>, width_factor: impl Into<Factor>) -> Self {
        let fill = Fill { mode: FillMode::Reflect, value: 0.0 };
        RandomTranslation { name: None, height: height_factor.into(), width: width_factor.into(), fill }
    }
    fill_builders!();
    /// Reads a `model.json` (or Keras) config.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let l = "RandomTranslation";
        let need = |k: &str| {
            Factor::from_json(l, cfg.get(k), k)?.ok_or_else(|| NnError::config(l, format!("`{k}` is required")))
        };
        let mut t = RandomTranslation::new(need("height_factor")?, need("width_factor")?);
        t.fill = Fill::from_config(l, cfg)?;
        t.name = cfg_name(cfg);
        Ok(t)
    }
    fn check(&self) -> Result<()> {
        let l = self.name.as_deref().unwrap_or("random_translation");
        self.height.check(l, "height_factor")?;
        self.width.check(l, "width_factor")
    }
}

impl Layer for RandomTranslation {
    no_params!();
    geometric_layer_common!("RandomTranslation");
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, training: bool) -> Result<Var> {
        if !training {
            return Ok(x);
        }
        let (hf, wf) = (self.height, self.width);
        transform(rec, x, self.fill, |rng, h, w, t| {
            let dy = hf.draw(rng) * h;
            let dx = wf.draw(rng) * w;
            t.copy_from_slice(&[1.0, 0.0, -dx, 0.0, 1.0, -dy, 0.0, 0.0]);
        })
    }
    fn config(&self) -> Value {
        let mut c = json!({"name": self.name, "height_factor": self.height.json(), "width_factor": self.width.json()});
        self.fill.config(&mut c);
        c
    }
}

/// Keras `RandomRotation(factor, fill_mode="reflect", interpolation="bilinear", fill_value=0.0)`: in training each
/// image turns about its centre by a random fraction of a full turn (`f` means `[−f, f]`, so 0.1 is ±36°); in
/// inference it passes unchanged.
#[derive(Debug, Clone)]
pub struct RandomRotation {
    name: Option<String>,
    factor: Factor,
    fill: Fill,
}

impl RandomRotation {
    /// Random rotations within `factor` × 2π.
    pub fn new(factor: impl Into<Factor>) -> Self {
        RandomRotation { name: None, factor: factor.into(), fill: Fill { mode: FillMode::Reflect, value: 0.0 } }
    }
    fill_builders!();
    /// Reads a `model.json` (or Keras) config.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let l = "RandomRotation";
        let factor = Factor::from_json(l, cfg.get("factor"), "factor")?
            .ok_or_else(|| NnError::config(l, "`factor` is required"))?;
        let mut r = RandomRotation::new(factor);
        r.fill = Fill::from_config(l, cfg)?;
        r.name = cfg_name(cfg);
        Ok(r)
    }
    fn check(&self) -> Result<()> {
        self.factor.check(self.name.as_deref().unwrap_or("random_rotation"), "factor")
    }
}

impl Layer for RandomRotation {
    no_params!();
    geometric_layer_common!("RandomRotation");
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, training: bool) -> Result<Var> {
        if !training {
            return Ok(x);
        }
        let f = self.factor;
        transform(rec, x, self.fill, |rng, h, w, t| {
            let angle = f.draw(rng) * 2.0 * std::f32::consts::PI;
            let (s, c) = angle.sin_cos();
            let x_off = ((w - 1.0) - (c * (w - 1.0) - s * (h - 1.0))) / 2.0;
            let y_off = ((h - 1.0) - (s * (w - 1.0) + c * (h - 1.0))) / 2.0;
            t.copy_from_slice(&[c, -s, x_off, s, c, y_off, 0.0, 0.0]);
        })
    }
    fn config(&self) -> Value {
        let mut c = json!({"name": self.name, "factor": self.factor.json()});
        self.fill.config(&mut c);
        c
    }
}

/// Keras `RandomZoom(height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear",
/// fill_value=0.0)`: in training each image is scaled about its centre by `1 + u`, `u` drawn from the factor
/// (positive zooms out); without a width factor both axes take the same draw (the aspect ratio is kept). In
/// inference it passes unchanged.
#[derive(Debug, Clone)]
pub struct RandomZoom {
    name: Option<String>,
    height: Factor,
    width: Option<Factor>,
    fill: Fill,
}

impl RandomZoom {
    /// Random zooms by `1 + u`, `u` in `height_factor` (both axes).
    pub fn new(height_factor: impl Into<Factor>) -> Self {
        let fill = Fill { mode: FillMode::Reflect, value: 0.0 };
        RandomZoom { name: None, height: height_factor.into(), width: None, fill }
    }
    /// A separate zoom range for the width.
    pub fn width_factor(mut self, f: impl Into<Factor>) -> Self {
        self.width = Some(f.into());
        self
    }
    fill_builders!();
    /// Reads a `model.json` (or Keras) config.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let l = "RandomZoom";
        let height = Factor::from_json(l, cfg.get("height_factor"), "height_factor")?
            .ok_or_else(|| NnError::config(l, "`height_factor` is required"))?;
        let mut z = RandomZoom::new(height);
        z.width = Factor::from_json(l, cfg.get("width_factor"), "width_factor")?;
        z.fill = Fill::from_config(l, cfg)?;
        z.name = cfg_name(cfg);
        Ok(z)
    }
    fn check(&self) -> Result<()> {
        let l = self.name.as_deref().unwrap_or("random_zoom");
        self.height.check(l, "height_factor")?;
        if let Some(w) = self.width {
            w.check(l, "width_factor")?;
        }
        if self.height.0 <= -1.0 || self.width.is_some_and(|w| w.0 <= -1.0) {
            return Err(NnError::config(l, "zoom factors must be above −1 (a zoom of 1 + u > 0)"));
        }
        Ok(())
    }
}

impl Layer for RandomZoom {
    no_params!();
    geometric_layer_common!("RandomZoom");
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, training: bool) -> Result<Var> {
        if !training {
            return Ok(x);
        }
        let (hf, wf) = (self.height, self.width);
        transform(rec, x, self.fill, |rng, h, w, t| {
            let zy = 1.0 + hf.draw(rng);
            let zx = wf.map_or(zy, |f| 1.0 + f.draw(rng));
            t.copy_from_slice(&[
                zx,
                0.0,
                (w - 1.0) / 2.0 * (1.0 - zx),
                0.0,
                zy,
                (h - 1.0) / 2.0 * (1.0 - zy),
                0.0,
                0.0,
            ]);
        })
    }
    fn config(&self) -> Value {
        let w = self.width.map_or(Value::Null, Factor::json);
        let mut c = json!({"name": self.name, "height_factor": self.height.json(), "width_factor": w});
        self.fill.config(&mut c);
        c
    }
}
