//! [`Data`]: what `fit`, `evaluate` and `predict` read samples from — a [`Tensor`] (first axis = samples), raw
//! `u8` images converted per batch ([`ImagesU8`], so a 60,000-image dataset stays 47 MB instead of 188 MB of
//! floats), one-hot rows built from class labels ([`OneHot`]), or class indices ([`ClassIndices`]).

use kiln_tensor::Tensor;

use crate::error::{NnError, Result};

/// A source of samples, each of the same shape.
pub trait Data: Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The shape of one sample (no batch axis; empty for a scalar per sample).
    fn sample_dims(&self) -> &[usize];
    /// Floats per sample.
    fn sample_len(&self) -> usize {
        self.sample_dims().iter().product()
    }
    /// Writes the samples at `indices` (each `< len()`) one after another into `out`
    /// (`out.len() == indices.len() · sample_len()`).
    fn gather(&self, indices: &[usize], out: &mut [f32]);
}

impl Data for Tensor {
    fn len(&self) -> usize {
        self.dims().first().copied().unwrap_or(0)
    }
    fn sample_dims(&self) -> &[usize] {
        self.dims().get(1..).unwrap_or(&[])
    }
    fn gather(&self, indices: &[usize], out: &mut [f32]) {
        let n = self.sample_len();
        for (&i, o) in indices.iter().zip(out.chunks_exact_mut(n.max(1))) {
            o.copy_from_slice(&self.as_slice()[i * n..(i + 1) * n]);
        }
    }
}

/// `u8` images converted to `f32` (times `scale`) as each batch is gathered.
#[derive(Debug, Clone, Copy)]
pub struct ImagesU8<'a> {
    pixels: &'a [u8],
    dims: [usize; 3],
    scale: f32,
}

impl<'a> ImagesU8<'a> {
    /// Images of `dims = (height, width, channels)` stored one after another in `pixels`; each pixel becomes
    /// `pixel · scale` (1 for the notebook's raw pixels, 1/255 to normalise).
    pub fn new(pixels: &'a [u8], dims: [usize; 3], scale: f32) -> Result<Self> {
        let per: usize = dims.iter().product();
        if per == 0 || !pixels.len().is_multiple_of(per) {
            return Err(NnError::Data {
                what: "images",
                expected: format!("a multiple of {per} pixels ({dims:?} per image)"),
                got: format!("{} pixels", pixels.len()),
            });
        }
        Ok(ImagesU8 { pixels, dims, scale })
    }
}

impl Data for ImagesU8<'_> {
    fn len(&self) -> usize {
        self.pixels.len() / self.sample_len()
    }
    fn sample_dims(&self) -> &[usize] {
        &self.dims
    }
    fn gather(&self, indices: &[usize], out: &mut [f32]) {
        let n = self.sample_len();
        for (&i, o) in indices.iter().zip(out.chunks_exact_mut(n)) {
            for (o, &p) in o.iter_mut().zip(&self.pixels[i * n..(i + 1) * n]) {
                *o = f32::from(p) * self.scale;
            }
        }
    }
}

/// One-hot rows of `classes` columns built from class labels as each batch is gathered.
#[derive(Debug, Clone, Copy)]
pub struct OneHot<'a> {
    labels: &'a [u8],
    dims: [usize; 1],
}

impl<'a> OneHot<'a> {
    /// One-hot targets for `labels`, each `< classes`.
    pub fn new(labels: &'a [u8], classes: usize) -> Result<Self> {
        if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| usize::from(l) >= classes) {
            return Err(NnError::Data {
                what: "labels",
                expected: format!("class indices below {classes}"),
                got: format!("{l} at index {i}"),
            });
        }
        Ok(OneHot { labels, dims: [classes] })
    }
}

impl Data for OneHot<'_> {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn sample_dims(&self) -> &[usize] {
        &self.dims
    }
    fn gather(&self, indices: &[usize], out: &mut [f32]) {
        let c = self.dims[0];
        for (&i, o) in indices.iter().zip(out.chunks_exact_mut(c)) {
            o.fill(0.0);
            o[usize::from(self.labels[i])] = 1.0;
        }
    }
}

/// Class indices (as floats) for `sparse_categorical_crossentropy`.
#[derive(Debug, Clone, Copy)]
pub struct ClassIndices<'a> {
    labels: &'a [u8],
}

impl<'a> ClassIndices<'a> {
    /// The labels as they are.
    pub fn new(labels: &'a [u8]) -> Self {
        ClassIndices { labels }
    }
}

impl Data for ClassIndices<'_> {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn sample_dims(&self) -> &[usize] {
        &[]
    }
    fn gather(&self, indices: &[usize], out: &mut [f32]) {
        for (&i, o) in indices.iter().zip(out.iter_mut()) {
            *o = f32::from(self.labels[i]);
        }
    }
}

/// A contiguous range of another source's samples (what `validation_split` uses).
pub(crate) struct Slice<'a> {
    pub(crate) inner: &'a dyn Data,
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) scratch_dims: Vec<usize>,
}

impl Data for Slice<'_> {
    fn len(&self) -> usize {
        self.len
    }
    fn sample_dims(&self) -> &[usize] {
        &self.scratch_dims
    }
    fn gather(&self, indices: &[usize], out: &mut [f32]) {
        // Shift in chunks through a small stack buffer so no allocation is needed.
        let mut shifted = [0usize; 64];
        let n = self.inner.sample_len();
        for (chunk, out) in indices.chunks(64).zip(out.chunks_mut(64 * n.max(1))) {
            for (s, &i) in shifted.iter_mut().zip(chunk) {
                *s = i + self.start;
            }
            self.inner.gather(&shifted[..chunk.len()], out);
        }
    }
}
