//! Loading full MNIST (60,000 + 10,000 images, validated): from the `.gz` files, and from raw IDX files, which are
//! memory-mapped. Throughput is in decompressed bytes. Needs `MNIST_DIR`.
//!
//! `MNIST_DIR=../shared/mnist cargo benches --bench mnist`

use std::hint::black_box;
use std::io::Read;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_mnist::{FILE_NAMES, Mnist};

fn load(c: &mut Criterion) {
    let Some(src) = std::env::var_os("MNIST_DIR").map(PathBuf::from) else {
        eprintln!("mnist bench skipped: MNIST_DIR is not set");
        return;
    };
    // Raw copies in a temp dir.
    let raw = tempfile::tempdir().expect("temp dir");
    let mut total = 0u64;
    for name in FILE_NAMES {
        let file = std::fs::File::open(src.join(format!("{name}.gz"))).expect("MNIST .gz file");
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(file).read_to_end(&mut bytes).expect("valid gzip");
        total += bytes.len() as u64;
        std::fs::write(raw.path().join(name), bytes).expect("write raw copy");
    }
    let mut group = c.benchmark_group("mnist/load");
    group.throughput(Throughput::Bytes(total));
    group.sample_size(10);
    group.bench_function("gz", |b| b.iter(|| black_box(Mnist::load(&src).expect("load gz"))));
    group.bench_function("raw_mmap", |b| b.iter(|| black_box(Mnist::load(raw.path()).expect("load raw"))));
    group.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
