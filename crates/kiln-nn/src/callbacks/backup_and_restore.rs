//! Keras `BackupAndRestore`: a run that was killed continues where its last complete epoch left it.

use std::path::PathBuf;

use super::{Callback, Logs};
use crate::error::{NnError, Result};
use crate::io::CHECKPOINT;
use crate::model::Model;

/// Backs the training state up into `backup_dir` at the end of every complete epoch — weights, optimizer state,
/// step and epoch counters and learning rate ([`Model::save_checkpoint`]) — and, when `fit` starts and a backup
/// is there, restores it and continues with the epoch after it. Shuffling and dropout depend only on the seed,
/// epoch and step, so a run killed at any point and resumed ends with the same bits as one never interrupted.
/// The backup is deleted when training ends normally (Keras' `delete_checkpoint=True`), and kept when an epoch
/// was cut short (a callback stopped training mid-epoch: that partial epoch is not backed up). Keras' batch-level
/// `save_freq` is not offered: resuming mid-epoch from it would not be exact.
pub struct BackupAndRestore {
    dir: PathBuf,
    delete_checkpoint: bool,
    cut_short: bool,
    restored: Option<usize>,
}

impl BackupAndRestore {
    /// Keras `BackupAndRestore(backup_dir)`.
    pub fn new(backup_dir: impl Into<PathBuf>) -> Self {
        BackupAndRestore { dir: backup_dir.into(), delete_checkpoint: true, cut_short: false, restored: None }
    }
    /// Keep the backup after training ends (Keras `delete_checkpoint=False`).
    pub fn delete_checkpoint(mut self, on: bool) -> Self {
        self.delete_checkpoint = on;
        self
    }
    /// The epochs done by the backup `fit` restored at its start, if it found one.
    pub fn restored_epochs(&self) -> Option<usize> {
        self.restored
    }
}

impl Callback for BackupAndRestore {
    fn reads_state_after_batches(&self) -> bool {
        false
    }

    fn on_train_begin(&mut self, model: &mut Model) -> Result<()> {
        self.cut_short = false;
        self.restored = None;
        if self.dir.as_os_str().is_empty() {
            return Err(NnError::config("BackupAndRestore", "empty backup_dir"));
        }
        // Across ranks rank 0 restores, and `fit` hands its state and epoch to the others.
        if model.is_chief() && self.dir.join(CHECKPOINT).exists() {
            model.load_checkpoint(&self.dir)?;
            self.restored = Some(model.epochs_done());
            model.restored_epoch = Some(model.epochs_done());
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, _logs: &mut Logs, model: &mut Model) -> Result<()> {
        if model.epochs_done() == epoch + 1 {
            if model.is_chief() { model.save_checkpoint(&self.dir) } else { Ok(()) }
        } else {
            self.cut_short = true;
            Ok(())
        }
    }

    fn on_train_end(&mut self, model: &mut Model) -> Result<()> {
        if self.delete_checkpoint && !self.cut_short && model.is_chief() && self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).map_err(|e| NnError::io(&self.dir, e))?;
        }
        Ok(())
    }
}
