//! [`DTypePolicy`]: Keras' dtype policy of a model — `float32`, or `mixed_bfloat16` (bf16 products, f32
//! variables) — its names, its Keras 3 config, and the one-time notice when this CPU has no bf16 arithmetic.

use std::sync::atomic::{AtomicBool, Ordering};

use kiln_autograd::Precision;
use kiln_kernels::{DType, Kernels};
use serde_json::{Value, json};

use crate::error::{NnError, Result};

/// How a model's layers compute, by Keras' policy names ([`Model::set_dtype_policy`](crate::Model::set_dtype_policy)).
///
/// `mixed_bfloat16` keeps every weight, gradient and optimizer slot in f32 (saved as f32, as Keras saves them) and
/// runs the products of `Dense`, `Conv2D` and `DepthwiseConv2D` on bfloat16 operands with f32 accumulation: each
/// product reads its input and kernel rounded to bf16, and its output (bias included) is rounded to bf16, in the
/// backward pass too. Unlike Keras, which computes every op of such a layer in bf16, Kiln keeps the activation
/// functions, pooling, softmax and the loss in f32 on those bf16 values (one rounding per product instead of one
/// per op; Keras' guide asks for a float32 softmax anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DTypePolicy {
    /// Everything in f32 (Keras' default).
    #[default]
    Float32,
    /// bf16 products, f32 variables (Keras' `mixed_bfloat16`).
    MixedBfloat16,
}

impl DTypePolicy {
    /// The policy of a Keras name: `float32` or `mixed_bfloat16`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "float32" => Ok(DTypePolicy::Float32),
            "mixed_bfloat16" => Ok(DTypePolicy::MixedBfloat16),
            _ => {
                Err(NnError::Unknown { kind: "dtype policy", name: name.to_owned(), known: "float32, mixed_bfloat16" })
            }
        }
    }

    /// The Keras name.
    pub fn name(self) -> &'static str {
        match self {
            DTypePolicy::Float32 => "float32",
            DTypePolicy::MixedBfloat16 => "mixed_bfloat16",
        }
    }

    /// Keras' `compute_dtype`: the dtype the layers' products read.
    pub fn compute_dtype(self) -> &'static str {
        match self {
            DTypePolicy::Float32 => "float32",
            DTypePolicy::MixedBfloat16 => "bfloat16",
        }
    }

    /// Keras' `variable_dtype` (always f32 here).
    pub fn variable_dtype(self) -> &'static str {
        "float32"
    }

    /// The tape's precision for this policy.
    pub(crate) fn precision(self) -> Precision {
        match self {
            DTypePolicy::Float32 => Precision::Float32,
            DTypePolicy::MixedBfloat16 => Precision::MixedBfloat16,
        }
    }

    /// The policy as Keras 3 writes it in a layer's `dtype`.
    pub(crate) fn keras_config(self) -> Value {
        json!({"module": "keras", "class_name": "DTypePolicy", "config": {"name": self.name()}, "registered_name": null})
    }

    /// The policy a Keras `dtype` value names (`null`, a dtype string of Keras 2, a `DTypePolicy` dict of Keras
    /// 3), or `None` for one Kiln does not run.
    pub(crate) fn from_keras(value: &Value) -> Option<Self> {
        let name = match value {
            Value::Null => return Some(DTypePolicy::Float32),
            Value::String(s) => s.as_str(),
            Value::Object(o) => {
                // Keras 3 writes `DTypePolicy` (`FloatDTypePolicy` in 3.1–3.3), tf.keras 2 `Policy`.
                let known = |c: &str| matches!(c, "DTypePolicy" | "FloatDTypePolicy" | "Policy");
                if o.get("class_name").and_then(Value::as_str).is_some_and(|c| !known(c)) {
                    return None;
                }
                o.get("config").and_then(|c| c.get("name")).and_then(Value::as_str)?
            }
            _ => return None,
        };
        DTypePolicy::from_name(name).ok()
    }

    /// The GEMM the layers' matrix products run on under this policy with `kernels`: the f32 kernel, the native
    /// bf16 kernel, or — bf16 policy on a CPU without bf16 arithmetic — the f32 kernel on bf16 values.
    pub fn product_gemm(self, kernels: &Kernels) -> String {
        match self {
            DTypePolicy::Float32 => kernels.gemm_name().to_owned(),
            DTypePolicy::MixedBfloat16 if kernels.native(DType::BF16) => kernels.gemm_name_for(DType::BF16),
            DTypePolicy::MixedBfloat16 => format!("{} on bf16 values", kernels.gemm_name()),
        }
    }

    /// Says once per process, on standard error, that `mixed_bfloat16` has no bf16 arithmetic to run on with
    /// `kernels`: its products then run on the f32 GEMM (bf16 numerics, no bf16 speed).
    pub(crate) fn notice_widening(self, kernels: &Kernels) {
        static SAID: AtomicBool = AtomicBool::new(false);
        if self == DTypePolicy::MixedBfloat16 && !kernels.native(DType::BF16) && !SAID.swap(true, Ordering::Relaxed) {
            eprintln!(
                "kiln: mixed_bfloat16 on a CPU without bf16 arithmetic ({}): the products run as {} — bf16 \
                 numerics, but slower than float32 here",
                kernels.isa(),
                self.product_gemm(kernels)
            );
        }
    }
}

impl std::fmt::Display for DTypePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DTypePolicy {
    type Err = NnError;
    fn from_str(s: &str) -> Result<Self> {
        DTypePolicy::from_name(s)
    }
}
