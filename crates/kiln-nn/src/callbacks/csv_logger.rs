//! Keras `CSVLogger`: one CSV row per epoch.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use super::pyfmt::py_repr;
use super::{Callback, Logs};
use crate::error::{NnError, Result};
use crate::model::Model;

/// Writes each epoch's logs as a CSV row, as Keras does: the header is `epoch` and the sorted log names of the
/// first epoch (with `val_` twins added when there is no validation), epochs 0-based, values as Python writes
/// floats, `NA` for a missing value, rows ended by `\r\n`; flushed after every epoch. Keras defaults:
/// `separator=","`, `append=False` (with `append`, the header is written only into an empty file).
pub struct CSVLogger {
    path: PathBuf,
    separator: String,
    append: bool,
    file: Option<File>,
    keys: Option<Vec<String>>,
    write_header: bool,
}

impl CSVLogger {
    /// Keras `CSVLogger(filename)`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CSVLogger {
            path: path.into(),
            separator: ",".into(),
            append: false,
            file: None,
            keys: None,
            write_header: true,
        }
    }
    /// The column separator.
    pub fn separator(mut self, s: &str) -> Self {
        self.separator = s.to_owned();
        self
    }
    /// Append to an existing file instead of replacing it.
    pub fn append(mut self, on: bool) -> Self {
        self.append = on;
        self
    }

    fn io(&self, e: std::io::Error) -> NnError {
        NnError::io(&self.path, e)
    }

    /// A cell as Python's `csv` writes it: quoted when it holds the separator, a quote or a line break.
    fn cell(&self, s: String) -> String {
        if s.contains(self.separator.as_str()) || s.contains(['"', '\r', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
}

impl Callback for CSVLogger {
    fn reads_state_after_batches(&self) -> bool {
        false
    }

    fn on_train_begin(&mut self, model: &mut Model) -> Result<()> {
        self.write_header = true;
        self.file = None;
        // Across ranks only rank 0 logs.
        if !model.is_chief() {
            return Ok(());
        }
        let file = if self.append {
            if let Ok(f) = File::open(&self.path) {
                let mut first = String::new();
                BufReader::new(f).read_line(&mut first).map_err(|e| self.io(e))?;
                self.write_header = first.is_empty();
            }
            OpenOptions::new().create(true).append(true).open(&self.path)
        } else {
            File::create(&self.path)
        };
        self.file = Some(file.map_err(|e| self.io(e))?);
        self.keys = None;
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, model: &mut Model) -> Result<()> {
        let mut header = None;
        if self.keys.is_none() {
            let mut keys: Vec<String> = logs.keys().map(str::to_owned).collect();
            if !keys.iter().any(|k| k.starts_with("val_")) && !keys.is_empty() {
                let twins: Vec<String> = keys.iter().map(|k| format!("val_{k}")).collect();
                keys.extend(twins);
            }
            if self.write_header {
                let names: Vec<String> =
                    std::iter::once("epoch".to_owned()).chain(keys.iter().cloned()).map(|k| self.cell(k)).collect();
                header = Some(names.join(&self.separator));
            }
            self.keys = Some(keys);
        }
        let keys = self.keys.as_deref().unwrap_or_default();
        let mut cells = vec![epoch.to_string()];
        cells.extend(keys.iter().map(|k| self.cell(logs.get(k).map_or_else(|| "NA".to_owned(), py_repr))));
        let mut text = String::new();
        if let Some(h) = header {
            text.push_str(&h);
            text.push_str("\r\n");
        }
        text.push_str(&cells.join(&self.separator));
        text.push_str("\r\n");
        let path = self.path.clone();
        if !model.is_chief() {
            return Ok(());
        }
        let file =
            self.file.as_mut().ok_or_else(|| NnError::config("CSVLogger", "on_epoch_end before on_train_begin"))?;
        file.write_all(text.as_bytes()).and_then(|()| file.flush()).map_err(|e| NnError::io(&path, e))
    }

    fn on_train_end(&mut self, _model: &mut Model) -> Result<()> {
        self.file = None;
        Ok(())
    }
}
