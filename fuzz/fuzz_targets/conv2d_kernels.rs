//! Arbitrary geometry, algorithm, pass, ISA and slice lengths through the convolution kernels' safe entry points,
//! checked against the f64 references when they run.
#![no_main]

#[path = "../../crates/kiln-kernels/tests/fuzz_bodies/mod.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bodies::conv2d_kernels(data);
});
