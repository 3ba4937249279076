//! Keras `EarlyStopping`: stop when the monitored quantity has stopped improving.

use kiln_tensor::Tensor;

use super::monitor::{Mode, Monitor};
use super::{Callback, Logs, say};
use crate::error::Result;
use crate::model::Model;

/// Stops training once `monitor` has not improved (by more than `min_delta`) for `patience` epochs, optionally
/// restoring the weights of the best epoch at the end. Keras defaults: `monitor="val_loss"`, `min_delta=0`,
/// `patience=0`, `verbose=0`, `mode="auto"`, `baseline=None`, `restore_best_weights=False`,
/// `start_from_epoch=0`.
pub struct EarlyStopping {
    monitor: Monitor,
    patience: usize,
    verbose: bool,
    baseline: Option<f64>,
    restore_best_weights: bool,
    start_from_epoch: usize,
    wait: usize,
    stopped_epoch: usize,
    best: Option<f64>,
    best_epoch: usize,
    best_weights: Option<Vec<Tensor>>,
    messages: Vec<String>,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        EarlyStopping::new()
    }
}

impl EarlyStopping {
    /// Keras' defaults.
    pub fn new() -> Self {
        EarlyStopping {
            monitor: Monitor::new("val_loss", Mode::Auto, 0.0),
            patience: 0,
            verbose: false,
            baseline: None,
            restore_best_weights: false,
            start_from_epoch: 0,
            wait: 0,
            stopped_epoch: 0,
            best: None,
            best_epoch: 0,
            best_weights: None,
            messages: Vec::new(),
        }
    }

    /// The logged quantity to watch (`val_loss`, `val_accuracy`, `loss`, `accuracy`, …).
    pub fn monitor(mut self, name: &str) -> Self {
        self.monitor = Monitor::new(name, self.monitor.mode, self.monitor.min_delta);
        self
    }
    /// Direction of improvement.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.monitor = Monitor::new(&self.monitor.name, mode, self.monitor.min_delta);
        self
    }
    /// Smallest change that counts as an improvement (its absolute value is used).
    pub fn min_delta(mut self, d: f64) -> Self {
        self.monitor = Monitor::new(&self.monitor.name, self.monitor.mode, d);
        self
    }
    /// Epochs without improvement before stopping.
    pub fn patience(mut self, n: usize) -> Self {
        self.patience = n;
        self
    }
    /// Print Keras' messages.
    pub fn verbose(mut self, on: bool) -> Self {
        self.verbose = on;
        self
    }
    /// A value the quantity must beat before the patience counter resets.
    pub fn baseline(mut self, v: f64) -> Self {
        self.baseline = Some(v);
        self
    }
    /// Restore the weights of the best epoch when training ends.
    pub fn restore_best_weights(mut self, on: bool) -> Self {
        self.restore_best_weights = on;
        self
    }
    /// Epochs to train before watching at all.
    pub fn start_from_epoch(mut self, n: usize) -> Self {
        self.start_from_epoch = n;
        self
    }

    /// The epoch (0-based) at which training was stopped; 0 if it was not.
    pub fn stopped_epoch(&self) -> usize {
        self.stopped_epoch
    }
    /// The epoch (0-based) of the best value seen.
    pub fn best_epoch(&self) -> usize {
        self.best_epoch
    }
    /// The best value seen.
    pub fn best(&self) -> Option<f64> {
        self.best
    }
    /// Epochs since the last improvement.
    pub fn wait(&self) -> usize {
        self.wait
    }
    /// The messages printed (or, without `verbose`, that would have been).
    pub fn messages(&self) -> &[String] {
        &self.messages
    }
}

impl Callback for EarlyStopping {
    fn reads_state_after_batches(&self) -> bool {
        false
    }

    fn on_train_begin(&mut self, _model: &mut Model) -> Result<()> {
        self.wait = 0;
        self.stopped_epoch = 0;
        self.best = None;
        self.best_weights = None;
        self.best_epoch = 0;
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, model: &mut Model) -> Result<()> {
        self.monitor.resolve("EarlyStopping", model)?;
        let Some(current) = logs.get(&self.monitor.name) else {
            let available: Vec<&str> = logs.keys().collect();
            let m = format!(
                "Early stopping conditioned on metric `{}` which is not available. Available metrics are: {}",
                self.monitor.name,
                available.join(",")
            );
            eprintln!("warning: {m}");
            return Ok(());
        };
        if epoch < self.start_from_epoch {
            return Ok(());
        }
        if self.restore_best_weights && self.best_weights.is_none() {
            self.best_weights = Some(model.get_weights()?);
            self.best_epoch = epoch;
        }
        self.wait += 1;
        if self.monitor.is_improvement(current, self.best) {
            self.best = Some(current);
            self.best_epoch = epoch;
            if self.restore_best_weights {
                self.best_weights = Some(model.get_weights()?);
            }
            if self.baseline.is_none() || self.monitor.is_improvement(current, self.baseline) {
                self.wait = 0;
            }
            return Ok(());
        }
        if self.wait >= self.patience && epoch > 0 {
            self.stopped_epoch = epoch;
            model.set_stop_training(true);
        }
        Ok(())
    }

    fn on_train_end(&mut self, model: &mut Model) -> Result<()> {
        if self.stopped_epoch > 0 {
            let m = format!("Epoch {}: early stopping", self.stopped_epoch + 1);
            say(self.verbose, &mut self.messages, m);
        }
        if self.restore_best_weights
            && let Some(w) = self.best_weights.take()
        {
            let m = format!("Restoring model weights from the end of the best epoch: {}.", self.best_epoch + 1);
            say(self.verbose, &mut self.messages, m);
            model.set_weights(&w)?;
        }
        Ok(())
    }
}
