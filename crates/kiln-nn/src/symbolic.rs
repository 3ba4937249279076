//! The functional API: `Input` → layer → layer, as the notebook writes it.

use std::sync::Arc;

use crate::error::Result;
use crate::layer::Layer;

/// A symbolic tensor: the (per-sample) shape flowing between layers while a model is being described, and
/// the chain of layers that produced it.
#[derive(Debug, Clone)]
pub struct SymbolicTensor(pub(crate) Arc<SymNode>);

#[derive(Debug)]
pub(crate) struct SymNode {
    pub(crate) shape: Vec<usize>,
    pub(crate) layer: Option<Box<dyn Layer>>,
    pub(crate) parent: Option<SymbolicTensor>,
    pub(crate) input_name: Option<String>,
}

impl SymbolicTensor {
    /// The per-sample shape (Keras prints it with a leading `None` batch axis).
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
}

/// Keras `Input(shape=…)`: the model's input, per sample (e.g. `(28, 28, 1)`).
#[derive(Debug)]
pub struct Input;

impl Input {
    /// An input of the given per-sample shape, named `input_layer` as Keras 3 does.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(shape: &[usize]) -> SymbolicTensor {
        Input::named(shape, "input_layer")
    }

    /// An input with a chosen name.
    pub fn named(shape: &[usize], name: &str) -> SymbolicTensor {
        SymbolicTensor(Arc::new(SymNode {
            shape: shape.to_vec(),
            layer: None,
            parent: None,
            input_name: Some(name.to_owned()),
        }))
    }
}

/// Applies a layer to a symbolic tensor (Keras' `layer(x)`): checks that the layer accepts the shape and
/// returns its symbolic output.
pub trait Call {
    /// `layer(x)`.
    fn call(self, x: &SymbolicTensor) -> Result<SymbolicTensor>;
}

impl<L: Layer + 'static> Call for L {
    fn call(self, x: &SymbolicTensor) -> Result<SymbolicTensor> {
        let shape = self.output_shape(x.shape())?;
        Ok(SymbolicTensor(Arc::new(SymNode {
            shape,
            layer: Some(Box::new(self)),
            parent: Some(x.clone()),
            input_name: None,
        })))
    }
}

impl Call for Box<dyn Layer> {
    fn call(self, x: &SymbolicTensor) -> Result<SymbolicTensor> {
        let shape = self.output_shape(x.shape())?;
        Ok(SymbolicTensor(Arc::new(SymNode { shape, layer: Some(self), parent: Some(x.clone()), input_name: None })))
    }
}
