//! The product at the heart of `Dense`, `Conv2D` and `DepthwiseConv2D`, under the model's dtype policy: in
//! `float32` as it is; in `mixed_bfloat16` on bf16 operands — the input and the kernel rounded to bf16, the f32
//! master kernel left untouched and receiving its gradient in full — with the output (bias included) rounded to
//! bf16 and the gradient reaching the product rounded likewise, as Keras' bf16 layers have it.

use kiln_autograd::{GradRounding, Recording, Var};

use crate::error::Result;

/// `product(rec, x, w)` under the policy of `rec`'s tape (see the module docs).
pub(crate) fn under_policy(
    rec: &mut Recording<'_, '_>,
    x: Var,
    w: Var,
    product: impl FnOnce(&mut Recording<'_, '_>, Var, Var) -> kiln_autograd::Result<Var>,
) -> Result<Var> {
    if !rec.precision().is_mixed_bf16() {
        return Ok(product(rec, x, w)?);
    }
    let x = rec.round_bf16(x, GradRounding::Bf16)?;
    let w = rec.round_bf16(w, GradRounding::Exact)?;
    let y = product(rec, x, w)?;
    Ok(rec.round_bf16(y, GradRounding::Bf16)?)
}
