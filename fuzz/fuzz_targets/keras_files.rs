//! Arbitrary bytes as a Keras `.keras` archive, legacy `.h5` or `.weights.h5` file.
#![no_main]

#[path = "../../crates/kiln-nn/tests/fuzz_bodies/mod.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bodies::keras_files(data);
});
