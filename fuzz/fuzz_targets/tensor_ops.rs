//! Arbitrary shapes, lengths, axes and ranges through the tensor API.
#![no_main]

#[path = "../../crates/kiln-tensor/tests/fuzz_bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bodies::tensor_ops(data);
});
