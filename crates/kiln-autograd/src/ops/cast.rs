//! `round_bf16`: a value rounded to bfloat16 precision and kept in f32 storage — the cast at the edges of a
//! product under the `mixed_bfloat16` policy.

use crate::backward::{Backward, Grads};
use crate::error::Result;
use crate::recording::Recording;
use crate::tape::Var;

/// What the backward pass of [`Recording::round_bf16`] does to the gradient flowing through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GradRounding {
    /// Round it to bf16 too: the gradient of a value a bf16 product reads or writes is itself bf16, as in
    /// Keras, where the whole layer computes in bf16.
    Bf16,
    /// Pass it on unchanged: a weight's gradient reaches the f32 master weight at full precision.
    Exact,
}

struct RoundBackward {
    x: Var,
    grad: GradRounding,
}

impl Backward for RoundBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        if self.grad == GradRounding::Exact {
            return crate::ops::pass_through(g, self.x, out);
        }
        g.update(self.x, |st, dx, acc| {
            let dy = st.grad(out);
            if acc {
                dx.iter_mut().zip(dy).for_each(|(d, &s)| *d += half::bf16::from_f32(s).to_f32());
            } else {
                st.kernels().round_to_bf16(dy, dx)?;
            }
            Ok(())
        })
    }
}

impl Recording<'_, '_> {
    /// `x` rounded to the nearest bfloat16 (ties to even, NaN kept), in f32 storage. A value that is already
    /// bf16 (the output of another `round_bf16`) is returned as it is.
    pub fn round_bf16(&mut self, x: Var, grad: GradRounding) -> Result<Var> {
        let op = "round_bf16";
        let d = self.check(op, x)?;
        if self.tape.st.nodes[x.index as usize].bf16 {
            return Ok(x);
        }
        let req = self.requires(&[x]);
        let out = self.compute(op, d, req, |st, y| Ok(st.kernels().round_to_bf16(st.value(x), y)?))?;
        self.tape.st.nodes[out.index as usize].bf16 = true;
        if req {
            self.record(out, RoundBackward { x, grad });
        }
        Ok(out)
    }

    /// Whether `v` holds bfloat16 values only (see [`Recording::round_bf16`]).
    pub fn is_bf16(&self, v: Var) -> bool {
        self.tape.st.nodes.get(v.index as usize).is_some_and(|n| n.bf16 && v.step == self.tape.st.step)
    }

    /// The numeric policy of the layers recording here ([`Tape::set_precision`](crate::Tape::set_precision)).
    pub fn precision(&self) -> crate::Precision {
        self.tape.st.precision
    }
}
