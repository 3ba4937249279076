//! `Model::summary()`: Keras 3's table, as it prints in a notebook (76 columns, box-drawing characters).

use std::fmt::Write;

use crate::model::Model;

/// Content widths of the three columns at Keras' default non-terminal line length (76 = 80 − 4): Keras asks
/// rich for columns of 34, 26 and 16 characters at positions 0.45/0.80/1.0, and rich shrinks them to fit
/// padding and borders into 76 columns, giving 31, 22 and 13.
const WIDTHS: [usize; 3] = [31, 22, 13];

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

fn rule(l: char, fill: char, mid: char, r: char) -> String {
    let parts: Vec<String> = WIDTHS.iter().map(|w| fill.to_string().repeat(w + 2)).collect();
    format!("{l}{}{r}", parts.join(&mid.to_string()))
}

/// One table row, as many lines as its most wrapped cell needs.
fn row(v: char, cols: [&str; 3]) -> String {
    let cells: Vec<Vec<String>> = cols.iter().zip(WIDTHS).map(|(c, w)| wrap(c, w)).collect();
    let height = cells.iter().map(Vec::len).max().unwrap_or(1);
    let line = |i: usize| {
        let at = |c: usize| cells[c].get(i).map_or("", String::as_str);
        format!(
            "{v} {} {v} {} {v} {} {v}",
            cell(at(0), WIDTHS[0], false),
            cell(at(1), WIDTHS[1], false),
            cell(at(2), WIDTHS[2], true)
        )
    };
    (0..height).map(line).collect::<Vec<_>>().join("\n")
}

impl Model {
    /// The Keras `summary()` table as text (what [`Model::print_summary`] prints). Functional models list
    /// their `InputLayer` first, as Keras does; sequential models do not.
    pub fn summary(&self) -> String {
        let mut rows: Vec<[String; 3]> = Vec::new();
        if self.functional {
            rows.push([format!("{} (InputLayer)", self.input_name), shape_text(&self.input_shape), "0".into()]);
        }
        let mut trainable = 0usize;
        let mut frozen = 0usize;
        for slot in &self.layers {
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
            rows.push([
                format!("{} ({})", slot.name, slot.layer.class_name()),
                shape_text(&slot.output_shape),
                thousands(count),
            ]);
        }
        let mut out = format!("Model: \"{}\"\n", self.name);
        out += &rule('┏', '━', '┳', '┓');
        out.push('\n');
        out += &row('┃', ["Layer (type)", "Output Shape", "Param #"]);
        out.push('\n');
        out += &rule('┡', '━', '╇', '┩');
        out.push('\n');
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                out += &rule('├', '─', '┼', '┤');
                out.push('\n');
            }
            out += &row('│', [&r[0], &r[1], &r[2]]);
            out.push('\n');
        }
        out += &rule('└', '─', '┴', '┘');
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
    use super::{readable, thousands};

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
