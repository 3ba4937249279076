//! Keras `ModelCheckpoint`: save the model (or its weights) every epoch or every N batches, or only when the
//! monitored quantity improves.

use std::path::Path;

use super::monitor::{Mode, Monitor};
use super::pyfmt::format_template;
use super::{Callback, Logs, say};
use crate::error::{NnError, Result};
use crate::model::Model;

/// When [`ModelCheckpoint`] saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaveFreq {
    /// At the end of every epoch (Keras' default `"epoch"`).
    #[default]
    Epoch,
    /// After every `n` training batches (Keras' integer `save_freq`).
    Batches(usize),
}

/// Saves the model to `filepath` — a template formatted like Python's `str.format` with `epoch` (1-based),
/// `batch` (1-based, batch saves) and the epoch's logs, e.g. `ckpt/model-{epoch:02d}-{val_loss:.2f}`. Kiln saves
/// its own format: a directory (`model.json` + `model.safetensors`, [`Model::save`]), or with
/// `save_weights_only` a `.safetensors` file ([`Model::save_weights`]); Keras' `.keras`/`.h5` paths are refused.
/// Keras defaults: `monitor="val_loss"`, `verbose=0`, `save_best_only=False`, `save_weights_only=False`,
/// `mode="auto"`, `save_freq="epoch"`, `initial_value_threshold=None`.
pub struct ModelCheckpoint {
    filepath: String,
    monitor: Monitor,
    verbose: bool,
    save_best_only: bool,
    save_weights_only: bool,
    save_freq: SaveFreq,
    best: Option<f64>,
    current_epoch: usize,
    batches_since_save: usize,
    last_batch: Option<usize>,
    messages: Vec<String>,
}

impl ModelCheckpoint {
    /// Keras `ModelCheckpoint(filepath)`.
    pub fn new(filepath: impl Into<String>) -> Self {
        ModelCheckpoint {
            filepath: filepath.into(),
            monitor: Monitor::new("val_loss", Mode::Auto, 0.0),
            verbose: false,
            save_best_only: false,
            save_weights_only: false,
            save_freq: SaveFreq::Epoch,
            best: None,
            current_epoch: 0,
            batches_since_save: 0,
            last_batch: None,
            messages: Vec::new(),
        }
    }
    /// The quantity `save_best_only` watches.
    pub fn monitor(mut self, name: &str) -> Self {
        self.monitor = Monitor::new(name, self.monitor.mode, 0.0);
        self
    }
    /// Direction of improvement.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.monitor = Monitor::new(&self.monitor.name, mode, 0.0);
        self
    }
    /// Print Keras' messages.
    pub fn verbose(mut self, on: bool) -> Self {
        self.verbose = on;
        self
    }
    /// Save only when the monitored quantity improves.
    pub fn save_best_only(mut self, on: bool) -> Self {
        self.save_best_only = on;
        self
    }
    /// Save the weights only (a `.safetensors` file).
    pub fn save_weights_only(mut self, on: bool) -> Self {
        self.save_weights_only = on;
        self
    }
    /// When to save.
    pub fn save_freq(mut self, f: SaveFreq) -> Self {
        self.save_freq = f;
        self
    }
    /// The value the first save must beat (Keras `initial_value_threshold`).
    pub fn initial_value_threshold(mut self, v: f64) -> Self {
        self.best = Some(v);
        self
    }
    /// The messages printed (or, without `verbose`, that would have been).
    pub fn messages(&self) -> &[String] {
        &self.messages
    }

    fn check_path(&self) -> Result<()> {
        let bad = |m: &str| Err(NnError::config("ModelCheckpoint", format!("{m} (filepath={})", self.filepath)));
        if let SaveFreq::Batches(0) = self.save_freq {
            return bad("save_freq must be ≥ 1 batch");
        }
        if self.save_weights_only {
            if !self.filepath.ends_with(".safetensors") {
                return bad("with save_weights_only the filepath must end in `.safetensors`");
            }
        } else if self.filepath.ends_with(".keras") || self.filepath.ends_with(".h5") {
            return bad("Keras `.keras`/`.h5` files are not written; give a directory for Kiln's model format");
        }
        Ok(())
    }

    fn should_save(&mut self, epoch: usize, logs: &Logs, path: &str) -> bool {
        if !self.save_best_only {
            say(self.verbose, &mut self.messages, format!("\nEpoch {}: saving model to {path}", epoch + 1));
            return true;
        }
        let Some(current) = logs.get(&self.monitor.name) else {
            eprintln!("warning: Can save best model only with {} available.", self.monitor.name);
            return true;
        };
        let best = self.best.map_or_else(|| "None".to_owned(), |b| format!("{b:.5}"));
        if self.monitor.is_improvement(current, self.best) {
            let m = format!(
                "\nEpoch {}: {} improved from {best} to {current:.5}, saving model to {path}",
                epoch + 1,
                self.monitor.name
            );
            say(self.verbose, &mut self.messages, m);
            self.best = Some(current);
            true
        } else {
            let m = format!("\nEpoch {}: {} did not improve from {best}", epoch + 1, self.monitor.name);
            say(self.verbose, &mut self.messages, m);
            false
        }
    }

    fn save(&mut self, epoch: usize, batch: Option<usize>, logs: &Logs, model: &Model) -> Result<()> {
        let path = format_template(&self.filepath, epoch + 1, batch.map(|b| b + 1), logs)?;
        // Every rank keeps the same best-so-far bookkeeping; only rank 0 writes.
        if !self.should_save(epoch, logs, &path) || !model.is_chief() {
            return Ok(());
        }
        if let Some(dir) = Path::new(&path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| NnError::io(dir, e))?;
        }
        if self.save_weights_only { model.save_weights(&path) } else { model.save(&path) }
    }
}

impl Callback for ModelCheckpoint {
    fn reads_state_after_batches(&self) -> bool {
        matches!(self.save_freq, SaveFreq::Batches(_))
    }

    fn on_train_begin(&mut self, _model: &mut Model) -> Result<()> {
        self.check_path()
    }

    fn on_epoch_begin(&mut self, epoch: usize, _model: &mut Model) -> Result<()> {
        self.current_epoch = epoch;
        Ok(())
    }

    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, model: &mut Model) -> Result<()> {
        let SaveFreq::Batches(n) = self.save_freq else { return Ok(()) };
        self.batches_since_save += match self.last_batch {
            Some(last) if batch > last => batch - last,
            _ => batch + 1,
        };
        self.last_batch = Some(batch);
        if self.batches_since_save >= n {
            self.batches_since_save = 0;
            self.monitor.resolve("ModelCheckpoint", model)?;
            self.save(self.current_epoch, Some(batch), logs, model)?;
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, model: &mut Model) -> Result<()> {
        self.monitor.resolve("ModelCheckpoint", model)?;
        if self.save_freq == SaveFreq::Epoch {
            self.save(epoch, None, logs, model)?;
        }
        Ok(())
    }
}
