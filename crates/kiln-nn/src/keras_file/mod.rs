//! Keras model files, both ways: `.keras` archives (Keras 3's `model.save("m.keras")`), weights-only
//! `.weights.h5`, and legacy `.h5` files (Keras 2). A file is read into a Kiln [`Model`] with its weights, its
//! compile settings and — from a `.keras` — the optimizer's state, so training continues where Keras stopped; a
//! model is written as a `.keras` archive Keras 3 opens, predicts with and continues training.
//!
//! Everything in a file that Kiln does not implement — a layer class, a layer option away from the value Kiln
//! computes, a gradient-clipping optimizer, a second input — is refused with [`NnError::Unsupported`] naming the
//! layer and the option; a damaged file is [`NnError::KerasFile`] naming the file and the entry.

mod archive;
mod compile;
mod config;
mod h5;
mod legacy;
mod options;
mod weights;

use std::path::Path;

use serde_json::{Value, json};

use self::config::Source;
use self::h5::H5;
use crate::error::{NnError, Result};
use crate::io::write_atomic;
use crate::model::Model;

/// The first bytes of a zip archive (`.keras`).
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// The first bytes of an HDF5 file (`.h5`; Kiln reads files without a user block).
const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

/// The key of Kiln's model metadata inside `metadata.json`.
const KILN_METADATA: &str = "kiln_metadata";

/// The path used in errors about bytes that did not come from a file.
const IN_MEMORY: &str = "<memory>";

impl Model {
    /// Keras `keras.saving.load_model(path)`: a `.keras` archive or a legacy full-model `.h5` (told apart by their
    /// first bytes), with weights, compile settings and, from a `.keras`, the optimizer state.
    pub fn load_keras(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| NnError::io(path, e))?;
        Model::load_keras_bytes(path, bytes)
    }

    /// [`Model::load_keras`] from the bytes of a file.
    pub fn load_keras_from_slice(bytes: &[u8]) -> Result<Model> {
        Model::load_keras_bytes(Path::new(IN_MEMORY), bytes.to_vec())
    }

    fn load_keras_bytes(path: &Path, bytes: Vec<u8>) -> Result<Model> {
        if bytes.starts_with(ZIP_MAGIC) {
            let entries = archive::read(path, &bytes)?;
            drop(bytes);
            let src = Source { path, entry: archive::CONFIG };
            let root: Value =
                serde_json::from_slice(&entries.config).map_err(|e| src.err(format!("invalid JSON: {e}")))?;
            let mut model = config::model_from_keras(src, &root)?;
            if let Some(cc) = root.get("compile_config").filter(|c| !c.is_null()) {
                compile::compile_from_keras(src, &mut model, cc)?;
            }
            let meta = Source { path, entry: archive::METADATA };
            let metadata: Value =
                serde_json::from_slice(&entries.metadata).map_err(|e| meta.err(format!("invalid JSON: {e}")))?;
            // Kiln's own metadata (dataset, input scale) rides along in metadata.json, which Keras ignores.
            for (k, v) in metadata.get(KILN_METADATA).and_then(Value::as_object).into_iter().flatten() {
                let v = v.as_str().ok_or_else(|| meta.err(format!("`{KILN_METADATA}.{k}` is not a string")))?;
                model.set_metadata(k.clone(), v);
            }
            let h5 = H5::parse(path, archive::WEIGHTS, entries.weights)?;
            weights::require_layout(&h5)?;
            weights::read(&h5, &mut model)?;
            Ok(model)
        } else if bytes.starts_with(HDF5_MAGIC) {
            let h5 = H5::parse(path, "", bytes)?;
            legacy::load_model(&h5, path)
        } else {
            Err(NnError::keras(path, "", "neither a .keras archive (zip) nor a Keras .h5 file (HDF5)"))
        }
    }

    /// Keras `model.load_weights(path)`: a Keras 3 `.weights.h5` or the weights of a `.keras` archive (layers
    /// matched by position and class, as Keras does; the optimizer state too when this model is compiled and the
    /// file holds it), or a legacy weights `.h5` (layers matched by name). Every weight must fit; nothing changes
    /// otherwise.
    pub fn load_keras_weights(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| NnError::io(path, e))?;
        self.load_keras_weights_bytes(path, bytes)
    }

    /// [`Model::load_keras_weights`] from the bytes of a file.
    pub fn load_keras_weights_from_slice(&mut self, bytes: &[u8]) -> Result<()> {
        self.load_keras_weights_bytes(Path::new(IN_MEMORY), bytes.to_vec())
    }

    fn load_keras_weights_bytes(&mut self, path: &Path, bytes: Vec<u8>) -> Result<()> {
        if bytes.starts_with(ZIP_MAGIC) {
            // As Keras' `load_weights("m.keras")`: the archive's weights, its config left aside.
            let entries = archive::read(path, &bytes)?;
            let h5 = H5::parse(path, archive::WEIGHTS, entries.weights)?;
            weights::require_layout(&h5)?;
            return weights::read(&h5, self);
        }
        if !bytes.starts_with(HDF5_MAGIC) {
            return Err(NnError::keras(path, "", "neither a .keras archive nor an HDF5 weights file"));
        }
        let h5 = H5::parse(path, "", bytes)?;
        if legacy::is_legacy(&h5) {
            legacy::read_weights(&h5, self)
        } else {
            weights::require_layout(&h5)?;
            weights::read(&h5, self)
        }
    }

    /// Keras `model.save("m.keras")`: the `.keras` archive (config with compile settings, metadata, weights and
    /// optimizer state) Keras 3 opens with `keras.saving.load_model`, written atomically.
    pub fn save_keras(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.keras_bytes(path)?;
        write_atomic(path, &bytes)
    }

    /// The bytes [`Model::save_keras`] writes.
    pub fn to_keras_bytes(&self) -> Result<Vec<u8>> {
        self.keras_bytes(Path::new(IN_MEMORY))
    }

    fn keras_bytes(&self, path: &Path) -> Result<Vec<u8>> {
        let mut cfg = config::model_to_keras(self);
        if let Some(c) = self.compiled {
            cfg["compile_config"] = compile::compile_to_keras(self, c);
        }
        let metadata = json!({
            "keras_version": KERAS_VERSION,
            "kiln_version": env!("CARGO_PKG_VERSION"),
            KILN_METADATA: self.metadata(),
        });
        let to_vec =
            |v: &Value| serde_json::to_vec(v).map_err(|e| NnError::keras(path, archive::CONFIG, e.to_string()));
        let weights = weights::write(self, path)?;
        archive::write(path, &to_vec(&metadata)?, &to_vec(&cfg)?, &weights)
    }

    /// Keras `model.save_weights("m.weights.h5")`: the Keras 3 weights file (with the optimizer state when
    /// compiled), written atomically.
    pub fn save_keras_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        write_atomic(path, &weights::write(self, path)?)
    }
}

/// The Keras version whose file format Kiln writes (and tests against).
pub const KERAS_VERSION: &str = "3.15.1";
