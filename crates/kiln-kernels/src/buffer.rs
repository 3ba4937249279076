//! [`AlignedVec`]: growable `f32` storage whose first element is aligned to 64 bytes (one cache line, one AVX-512
//! register), built without `unsafe` on top of `Vec` of 64-byte blocks and `bytemuck`'s checked casts.

use std::collections::TryReserveError;
use std::fmt;
use std::ops::{Deref, DerefMut};

use bytemuck::{Pod, Zeroable};

/// Floats per 64-byte block.
const LANES: usize = 16;

/// One cache line of floats. `repr(C, align(64))` with no padding, so it is `Pod` and can be viewed as `[f32; 16]`.
#[derive(Clone, Copy, PartialEq, Pod, Zeroable)]
#[repr(C, align(64))]
struct Block([f32; LANES]);

/// A vector of `f32` whose data pointer is aligned to [`AlignedVec::ALIGN`] bytes.
///
/// Capacity is kept in whole 64-byte blocks; the floats past [`len`](AlignedVec::len) in the last block are
/// zero and never exposed. Construction through the `try_*` functions reports allocation failure as an error
/// instead of aborting, so a size computed from user input cannot bring the process down.
#[derive(Clone, Default)]
pub struct AlignedVec {
    blocks: Vec<Block>,
    /// Blocks skipped at the front so the data starts at a chosen offset within a 4 KiB page
    /// ([`AlignedVec::try_zeros_at_page_offset`]).
    start: usize,
    len: usize,
}

/// Blocks per 4 KiB page.
const PAGE_BLOCKS: usize = 4096 / 64;

impl AlignedVec {
    /// Alignment in bytes of the first element.
    pub const ALIGN: usize = 64;

    /// An empty vector (no allocation).
    pub const fn new() -> Self {
        AlignedVec { blocks: Vec::new(), start: 0, len: 0 }
    }

    /// `len` zeros starting `page_offset` bytes (rounded down to 64) into a 4 KiB page.
    ///
    /// Why: a streaming kernel over several large buffers (an optimizer step reads weights, two gradients and its
    /// state, and writes two of them) stalls when a load's address matches a pending store's in the low 12 bits
    /// (4K aliasing). Large allocations come from `mmap` at the same offset within a page, so the streams alias
    /// constantly; giving each stream its own page offset keeps them ≥ 768 bytes apart. Costs ≤ 4 KiB per buffer.
    pub fn try_zeros_at_page_offset(len: usize, page_offset: usize) -> Result<Self, TryReserveError> {
        let mut v = AlignedVec::new();
        v.blocks.try_reserve_exact(len.div_ceil(LANES) + PAGE_BLOCKS)?;
        let here = (v.blocks.as_ptr() as usize % 4096) / 64;
        let want = (page_offset % 4096) / 64;
        v.start = (want + PAGE_BLOCKS - here) % PAGE_BLOCKS;
        v.blocks.resize(v.start, Block([0.0; LANES]));
        v.try_resize(len, 0.0)?;
        Ok(v)
    }

    /// This vector's data offset within its 4 KiB page, in bytes (see
    /// [`AlignedVec::try_zeros_at_page_offset`]).
    pub fn page_offset(&self) -> usize {
        self.as_ptr() as usize % 4096
    }

    /// `len` zeros, or an error if the allocation fails.
    pub fn try_zeros(len: usize) -> Result<Self, TryReserveError> {
        Self::try_filled(len, 0.0)
    }

    /// `len` copies of `value`, or an error if the allocation fails.
    pub fn try_filled(len: usize, value: f32) -> Result<Self, TryReserveError> {
        let mut v = AlignedVec::new();
        v.try_resize(len, value)?;
        Ok(v)
    }

    /// A copy of `data`, or an error if the allocation fails.
    pub fn try_from_slice(data: &[f32]) -> Result<Self, TryReserveError> {
        let mut v = AlignedVec::new();
        v.try_resize(data.len(), 0.0)?;
        v.copy_from_slice(data);
        Ok(v)
    }

    /// `len` zeros. Aborts like `Vec` if memory is exhausted: use [`AlignedVec::try_zeros`] for sizes that come
    /// from user input.
    pub fn zeros(len: usize) -> Self {
        let mut v = AlignedVec::new();
        v.resize(len, 0.0);
        v
    }

    /// Number of floats.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no floats.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of floats that fit without reallocating.
    pub fn capacity(&self) -> usize {
        (self.blocks.capacity() - self.start) * LANES
    }

    /// Resizes to `len`, filling new elements with `value`; reports allocation failure.
    pub fn try_resize(&mut self, len: usize, value: f32) -> Result<(), TryReserveError> {
        let old = self.len;
        let blocks = self.start + len.div_ceil(LANES);
        if blocks > self.blocks.len() {
            self.blocks.try_reserve_exact(blocks - self.blocks.len())?;
        }
        // Zero the tail of the last block when shrinking, so hidden floats stay zero.
        self.blocks.resize(blocks, Block([0.0; LANES]));
        self.len = len;
        let all: &mut [f32] = bytemuck::cast_slice_mut(&mut self.blocks[self.start..]);
        if len > old {
            all[old..len].fill(value);
        }
        all[len..].fill(0.0);
        Ok(())
    }

    /// Resizes to `len`, filling new elements with `value`. Aborts like `Vec` if memory is exhausted.
    pub fn resize(&mut self, len: usize, value: f32) {
        if let Err(err) = self.try_resize(len, value) {
            panic!("AlignedVec::resize({len}): {err}");
        }
    }

    /// Removes every element, keeping the allocation.
    pub fn clear(&mut self) {
        self.blocks.clear();
        self.start = 0;
        self.len = 0;
    }

    /// The floats as a slice.
    pub fn as_slice(&self) -> &[f32] {
        &bytemuck::cast_slice(&self.blocks[self.start..])[..self.len]
    }

    /// The floats as a mutable slice.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut bytemuck::cast_slice_mut(&mut self.blocks[self.start..])[..self.len]
    }
}

impl Deref for AlignedVec {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        self.as_slice()
    }
}

impl DerefMut for AlignedVec {
    fn deref_mut(&mut self) -> &mut [f32] {
        self.as_mut_slice()
    }
}

impl PartialEq for AlignedVec {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl fmt::Debug for AlignedVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl FromIterator<f32> for AlignedVec {
    fn from_iter<I: IntoIterator<Item = f32>>(iter: I) -> Self {
        let data: Vec<f32> = iter.into_iter().collect();
        let mut v = AlignedVec::zeros(data.len());
        v.copy_from_slice(&data);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_sized() {
        for len in [0usize, 1, 15, 16, 17, 100, 1000] {
            let v = AlignedVec::try_filled(len, 2.5).unwrap();
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 2.5));
            if len > 0 {
                assert_eq!(v.as_ptr() as usize % AlignedVec::ALIGN, 0);
            }
        }
    }

    #[test]
    fn resize_keeps_prefix_and_hidden_tail_zero() {
        let mut v = AlignedVec::try_from_slice(&[1.0, 2.0, 3.0]).unwrap();
        v.resize(20, 7.0);
        assert_eq!(&v[..4], &[1.0, 2.0, 3.0, 7.0]);
        v.resize(2, 0.0);
        assert_eq!(v.as_slice(), &[1.0, 2.0]);
        v.resize(4, 9.0);
        // Elements re-exposed after a shrink get the fill value, not stale data.
        assert_eq!(v.as_slice(), &[1.0, 2.0, 9.0, 9.0]);
    }

    #[test]
    fn page_offsets_are_honoured_and_survive_resizing() {
        for off in [0usize, 64, 768, 1536, 4032, 4096 + 128] {
            let mut v = AlignedVec::try_zeros_at_page_offset(100_000, off).unwrap();
            assert_eq!((v.len(), v.page_offset()), (100_000, off % 4096));
            assert!(v.iter().all(|&x| x == 0.0));
            v[99_999] = 1.0;
            v.resize(50, 3.0);
            v.resize(60, 4.0);
            assert_eq!(v.page_offset(), off % 4096);
            assert_eq!(&v[48..], &[0.0, 0.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]);
            assert!(v.capacity() >= 100_000);
            v.clear();
            assert!(v.is_empty());
        }
    }

    #[test]
    fn huge_request_is_an_error_not_an_abort() {
        assert!(AlignedVec::try_zeros(usize::MAX / 2).is_err());
    }

    #[test]
    fn collect_and_eq() {
        let v: AlignedVec = (0..40).map(|i| i as f32).collect();
        assert_eq!(v.len(), 40);
        assert_eq!(v[39], 39.0);
        assert_eq!(v.clone(), v);
    }
}
