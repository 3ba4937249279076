//! Arbitrary bytes as a `model.json` and a safetensors weights file.
#![no_main]

#[path = "../../crates/kiln-nn/tests/fuzz_bodies/mod.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bodies::model_files(data);
});
