//! Callbacks (Keras `keras.callbacks`): code `fit` calls at the start and end of training, of every epoch and
//! after every batch, with the model and the epoch's logs — to stop early, change the learning rate, save the
//! model or write a log. Each callback keeps Keras' name, arguments, defaults, decisions and messages; user-written
//! ones implement [`Callback`].
//!
//! ```
//! use kiln_nn::callbacks::{EarlyStopping, ReduceLROnPlateau};
//! use kiln_nn::prelude::*;
//!
//! let mut stop = EarlyStopping::new().patience(3).restore_best_weights(true);
//! let mut plateau = ReduceLROnPlateau::new().patience(2);
//! let opts = FitOptions::default().epochs(15).callback(&mut stop).callback(&mut plateau);
//! # drop(opts);
//! ```

mod backup_and_restore;
mod csv_logger;
mod early_stopping;
mod learning_rate_scheduler;
mod model_checkpoint;
mod monitor;
mod pyfmt;
mod reduce_lr_on_plateau;
mod terminate_on_nan;

use std::collections::BTreeMap;

pub use backup_and_restore::BackupAndRestore;
pub use csv_logger::CSVLogger;
pub use early_stopping::EarlyStopping;
pub use learning_rate_scheduler::LearningRateScheduler;
pub use model_checkpoint::{ModelCheckpoint, SaveFreq};
pub use monitor::Mode;
pub use reduce_lr_on_plateau::ReduceLROnPlateau;
pub use terminate_on_nan::TerminateOnNaN;

use crate::error::Result;
use crate::model::Model;

/// Keras' `logs` dict: the quantities of an epoch (`loss`, `accuracy`, `val_loss`, `val_accuracy`, and what
/// callbacks add, such as `learning_rate`) or of the batches so far, by name, as Python floats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Logs(BTreeMap<String, f64>);

impl Logs {
    /// The value named `key`.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.0.get(key).copied()
    }

    /// Sets (or replaces) `key`; replacing allocates nothing (fit reuses one batch log for a whole epoch).
    pub fn set(&mut self, key: &str, value: f64) {
        match self.0.get_mut(key) {
            Some(v) => *v = value,
            None => {
                self.0.insert(key.to_owned(), value);
            }
        }
    }

    /// The names, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// `(name, value)` pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(k, &v)| (k.as_str(), v))
    }
}

/// Code `fit` runs around training (Keras `keras.callbacks.Callback`). Every method has an empty default; a
/// callback reads and changes the model through the `&mut Model` it is given (stop training with
/// [`Model::set_stop_training`], read or set the learning rate, snapshot weights, save). An error ends `fit`
/// with that error. Epochs and batches are 0-based, as Keras passes them.
pub trait Callback: Send {
    /// Before the first epoch.
    fn on_train_begin(&mut self, model: &mut Model) -> Result<()> {
        let _ = model;
        Ok(())
    }

    /// Before epoch `epoch`.
    fn on_epoch_begin(&mut self, epoch: usize, model: &mut Model) -> Result<()> {
        let _ = (epoch, model);
        Ok(())
    }

    /// After training batch `batch` of the epoch; `logs` holds the running means over the epoch so far (`loss`,
    /// `accuracy`), as Keras' progress bar shows them.
    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, model: &mut Model) -> Result<()> {
        let _ = (batch, logs, model);
        Ok(())
    }

    /// Whether [`Callback::on_train_batch_end`] may read the optimizer's state (to save the model or a
    /// checkpoint). Training across ranks each rank keeps only its shard of that state current during an epoch
    /// (see [`crate::distributed`]); before the batch callbacks `fit` gathers it on every rank when a callback
    /// says `true` here. The default `true` is always right; a callback that saves nothing between epochs
    /// returns `false` and spares the gather.
    fn reads_state_after_batches(&self) -> bool {
        true
    }

    /// After epoch `epoch` and its validation; a callback may add entries to `logs` (Keras' callbacks add
    /// `learning_rate`), which the callbacks after it and the [`History`](crate::History) see.
    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, model: &mut Model) -> Result<()> {
        let _ = (epoch, logs, model);
        Ok(())
    }

    /// After the last epoch (also when a callback stopped training).
    fn on_train_end(&mut self, model: &mut Model) -> Result<()> {
        let _ = model;
        Ok(())
    }
}

/// Prints a callback message (when `verbose`) and keeps it. Keras starts some messages with a line break to end
/// its progress bar's line; `fit` clears its bar before the epoch-end callbacks run, so the break is dropped.
fn say(verbose: bool, kept: &mut Vec<String>, message: String) {
    let message = message.trim_start_matches('\n').to_owned();
    if verbose {
        println!("{message}");
    }
    kept.push(message);
}
