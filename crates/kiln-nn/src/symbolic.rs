//! The functional API: `Input` → layer → layer, as the notebook writes it, and merges of branches
//! (`Add().call_on(&[&a, &b])`, Keras' `Add()([a, b])`).

use std::sync::Arc;

use crate::error::Result;
use crate::layer::Layer;

/// A symbolic tensor: the (per-sample) shape flowing between layers while a model is being described, and
/// the graph of layers that produced it.
#[derive(Debug, Clone)]
pub struct SymbolicTensor(pub(crate) Arc<SymNode>);

#[derive(Debug)]
pub(crate) struct SymNode {
    pub(crate) shape: Vec<usize>,
    pub(crate) layer: Option<Box<dyn Layer>>,
    /// The inputs of the call that made this tensor, in call order (none for an `Input`).
    pub(crate) parents: Vec<SymbolicTensor>,
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
            parents: Vec::new(),
            input_name: Some(name.to_owned()),
        }))
    }
}

/// Applies a layer to symbolic tensors (Keras' `layer(x)`, `layer([a, b])`): checks that the layer accepts the
/// shapes and returns its symbolic output.
pub trait Call {
    /// `layer(x)`.
    fn call(self, x: &SymbolicTensor) -> Result<SymbolicTensor>
    where
        Self: Sized,
    {
        self.call_on(&[x])
    }
    /// `layer([a, b, …])`: a call on several inputs, as merges (`Add`, `Concatenate`) take them.
    fn call_on(self, inputs: &[&SymbolicTensor]) -> Result<SymbolicTensor>;
}

impl<L: Layer + 'static> Call for L {
    fn call_on(self, inputs: &[&SymbolicTensor]) -> Result<SymbolicTensor> {
        (Box::new(self) as Box<dyn Layer>).call_on(inputs)
    }
}

impl Call for Box<dyn Layer> {
    fn call_on(self, inputs: &[&SymbolicTensor]) -> Result<SymbolicTensor> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|x| x.shape()).collect();
        let shape = self.output_shape_of(&shapes)?;
        Ok(SymbolicTensor(Arc::new(SymNode {
            shape,
            layer: Some(self),
            parents: inputs.iter().map(|&x| x.clone()).collect(),
            input_name: None,
        })))
    }
}
