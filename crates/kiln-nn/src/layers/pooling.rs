//! Pooling layers over NHWC: `MaxPooling2D`, `AveragePooling2D` (windows), `GlobalAveragePooling2D`,
//! `GlobalMaxPooling2D` (the whole image). Keras defaults: `pool_size=2`, `strides=None` (the pool size),
//! `padding="valid"`, `keepdims=False`.

use kiln_autograd::{PoolPadding, Recording, Var};
use serde_json::{Value, json};

use crate::error::{NnError, Result};
use crate::layer::{Layer, Pair, cfg_bool, cfg_name, cfg_pair, cfg_str};

/// The window of a pooling layer: size, strides and padding, as Keras configures them.
#[derive(Debug, Clone, Copy)]
struct Window {
    pool_size: Pair,
    strides: Option<Pair>,
    padding: PoolPadding,
}

impl Window {
    fn new(pool_size: Pair) -> Self {
        Window { pool_size, strides: None, padding: PoolPadding::Valid }
    }

    fn stride(&self) -> Pair {
        self.strides.unwrap_or(self.pool_size)
    }

    fn from_config(layer: &str, cfg: &Value) -> Result<Self> {
        let padding = match cfg_str(layer, cfg, "padding")? {
            "valid" => PoolPadding::Valid,
            "same" => PoolPadding::Same,
            _ => return Err(NnError::config(layer, "`padding` must be \"valid\" or \"same\"")),
        };
        Ok(Window {
            pool_size: cfg_pair(layer, cfg, "pool_size")?,
            strides: Some(cfg_pair(layer, cfg, "strides")?),
            padding,
        })
    }

    fn config(&self, name: &Option<String>) -> Value {
        let s = self.stride();
        let padding = if self.padding == PoolPadding::Same { "same" } else { "valid" };
        json!({
            "name": name,
            "pool_size": [self.pool_size.0, self.pool_size.1],
            "strides": [s.0, s.1],
            "padding": padding,
            "data_format": "channels_last",
        })
    }

    fn output_shape(&self, class: &str, label: &str, input: &[usize]) -> Result<Vec<usize>> {
        let [h, w, c] = input else {
            return Err(NnError::Data {
                what: "pooling input",
                expected: format!("(height, width, channels) for {class}"),
                got: format!("{input:?}"),
            });
        };
        let (p, s) = (self.pool_size, self.stride());
        if p.0 == 0 || p.1 == 0 || s.0 == 0 || s.1 == 0 {
            return Err(NnError::config(label, "pool size and strides must be ≥ 1"));
        }
        let out = |n: usize, p: usize, s: usize| match self.padding {
            PoolPadding::Valid if n >= p => Ok((n - p) / s + 1),
            PoolPadding::Valid => Err(NnError::config(label, format!("pool {p} is larger than the input {n}"))),
            PoolPadding::Same => Ok(n.div_ceil(s)),
        };
        Ok(vec![out(*h, p.0, s.0)?, out(*w, p.1, s.1)?, *c])
    }
}

macro_rules! windowed {
    ($(#[$doc:meta])* $name:ident, $class:literal, $base:literal, $op:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            name: Option<String>,
            window: Window,
        }

        impl Default for $name {
            fn default() -> Self {
                $name { name: None, window: Window::new(Pair(2, 2)) }
            }
        }

        impl $name {
            /// Pooling windows of `pool_size`, strides equal to the window.
            pub fn new(pool_size: impl Into<Pair>) -> Self {
                $name { name: None, window: Window::new(pool_size.into()) }
            }
            /// Strides (default: the pool size).
            pub fn strides(mut self, s: impl Into<Pair>) -> Self {
                self.window.strides = Some(s.into());
                self
            }
            /// Padding (default valid).
            pub fn padding(mut self, p: PoolPadding) -> Self {
                self.window.padding = p;
                self
            }
            /// A fixed layer name.
            pub fn name(mut self, name: impl Into<String>) -> Self {
                self.name = Some(name.into());
                self
            }
            /// Reads a `model.json` config.
            pub fn from_config(cfg: &Value) -> Result<Self> {
                Ok($name { name: cfg_name(cfg), window: Window::from_config($class, cfg)? })
            }
        }

        impl Layer for $name {
            no_params!();
            fn class_name(&self) -> &'static str {
                $class
            }
            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
                self.window.output_shape($class, self.name.as_deref().unwrap_or($base), input)
            }
            fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, _training: bool) -> Result<Var> {
                let (p, s) = (self.window.pool_size, self.window.stride());
                Ok(rec.$op(x, (p.0, p.1), (s.0, s.1), self.window.padding)?)
            }
            fn config(&self) -> Value {
                self.window.config(&self.name)
            }
        }
    };
}

windowed!(
    /// Keras `MaxPooling2D(pool_size=2, strides=None → pool_size, padding="valid")` over NHWC.
    MaxPooling2D,
    "MaxPooling2D",
    "max_pooling2d",
    max_pool2d
);

windowed!(
    /// Keras `AveragePooling2D(pool_size=2, strides=None → pool_size, padding="valid")` over NHWC; with `same`
    /// padding each average is over the window's real inputs, as TensorFlow's.
    AveragePooling2D,
    "AveragePooling2D",
    "average_pooling2d",
    avg_pool2d
);

macro_rules! global {
    ($(#[$doc:meta])* $name:ident, $class:literal, $op:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default)]
        pub struct $name {
            name: Option<String>,
            keepdims: bool,
        }

        impl $name {
            /// Keras' defaults (`keepdims=False`).
            pub fn new() -> Self {
                $name::default()
            }
            /// Keep the spatial axes, as size 1: `(batch, 1, 1, channels)`.
            pub fn keepdims(mut self, on: bool) -> Self {
                self.keepdims = on;
                self
            }
            /// A fixed layer name.
            pub fn name(mut self, name: impl Into<String>) -> Self {
                self.name = Some(name.into());
                self
            }
            /// Reads a `model.json` config.
            pub fn from_config(cfg: &Value) -> Result<Self> {
                let keepdims = if cfg.get("keepdims").is_some() { cfg_bool($class, cfg, "keepdims")? } else { false };
                Ok($name { name: cfg_name(cfg), keepdims })
            }
        }

        impl Layer for $name {
            no_params!();
            fn class_name(&self) -> &'static str {
                $class
            }
            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
                let [_, _, c] = input else {
                    return Err(NnError::Data {
                        what: "pooling input",
                        expected: format!("(height, width, channels) for {}", $class),
                        got: format!("{input:?}"),
                    });
                };
                Ok(if self.keepdims { vec![1, 1, *c] } else { vec![*c] })
            }
            fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, _training: bool) -> Result<Var> {
                let y = rec.$op(x)?;
                if !self.keepdims {
                    return Ok(y);
                }
                let d = rec.dims(y)?;
                Ok(rec.reshape(y, &[d.get(0), 1, 1, d.get(1)])?)
            }
            fn config(&self) -> Value {
                json!({"name": self.name, "data_format": "channels_last", "keepdims": self.keepdims})
            }
        }
    };
}

global!(
    /// Keras `GlobalAveragePooling2D`: the mean of each channel over the image, `(batch, channels)`.
    GlobalAveragePooling2D,
    "GlobalAveragePooling2D",
    global_avg_pool2d
);

global!(
    /// Keras `GlobalMaxPooling2D`: the maximum of each channel over the image, `(batch, channels)`; tied maxima
    /// share the gradient, as TensorFlow's `reduce_max`.
    GlobalMaxPooling2D,
    "GlobalMaxPooling2D",
    global_max_pool2d
);
