//! Fuzz bodies shared by `fuzz/fuzz_targets/model_files.rs` (libFuzzer) and `tests/no_panic.rs` (stable):
//! arbitrary bytes as a `model.json` and a safetensors weights file must give `Ok` or a typed error, never a panic.

use kiln_nn::layers::{Dense, Flatten};
use kiln_nn::{Model, Sequential};

/// The first byte chooses where `data` splits into a model description and a weights file; the whole input is
/// also offered as weights to a fixed small model.
pub fn model_files(data: &[u8]) {
    let split = data.first().map_or(0, |&b| usize::from(b) * data.len() / 256);
    let (json, weights) = data.split_at(split.min(data.len()));
    if let Ok(mut m) = Model::from_json_slice(json) {
        let _ = m.load_weights_from_slice(weights);
        let _ = m.summary();
        let _ = m.to_json();
    }
    if let Ok(mut small) = Sequential::new(&[4, 4, 1]).add(Flatten::new()).add(Dense::new(3)).build() {
        let _ = small.load_weights_from_slice(data);
    }
}

/// Arbitrary bytes as a Keras file: a `.keras` archive or a legacy `.h5` (by their first bytes), and as a Keras
/// weights file for a fixed small model. `Ok` or a typed error, never a panic.
pub fn keras_files(data: &[u8]) {
    if let Ok(m) = Model::load_keras_from_slice(data) {
        let _ = m.summary();
        let _ = m.to_keras_bytes();
    }
    if let Ok(mut small) = Sequential::new(&[4, 4, 1]).add(Flatten::new()).add(Dense::new(3)).build() {
        let _ = small.load_keras_weights_from_slice(data);
    }
}
