//! Losses, metrics and optimizers by Keras name, with Keras 3 defaults.

use kiln_autograd::{ParamId, Params};
use kiln_kernels::optim::{AdamParams, Average, RmsPropParams, SgdParams, Stream, Update, stream_buffer};
use kiln_kernels::{AlignedVec, Kernels};
use serde_json::{Value, json};

use crate::error::{NnError, Result};

/// A training loss (Keras names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// `categorical_crossentropy`: one-hot (or soft) targets; fused with a softmax output.
    CategoricalCrossentropy,
    /// `sparse_categorical_crossentropy`: class-index targets.
    SparseCategoricalCrossentropy,
    /// `mse` / `mean_squared_error`.
    MeanSquaredError,
}

impl Loss {
    /// Parses a Keras loss name.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "categorical_crossentropy" => Loss::CategoricalCrossentropy,
            "sparse_categorical_crossentropy" => Loss::SparseCategoricalCrossentropy,
            "mse" | "mean_squared_error" => Loss::MeanSquaredError,
            _ => {
                return Err(NnError::Unknown {
                    kind: "loss",
                    name: name.to_owned(),
                    known: "categorical_crossentropy, sparse_categorical_crossentropy, mse",
                });
            }
        })
    }

    /// The Keras name.
    pub fn name(self) -> &'static str {
        match self {
            Loss::CategoricalCrossentropy => "categorical_crossentropy",
            Loss::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
            Loss::MeanSquaredError => "mse",
        }
    }
}

/// A metric reported by `fit` and `evaluate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `accuracy`: the predicted class (arg-max) equals the target class (arg-max of one-hot targets, or the
    /// class index for sparse targets).
    Accuracy,
}

impl Metric {
    /// Parses a Keras metric name (`accuracy`, `acc`).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "accuracy" | "acc" | "categorical_accuracy" | "sparse_categorical_accuracy" => Ok(Metric::Accuracy),
            _ => Err(NnError::Unknown { kind: "metric", name: name.to_owned(), known: "accuracy" }),
        }
    }
}

/// An optimizer with its hyper-parameters (Keras 3 formulas and defaults, see `kiln_kernels::optim`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// RMSprop (Keras' default for `compile`): lr 1e-3, ρ 0.9, ε 1e-7 inside the root.
    RmsProp(RmsPropParams),
    /// Adam: lr 1e-3, β₁ 0.9, β₂ 0.999, ε 1e-7.
    Adam(AdamParams),
    /// AdamW: Adam with decoupled weight decay, Keras' default 0.004 (`w ← w − (w·wd)·lr` before each update).
    AdamW(AdamParams),
    /// SGD: lr 0.01, optional momentum and Nesterov.
    Sgd(SgdParams),
}

impl Default for Optimizer {
    fn default() -> Self {
        Optimizer::rmsprop()
    }
}

impl Optimizer {
    /// RMSprop with Keras defaults.
    pub fn rmsprop() -> Self {
        Optimizer::RmsProp(RmsPropParams::default())
    }
    /// Adam with Keras defaults.
    pub fn adam() -> Self {
        Optimizer::Adam(AdamParams::default())
    }
    /// AdamW with Keras defaults (lr 1e-3, weight decay 0.004, β₁ 0.9, β₂ 0.999, ε 1e-7).
    pub fn adamw() -> Self {
        Optimizer::AdamW(AdamParams { weight_decay: 0.004, ..AdamParams::default() })
    }
    /// SGD with Keras defaults (lr 0.01, no momentum).
    pub fn sgd() -> Self {
        Optimizer::Sgd(SgdParams::default())
    }
    /// SGD with momentum (and optionally Nesterov).
    pub fn sgd_momentum(lr: f32, momentum: f32, nesterov: bool) -> Self {
        Optimizer::Sgd(SgdParams { lr, momentum, nesterov, ..SgdParams::default() })
    }

    /// Parses `rmsprop`, `adam` or `sgd` (with defaults).
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "rmsprop" => Ok(Optimizer::rmsprop()),
            "adam" => Ok(Optimizer::adam()),
            "adamw" => Ok(Optimizer::adamw()),
            "sgd" => Ok(Optimizer::sgd()),
            _ => Err(NnError::Unknown { kind: "optimizer", name: name.to_owned(), known: "rmsprop, adam, adamw, sgd" }),
        }
    }

    /// The same optimizer with another learning rate.
    pub fn learning_rate(self, lr: f32) -> Self {
        match self {
            Optimizer::RmsProp(p) => Optimizer::RmsProp(RmsPropParams { lr, ..p }),
            Optimizer::Adam(p) => Optimizer::Adam(AdamParams { lr, ..p }),
            Optimizer::AdamW(p) => Optimizer::AdamW(AdamParams { lr, ..p }),
            Optimizer::Sgd(p) => Optimizer::Sgd(SgdParams { lr, ..p }),
        }
    }

    /// The same optimizer with Keras 3's decoupled weight decay `wd` (any optimizer takes it; 0 = none).
    pub fn weight_decay(self, wd: f32) -> Self {
        match self {
            Optimizer::RmsProp(p) => Optimizer::RmsProp(RmsPropParams { weight_decay: wd, ..p }),
            Optimizer::Adam(p) => Optimizer::Adam(AdamParams { weight_decay: wd, ..p }),
            Optimizer::AdamW(p) => Optimizer::AdamW(AdamParams { weight_decay: wd, ..p }),
            Optimizer::Sgd(p) => Optimizer::Sgd(SgdParams { weight_decay: wd, ..p }),
        }
    }

    /// The weight decay (0 = none).
    pub fn decay(self) -> f32 {
        match self {
            Optimizer::RmsProp(p) => p.weight_decay,
            Optimizer::Adam(p) | Optimizer::AdamW(p) => p.weight_decay,
            Optimizer::Sgd(p) => p.weight_decay,
        }
    }

    /// The learning rate.
    pub fn lr(self) -> f32 {
        match self {
            Optimizer::RmsProp(p) => p.lr,
            Optimizer::Adam(p) | Optimizer::AdamW(p) => p.lr,
            Optimizer::Sgd(p) => p.lr,
        }
    }

    /// The Keras name.
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::RmsProp(_) => "rmsprop",
            Optimizer::Adam(_) => "adam",
            Optimizer::AdamW(_) => "adamw",
            Optimizer::Sgd(_) => "sgd",
        }
    }

    /// Hyper-parameters as JSON (stored in `model.json`), each written with the shortest decimal that reads
    /// back as the same `f32` (`0.001`, not `0.0010000000474974513`).
    pub fn config(self) -> Value {
        let f = |v: f32| -> f64 { v.to_string().parse().unwrap_or(f64::from(v)) };
        let mut cfg = match self {
            Optimizer::RmsProp(p) => {
                json!({"name": "rmsprop", "learning_rate": f(p.lr), "rho": f(p.rho), "epsilon": f(p.epsilon)})
            }
            Optimizer::Adam(p) | Optimizer::AdamW(p) => {
                json!({"name": self.name(), "learning_rate": f(p.lr), "beta_1": f(p.beta_1), "beta_2": f(p.beta_2), "epsilon": f(p.epsilon)})
            }
            Optimizer::Sgd(p) => {
                json!({"name": "sgd", "learning_rate": f(p.lr), "momentum": f(p.momentum), "nesterov": p.nesterov})
            }
        };
        // Keras writes `null` for no weight decay.
        let wd = self.decay();
        if let Some(o) = cfg.as_object_mut() {
            o.insert("weight_decay".into(), if wd == 0.0 { Value::Null } else { json!(f(wd)) });
        }
        cfg
    }

    /// Reads [`Optimizer::config`] back.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let name = cfg.get("name").and_then(Value::as_str).unwrap_or("");
        let f = |k: &str| -> Result<f32> {
            cfg.get(k)
                .and_then(Value::as_f64)
                .map(|v| v as f32)
                .ok_or_else(|| NnError::config("optimizer", format!("`{k}` must be a number")))
        };
        Ok(match name {
            "rmsprop" => Optimizer::RmsProp(RmsPropParams {
                lr: f("learning_rate")?,
                rho: f("rho")?,
                epsilon: f("epsilon")?,
                weight_decay: 0.0,
            }),
            "adam" | "adamw" => {
                let p = AdamParams {
                    lr: f("learning_rate")?,
                    beta_1: f("beta_1")?,
                    beta_2: f("beta_2")?,
                    epsilon: f("epsilon")?,
                    weight_decay: 0.0,
                };
                if name == "adam" { Optimizer::Adam(p) } else { Optimizer::AdamW(p) }
            }
            "sgd" => Optimizer::Sgd(SgdParams {
                lr: f("learning_rate")?,
                momentum: f("momentum")?,
                nesterov: cfg.get("nesterov").and_then(Value::as_bool).unwrap_or(false),
                weight_decay: 0.0,
            }),
            _ => return Optimizer::from_name(name),
        }
        .weight_decay(match cfg.get("weight_decay") {
            None | Some(Value::Null) => 0.0,
            Some(_) => f("weight_decay")?,
        }))
    }

    /// Number of per-parameter state slots (RMSprop 1, Adam 2, SGD 1 with momentum else 0).
    pub fn slots(self) -> usize {
        match self {
            Optimizer::RmsProp(_) => 1,
            Optimizer::Adam(_) | Optimizer::AdamW(_) => 2,
            Optimizer::Sgd(p) => usize::from(p.momentum != 0.0),
        }
    }
}

/// The optimizer's per-parameter state (moving averages, moments, momentum), allocated once.
#[derive(Debug, Clone, Default)]
pub(crate) struct OptimizerState {
    /// `slots[s][param]`.
    pub(crate) slots: Vec<Vec<AlignedVec>>,
    /// Steps taken (Keras `optimizer.iterations`).
    pub(crate) iterations: u64,
}

/// Parameters at least this long are stepped in two halves on two threads (when the step may use them).
const SPLIT_MIN: usize = 1 << 16;

impl OptimizerState {
    pub(crate) fn new(opt: Optimizer, params: &Params) -> Result<Self> {
        let mut slots = Vec::new();
        for per_slot in 0..opt.slots() {
            let mut per = Vec::new();
            for id in params.ids() {
                let n = params.dims(id)?.numel();
                per.push(stream_buffer(n, Stream::State(per_slot)).map_err(|e| NnError::Data {
                    what: "optimizer state",
                    expected: format!("memory for {n} floats"),
                    got: e.to_string(),
                })?);
            }
            slots.push(per);
        }
        Ok(OptimizerState { slots, iterations: 0 })
    }

    /// One update of every trainable parameter of `params` that received a gradient on some replica: the
    /// replicas' gradients (`grads(r, id)` for replica `r` of `shares.len()`, weighted by `shares`, their parts of
    /// the batch) are reduced in replica order — for two replicas inside the optimizer kernel's pass,
    /// `b·g₁ + a·g₀` with one fused multiply-add; for more, `((a₀·g₀ + a₁·g₁) + a₂·g₂) + …`, each term one fused
    /// multiply-add, the last inside the kernel's pass — so the result depends neither on which thread nor on
    /// which process ran which replica. A replica that wrote no gradient for a parameter contributes nothing
    /// (weight 0). With `parallel`, large parameters are stepped in two halves on two threads (every operation
    /// is elementwise, so the split changes no result). Only `shard = (rank, ranks)` of every parameter is
    /// stepped ([`crate::distributed::shard`]; `(0, 1)`: all of it), and `grads` gives that shard's gradients.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn step<'g>(
        &mut self,
        opt: Optimizer,
        kernels: &Kernels,
        params: &mut Params,
        grads: impl Fn(usize, ParamId) -> Option<&'g [f32]>,
        shares: &[f32],
        parallel: bool,
        shard: (usize, usize),
    ) -> Result<()> {
        self.iterations += 1;
        let t = self.iterations;
        let slots = &mut self.slots;
        let mut folded = Vec::new();
        let res = params.for_each_mut(|id, trainable, w| {
            if !trainable {
                return Ok(());
            }
            let i = id.index();
            let part = crate::distributed::shard(w.len(), shard.0, shard.1);
            let w = &mut w[part.clone()];
            let n_slots = slots.len().min(1);
            let (first, rest) = slots.split_at_mut(n_slots);
            let s0: &mut [f32] = match first.first_mut() {
                Some(s) => &mut s[i][part.clone()],
                None => &mut [],
            };
            let s1: &mut [f32] = match rest.first_mut() {
                Some(s) => &mut s[i][part],
                None => &mut [],
            };
            let chunk = match *shares {
                // One replica: its gradient as it is (no rounding by a weight of 1).
                [_] => match grads(0, id) {
                    Some(g) => Chunk { opt, t, g, avg: None },
                    None => return Ok(()),
                },
                // Two: a·g₀ + b·g₁, a replica without a gradient standing in with weight 0 for its unwritten buffer.
                [a, b] => match (grads(0, id), grads(1, id)) {
                    (Some(g), Some(h)) => Chunk { opt, t, g, avg: Some((h, a, b)) },
                    (Some(g), None) => Chunk { opt, t, g, avg: Some((g, a, 0.0)) },
                    (None, Some(h)) => Chunk { opt, t, g: h, avg: Some((h, 0.0, b)) },
                    (None, None) => return Ok(()),
                },
                _ => {
                    let present: Vec<(&[f32], f32)> =
                        (0..shares.len()).filter_map(|r| grads(r, id).map(|g| (g, shares[r]))).collect();
                    match present.as_slice() {
                        [] => return Ok(()),
                        &[(g, a)] => Chunk { opt, t, g, avg: Some((g, a, 0.0)) },
                        [(g0, a0), middle @ .., (last, b)] => {
                            folded.clear();
                            folded.extend(g0.iter().map(|g| a0 * g));
                            for (g, a) in middle {
                                for (f, g) in folded.iter_mut().zip(*g) {
                                    *f = a.mul_add(*g, *f);
                                }
                            }
                            Chunk { opt, t, g: &folded, avg: Some((last, 1.0, *b)) }
                        }
                    }
                }
            };
            if parallel && w.len() >= SPLIT_MIN {
                let mid = w.len() / 2;
                let (w0, w1) = w.split_at_mut(mid);
                let (a0, a1) = s0.split_at_mut(mid.min(s0.len()));
                let (b0, b1) = s1.split_at_mut(mid.min(s1.len()));
                let (lo, hi) = chunk.split(mid);
                let (x, y) =
                    crate::parallel::join_balanced(|| lo.run(kernels, w0, a0, b0), || hi.run(kernels, w1, a1, b1));
                x.and(y)
            } else {
                chunk.run(kernels, w, s0, s1)
            }
        });
        Ok(res?)
    }
}

/// The gradient of one parameter (or of one half of it) for one optimizer step: `g`, or with `avg = (h, a, b)`
/// the average `a·g + b·h` fused into the step.
#[derive(Clone, Copy)]
struct Chunk<'a> {
    opt: Optimizer,
    t: u64,
    g: &'a [f32],
    avg: Option<(&'a [f32], f32, f32)>,
}

impl<'a> Chunk<'a> {
    /// The chunks of `[..mid]` and `[mid..]`.
    fn split(self, mid: usize) -> (Chunk<'a>, Chunk<'a>) {
        let (g0, g1) = self.g.split_at(mid);
        let (h0, h1) = match self.avg {
            Some((h, a, b)) => {
                let (h0, h1) = h.split_at(mid);
                (Some((h0, a, b)), Some((h1, a, b)))
            }
            None => (None, None),
        };
        (Chunk { g: g0, avg: h0, ..self }, Chunk { g: g1, avg: h1, ..self })
    }

    fn run(self, k: &Kernels, w: &mut [f32], s0: &mut [f32], s1: &mut [f32]) -> kiln_autograd::Result<()> {
        let update = match self.opt {
            Optimizer::RmsProp(p) => Update::RmsProp { v: s0, p },
            Optimizer::Adam(p) | Optimizer::AdamW(p) => Update::Adam { m: s0, v: s1, p, t: self.t },
            Optimizer::Sgd(p) => Update::Sgd { u: s0, p },
        };
        match self.avg {
            Some((other, a, b)) => k.averaged_step(w, self.g, update, Average { other, a, b })?,
            None => match update {
                Update::RmsProp { v, p } => k.rmsprop_step(w, self.g, v, p)?,
                Update::Adam { m, v, p, t } => k.adam_step(w, self.g, m, v, p, t)?,
                Update::Sgd { u, p } => k.sgd_step(w, self.g, u, p)?,
            },
        }
        Ok(())
    }
}
