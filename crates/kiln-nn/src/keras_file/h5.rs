//! Reading and writing the HDF5 weight files of Keras: the Keras 3 layout (`layers/<path>/vars/<i>`,
//! `optimizer/vars/<i>`) and the legacy Keras 2 one (`model_weights/<layer>/<weight name>`), through the pure-Rust
//! `hdf5-pure` crate. Every read checks the dataset's dtype and shape against what the model needs before reading
//! its data, so a damaged or mismatched file is a typed error, never a huge allocation.

use std::collections::HashMap;
use std::path::Path;

use hdf5_pure::{AttrValue, DType, File, FileBuilder, Group};

use crate::error::{NnError, Result};

/// An opened HDF5 file and where it came from (for error messages).
pub(crate) struct H5<'a> {
    file: File,
    path: &'a Path,
    /// The archive entry holding the file (`model.weights.h5`), or empty for a file of its own.
    entry: &'a str,
}

impl<'a> H5<'a> {
    /// Parses `bytes` as an HDF5 file.
    pub(crate) fn parse(path: &'a Path, entry: &'a str, bytes: Vec<u8>) -> Result<Self> {
        let file = File::from_bytes(bytes)
            .map_err(|e| NnError::keras(path, entry_name(entry, ""), format!("not a readable HDF5 file: {e}")))?;
        Ok(H5 { file, path, entry })
    }

    /// An error about the object at `object` inside the file.
    pub(crate) fn err(&self, object: &str, message: impl Into<String>) -> NnError {
        NnError::keras(self.path, entry_name(self.entry, object), message)
    }

    /// The group at `object`.
    pub(crate) fn group(&self, object: &str) -> Result<Group> {
        if object.is_empty() {
            return Ok(self.file.root());
        }
        self.file.group(object).map_err(|e| self.err(object, format!("missing group: {e}")))
    }

    /// Whether a group exists at `object`.
    pub(crate) fn has_group(&self, object: &str) -> bool {
        self.file.group(object).is_ok()
    }

    /// The number of datasets directly in the group at `object`.
    pub(crate) fn dataset_count(&self, object: &str) -> Result<usize> {
        let g = self.group(object)?;
        Ok(g.datasets().map_err(|e| self.err(object, format!("unreadable group: {e}")))?.len())
    }

    /// The shape of the dataset at `object`.
    pub(crate) fn shape(&self, object: &str) -> Result<Vec<u64>> {
        let ds = self.file.dataset(object).map_err(|e| self.err(object, format!("missing dataset: {e}")))?;
        ds.shape().map_err(|e| self.err(object, format!("unreadable dataset: {e}")))
    }

    /// The float32 values of the dataset at `object`, which must have shape `dims`.
    pub(crate) fn read_f32(&self, object: &str, dims: &[usize]) -> Result<Vec<f32>> {
        let ds = self.file.dataset(object).map_err(|e| self.err(object, format!("missing dataset: {e}")))?;
        let shape = ds.shape().map_err(|e| self.err(object, format!("unreadable dataset: {e}")))?;
        if shape.len() != dims.len() || shape.iter().zip(dims).any(|(&a, &b)| a != b as u64) {
            return Err(self.err(object, format!("has shape {shape:?}, the model needs {dims:?}")));
        }
        let dtype = ds.dtype().map_err(|e| self.err(object, format!("unreadable datatype: {e}")))?;
        if dtype != DType::F32 {
            return Err(self.err(object, format!("has dtype {dtype:?}, expected float32")));
        }
        let v = ds.read_f32().map_err(|e| self.err(object, format!("unreadable data: {e}")))?;
        if v.len() != dims.iter().product::<usize>() {
            return Err(self.err(object, format!("holds {} values for shape {dims:?}", v.len())));
        }
        Ok(v)
    }

    /// The integer scalar at `object` (Keras' `iterations`).
    pub(crate) fn read_count(&self, object: &str) -> Result<u64> {
        let ds = self.file.dataset(object).map_err(|e| self.err(object, format!("missing dataset: {e}")))?;
        let shape = ds.shape().map_err(|e| self.err(object, format!("unreadable dataset: {e}")))?;
        if shape.iter().product::<u64>() != 1 {
            return Err(self.err(object, format!("has shape {shape:?}, expected a scalar")));
        }
        let dtype = ds.dtype().map_err(|e| self.err(object, format!("unreadable datatype: {e}")))?;
        let v = match dtype {
            DType::I64 | DType::I32 | DType::I16 | DType::I8 => {
                ds.read_i64().map_err(|e| self.err(object, format!("unreadable data: {e}")))?.first().copied()
            }
            DType::U64 | DType::U32 | DType::U16 | DType::U8 => ds
                .read_u64()
                .map_err(|e| self.err(object, format!("unreadable data: {e}")))?
                .first()
                .and_then(|&v| i64::try_from(v).ok()),
            other => return Err(self.err(object, format!("has dtype {other:?}, expected an integer"))),
        };
        v.and_then(|v| u64::try_from(v).ok()).ok_or_else(|| self.err(object, "is not a non-negative count"))
    }

    /// The float scalar at `object` (Keras' `learning_rate` variable).
    pub(crate) fn read_scalar_f32(&self, object: &str) -> Result<f32> {
        let shape = self.shape(object)?;
        if shape.iter().product::<u64>() != 1 {
            return Err(self.err(object, format!("has shape {shape:?}, expected a scalar")));
        }
        let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        Ok(self.read_f32(object, &dims)?[0])
    }

    /// The attributes of the group at `object` (the root for "").
    pub(crate) fn attrs(&self, object: &str) -> Result<HashMap<String, AttrValue>> {
        let g = self.group(object)?;
        g.attrs().map_err(|e| self.err(object, format!("unreadable attributes: {e}")))
    }
}

fn entry_name(entry: &str, object: &str) -> String {
    match (entry.is_empty(), object.is_empty()) {
        (true, true) => "/".to_owned(),
        (true, false) => object.to_owned(),
        (false, true) => entry.to_owned(),
        (false, false) => format!("{entry}:{object}"),
    }
}

/// A string attribute (any of HDF5's string encodings).
pub(crate) fn attr_string(v: &AttrValue) -> Option<String> {
    match v {
        AttrValue::String(s)
        | AttrValue::AsciiString(s)
        | AttrValue::VarLenString(s)
        | AttrValue::VarLenAsciiString(s) => Some(s.clone()),
        AttrValue::StringSized { value, .. } | AttrValue::AsciiStringSized { value, .. } => Some(value.clone()),
        AttrValue::StringArray(a) | AttrValue::VarLenAsciiStringArray(a) if a.len() == 1 => Some(a[0].clone()),
        _ => None,
    }
}

/// A string-array attribute (Keras 2's `layer_names`, `weight_names`).
pub(crate) fn attr_strings(v: &AttrValue) -> Option<Vec<String>> {
    match v {
        AttrValue::StringArray(a) | AttrValue::VarLenAsciiStringArray(a) | AttrValue::AsciiStringArray(a) => {
            Some(a.clone())
        }
        AttrValue::VarLenStringArray(a) => Some(a.clone()),
        AttrValue::StringArraySized { values, .. } | AttrValue::AsciiStringArraySized { values, .. } => {
            Some(values.clone())
        }
        // h5py writes an empty list (a layer without weights) as an empty float array.
        AttrValue::F64Array(a) if a.is_empty() => Some(Vec::new()),
        AttrValue::F32Array(a) if a.is_empty() => Some(Vec::new()),
        other => attr_string(other).map(|s| vec![s]),
    }
}

/// A tree of groups and datasets to write, built by the caller in Keras' order.
#[derive(Default)]
pub(crate) struct Tree {
    pub(crate) name_attr: Option<String>,
    pub(crate) groups: Vec<(String, Tree)>,
    /// `(name, shape, values)`; an empty shape is a scalar.
    pub(crate) floats: Vec<(String, Vec<u64>, Vec<f32>)>,
    pub(crate) counts: Vec<(String, i64)>,
}

impl Tree {
    /// The child group `name`, created if missing.
    pub(crate) fn child(&mut self, name: &str) -> &mut Tree {
        let k = match self.groups.iter().position(|(n, _)| n == name) {
            Some(k) => k,
            None => {
                self.groups.push((name.to_owned(), Tree::default()));
                self.groups.len() - 1
            }
        };
        &mut self.groups[k].1
    }

    /// Serialises the tree as an HDF5 file.
    pub(crate) fn to_bytes(&self, path: &Path) -> Result<Vec<u8>> {
        let mut b = FileBuilder::new();
        for (name, shape, values) in &self.floats {
            b.create_dataset(name).with_f32_data(values).with_shape(shape);
        }
        for (name, v) in &self.counts {
            b.create_dataset(name).with_i64_data(&[*v]).with_shape(&[]);
        }
        for (name, t) in &self.groups {
            let mut g = b.create_group(name);
            t.fill(&mut g);
            b.add_group(g.finish());
        }
        b.finish().map_err(|e| NnError::keras(path, "model.weights.h5", format!("cannot write HDF5: {e}")))
    }

    fn fill(&self, g: &mut hdf5_pure::GroupBuilder) {
        if let Some(n) = &self.name_attr {
            g.set_attr("name", AttrValue::String(n.clone()));
        }
        for (name, shape, values) in &self.floats {
            g.create_dataset(name).with_f32_data(values).with_shape(shape);
        }
        for (name, v) in &self.counts {
            g.create_dataset(name).with_i64_data(&[*v]).with_shape(&[]);
        }
        for (name, t) in &self.groups {
            let mut c = g.create_group(name);
            t.fill(&mut c);
            g.add_group(c.finish());
        }
    }
}
