//! The Keras model description — `config.json` of a `.keras` archive, `model_config` of a legacy `.h5` — read
//! into a Kiln [`Model`] and written from one. Keras 3 and Keras 2 spellings are both read (`batch_shape` /
//! `batch_input_shape`, `inbound_nodes` as `{args, kwargs}` / nested lists, dtype policies / plain strings).

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use super::options::check_layer;
use crate::error::{NnError, Result};
use crate::layer::Layer;
use crate::layers::layer_from_config;
use crate::model::{Model, Wiring};
use crate::policy::DTypePolicy;

/// Where a description was read from, for error messages.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub(crate) path: &'a Path,
    pub(crate) entry: &'a str,
}

impl Source<'_> {
    pub(crate) fn err(&self, message: impl Into<String>) -> NnError {
        NnError::keras(self.path, self.entry, message)
    }
}

fn str_at<'v>(src: Source<'_>, v: &'v Value, key: &str, what: &str) -> Result<&'v str> {
    v.get(key).and_then(Value::as_str).ok_or_else(|| src.err(format!("{what} lacks a string `{key}`")))
}

/// A Keras shape with its batch axis (`[null, 28, 28, 1]`) as Kiln's per-sample shape.
fn sample_shape(src: Source<'_>, v: &Value, what: &str) -> Result<Vec<usize>> {
    let dims = v.as_array().filter(|d| !d.is_empty()).ok_or_else(|| src.err(format!("{what} is not a shape")))?;
    dims[1..]
        .iter()
        .map(|d| {
            d.as_u64()
                .filter(|&d| d > 0 && d <= 1 << 24)
                .map(|d| d as usize)
                .ok_or_else(|| NnError::unsupported("model", what, v))
        })
        .collect()
}

/// A BatchNormalization axis Keras 2 wrote as a positive index (`[3]`), to be checked against the layer's input
/// rank once the model is assembled: `(layer name, axis)`.
type PendingAxis = Option<(String, u64)>;

/// Builds the Kiln layer a Keras layer entry describes, refusing any option Kiln does not implement.
fn keras_layer(src: Source<'_>, entry: &Value) -> Result<(Box<dyn Layer>, PendingAxis)> {
    let class = str_at(src, entry, "class_name", "a layer")?;
    let mut cfg = entry.get("config").ok_or_else(|| src.err(format!("a {class} layer lacks `config`")))?.clone();
    let name = cfg.get("name").and_then(Value::as_str).unwrap_or("?").to_owned();
    let mut pending = None;
    if class == "BatchNormalization" {
        let axis = match cfg.get("axis") {
            Some(Value::Array(a)) if a.len() == 1 => a[0].clone(),
            Some(a) => a.clone(),
            None => Value::Null,
        };
        if let Some(k) = axis.as_u64() {
            pending = Some((name.clone(), k));
            cfg["axis"] = json!(-1);
        } else if !axis.is_null() {
            cfg["axis"] = axis;
        }
    }
    let cfg = &cfg;
    let layer = layer_from_config(class, cfg).map_err(|e| match e {
        NnError::Unknown { kind: "layer class", .. } => {
            NnError::unsupported(format!("{name} ({class})"), "class_name", class)
        }
        e => e,
    })?;
    check_layer(class, cfg, layer.as_ref())?;
    Ok((layer, pending))
}

/// Checks that each positive BatchNormalization axis is the last axis of the layer's input (Keras' `-1`).
fn check_axes(model: Model, pending: Vec<PendingAxis>) -> Result<Model> {
    for (name, axis) in pending.into_iter().flatten() {
        let slot = model.layers.iter().find(|s| s.name == name);
        let rank = slot.and_then(|s| s.inputs.first()).map(|&v| model.value_shape(v).len() as u64);
        if rank != Some(axis) {
            return Err(NnError::unsupported(format!("{name} (BatchNormalization)"), "axis", axis));
        }
    }
    Ok(model)
}

/// The checks of an `InputLayer` entry; returns its name and per-sample shape.
fn input_layer(src: Source<'_>, entry: &Value) -> Result<(String, Vec<usize>)> {
    let cfg = entry.get("config").ok_or_else(|| src.err("an InputLayer lacks `config`"))?;
    let name = cfg.get("name").and_then(Value::as_str).unwrap_or("input_layer").to_owned();
    let who = || format!("{name} (InputLayer)");
    let shape = cfg
        .get("batch_shape")
        .or_else(|| cfg.get("batch_input_shape"))
        .ok_or_else(|| src.err(format!("{} lacks `batch_shape`", who())))?;
    for (key, value) in cfg.as_object().into_iter().flatten() {
        let ok = match key.as_str() {
            "batch_shape" | "batch_input_shape" | "name" => true,
            "sparse" | "ragged" | "optional" => value == &Value::Bool(false),
            "dtype" => DTypePolicy::from_keras(value) == Some(DTypePolicy::Float32),
            _ => false,
        };
        if !ok {
            return Err(NnError::unsupported(who(), key, value));
        }
    }
    Ok((name.clone(), sample_shape(src, shape, "input shape")?))
}

/// Whether a call's keyword arguments leave it as Kiln runs it: `training` recorded at the symbolic call is
/// overridden by the model's mode in every Keras `fit` / `predict` (as in Kiln), and a `None` mask is no mask.
fn harmless_call_arguments(kwargs: &serde_json::Map<String, Value>) -> bool {
    kwargs.iter().all(|(k, v)| match k.as_str() {
        "training" => v.is_boolean() || v.is_null(),
        "mask" => v.is_null(),
        _ => false,
    })
}

/// The layer names one call (inbound node) reads, in call order.
fn node_inputs(src: Source<'_>, layer: &str, node: &Value) -> Result<Vec<String>> {
    let bad = || src.err(format!("layer `{layer}` has an unreadable inbound node"));
    let history = |name: &Value, node_index: &Value, tensor_index: &Value| -> Result<String> {
        let name = name.as_str().ok_or_else(bad)?;
        if node_index.as_u64() != Some(0) || tensor_index.as_u64() != Some(0) {
            return Err(NnError::unsupported(
                layer,
                "input",
                format!("{name}[{node_index}][{tensor_index}] (a shared layer or a multi-output layer)"),
            ));
        }
        Ok(name.to_owned())
    };
    match node {
        // Keras 3: {"args": [tensor | [tensors]], "kwargs": {}}.
        Value::Object(o) => {
            if let Some(kw) = o.get("kwargs").and_then(Value::as_object).filter(|k| !harmless_call_arguments(k)) {
                return Err(NnError::unsupported(layer, "call arguments", Value::Object(kw.clone())));
            }
            let args = o.get("args").and_then(Value::as_array).ok_or_else(bad)?;
            let [arg] = args.as_slice() else {
                return Err(NnError::unsupported(layer, "call arguments", Value::Array(args.clone())));
            };
            let tensors: Vec<&Value> = match arg {
                Value::Array(list) => list.iter().collect(),
                t => vec![t],
            };
            tensors
                .into_iter()
                .map(|t| {
                    let h = t
                        .get("config")
                        .and_then(|c| c.get("keras_history"))
                        .and_then(Value::as_array)
                        .ok_or_else(bad)?;
                    match h.as_slice() {
                        [n, i, j] => history(n, i, j),
                        _ => Err(bad()),
                    }
                })
                .collect()
        }
        // Keras 2: [[name, node_index, tensor_index, kwargs], …].
        Value::Array(list) => list
            .iter()
            .map(|t| match t.as_array().map(Vec::as_slice) {
                Some([n, i, j, kw]) => {
                    if kw.as_object().is_some_and(|k| !harmless_call_arguments(k)) {
                        return Err(NnError::unsupported(layer, "call arguments", kw));
                    }
                    history(n, i, j)
                }
                Some([n, i, j]) => history(n, i, j),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

/// The single `[name, 0, 0]` of `input_layers` / `output_layers` (Keras 3 writes it flat, Keras 2 nested).
fn single_endpoint(src: Source<'_>, cfg: &Value, key: &str) -> Result<String> {
    let v = cfg.get(key).ok_or_else(|| src.err(format!("the model lacks `{key}`")))?;
    let flat = match v.as_array().map(Vec::as_slice) {
        Some([Value::Array(inner)]) => inner.as_slice(),
        Some(list) => list,
        None => return Err(src.err(format!("`{key}` is not a list"))),
    };
    match flat {
        [Value::String(n), i, j] if i.as_u64() == Some(0) && j.as_u64() == Some(0) => Ok(n.clone()),
        _ => Err(NnError::unsupported("model", key, v)),
    }
}

/// The one dtype policy of the layers of a description (the InputLayer aside, whose dtype is the input's); Kiln
/// runs one policy per model, so layers that differ are unsupported.
fn model_policy(entries: &[Value]) -> Result<DTypePolicy> {
    let mut found: Option<(DTypePolicy, &str)> = None;
    for e in entries.iter().filter(|e| e.get("class_name").and_then(Value::as_str) != Some("InputLayer")) {
        let cfg = e.get("config");
        let name = cfg.and_then(|c| c.get("name")).and_then(Value::as_str).unwrap_or("a layer");
        let value = cfg.and_then(|c| c.get("dtype")).unwrap_or(&Value::Null);
        let policy = DTypePolicy::from_keras(value).ok_or_else(|| NnError::unsupported(name, "dtype", value))?;
        match found {
            Some((p, first)) if p != policy => {
                return Err(NnError::unsupported(
                    name,
                    "dtype",
                    format!("{policy} while `{first}` is {p} (Kiln runs one dtype policy per model)"),
                ));
            }
            Some(_) => {}
            None => found = Some((policy, name)),
        }
    }
    Ok(found.map_or(DTypePolicy::Float32, |(p, _)| p))
}

/// Builds the (uncompiled) model a Keras model description holds, with its layers' dtype policy.
pub(crate) fn model_from_keras(src: Source<'_>, root: &Value) -> Result<Model> {
    let cfg = root.get("config").ok_or_else(|| src.err("the model lacks `config`"))?;
    let entries =
        cfg.get("layers").and_then(Value::as_array).ok_or_else(|| src.err("the model lacks a `layers` list"))?;
    let policy = model_policy(entries)?;
    let mut model = model_structure(src, root)?;
    model.set_dtype_policy_to(policy);
    Ok(model)
}

/// The layers and wiring of a Keras model description.
fn model_structure(src: Source<'_>, root: &Value) -> Result<Model> {
    let class = str_at(src, root, "class_name", "the model")?;
    let cfg = root.get("config").ok_or_else(|| src.err("the model lacks `config`"))?;
    let name = cfg.get("name").and_then(Value::as_str).unwrap_or("model");
    let entries =
        cfg.get("layers").and_then(Value::as_array).ok_or_else(|| src.err("the model lacks a `layers` list"))?;
    match class {
        "Sequential" => {
            let mut input: Option<(String, Vec<usize>)> = None;
            let mut wiring: Vec<Wiring> = Vec::new();
            let mut pending = Vec::new();
            for (i, e) in entries.iter().enumerate() {
                if e.get("class_name").and_then(Value::as_str) == Some("InputLayer") {
                    if i != 0 {
                        return Err(src.err("an InputLayer after the first layer"));
                    }
                    input = Some(input_layer(src, e)?);
                    continue;
                }
                if input.is_none()
                    && let Some(s) = e.get("config").and_then(|c| c.get("batch_input_shape"))
                {
                    input = Some(("input_layer".into(), sample_shape(src, s, "batch_input_shape")?));
                }
                let k = wiring.len();
                let (layer, axis) = keras_layer(src, e)?;
                pending.push(axis);
                wiring.push((layer, vec![k]));
            }
            let (input_name, shape) = match input {
                Some(i) => i,
                None => {
                    let s = cfg
                        .get("build_input_shape")
                        .or_else(|| root.get("build_config").and_then(|b| b.get("input_shape")))
                        .filter(|s| !s.is_null())
                        .ok_or_else(|| src.err("the Sequential model has no input shape (it was never built)"))?;
                    ("input_layer".into(), sample_shape(src, s, "build_input_shape")?)
                }
            };
            check_axes(Model::assemble(name, false, &input_name, shape, wiring)?, pending)
        }
        "Functional" | "Model" => {
            let mut input: Option<(String, Vec<usize>)> = None;
            let mut values: HashMap<String, usize> = HashMap::new();
            let mut wiring: Vec<Wiring> = Vec::new();
            let mut pending = Vec::new();
            let mut last = None;
            for e in entries {
                let layer_name = e
                    .get("name")
                    .or_else(|| e.get("config").and_then(|c| c.get("name")))
                    .and_then(Value::as_str)
                    .ok_or_else(|| src.err("a layer lacks its `name`"))?;
                if e.get("class_name").and_then(Value::as_str) == Some("InputLayer") {
                    if input.is_some() {
                        return Err(NnError::unsupported("model", "inputs", "more than one InputLayer"));
                    }
                    input = Some(input_layer(src, e)?);
                    values.insert(layer_name.to_owned(), 0);
                    continue;
                }
                let nodes = e
                    .get("inbound_nodes")
                    .and_then(Value::as_array)
                    .ok_or_else(|| src.err(format!("layer `{layer_name}` lacks `inbound_nodes`")))?;
                let [node] = nodes.as_slice() else {
                    return Err(NnError::unsupported(
                        layer_name,
                        "inbound_nodes",
                        format!("{} calls (Kiln calls each layer once)", nodes.len()),
                    ));
                };
                let inputs = node_inputs(src, layer_name, node)?
                    .iter()
                    .map(|n| {
                        values.get(n).copied().ok_or_else(|| {
                            src.err(format!(
                                "layer `{layer_name}` reads `{n}`, which is not the input or an earlier layer"
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let (layer, axis) = keras_layer(src, e)?;
                pending.push(axis);
                wiring.push((layer, inputs));
                if values.insert(layer_name.to_owned(), wiring.len()).is_some() {
                    return Err(src.err(format!("two layers are named `{layer_name}`")));
                }
                last = Some(layer_name);
            }
            let (input_name, shape) = input.ok_or_else(|| src.err("the functional model has no InputLayer"))?;
            if single_endpoint(src, cfg, "input_layers")? != input_name {
                return Err(src.err("`input_layers` does not name the InputLayer"));
            }
            let output = single_endpoint(src, cfg, "output_layers")?;
            if Some(output.as_str()) != last {
                return Err(NnError::unsupported(
                    "model",
                    "output_layers",
                    format!("`{output}` (Kiln's output is the last layer)"),
                ));
            }
            check_axes(Model::assemble(name, true, &input_name, shape, wiring)?, pending)
        }
        other => Err(NnError::unsupported("model", "class_name", other)),
    }
}

/// A shape with Keras' batch axis.
fn batch_shape(shape: &[usize]) -> Value {
    let mut v = vec![Value::Null];
    v.extend(shape.iter().map(|&d| json!(d)));
    Value::Array(v)
}

/// The Keras 3 description (`config.json` without `compile_config`) of `model`.
pub(crate) fn model_to_keras(model: &Model) -> Value {
    let input_cfg = json!({
        "batch_shape": batch_shape(&model.input_shape), "dtype": "float32", "sparse": false, "ragged": false,
        "name": model.input_name, "optional": false,
    });
    let mut layers = vec![
        json!({"module": "keras.layers", "class_name": "InputLayer", "config": input_cfg, "registered_name": null}),
    ];
    if model.functional {
        layers[0]["name"] = json!(model.input_name);
        layers[0]["inbound_nodes"] = json!([]);
    }
    // A layer's output has the policy's compute dtype, the model input f32 (as Keras records them).
    let tensor_dtype = |v: usize| if v == 0 { "float32" } else { model.dtype_policy().compute_dtype() };
    for slot in &model.layers {
        let mut cfg = slot.layer.config();
        if let Some(o) = cfg.as_object_mut() {
            o.insert("name".into(), json!(slot.name));
            o.insert("trainable".into(), json!(true));
            o.insert("dtype".into(), model.dtype_policy().keras_config());
        }
        let shapes: Vec<Value> = slot.inputs.iter().map(|&v| batch_shape(model.value_shape(v))).collect();
        let input_shape = if shapes.len() == 1 { shapes[0].clone() } else { Value::Array(shapes) };
        let mut e = json!({
            "module": "keras.layers", "class_name": slot.layer.class_name(), "config": cfg, "registered_name": null,
            "build_config": {"input_shape": input_shape},
        });
        if model.functional {
            let tensors: Vec<Value> = slot
                .inputs
                .iter()
                .map(|&v| {
                    json!({"class_name": "__keras_tensor__", "config": {
                        "shape": batch_shape(model.value_shape(v)), "dtype": tensor_dtype(v),
                        "keras_history": [model.value_name(v), 0, 0]}})
                })
                .collect();
            let arg = if tensors.len() == 1 { tensors[0].clone() } else { Value::Array(tensors) };
            e["name"] = json!(slot.name);
            e["inbound_nodes"] = json!([{"args": [arg], "kwargs": {}}]);
        }
        layers.push(e);
    }
    if model.functional {
        let output = model.layers.last().map_or(model.input_name.as_str(), |s| s.name.as_str());
        json!({
            "module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": model.name, "trainable": true, "layers": layers,
                       "input_layers": [model.input_name, 0, 0], "output_layers": [output, 0, 0]},
            "build_config": {"input_shape": null},
        })
    } else {
        json!({
            "module": "keras", "class_name": "Sequential", "registered_name": null,
            "config": {"name": model.name, "trainable": true, "dtype": model.dtype_policy().keras_config(), "layers": layers,
                       "build_input_shape": batch_shape(&model.input_shape)},
            "build_config": {"input_shape": batch_shape(&model.input_shape)},
        })
    }
}
