//! [`Precision`]: the numeric policy a tape's layers follow — all f32, or Keras' `mixed_bfloat16`.

/// How the layers recording on a tape compute (set with [`Tape::set_precision`](crate::Tape::set_precision)).
///
/// Under [`Precision::MixedBfloat16`] every product of a layer (the `Dense` matrix product, the convolutions)
/// reads bfloat16 operands — its input, its kernel, and in the backward pass the gradient of its output, each
/// rounded to nearest even — and accumulates in f32; the product's output (bias included) is rounded to bf16
/// once. Everything else (activations, pooling, softmax, the loss, the weights and the optimizer) stays f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// Everything in f32 (Keras' `float32` policy).
    #[default]
    Float32,
    /// bf16 products with f32 accumulation, f32 variables (Keras' `mixed_bfloat16` policy).
    MixedBfloat16,
}

impl Precision {
    /// Whether products take bf16 operands.
    pub fn is_mixed_bf16(self) -> bool {
        self == Precision::MixedBfloat16
    }
}
