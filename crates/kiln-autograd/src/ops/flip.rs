//! Random flips of whole images (Keras `RandomFlip`): each sample of an NHWC batch is mirrored left–right and/or
//! top–bottom with probability ½, drawn from the tape's seeded generator. A flip is a permutation that is its own
//! inverse, so the backward pass flips the gradient back the same way.

use rand::RngExt;

use crate::backward::{Backward, Grads};
use crate::error::{AutogradError, Result};
use crate::recording::Recording;
use crate::tape::Var;

#[derive(Clone, Copy)]
struct FlipGeo {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    /// Tape buffer of `2n` flags: sample `i` is mirrored left–right if `[2i] != 0`, top–bottom if `[2i + 1] != 0`.
    flags: usize,
}

impl FlipGeo {
    /// Writes sample by sample `dst[flip(p)] (+)= src[p]`.
    fn apply(&self, flags: &[f32], src: &[f32], dst: &mut [f32], accumulate: bool) {
        let (h, w, c) = (self.h, self.w, self.c);
        for b in 0..self.n {
            let (fx, fy) = (flags[2 * b] != 0.0, flags[2 * b + 1] != 0.0);
            for y in 0..h {
                let ty = if fy { h - 1 - y } else { y };
                for x in 0..w {
                    let tx = if fx { w - 1 - x } else { x };
                    let s = ((b * h + y) * w + x) * c;
                    let d = ((b * h + ty) * w + tx) * c;
                    if accumulate {
                        dst[d..d + c].iter_mut().zip(&src[s..s + c]).for_each(|(o, v)| *o += v);
                    } else {
                        dst[d..d + c].copy_from_slice(&src[s..s + c]);
                    }
                }
            }
        }
    }
}

struct FlipBackward {
    x: Var,
    geo: FlipGeo,
}

impl Backward for FlipBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let geo = self.geo;
        g.update(self.x, |st, dx, acc| {
            let flags = &st.bufs[geo.flags].as_slice()[..2 * geo.n];
            geo.apply(flags, st.grad(out), dx, acc);
            Ok(())
        })
    }
}

impl Recording<'_, '_> {
    /// Mirrors each sample of `x: (n, h, w, c)` left–right (`horizontal`) and/or top–bottom (`vertical`), each
    /// with probability ½ (Keras draws `uniform ≤ 0.5`), from the tape's seeded generator. Always active: a
    /// layer applies it only in training.
    pub fn random_flip(&mut self, x: Var, horizontal: bool, vertical: bool) -> Result<Var> {
        let op = "random_flip";
        let d = self.check(op, x)?;
        if d.rank() != 4 {
            return Err(AutogradError::Shape { op, what: "input", expected: "NHWC (rank 4)".into(), got: d });
        }
        let (n, h, w, c) = (d.get(0), d.get(1), d.get(2), d.get(3));
        let flags = self.tape.st.alloc("flip flags", 2 * n)?;
        for b in 0..n {
            for (axis, on) in [horizontal, vertical].into_iter().enumerate() {
                let flip = on && self.tape.rng.random::<f32>() <= 0.5;
                self.tape.st.bufs[flags].as_mut_slice()[2 * b + axis] = f32::from(u8::from(flip));
            }
        }
        let geo = FlipGeo { n, h, w, c, flags };
        let req = self.requires(&[x]);
        let out = self.compute(op, d, req, |st, y| {
            geo.apply(&st.bufs[flags].as_slice()[..2 * n], st.value(x), y, false);
            Ok(())
        })?;
        if req {
            self.record(out, FlipBackward { x, geo });
        }
        Ok(out)
    }
}
