//! The error type of the MNIST crate. Every variant names the file (or URL) it is about.

use std::fmt;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// What is wrong with the bytes of an IDX file (see [`crate::idx`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdxError {
    /// Fewer bytes than the header needs.
    #[error("the header is truncated ({got} bytes, need {needed})")]
    ShortHeader {
        /// Bytes needed for the header.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// The first two bytes are not zero.
    #[error("bad magic number: the first two bytes are {0:#04x} {1:#04x}, expected 0x00 0x00")]
    BadMagic(u8, u8),
    /// The third byte is not one of the IDX type codes.
    #[error("unknown element type code {0:#04x} (expected 0x08, 0x09, 0x0b, 0x0c, 0x0d or 0x0e)")]
    UnknownType(u8),
    /// The fourth byte (number of dimensions) is zero.
    #[error("the number of dimensions is 0")]
    ZeroRank,
    /// The product of the dimensions times the element size overflows 64 bits.
    #[error("the product of the dimensions overflows")]
    Overflow,
    /// The header announces more data than the reader's size cap.
    #[error("the header announces {bytes} bytes of data, more than the limit of {limit} bytes")]
    TooLarge {
        /// Bytes announced.
        bytes: u64,
        /// The cap.
        limit: u64,
    },
    /// The data section is shorter than the header announces.
    #[error("the data is truncated: the header announces {expected} bytes, the file holds {got}")]
    Truncated {
        /// Bytes announced.
        expected: u64,
        /// Bytes present.
        got: u64,
    },
    /// The data section is longer than the header announces.
    #[error("the file has trailing data: the header announces {expected} bytes, the file holds more ({got})")]
    TrailingData {
        /// Bytes announced.
        expected: u64,
        /// Bytes present (at least this many).
        got: u64,
    },
}

/// Everything that can go wrong finding, reading, validating or downloading a dataset.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MnistError {
    /// Reading a file failed (missing, unreadable, …).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file is not a valid IDX file.
    #[error("{}: not a valid IDX file: {kind}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        kind: IdxError,
    },
    /// The file starts like gzip but does not decompress.
    #[error("{}: corrupt gzip data: {source}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// A valid IDX file that is not what the dataset needs (element type, image size, label range, counts).
    #[error("{}: {what}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A file's SHA-256 (of its decompressed content) is not the published one.
    #[error("{}: SHA-256 of the decompressed data is {got}, expected {expected} (corrupt or wrong file)", path.display())]
    Checksum {
        /// The file (or the URL it came from).
        path: PathBuf,
        /// The published digest.
        expected: String,
        /// The digest computed.
        got: String,
    },
    /// Fetching a file from the mirror failed.
    #[error("downloading {url} to {}: {reason}", path.display())]
    Download {
        /// The URL.
        url: String,
        /// Where it was to be stored.
        path: PathBuf,
        /// What went wrong (HTTP status, connection error, …).
        reason: String,
    },
    /// The dataset is not in any of the places searched.
    #[error("{dataset} not found; looked in:\n{}\n{hint}", Searched(searched))]
    NotFound {
        /// The dataset's name.
        dataset: &'static str,
        /// The directories searched, each with what was missing there.
        searched: Vec<(PathBuf, String)>,
        /// How to get the data.
        hint: String,
    },
    /// The dataset is in none of the places searched and downloading it failed (e.g. offline).
    #[error("{dataset} not found; looked in:\n{}\nthen downloading failed: {download}\n{hint}", Searched(searched))]
    Unavailable {
        /// The dataset's name.
        dataset: &'static str,
        /// The directories searched, each with what was missing there.
        searched: Vec<(PathBuf, String)>,
        /// Why the download failed.
        download: Box<MnistError>,
        /// How to supply the files by hand.
        hint: String,
    },
}

struct Searched<'a>(&'a [(PathBuf, String)]);

impl fmt::Display for Searched<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (dir, why)) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {}: {why}", dir.display())?;
        }
        Ok(())
    }
}

impl MnistError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        MnistError::Io { path: path.into(), source }
    }
    pub(crate) fn format(path: impl Into<PathBuf>, kind: IdxError) -> Self {
        MnistError::Format { path: path.into(), kind }
    }
    pub(crate) fn invalid(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        MnistError::Invalid { path: path.into(), what: what.into() }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = MnistError> = std::result::Result<T, E>;
