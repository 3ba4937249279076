//! `Model::summary()`: Keras 3's table, as it prints in a notebook (76 columns, box-drawing characters).

use std::fmt::Write;

use crate::model::Model;

/// Keras' default line length when not printing to a terminal: 80 − 4.
const LINE: usize = 76;

/// The content widths of the columns at relative `positions` as Keras asks rich for them (`int(pos · 76)`
/// minus the columns before), shrunk as rich shrinks fixed-width columns to fit their padding and borders into
/// the line (`rich._ratio.ratio_reduce` with equal ratios and Python's half-to-even rounding). Keras' three
/// columns at 0.45/0.80/1.0 ask for 34, 26, 16 and get 31, 22, 13.
fn column_widths(positions: &[f64]) -> Vec<usize> {
    let mut asked = Vec::new();
    let mut current = 0;
    for p in positions {
        let w = (p * LINE as f64) as usize - current;
        asked.push(w);
        current += w;
    }
    let chrome = positions.len() + 1 + 2 * positions.len();
    let mut excess = (current + chrome).saturating_sub(LINE);
    let mut ratios = asked.len();
    asked
        .into_iter()
        .map(|w| {
            let cut = ((excess as f64 / ratios as f64).round_ties_even() as usize).min(w);
            excess -= cut;
            ratios -= 1;
            w - cut
        })
        .collect()
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Keras' `readable_memory_size`: bytes in B, KB, MB… (powers of 1024), two decimals.
fn readable(bytes: f64) -> String {
    let mut v = bytes;
    for unit in ["B", "KB", "MB", "GB", "TB"] {
        if v / 1024.0 < 1.0 {
            return format!("{v:.2} {unit}");
        }
        v /= 1024.0;
    }
    format!("{v:.2} PB")
}

fn shape_text(shape: &[usize]) -> String {
    let mut s = String::from("(None");
    for d in shape {
        let _ = write!(s, ", {d}");
    }
    s.push(')');
    s
}

/// The lines of a cell as `rich` (which Keras' summary uses) lays them out: words wrapped greedily at spaces, a
/// word wider than the column cut with `…`.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let word: String = if word.chars().count() > width {
            word.chars().take(width.saturating_sub(1)).chain(['…']).collect()
        } else {
            word.to_owned()
        };
        if line.is_empty() {
            line = word;
        } else if line.chars().count() + 1 + word.chars().count() <= width {
            line.push(' ');
            line.push_str(&word);
        } else {
            lines.push(std::mem::replace(&mut line, word));
        }
    }
    lines.push(line);
    lines
}

fn cell(text: &str, width: usize, right: bool) -> String {
    if right { format!("{text:>width$}") } else { format!("{text:<width$}") }
}

/// A table with its columns' widths and alignments (right-aligned or not).
struct Table {
    widths: Vec<usize>,
    right: Vec<bool>,
}

impl Table {
    fn rule(&self, l: char, fill: char, mid: char, r: char) -> String {
        let parts: Vec<String> = self.widths.iter().map(|w| fill.to_string().repeat(w + 2)).collect();
        format!("{l}{}{r}", parts.join(&mid.to_string()))
    }

    /// One table row, as many lines as its most wrapped cell needs.
    fn row(&self, v: char, cols: &[&str]) -> String {
        let cells: Vec<Vec<String>> = cols.iter().zip(&self.widths).map(|(c, &w)| wrap(c, w)).collect();
        let height = cells.iter().map(Vec::len).max().unwrap_or(1);
        let line = |i: usize| {
            let mut s = String::new();
            for (c, (&w, &right)) in self.widths.iter().zip(&self.right).enumerate() {
                let text = cells[c].get(i).map_or("", String::as_str);
                let _ = write!(s, "{v} {} ", cell(text, w, right));
            }
            s.push(v);
            s
        };
        (0..height).map(line).collect::<Vec<_>>().join("\n")
    }
}

impl Model {
    /// The Keras `summary()` table as text (what [`Model::print_summary`] prints). Functional models list
    /// their `InputLayer` first, as Keras does; sequential models do not. A model whose layers are not a chain
    /// (merges) gets Keras' fourth column, "Connected to".
    pub fn summary(&self) -> String {
        let chain = self.is_chain();
        let table = if chain {
            Table { widths: column_widths(&[0.45, 0.80, 1.0]), right: vec![false, false, true] }
        } else {
            Table { widths: column_widths(&[0.3, 0.56, 0.74, 1.0]), right: vec![false, false, true, false] }
        };
        let mut rows: Vec<Vec<String>> = Vec::new();
        if self.functional {
            rows.push(vec![format!("{} (InputLayer)", self.input_name), shape_text(&self.input_shape), "0".into()]);
            if !chain {
                rows[0].push("-".into());
            }
        }
        let mut trainable = 0usize;
        let mut frozen = 0usize;
        for (slot, inbound) in self.layers.iter().zip(self.inbound()) {
            let mut count = 0;
            for (_, id) in slot.layer.weights() {
                let n = self.params.dims(id).map(|d| d.numel()).unwrap_or(0);
                count += n;
                if self.params.trainable(id).unwrap_or(true) {
                    trainable += n;
                } else {
                    frozen += n;
                }
            }
            let mut r = vec![
                format!("{} ({})", slot.name, slot.layer.class_name()),
                shape_text(&slot.output_shape),
                thousands(count),
            ];
            if !chain {
                // Keras' `layer[node][tensor]`: every Kiln layer is called once and makes one tensor.
                r.push(inbound.iter().map(|n| format!("{n}[0][0]")).collect::<Vec<_>>().join(", "));
            }
            rows.push(r);
        }
        let header: &[&str] = &["Layer (type)", "Output Shape", "Param #", "Connected to"][..table.widths.len()];
        let mut out = format!("Model: \"{}\"\n", self.name);
        out += &table.rule('┏', '━', '┳', '┓');
        out.push('\n');
        out += &table.row('┃', header);
        out.push('\n');
        out += &table.rule('┡', '━', '╇', '┩');
        out.push('\n');
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                out += &table.rule('├', '─', '┼', '┤');
                out.push('\n');
            }
            out += &table.row('│', &r.iter().map(String::as_str).collect::<Vec<_>>());
            out.push('\n');
        }
        out += &table.rule('└', '─', '┴', '┘');
        out.push('\n');
        // Keras counts the optimizer's variables once it is built (at the first training step): `iterations`
        // (int64), the learning rate unless a schedule computes it (f32), and the per-weight slots (f32).
        let optimizer = self.compiled.filter(|_| self.state.iterations > 0).map(|c| {
            let lr = usize::from(self.schedule.is_none());
            let slots = c.optimizer.slots() * trainable;
            (1 + lr + slots, 8.0 + 4.0 * (lr + slots) as f64)
        });
        let model = trainable + frozen;
        let (total, bytes) = match optimizer {
            Some((n, b)) => (model + n, model as f64 * 4.0 + b),
            None => (model, model as f64 * 4.0),
        };
        let _ = writeln!(out, " Total params: {} ({})", thousands(total), readable(bytes));
        let _ = writeln!(out, " Trainable params: {} ({})", thousands(trainable), readable(trainable as f64 * 4.0));
        let _ = writeln!(out, " Non-trainable params: {} ({})", thousands(frozen), readable(frozen as f64 * 4.0));
        if let Some((n, b)) = optimizer {
            let _ = writeln!(out, " Optimizer params: {} ({})", thousands(n), readable(b));
        }
        out
    }

    /// Prints [`Model::summary`] to stdout.
    pub fn print_summary(&self) {
        print!("{}", self.summary());
    }
}

#[cfg(test)]
mod tests {
    use super::{column_widths, readable, thousands};

    #[test]
    fn column_widths_as_rich_shrinks_them() {
        assert_eq!(column_widths(&[0.45, 0.80, 1.0]), [31, 22, 13]);
        assert_eq!(column_widths(&[0.3, 0.56, 0.74, 1.0]), [19, 17, 10, 17]);
    }

    #[test]
    fn numbers_as_keras_prints_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(850), "850");
        assert_eq!(thousands(201_684), "201,684");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(readable(203_068.0 * 4.0), "793.23 KB");
        assert_eq!(readable(0.0), "0.00 B");
        assert_eq!(readable(3.0 * 1024.0 * 1024.0), "3.00 MB");
    }
}
