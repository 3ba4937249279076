//! Inverted dropout (Keras `Dropout`): each element is kept with probability `1 − rate` and scaled by
//! `1 / (1 − rate)` (the identity for `rate = 0`); the `Dropout` layer applies it in training only.

use rand::Rng;

use crate::backward::{Backward, Grads};
use crate::error::{AutogradError, Result};
use crate::recording::Recording;
use crate::tape::Var;

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

impl Recording<'_, '_> {
    /// Dropout with the given `rate` in `[0, 1)`, drawing from the tape's seeded generator
    /// ([`Tape::seed`](crate::Tape::seed)). Always active: a layer applies it only in training.
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
        if rate == 0.0 {
            return Ok(x);
        }
        let mask = self.tape.st.alloc("dropout mask", d.numel())?;
        let scale = 1.0 / (1.0 - rate);
        // Two 24-bit uniforms per 64-bit draw (the precision of `random::<f32>()`), half the generator calls.
        let keep =
            |bits: u64| if (bits & 0xff_ffff) as f32 * (1.0 / (1u32 << 24) as f32) >= rate { scale } else { 0.0 };
        let rng = &mut self.tape.rng;
        let mut pairs = self.tape.st.bufs[mask].as_mut_slice().chunks_exact_mut(2);
        for m in &mut pairs {
            let u = rng.next_u64();
            m[0] = keep(u >> 8);
            m[1] = keep(u >> 40);
        }
        if let [m] = pairs.into_remainder() {
            *m = keep(rng.next_u64() >> 8);
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
