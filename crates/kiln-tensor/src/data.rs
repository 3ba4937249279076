//! [`Data`]: the one way samples reach a model. A source knows how many samples it holds and the shape of one,
//! and copies any of them, in any order, into a caller's buffer — which is how `fit` gathers a shuffled batch
//! straight into the buffer the training step reads in place.
//!
//! Sources: a [`Tensor`] or [`TensorView`] (first axis = samples), `u8` images converted as they are gathered
//! ([`ImagesU8`], so 60,000 images stay 47 MB instead of 188 MB of floats), one-hot rows built from class labels
//! ([`OneHot`]), class indices ([`ClassIndices`]) and a contiguous range of another source ([`Rows`]).

use std::ops::Range;

use crate::error::{Result, TensorError};
use crate::tensor::{Tensor, TensorView};

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
    /// All samples as one `f32` slice, when the source stores them so (a tensor): a whole batch is then read in
    /// place instead of gathered.
    fn contiguous(&self) -> Option<&[f32]> {
        None
    }
    /// Every sample copied into one tensor of shape `[len, sample dims…]` (NumPy's `np.asarray`).
    fn to_tensor(&self) -> Result<Tensor> {
        let mut dims = Vec::with_capacity(1 + self.sample_dims().len());
        dims.push(self.len());
        dims.extend_from_slice(self.sample_dims());
        let mut t = Tensor::zeros(&dims)?;
        let indices: Vec<usize> = (0..self.len()).collect();
        self.gather(&indices, t.as_mut_slice());
        Ok(t)
    }
    /// Samples `range` of this source, as a source (`x.rows(0..32)` is the first batch of 32).
    fn rows(&self, range: Range<usize>) -> Result<Rows<'_>>
    where
        Self: Sized,
    {
        Rows::new(self, range)
    }
}

fn gather_rows(data: &[f32], per: usize, indices: &[usize], out: &mut [f32]) {
    for (&i, o) in indices.iter().zip(out.chunks_exact_mut(per.max(1))) {
        o.copy_from_slice(&data[i * per..(i + 1) * per]);
    }
}

/// A tensor is read through its view (whose borrows last as long as the tensor's).
impl Data for Tensor {
    fn len(&self) -> usize {
        self.view().len()
    }
    fn sample_dims(&self) -> &[usize] {
        self.view().sample_dims_of_view()
    }
    fn gather(&self, indices: &[usize], out: &mut [f32]) {
        self.view().gather(indices, out);
    }
    fn contiguous(&self) -> Option<&[f32]> {
        Some(self.as_slice())
    }
}

impl<'a> TensorView<'a> {
    /// The dimensions after the first, borrowed for the view's whole lifetime.
    fn sample_dims_of_view(self) -> &'a [usize] {
        self.dims().get(1..).unwrap_or(&[])
    }
}

impl Data for TensorView<'_> {
    fn len(&self) -> usize {
        self.dims().first().copied().unwrap_or(0)
    }
    fn sample_dims(&self) -> &[usize] {
        self.sample_dims_of_view()
    }
    fn gather(&self, indices: &[usize], out: &mut [f32]) {
        gather_rows(self.as_slice(), self.sample_len(), indices, out);
    }
    fn contiguous(&self) -> Option<&[f32]> {
        Some(self.as_slice())
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
            return Err(TensorError::Data {
                what: "images",
                expected: format!("a multiple of {per} pixels ({dims:?} per image)"),
                got: format!("{} pixels", pixels.len()),
            });
        }
        Ok(ImagesU8 { pixels, dims, scale })
    }

    /// The first `n` images (all of them if there are fewer).
    pub fn take(self, n: usize) -> Self {
        let per = self.sample_len();
        ImagesU8 { pixels: &self.pixels[..n.min(self.len()) * per], ..self }
    }

    /// Image `i`'s pixels as stored, or `None` past the end.
    pub fn image(&self, i: usize) -> Option<&'a [u8]> {
        let per = self.sample_len();
        self.pixels.get(i * per..(i + 1) * per)
    }

    /// The factor each pixel is multiplied by.
    pub fn scale(&self) -> f32 {
        self.scale
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

/// One-hot rows of `classes` columns built from class labels as each batch is gathered (the notebook's
/// `pd.get_dummies`, with every class's column present).
#[derive(Debug, Clone, Copy)]
pub struct OneHot<'a> {
    labels: &'a [u8],
    dims: [usize; 1],
}

impl<'a> OneHot<'a> {
    /// One-hot targets for `labels`, each `< classes`.
    pub fn new(labels: &'a [u8], classes: usize) -> Result<Self> {
        if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| usize::from(l) >= classes) {
            return Err(TensorError::Data {
                what: "labels",
                expected: format!("class indices below {classes}"),
                got: format!("{l} at index {i}"),
            });
        }
        Ok(OneHot { labels, dims: [classes] })
    }

    /// The first `n` rows (all of them if there are fewer).
    pub fn take(self, n: usize) -> Self {
        OneHot { labels: &self.labels[..n.min(self.labels.len())], ..self }
    }

    /// The class labels the rows encode.
    pub fn labels(&self) -> &'a [u8] {
        self.labels
    }

    /// The first `n` rows as a `n × classes` tensor (for printing).
    pub fn head(&self, n: usize) -> Result<Tensor> {
        self.take(n).to_tensor()
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

    /// The first `n` labels (all of them if there are fewer).
    pub fn take(self, n: usize) -> Self {
        ClassIndices { labels: &self.labels[..n.min(self.labels.len())] }
    }

    /// The labels.
    pub fn labels(&self) -> &'a [u8] {
        self.labels
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

/// A contiguous range of another source's samples (what `validation_split` takes from the end).
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    inner: &'a dyn Data,
    start: usize,
    len: usize,
}

impl<'a> Rows<'a> {
    /// Samples `range` of `inner`; an error if the range is not within `0..inner.len()`.
    pub fn new(inner: &'a dyn Data, range: Range<usize>) -> Result<Self> {
        if range.start > range.end || range.end > inner.len() {
            return Err(TensorError::BatchRange { start: range.start, end: range.end, batch: inner.len() });
        }
        Ok(Rows { inner, start: range.start, len: range.end - range.start })
    }
}

impl Data for Rows<'_> {
    fn len(&self) -> usize {
        self.len
    }
    fn sample_dims(&self) -> &[usize] {
        self.inner.sample_dims()
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
    fn contiguous(&self) -> Option<&[f32]> {
        let n = self.inner.sample_len();
        self.inner.contiguous()?.get(self.start * n..(self.start + self.len) * n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(d: &dyn Data) -> Vec<f32> {
        let idx: Vec<usize> = (0..d.len()).collect();
        let mut out = vec![f32::NAN; d.len() * d.sample_len()];
        d.gather(&idx, &mut out);
        out
    }

    #[test]
    fn images_convert_scale_and_take() {
        let px = [0u8, 10, 20, 30, 40, 50, 60, 70];
        let x = ImagesU8::new(&px, [2, 2, 1], 0.5).unwrap();
        assert_eq!((x.len(), x.sample_dims()), (2, &[2usize, 2, 1][..]));
        let mut out = [0.0; 4];
        x.gather(&[1], &mut out);
        assert_eq!(out, [20.0, 25.0, 30.0, 35.0]);
        assert_eq!(x.take(1).len(), 1);
        assert_eq!(x.take(9).len(), 2);
        assert_eq!(x.image(1), Some(&px[4..]));
        assert!(ImagesU8::new(&px[..7], [2, 2, 1], 1.0).is_err());
        assert!(ImagesU8::new(&px, [0, 2, 1], 1.0).is_err());
    }

    #[test]
    fn one_hot_and_indices() {
        let y = OneHot::new(&[2, 0], 3).unwrap();
        assert_eq!(all(&y), [0., 0., 1., 1., 0., 0.]);
        assert_eq!(y.head(1).unwrap().as_slice(), &[0., 0., 1.]);
        assert_eq!(
            OneHot::new(&[2, 0, 1], 3).unwrap().to_tensor().unwrap().as_slice(),
            &[0., 0., 1., 1., 0., 0., 0., 1., 0.]
        );
        assert!(
            matches!(OneHot::new(&[3], 3), Err(TensorError::Data { what: "labels", got, .. }) if got == "3 at index 0")
        );
        assert_eq!(OneHot::new(&[], 10).unwrap().to_tensor().unwrap().dims(), &[0, 10]);
        assert_eq!(all(&ClassIndices::new(&[4, 1]).take(1)), [4.0]);
    }

    #[test]
    fn rows_shift_and_stay_contiguous() {
        let t = Tensor::from_fn(&[5, 2], |i| i as f32).unwrap();
        let r = Rows::new(&t, 3..5).unwrap();
        assert_eq!(all(&r), [6., 7., 8., 9.]);
        assert_eq!(r.contiguous(), Some(&[6., 7., 8., 9.][..]));
        assert!(Rows::new(&t, 4..6).is_err());
        let px = [1u8; 8];
        let imgs = ImagesU8::new(&px, [2, 2, 1], 1.0).unwrap();
        assert_eq!(Rows::new(&imgs, 1..2).unwrap().contiguous(), None);
    }
}
