//! Inverted dropout (Keras `Dropout`): in training mode each element is kept with probability `1 − rate` and
//! scaled by `1 / (1 − rate)`; in inference mode (or with `rate = 0`) it is the identity.

use rand::RngExt;

use crate::backward::{Backward, Grads};
use crate::error::{AutogradError, Result};
use crate::tape::{Tape, Var};

struct DropoutBackward {
    x: Var,
    mask: usize,
}

impl Backward for DropoutBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let mask = self.mask;
        g.update(self.x, |st, dx, acc| {
            let m = &st.bufs[mask].as_slice()[..dx.len()];
            for ((d, &dy), &m) in dx.iter_mut().zip(st.grad(out)).zip(m) {
                if acc { *d += dy * m } else { *d = dy * m }
            }
            Ok(())
        })
    }
}

impl Tape {
    /// Dropout with the given `rate` in `[0, 1)`, drawing from the tape's seeded generator ([`Tape::seed`]).
    pub fn dropout(&mut self, x: Var, rate: f32) -> Result<Var> {
        let op = "dropout";
        let d = self.check(op, x)?;
        if !(0.0..1.0).contains(&rate) {
            return Err(AutogradError::Parameter {
                op,
                what: "rate",
                value: f64::from(rate),
                expected: "0 ≤ rate < 1",
            });
        }
        if !self.training() || rate == 0.0 {
            return Ok(x);
        }
        let mask = self.st.alloc("dropout mask", d.numel())?;
        let scale = 1.0 / (1.0 - rate);
        for m in self.st.bufs[mask].as_mut_slice() {
            *m = if self.rng.random::<f32>() >= rate { scale } else { 0.0 };
        }
        let req = self.requires(&[x]);
        let out = self.compute(op, d, req, |st, y| {
            for ((y, &x), &m) in y.iter_mut().zip(st.value(x)).zip(st.bufs[mask].as_slice()) {
                *y = x * m;
            }
            Ok(())
        })?;
        if req {
            self.record(out, DropoutBackward { x, mask });
        }
        Ok(out)
    }
}
