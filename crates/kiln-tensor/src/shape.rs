//! [`Shape`]: the dimensions of a tensor, any rank, row-major (last axis contiguous). Images are NHWC.

use std::fmt;

use kiln_kernels::geometry::checked_elements;

use crate::error::{Result, TensorError};

/// Dimensions of a tensor. Rank 0 is a scalar (one element). The element count is validated at construction,
/// so [`Shape::numel`] never overflows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    dims: Vec<usize>,
    numel: usize,
}

impl Shape {
    /// A shape with the given dimensions; an error if their product overflows the address space.
    ///
    /// The product of the *non-zero* dimensions is bounded too, so that strides and partial products of an empty
    /// shape such as `(0, 2⁶², 2⁶²)` cannot overflow either.
    pub fn new(dims: &[usize]) -> Result<Self> {
        let overflow = || TensorError::Overflow { dims: dims.to_vec() };
        let nonzero: Vec<usize> = dims.iter().map(|&d| d.max(1)).collect();
        checked_elements("shape", "elements", &nonzero).map_err(|_| overflow())?;
        let numel = checked_elements("shape", "elements", dims).map_err(|_| overflow())?;
        Ok(Shape { dims: dims.to_vec(), numel })
    }

    /// The rank-0 shape `()`.
    pub fn scalar() -> Self {
        Shape { dims: Vec::new(), numel: 1 }
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// Number of elements (1 for a scalar, 0 if any dimension is 0).
    pub fn numel(&self) -> usize {
        self.numel
    }

    /// Length of `axis`, or an error if `axis >= rank`.
    pub fn dim(&self, axis: usize) -> Result<usize> {
        self.dims.get(axis).copied().ok_or(TensorError::AxisOutOfRange { op: "dim", axis, rank: self.rank() })
    }

    /// Row-major strides in elements (the last axis has stride 1).
    pub fn strides(&self) -> Vec<usize> {
        let mut strides = vec![1usize; self.rank()];
        for axis in (0..self.rank().saturating_sub(1)).rev() {
            strides[axis] = strides[axis + 1] * self.dims[axis + 1];
        }
        strides
    }

    /// Flat row-major offset of a multi-index, or `None` if it has the wrong rank or is out of bounds.
    pub fn offset(&self, index: &[usize]) -> Option<usize> {
        if index.len() != self.rank() {
            return None;
        }
        let mut off = 0usize;
        for (&i, &d) in index.iter().zip(&self.dims) {
            if i >= d {
                return None;
            }
            off = off * d + i;
        }
        Some(off)
    }

    /// The shape with `axis` removed (the shape of a reduction over `axis`).
    pub fn without_axis(&self, axis: usize) -> Result<Shape> {
        if axis >= self.rank() {
            return Err(TensorError::AxisOutOfRange { op: "without_axis", axis, rank: self.rank() });
        }
        let mut dims = self.dims.clone();
        dims.remove(axis);
        Shape::new(&dims)
    }

    /// The NumPy broadcast of two shapes: aligned on the right, each pair of dimensions equal or one of them 1.
    pub fn broadcast(&self, other: &Shape) -> Result<Shape> {
        let rank = self.rank().max(other.rank());
        let mut dims = vec![0usize; rank];
        for (i, d) in dims.iter_mut().enumerate() {
            let a = broadcast_dim(self, rank, i);
            let b = broadcast_dim(other, rank, i);
            *d = match (a, b) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => {
                    return Err(TensorError::ShapeMismatch {
                        op: "broadcast",
                        left: self.clone(),
                        right: other.clone(),
                    });
                }
            };
        }
        Shape::new(&dims)
    }

    /// Strides for reading a tensor of this shape as if it had the (broadcast) shape `target`: 0 on broadcast axes.
    /// The caller guarantees `self` broadcasts to `target`.
    pub(crate) fn broadcast_strides(&self, target: &Shape) -> Vec<usize> {
        let own = self.strides();
        let pad = target.rank() - self.rank();
        (0..target.rank()).map(|i| if i < pad || self.dims[i - pad] == 1 { 0 } else { own[i - pad] }).collect()
    }
}

fn broadcast_dim(shape: &Shape, rank: usize, i: usize) -> usize {
    let pad = rank - shape.rank();
    if i < pad { 1 } else { shape.dims[i - pad] }
}

impl fmt::Display for Shape {
    /// Python tuple notation, as Keras and NumPy print shapes: `(60000, 28, 28, 1)`, `(10,)`, `()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, d) in self.dims.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        if self.dims.len() == 1 {
            f.write_str(",")?;
        }
        f.write_str(")")
    }
}

impl TryFrom<&[usize]> for Shape {
    type Error = TensorError;
    fn try_from(dims: &[usize]) -> Result<Self> {
        Shape::new(dims)
    }
}

impl<const N: usize> TryFrom<[usize; N]> for Shape {
    type Error = TensorError;
    fn try_from(dims: [usize; N]) -> Result<Self> {
        Shape::new(&dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        let s = Shape::new(&[2, 3, 4]).unwrap();
        assert_eq!((s.rank(), s.numel()), (3, 24));
        assert_eq!(s.strides(), vec![12, 4, 1]);
        assert_eq!(s.offset(&[1, 2, 3]), Some(23));
        assert_eq!(s.offset(&[1, 3, 0]), None);
        assert_eq!(s.offset(&[1, 2]), None);
        assert_eq!(s.to_string(), "(2, 3, 4)");
        assert_eq!(Shape::new(&[10]).unwrap().to_string(), "(10,)");
        assert_eq!(Shape::scalar().to_string(), "()");
        assert_eq!(Shape::scalar().numel(), 1);
        assert_eq!(Shape::new(&[3, 0]).unwrap().numel(), 0);
        assert!(s.dim(3).is_err());
        assert_eq!(s.without_axis(1).unwrap().dims(), &[2, 4]);
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(matches!(Shape::new(&[usize::MAX, 2]), Err(TensorError::Overflow { .. })));
        assert!(Shape::new(&[1 << 40, 1 << 40]).is_err());
        // Empty, yet its strides would overflow: rejected (found by tests/no_panic.rs).
        assert!(Shape::new(&[0, usize::MAX >> 1, usize::MAX >> 1]).is_err());
        assert_eq!(Shape::new(&[0, 1 << 20, 1 << 20]).unwrap().strides(), vec![1 << 40, 1 << 20, 1]);
    }

    #[test]
    fn broadcasting() {
        let a = Shape::new(&[4, 1, 3]).unwrap();
        let b = Shape::new(&[5, 1]).unwrap();
        assert_eq!(a.broadcast(&b).unwrap().dims(), &[4, 5, 3]);
        assert_eq!(b.broadcast_strides(&Shape::new(&[4, 5, 3]).unwrap()), vec![0, 1, 0]);
        assert!(Shape::new(&[2, 3]).unwrap().broadcast(&Shape::new(&[4]).unwrap()).is_err());
        assert_eq!(Shape::scalar().broadcast(&a).unwrap(), a);
    }
}
