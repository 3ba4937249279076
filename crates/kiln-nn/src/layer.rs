//! The [`Layer`] trait, weight initialisers and the build context.

use std::fmt;

use kiln_autograd::{Activation, ParamId, Params, Recording, Var};
use kiln_tensor::Tensor;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::error::{NnError, Result};

/// A Keras-style layer: a configuration that, once built for an input shape, owns parameters in the model's
/// [`Params`] store and records its forward computation on a step's [`Recording`].
///
/// A layer is shared by every data-parallel replica of a step (hence `&self` in `forward`); what it keeps between
/// steps lives in the store as parameters — trainable weights, and non-trainable *state* such as a moving mean
/// (registered with `trainable = false`). A stateful layer updates its state as Keras' `variable.assign` does:
/// [`Recording::assign`] in `forward` (with `training`), and the model writes the assigned values into the
/// store once per step, after the optimizer, from the first replica.
///
/// Batch statistics over the whole batch (BatchNormalization in training) need the replicas' partial sums
/// combined before any replica can go on. The model's engine runs the replicas' forward passes in segments for
/// that: layers up to such a layer run per replica, the partial sums are added in replica order (the same
/// fixed-order reduction as the gradients, and across processes the same contract), and every replica continues
/// with the combined statistics — so every replica assigns the same moving statistics, and the result does not
/// depend on the thread count. The backward pass has the matching sync point for the statistics' gradients.
pub trait Layer: Send + Sync + fmt::Debug {
    /// The Keras class name (`"Conv2D"`, `"Dense"`, …), shown by `summary()` and stored in `model.json`.
    fn class_name(&self) -> &'static str;
    /// The name given by the user, if any (otherwise the model numbers it Keras-style: `conv2d`, `conv2d_1`, …).
    fn name(&self) -> Option<&str>;
    /// Sets the layer's name.
    fn set_name(&mut self, name: String);
    /// The output shape (without the batch axis) for an input shape (without the batch axis); an error when
    /// the input does not fit the layer.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>>;
    /// Registers this layer's parameters (`<name>/kernel`, `<name>/bias`, …) in `params` for `input`.
    fn build(&mut self, name: &str, input: &[usize], params: &mut Params) -> Result<()>;
    /// Fills the parameters with their initial values (Glorot-uniform kernels, zero biases).
    fn initialize(&self, params: &mut Params, rng: &mut ChaCha8Rng) -> Result<()>;
    /// Records the layer's forward computation on `x` (batch first): Keras' `call(x, training)`. State updates go
    /// through [`Recording::assign`].
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, training: bool) -> Result<Var>;
    /// The output shape for the inputs of one call (per-sample shapes, in call order). A merge (`Add`,
    /// `Concatenate`) takes several; every other layer exactly one, and this is then [`Layer::output_shape`].
    fn output_shape_of(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        match inputs {
            [x] => self.output_shape(x),
            _ => Err(NnError::config(self.class_name(), format!("takes one input, not {}", inputs.len()))),
        }
    }
    /// Records the forward computation of one call on its inputs (in call order); see
    /// [`Layer::output_shape_of`].
    fn forward_of(&self, rec: &mut Recording<'_, '_>, inputs: &[Var], training: bool) -> Result<Var> {
        match inputs {
            [x] => self.forward(rec, *x, training),
            _ => Err(NnError::config(self.class_name(), format!("takes one input, not {}", inputs.len()))),
        }
    }
    /// Whether training needs statistics of the whole batch (BatchNormalization): with the batch split across
    /// replicas the engine then runs this layer's training forward in two halves, [`Layer::forward_partials`] on
    /// every replica, the sums added in replica order, then [`Layer::forward_global`].
    fn batch_statistics(&self) -> bool {
        false
    }
    /// The first half of a batch-statistics layer's training forward: this replica's partial sums, written to
    /// the recording's exchange ([`Recording::exchange`]).
    fn forward_partials(&self, rec: &mut Recording<'_, '_>, x: Var) -> Result<()> {
        let _ = (rec, x);
        Err(NnError::config(self.class_name(), "this layer has no batch statistics"))
    }
    /// The second half: the training output from the whole batch's sums ([`Recording::set_exchange_global`]).
    fn forward_global(&self, rec: &mut Recording<'_, '_>, x: Var) -> Result<Var> {
        let _ = (rec, x);
        Err(NnError::config(self.class_name(), "this layer has no batch statistics"))
    }
    /// Asks the layer to apply the ReLU that follows it (an `Activation("relu")` reading only this layer) in its
    /// own pass; true if it will, and the model then skips that activation. Only an execution detail: the
    /// activation stays a layer of the model, and the values are the same bits.
    fn fuse_relu(&mut self) -> bool {
        false
    }
    /// Whether this layer is a plain ReLU (`Activation("relu")`) another layer may fuse ([`Layer::fuse_relu`]).
    fn is_relu(&self) -> bool {
        false
    }
    /// The parameters as `(short name, id)`: `("kernel", …)`, `("bias", …)`; empty before `build`.
    fn weights(&self) -> Vec<(&'static str, ParamId)>;
    /// FLOPs of this layer's forward pass for one sample of shape `input`, 2 per multiply-add of weights and
    /// activations (convolutions and Dense; 0 for layers without such products, whose work is not FMA-bound).
    fn flops(&self, input: &[usize]) -> u64 {
        let _ = input;
        0
    }
    /// For a convolution layer: its kernel geometry at `batch` for this (per-sample) input shape, so a model can
    /// report which algorithm runs; `None` for other layers.
    fn conv_geometry(&self, input: &[usize], batch: usize) -> Option<kiln_kernels::Conv2dGeometry> {
        let _ = (input, batch);
        None
    }
    /// The Keras-style configuration (what `model.json` stores).
    fn config(&self) -> Value;
    /// A boxed copy (unbuilt state included).
    fn box_clone(&self) -> Box<dyn Layer>;
}

impl Clone for Box<dyn Layer> {
    fn clone(&self) -> Self {
        self.box_clone()
    }
}

/// Keras' `glorot_uniform`: `U(−l, l)` with `l = √(6 / (fan_in + fan_out))`.
pub fn glorot_uniform(rng: &mut ChaCha8Rng, fan_in: usize, fan_out: usize, out: &mut [f32]) {
    let limit = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt() as f32;
    for v in out {
        *v = rng.random_range(-limit..=limit);
    }
}

/// Keras' fans of a kernel: for a convolution kernel `(kh, kw, in, out)` `fan_in = kh·kw·in`,
/// `fan_out = kh·kw·out`; for a dense kernel `(in, out)` `in` and `out`.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [i, o] => (*i, *o),
        _ => {
            let receptive: usize = shape[..shape.len() - 2].iter().product();
            (receptive * shape[shape.len() - 2], receptive * shape[shape.len() - 1])
        }
    }
}

/// Initialises a kernel with Glorot-uniform values from its shape.
pub(crate) fn init_kernel(params: &mut Params, id: ParamId, rng: &mut ChaCha8Rng) -> Result<()> {
    let dims = params.dims(id)?;
    let (fan_in, fan_out) = fans(dims.as_slice());
    glorot_uniform(rng, fan_in, fan_out, params.value_mut(id)?);
    Ok(())
}

/// Zeroes a parameter.
pub(crate) fn init_zeros(params: &mut Params, id: ParamId) -> Result<()> {
    params.value_mut(id)?.fill(0.0);
    Ok(())
}

/// The weights of a layer with a kernel and an optional bias (Conv2D, Dense): registration, Keras
/// initialisation (Glorot-uniform kernel, zero bias) and their tape variables.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KernelBias {
    kernel: Option<ParamId>,
    bias: Option<ParamId>,
}

impl KernelBias {
    /// Registers `<layer>/kernel` of `kernel_dims` and, with `bias`, `<layer>/bias` of `bias_len`.
    pub(crate) fn build(layer: &str, kernel_dims: &[usize], bias: Option<usize>, params: &mut Params) -> Result<Self> {
        let kernel = Some(add_param(params, layer, "kernel", kernel_dims)?);
        let bias = bias.map(|n| add_param(params, layer, "bias", &[n])).transpose()?;
        Ok(KernelBias { kernel, bias })
    }

    pub(crate) fn initialize(&self, params: &mut Params, rng: &mut ChaCha8Rng) -> Result<()> {
        if let Some(k) = self.kernel {
            init_kernel(params, k, rng)?;
        }
        if let Some(b) = self.bias {
            init_zeros(params, b)?;
        }
        Ok(())
    }

    /// The kernel and bias as variables of this step (an error before `build`).
    pub(crate) fn vars(&self, class: &str, rec: &mut Recording<'_, '_>) -> Result<(Var, Option<Var>)> {
        let k = self.kernel.ok_or_else(|| NnError::config(class, "forward before build"))?;
        let w = rec.param(k)?;
        let b = self.bias.map(|b| rec.param(b)).transpose()?;
        Ok((w, b))
    }

    pub(crate) fn weights(&self) -> Vec<(&'static str, ParamId)> {
        self.kernel.map(|k| ("kernel", k)).into_iter().chain(self.bias.map(|b| ("bias", b))).collect()
    }
}

/// Registers a zero trainable parameter named `<layer>/<short>`.
pub(crate) fn add_param(params: &mut Params, layer: &str, short: &str, dims: &[usize]) -> Result<ParamId> {
    Ok(params.add(format!("{layer}/{short}"), &Tensor::zeros(dims)?, true)?)
}

/// A pair argument given as one number (`5`) or two (`(5, 3)`), as Keras' `kernel_size`/`strides`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair(pub usize, pub usize);

impl From<usize> for Pair {
    fn from(v: usize) -> Self {
        Pair(v, v)
    }
}

impl From<(usize, usize)> for Pair {
    fn from((a, b): (usize, usize)) -> Self {
        Pair(a, b)
    }
}

impl From<[usize; 2]> for Pair {
    fn from([a, b]: [usize; 2]) -> Self {
        Pair(a, b)
    }
}

// ---- JSON config helpers ------------------------------------------------------------------------------------

pub(crate) fn cfg_usize(layer: &str, cfg: &Value, key: &str) -> Result<usize> {
    cfg.get(key)
        .and_then(Value::as_u64)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| NnError::config(layer, format!("`{key}` must be a non-negative integer")))
}

pub(crate) fn cfg_pair(layer: &str, cfg: &Value, key: &str) -> Result<Pair> {
    let v = cfg.get(key).and_then(Value::as_array);
    match v.map(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<_>>>()) {
        Some(Some(a)) if a.len() == 2 => Ok(Pair(a[0] as usize, a[1] as usize)),
        _ => Err(NnError::config(layer, format!("`{key}` must be a pair of integers"))),
    }
}

/// A convolution's `padding`: `"valid"`, `"same"` or Kiln's explicit `[top, bottom, left, right]`.
pub(crate) fn cfg_padding(layer: &str, cfg: &Value) -> Result<kiln_kernels::Padding> {
    use kiln_kernels::Padding;
    match cfg.get("padding") {
        Some(Value::String(s)) if s == "valid" => Ok(Padding::Valid),
        Some(Value::String(s)) if s == "same" => Ok(Padding::Same),
        Some(Value::Array(a)) if a.len() == 4 => {
            let v: Option<Vec<usize>> = a.iter().map(|v| v.as_u64().map(|v| v as usize)).collect();
            let v = v.ok_or_else(|| NnError::config(layer, "explicit padding must be 4 integers"))?;
            Ok(Padding::Explicit { top: v[0], bottom: v[1], left: v[2], right: v[3] })
        }
        _ => Err(NnError::config(layer, "`padding` must be \"valid\", \"same\" or [top, bottom, left, right]")),
    }
}

/// The config form of a convolution's padding (see [`cfg_padding`]).
pub(crate) fn padding_json(p: kiln_kernels::Padding) -> Value {
    use kiln_kernels::Padding;
    match p {
        Padding::Valid => Value::from("valid"),
        Padding::Same => Value::from("same"),
        Padding::Explicit { top, bottom, left, right } => Value::from(vec![top, bottom, left, right]),
    }
}

pub(crate) fn cfg_str<'a>(layer: &str, cfg: &'a Value, key: &str) -> Result<&'a str> {
    cfg.get(key).and_then(Value::as_str).ok_or_else(|| NnError::config(layer, format!("`{key}` must be a string")))
}

pub(crate) fn cfg_bool(layer: &str, cfg: &Value, key: &str) -> Result<bool> {
    cfg.get(key).and_then(Value::as_bool).ok_or_else(|| NnError::config(layer, format!("`{key}` must be a boolean")))
}

pub(crate) fn cfg_name(cfg: &Value) -> Option<String> {
    cfg.get("name").and_then(Value::as_str).map(str::to_owned)
}

pub(crate) fn cfg_activation(layer: &str, cfg: &Value) -> Result<Activation> {
    let name = cfg_str(layer, cfg, "activation")?;
    parse_activation(name)
}

/// Parses a Keras activation name.
pub fn parse_activation(name: &str) -> Result<Activation> {
    Activation::from_name(name).ok_or_else(|| NnError::Unknown {
        kind: "activation",
        name: name.to_owned(),
        known: "linear, swish (silu), relu, sigmoid, tanh, softmax, leaky_relu, elu, gelu",
    })
}
