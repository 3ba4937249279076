//! Arbitrary convolution geometry through `Conv2dSpec::build`, the slice checks and the references.
#![no_main]

#[path = "../../crates/kiln-kernels/tests/fuzz_bodies/mod.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bodies::conv2d_geometry(data);
});
