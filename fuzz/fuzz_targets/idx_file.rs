//! Arbitrary bytes, raw or gzip, through the IDX parser.
#![no_main]

#[path = "../../crates/kiln-mnist/tests/fuzz_bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bodies::idx_file(data);
});
