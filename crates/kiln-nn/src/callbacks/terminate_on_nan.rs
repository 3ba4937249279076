//! Keras `TerminateOnNaN`: stop when the loss becomes NaN or infinite.

use super::{Callback, Logs, say};
use crate::error::{NnError, Result};
use crate::model::Model;

/// Stops training after the batch whose running loss is NaN or infinite (the weights keep their last finite
/// values: Kiln skips the update of a non-finite step). With `raise_error`, `fit` ends with
/// [`NnError::NonFiniteLoss`] instead. Without this callback, `fit` also ends with that error (Keras would keep
/// training on NaN weights).
#[derive(Debug, Default)]
pub struct TerminateOnNaN {
    raise_error: bool,
    epoch: usize,
    messages: Vec<String>,
}

impl TerminateOnNaN {
    /// Keras' default (`raise_error=False`).
    pub fn new() -> Self {
        TerminateOnNaN::default()
    }
    /// End `fit` with an error instead of stopping quietly.
    pub fn raise_error(mut self, on: bool) -> Self {
        self.raise_error = on;
        self
    }
    /// The messages printed.
    pub fn messages(&self) -> &[String] {
        &self.messages
    }
}

impl Callback for TerminateOnNaN {
    fn reads_state_after_batches(&self) -> bool {
        false
    }

    fn on_epoch_begin(&mut self, epoch: usize, _model: &mut Model) -> Result<()> {
        self.epoch = epoch;
        Ok(())
    }

    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, model: &mut Model) -> Result<()> {
        let Some(loss) = logs.get("loss") else { return Ok(()) };
        if loss.is_finite() {
            return Ok(());
        }
        if self.raise_error {
            return Err(NnError::NonFiniteLoss { epoch: self.epoch + 1, step: batch + 1, value: loss as f32 });
        }
        say(true, &mut self.messages, format!("Batch {batch}: Invalid loss, terminating training"));
        model.set_stop_training(true);
        Ok(())
    }
}
