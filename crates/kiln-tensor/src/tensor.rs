//! [`Tensor`] (owned, 64-byte aligned `f32` storage) and [`TensorView`] (a borrowed, reshaped or batch-sliced
//! window onto one).

use std::fmt;
use std::ops::Range;

use kiln_kernels::AlignedVec;

use crate::error::{Result, TensorError};
use crate::shape::Shape;

/// A dense, row-major `f32` tensor of any rank with storage aligned to 64 bytes.
///
/// Images use the NHWC convention `(batch, height, width, channels)`, as Keras does. Every constructor and
/// operation that can be handed inconsistent input returns a [`TensorError`] instead of panicking.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    shape: Shape,
    data: AlignedVec,
}

/// A borrowed tensor: a shape over a contiguous slice of another tensor's (or any) storage. Reshaping and batch
/// slicing a view never copies.
#[derive(Clone, Copy, PartialEq)]
pub struct TensorView<'a> {
    shape: &'a Shape,
    data: &'a [f32],
}

fn alloc(shape: &Shape, value: f32) -> Result<AlignedVec> {
    AlignedVec::try_filled(shape.numel(), value)
        .map_err(|e| TensorError::Alloc { elements: shape.numel(), reason: e.to_string() })
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(dims: &[usize]) -> Result<Self> {
        Self::full(dims, 0.0)
    }

    /// A tensor with every element equal to `value`.
    pub fn full(dims: &[usize], value: f32) -> Result<Self> {
        let shape = Shape::new(dims)?;
        let data = alloc(&shape, value)?;
        Ok(Tensor { shape, data })
    }

    /// A rank-0 tensor holding `value`.
    pub fn scalar(value: f32) -> Self {
        let mut data = AlignedVec::zeros(1);
        data[0] = value;
        Tensor { shape: Shape::scalar(), data }
    }

    /// A tensor of the given shape holding a copy of `data` (row-major); an error if the lengths disagree.
    pub fn from_slice(dims: &[usize], data: &[f32]) -> Result<Self> {
        let shape = Shape::new(dims)?;
        if data.len() != shape.numel() {
            return Err(TensorError::LengthMismatch {
                op: "from_slice",
                expected: shape.numel(),
                got: data.len(),
                shape,
            });
        }
        let data = AlignedVec::try_from_slice(data)
            .map_err(|e| TensorError::Alloc { elements: data.len(), reason: e.to_string() })?;
        Ok(Tensor { shape, data })
    }

    /// A tensor of the given shape from a `Vec` (copied once into aligned storage).
    pub fn from_vec(dims: &[usize], data: Vec<f32>) -> Result<Self> {
        Self::from_slice(dims, &data)
    }

    /// A tensor whose element at flat (row-major) index `i` is `f(i)`.
    pub fn from_fn(dims: &[usize], mut f: impl FnMut(usize) -> f32) -> Result<Self> {
        let mut t = Self::zeros(dims)?;
        for (i, v) in t.data.iter_mut().enumerate() {
            *v = f(i);
        }
        Ok(t)
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements, row-major. The slice starts on a 64-byte boundary.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The elements, row-major, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The element at a multi-index, or `None` if it is out of bounds or of the wrong rank.
    pub fn get(&self, index: &[usize]) -> Option<f32> {
        self.shape.offset(index).map(|i| self.data[i])
    }

    /// Row `i` of the first axis (sample `i` of a batch of predictions), or `None` past the end.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        let per: usize = self.dims().get(1..).map_or(1, |d| d.iter().product());
        let start = i.checked_mul(per)?;
        self.data.get(start..start.checked_add(per)?)
    }

    /// A borrowed view of the whole tensor.
    pub fn view(&self) -> TensorView<'_> {
        TensorView { shape: &self.shape, data: &self.data }
    }

    /// The same storage under new dimensions (no copy); an error if the element counts differ.
    pub fn reshape(mut self, dims: &[usize]) -> Result<Self> {
        self.shape = reshaped(&self.shape, dims)?;
        Ok(self)
    }

    /// Reshapes in place (no copy); on error the tensor is unchanged.
    pub fn reshape_in_place(&mut self, dims: &[usize]) -> Result<()> {
        self.shape = reshaped(&self.shape, dims)?;
        Ok(())
    }

    /// Rows `range` of the first (batch) axis, as a view (no copy).
    pub fn batch(&self, range: Range<usize>) -> Result<BatchView<'_>> {
        self.view().batch(range)
    }

    /// A new tensor with `f` applied to every element.
    pub fn map(&self, f: impl Fn(f32) -> f32) -> Result<Self> {
        self.view().map(f)
    }

    /// Applies `f` to every element in place.
    pub fn map_in_place(&mut self, f: impl Fn(f32) -> f32) {
        for v in self.data.iter_mut() {
            *v = f(*v);
        }
    }

    /// Elementwise `self + other` with NumPy broadcasting.
    pub fn add(&self, other: &Tensor) -> Result<Self> {
        self.view().zip_with(other.view(), "add", |a, b| a + b)
    }
    /// Elementwise `self − other` with NumPy broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Self> {
        self.view().zip_with(other.view(), "sub", |a, b| a - b)
    }
    /// Elementwise `self · other` with NumPy broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Self> {
        self.view().zip_with(other.view(), "mul", |a, b| a * b)
    }
    /// Elementwise `self / other` with NumPy broadcasting (IEEE semantics: x/0 = ±inf or NaN).
    pub fn div(&self, other: &Tensor) -> Result<Self> {
        self.view().zip_with(other.view(), "div", |a, b| a / b)
    }

    /// `self += other`, where `other` broadcasts to `self`'s shape.
    pub fn add_assign(&mut self, other: &Tensor) -> Result<()> {
        self.zip_assign(other.view(), "add_assign", |a, b| a + b)
    }
    /// `self −= other`, where `other` broadcasts to `self`'s shape.
    pub fn sub_assign(&mut self, other: &Tensor) -> Result<()> {
        self.zip_assign(other.view(), "sub_assign", |a, b| a - b)
    }
    /// `self ·= other`, where `other` broadcasts to `self`'s shape.
    pub fn mul_assign(&mut self, other: &Tensor) -> Result<()> {
        self.zip_assign(other.view(), "mul_assign", |a, b| a * b)
    }
    /// `self /= other`, where `other` broadcasts to `self`'s shape.
    pub fn div_assign(&mut self, other: &Tensor) -> Result<()> {
        self.zip_assign(other.view(), "div_assign", |a, b| a / b)
    }

    /// Adds `value` to every element in place.
    pub fn add_scalar(&mut self, value: f32) {
        self.map_in_place(|v| v + value);
    }

    /// Multiplies every element by `value` in place.
    pub fn scale(&mut self, value: f32) {
        self.map_in_place(|v| v * value);
    }

    /// In-place elementwise operation with `other` broadcast to `self`'s shape.
    pub fn zip_assign(&mut self, other: TensorView<'_>, op: &'static str, f: impl Fn(f32, f32) -> f32) -> Result<()> {
        let target = self.shape.broadcast(other.shape)?;
        if target != self.shape {
            return Err(TensorError::ShapeMismatch { op, left: self.shape.clone(), right: other.shape.clone() });
        }
        if other.shape == &self.shape {
            for (a, &b) in self.data.iter_mut().zip(other.data) {
                *a = f(*a, b);
            }
        } else {
            let strides = other.shape.broadcast_strides(&target);
            for_each_broadcast_offset(&target, &strides, |i, j| {
                self.data[i] = f(self.data[i], other.data[j]);
            });
        }
        Ok(())
    }

    /// Sum of all elements (accumulated in f64, returned as f32).
    pub fn sum(&self) -> f32 {
        self.view().sum()
    }

    /// Mean of all elements (NaN for an empty tensor).
    pub fn mean(&self) -> f32 {
        self.view().mean()
    }

    /// Index of the largest element along `axis` for every position of the other axes, in row-major order of the
    /// remaining axes (their shape is [`Shape::without_axis`]). As NumPy: ties pick the first maximum, and a NaN
    /// counts as the maximum (the first NaN is returned).
    pub fn argmax(&self, axis: usize) -> Result<Vec<usize>> {
        self.view().argmax(axis)
    }

    /// Consumes the tensor, returning its shape and storage.
    pub fn into_parts(self) -> (Shape, AlignedVec) {
        (self.shape, self.data)
    }

    /// Builds a tensor from a shape and aligned storage; an error if the lengths disagree.
    pub fn from_parts(shape: Shape, data: AlignedVec) -> Result<Self> {
        if data.len() != shape.numel() {
            return Err(TensorError::LengthMismatch {
                op: "from_parts",
                expected: shape.numel(),
                got: data.len(),
                shape,
            });
        }
        Ok(Tensor { shape, data })
    }
}

fn reshaped(shape: &Shape, dims: &[usize]) -> Result<Shape> {
    let new = Shape::new(dims)?;
    if new.numel() != shape.numel() {
        return Err(TensorError::ShapeMismatch { op: "reshape", left: shape.clone(), right: new });
    }
    Ok(new)
}

/// Calls `f(out_offset, in_offset)` for every element of `target`, with `in_offset` following `strides`
/// (0 on broadcast axes).
fn for_each_broadcast_offset(target: &Shape, strides: &[usize], mut f: impl FnMut(usize, usize)) {
    let dims = target.dims();
    if target.numel() == 0 {
        return;
    }
    let mut index = vec![0usize; dims.len()];
    let mut src = 0usize;
    for out in 0..target.numel() {
        f(out, src);
        // Increment the multi-index (last axis fastest), keeping `src` in step.
        for axis in (0..dims.len()).rev() {
            index[axis] += 1;
            src += strides[axis];
            if index[axis] < dims[axis] {
                break;
            }
            src -= strides[axis] * dims[axis];
            index[axis] = 0;
        }
    }
}

impl<'a> TensorView<'a> {
    /// A view of `data` with the given shape; an error if the lengths disagree.
    pub fn new(shape: &'a Shape, data: &'a [f32]) -> Result<Self> {
        if data.len() != shape.numel() {
            return Err(TensorError::LengthMismatch {
                op: "view",
                shape: shape.clone(),
                expected: shape.numel(),
                got: data.len(),
            });
        }
        Ok(TensorView { shape, data })
    }

    /// The shape.
    pub fn shape(&self) -> &'a Shape {
        self.shape
    }

    /// The dimensions.
    pub fn dims(&self) -> &'a [usize] {
        self.shape.dims()
    }

    /// The elements, row-major.
    pub fn as_slice(&self) -> &'a [f32] {
        self.data
    }

    /// An owned copy.
    pub fn to_tensor(&self) -> Result<Tensor> {
        Tensor::from_slice(self.shape.dims(), self.data)
    }

    /// Rows `range` of the first (batch) axis (no copy).
    pub fn batch(&self, range: Range<usize>) -> Result<BatchView<'a>> {
        let Some(&batch) = self.shape.dims().first() else {
            return Err(TensorError::Rank { op: "batch", expected: "at least 1", shape: self.shape.clone() });
        };
        if range.start > range.end || range.end > batch {
            return Err(TensorError::BatchRange { start: range.start, end: range.end, batch });
        }
        let row = self.shape.numel().checked_div(batch).unwrap_or(0);
        let mut dims = self.shape.dims().to_vec();
        dims[0] = range.len();
        Ok(BatchView { shape: Shape::new(&dims)?, data: &self.data[range.start * row..range.end * row] })
    }

    /// A new tensor with `f` applied to every element.
    pub fn map(&self, f: impl Fn(f32) -> f32) -> Result<Tensor> {
        let mut out = self.to_tensor()?;
        out.map_in_place(f);
        Ok(out)
    }

    /// Elementwise binary operation with NumPy broadcasting.
    pub fn zip_with(&self, other: TensorView<'_>, op: &'static str, f: impl Fn(f32, f32) -> f32) -> Result<Tensor> {
        let target = self.shape.broadcast(other.shape).map_err(|_| TensorError::ShapeMismatch {
            op,
            left: self.shape.clone(),
            right: other.shape.clone(),
        })?;
        let mut out = Tensor::zeros(target.dims())?;
        if self.shape == other.shape {
            for ((o, &a), &b) in out.data.iter_mut().zip(self.data).zip(other.data) {
                *o = f(a, b);
            }
        } else {
            let sa = self.shape.broadcast_strides(&target);
            let sb = other.shape.broadcast_strides(&target);
            // Walk `a` with its strides; recompute `b`'s offset from the same multi-index.
            let dims = target.dims().to_vec();
            let mut index = vec![0usize; dims.len()];
            let (mut ia, mut ib) = (0usize, 0usize);
            for o in out.data.iter_mut() {
                *o = f(self.data[ia], other.data[ib]);
                for axis in (0..dims.len()).rev() {
                    index[axis] += 1;
                    ia += sa[axis];
                    ib += sb[axis];
                    if index[axis] < dims[axis] {
                        break;
                    }
                    ia -= sa[axis] * dims[axis];
                    ib -= sb[axis] * dims[axis];
                    index[axis] = 0;
                }
            }
        }
        Ok(out)
    }

    /// Sum of all elements (accumulated in f64).
    pub fn sum(&self) -> f32 {
        self.data.iter().map(|&v| f64::from(v)).sum::<f64>() as f32
    }

    /// Mean of all elements (NaN for an empty view).
    pub fn mean(&self) -> f32 {
        (self.data.iter().map(|&v| f64::from(v)).sum::<f64>() / self.data.len() as f64) as f32
    }

    /// See [`Tensor::argmax`].
    pub fn argmax(&self, axis: usize) -> Result<Vec<usize>> {
        let dims = self.shape.dims();
        let Some(&n) = dims.get(axis) else {
            return Err(TensorError::AxisOutOfRange { op: "argmax", axis, rank: dims.len() });
        };
        let outer: usize = dims[..axis].iter().product();
        let inner: usize = dims[axis + 1..].iter().product();
        if n == 0 {
            if outer * inner == 0 {
                return Ok(Vec::new());
            }
            return Err(TensorError::EmptyAxis { op: "argmax", axis, shape: self.shape.clone() });
        }
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| self.data[(o * n + k) * inner + i];
                let mut best = 0usize;
                let mut best_v = at(0);
                if !best_v.is_nan() {
                    for k in 1..n {
                        let v = at(k);
                        if v.is_nan() {
                            best = k;
                            break;
                        }
                        if v > best_v {
                            best = k;
                            best_v = v;
                        }
                    }
                }
                out.push(best);
            }
        }
        Ok(out)
    }
}

/// A batch slice of a tensor (see [`Tensor::batch`]): owns its (small) shape, borrows the data.
#[derive(Clone, PartialEq)]
pub struct BatchView<'a> {
    shape: Shape,
    data: &'a [f32],
}

impl<'a> BatchView<'a> {
    /// As a [`TensorView`].
    pub fn view(&self) -> TensorView<'_> {
        TensorView { shape: &self.shape, data: self.data }
    }
    /// The shape (batch axis shortened to the range).
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    /// The elements, row-major.
    pub fn as_slice(&self) -> &'a [f32] {
        self.data
    }
    /// An owned copy.
    pub fn to_tensor(&self) -> Result<Tensor> {
        Tensor::from_slice(self.shape.dims(), self.data)
    }
    /// The same rows under new dimensions (no copy).
    pub fn reshape(self, dims: &[usize]) -> Result<BatchView<'a>> {
        Ok(BatchView { shape: reshaped(&self.shape, dims)?, data: self.data })
    }
}

/// `t[[i, j]]`: the element at a multi-index, as `Vec` indexing does — it panics when the index is out of bounds
/// or of the wrong rank; [`Tensor::get`] is the checked form.
impl<const N: usize> std::ops::Index<[usize; N]> for Tensor {
    type Output = f32;
    fn index(&self, index: [usize; N]) -> &f32 {
        match self.shape.offset(&index) {
            Some(i) => &self.data[i],
            None => panic!("index {index:?} is out of bounds for a tensor of shape {}", self.shape),
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor(shape={}, ", self.shape)?;
        crate::display::write_flat(f, &self.data, f.precision())?;
        f.write_str(")")
    }
}

impl fmt::Debug for TensorView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TensorView(shape={}, ", self.shape)?;
        crate::display::write_flat(f, self.data, f.precision())?;
        f.write_str(")")
    }
}

impl fmt::Debug for BatchView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.view(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dims: &[usize], data: &[f32]) -> Tensor {
        Tensor::from_slice(dims, data).unwrap()
    }

    #[test]
    fn construction_checks_lengths() {
        assert!(matches!(
            Tensor::from_slice(&[2, 3], &[0.0; 5]),
            Err(TensorError::LengthMismatch { expected: 6, got: 5, .. })
        ));
        assert!(matches!(Tensor::zeros(&[1 << 40, 1 << 40]), Err(TensorError::Overflow { .. })));
        assert!(matches!(Tensor::zeros(&[1 << 50]), Err(TensorError::Alloc { .. })));
        let z = Tensor::zeros(&[3, 0, 2]).unwrap();
        assert!(z.is_empty());
        assert_eq!(Tensor::scalar(2.0).as_slice(), &[2.0]);
        assert_eq!(Tensor::from_fn(&[3], |i| i as f32).unwrap().as_slice(), &[0.0, 1.0, 2.0]);
        let x = Tensor::zeros(&[5, 7]).unwrap();
        assert_eq!(x.as_slice().as_ptr() as usize % 64, 0);
    }

    #[test]
    fn reshape_keeps_storage() {
        let x = Tensor::from_fn(&[2, 3, 4], |i| i as f32).unwrap();
        let ptr = x.as_slice().as_ptr();
        let y = x.reshape(&[6, 4]).unwrap();
        assert_eq!(y.as_slice().as_ptr(), ptr);
        assert_eq!(y.get(&[5, 3]), Some(23.0));
        assert!(matches!(y.clone().reshape(&[5, 5]), Err(TensorError::ShapeMismatch { .. })));
        let mut z = y;
        assert!(z.reshape_in_place(&[7]).is_err());
        assert_eq!(z.dims(), &[6, 4]);
    }

    #[test]
    fn batch_slicing() {
        let x = Tensor::from_fn(&[4, 2, 2, 1], |i| i as f32).unwrap();
        let b = x.batch(1..3).unwrap();
        assert_eq!(b.shape().dims(), &[2, 2, 2, 1]);
        assert_eq!(b.as_slice(), &[4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
        assert_eq!(b.as_slice().as_ptr(), x.as_slice()[4..].as_ptr());
        assert_eq!(x.batch(4..4).unwrap().as_slice().len(), 0);
        assert!(matches!(x.batch(3..5), Err(TensorError::BatchRange { .. })));
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = x.batch(3..2);
        assert!(reversed.is_err());
        assert!(Tensor::scalar(1.0).batch(0..1).is_err());
        let flat = x.batch(2..4).unwrap().reshape(&[2, 4]).unwrap();
        assert_eq!(flat.to_tensor().unwrap().get(&[1, 3]), Some(15.0));
    }

    #[test]
    fn arithmetic_and_broadcasting() {
        let a = t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let row = t(&[3], &[10., 20., 30.]);
        let col = t(&[2, 1], &[100., 200.]);
        assert_eq!(a.add(&row).unwrap().as_slice(), &[11., 22., 33., 14., 25., 36.]);
        assert_eq!(a.sub(&col).unwrap().as_slice(), &[-99., -98., -97., -196., -195., -194.]);
        assert_eq!(a.mul(&a).unwrap().as_slice(), &[1., 4., 9., 16., 25., 36.]);
        assert_eq!(a.div(&Tensor::scalar(2.0)).unwrap().as_slice(), &[0.5, 1., 1.5, 2., 2.5, 3.]);
        let outer = col.mul(&row).unwrap();
        assert_eq!(outer.dims(), &[2, 3]);
        assert_eq!(outer.as_slice(), &[1000., 2000., 3000., 2000., 4000., 6000.]);
        assert!(a.add(&t(&[2], &[1., 2.])).is_err());
        let mut m = a.clone();
        m.add_assign(&row).unwrap();
        m.sub_assign(&row).unwrap();
        m.mul_assign(&col).unwrap();
        m.div_assign(&col).unwrap();
        assert_eq!(m, a);
        // In place, the result shape must be the left operand's.
        assert!(row.clone().add_assign(&a).is_err());
        m.scale(2.0);
        m.add_scalar(1.0);
        assert_eq!(m.as_slice(), &[3., 5., 7., 9., 11., 13.]);
        assert_eq!(a.sum(), 21.0);
        assert_eq!(a.mean(), 3.5);
        assert_eq!(a.map(|v| -v).unwrap().as_slice()[5], -6.0);
    }

    #[test]
    fn argmax_axes_ties_and_nan() {
        let a = t(&[2, 3], &[1., 5., 5., 7., -1., 2.]);
        assert_eq!(a.argmax(1).unwrap(), vec![1, 0]);
        assert_eq!(a.argmax(0).unwrap(), vec![1, 0, 0]);
        assert!(matches!(a.argmax(2), Err(TensorError::AxisOutOfRange { .. })));
        let n = t(&[4], &[1., f32::NAN, 9., f32::NAN]);
        assert_eq!(n.argmax(0).unwrap(), vec![1]);
        let n0 = t(&[2], &[f32::NAN, 1.0]);
        assert_eq!(n0.argmax(0).unwrap(), vec![0]);
        let e = Tensor::zeros(&[2, 0]).unwrap();
        assert!(matches!(e.argmax(1), Err(TensorError::EmptyAxis { .. })));
        assert_eq!(Tensor::zeros(&[0, 3]).unwrap().argmax(1).unwrap(), Vec::<usize>::new());
        let x = Tensor::from_fn(&[2, 3, 4], |i| ((i * 7) % 5) as f32).unwrap();
        assert_eq!(x.argmax(1).unwrap().len(), 8);
    }
}
