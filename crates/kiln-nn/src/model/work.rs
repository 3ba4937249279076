//! How much work a training step is, from the layers' geometry: FMA-bound FLOPs per layer (what a run's speed is
//! stated against the FMA peak with) and an estimate of the bytes a step moves (what it is stated against memory
//! bandwidth with).

use serde::Serialize;

use super::Model;

/// Training FLOPs of one layer for one sample ([`Model::train_flops_per_layer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerFlops {
    /// Layer name.
    pub name: String,
    /// The forward pass ([`Layer::flops`](crate::Layer::flops)).
    pub forward: u64,
    /// The backward pass: the weight gradient (as many FLOPs as the forward) and, when a layer before has
    /// trainable weights, the input gradient (as many again).
    pub backward: u64,
}

/// Bytes one training step moves, estimated from the plan ([`Model::step_bytes`]).
///
/// Each array a pass reads or writes is counted once per pass, as if nothing stayed in cache between passes and
/// nothing were re-read within one: the traffic a step cannot avoid when its working set leaves the core's
/// caches, and the scale to compare with the L2/L3 bandwidth. Activation layers fused into the layer before move
/// nothing of their own and are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StepBytes {
    /// Layer inputs and outputs and their gradients, forward and backward (scales with the batch).
    pub activations: u64,
    /// Weights read by the forward (and the input gradient) and weight gradients written, per replica.
    pub weights: u64,
    /// The optimizer update: every trainable weight, each replica's gradient of it and the optimizer's state slots
    /// read, the weight and the slots written.
    pub optimizer: u64,
}

impl StepBytes {
    /// The three parts together.
    pub fn total(&self) -> u64 {
        self.activations + self.weights + self.optimizer
    }
}

/// Per layer: whether its input needs a gradient, and its trainable and all weight element counts.
struct LayerFacts {
    input_grad: bool,
    trainable: u64,
    state: u64,
}

impl Model {
    fn layer_facts(&self) -> Vec<LayerFacts> {
        // Whether each value of the graph (0: the input) depends on a trainable weight.
        let mut needs_grad = vec![false; self.layers.len() + 1];
        let mut facts = Vec::with_capacity(self.layers.len());
        for (k, slot) in self.layers.iter().enumerate() {
            let input_grad = slot.inputs.iter().any(|&v| needs_grad[v]);
            let (mut trainable, mut state) = (0u64, 0u64);
            for (_, id) in slot.layer.weights() {
                let n = self.params.value(id).map_or(0, |v| v.len() as u64);
                if self.params.trainable(id).unwrap_or(false) {
                    trainable += n;
                } else {
                    state += n;
                }
            }
            needs_grad[k + 1] = input_grad || trainable > 0;
            facts.push(LayerFacts { input_grad, trainable, state });
        }
        facts
    }

    /// Training FLOPs per sample of each layer, in model order ([`LayerFlops`]); they add up to
    /// [`Model::train_flops_per_sample`].
    pub fn train_flops_per_layer(&self) -> Vec<LayerFlops> {
        self.layers
            .iter()
            .zip(self.layer_facts())
            .map(|(slot, facts)| {
                let input = slot.inputs.first().map_or(&[][..], |&v| self.value_shape(v));
                let f = slot.layer.flops(input);
                LayerFlops {
                    name: slot.name.clone(),
                    forward: f,
                    backward: f.saturating_mul(if facts.input_grad { 2 } else { 1 }),
                }
            })
            .collect()
    }

    /// FLOPs of one training step per sample, from the layers' geometry ([`Layer::flops`](crate::Layer::flops):
    /// convolutions and Dense): each layer's forward FLOPs once for the forward pass, once for its weight gradient,
    /// and once more for its input gradient when a layer before it has trainable weights (the first layers' inputs
    /// need none). The notebook's model: 2,467,440 per sample, 148.05 GFLOP per 60,000-image epoch.
    pub fn train_flops_per_sample(&self) -> u64 {
        self.train_flops_per_layer().iter().fold(0u64, |t, l| t.saturating_add(l.forward).saturating_add(l.backward))
    }

    /// The bytes one training step on a batch of `batch` samples moves, estimated from the plan ([`StepBytes`]):
    /// with data parallelism each replica reads the weights and writes its own weight gradients, which the
    /// optimizer then reads.
    pub fn step_bytes(&self, batch: usize) -> StepBytes {
        const F32: u64 = 4;
        let batch = batch as u64;
        let replicas = self.replicas.min(batch.max(1) as usize) as u64;
        let slots = self.compiled.map_or(0, |c| c.optimizer.slots()) as u64;
        let mut bytes = StepBytes::default();
        for (slot, facts) in self.layers.iter().zip(self.layer_facts()) {
            if slot.fused {
                continue;
            }
            let input: u64 = slot.inputs.iter().map(|&v| self.value_shape(v).iter().product::<usize>() as u64).sum();
            let output = slot.output_shape.iter().product::<usize>() as u64;
            let input_grad = u64::from(facts.input_grad);
            // Forward: inputs read, output written. Backward: the output's gradient read, the inputs read again
            // for a weight gradient, the inputs' gradient written when needed.
            let backward = output + if facts.trainable > 0 { input } else { 0 } + input_grad * input;
            bytes.activations += F32 * batch * (input + output + backward);
            // Each replica reads the weights forward (and again for the input gradient) and writes their gradient;
            // layer state (BatchNormalization's moving statistics) is read and written once per replica.
            bytes.weights += F32 * replicas * (facts.trainable * (2 + input_grad) + 2 * facts.state);
            bytes.optimizer += F32 * facts.trainable * (2 + 2 * slots + replicas);
        }
        bytes
    }
}
