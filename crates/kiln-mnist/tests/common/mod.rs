//! Synthetic datasets for the tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use kiln_mnist::idx::{IdxType, encode};

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `n` 28×28 images whose pixels encode their index, labels `i % 10`.
pub fn images(n: u32) -> Vec<u8> {
    let payload: Vec<u8> = (0..n * 784).map(|i| ((i / 784 * 7 + i % 251) % 256) as u8).collect();
    encode(IdxType::U8, &[n, 28, 28], &payload)
}

pub fn labels(n: u32) -> Vec<u8> {
    let payload: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    encode(IdxType::U8, &[n], &payload)
}

/// Writes a valid small dataset (5 train, 3 test examples) into `dir`, gzip-compressed if `gz`.
pub fn write_dataset(dir: &Path, gz: bool) {
    let files = [
        ("train-images-idx3-ubyte", images(5)),
        ("train-labels-idx1-ubyte", labels(5)),
        ("t10k-images-idx3-ubyte", images(3)),
        ("t10k-labels-idx1-ubyte", labels(3)),
    ];
    for (name, bytes) in files {
        if gz {
            std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}
