//! `x·scale + offset` with constant scale and offset (Keras `Rescaling`), rounded after the product and after the
//! sum as Keras' `inputs * scale + offset`.

use crate::backward::{Backward, Grads};
use crate::error::{AutogradError, Result};
use crate::recording::Recording;
use crate::tape::Var;

struct RescaleBackward {
    x: Var,
    scale: f32,
}

impl Backward for RescaleBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let scale = self.scale;
        g.update(self.x, |st, dx, acc| {
            let dy = st.grad(out);
            for (d, &v) in dx.iter_mut().zip(dy) {
                *d = if acc { *d + v * scale } else { v * scale };
            }
            Ok(())
        })
    }
}

impl Recording<'_, '_> {
    /// `x·scale + offset`, elementwise; both constants must be finite.
    pub fn rescale(&mut self, x: Var, scale: f32, offset: f32) -> Result<Var> {
        let op = "rescale";
        let d = self.check(op, x)?;
        for (what, v) in [("scale", scale), ("offset", offset)] {
            if !v.is_finite() {
                return Err(AutogradError::Parameter { op, what, value: f64::from(v), expected: "finite" });
            }
        }
        let req = self.requires(&[x]);
        let out = self.compute(op, d, req, |st, y| {
            for (o, &v) in y.iter_mut().zip(st.value(x)) {
                *o = v * scale + offset;
            }
            Ok(())
        })?;
        if req {
            self.record(out, RescaleBackward { x, scale });
        }
        Ok(out)
    }
}
