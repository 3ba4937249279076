//! Arbitrary GEMM geometry and slice lengths through `GemmSpec::build` and the GEMM reference.
#![no_main]

#[path = "../../crates/kiln-kernels/tests/fuzz_bodies/mod.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bodies::gemm_geometry(data);
});
