//! Printing tensors: a pandas-like table for 2-D tensors ([`Table`]) and a flat summary for other ranks.
//!
//! The notebook prints `pd.DataFrame(pred).round(2)`; [`Tensor::table`] reproduces that layout: a header row of
//! column indices, a left-aligned row index, values right-aligned in columns separated by two spaces. As pandas
//! does, each column is printed with as few decimals as its rounded values need (at least one), so a column of
//! zeros and ones prints `0.0`/`1.0` while a column holding `0.01` prints `0.00`/`0.01`. Long tables are cut like
//! pandas' defaults (more than 60 rows: first and last 5; more than 20 columns: first and last 10) with a
//! `[R rows x C columns]` footer.

use std::fmt;

use crate::error::{Result, TensorError};
use crate::tensor::{Tensor, TensorView};

/// pandas' `display.max_rows`.
const MAX_ROWS: usize = 60;
/// pandas' `display.min_rows`: rows shown when a table is cut.
const MIN_ROWS: usize = 10;
/// pandas' `display.max_columns`.
const MAX_COLS: usize = 20;
/// Values shown by the flat (non-2-D) format before `...`.
const FLAT_ITEMS: usize = 20;

/// A pandas-like rendering of a 2-D tensor; build with [`Tensor::table`], print with `{}`.
#[derive(Debug, Clone, Copy)]
pub struct Table<'a> {
    rows: usize,
    cols: usize,
    data: &'a [f32],
    decimals: usize,
    max_rows: usize,
    max_cols: usize,
}

impl Tensor {
    /// A pandas-like table of this 2-D tensor with values rounded to `decimals` places (`decimals = 0` prints
    /// integers, like a DataFrame of ints). An error for other ranks.
    pub fn table(&self, decimals: usize) -> Result<Table<'_>> {
        self.view().table(decimals)
    }
}

impl<'a> TensorView<'a> {
    /// See [`Tensor::table`].
    pub fn table(&self, decimals: usize) -> Result<Table<'a>> {
        let &[rows, cols] = self.dims() else {
            return Err(TensorError::Rank { op: "table", expected: "2", shape: self.shape().clone() });
        };
        Ok(Table { rows, cols, data: self.as_slice(), decimals, max_rows: MAX_ROWS, max_cols: MAX_COLS })
    }
}

impl Table<'_> {
    /// Shows every row up to `n` rows; beyond that the first and last 5 (pandas `display.max_rows`; 0 = no limit).
    pub fn max_rows(mut self, n: usize) -> Self {
        self.max_rows = n;
        self
    }

    /// Shows every column up to `n` columns; beyond that the first and last 10 (`display.max_columns`; 0 = no
    /// limit).
    pub fn max_cols(mut self, n: usize) -> Self {
        self.max_cols = n;
        self
    }
}

/// Indices to show along an axis of length `len`: all, or a head and tail around a `None` gap marker.
fn shown(len: usize, limit: usize, keep: usize) -> Vec<Option<usize>> {
    if limit == 0 || len <= limit {
        (0..len).map(Some).collect()
    } else {
        let head = keep.div_ceil(2);
        let tail = keep / 2;
        (0..head).map(Some).chain(std::iter::once(None)).chain((len - tail..len).map(Some)).collect()
    }
}

/// Formats one column's values as pandas does: round to `decimals`, then drop the trailing zeros common to every
/// finite value, keeping at least one decimal.
fn format_column(values: impl Iterator<Item = f32> + Clone, decimals: usize) -> Vec<String> {
    let format = |v: f32, d: usize| -> String {
        if v.is_nan() {
            "NaN".into()
        } else if v.is_infinite() {
            if v > 0.0 { "inf".into() } else { "-inf".into() }
        } else {
            let s = format!("{v:.d$}");
            // Normalise "-0.00" to "0.00": a rounded negative zero carries no information in a table.
            if s.starts_with('-') && s[1..].bytes().all(|b| b == b'0' || b == b'.') { s[1..].to_string() } else { s }
        }
    };
    if decimals == 0 {
        return values.map(|v| format(v, 0)).collect();
    }
    let full: Vec<String> = values.clone().map(|v| format(v, decimals)).collect();
    let common_zeros = values
        .zip(&full)
        .filter(|(v, _)| v.is_finite())
        .map(|(_, s)| s.bytes().rev().take_while(|&b| b == b'0').count())
        .min()
        .unwrap_or(0)
        .min(decimals - 1);
    full.into_iter()
        .map(|s| {
            if s.contains('.') && !s.ends_with("inf") && s != "NaN" {
                s[..s.len() - common_zeros].to_string()
            } else {
                s
            }
        })
        .collect()
}

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = shown(self.rows, self.max_rows, MIN_ROWS);
        let cols = shown(self.cols, self.max_cols, MAX_COLS);
        // Column texts: header then one cell per shown row.
        let mut columns: Vec<Vec<String>> = Vec::with_capacity(cols.len());
        for c in &cols {
            let mut cells = Vec::with_capacity(rows.len() + 1);
            match c {
                Some(c) => {
                    cells.push(c.to_string());
                    let values = rows.iter().flatten().map(|&r| self.data[r * self.cols + c]);
                    let mut formatted = format_column(values, self.decimals).into_iter();
                    for r in &rows {
                        cells.push(if r.is_some() { formatted.next().unwrap_or_default() } else { "...".into() });
                    }
                }
                None => cells.extend(std::iter::repeat_n("...".to_string(), rows.len() + 1)),
            }
            columns.push(cells);
        }
        let index: Vec<String> = rows.iter().map(|r| r.map_or("...".into(), |r| r.to_string())).collect();
        let index_w = index.iter().map(String::len).max().unwrap_or(0);
        let widths: Vec<usize> = columns.iter().map(|c| c.iter().map(String::len).max().unwrap_or(0)).collect();
        write!(f, "{:index_w$}", "")?;
        for (col, w) in columns.iter().zip(&widths) {
            write!(f, "  {:>w$}", col[0])?;
        }
        for (i, label) in index.iter().enumerate() {
            write!(f, "\n{label:<index_w$}")?;
            for (col, w) in columns.iter().zip(&widths) {
                write!(f, "  {:>w$}", col[i + 1])?;
            }
        }
        if rows.len() < self.rows || cols.len() < self.cols || rows.contains(&None) || cols.contains(&None) {
            write!(f, "\n\n[{} rows x {} columns]", self.rows, self.cols)?;
        }
        Ok(())
    }
}

/// Writes `[v, v, ...]`, at most [`FLAT_ITEMS`] values, with an optional precision.
pub(crate) fn write_flat(f: &mut fmt::Formatter<'_>, data: &[f32], precision: Option<usize>) -> fmt::Result {
    f.write_str("[")?;
    for (i, v) in data.iter().take(FLAT_ITEMS).enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        match precision {
            Some(p) => write!(f, "{v:.p$}")?,
            None => write!(f, "{v}")?,
        }
    }
    if data.len() > FLAT_ITEMS {
        write!(f, ", ... ({} more)", data.len() - FLAT_ITEMS)?;
    }
    f.write_str("]")
}

impl fmt::Display for Tensor {
    /// A 2-D tensor prints as a pandas-like [`Table`] (`{:.2}` rounds to 2 decimals; the default is pandas' 6);
    /// other ranks print their shape and the first values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.view(), f)
    }
}

impl fmt::Display for TensorView<'_> {
    /// See the `Display` impl of [`Tensor`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.table(f.precision().unwrap_or(6)) {
            Ok(table) => fmt::Display::fmt(&table, f),
            Err(_) => {
                write!(f, "Tensor{} ", self.shape())?;
                write_flat(f, self.as_slice(), f.precision())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pandas_round_2_layout() {
        // pd.DataFrame([[0.001, 0.5, 0.994], [1.0, 0.0, 0.0061]]).round(2) prints:
        let t = Tensor::from_slice(&[2, 3], &[0.001, 0.5, 0.994, 1.0, 0.0, 0.0061]).unwrap();
        let expected = "     0    1     2\n0  0.0  0.5  0.99\n1  1.0  0.0  0.01";
        assert_eq!(t.table(2).unwrap().to_string(), expected);
        assert_eq!(format!("{t:.2}"), expected);
    }

    #[test]
    fn integer_one_hot_and_wide_index() {
        let t = Tensor::from_fn(&[11, 2], |i| (i % 2) as f32).unwrap();
        let s = t.table(0).unwrap().to_string();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "    0  1");
        assert_eq!(lines[1], "0   0  1");
        assert_eq!(lines[11], "10  0  1");
    }

    #[test]
    fn negative_zero_nan_and_inf() {
        let t = Tensor::from_slice(&[1, 4], &[-0.001, f32::NAN, f32::INFINITY, -2.5]).unwrap();
        assert_eq!(t.table(2).unwrap().to_string(), "     0    1    2     3\n0  0.0  NaN  inf  -2.5");
    }

    #[test]
    fn long_tables_are_cut() {
        let t = Tensor::from_fn(&[100, 30], |i| i as f32).unwrap();
        let s = t.table(1).unwrap().to_string();
        let lines: Vec<&str> = s.lines().collect();
        // header + 5 + "..." + 5, blank, footer
        assert_eq!(lines.len(), 14);
        assert!(lines[6].starts_with("..."));
        assert!(lines[7].starts_with("95"));
        assert_eq!(lines[13], "[100 rows x 30 columns]");
        assert!(lines[0].contains("...") && lines[0].trim_end().ends_with("29"));
        let all = t.table(1).unwrap().max_rows(0).max_cols(0).to_string();
        assert_eq!(all.lines().count(), 101);
    }

    #[test]
    fn other_ranks() {
        assert!(Tensor::zeros(&[2, 2, 2]).unwrap().table(2).is_err());
        let s = format!("{}", Tensor::from_fn(&[3], |i| i as f32).unwrap());
        assert_eq!(s, "Tensor(3,) [0, 1, 2]");
        let d = format!("{:?}", Tensor::zeros(&[30]).unwrap());
        assert!(d.contains("... (10 more)"));
    }
}
