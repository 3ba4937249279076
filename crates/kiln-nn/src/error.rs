//! The error type of the nn crate.

use std::path::PathBuf;

use kiln_autograd::AutogradError;
use kiln_kernels::KernelError;
use kiln_tensor::TensorError;
use thiserror::Error;

/// Everything a user of a [`Model`](crate::Model) can get wrong: no call panics on user input.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NnError {
    /// An operation on the tape failed (shapes, kernels).
    #[error(transparent)]
    Autograd(#[from] AutogradError),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A kernel rejected its arguments.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// A layer or model was configured with an invalid value.
    #[error("{layer}: {message}")]
    Config {
        /// The layer (or `model`).
        layer: String,
        /// What is wrong.
        message: String,
    },
    /// A name that is not a known loss, optimizer, activation, metric or layer class.
    #[error("unknown {kind} `{name}` (known: {known})")]
    Unknown {
        /// What kind of name.
        kind: &'static str,
        /// The name given.
        name: String,
        /// The accepted names.
        known: &'static str,
    },
    /// Data whose shape does not fit the model or the other data.
    #[error("{what}: expected {expected}, got {got}")]
    Data {
        /// Which data.
        what: &'static str,
        /// What was expected.
        expected: String,
        /// What was received.
        got: String,
    },
    /// `fit`/`evaluate` before `compile`.
    #[error("the model must be compiled before {0} (call `compile`)")]
    NotCompiled(&'static str),
    /// The loss became NaN or infinite (Keras' TerminateOnNaN, reported as an error).
    #[error("training stopped: the loss is {value} at epoch {epoch}, step {step} (1-based)")]
    NonFiniteLoss {
        /// Epoch, 1-based.
        epoch: usize,
        /// Step within the epoch, 1-based.
        step: usize,
        /// The loss value.
        value: f32,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A saved model or checkpoint that is corrupt or does not match.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A Keras model file (`.keras` archive, `.weights.h5`, legacy `.h5`) that is corrupt, truncated or does not
    /// fit the model; `entry` names the part of the file (`config.json`, `model.weights.h5:layers/dense/vars/0`).
    #[error("{path} [{entry}]: {message}")]
    KerasFile {
        /// The file.
        path: PathBuf,
        /// The entry of the archive, or the object inside the HDF5 file.
        entry: String,
        /// What is wrong.
        message: String,
    },
    /// A Keras layer class, layer option or compile setting Kiln does not implement: refused, never approximated.
    #[error("{layer}: {option} = {value} is not supported by Kiln")]
    Unsupported {
        /// The layer (its name and class), or `optimizer` / `compile` / `model`.
        layer: String,
        /// The option (or `class_name`).
        option: String,
        /// The value found in the file.
        value: String,
    },
    /// A collective operation of data-parallel training across processes failed: a peer died, timed out or
    /// sent something inconsistent.
    #[error("distributed training, rank {rank}: {message}")]
    Distributed {
        /// The rank the failure is about (the peer that failed when known, else this process).
        rank: usize,
        /// What happened.
        message: String,
    },
    /// The thread pool could not be created.
    #[error("cannot start {threads} threads: {message}")]
    Threads {
        /// Threads requested.
        threads: usize,
        /// The reason.
        message: String,
    },
}

impl NnError {
    pub(crate) fn config(layer: impl Into<String>, message: impl Into<String>) -> Self {
        NnError::Config { layer: layer.into(), message: message.into() }
    }

    pub(crate) fn format(path: &std::path::Path, message: impl Into<String>) -> Self {
        NnError::Format { path: path.to_path_buf(), message: message.into() }
    }

    pub(crate) fn keras(path: &std::path::Path, entry: impl Into<String>, message: impl Into<String>) -> Self {
        NnError::KerasFile { path: path.to_path_buf(), entry: entry.into(), message: message.into() }
    }

    pub(crate) fn unsupported(layer: impl Into<String>, option: impl Into<String>, value: impl ToString) -> Self {
        NnError::Unsupported { layer: layer.into(), option: option.into(), value: value.to_string() }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        NnError::Io { path: path.to_path_buf(), source }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = NnError> = std::result::Result<T, E>;
