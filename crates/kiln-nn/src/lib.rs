//! # kiln-nn
//!
//! Keras-like deep learning on Kiln's kernels: layers with Keras names and defaults ([`layers`]), a [`Model`]
//! built functionally (a graph: branches joined by `Add` / `Concatenate`) or with [`Sequential`], `compile` / `fit` / `evaluate` / `predict` / `summary`, and
//! save/load as safetensors + JSON. A model keeps its weights and layer state once, in a
//! [`kiln_autograd::Params`] store; each data-parallel replica records its part of a step on its own reverse-mode
//! [`kiln_autograd::Tape`], reused from step to step (no allocation per step after the first).
//!
//! The notebook's model:
//!
//! ```
//! use kiln_nn::prelude::*;
//!
//! let inputs = Input::new(&[28, 28, 1]);
//! let x = Conv2D::new(3, 5).activation(ActivationFn::Swish).call(&inputs)?;
//! let x = Conv2D::new(6, 5).activation(ActivationFn::Swish).call(&x)?;
//! let x = Flatten::new().call(&x)?;
//! let x = Dense::new(84).activation(ActivationFn::Swish).call(&x)?;
//! let outputs = Dense::new(10).activation(ActivationFn::Softmax).call(&x)?;
//! let mut model = Model::new(&inputs, &outputs)?;
//! model.compile("categorical_crossentropy", Optimizer::rmsprop(), &["accuracy"])?;
//! assert_eq!(model.count_params(), 203_068);
//! assert!(model.summary().contains("Total params: 203,068 (793.23 KB)"));
//! # Ok::<(), kiln_nn::NnError>(())
//! ```

#![forbid(unsafe_code)]

pub mod callbacks;
pub mod distributed;
mod error;
mod graph;
pub mod io;
mod keras_file;
mod layer;
pub mod layers;
mod model;
mod optim;
mod parallel;
mod policy;
mod progress;
pub mod schedules;
mod summary;
mod symbolic;

pub use error::{NnError, Result};
pub use keras_file::KERAS_VERSION;
pub use kiln_autograd::Activation;
/// The sources `fit`, `evaluate`, `predict` and `train_on_batch` read samples from (defined in `kiln-tensor`, so
/// dataset crates implement them without depending on the framework).
pub use kiln_tensor::data::{self, ClassIndices, Data, ImagesU8, OneHot, Rows};
pub use layer::{Layer, Pair, fans, glorot_uniform, parse_activation};
pub use model::{
    BatchStats, Compiled, ConvChoice, DEFAULT_SEED, EpochLog, Evaluation, FitOptions, History, LayerFlops, LayerTime,
    Model, Sequential, StepBytes, StepProfile, Validation,
};
pub use optim::{Loss, Metric, Optimizer};
pub use policy::DTypePolicy;
pub use progress::{Verbose, per_step};
pub use schedules::LearningRateSchedule;
pub use symbolic::{Call, Input, SymbolicTensor};

/// Everything needed to describe, train and use a model: `use kiln_nn::prelude::*;`.
pub mod prelude {
    /// The activation functions (`ActivationFn::Swish`), named apart from Keras' `Activation` layer.
    pub use crate::Activation as ActivationFn;
    pub use crate::layers::{
        Activation, Add, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Dense, DepthwiseConv2D, Dropout,
        Flatten, FlipMode, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D, RandomFlip, RandomRotation,
        RandomTranslation, RandomZoom, ReLU, Rescaling,
    };
    pub use crate::{
        Call, ClassIndices, DTypePolicy, Data, FitOptions, ImagesU8, Input, Model, OneHot, Optimizer, Rows, Sequential,
        Validation, Verbose,
    };
    pub use kiln_autograd::PoolPadding;
    pub use kiln_kernels::Padding;
}
