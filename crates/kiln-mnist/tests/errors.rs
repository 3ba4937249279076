//! Every way a dataset can be wrong gives a typed error whose message names the file.

mod common;

use std::path::{Path, PathBuf};

use common::{gzip, images, labels, write_dataset};
use kiln_mnist::idx::{IdxType, encode};
use kiln_mnist::{Dataset, IdxArray, IdxError, Mnist, MnistError};

/// A valid dataset in a temp dir, with one file replaced by `bytes`.
fn dataset_with(file: &str, bytes: Vec<u8>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), false);
    let path = dir.path().join(file);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn load_err(dir: &Path) -> (MnistError, String) {
    let err = Mnist::load(dir).unwrap_err();
    let msg = err.to_string();
    (err, msg)
}

fn assert_names(msg: &str, path: &Path) {
    assert!(msg.contains(&path.display().to_string()), "message does not name {}: {msg}", path.display());
}

#[test]
fn valid_synthetic_dataset_loads() {
    for gz in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path(), gz);
        let m = Mnist::load(dir.path()).unwrap();
        assert_eq!(m.train.len(), 5);
        assert_eq!(m.test.labels(), &[0, 1, 2]);
    }
}

#[test]
fn missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("nope");
    let (err, msg) = load_err(&gone);
    assert!(matches!(err, MnistError::NotFound { dataset: "MNIST", .. }), "{err:?}");
    assert_names(&msg, &gone);
    assert!(msg.contains("MNIST_DIR"), "the hint says how to get the data: {msg}");
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), true);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let (err, msg) = load_err(dir.path());
    assert!(matches!(err, MnistError::NotFound { .. }));
    assert_names(&msg, dir.path());
    assert!(msg.contains("t10k-labels-idx1-ubyte"), "{msg}");
    let (err, _) = (Dataset::FashionMnist.load(dir.path()).unwrap_err(), ());
    assert!(err.to_string().contains("dataset-fashion-mnist"));
}

#[test]
fn empty_file() {
    // A zero-length raw file (mapping it yields an empty map) is a short header, not a crash.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty-idx1-ubyte");
    std::fs::write(&path, b"").unwrap();
    let err = IdxArray::open(&path).unwrap_err();
    assert!(matches!(err, MnistError::Format { kind: IdxError::ShortHeader { needed: 4, got: 0 }, .. }), "{err:?}");
    assert_names(&err.to_string(), &path);
}

#[test]
fn unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent-idx1-ubyte");
    let err = IdxArray::open(&path).unwrap_err();
    assert!(matches!(err, MnistError::Io { .. }));
    assert_names(&err.to_string(), &path);
}

fn format_case(bytes: Vec<u8>, expected: impl Fn(&IdxError) -> bool) {
    for (gz, data) in [(false, bytes.clone()), (true, gzip(&bytes))] {
        let name = if gz { "train-labels-idx1-ubyte.gz" } else { "train-labels-idx1-ubyte" };
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path(), false);
        std::fs::remove_file(dir.path().join("train-labels-idx1-ubyte")).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &data).unwrap();
        let (err, msg) = load_err(dir.path());
        match &err {
            MnistError::Format { kind, path: p } => {
                assert!(expected(kind), "unexpected kind {kind:?} (gz = {gz})");
                assert_eq!(p, &path);
            }
            other => panic!("expected a format error, got {other:?}"),
        }
        assert_names(&msg, &path);
    }
}

#[test]
fn bad_magic() {
    let mut b = labels(5);
    b[0] = 0x12;
    format_case(b, |k| matches!(k, IdxError::BadMagic(0x12, 0)));
}

#[test]
fn unknown_type_code() {
    let mut b = labels(5);
    b[2] = 0x0A;
    format_case(b, |k| matches!(k, IdxError::UnknownType(0x0A)));
}

#[test]
fn zero_rank() {
    format_case(vec![0, 0, 8, 0], |k| matches!(k, IdxError::ZeroRank));
}

#[test]
fn short_header() {
    format_case(vec![0, 0, 8, 3, 0, 0], |k| matches!(k, IdxError::ShortHeader { needed: 16, .. }));
    format_case(vec![0, 0], |k| matches!(k, IdxError::ShortHeader { needed: 4, got: 2 }));
}

#[test]
fn truncated_payload() {
    let mut b = labels(5);
    b.truncate(b.len() - 2);
    format_case(b, |k| matches!(k, IdxError::Truncated { expected: 5, got: 3 }));
}

#[test]
fn trailing_data() {
    let mut b = labels(5);
    b.push(0);
    format_case(b, |k| matches!(k, IdxError::TrailingData { expected: 5, .. }));
}

#[test]
fn overflowing_dimensions() {
    let b = encode(IdxType::F64, &[u32::MAX, u32::MAX, u32::MAX], &[]);
    format_case(b, |k| matches!(k, IdxError::Overflow));
}

#[test]
fn over_the_size_cap() {
    // 4 × 2³⁰ bytes announced: above the 1 GiB default cap, rejected before reading or allocating.
    let b = encode(IdxType::F32, &[1 << 30], &[]);
    format_case(b, |k| matches!(k, IdxError::TooLarge { bytes: 4_294_967_296, .. }));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small-cap");
    std::fs::write(&path, labels(100)).unwrap();
    let err = IdxArray::open_with_limit(&path, 99).unwrap_err();
    assert!(matches!(err, MnistError::Format { kind: IdxError::TooLarge { bytes: 100, limit: 99 }, .. }));
    assert_names(&err.to_string(), &path);
}

#[test]
fn corrupt_gzip() {
    // Gzip magic followed by garbage, and a valid archive cut in half.
    let garbage = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02].to_vec();
    let full = gzip(&images(5));
    let cut = full[..full.len() / 2].to_vec();
    for bytes in [garbage, cut] {
        let (dir, path) = dataset_with("train-images-idx3-ubyte.gz", bytes);
        std::fs::remove_file(dir.path().join("train-images-idx3-ubyte")).unwrap();
        let (err, msg) = load_err(dir.path());
        assert!(matches!(err, MnistError::Gzip { .. }), "{err:?}");
        assert_names(&msg, &path);
    }
}

#[test]
fn wrong_element_type() {
    let b = encode(IdxType::I8, &[5, 28, 28], &[0; 5 * 784]);
    let (dir, path) = dataset_with("train-images-idx3-ubyte", b);
    let (err, msg) = load_err(dir.path());
    assert!(matches!(err, MnistError::Invalid { .. }) && msg.contains("u8"), "{msg}");
    assert_names(&msg, &path);
}

#[test]
fn wrong_image_size() {
    let b = encode(IdxType::U8, &[5, 27, 28], &[0; 5 * 27 * 28]);
    let (dir, path) = dataset_with("train-images-idx3-ubyte", b);
    let (err, msg) = load_err(dir.path());
    assert!(matches!(err, MnistError::Invalid { .. }) && msg.contains("27x28"), "{msg}");
    assert_names(&msg, &path);
    let flat = encode(IdxType::U8, &[5, 784], &[0; 5 * 784]);
    let (dir, path) = dataset_with("train-images-idx3-ubyte", flat);
    let (_, msg) = load_err(dir.path());
    assert!(msg.contains("3 dimensions"), "{msg}");
    assert_names(&msg, &path);
}

#[test]
fn label_count_mismatch() {
    let (dir, path) = dataset_with("t10k-labels-idx1-ubyte", labels(4));
    let (err, msg) = load_err(dir.path());
    assert!(matches!(err, MnistError::Invalid { .. }) && msg.contains("4 labels for 3 images"), "{msg}");
    assert_names(&msg, &path);
}

#[test]
fn label_out_of_range() {
    let b = encode(IdxType::U8, &[5], &[0, 1, 10, 3, 4]);
    let (dir, path) = dataset_with("train-labels-idx1-ubyte", b);
    let (err, msg) = load_err(dir.path());
    assert!(matches!(err, MnistError::Invalid { .. }) && msg.contains("label 10 at index 2"), "{msg}");
    assert_names(&msg, &path);
}
