//! The Keras 3 weights layout (`model.weights.h5` of a `.keras` archive, or a `.weights.h5` file): each layer's
//! variables at `layers/<path>/vars/<i>` in the layer's own order, the optimizer's at `optimizer/vars/<i>`
//! (`iterations`, `learning_rate` unless a schedule drives it, then each trainable variable's slots in turn).
//! `<path>` is how Keras names a layer inside the file: its class in snake case, numbered per class in the order
//! of `model.layers` (`conv2d`, `conv2d_1`, `batch_normalization`), whatever the layer's own name.

use std::collections::HashMap;
use std::path::Path;

use kiln_autograd::ParamId;

use super::h5::{H5, Tree};
use crate::error::Result;
use crate::layers::default_base_name;
use crate::model::Model;
use crate::optim::OptimizerState;

/// Keras' path of every layer in the weights file, in `model.layers` order: the input layer first for a
/// functional model (Keras lists it as a layer), then each slot.
fn layer_paths(model: &Model) -> (Option<String>, Vec<String>) {
    let mut used: HashMap<String, usize> = HashMap::new();
    let mut path = |class: &str| {
        let base = default_base_name(class);
        let n = used.entry(base.clone()).or_insert(0);
        let p = if *n == 0 { base } else { format!("{base}_{n}") };
        *n += 1;
        p
    };
    let input = model.functional.then(|| path("InputLayer"));
    let slots = model.layers.iter().map(|s| path(s.layer.class_name())).collect();
    (input, slots)
}

/// The number of optimizer variables before the per-variable slots.
fn optimizer_base(model: &Model) -> usize {
    if model.schedule.is_some() { 1 } else { 2 }
}

/// Reads every layer's weights (and, when the model is compiled and the file holds a built optimizer, the
/// optimizer state) into `model`; nothing changes unless everything reads.
pub(crate) fn read(h5: &H5<'_>, model: &mut Model) -> Result<()> {
    let (_, paths) = layer_paths(model);
    let mut values: Vec<(ParamId, Vec<f32>)> = Vec::new();
    for (slot, path) in model.layers.iter().zip(&paths) {
        let weights = slot.layer.weights();
        let vars = format!("layers/{path}/vars");
        let n = if h5.has_group(&vars) { h5.dataset_count(&vars)? } else { 0 };
        if n != weights.len() {
            return Err(h5.err(&vars, format!("holds {n} variables, layer `{}` has {}", slot.name, weights.len())));
        }
        for (i, (_, id)) in weights.iter().enumerate() {
            let dims = model.params.dims(*id)?;
            values.push((*id, h5.read_f32(&format!("{vars}/{i}"), dims.as_slice())?));
        }
    }
    let state = match model.compiled {
        Some(c) if h5.has_group("optimizer/vars") => read_optimizer(h5, model, c.optimizer)?,
        _ => None,
    };
    for (id, v) in values {
        model.params.set_value(id, &v)?;
    }
    if let Some((state, lr)) = state {
        model.state = state;
        if let (Some(lr), Some(c)) = (lr, model.compiled.as_mut()) {
            c.optimizer = c.optimizer.learning_rate(lr);
        }
    }
    Ok(())
}

/// The optimizer state and current learning rate the file holds; `None` for an optimizer Keras saved before
/// building it (only `iterations` and `learning_rate`), which Keras itself skips on load.
fn read_optimizer(
    h5: &H5<'_>,
    model: &Model,
    opt: crate::optim::Optimizer,
) -> Result<Option<(OptimizerState, Option<f32>)>> {
    let group = "optimizer/vars";
    let n = h5.dataset_count(group)?;
    let base = optimizer_base(model);
    let trainable: Vec<ParamId> =
        model.params.ids().filter(|&id| model.params.trainable(id).unwrap_or(false)).collect();
    let slots = opt.slots();
    if n <= 2 && n != base + slots * trainable.len() {
        return Ok(None);
    }
    if n != base + slots * trainable.len() {
        return Err(h5.err(
            group,
            format!(
                "holds {n} variables; {} for this model needs {} ({base} + {slots} per trainable variable)",
                opt.name(),
                base + slots * trainable.len()
            ),
        ));
    }
    let mut state = OptimizerState::new(opt, &model.params)?;
    state.iterations = h5.read_count(&format!("{group}/0"))?;
    let lr = if base == 2 { Some(h5.read_scalar_f32(&format!("{group}/1"))?) } else { None };
    for (i, &id) in trainable.iter().enumerate() {
        let dims = model.params.dims(id)?;
        for (s, slot) in state.slots.iter_mut().enumerate() {
            let v = h5.read_f32(&format!("{group}/{}", base + i * slots + s), dims.as_slice())?;
            slot[id.index()].copy_from_slice(&v);
        }
    }
    Ok(Some((state, lr)))
}

/// The HDF5 file Keras 3 would write for `model`: weights, and the optimizer when compiled.
pub(crate) fn write(model: &Model, path: &Path) -> Result<Vec<u8>> {
    let (input, paths) = layer_paths(model);
    let mut root = Tree::default();
    let layers = root.child("layers");
    if let Some(p) = input {
        layers.child(&p).child("vars").name_attr = Some(model.input_name.clone());
    }
    for (slot, p) in model.layers.iter().zip(&paths) {
        let vars = layers.child(p).child("vars");
        vars.name_attr = Some(slot.name.clone());
        for (i, (_, id)) in slot.layer.weights().iter().enumerate() {
            let dims = model.params.dims(*id)?.as_slice().iter().map(|&d| d as u64).collect();
            vars.floats.push((i.to_string(), dims, model.params.value(*id)?.to_vec()));
        }
    }
    if let Some(c) = model.compiled {
        let vars = root.child("optimizer").child("vars");
        vars.name_attr = Some(c.optimizer.name().to_owned());
        vars.counts.push(("0".into(), i64::try_from(model.state.iterations).unwrap_or(i64::MAX)));
        let base = optimizer_base(model);
        if base == 2 {
            vars.floats.push(("1".into(), Vec::new(), vec![c.optimizer.lr()]));
        }
        let slots = c.optimizer.slots();
        let trainable = model.params.ids().filter(|&id| model.params.trainable(id).unwrap_or(false));
        for (i, id) in trainable.enumerate() {
            let dims: Vec<u64> = model.params.dims(id)?.as_slice().iter().map(|&d| d as u64).collect();
            for s in 0..slots {
                // A model compiled but never trained has no state yet: Keras then holds zeros.
                let v = model
                    .state
                    .slots
                    .get(s)
                    .and_then(|slot| slot.get(id.index()))
                    .map(|v| v.to_vec())
                    .unwrap_or_else(|| vec![0.0; dims.iter().product::<u64>() as usize]);
                vars.floats.push(((base + i * slots + s).to_string(), dims.clone(), v));
            }
        }
    }
    root.child("vars").name_attr = Some(model.name.clone());
    root.to_bytes(path)
}

/// Refuses an HDF5 file without the Keras 3 layout (before reporting a missing layer, which would mislead).
pub(crate) fn require_layout(h5: &H5<'_>) -> Result<()> {
    if h5.has_group("layers") || h5.has_group("vars") {
        Ok(())
    } else {
        Err(h5.err("layers", "missing group: not a Keras 3 weights file"))
    }
}
