//! [`Dims`]: a tensor shape stored inline (no heap), so recording a node never allocates.

use std::fmt;

use crate::error::{AutogradError, Result};

/// The largest rank a tape value may have (NHWC images need 4).
pub const MAX_RANK: usize = 6;

/// Dimensions of a tape value, row-major, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Dims {
    d: [usize; MAX_RANK],
    rank: u8,
}

impl Dims {
    /// The dimensions `dims`; an error beyond [`MAX_RANK`] or if the element count overflows.
    pub fn new(dims: &[usize]) -> Result<Self> {
        if dims.len() > MAX_RANK {
            return Err(AutogradError::Rank { rank: dims.len(), max: MAX_RANK });
        }
        kiln_kernels::geometry::checked_elements("dims", "elements", dims)?;
        let mut d = [0; MAX_RANK];
        d[..dims.len()].copy_from_slice(dims);
        Ok(Dims { d, rank: dims.len() as u8 })
    }

    /// The scalar shape `()` (one element).
    pub const fn scalar() -> Self {
        Dims { d: [0; MAX_RANK], rank: 0 }
    }

    /// The dimensions as a slice.
    pub fn as_slice(&self) -> &[usize] {
        &self.d[..usize::from(self.rank)]
    }

    /// The rank.
    pub fn rank(&self) -> usize {
        usize::from(self.rank)
    }

    /// Number of elements (1 for a scalar); cannot overflow (checked at construction).
    pub fn numel(&self) -> usize {
        self.as_slice().iter().product()
    }

    /// Dimension `i` (0 beyond the rank).
    pub fn get(&self, i: usize) -> usize {
        if i < self.rank() { self.d[i] } else { 0 }
    }

    /// The last dimension (1 for a scalar).
    pub fn last(&self) -> usize {
        self.as_slice().last().copied().unwrap_or(1)
    }
}

impl fmt::Display for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(")?;
        for (i, d) in self.as_slice().iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        if self.rank == 1 {
            write!(f, ",")?;
        }
        write!(f, ")")
    }
}

impl fmt::Debug for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
