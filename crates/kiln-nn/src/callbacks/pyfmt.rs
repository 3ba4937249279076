//! Numbers and file names as Keras writes them: Python's `repr` of a float (CSV cells, callback messages) and
//! `str.format` of a checkpoint path template.

use crate::callbacks::Logs;
use crate::error::{NnError, Result};

/// Python's `repr(float)`: the shortest digits that read back as `v`, in exponent form (`1e-05`) below 1e-4 and
/// from 1e16, always with a decimal point or exponent (`0.5`, `2.0`, `inf`, `nan`).
pub(crate) fn py_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let exp = v.abs().log10().floor() as i32;
    if (-4..16).contains(&exp) {
        let s = format!("{v}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        // Rust's `{:e}` gives the same shortest digits as `1.0000000474974514e-5`; Python writes the exponent
        // with a sign and at least two digits.
        let s = format!("{v:e}");
        let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        format!("{mantissa}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
    }
}

/// Python's `template.format(epoch=…, batch=…, **logs)` for the fields a checkpoint path uses: `{name}` and
/// `{name:spec}` with a spec of the forms `d`, `0Nd`, `Nd`, `.Nf`, `N.Nf`, `.Ne`; `{{` and `}}` are braces.
pub(crate) fn format_template(template: &str, epoch: usize, batch: Option<usize>, logs: &Logs) -> Result<String> {
    let bad = |m: String| NnError::config("ModelCheckpoint", format!("cannot format the path `{template}`: {m}"));
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        if rest[i + 1..].starts_with(c as char) {
            out.push(c as char);
            rest = &rest[i + 2..];
            continue;
        }
        if c == b'}' {
            return Err(bad("single `}`".into()));
        }
        let end = rest[i..].find('}').ok_or_else(|| bad("unclosed `{`".into()))? + i;
        let field = &rest[i + 1..end];
        let (name, spec) = field.split_once(':').unwrap_or((field, ""));
        let value = match name {
            "epoch" => Value::Int(epoch as i64),
            "batch" => Value::Int(batch.ok_or_else(|| bad("`{batch}` outside a batch save".into()))? as i64),
            _ => Value::Float(logs.get(name).ok_or_else(|| bad(format!("no `{name}` in the logs")))?),
        };
        out.push_str(&format_value(value, spec).ok_or_else(|| bad(format!("unsupported format spec `{spec}`")))?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Clone, Copy)]
enum Value {
    Int(i64),
    Float(f64),
}

fn format_value(v: Value, spec: &str) -> Option<String> {
    if spec.is_empty() {
        return Some(match v {
            Value::Int(i) => i.to_string(),
            Value::Float(f) => py_repr(f),
        });
    }
    let kind = spec.chars().last()?;
    let body = &spec[..spec.len() - 1];
    let (width, precision) = match body.split_once('.') {
        Some((w, p)) => (w, Some(p.parse::<usize>().ok()?)),
        None => (body, None),
    };
    let zero = width.starts_with('0') && width.len() > 1;
    let width: usize = if width.is_empty() { 0 } else { width.parse().ok()? };
    let s = match (kind, v) {
        ('d', Value::Int(i)) if precision.is_none() => i.to_string(),
        ('f', Value::Float(f)) => format!("{f:.*}", precision.unwrap_or(6)),
        ('f', Value::Int(i)) => format!("{:.*}", precision.unwrap_or(6), i as f64),
        ('e', Value::Float(f)) => {
            let s = format!("{f:.*e}", precision.unwrap_or(6));
            let (m, e) = s.split_once('e')?;
            let e: i32 = e.parse().ok()?;
            format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
        }
        _ => return None,
    };
    Some(if s.len() >= width {
        s
    } else if zero {
        let (sign, digits) = if let Some(d) = s.strip_prefix('-') { ("-", d) } else { ("", s.as_str()) };
        format!("{sign}{}{digits}", "0".repeat(width - s.len()))
    } else {
        format!("{}{s}", " ".repeat(width - s.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_python_writes_them() {
        // Each right-hand side is Python's `repr(float(numpy.float32(x)))` or `repr(x)`.
        let cases = [
            (f64::from(1e-3f32), "0.0010000000474974513"),
            (f64::from(1e-5f32), "9.999999747378752e-06"),
            (1.0000000474974514e-05, "1.0000000474974514e-05"),
            (0.0001, "0.0001"),
            (0.5, "0.5"),
            (2.0, "2.0"),
            (1e16, "1e+16"),
            (123456789.0, "123456789.0"),
            (f64::from(0.123_456_7_f32), "0.12345670163631439"),
            (0.0, "0.0"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (v, want) in cases {
            assert_eq!(py_repr(v), want, "{v:e}");
        }
    }

    #[test]
    fn path_templates_format_as_python() {
        let mut logs = Logs::default();
        logs.set("val_loss", 0.123456);
        logs.set("accuracy", 0.5);
        let f = |t: &str| format_template(t, 7, None, &logs);
        assert_eq!(f("ckpt/model-{epoch:02d}-{val_loss:.2f}").unwrap(), "ckpt/model-07-0.12");
        assert_eq!(f("m{epoch}_{accuracy}_{val_loss:.3e}").unwrap(), "m7_0.5_1.235e-01");
        assert_eq!(f("{{epoch}}-{epoch:3d}").unwrap(), "{epoch}-  7");
        assert!(f("{val_accuracy}").is_err());
        assert!(f("{epoch:x}").is_err());
        assert!(f("{epoch").is_err());
        assert!(f("epoch}").is_err());
        assert_eq!(format_template("b{batch:04d}", 1, Some(12), &logs).unwrap(), "b0012");
    }
}
