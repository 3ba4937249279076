//! What Keras' `MonitorCallback` shares between `EarlyStopping`, `ReduceLROnPlateau` and `ModelCheckpoint`: which
//! logged quantity is watched, in which direction, and what counts as an improvement.

use crate::error::{NnError, Result};
use crate::model::Model;

/// Whether the monitored quantity should fall or rise (Keras `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Inferred from the name: a loss should fall, accuracy rise (Keras' default).
    #[default]
    Auto,
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

/// A monitored quantity with its direction and minimum change.
#[derive(Debug, Clone)]
pub(crate) struct Monitor {
    pub(crate) name: String,
    pub(crate) mode: Mode,
    /// `|min_delta|`.
    pub(crate) min_delta: f64,
    /// Resolved on first use (the direction of `Auto` needs the compiled model): true when lower is better.
    lower_is_better: Option<bool>,
}

impl Monitor {
    pub(crate) fn new(name: &str, mode: Mode, min_delta: f64) -> Self {
        Monitor { name: name.to_owned(), mode, min_delta: min_delta.abs(), lower_is_better: None }
    }

    /// Resolves the direction (Keras `_set_monitor_op`): `loss`/`val_loss` fall, `accuracy`/`val_accuracy` of a
    /// model compiled with accuracy rise; any other name needs an explicit mode.
    pub(crate) fn resolve(&mut self, callback: &str, model: &Model) -> Result<()> {
        if self.lower_is_better.is_some() {
            return Ok(());
        }
        let lower = match self.mode {
            Mode::Min => true,
            Mode::Max => false,
            Mode::Auto => {
                let metric = self.name.strip_prefix("val_").unwrap_or(&self.name);
                let accuracy = model.compiled().is_some_and(|c| c.accuracy);
                match metric {
                    "loss" => true,
                    "accuracy" | "acc" if accuracy => false,
                    _ => {
                        return Err(NnError::config(
                            callback,
                            format!(
                                "cannot tell whether `{}` should be maximized or minimized: pass Mode::Max or Mode::Min",
                                self.name
                            ),
                        ));
                    }
                }
            }
        };
        self.lower_is_better = Some(lower);
        Ok(())
    }

    /// Keras `_is_improvement(current, reference)`: any value improves on none; otherwise `current` must beat the
    /// reference by more than `min_delta`. Keras compares through its tensor ops, in `float32`; so does this.
    pub(crate) fn is_improvement(&self, current: f64, reference: Option<f64>) -> bool {
        let Some(reference) = reference else { return true };
        if self.lower_is_better.unwrap_or(true) {
            ((current + self.min_delta) as f32) < reference as f32
        } else {
            ((current - self.min_delta) as f32) > reference as f32
        }
    }
}
