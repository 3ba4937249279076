//! Keras `BatchNormalization(axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True)`.

use kiln_autograd::{ParamId, Params, Recording, Var};
use kiln_tensor::Tensor;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::error::{NnError, Result};
use crate::layer::{Layer, cfg_bool, cfg_name};

/// Normalizes each channel (the last axis) to zero mean and unit variance, then scales by `gamma` and shifts by
/// `beta` (Keras `BatchNormalization`). In training it uses the statistics of the **whole batch** — also when
/// the batch is split across data-parallel replicas, whose partial sums are added in replica order — and moves
/// `moving_mean`/`moving_variance` towards them (`moving·momentum + batch·(1 − momentum)`, biased variance, as
/// Keras); in inference it uses the moving statistics. The moving statistics are non-trainable weights (counted
/// in `summary()`'s "Non-trainable params", saved and loaded with the model).
#[derive(Debug, Clone)]
pub struct BatchNormalization {
    name: Option<String>,
    momentum: f32,
    epsilon: f32,
    center: bool,
    scale: bool,
    ids: Option<Ids>,
    /// Whether the model fused the following `Activation("relu")` into this layer ([`Layer::fuse_relu`]).
    fused_relu: bool,
}

#[derive(Debug, Clone, Copy)]
struct Ids {
    gamma: Option<ParamId>,
    beta: Option<ParamId>,
    moving_mean: ParamId,
    moving_variance: ParamId,
}

impl Default for BatchNormalization {
    fn default() -> Self {
        BatchNormalization::new()
    }
}

impl BatchNormalization {
    /// Keras' defaults: momentum 0.99, epsilon 1e-3, with `gamma` and `beta`.
    pub fn new() -> Self {
        BatchNormalization {
            name: None,
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            ids: None,
            fused_relu: false,
        }
    }
    /// The moving statistics' momentum (default 0.99).
    pub fn momentum(mut self, m: f32) -> Self {
        self.momentum = m;
        self
    }
    /// Added to the variance before the square root (default 1e-3).
    pub fn epsilon(mut self, e: f32) -> Self {
        self.epsilon = e;
        self
    }
    /// Whether to add the offset `beta` (default true).
    pub fn center(mut self, on: bool) -> Self {
        self.center = on;
        self
    }
    /// Whether to multiply by `gamma` (default true).
    pub fn scale(mut self, on: bool) -> Self {
        self.scale = on;
        self
    }
    /// A fixed layer name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Reads a `model.json` config (Keras' keys; only the last axis is supported, and the default
    /// initializers, regularizers and constraints).
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let l = "BatchNormalization";
        let num = |k: &str, default: f32| -> Result<f32> {
            match cfg.get(k) {
                None => Ok(default),
                Some(v) => {
                    v.as_f64().map(|v| v as f32).ok_or_else(|| NnError::config(l, format!("`{k}` must be a number")))
                }
            }
        };
        match cfg.get("axis") {
            None => {}
            Some(Value::Number(n)) if n.as_i64() == Some(-1) => {}
            Some(Value::Array(a)) if a.len() == 1 && a[0].as_i64() == Some(-1) => {}
            Some(other) => {
                return Err(NnError::config(l, format!("axis {other} is not supported (only the last axis, -1)")));
            }
        }
        let known_init = [
            ("beta_initializer", "Zeros"),
            ("gamma_initializer", "Ones"),
            ("moving_mean_initializer", "Zeros"),
            ("moving_variance_initializer", "Ones"),
        ];
        for (k, want) in known_init {
            if let Some(v) = cfg.get(k) {
                let class = v.get("class_name").and_then(Value::as_str).or(v.as_str());
                if !class.is_some_and(|c| c.eq_ignore_ascii_case(want)) {
                    return Err(NnError::config(l, format!("`{k}` {v} is not supported (only {want})")));
                }
            }
        }
        for k in ["beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"] {
            if cfg.get(k).is_some_and(|v| !v.is_null()) {
                return Err(NnError::config(l, format!("`{k}` is not supported")));
            }
        }
        // `synchronized` needs nothing: Kiln's statistics are always over the whole batch.
        let mut b = BatchNormalization::new().momentum(num("momentum", 0.99)?).epsilon(num("epsilon", 1e-3)?);
        if cfg.get("center").is_some() {
            b.center = cfg_bool(l, cfg, "center")?;
        }
        if cfg.get("scale").is_some() {
            b.scale = cfg_bool(l, cfg, "scale")?;
        }
        b.name = cfg_name(cfg);
        Ok(b)
    }

    fn ids(&self) -> Result<Ids> {
        self.ids.ok_or_else(|| NnError::config("BatchNormalization", "forward before build"))
    }

    fn affine(&self, rec: &mut Recording<'_, '_>) -> Result<(Option<Var>, Option<Var>)> {
        let ids = self.ids()?;
        let g = ids.gamma.map(|g| rec.param(g)).transpose()?;
        let b = ids.beta.map(|b| rec.param(b)).transpose()?;
        Ok((g, b))
    }
}

impl Layer for BatchNormalization {
    fn class_name(&self) -> &'static str {
        "BatchNormalization"
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn set_name(&mut self, name: String) {
        self.name = Some(name);
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let layer = self.name.as_deref().unwrap_or("batch_normalization");
        if input.last().is_none_or(|&c| c == 0) {
            return Err(NnError::config(layer, format!("input {input:?} has no channel axis")));
        }
        if !(self.epsilon > 0.0 && self.epsilon.is_finite() && (0.0..=1.0).contains(&self.momentum)) {
            return Err(NnError::config(layer, "epsilon must be > 0 and momentum in [0, 1]"));
        }
        Ok(input.to_vec())
    }
    fn build(&mut self, name: &str, input: &[usize], params: &mut Params) -> Result<()> {
        self.output_shape(input)?;
        let c = input.last().copied().unwrap_or(1);
        let mut add = |short: &str, trainable: bool| -> Result<ParamId> {
            Ok(params.add(format!("{name}/{short}"), &Tensor::zeros(&[c])?, trainable)?)
        };
        let gamma = self.scale.then(|| add("gamma", true)).transpose()?;
        let beta = self.center.then(|| add("beta", true)).transpose()?;
        let moving_mean = add("moving_mean", false)?;
        let moving_variance = add("moving_variance", false)?;
        self.ids = Some(Ids { gamma, beta, moving_mean, moving_variance });
        Ok(())
    }
    fn initialize(&self, params: &mut Params, _rng: &mut ChaCha8Rng) -> Result<()> {
        let ids = self.ids()?;
        for (id, v) in
            [(ids.gamma, 1.0), (ids.beta, 0.0), (Some(ids.moving_mean), 0.0), (Some(ids.moving_variance), 1.0)]
        {
            if let Some(id) = id {
                params.value_mut(id)?.fill(v);
            }
        }
        Ok(())
    }
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, training: bool) -> Result<Var> {
        if training {
            self.forward_partials(rec, x)?;
            rec.exchange_alone();
            return self.forward_global(rec, x);
        }
        let ids = self.ids()?;
        let (g, b) = self.affine(rec)?;
        let (m, v) = (rec.param(ids.moving_mean)?, rec.param(ids.moving_variance)?);
        Ok(rec.batch_norm_inference(x, m, v, g, b, self.epsilon, self.fused_relu)?)
    }
    fn batch_statistics(&self) -> bool {
        true
    }
    fn fuse_relu(&mut self) -> bool {
        self.fused_relu = true;
        true
    }
    fn forward_partials(&self, rec: &mut Recording<'_, '_>, x: Var) -> Result<()> {
        let shift = rec.param(self.ids()?.moving_mean)?;
        Ok(rec.batch_norm_partials(x, Some(shift))?)
    }
    fn forward_global(&self, rec: &mut Recording<'_, '_>, x: Var) -> Result<Var> {
        let ids = self.ids()?;
        let (g, b) = self.affine(rec)?;
        let shift = rec.param(ids.moving_mean)?;
        let out = rec.batch_norm_global(x, Some(shift), g, b, self.epsilon, self.fused_relu)?;
        for (id, batch) in [(ids.moving_mean, out.mean), (ids.moving_variance, out.variance)] {
            let moving = rec.param(id)?;
            let next = rec.moving_average(moving, batch, self.momentum)?;
            rec.assign(id, next)?;
        }
        Ok(out.y)
    }
    fn weights(&self) -> Vec<(&'static str, ParamId)> {
        let Some(ids) = self.ids else { return Vec::new() };
        let mut w = Vec::new();
        w.extend(ids.gamma.map(|g| ("gamma", g)));
        w.extend(ids.beta.map(|b| ("beta", b)));
        w.push(("moving_mean", ids.moving_mean));
        w.push(("moving_variance", ids.moving_variance));
        w
    }
    fn config(&self) -> Value {
        let f = |v: f32| -> f64 { v.to_string().parse().unwrap_or(f64::from(v)) };
        json!({
            "name": self.name,
            "axis": -1,
            "momentum": f(self.momentum),
            "epsilon": f(self.epsilon),
            "center": self.center,
            "scale": self.scale,
        })
    }
    fn box_clone(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}
