//! Losses, metrics and optimizers by Keras name, with Keras 3 defaults.

use kiln_autograd::{ParamId, ReplicaParam, Tape};
use kiln_kernels::Kernels;
use kiln_kernels::optim::{AdamParams, Replicated, RmsPropParams, SgdParams, Update};
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
    /// SGD with Keras defaults (lr 0.01, no momentum).
    pub fn sgd() -> Self {
        Optimizer::Sgd(SgdParams::default())
    }
    /// SGD with momentum (and optionally Nesterov).
    pub fn sgd_momentum(lr: f32, momentum: f32, nesterov: bool) -> Self {
        Optimizer::Sgd(SgdParams { lr, momentum, nesterov })
    }

    /// Parses `rmsprop`, `adam` or `sgd` (with defaults).
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "rmsprop" => Ok(Optimizer::rmsprop()),
            "adam" => Ok(Optimizer::adam()),
            "sgd" => Ok(Optimizer::sgd()),
            _ => Err(NnError::Unknown { kind: "optimizer", name: name.to_owned(), known: "rmsprop, adam, sgd" }),
        }
    }

    /// The same optimizer with another learning rate.
    pub fn learning_rate(self, lr: f32) -> Self {
        match self {
            Optimizer::RmsProp(p) => Optimizer::RmsProp(RmsPropParams { lr, ..p }),
            Optimizer::Adam(p) => Optimizer::Adam(AdamParams { lr, ..p }),
            Optimizer::Sgd(p) => Optimizer::Sgd(SgdParams { lr, ..p }),
        }
    }

    /// The learning rate.
    pub fn lr(self) -> f32 {
        match self {
            Optimizer::RmsProp(p) => p.lr,
            Optimizer::Adam(p) => p.lr,
            Optimizer::Sgd(p) => p.lr,
        }
    }

    /// The Keras name.
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::RmsProp(_) => "rmsprop",
            Optimizer::Adam(_) => "adam",
            Optimizer::Sgd(_) => "sgd",
        }
    }

    /// Hyper-parameters as JSON (stored in `model.json`), each written with the shortest decimal that reads
    /// back as the same `f32` (`0.001`, not `0.0010000000474974513`).
    pub fn config(self) -> Value {
        let f = |v: f32| -> f64 { v.to_string().parse().unwrap_or(f64::from(v)) };
        match self {
            Optimizer::RmsProp(p) => {
                json!({"name": "rmsprop", "learning_rate": f(p.lr), "rho": f(p.rho), "epsilon": f(p.epsilon)})
            }
            Optimizer::Adam(p) => {
                json!({"name": "adam", "learning_rate": f(p.lr), "beta_1": f(p.beta_1), "beta_2": f(p.beta_2), "epsilon": f(p.epsilon)})
            }
            Optimizer::Sgd(p) => {
                json!({"name": "sgd", "learning_rate": f(p.lr), "momentum": f(p.momentum), "nesterov": p.nesterov})
            }
        }
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
            "rmsprop" => {
                Optimizer::RmsProp(RmsPropParams { lr: f("learning_rate")?, rho: f("rho")?, epsilon: f("epsilon")? })
            }
            "adam" => Optimizer::Adam(AdamParams {
                lr: f("learning_rate")?,
                beta_1: f("beta_1")?,
                beta_2: f("beta_2")?,
                epsilon: f("epsilon")?,
            }),
            "sgd" => Optimizer::Sgd(SgdParams {
                lr: f("learning_rate")?,
                momentum: f("momentum")?,
                nesterov: cfg.get("nesterov").and_then(Value::as_bool).unwrap_or(false),
            }),
            _ => return Optimizer::from_name(name),
        })
    }

    /// Number of per-parameter state slots (RMSprop 1, Adam 2, SGD 1 with momentum else 0).
    pub fn slots(self) -> usize {
        match self {
            Optimizer::RmsProp(_) => 1,
            Optimizer::Adam(_) => 2,
            Optimizer::Sgd(p) => usize::from(p.momentum != 0.0),
        }
    }
}

/// The optimizer's per-parameter state (moving averages, moments, momentum), allocated once.
#[derive(Debug, Clone, Default)]
pub(crate) struct OptimizerState {
    /// `slots[s][param]`.
    pub(crate) slots: Vec<Vec<Vec<f32>>>,
    /// Steps taken (Keras `optimizer.iterations`).
    pub(crate) iterations: u64,
}

impl OptimizerState {
    pub(crate) fn new(opt: Optimizer, tape: &Tape) -> Result<Self> {
        let mut slots = Vec::new();
        for _ in 0..opt.slots() {
            let mut per = Vec::new();
            for i in 0..tape.num_params() {
                per.push(crate::error::try_zeros("optimizer state", tape.param_dims(ParamId::from_index(i))?.numel())?);
            }
            slots.push(per);
        }
        Ok(OptimizerState { slots, iterations: 0 })
    }

    /// One update of every trainable parameter that received a gradient.
    pub(crate) fn step(&mut self, opt: Optimizer, tape: &mut Tape) -> Result<()> {
        self.iterations += 1;
        let t = self.iterations;
        let kernels = tape.kernels();
        let slots = &mut self.slots;
        tape.for_each_param_mut(|id, w, g| {
            let Some(g) = g else { return Ok(()) };
            let i = id.index();
            match opt {
                Optimizer::RmsProp(p) => kernels.rmsprop_step(w, g, &mut slots[0][i], p)?,
                Optimizer::Adam(p) => {
                    let (a, b) = slots.split_at_mut(1);
                    kernels.adam_step(w, g, &mut a[0][i], &mut b[0][i], p, t)?
                }
                Optimizer::Sgd(p) => match slots.first_mut() {
                    Some(u) => kernels.sgd_step(w, g, &mut u[i], p)?,
                    None => kernels.sgd_step(w, g, &mut [], p)?,
                },
            }
            Ok(())
        })?;
        Ok(())
    }

    /// The data-parallel tail in one pass per parameter: average the two replicas' gradients
    /// (`a·g₀ + b·g₁`, as [`Tape::combine_grads`], but computed per vector and not stored), take the
    /// optimizer step on `tape`, copy the new weights into `replica` (`Kernels::replicated_step`). Large parameters are split in two halves handled on two threads when `parallel`
    /// (every operation is elementwise, so the split changes no result).
    pub(crate) fn step_replicas(
        &mut self,
        opt: Optimizer,
        tape: &mut Tape,
        replica: &mut Tape,
        (a, b): (f32, f32),
        parallel: bool,
    ) -> Result<()> {
        self.iterations += 1;
        let t = self.iterations;
        let kernels = tape.kernels();
        let slots = &mut self.slots;
        tape.zip_replica_mut(replica, |id, p| {
            let i = id.index();
            let ReplicaParam {
                value,
                grad,
                grad_written,
                trainable,
                replica_value,
                replica_grad,
                replica_grad_written,
            } = p;
            let n_slots = slots.len().min(1);
            let (first, rest) = slots.split_at_mut(n_slots);
            let s0: &mut [f32] = match first.first_mut() {
                Some(s) => &mut s[i],
                None => &mut [],
            };
            let s1: &mut [f32] = match rest.first_mut() {
                Some(s) => &mut s[i],
                None => &mut [],
            };
            let update = trainable && (grad_written || replica_grad_written);
            let chunk = Chunk { opt, t, a, b, own: grad_written, other: replica_grad_written, update };
            const SPLIT_MIN: usize = 1 << 16;
            if parallel && value.len() >= SPLIT_MIN {
                let mid = value.len() / 2;
                let (w0, w1) = value.split_at_mut(mid);
                let (g0, g1) = grad.split_at(mid);
                let (h0, h1) = replica_grad.split_at(mid.min(replica_grad.len()));
                let (r0, r1) = replica_value.split_at_mut(mid);
                let (a0, a1) = s0.split_at_mut(mid.min(s0.len()));
                let (b0, b1) = s1.split_at_mut(mid.min(s1.len()));
                let (x, y) = crate::parallel::join_balanced(
                    || chunk.run(kernels, w0, g0, h0, a0, b0, r0),
                    || chunk.run(kernels, w1, g1, h1, a1, b1, r1),
                );
                x.and(y)
            } else {
                chunk.run(kernels, value, grad, replica_grad, s0, s1, replica_value)
            }
        })?;
        Ok(())
    }
}

/// The per-element work of [`OptimizerState::step_replicas`] on one range of one parameter.
#[derive(Clone, Copy)]
struct Chunk {
    opt: Optimizer,
    t: u64,
    a: f32,
    b: f32,
    own: bool,
    other: bool,
    update: bool,
}

impl Chunk {
    #[allow(clippy::too_many_arguments)]
    fn run(
        self,
        k: &Kernels,
        w: &mut [f32],
        g: &[f32],
        h: &[f32],
        s0: &mut [f32],
        s1: &mut [f32],
        replica: &mut [f32],
    ) -> kiln_autograd::Result<()> {
        if !self.update {
            replica.copy_from_slice(w);
            return Ok(());
        }
        // Average, step and mirror in one pass (the average is not stored in `g`). A replica that wrote no
        // gradient contributes with weight 0, the other gradient standing in for its unwritten buffer.
        let (g, h, a, b) = match (self.own, self.other) {
            (true, true) => (g, h, self.a, self.b),
            (true, false) => (g, g, self.a, 0.0),
            _ => (h, h, 0.0, self.b),
        };
        let r = Replicated { other: h, a, b, mirror: replica };
        let update = match self.opt {
            Optimizer::RmsProp(p) => Update::RmsProp { v: s0, p },
            Optimizer::Adam(p) => Update::Adam { m: s0, v: s1, p, t: self.t },
            Optimizer::Sgd(p) => Update::Sgd { u: s0, p },
        };
        Ok(k.replicated_step(w, g, update, r)?)
    }
}
