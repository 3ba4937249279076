//! Saving and loading: weights as safetensors in Keras layouts (`conv2d/kernel` HWIO, `dense/kernel`
//! `(in, out)`, biases), the architecture (and compile settings) as `model.json`, and training checkpoints
//! (weights + optimizer state + progress in one safetensors file). Every write goes to a temporary file in the
//! same directory which is then renamed over the target, so an interrupted save never destroys the previous
//! file.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_autograd::ParamId;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::{Value, json};

use crate::error::{NnError, Result};
use crate::layers::layer_from_config;
use crate::model::{Compiled, Model};
use crate::optim::{Loss, Optimizer, OptimizerState};
use crate::schedules::LearningRateSchedule;

/// File name of the architecture inside a model directory.
pub const MODEL_JSON: &str = "model.json";
/// File name of the weights inside a model directory.
pub const MODEL_WEIGHTS: &str = "model.safetensors";
/// File name of a training checkpoint inside a checkpoint directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

const FORMAT: &str = "kiln-model";
const FORMAT_VERSION: u64 = 1;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed to disk, renamed over
/// `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map_err(|e| NnError::io(path, e))
}

/// Tensors read from a file: name → (shape, values).
type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;
/// Tensors to write: (name, shape, little-endian bytes).
type Encoded = Vec<(String, Vec<usize>, Vec<u8>)>;

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn from_le(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn serialize(path: &Path, tensors: &Encoded, meta: HashMap<String, String>) -> Result<Vec<u8>> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, d)| TensorView::new(Dtype::F32, s.clone(), d).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| NnError::format(path, e.to_string()))?;
    safetensors::tensor::serialize(views, Some(meta)).map_err(|e| NnError::format(path, e.to_string()))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| NnError::io(path, e))
}

/// Reads every tensor of a safetensors buffer as f32 with its shape; an error for any other dtype.
fn tensors_of(path: &Path, bytes: &[u8]) -> Result<(Tensors, HashMap<String, String>)> {
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| NnError::format(path, format!("not a safetensors file: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| NnError::format(path, e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(NnError::format(path, format!("tensor `{name}` has dtype {:?}, expected F32", view.dtype())));
        }
        out.insert(name, (view.shape().to_vec(), from_le(view.data())));
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

impl Model {
    fn weight_tensors(&self) -> Result<Encoded> {
        let mut out = Vec::new();
        for id in self.params.ids() {
            out.push((
                self.params.name(id)?.to_owned(),
                self.params.dims(id)?.as_slice().to_vec(),
                le_bytes(self.params.value(id)?),
            ));
        }
        Ok(out)
    }

    /// The architecture (and compile settings) as JSON: what `model.json` holds.
    pub fn to_json(&self) -> Value {
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|s| {
                let mut l = json!({"class_name": s.layer.class_name(), "config": s.layer.config()});
                if self.functional {
                    // Where the layer's inputs come from, by name (Keras' `inbound_nodes`, reduced to the names).
                    l["inbound"] = json!(s.inputs.iter().map(|&k| self.value_name(k)).collect::<Vec<_>>());
                }
                l
            })
            .collect();
        let compile = self.compiled.map(|c| {
            let mut optimizer = c.optimizer.config();
            if let (Some(s), Some(o)) = (&self.schedule, optimizer.as_object_mut()) {
                // Keras stores a schedule in place of the optimizer's rate.
                o.insert("learning_rate".into(), s.config());
            }
            json!({
                "loss": c.loss.name(),
                "optimizer": optimizer,
                "metrics": if c.accuracy { vec!["accuracy"] } else { vec![] },
            })
        });
        json!({
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kiln_version": env!("CARGO_PKG_VERSION"),
            "name": self.name,
            "kind": if self.functional { "functional" } else { "sequential" },
            "input_name": self.input_name,
            "input_shape": self.input_shape,
            "seed": self.seed,
            "dtype_policy": self.dtype_policy().name(),
            "layers": layers,
            "compile": compile,
            "metadata": self.metadata,
        })
    }

    /// Rebuilds a model (uninitialised weights, compiled if the JSON says so) from [`Model::to_json`].
    pub fn from_json(v: &Value, path: &Path) -> Result<Model> {
        let bad = |m: &str| NnError::format(path, m.to_owned());
        if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(bad("not a Kiln model description (missing \"format\": \"kiln-model\")"));
        }
        if v.get("format_version").and_then(Value::as_u64) != Some(FORMAT_VERSION) {
            return Err(bad("unsupported format_version"));
        }
        let input_shape: Vec<usize> = v
            .get("input_shape")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
            .ok_or_else(|| bad("`input_shape` must be a list of integers"))?;
        let input_name = v.get("input_name").and_then(Value::as_str).unwrap_or("input_layer");
        // Values by the name of the layer making them (0: the input), for the layers' `inbound` lists.
        let mut values: HashMap<String, usize> = HashMap::from([(input_name.to_owned(), 0)]);
        let mut layers = Vec::new();
        for (k, l) in
            v.get("layers").and_then(Value::as_array).ok_or_else(|| bad("`layers` must be a list"))?.iter().enumerate()
        {
            let class = l.get("class_name").and_then(Value::as_str).ok_or_else(|| bad("a layer lacks `class_name`"))?;
            let cfg = l.get("config").ok_or_else(|| bad("a layer lacks `config`"))?;
            let layer = layer_from_config(class, cfg)?;
            // Without `inbound` (a sequential model, or a file from before merges) a layer reads the one before.
            let inputs = match l.get("inbound") {
                None => vec![k],
                Some(names) => names
                    .as_array()
                    .ok_or_else(|| bad("`inbound` must be a list of layer names"))?
                    .iter()
                    .map(|n| {
                        let n = n.as_str().ok_or_else(|| bad("`inbound` must be a list of layer names"))?;
                        values.get(n).copied().ok_or_else(|| {
                            bad(&format!("layer {k} reads `{n}`, which is not the input or an earlier layer"))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            };
            if let Some(n) = layer.name() {
                values.insert(n.to_owned(), k + 1);
            }
            layers.push((layer, inputs));
        }
        let name = v.get("name").and_then(Value::as_str).unwrap_or("functional");
        let functional = v.get("kind").and_then(Value::as_str) != Some("sequential");
        let mut model = Model::assemble(name, functional, input_name, input_shape, layers)?;
        if let Some(seed) = v.get("seed").and_then(Value::as_u64) {
            model.seed = seed;
        }
        // Files from before dtype policies are float32.
        if let Some(p) = v.get("dtype_policy") {
            let name = p.as_str().ok_or_else(|| bad("`dtype_policy` must be a string"))?;
            model.set_dtype_policy(name)?;
        }
        if let Some(meta) = v.get("metadata").and_then(Value::as_object) {
            for (k, val) in meta {
                let val = val.as_str().ok_or_else(|| bad("`metadata` values must be strings"))?;
                model.metadata.insert(k.clone(), val.to_owned());
            }
        }
        if let Some(c) = v.get("compile").filter(|c| !c.is_null()) {
            let loss = Loss::from_name(c.get("loss").and_then(Value::as_str).unwrap_or(""))?;
            let mut cfg = c.get("optimizer").cloned().unwrap_or(Value::Null);
            let mut schedule = None;
            if let Some(o) = cfg.as_object_mut()
                && let Some(lr) = o.get("learning_rate").filter(|v| v.is_object())
            {
                let s = LearningRateSchedule::from_config(lr)?;
                o.insert("learning_rate".into(), json!(s.at(0)));
                schedule = Some(s);
            }
            let optimizer = Optimizer::from_config(&cfg)?;
            let accuracy = c.get("metrics").and_then(Value::as_array).is_some_and(|m| !m.is_empty());
            model.compile_with(Compiled { loss, optimizer, accuracy })?;
            model.schedule = schedule;
        }
        Ok(model)
    }

    /// Saves the model into directory `dir` (created if needed): `model.json` + `model.safetensors`.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| NnError::io(dir, e))?;
        self.save_weights(dir.join(MODEL_WEIGHTS))?;
        let json = serde_json::to_vec_pretty(&self.to_json()).map_err(|e| NnError::format(dir, e.to_string()))?;
        write_atomic(&dir.join(MODEL_JSON), &json)
    }

    /// Rebuilds a model from the bytes of a `model.json` (weights initialised, not loaded).
    pub fn from_json_slice(bytes: &[u8]) -> Result<Model> {
        let path = Path::new(MODEL_JSON);
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| NnError::format(path, format!("invalid JSON: {e}")))?;
        Model::from_json(&v, path)
    }

    /// [`Model::load_weights`] from the bytes of a safetensors file.
    pub fn load_weights_from_slice(&mut self, bytes: &[u8]) -> Result<()> {
        let path = Path::new(MODEL_WEIGHTS);
        let (mut tensors, _) = tensors_of(path, bytes)?;
        self.take_weights(path, &mut tensors)?;
        if let Some(extra) = tensors.keys().next() {
            return Err(NnError::format(path, format!("unexpected tensor `{extra}` (not a weight of this model)")));
        }
        Ok(())
    }

    /// Loads a model saved with [`Model::save`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Model> {
        let dir = dir.as_ref();
        let json_path = dir.join(MODEL_JSON);
        let text = read(&json_path)?;
        let v: Value =
            serde_json::from_slice(&text).map_err(|e| NnError::format(&json_path, format!("invalid JSON: {e}")))?;
        let mut model = Model::from_json(&v, &json_path)?;
        model.load_weights(dir.join(MODEL_WEIGHTS))?;
        Ok(model)
    }

    /// Writes the weights as a safetensors file (atomically).
    pub fn save_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let meta = HashMap::from([("format".to_owned(), FORMAT.to_owned())]);
        let bytes = serialize(path, &self.weight_tensors()?, meta)?;
        write_atomic(path, &bytes)
    }

    /// Reads weights saved by [`Model::save_weights`]: every weight of this model must be present with the
    /// same shape and dtype F32, and the file must hold nothing else.
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = read(path)?;
        self.load_weights_from_slice(&bytes).map_err(|e| match e {
            NnError::Format { message, .. } => NnError::format(path, message),
            e => e,
        })
    }

    fn take_weights(&mut self, path: &Path, tensors: &mut Tensors) -> Result<()> {
        let mut values = Vec::new();
        for id in self.params.ids() {
            let name = self.params.name(id)?.to_owned();
            let dims = self.params.dims(id)?;
            let (shape, data) =
                tensors.remove(&name).ok_or_else(|| NnError::format(path, format!("missing weight `{name}`")))?;
            if shape != dims.as_slice() {
                return Err(NnError::format(
                    path,
                    format!("weight `{name}` has shape {shape:?}, the model needs {dims}"),
                ));
            }
            values.push((id, data));
        }
        for (id, data) in values {
            self.params.set_value(id, &data)?;
        }
        Ok(())
    }

    /// Saves a training checkpoint into `dir`: `model.json` and `checkpoint.safetensors` holding the weights,
    /// the optimizer's state (`optimizer/<slot>/<weight>`) and, as metadata, the iterations and epochs done.
    pub fn save_checkpoint(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| NnError::io(dir, e))?;
        let mut tensors = self.weight_tensors()?;
        for (s, slot) in self.state.slots.iter().enumerate() {
            for (i, v) in slot.iter().enumerate() {
                let id = ParamId::from_index(i);
                tensors.push((
                    format!("optimizer/{s}/{}", self.params.name(id)?),
                    self.params.dims(id)?.as_slice().to_vec(),
                    le_bytes(v),
                ));
            }
        }
        let mut meta = HashMap::from([
            ("format".to_owned(), FORMAT.to_owned()),
            ("iterations".to_owned(), self.state.iterations.to_string()),
            ("epochs_done".to_owned(), self.epochs_done.to_string()),
            ("optimizer".to_owned(), self.compiled.map_or("none", |c| c.optimizer.name()).to_owned()),
        ]);
        if let Some(c) = self.compiled {
            // The optimizer's own rate, as callbacks may have changed it (shortest form that reads back exactly).
            meta.insert("learning_rate".to_owned(), c.optimizer.lr().to_string());
        }
        let path = dir.join(CHECKPOINT);
        write_atomic(&path, &serialize(&path, &tensors, meta)?)?;
        let json = serde_json::to_vec_pretty(&self.to_json()).map_err(|e| NnError::format(dir, e.to_string()))?;
        write_atomic(&dir.join(MODEL_JSON), &json)
    }

    /// Restores weights, optimizer state and progress from [`Model::save_checkpoint`] (the model must have the
    /// same architecture and be compiled with the same optimizer).
    pub fn load_checkpoint(&mut self, dir: impl AsRef<Path>) -> Result<()> {
        let path: PathBuf = dir.as_ref().join(CHECKPOINT);
        let bytes = read(&path)?;
        let (mut tensors, meta) = tensors_of(&path, &bytes)?;
        let c = self.compiled.ok_or(NnError::NotCompiled("resuming from a checkpoint"))?;
        if meta.get("optimizer").map(String::as_str) != Some(c.optimizer.name()) {
            return Err(NnError::format(
                &path,
                format!(
                    "the checkpoint's optimizer is {:?}, the model's {}",
                    meta.get("optimizer"),
                    c.optimizer.name()
                ),
            ));
        }
        let num = |k: &str| -> Result<u64> {
            meta.get(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| NnError::format(&path, format!("metadata `{k}` missing")))
        };
        let (iterations, epochs_done) = (num("iterations")?, num("epochs_done")?);
        self.take_weights(&path, &mut tensors)?;
        let mut state = OptimizerState::new(c.optimizer, &self.params)?;
        for (s, slot) in state.slots.iter_mut().enumerate() {
            for (i, v) in slot.iter_mut().enumerate() {
                let name = format!("optimizer/{s}/{}", self.params.name(ParamId::from_index(i))?);
                let (shape, data) = tensors
                    .remove(&name)
                    .ok_or_else(|| NnError::format(&path, format!("missing optimizer state `{name}`")))?;
                if shape.iter().product::<usize>() != v.len() {
                    return Err(NnError::format(
                        &path,
                        format!("optimizer state `{name}` has the wrong shape {shape:?}"),
                    ));
                }
                v.copy_from_slice(&data);
            }
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(NnError::format(&path, format!("unexpected tensor `{extra}`")));
        }
        let lr = match meta.get("learning_rate") {
            Some(v) => Some(
                v.parse::<f32>()
                    .map_err(|_| NnError::format(&path, format!("metadata `learning_rate` = {v:?} is not a number")))?,
            ),
            None => None,
        };
        state.iterations = iterations;
        self.state = state;
        self.epochs_done = epochs_done as usize;
        if let (Some(lr), Some(c)) = (lr, self.compiled.as_mut()) {
            c.optimizer = c.optimizer.learning_rate(lr);
        }
        Ok(())
    }
}
