//! # kiln-mnist
//!
//! MNIST and Fashion-MNIST for Kiln: a complete [IDX](idx) reader (memory-mapped raw files, gzip via `flate2`,
//! every header validated before allocation), a [verified downloader](download), the datasets with their checks
//! ([`Mnist`], [`Dataset`], [`Split`]), the splits as model inputs and targets that know their shapes
//! ([`Split::images`], [`Split::one_hot`]: [`Data`] sources converted per batch), and seeded, shuffled NHWC `f32`
//! [`Batches`] gathered through the same sources into reused buffers.
//!
//! ```no_run
//! use kiln_mnist::{BatchOptions, Data, Mnist, Scale};
//!
//! // `--data-dir`, else MNIST_DIR, else ~/.cache/kiln/mnist, else a verified download.
//! let mnist = Mnist::locate(None)?;
//! assert_eq!(mnist.train.shape(), [60000, 28, 28, 1]);
//! let (x, y) = (mnist.train.images(Scale::Raw)?.take(1000), mnist.train.one_hot()?.take(1000));
//! assert_eq!((x.len(), x.sample_dims(), y.sample_dims()), (1000, &[28, 28, 1][..], &[10][..]));
//! let mut epoch = mnist.train.batches(BatchOptions::default())?;
//! while let Some(batch) = epoch.next_batch() {
//!     assert_eq!(batch.x.dims()[1..], [28, 28, 1]);
//! }
//! # Ok::<(), kiln_mnist::MnistError>(())
//! ```
//!
//! The crate's only `unsafe` code is the memory mapping of raw IDX files (see [`IdxArray::open`]).

#![deny(unsafe_code)]

mod batches;
mod dataset;
pub mod download;
mod error;
pub mod idx;

pub use batches::{Batch, BatchOptions, Batches, LabelFormat, Scale};
pub use dataset::{
    CLASSES, Dataset, ENV_FASHION_MNIST_DIR, ENV_MNIST_DIR, FASHION_MNIST_SYSTEM_DIR, FILE_NAMES, IMAGE_PIXELS,
    IMAGE_SIDE, Mnist, Split, find_files,
};
pub use error::{IdxError, MnistError, Result};
pub use idx::{IdxArray, IdxHeader, IdxType};
/// The sample sources a split hands to a model ([`Split::images`], [`Split::one_hot`], [`Split::class_indices`]).
pub use kiln_tensor::{ClassIndices, Data, ImagesU8, OneHot};
