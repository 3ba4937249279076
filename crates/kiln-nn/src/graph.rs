//! From symbolic tensors to a model's layer order: the layers between an input and an output, ordered as Keras
//! orders `model.layers` (`keras.src.ops.function.map_graph`). A depth-first walk from the output numbers the
//! layers as it meets them (a layer before the layers it reads); each layer's depth is its longest path to the
//! output; layers go by decreasing depth, ties by that number. Every layer then comes after every layer it
//! reads, so the order is also the forward pass's.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{NnError, Result};
use crate::model::Wiring;
use crate::symbolic::{SymNode, SymbolicTensor};

/// A traced graph: its layer-making tensors in Keras' order and, for each, where its inputs come from.
pub(crate) struct Graph {
    /// The tensors made by layers, in order.
    nodes: Vec<SymbolicTensor>,
    /// For each, its inputs: 0 for the model's input, `k + 1` for `nodes[k]`.
    inputs: Vec<Vec<usize>>,
}

fn key(t: &SymbolicTensor) -> *const SymNode {
    Arc::as_ptr(&t.0)
}

/// The depth-first walk's state.
struct Walk<'a> {
    input: &'a SymbolicTensor,
    /// Order of first meeting, by node.
    met: HashMap<*const SymNode, usize>,
    /// Nodes finished, inputs before the nodes reading them (Keras' `nodes_in_decreasing_depth`).
    finished: Vec<SymbolicTensor>,
}

impl Walk<'_> {
    fn visit(&mut self, t: &SymbolicTensor) -> Result<()> {
        if Arc::ptr_eq(&t.0, &self.input.0) || self.met.contains_key(&key(t)) {
            return Ok(());
        }
        if t.0.layer.is_none() {
            return Err(NnError::config(
                "model",
                "the outputs read a tensor that is not computed from these inputs (graph disconnected)",
            ));
        }
        self.met.insert(key(t), self.met.len());
        for p in &t.0.parents {
            self.visit(p)?;
        }
        self.finished.push(t.clone());
        Ok(())
    }
}

impl Graph {
    /// The layers leading from `input` to `output`.
    pub(crate) fn trace(input: &SymbolicTensor, output: &SymbolicTensor) -> Result<Graph> {
        let mut walk = Walk { input, met: HashMap::new(), finished: Vec::new() };
        walk.visit(output)?;
        let mut depth: HashMap<*const SymNode, usize> = HashMap::new();
        for t in walk.finished.iter().rev() {
            let d = *depth.entry(key(t)).or_insert(0);
            for p in &t.0.parents {
                let e = depth.entry(key(p)).or_insert(0);
                *e = (*e).max(d + 1);
            }
        }
        let mut nodes = walk.finished;
        nodes.sort_by_key(|t| (std::cmp::Reverse(depth[&key(t)]), walk.met[&key(t)]));
        let position: HashMap<*const SymNode, usize> = nodes.iter().enumerate().map(|(i, t)| (key(t), i + 1)).collect();
        let inputs = nodes
            .iter()
            .map(|t| t.0.parents.iter().map(|p| position.get(&key(p)).copied().unwrap_or(0)).collect())
            .collect();
        Ok(Graph { nodes, inputs })
    }

    /// Copies of the layers with their inputs, ready for `Model::assemble`.
    pub(crate) fn wiring(&self) -> Vec<Wiring> {
        self.nodes
            .iter()
            .zip(&self.inputs)
            .filter_map(|(t, inputs)| t.0.layer.as_ref().map(|l| (l.box_clone(), inputs.clone())))
            .collect()
    }
}
