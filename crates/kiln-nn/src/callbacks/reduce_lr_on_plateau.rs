//! Keras `ReduceLROnPlateau`: lower the learning rate when the monitored quantity stops improving.

use super::monitor::{Mode, Monitor};
use super::pyfmt::py_repr;
use super::{Callback, Logs, say};
use crate::error::{NnError, Result};
use crate::model::Model;

/// Multiplies the learning rate by `factor` once `monitor` has not improved (by more than `min_delta`) for
/// `patience` epochs, then waits `cooldown` epochs; never below `min_lr`. Keras defaults:
/// `monitor="val_loss"`, `factor=0.1`, `patience=10`, `verbose=0`, `mode="auto"`, `min_delta=1e-4`, `cooldown=0`,
/// `min_lr=0`. Adds `learning_rate` to the epoch's logs. The arithmetic is Keras': the new rate is computed on the
/// current one as a Python float (`f64`) and stored as `f32`.
pub struct ReduceLROnPlateau {
    monitor: Monitor,
    factor: f64,
    patience: usize,
    verbose: bool,
    cooldown: usize,
    min_lr: f64,
    cooldown_counter: usize,
    wait: usize,
    best: Option<f64>,
    messages: Vec<String>,
}

impl Default for ReduceLROnPlateau {
    fn default() -> Self {
        ReduceLROnPlateau::new()
    }
}

impl ReduceLROnPlateau {
    /// Keras' defaults.
    pub fn new() -> Self {
        ReduceLROnPlateau {
            monitor: Monitor::new("val_loss", Mode::Auto, 1e-4),
            factor: 0.1,
            patience: 10,
            verbose: false,
            cooldown: 0,
            min_lr: 0.0,
            cooldown_counter: 0,
            wait: 0,
            best: None,
            messages: Vec::new(),
        }
    }

    /// The logged quantity to watch.
    pub fn monitor(mut self, name: &str) -> Self {
        self.monitor = Monitor::new(name, self.monitor.mode, self.monitor.min_delta);
        self
    }
    /// Direction of improvement.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.monitor = Monitor::new(&self.monitor.name, mode, self.monitor.min_delta);
        self
    }
    /// Smallest change that counts as an improvement.
    pub fn min_delta(mut self, d: f64) -> Self {
        self.monitor = Monitor::new(&self.monitor.name, self.monitor.mode, d);
        self
    }
    /// The factor the rate is multiplied by (< 1; checked when training begins).
    pub fn factor(mut self, f: f64) -> Self {
        self.factor = f;
        self
    }
    /// Epochs without improvement before reducing.
    pub fn patience(mut self, n: usize) -> Self {
        self.patience = n;
        self
    }
    /// Print Keras' messages.
    pub fn verbose(mut self, on: bool) -> Self {
        self.verbose = on;
        self
    }
    /// Epochs to wait after a reduction before counting again.
    pub fn cooldown(mut self, n: usize) -> Self {
        self.cooldown = n;
        self
    }
    /// The lowest rate.
    pub fn min_lr(mut self, lr: f64) -> Self {
        self.min_lr = lr;
        self
    }
    /// The messages printed (or, without `verbose`, that would have been).
    pub fn messages(&self) -> &[String] {
        &self.messages
    }
}

impl Callback for ReduceLROnPlateau {
    fn reads_state_after_batches(&self) -> bool {
        false
    }

    fn on_train_begin(&mut self, _model: &mut Model) -> Result<()> {
        if self.factor.partial_cmp(&1.0) != Some(std::cmp::Ordering::Less) {
            return Err(NnError::config(
                "ReduceLROnPlateau",
                format!("ReduceLROnPlateau does not support a factor >= 1.0. Received factor={}", self.factor),
            ));
        }
        self.best = None;
        self.cooldown_counter = 0;
        self.wait = 0;
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, model: &mut Model) -> Result<()> {
        self.monitor.resolve("ReduceLROnPlateau", model)?;
        logs.set("learning_rate", f64::from(model.learning_rate()?));
        let Some(current) = logs.get(&self.monitor.name) else {
            let available: Vec<&str> = logs.keys().collect();
            eprintln!(
                "warning: Learning rate reduction is conditioned on metric `{}` which is not available. Available \
                 metrics are: {}.",
                self.monitor.name,
                available.join(",")
            );
            return Ok(());
        };
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.wait = 0;
        }
        if self.monitor.is_improvement(current, self.best) {
            self.best = Some(current);
            self.wait = 0;
        } else if self.cooldown_counter == 0 {
            self.wait += 1;
            if self.wait >= self.patience {
                let old = f64::from(model.learning_rate()?);
                if old > f64::from(self.min_lr as f32) {
                    let new = (old * self.factor).max(self.min_lr);
                    model.set_learning_rate(new as f32)?;
                    let m =
                        format!("\nEpoch {}: ReduceLROnPlateau reducing learning rate to {}.", epoch + 1, py_repr(new));
                    say(self.verbose, &mut self.messages, m);
                    self.cooldown_counter = self.cooldown;
                    self.wait = 0;
                }
            }
        }
        Ok(())
    }
}
