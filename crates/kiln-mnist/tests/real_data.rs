//! Against the real files: MNIST from `MNIST_DIR` (CI sets it to ../shared/mnist), Fashion-MNIST from Debian's
//! `dataset-fashion-mnist` package (CI installs it). Without the data a test prints `skipped` and passes.

use std::collections::HashSet;
use std::path::PathBuf;

use kiln_mnist::download::{MNIST_FILES, decompressed_sha256};
use kiln_mnist::{BatchOptions, Data, Dataset, FASHION_MNIST_SYSTEM_DIR, LabelFormat, Mnist, Scale};

fn mnist_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MNIST_DIR").map(PathBuf::from);
    if dir.is_none() {
        println!("skipped: MNIST_DIR is not set");
    }
    dir
}

#[test]
fn mnist_facts() {
    let Some(dir) = mnist_dir() else { return };
    let m = Mnist::load(&dir).unwrap();
    assert_eq!(m.train.shape(), [60000, 28, 28, 1]);
    assert_eq!(m.test.shape(), [10000, 28, 28, 1]);
    assert_eq!(&m.train.labels()[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(&m.test.labels()[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    assert_eq!(m.train.class_counts(), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    assert_eq!(m.test.class_counts(), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    // The notebook's y = pd.get_dummies(labels): shape (60000, 10), first row is a 5.
    let y = m.train.one_hot().unwrap();
    assert_eq!((y.len(), y.sample_dims()), (60000, &[10usize][..]));
    assert_eq!(y.head(5).unwrap().argmax(1).unwrap(), [5, 0, 4, 1, 9]);
    let images = m.train.images(Scale::Unit).unwrap();
    assert_eq!((images.len(), images.sample_dims()), (60000, &[28usize, 28, 1][..]));
    assert_eq!(images.take(7).len(), 7);
    let x = m.train.images_f32(0..2, Scale::Raw).unwrap();
    assert_eq!(x.dims(), &[2, 28, 28, 1]);
    assert_eq!(x.as_slice().iter().copied().fold(0.0, f32::max), 255.0);
    assert_eq!(m.dataset(), Dataset::Mnist);
}

#[test]
fn mnist_files_match_published_checksums() {
    let Some(dir) = mnist_dir() else { return };
    for spec in MNIST_FILES {
        let path = dir.join(format!("{}.gz", spec.name));
        assert_eq!(decompressed_sha256(&path).unwrap(), spec.sha256, "{}", path.display());
    }
}

#[test]
fn raw_files_are_memory_mapped_and_equal_to_gzip() {
    let Some(dir) = mnist_dir() else { return };
    let gz = Mnist::load(&dir).unwrap();
    let raw_dir = tempfile::tempdir().unwrap();
    for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-labels-idx1-ubyte"] {
        let mut decoded = Vec::new();
        let file = std::fs::File::open(dir.join(format!("{name}.gz"))).unwrap();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(file), &mut decoded).unwrap();
        std::fs::write(raw_dir.path().join(name), decoded).unwrap();
    }
    // Mixed: train images stay gzip, the rest are raw (raw is preferred when both exist).
    std::fs::copy(dir.join("train-images-idx3-ubyte.gz"), raw_dir.path().join("train-images-idx3-ubyte.gz")).unwrap();
    let raw = Mnist::load(raw_dir.path()).unwrap();
    assert!(raw.test.images_file().ends_with("t10k-images-idx3-ubyte"));
    assert!(kiln_mnist::IdxArray::open(raw.test.images_file()).unwrap().is_mapped());
    assert!(!kiln_mnist::IdxArray::open(raw.train.images_file()).unwrap().is_mapped());
    assert_eq!(raw.test.pixels(), gz.test.pixels());
    assert_eq!(raw.train.labels(), gz.train.labels());
}

#[test]
fn batches_cover_each_example_once_per_epoch() {
    let Some(dir) = mnist_dir() else { return };
    let m = Mnist::load(&dir).unwrap();
    let opts = BatchOptions { batch_size: 32, limit: Some(1000), seed: 7, ..BatchOptions::default() };
    let mut epoch = m.train.batches(opts).unwrap();
    assert_eq!(epoch.batches_per_epoch(), 32); // 31 full + one of 8, as Keras
    let mut seen = HashSet::new();
    let mut sizes = Vec::new();
    let mut first_order = Vec::new();
    while let Some(batch) = epoch.next_batch() {
        sizes.push(batch.len());
        assert_eq!(batch.x.dims(), &[batch.len(), 28, 28, 1]);
        assert_eq!(batch.y.dims(), &[batch.len(), 10]);
        for (k, &i) in batch.indices.iter().enumerate() {
            assert!(seen.insert(i));
            first_order.push(i);
            // Pixels and labels belong to example i.
            let img = m.train.image(i).unwrap();
            let x = &batch.x.as_slice()[k * 784..(k + 1) * 784];
            assert!(x.iter().zip(img).all(|(a, &b)| *a == f32::from(b)));
            let label = m.train.label(i).unwrap();
            assert_eq!(batch.labels[k], label);
            assert_eq!(batch.y.as_slice()[k * 10 + usize::from(label)], 1.0);
            assert_eq!(batch.y.as_slice()[k * 10..(k + 1) * 10].iter().sum::<f32>(), 1.0);
        }
    }
    assert_eq!(seen.len(), 1000);
    assert!(seen.iter().all(|&i| i < 1000));
    assert_eq!(sizes.iter().filter(|&&s| s == 32).count(), 31);
    assert_eq!(*sizes.last().unwrap(), 8);
    // Shuffled (not the identity), different next epoch, reproducible from the seed.
    assert_ne!(first_order, (0..1000).collect::<Vec<usize>>());
    epoch.start_epoch();
    let second: Vec<usize> = std::iter::from_fn(|| epoch.next_batch().map(|b| b.indices.to_vec())).flatten().collect();
    assert_ne!(second, first_order);
    let mut again = m.train.batches(opts).unwrap();
    let replay: Vec<usize> = std::iter::from_fn(|| again.next_batch().map(|b| b.indices.to_vec())).flatten().collect();
    assert_eq!(replay, first_order);
}

#[test]
fn batch_scaling_labels_and_order_options() {
    let Some(dir) = mnist_dir() else { return };
    let m = Mnist::load(&dir).unwrap();
    let opts = BatchOptions {
        batch_size: 5,
        shuffle: false,
        scale: Scale::Unit,
        labels: LabelFormat::Index,
        limit: Some(12),
        ..BatchOptions::default()
    };
    let mut epoch = m.train.batches(opts).unwrap();
    let b = epoch.next_batch().unwrap();
    assert_eq!(b.indices, &[0, 1, 2, 3, 4]);
    assert_eq!(b.y.dims(), &[5]);
    assert_eq!(b.y.as_slice(), &[5.0, 0.0, 4.0, 1.0, 9.0]);
    let max = b.x.as_slice().iter().copied().fold(0.0f32, f32::max);
    assert!((max - 1.0).abs() < 1e-6 && b.x.as_slice().iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert_eq!(epoch.next_batch().unwrap().len(), 5);
    assert_eq!(epoch.next_batch().unwrap().len(), 2);
    assert!(epoch.next_batch().is_none());
    assert!(m.train.batches(BatchOptions { batch_size: 0, ..opts }).is_err());
}

#[test]
fn fashion_mnist_from_the_debian_package() {
    if !std::path::Path::new(FASHION_MNIST_SYSTEM_DIR).is_dir() {
        println!("skipped: {FASHION_MNIST_SYSTEM_DIR} is missing (apt-get install dataset-fashion-mnist)");
        return;
    }
    let f = Dataset::FashionMnist.load(FASHION_MNIST_SYSTEM_DIR).unwrap();
    assert_eq!(f.train.shape(), [60000, 28, 28, 1]);
    assert_eq!(f.test.shape(), [10000, 28, 28, 1]);
    // Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class.
    assert_eq!(f.train.class_counts(), [6000; 10]);
    assert_eq!(f.test.class_counts(), [1000; 10]);
    assert_eq!(Dataset::FashionMnist.class_names()[9], "Ankle boot");
    // Without FASHION_MNIST_DIR, locate() finds the package's directory.
    if std::env::var_os("FASHION_MNIST_DIR").is_none() {
        let located = Dataset::FashionMnist.locate(None).unwrap();
        assert_eq!(located.train.len(), 60000);
    }
}
