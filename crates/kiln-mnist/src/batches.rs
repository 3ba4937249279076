//! Seeded, shuffled epochs of NHWC `f32` batches, gathered through the split's [`Data`] sources (the same path
//! `Model::fit` takes) into reused buffers.

use kiln_tensor::{ClassIndices, Data, ImagesU8, OneHot, Shape, TensorError, TensorView};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::dataset::{CLASSES, IMAGE_PIXELS, IMAGE_SIDE, Split};
use crate::error::{MnistError, Result};

/// How pixels become floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    /// Raw 0..255, as the notebook trains.
    #[default]
    Raw,
    /// Divided by 255, into [0, 1].
    Unit,
}

impl Scale {
    /// The factor applied to each pixel.
    pub fn factor(self) -> f32 {
        match self {
            Scale::Raw => 1.0,
            Scale::Unit => 1.0 / 255.0,
        }
    }
}

/// How labels are given in a batch's `y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LabelFormat {
    /// `batch × 10` one-hot rows (for `categorical_crossentropy`).
    #[default]
    OneHot,
    /// `batch` class indices as `f32` (for `sparse_categorical_crossentropy`).
    Index,
}

/// Options of [`Split::batches`]. The defaults are Keras' `fit` defaults for the notebook: batch 32, shuffled,
/// raw pixels, one-hot labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Examples per batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Shuffle the order at the start of every epoch.
    pub shuffle: bool,
    /// Seed of the shuffling RNG (ChaCha8, reproducible across platforms and versions).
    pub seed: u64,
    /// Pixel scaling.
    pub scale: Scale,
    /// Label format.
    pub labels: LabelFormat,
    /// Use only the first `n` examples of the split (before shuffling).
    pub limit: Option<usize>,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            batch_size: 32,
            shuffle: true,
            seed: 0,
            scale: Scale::Raw,
            labels: LabelFormat::OneHot,
            limit: None,
        }
    }
}

/// One batch, borrowing the iterator's buffers.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// Images, NHWC `(b, 28, 28, 1)`.
    pub x: TensorView<'a>,
    /// Labels: `(b, 10)` one-hot or `(b,)` class indices, per [`BatchOptions::labels`].
    pub y: TensorView<'a>,
    /// The labels as bytes.
    pub labels: &'a [u8],
    /// Which examples of the split these are.
    pub indices: &'a [usize],
}

impl Batch<'_> {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether the batch is empty (never, for batches yielded by [`Batches`]).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Epochs of batches over a [`Split`]: call [`Batches::next_batch`] until it returns `None`, then
/// [`Batches::start_epoch`] for the next (reshuffled) epoch. Buffers are allocated once, at construction.
#[derive(Debug)]
pub struct Batches<'a> {
    images: ImagesU8<'a>,
    one_hot: OneHot<'a>,
    indices: ClassIndices<'a>,
    opts: BatchOptions,
    rng: ChaCha8Rng,
    order: Vec<usize>,
    cursor: usize,
    x: Vec<f32>,
    y: Vec<f32>,
    labels: Vec<u8>,
    /// x and y shapes for a full batch and for the final partial batch.
    shapes: [(Shape, Shape); 2],
}

fn shapes(b: usize, labels: LabelFormat) -> std::result::Result<(Shape, Shape), TensorError> {
    let x = Shape::new(&[b, IMAGE_SIDE, IMAGE_SIDE, 1])?;
    let y = match labels {
        LabelFormat::OneHot => Shape::new(&[b, CLASSES])?,
        LabelFormat::Index => Shape::new(&[b])?,
    };
    Ok((x, y))
}

impl Split {
    /// An epoch iterator over this split (the first epoch is already started).
    pub fn batches(&self, opts: BatchOptions) -> Result<Batches<'_>> {
        let invalid = |what: String| MnistError::invalid(self.images_file(), what);
        if opts.batch_size == 0 {
            return Err(invalid("batch size must be at least 1".into()));
        }
        let n = opts.limit.map_or(self.len(), |l| l.min(self.len()));
        let b = opts.batch_size.min(n.max(1));
        let last = if n.is_multiple_of(b) { b } else { n % b };
        let full = shapes(b, opts.labels).map_err(|e| invalid(e.to_string()))?;
        let tail = shapes(last, opts.labels).map_err(|e| invalid(e.to_string()))?;
        let y_per = if opts.labels == LabelFormat::OneHot { CLASSES } else { 1 };
        let mut batches = Batches {
            images: self.images(opts.scale)?.take(n),
            one_hot: self.one_hot()?.take(n),
            indices: self.class_indices().take(n),
            opts,
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            order: (0..n).collect(),
            cursor: 0,
            x: vec![0.0; b * IMAGE_PIXELS],
            y: vec![0.0; b * y_per],
            labels: vec![0; b],
            shapes: [full, tail],
        };
        batches.start_epoch();
        Ok(batches)
    }
}

impl Batches<'_> {
    /// Starts a new epoch: rewinds and, if shuffling, draws a fresh permutation from the seeded RNG (so epoch `k`
    /// of two iterators with the same seed visit examples in the same order).
    pub fn start_epoch(&mut self) {
        self.cursor = 0;
        if self.opts.shuffle {
            self.order.shuffle(&mut self.rng);
        }
    }

    /// Examples per epoch.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether an epoch is empty.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Batches per epoch (the last one may be partial).
    pub fn batches_per_epoch(&self) -> usize {
        self.order.len().div_ceil(self.opts.batch_size)
    }

    /// The next batch of this epoch, or `None` when the epoch is done. Performs no allocation.
    pub fn next_batch(&mut self) -> Option<Batch<'_>> {
        let n = self.order.len();
        if self.cursor >= n {
            return None;
        }
        let start = self.cursor;
        let end = (start + self.opts.batch_size).min(n);
        self.cursor = end;
        let b = end - start;
        let indices = &self.order[start..end];
        let one_hot = self.opts.labels == LabelFormat::OneHot;
        let y_per = if one_hot { CLASSES } else { 1 };
        self.images.gather(indices, &mut self.x[..b * IMAGE_PIXELS]);
        let y: &dyn Data = if one_hot { &self.one_hot } else { &self.indices };
        y.gather(indices, &mut self.y[..b * y_per]);
        let labels = self.indices.labels();
        for (l, &i) in self.labels.iter_mut().zip(indices) {
            *l = labels[i];
        }
        let (xs, ys) = if b == self.opts.batch_size.min(n.max(1)) { &self.shapes[0] } else { &self.shapes[1] };
        // The shapes were built for exactly these lengths, so the views cannot fail.
        let x = TensorView::new(xs, &self.x[..b * IMAGE_PIXELS]).ok()?;
        let y = TensorView::new(ys, &self.y[..b * y_per]).ok()?;
        Some(Batch { x, y, labels: &self.labels[..b], indices })
    }
}
