//! Corrupt Keras files never panic: random bytes, and valid `.keras` archives, their HDF5 weights and legacy `.h5`
//! files with random byte changes and truncations, through the body of the `keras_files` fuzz target. The HDF5
//! bytes are also mutated outside the archive, since a stored zip entry with a changed byte fails its CRC before
//! the HDF5 parser sees it.

#[allow(dead_code)]
mod fuzz_bodies;

use proptest::prelude::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keras_files");

/// Small valid inputs: a Keras-written archive with Adam state, its weights file, and a legacy `.h5`.
fn valid_files() -> [Vec<u8>; 3] {
    let archive = std::fs::read(format!("{DIR}/residual.keras")).unwrap();
    let model = kiln_nn::Model::load_keras_from_slice(&archive).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.weights.h5");
    model.save_keras_weights(&weights).unwrap();
    [archive, std::fs::read(weights).unwrap(), std::fs::read(format!("{DIR}/legacy.h5")).unwrap()]
}

fn mutate(mut v: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    for &(i, b) in edits {
        if !v.is_empty() {
            let n = v.len();
            v[i % n] = b;
        }
    }
    if let Some(c) = cut {
        v.truncate(c % (v.len() + 1));
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: kiln_kernels::testing::cases(128), ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_bodies::keras_files(&data);
        let mut zip_like = b"PK\x03\x04".to_vec();
        zip_like.extend_from_slice(&data);
        fuzz_bodies::keras_files(&zip_like);
        let mut hdf5_like = b"\x89HDF\r\n\x1a\n".to_vec();
        hdf5_like.extend_from_slice(&data);
        fuzz_bodies::keras_files(&hdf5_like);
    }

    #[test]
    fn mutated_valid_files(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in proptest::option::of(any::<usize>()), which in 0usize..3) {
        let file = valid_files()[which].clone();
        fuzz_bodies::keras_files(&mutate(file, &edits, cut));
    }
}
