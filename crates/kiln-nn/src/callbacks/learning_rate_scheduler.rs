//! Keras `LearningRateScheduler`: the learning rate of each epoch from a function of the epoch.

use super::pyfmt::py_repr;
use super::{Callback, Logs, say};
use crate::error::Result;
use crate::model::Model;

/// Sets the learning rate at the start of every epoch to `schedule(epoch, current_rate)` (epoch 0-based, rates
/// as Python floats; stored as `f32`). Adds `learning_rate` to the epoch's logs.
pub struct LearningRateScheduler {
    schedule: Box<dyn FnMut(usize, f64) -> f64 + Send>,
    verbose: bool,
    messages: Vec<String>,
}

impl LearningRateScheduler {
    /// Keras `LearningRateScheduler(schedule)`.
    pub fn new(schedule: impl FnMut(usize, f64) -> f64 + Send + 'static) -> Self {
        LearningRateScheduler { schedule: Box::new(schedule), verbose: false, messages: Vec::new() }
    }
    /// Print Keras' message at each epoch.
    pub fn verbose(mut self, on: bool) -> Self {
        self.verbose = on;
        self
    }
    /// The messages printed (or, without `verbose`, that would have been).
    pub fn messages(&self) -> &[String] {
        &self.messages
    }
}

impl Callback for LearningRateScheduler {
    fn reads_state_after_batches(&self) -> bool {
        false
    }

    fn on_epoch_begin(&mut self, epoch: usize, model: &mut Model) -> Result<()> {
        let lr = (self.schedule)(epoch, f64::from(model.learning_rate()?));
        model.set_learning_rate(lr as f32)?;
        let m = format!("\nEpoch {}: LearningRateScheduler setting learning rate to {}.", epoch + 1, py_repr(lr));
        say(self.verbose, &mut self.messages, m);
        Ok(())
    }

    fn on_epoch_end(&mut self, _epoch: usize, logs: &mut Logs, model: &mut Model) -> Result<()> {
        logs.set("learning_rate", f64::from(model.learning_rate()?));
        Ok(())
    }
}
