//! Learning-rate schedules (Keras `keras.optimizers.schedules`): the learning rate as a function of the optimizer
//! step, evaluated before every update at Keras' `optimizer.iterations` (0 for the first step), in `f32` as Keras
//! computes them.

use serde_json::{Value, json};

use crate::error::{NnError, Result};

/// Keras `ExponentialDecay`: `initial_learning_rate · decay_rate^(step / decay_steps)` (the exponent floored
/// when `staircase`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialDecay {
    /// The rate at step 0.
    pub initial_learning_rate: f32,
    /// Steps over which the rate is multiplied by `decay_rate` once.
    pub decay_steps: u64,
    /// The factor per `decay_steps`.
    pub decay_rate: f32,
    /// Decay in whole periods (Keras default false).
    pub staircase: bool,
}

impl ExponentialDecay {
    /// Keras `ExponentialDecay(initial_learning_rate, decay_steps, decay_rate)`; `decay_steps` must be > 0.
    pub fn new(initial_learning_rate: f32, decay_steps: u64, decay_rate: f32) -> Result<Self> {
        if decay_steps == 0 {
            return Err(NnError::config("ExponentialDecay", "decay_steps must be > 0"));
        }
        Ok(ExponentialDecay { initial_learning_rate, decay_steps, decay_rate, staircase: false })
    }

    /// Sets `staircase`.
    pub fn staircase(mut self, on: bool) -> Self {
        self.staircase = on;
        self
    }
}

/// Keras `PiecewiseConstantDecay`: `values[0]` while `step ≤ boundaries[0]`, `values[i]` while
/// `boundaries[i−1] < step ≤ boundaries[i]`, `values.last()` after the last boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct PiecewiseConstantDecay {
    /// Increasing step boundaries.
    pub boundaries: Vec<u64>,
    /// One more value than boundaries.
    pub values: Vec<f32>,
}

impl PiecewiseConstantDecay {
    /// Keras `PiecewiseConstantDecay(boundaries, values)`: `values` must have one more entry than `boundaries`,
    /// which must increase.
    pub fn new(boundaries: Vec<u64>, values: Vec<f32>) -> Result<Self> {
        if values.len() != boundaries.len() + 1 {
            return Err(NnError::config(
                "PiecewiseConstantDecay",
                format!(
                    "the length of boundaries ({}) should be 1 less than the length of values ({})",
                    boundaries.len(),
                    values.len()
                ),
            ));
        }
        if boundaries.windows(2).any(|w| w[0] >= w[1]) {
            return Err(NnError::config("PiecewiseConstantDecay", "boundaries must increase"));
        }
        Ok(PiecewiseConstantDecay { boundaries, values })
    }
}

/// Keras `CosineDecay`: an optional linear warmup from `initial_learning_rate` to `warmup_target` over
/// `warmup_steps`, then a cosine decay over `decay_steps` from the warmup target (or the initial rate) down to
/// `alpha` times it, constant afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct CosineDecay {
    /// The rate at step 0.
    pub initial_learning_rate: f32,
    /// Steps of the cosine part.
    pub decay_steps: u64,
    /// The final rate as a fraction of the decayed-from rate (Keras default 0).
    pub alpha: f32,
    /// The rate reached at the end of the warmup (Keras default none: no warmup).
    pub warmup_target: Option<f32>,
    /// Steps of the warmup (Keras default 0).
    pub warmup_steps: u64,
}

impl CosineDecay {
    /// Keras `CosineDecay(initial_learning_rate, decay_steps)`; `decay_steps` must be > 0.
    pub fn new(initial_learning_rate: f32, decay_steps: u64) -> Result<Self> {
        if decay_steps == 0 {
            return Err(NnError::config("CosineDecay", "decay_steps must be > 0"));
        }
        Ok(CosineDecay { initial_learning_rate, decay_steps, alpha: 0.0, warmup_target: None, warmup_steps: 0 })
    }

    /// Sets `alpha`.
    pub fn alpha(mut self, alpha: f32) -> Self {
        self.alpha = alpha;
        self
    }

    /// A linear warmup to `target` over `steps` steps before the decay.
    pub fn warmup(mut self, target: f32, steps: u64) -> Self {
        self.warmup_target = Some(target);
        self.warmup_steps = steps;
        self
    }

    fn decay(&self, step: f32, decay_steps: f32, from: f32) -> f32 {
        let completed = step / decay_steps;
        let cosine = 0.5 * (1.0 + (std::f32::consts::PI * completed).cos());
        // Keras computes `1 - alpha` on the Python float, then in f32.
        let decayed = (1.0 - f64::from(self.alpha)) as f32 * cosine + self.alpha;
        from * decayed
    }
}

/// A learning rate that changes with the step: one of Keras' schedules
/// ([`Model::set_learning_rate_schedule`](crate::Model::set_learning_rate_schedule)).
#[derive(Debug, Clone, PartialEq)]
pub enum LearningRateSchedule {
    /// [`ExponentialDecay`].
    ExponentialDecay(ExponentialDecay),
    /// [`PiecewiseConstantDecay`].
    PiecewiseConstantDecay(PiecewiseConstantDecay),
    /// [`CosineDecay`].
    CosineDecay(CosineDecay),
}

impl From<ExponentialDecay> for LearningRateSchedule {
    fn from(s: ExponentialDecay) -> Self {
        LearningRateSchedule::ExponentialDecay(s)
    }
}

impl From<PiecewiseConstantDecay> for LearningRateSchedule {
    fn from(s: PiecewiseConstantDecay) -> Self {
        LearningRateSchedule::PiecewiseConstantDecay(s)
    }
}

impl From<CosineDecay> for LearningRateSchedule {
    fn from(s: CosineDecay) -> Self {
        LearningRateSchedule::CosineDecay(s)
    }
}

impl LearningRateSchedule {
    /// The learning rate for the update that follows `step` earlier updates.
    pub fn at(&self, step: u64) -> f32 {
        // Keras casts the step to the rate's dtype (float32) before any arithmetic.
        let s = step as f32;
        match self {
            LearningRateSchedule::ExponentialDecay(e) => {
                let mut p = s / e.decay_steps as f32;
                if e.staircase {
                    p = p.floor();
                }
                e.initial_learning_rate * e.decay_rate.powf(p)
            }
            LearningRateSchedule::PiecewiseConstantDecay(p) => {
                let i = p.boundaries.iter().position(|&b| step <= b).unwrap_or(p.boundaries.len());
                p.values[i]
            }
            LearningRateSchedule::CosineDecay(c) => {
                let decay_steps = c.decay_steps as f32;
                match c.warmup_target {
                    None => c.decay(s.min(decay_steps), decay_steps, c.initial_learning_rate),
                    Some(target) => {
                        let warmup = c.warmup_steps as f32;
                        let s = s.min(decay_steps + warmup);
                        if s < warmup {
                            (target - c.initial_learning_rate) * (s / warmup) + c.initial_learning_rate
                        } else {
                            c.decay(s - warmup, decay_steps, target)
                        }
                    }
                }
            }
        }
    }

    /// Keras' serialized form (`{"class_name": …, "config": …}`), as `model.json` stores it in place of the
    /// optimizer's `learning_rate`.
    pub fn config(&self) -> Value {
        let f = |v: f32| -> f64 { v.to_string().parse().unwrap_or(f64::from(v)) };
        let (class, config) = match self {
            LearningRateSchedule::ExponentialDecay(e) => (
                "ExponentialDecay",
                json!({"initial_learning_rate": f(e.initial_learning_rate), "decay_steps": e.decay_steps,
                       "decay_rate": f(e.decay_rate), "staircase": e.staircase, "name": "ExponentialDecay"}),
            ),
            LearningRateSchedule::PiecewiseConstantDecay(p) => (
                "PiecewiseConstantDecay",
                json!({"boundaries": p.boundaries, "values": p.values.iter().map(|&v| f(v)).collect::<Vec<_>>(),
                       "name": "PiecewiseConstant"}),
            ),
            LearningRateSchedule::CosineDecay(c) => (
                "CosineDecay",
                json!({"initial_learning_rate": f(c.initial_learning_rate), "decay_steps": c.decay_steps,
                       "alpha": f(c.alpha), "name": "CosineDecay", "warmup_target": c.warmup_target.map(f),
                       "warmup_steps": c.warmup_steps}),
            ),
        };
        json!({"module": "keras.optimizers.schedules", "class_name": class, "config": config, "registered_name": null})
    }

    /// Reads [`LearningRateSchedule::config`] back (the same checks as the constructors).
    pub fn from_config(v: &Value) -> Result<Self> {
        let class = v.get("class_name").and_then(Value::as_str).unwrap_or("");
        let cfg = v.get("config").unwrap_or(&Value::Null);
        let bad = |m: String| NnError::config("learning rate schedule", m);
        let num = |k: &str| -> Result<f32> {
            cfg.get(k).and_then(Value::as_f64).map(|v| v as f32).ok_or_else(|| bad(format!("`{k}` must be a number")))
        };
        let int = |k: &str| -> Result<u64> {
            cfg.get(k).and_then(Value::as_u64).ok_or_else(|| bad(format!("`{k}` must be a non-negative integer")))
        };
        Ok(match class {
            "ExponentialDecay" => {
                ExponentialDecay::new(num("initial_learning_rate")?, int("decay_steps")?, num("decay_rate")?)?
                    .staircase(cfg.get("staircase").and_then(Value::as_bool).unwrap_or(false))
                    .into()
            }
            "PiecewiseConstantDecay" => {
                let list =
                    |k: &str| cfg.get(k).and_then(Value::as_array).ok_or_else(|| bad(format!("`{k}` must be a list")));
                let boundaries = list("boundaries")?
                    .iter()
                    .map(|b| b.as_u64().ok_or_else(|| bad("boundaries must be non-negative integers".into())))
                    .collect::<Result<Vec<_>>>()?;
                let values = list("values")?
                    .iter()
                    .map(|b| b.as_f64().map(|v| v as f32).ok_or_else(|| bad("values must be numbers".into())))
                    .collect::<Result<Vec<_>>>()?;
                PiecewiseConstantDecay::new(boundaries, values)?.into()
            }
            "CosineDecay" => {
                let mut c = CosineDecay::new(num("initial_learning_rate")?, int("decay_steps")?)?.alpha(num("alpha")?);
                if let Some(t) = cfg.get("warmup_target").filter(|t| !t.is_null()) {
                    let t = t.as_f64().ok_or_else(|| bad("`warmup_target` must be a number".into()))? as f32;
                    c = c.warmup(t, int("warmup_steps")?);
                }
                c.into()
            }
            _ => {
                return Err(NnError::Unknown {
                    kind: "learning rate schedule",
                    name: class.to_owned(),
                    known: "ExponentialDecay, PiecewiseConstantDecay, CosineDecay",
                });
            }
        })
    }
}
