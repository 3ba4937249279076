//! Fuzz body for the IDX parser, shared (via `#[path]`) by `fuzz/fuzz_targets/idx_file.rs` and the stable
//! `tests/no_panic.rs`: any bytes, raw or gzip, parse to `Ok` or `Err` — never a panic — and an accepted array is
//! internally consistent.

use kiln_mnist::IdxArray;

/// Cap used by the fuzz body: small, so that honest-but-large headers are rejected quickly.
pub const LIMIT: u64 = 1 << 24;

/// Returns whether the bytes parsed.
pub fn idx_file(data: &[u8]) -> bool {
    match IdxArray::from_bytes(data.to_vec(), "fuzz.idx", LIMIT) {
        Ok(a) => {
            let numel: usize = a.dims().iter().product();
            assert_eq!(a.payload().len(), numel * a.dtype().size());
            assert_eq!(a.to_f64_vec().len(), numel);
            assert!(!a.dims().is_empty());
            true
        }
        Err(e) => {
            assert!(e.to_string().contains("fuzz.idx"));
            false
        }
    }
}
