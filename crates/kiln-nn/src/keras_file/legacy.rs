//! Legacy Keras `.h5` files (Keras 2's `model.save("m.h5")`, still written by Keras 3 on request): the
//! architecture as the root attribute `model_config`, the compile settings as `training_config`, the weights under
//! `model_weights/<layer name>/` listed by the attributes `layer_names` and `weight_names`. A weights-only `.h5`
//! (`save_weights("w.h5")`) has the same lists at the root. The optimizer's saved state is not read: training
//! continues with a fresh optimizer, as Keras 3 does with these files.

use serde_json::Value;

use super::compile::compile_from_keras;
use super::config::{Source, model_from_keras};
use super::h5::{H5, attr_string, attr_strings};
use crate::error::Result;
use crate::model::Model;

/// A JSON attribute of the root (`model_config`, `training_config`), if present.
fn json_attr(h5: &H5<'_>, name: &str) -> Result<Option<Value>> {
    let attrs = h5.attrs("")?;
    let Some(v) = attrs.get(name) else { return Ok(None) };
    let text = attr_string(v).ok_or_else(|| h5.err(name, "is not a string attribute"))?;
    serde_json::from_str(&text).map(Some).map_err(|e| h5.err(name, format!("invalid JSON: {e}")))
}

/// Whether the file looks like a legacy Keras file (full model or weights only).
pub(crate) fn is_legacy(h5: &H5<'_>) -> bool {
    h5.attrs("").is_ok_and(|a| a.contains_key("model_config") || a.contains_key("layer_names"))
}

/// The model a legacy full-model `.h5` holds, with its weights, compiled if it says how.
pub(crate) fn load_model(h5: &H5<'_>, path: &std::path::Path) -> Result<Model> {
    let config = json_attr(h5, "model_config")?.ok_or_else(|| {
        h5.err(
            "model_config",
            "missing attribute: not a full-model .h5 (a weights-only file needs a model: Model::load_keras_weights)",
        )
    })?;
    let src = Source { path, entry: "model_config" };
    let mut model = model_from_keras(src, &config)?;
    if let Some(tc) = json_attr(h5, "training_config")? {
        compile_from_keras(Source { path, entry: "training_config" }, &mut model, &tc)?;
    }
    read_weights(h5, &mut model)?;
    Ok(model)
}

/// Reads the weights of a legacy file (`model_weights/…`, or the root of a weights-only file) into `model`,
/// matching layers by name as Keras does; nothing changes unless all read.
pub(crate) fn read_weights(h5: &H5<'_>, model: &mut Model) -> Result<()> {
    let top = if h5.has_group("model_weights") { "model_weights" } else { "" };
    let attrs = h5.attrs(top)?;
    let names = attrs
        .get("layer_names")
        .and_then(attr_strings)
        .ok_or_else(|| h5.err(top, "missing attribute `layer_names`: not a Keras weights file"))?;
    let mut values = Vec::new();
    for slot in &model.layers {
        let weights = slot.layer.weights();
        let group = if top.is_empty() { slot.name.clone() } else { format!("{top}/{}", slot.name) };
        if !names.contains(&slot.name) {
            if weights.is_empty() {
                continue;
            }
            return Err(h5.err(&group, format!("the file has no weights for layer `{}`", slot.name)));
        }
        let stored = match h5.attrs(&group)?.get("weight_names") {
            Some(v) => attr_strings(v).ok_or_else(|| h5.err(&group, "`weight_names` is not a list of strings"))?,
            None => Vec::new(),
        };
        if stored.len() != weights.len() {
            return Err(
                h5.err(&group, format!("holds {} weights, layer `{}` has {}", stored.len(), slot.name, weights.len()))
            );
        }
        for (name, (_, id)) in stored.iter().zip(&weights) {
            let dims = model.params.dims(*id)?;
            values.push((*id, h5.read_f32(&format!("{group}/{name}"), dims.as_slice())?));
        }
    }
    for (id, v) in values {
        model.params.set_value(id, &v)?;
    }
    Ok(())
}
