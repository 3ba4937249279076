//! Where the buffers an optimizer step streams together sit within a 4 KiB page.
//!
//! One step reads a parameter's value, one gradient per replica and its state slots, and writes the value and the
//! state. Large buffers come from `mmap` at the same offset within a page, so these streams alias in the low 12
//! address bits and every store stalls the loads that follow it (4K aliasing); on a Zen 4 that made the flagship's
//! RMSprop pass 1.6× slower. Each stream gets its own page offset instead, 768 bytes apart.

use std::collections::TryReserveError;

use crate::buffer::AlignedVec;

/// One of the buffers an optimizer step streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The parameter's value.
    Value,
    /// The gradient of data-parallel replica `r` (0 or 1).
    Gradient(usize),
    /// Optimizer state slot `s` (RMSprop's `v`; Adam's `m` and `v`).
    State(usize),
}

impl Stream {
    /// The stream's offset within a page, in bytes: value 0, gradients 768 and 1536, state 2304 and 3072.
    pub fn page_offset(self) -> usize {
        768 * match self {
            Stream::Value => 0,
            Stream::Gradient(r) => 1 + r % 2,
            Stream::State(s) => 3 + s % 2,
        }
    }
}

/// Buffers shorter than this (in floats) stay in cache between steps and are allocated plainly.
pub const STAGGER_MIN: usize = 16 * 1024;

/// `len` zeros for `stream`: at the stream's page offset when the buffer is large enough to stream from memory.
pub fn stream_buffer(len: usize, stream: Stream) -> Result<AlignedVec, TryReserveError> {
    if len >= STAGGER_MIN {
        AlignedVec::try_zeros_at_page_offset(len, stream.page_offset())
    } else {
        AlignedVec::try_zeros(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_apart_in_the_page() {
        let all = [Stream::Value, Stream::Gradient(0), Stream::Gradient(1), Stream::State(0), Stream::State(1)];
        for a in all {
            for b in all.iter().filter(|&&b| b != a) {
                let d = (a.page_offset() + 4096 - b.page_offset()) % 4096;
                assert!((768..=4096 - 768).contains(&d), "{a:?} vs {b:?}");
            }
            let v = stream_buffer(STAGGER_MIN, a).unwrap();
            assert_eq!(v.page_offset(), a.page_offset());
        }
        assert_eq!(stream_buffer(10, Stream::State(1)).unwrap().len(), 10);
    }
}
