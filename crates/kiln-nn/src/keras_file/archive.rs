//! The `.keras` container: a zip archive of `metadata.json`, `config.json` and `model.weights.h5`, stored
//! uncompressed as Keras writes it (deflated entries are read too).

use std::io::{Cursor, Read, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::error::{NnError, Result};

/// The architecture and compile settings.
pub(crate) const CONFIG: &str = "config.json";
/// Keras and save-date metadata.
pub(crate) const METADATA: &str = "metadata.json";
/// The weights and optimizer variables.
pub(crate) const WEIGHTS: &str = "model.weights.h5";

/// Largest JSON entry read (a config of thousands of layers is a few MB).
const MAX_JSON: u64 = 64 << 20;
/// Largest weights entry read: larger declared sizes are refused before any allocation.
const MAX_WEIGHTS: u64 = 16 << 30;

/// The entries of a `.keras` archive Kiln reads.
pub(crate) struct Entries {
    pub(crate) metadata: Vec<u8>,
    pub(crate) config: Vec<u8>,
    pub(crate) weights: Vec<u8>,
}

/// Reads the entries of a `.keras` archive held in `bytes`.
pub(crate) fn read(path: &Path, bytes: &[u8]) -> Result<Entries> {
    let mut zip = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| NnError::keras(path, "zip", format!("not a .keras (zip) archive: {e}")))?;
    let mut entry = |name: &str, limit: u64| -> Result<Vec<u8>> {
        let mut f = zip.by_name(name).map_err(|e| NnError::keras(path, name, format!("missing entry: {e}")))?;
        let size = f.size();
        if size > limit {
            return Err(NnError::keras(path, name, format!("declared size {size} bytes exceeds the limit {limit}")));
        }
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        f.by_ref()
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| NnError::keras(path, name, format!("truncated or corrupt: {e}")))?;
        if out.len() as u64 != size {
            return Err(NnError::keras(path, name, format!("holds {} bytes, its header says {size}", out.len())));
        }
        Ok(out)
    };
    // Keras always writes metadata.json: its absence means a damaged archive.
    Ok(Entries {
        metadata: entry(METADATA, MAX_JSON)?,
        config: entry(CONFIG, MAX_JSON)?,
        weights: entry(WEIGHTS, MAX_WEIGHTS)?,
    })
}

/// Writes a `.keras` archive (entries stored, in Keras' order) into memory.
pub(crate) fn write(path: &Path, metadata: &[u8], config: &[u8], weights: &[u8]) -> Result<Vec<u8>> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(weights.len() as u64 >= u32::MAX as u64);
    for (name, bytes) in [(METADATA, metadata), (CONFIG, config), (WEIGHTS, weights)] {
        zip.start_file(name, opts).map_err(|e| NnError::keras(path, name, e.to_string()))?;
        zip.write_all(bytes).map_err(|e| NnError::io(path, e))?;
    }
    Ok(zip.finish().map_err(|e| NnError::keras(path, "zip", e.to_string()))?.into_inner())
}
