//! The IDX file format (LeCun et al., the MNIST distribution format), complete.
//!
//! Layout: two zero bytes; a type code (`0x08` u8, `0x09` i8, `0x0B` i16, `0x0C` i32, `0x0D` f32, `0x0E` f64); the
//! number of dimensions `r` (1–255); `r` big-endian `u32` sizes; then the elements, row-major, big-endian.
//!
//! Everything is validated **before** anything is allocated: magic, type code, rank, the product of the
//! dimensions (overflow-checked), the size cap ([`DEFAULT_LIMIT`]) and — for raw files — the actual payload
//! length. Gzip input is decompressed into a buffer that grows only with data actually decoded (capped at the
//! announced size plus one byte), so a lying header cannot make the reader allocate more than the real data.
//! Raw files are memory-mapped (zero copy); see [`IdxArray::open`] for the contract that comes with that.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use memmap2::Mmap;

use crate::error::{IdxError, MnistError, Result};

/// Largest data section accepted by default: 1 GiB (MNIST's training images are 47 MB).
pub const DEFAULT_LIMIT: u64 = 1 << 30;

/// The element type of an IDX file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdxType {
    /// `0x08`: unsigned byte.
    U8,
    /// `0x09`: signed byte.
    I8,
    /// `0x0B`: big-endian i16.
    I16,
    /// `0x0C`: big-endian i32.
    I32,
    /// `0x0D`: big-endian f32.
    F32,
    /// `0x0E`: big-endian f64.
    F64,
}

impl IdxType {
    /// The type for a code byte, if it is one.
    pub fn from_code(code: u8) -> Option<IdxType> {
        Some(match code {
            0x08 => IdxType::U8,
            0x09 => IdxType::I8,
            0x0B => IdxType::I16,
            0x0C => IdxType::I32,
            0x0D => IdxType::F32,
            0x0E => IdxType::F64,
            _ => return None,
        })
    }

    /// The code byte.
    pub fn code(self) -> u8 {
        match self {
            IdxType::U8 => 0x08,
            IdxType::I8 => 0x09,
            IdxType::I16 => 0x0B,
            IdxType::I32 => 0x0C,
            IdxType::F32 => 0x0D,
            IdxType::F64 => 0x0E,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }
}

/// A parsed and validated IDX header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxHeader {
    dtype: IdxType,
    dims: Vec<usize>,
    payload_len: u64,
}

impl IdxHeader {
    /// Parses the header at the start of `bytes` (which may hold more than the header). Checks the magic, type
    /// code, rank, that the product of the dimensions does not overflow, and that the payload fits `limit`.
    pub fn parse(bytes: &[u8], limit: u64) -> Result<IdxHeader, IdxError> {
        if bytes.len() < 4 {
            return Err(IdxError::ShortHeader { needed: 4, got: bytes.len() });
        }
        let (dtype, rank) = check_prefix([bytes[0], bytes[1], bytes[2], bytes[3]])?;
        let needed = 4 + 4 * rank;
        if bytes.len() < needed {
            return Err(IdxError::ShortHeader { needed, got: bytes.len() });
        }
        let dims: Vec<usize> =
            bytes[4..needed].chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
        let payload_len =
            dims.iter().try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64)).ok_or(IdxError::Overflow)?;
        if payload_len > limit {
            return Err(IdxError::TooLarge { bytes: payload_len, limit });
        }
        Ok(IdxHeader { dtype, dims, payload_len })
    }

    /// The element type.
    pub fn dtype(&self) -> IdxType {
        self.dtype
    }
    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }
    /// Bytes of the header: `4 + 4·rank`.
    pub fn len(&self) -> usize {
        4 + 4 * self.dims.len()
    }
    /// Always false: a header has at least 8 bytes. (Present for API symmetry with `len`.)
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Number of elements (product of the dimensions).
    pub fn numel(&self) -> usize {
        // Bounded by payload_len ≤ limit, so it fits.
        (self.payload_len / self.dtype.size() as u64) as usize
    }
    /// Bytes of the data section.
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }
}

/// Checks the first four header bytes: magic, type code, rank ≥ 1.
fn check_prefix(b: [u8; 4]) -> Result<(IdxType, usize), IdxError> {
    if b[0] != 0 || b[1] != 0 {
        return Err(IdxError::BadMagic(b[0], b[1]));
    }
    let dtype = IdxType::from_code(b[2]).ok_or(IdxError::UnknownType(b[2]))?;
    match usize::from(b[3]) {
        0 => Err(IdxError::ZeroRank),
        rank => Ok((dtype, rank)),
    }
}

enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

/// An IDX array: header plus data, memory-mapped from a raw file or decompressed from gzip.
pub struct IdxArray {
    header: IdxHeader,
    storage: Storage,
    path: PathBuf,
}

impl std::fmt::Debug for IdxArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdxArray")
            .field("path", &self.path)
            .field("header", &self.header)
            .field("mapped", &matches!(self.storage, Storage::Mapped(_)))
            .finish()
    }
}

fn is_gzip(prefix: &[u8]) -> bool {
    prefix.len() >= 2 && prefix[0] == 0x1f && prefix[1] == 0x8b
}

fn check_payload(path: &Path, header: &IdxHeader, available: u64) -> Result<()> {
    let expected = header.payload_len();
    if available < expected {
        return Err(MnistError::format(path, IdxError::Truncated { expected, got: available }));
    }
    if available > expected {
        return Err(MnistError::format(path, IdxError::TrailingData { expected, got: available }));
    }
    Ok(())
}

impl IdxArray {
    /// Opens an IDX file, raw or gzip-compressed (recognised by its content, not its name), with the default size
    /// cap.
    ///
    /// A raw file is memory-mapped. **Contract:** the file must not be truncated or modified in place while the
    /// array lives (the mapping would observe the change; truncation would fault on access). Replacing it by a
    /// rename, as Kiln's downloader does, is safe: the mapping keeps the old file. If you cannot guarantee this, use
    /// [`IdxArray::read`], which copies.
    pub fn open(path: impl AsRef<Path>) -> Result<IdxArray> {
        Self::open_with_limit(path, DEFAULT_LIMIT)
    }

    /// [`IdxArray::open`] with an explicit cap on the data section, in bytes.
    pub fn open_with_limit(path: impl AsRef<Path>, limit: u64) -> Result<IdxArray> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(|e| MnistError::io(path, e))?;
        let mut prefix = [0u8; 2];
        let n = read_up_to(&mut file, &mut prefix).map_err(|e| MnistError::io(path, e))?;
        if is_gzip(&prefix[..n]) {
            let file = File::open(path).map_err(|e| MnistError::io(path, e))?;
            let compressed = file.metadata().map_err(|e| MnistError::io(path, e))?.len();
            return Self::from_gzip_reader(file, compressed, path, limit);
        }
        let map = map_file(&file).map_err(|e| MnistError::io(path, e))?;
        Self::from_storage(Storage::Mapped(map), path, limit)
    }

    /// Like [`IdxArray::open`] but reads raw files into memory instead of mapping them.
    pub fn read(path: impl AsRef<Path>) -> Result<IdxArray> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| MnistError::io(path, e))?;
        Self::from_bytes(bytes, path, DEFAULT_LIMIT)
    }

    /// Parses an in-memory IDX file, raw or gzip; `name` is used in error messages.
    pub fn from_bytes(bytes: Vec<u8>, name: impl AsRef<Path>, limit: u64) -> Result<IdxArray> {
        let name = name.as_ref();
        if is_gzip(&bytes) {
            let compressed = bytes.len() as u64;
            return Self::from_gzip_reader(io::Cursor::new(bytes), compressed, name, limit);
        }
        Self::from_storage(Storage::Owned(bytes), name, limit)
    }

    fn from_storage(storage: Storage, path: &Path, limit: u64) -> Result<IdxArray> {
        let bytes: &[u8] = match &storage {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        };
        let header = IdxHeader::parse(bytes, limit).map_err(|k| MnistError::format(path, k))?;
        check_payload(path, &header, (bytes.len() - header.len()) as u64)?;
        Ok(IdxArray { header, storage, path: path.to_path_buf() })
    }

    fn from_gzip_reader(reader: impl Read, compressed_len: u64, path: &Path, limit: u64) -> Result<IdxArray> {
        let gz_err = |e: io::Error| MnistError::Gzip { path: path.to_path_buf(), source: e };
        let mut decoder = MultiGzDecoder::new(io::BufReader::new(reader));
        // Header: 4 bytes, then 4 per dimension.
        let mut head = vec![0u8; 4];
        let got = read_up_to(&mut decoder, &mut head).map_err(gz_err)?;
        if got < 4 {
            return Err(MnistError::format(path, IdxError::ShortHeader { needed: 4, got }));
        }
        // Validate magic, type and rank before reading the dimensions.
        let (_, rank) = check_prefix([head[0], head[1], head[2], head[3]]).map_err(|k| MnistError::format(path, k))?;
        head.resize(4 + 4 * rank, 0);
        let got = read_up_to(&mut decoder, &mut head[4..]).map_err(gz_err)?;
        if got < 4 * rank {
            return Err(MnistError::format(path, IdxError::ShortHeader { needed: 4 + 4 * rank, got: 4 + got }));
        }
        let header = IdxHeader::parse(&head, limit).map_err(|k| MnistError::format(path, k))?;
        let expected = header.payload_len();
        // Grow with the data actually decoded: reserve at most what the compressed size could plausibly expand to,
        // and never read past one byte beyond the announced size.
        let plausible = compressed_len.saturating_mul(8).min(expected.saturating_add(1 + head.len() as u64));
        let mut data = head;
        data.try_reserve(plausible as usize).map_err(|e| MnistError::io(path, io::Error::other(e)))?;
        (&mut decoder).take(expected + 1).read_to_end(&mut data).map_err(gz_err)?;
        check_payload(path, &header, (data.len() - header.len()) as u64)?;
        Ok(IdxArray { header, storage: Storage::Owned(data), path: path.to_path_buf() })
    }

    /// The header.
    pub fn header(&self) -> &IdxHeader {
        &self.header
    }
    /// The element type.
    pub fn dtype(&self) -> IdxType {
        self.header.dtype
    }
    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.header.dims
    }
    /// The file this array came from (or the name given to [`IdxArray::from_bytes`]).
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Whether the data is memory-mapped (raw file) rather than held in memory (gzip, or [`IdxArray::read`]).
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_))
    }

    /// The raw (big-endian) bytes of the data section.
    pub fn payload(&self) -> &[u8] {
        let all: &[u8] = match &self.storage {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        };
        &all[self.header.len()..]
    }

    /// The elements as bytes, if the type is `u8`.
    pub fn as_u8(&self) -> Option<&[u8]> {
        (self.dtype() == IdxType::U8).then(|| self.payload())
    }

    /// Every element converted to `f64` (exact for all IDX types).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let p = self.payload();
        match self.dtype() {
            IdxType::U8 => p.iter().map(|&b| f64::from(b)).collect(),
            IdxType::I8 => p.iter().map(|&b| f64::from(b as i8)).collect(),
            IdxType::I16 => p.chunks_exact(2).map(|c| f64::from(i16::from_be_bytes([c[0], c[1]]))).collect(),
            IdxType::I32 => {
                p.chunks_exact(4).map(|c| f64::from(i32::from_be_bytes([c[0], c[1], c[2], c[3]]))).collect()
            }
            IdxType::F32 => {
                p.chunks_exact(4).map(|c| f64::from(f32::from_be_bytes([c[0], c[1], c[2], c[3]]))).collect()
            }
            IdxType::F64 => p
                .chunks_exact(8)
                .map(|c| f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        }
    }
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Memory-maps a whole file read-only. The crate's only `unsafe` code.
#[allow(unsafe_code)]
fn map_file(file: &File) -> io::Result<Mmap> {
    // SAFETY: `Mmap::map` is unsafe because the mapped file could be changed by another process while mapped,
    // which would change (or, if truncated, invalidate) memory we hand out as `&[u8]`. `IdxArray::open` documents
    // this contract for callers; Kiln itself only ever replaces dataset files by atomic rename, which leaves an
    // existing mapping on the old inode. The mapping is read-only and lives exactly as long as the `IdxArray`.
    unsafe { Mmap::map(file) }
}

/// Encodes an IDX file (raw, not compressed) from a header and big-endian element bytes. Useful for writing
/// synthetic datasets and tests.
pub fn encode(dtype: IdxType, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + payload.len());
    out.extend([0, 0, dtype.code(), dims.len() as u8]);
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn every_type_decodes() {
        let cases: [(IdxType, Vec<u8>, Vec<f64>); 6] = [
            (IdxType::U8, vec![0, 255], vec![0.0, 255.0]),
            (IdxType::I8, vec![0x80, 0x7f], vec![-128.0, 127.0]),
            (IdxType::I16, vec![0xff, 0xfe, 0x01, 0x00], vec![-2.0, 256.0]),
            (IdxType::I32, [(-5i32).to_be_bytes(), 70000i32.to_be_bytes()].concat(), vec![-5.0, 70000.0]),
            (IdxType::F32, [1.5f32.to_be_bytes(), (-0.25f32).to_be_bytes()].concat(), vec![1.5, -0.25]),
            (IdxType::F64, [1e300f64.to_be_bytes(), 2.0f64.to_be_bytes()].concat(), vec![1e300, 2.0]),
        ];
        for (dtype, payload, expected) in cases {
            let raw = encode(dtype, &[2], &payload);
            for bytes in [raw.clone(), gz(&raw)] {
                let a = IdxArray::from_bytes(bytes, "t.idx", DEFAULT_LIMIT).unwrap();
                assert_eq!(a.dtype(), dtype);
                assert_eq!(a.dims(), &[2]);
                assert_eq!(a.to_f64_vec(), expected);
            }
        }
    }

    #[test]
    fn header_errors() {
        let p = |b: &[u8]| IdxHeader::parse(b, DEFAULT_LIMIT);
        assert_eq!(p(&[0, 0, 8]), Err(IdxError::ShortHeader { needed: 4, got: 3 }));
        assert_eq!(p(&[1, 0, 8, 1, 0, 0, 0, 1]), Err(IdxError::BadMagic(1, 0)));
        assert_eq!(p(&[0, 0, 7, 1, 0, 0, 0, 1]), Err(IdxError::UnknownType(7)));
        assert_eq!(p(&[0, 0, 8, 0]), Err(IdxError::ZeroRank));
        assert_eq!(p(&[0, 0, 8, 2, 0, 0, 0, 1]), Err(IdxError::ShortHeader { needed: 12, got: 8 }));
        let huge = encode(IdxType::F64, &[u32::MAX, u32::MAX, u32::MAX], &[]);
        assert_eq!(p(&huge), Err(IdxError::Overflow));
        let big = encode(IdxType::U8, &[60000, 28, 28], &[]);
        assert_eq!(IdxHeader::parse(&big, 1000), Err(IdxError::TooLarge { bytes: 47_040_000, limit: 1000 }));
        let h = p(&big).unwrap();
        assert_eq!((h.len(), h.numel(), h.payload_len()), (16, 47_040_000, 47_040_000));
    }

    #[test]
    fn payload_length_is_exact() {
        let short = encode(IdxType::U8, &[3], &[1, 2]);
        let long = encode(IdxType::U8, &[3], &[1, 2, 3, 4]);
        for (bytes, trunc) in [(short, true), (long, false)] {
            for b in [bytes.clone(), gz(&bytes)] {
                let err = IdxArray::from_bytes(b, "x.idx", DEFAULT_LIMIT).unwrap_err();
                match err {
                    MnistError::Format { kind: IdxError::Truncated { expected: 3, got: 2 }, .. } => assert!(trunc),
                    MnistError::Format { kind: IdxError::TrailingData { expected: 3, .. }, .. } => assert!(!trunc),
                    other => panic!("unexpected {other}"),
                }
            }
        }
    }

    #[test]
    fn lying_gzip_header_allocates_only_real_data() {
        // Announces 1 GiB − 1 of u8, delivers 10 bytes: Truncated, and the buffer stays tiny.
        let lie = gz(&encode(IdxType::U8, &[(1 << 30) - 1], &[7; 10]));
        let err = IdxArray::from_bytes(lie, "lie.gz", DEFAULT_LIMIT).unwrap_err();
        assert!(matches!(err, MnistError::Format { kind: IdxError::Truncated { got: 10, .. }, .. }), "{err}");
    }
}
