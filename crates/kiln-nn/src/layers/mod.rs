//! The layers, with Keras names and defaults.

/// The `Layer` methods of a layer without weights or state.
macro_rules! no_params {
    () => {
        fn name(&self) -> Option<&str> {
            self.name.as_deref()
        }
        fn set_name(&mut self, name: String) {
            self.name = Some(name);
        }
        fn build(
            &mut self,
            _name: &str,
            input: &[usize],
            _params: &mut kiln_autograd::Params,
        ) -> $crate::error::Result<()> {
            self.output_shape(input).map(|_| ())
        }
        fn initialize(
            &self,
            _params: &mut kiln_autograd::Params,
            _rng: &mut rand_chacha::ChaCha8Rng,
        ) -> $crate::error::Result<()> {
            Ok(())
        }
        fn weights(&self) -> Vec<(&'static str, kiln_autograd::ParamId)> {
            Vec::new()
        }
        fn box_clone(&self) -> Box<dyn $crate::layer::Layer> {
            Box::new(self.clone())
        }
    };
}

/// The builder methods Conv2D and DepthwiseConv2D share: strides, dilation rate, padding, activation, bias, name.
macro_rules! conv_builders {
    () => {
        /// Strides (default 1).
        pub fn strides(mut self, s: impl Into<Pair>) -> Self {
            self.strides = s.into();
            self
        }
        /// Dilation rate (default 1).
        pub fn dilation_rate(mut self, d: impl Into<Pair>) -> Self {
            self.dilation_rate = d.into();
            self
        }
        /// Padding (default `valid`; `Padding::Same` is TensorFlow's rule).
        pub fn padding(mut self, p: Padding) -> Self {
            self.padding = p;
            self
        }
        /// Activation applied after the bias (default linear).
        pub fn activation(mut self, a: Activation) -> Self {
            self.activation = a;
            self
        }
        /// Whether to add a bias (default true).
        pub fn use_bias(mut self, on: bool) -> Self {
            self.use_bias = on;
            self
        }
        /// A fixed layer name.
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.name = Some(name.into());
            self
        }
    };
}

mod augmentation;
mod batch_norm;
mod conv2d;
mod dense;
mod depthwise_conv2d;
mod geometric;
mod merge;
mod pooling;
mod product;
mod rescaling;
mod simple;

pub use augmentation::{FlipMode, RandomFlip};
pub use batch_norm::BatchNormalization;
pub use conv2d::Conv2D;
pub use dense::Dense;
pub use depthwise_conv2d::DepthwiseConv2D;
pub use geometric::{Factor, RandomRotation, RandomTranslation, RandomZoom};
pub use kiln_autograd::FillMode;
pub use merge::{Add, Concatenate};
pub use pooling::{AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D};
pub use rescaling::Rescaling;
pub use simple::{Activation, Dropout, Flatten, ReLU};

use serde_json::Value;

use crate::error::{NnError, Result};
use crate::layer::Layer;

/// Rebuilds a layer from its class name and `model.json` config.
pub fn layer_from_config(class_name: &str, cfg: &Value) -> Result<Box<dyn Layer>> {
    Ok(match class_name {
        "Conv2D" => Box::new(Conv2D::from_config(cfg)?),
        "Dense" => Box::new(Dense::from_config(cfg)?),
        "DepthwiseConv2D" => Box::new(DepthwiseConv2D::from_config(cfg)?),
        "Flatten" => Box::new(Flatten::from_config(cfg)?),
        "MaxPooling2D" => Box::new(MaxPooling2D::from_config(cfg)?),
        "AveragePooling2D" => Box::new(AveragePooling2D::from_config(cfg)?),
        "GlobalAveragePooling2D" => Box::new(GlobalAveragePooling2D::from_config(cfg)?),
        "GlobalMaxPooling2D" => Box::new(GlobalMaxPooling2D::from_config(cfg)?),
        "Rescaling" => Box::new(Rescaling::from_config(cfg)?),
        "RandomFlip" => Box::new(RandomFlip::from_config(cfg)?),
        "RandomTranslation" => Box::new(RandomTranslation::from_config(cfg)?),
        "RandomRotation" => Box::new(RandomRotation::from_config(cfg)?),
        "RandomZoom" => Box::new(RandomZoom::from_config(cfg)?),
        "BatchNormalization" => Box::new(BatchNormalization::from_config(cfg)?),
        "Dropout" => Box::new(Dropout::from_config(cfg)?),
        "Activation" => Box::new(Activation::from_config(cfg)?),
        "ReLU" => Box::new(ReLU::from_config(cfg)?),
        "Add" => Box::new(Add::from_config(cfg)?),
        "Concatenate" => Box::new(Concatenate::from_config(cfg)?),
        other => {
            return Err(NnError::Unknown {
                kind: "layer class",
                name: other.to_owned(),
                known: "Conv2D, DepthwiseConv2D, Dense, Flatten, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, \
                        GlobalMaxPooling2D, Rescaling, RandomFlip, RandomTranslation, RandomRotation, RandomZoom, \
                        BatchNormalization, Dropout, Activation, ReLU, Add, Concatenate",
            });
        }
    })
}

/// Keras' default base name of a layer class: `Conv2D` → `conv2d`, `MaxPooling2D` → `max_pooling2d`.
pub fn default_base_name(class_name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = class_name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
