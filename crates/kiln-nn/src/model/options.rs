//! The values `compile`, `fit`, `evaluate` and a profiled step take and return, with Keras' names and defaults.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use kiln_kernels::ConvAlgo;
use serde::Serialize;

use crate::callbacks::Callback;
use crate::optim::{Loss, Optimizer};
use crate::progress::Verbose;
use kiln_tensor::Data;

/// Loss, optimizer and metrics chosen by [`Model::compile`](crate::Model::compile).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compiled {
    /// The loss.
    pub loss: Loss,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Whether accuracy is tracked.
    pub accuracy: bool,
}

/// Loss and correct predictions of one batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchStats {
    /// Mean loss over the batch.
    pub loss: f32,
    /// Samples whose predicted class is right.
    pub correct: usize,
    /// Samples in the batch.
    pub samples: usize,
}

/// Result of [`Model::evaluate`](crate::Model::evaluate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evaluation {
    /// Mean loss over all samples.
    pub loss: f32,
    /// Accuracy (when compiled with the `accuracy` metric).
    pub accuracy: Option<f32>,
}

/// One epoch of [`History`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochLog {
    /// Epoch number, 1-based.
    pub epoch: usize,
    /// Mean training loss (weighted by batch size, as Keras).
    pub loss: f32,
    /// Training accuracy.
    pub accuracy: Option<f32>,
    /// Validation loss.
    pub val_loss: Option<f32>,
    /// Validation accuracy.
    pub val_accuracy: Option<f32>,
    /// The learning rate at the end of the epoch, when a callback logged it (Keras' `ReduceLROnPlateau` and
    /// `LearningRateScheduler` do).
    pub learning_rate: Option<f32>,
    /// Wall time of the training steps, seconds.
    pub train_seconds: f64,
    /// Wall time of the whole epoch (training, validation, checkpoint), seconds.
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
    /// Across ranks: seconds of the training steps spent exchanging gradient shards and updated weight shards
    /// (sending, receiving and waiting for the slowest rank); 0 for a model training alone.
    pub exchange_seconds: f64,
    /// Across ranks: bytes this rank sent its peers in each step (their shards of its replicas' gradients, its
    /// updated weight shard to each; it receives as many); 0 for a model training alone.
    pub exchange_bytes_per_step: usize,
}

/// What `fit` returns: one [`EpochLog`] per epoch (Keras' `History.history`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct History {
    /// The epochs, in order.
    pub epochs: Vec<EpochLog>,
}

impl History {
    /// Training loss per epoch.
    pub fn loss(&self) -> Vec<f32> {
        self.epochs.iter().map(|e| e.loss).collect()
    }
    /// Training accuracy per epoch.
    pub fn accuracy(&self) -> Vec<f32> {
        self.epochs.iter().filter_map(|e| e.accuracy).collect()
    }
    /// Validation loss per epoch (empty without validation).
    pub fn val_loss(&self) -> Vec<f32> {
        self.epochs.iter().filter_map(|e| e.val_loss).collect()
    }
    /// Validation accuracy per epoch (empty without validation).
    pub fn val_accuracy(&self) -> Vec<f32> {
        self.epochs.iter().filter_map(|e| e.val_accuracy).collect()
    }
}

/// Validation during `fit`.
#[derive(Clone, Copy, Default)]
pub enum Validation<'a> {
    /// None.
    #[default]
    None,
    /// Keras' `validation_split`: the *last* fraction of the samples (before shuffling) is held out.
    Split(f32),
    /// Keras' `validation_data=(x, y)`.
    Data(&'a dyn Data, &'a dyn Data),
}

/// Options of [`Model::fit`](crate::Model::fit) (Keras' arguments and defaults).
pub struct FitOptions<'a> {
    /// Epochs to train up to (default 1).
    pub epochs: usize,
    /// Samples per step (default 32).
    pub batch_size: usize,
    /// Shuffle the training samples every epoch (default true; the order depends only on the seed and epoch).
    pub shuffle: bool,
    /// Validation data.
    pub validation: Validation<'a>,
    /// Output.
    pub verbose: Verbose,
    /// Epoch to start from (0-based, Keras' `initial_epoch`).
    pub initial_epoch: usize,
    /// Keras' `class_weight`: the weight of each class index (classes past the end weigh 1). A training sample's
    /// loss counts with its class's weight, still divided by the batch size (Keras' `sum_over_batch_size`);
    /// accuracy stays unweighted (Keras weights only `weighted_metrics`), and so does validation.
    pub class_weight: Option<&'a [f32]>,
    /// Save a checkpoint (weights + optimizer state) in this directory after every epoch.
    pub checkpoint: Option<PathBuf>,
    /// Resume from the checkpoint in this directory: restores weights and optimizer state and continues with
    /// the epoch after the last one saved.
    pub resume_from: Option<PathBuf>,
    /// Keras `callbacks=[…]`, called in this order (borrowed, so their state can be read after `fit`; held in a
    /// mutex because `fit` takes the options by shared reference).
    pub callbacks: Mutex<Vec<&'a mut dyn Callback>>,
}

impl Default for FitOptions<'_> {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            batch_size: 32,
            shuffle: true,
            validation: Validation::None,
            verbose: Verbose::ProgressBar,
            initial_epoch: 0,
            class_weight: None,
            checkpoint: None,
            resume_from: None,
            callbacks: Mutex::new(Vec::new()),
        }
    }
}

impl<'a> FitOptions<'a> {
    /// Sets `epochs`.
    pub fn epochs(mut self, n: usize) -> Self {
        self.epochs = n;
        self
    }
    /// Sets `batch_size`.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }
    /// Sets `shuffle`.
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }
    /// Sets the validation data.
    pub fn validation(mut self, v: Validation<'a>) -> Self {
        self.validation = v;
        self
    }
    /// Sets `class_weight` (the weight of each class index).
    pub fn class_weight(mut self, weights: &'a [f32]) -> Self {
        self.class_weight = Some(weights);
        self
    }
    /// Sets `verbose`.
    pub fn verbose(mut self, v: Verbose) -> Self {
        self.verbose = v;
        self
    }
    /// Saves a checkpoint after every epoch.
    pub fn checkpoint(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoint = Some(dir.into());
        self
    }
    /// Adds a callback (Keras `callbacks=[…]`); callbacks run in the order added.
    pub fn callback(self, cb: &'a mut dyn Callback) -> Self {
        let mut list = self.callbacks.into_inner().unwrap_or_else(|e| e.into_inner());
        list.push(cb);
        FitOptions { callbacks: Mutex::new(list), ..self }
    }
    /// Resumes from a checkpoint.
    pub fn resume_from(mut self, dir: impl Into<PathBuf>) -> Self {
        self.resume_from = Some(dir.into());
        self
    }
}

/// The convolution algorithms of one layer ([`Model::conv_algorithms`](crate::Model::conv_algorithms)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvChoice {
    /// Layer name.
    pub layer: String,
    /// Forward pass.
    pub forward: ConvAlgo,
    /// Backward-data pass (`None` for a first layer, whose input gradient is never computed).
    pub backward_data: Option<ConvAlgo>,
    /// Backward-filter pass.
    pub backward_filter: ConvAlgo,
}

/// Wall time of one layer in a profiled training step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerTime {
    /// Layer name.
    pub name: String,
    /// Forward time.
    pub forward: Duration,
    /// Backward time.
    pub backward: Duration,
}

/// A per-layer breakdown of one training step ([`Model::profile_step`](crate::Model::profile_step)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepProfile {
    /// Per layer, in model order.
    pub layers: Vec<LayerTime>,
    /// The loss' forward and backward.
    pub loss: Duration,
    /// The optimizer update.
    pub optimizer: Duration,
    /// The whole step.
    pub total: Duration,
}
