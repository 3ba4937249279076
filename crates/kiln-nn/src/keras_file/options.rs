//! Checking a Keras layer config against what Kiln built from it, so nothing Kiln does not implement is
//! silently dropped: every option of the Keras config must either be one Kiln read (it then appears, equal, in
//! the Kiln layer's own config), or one whose value cannot change what the loaded layer computes (a name, an
//! initializer once the weights are loaded), or sit at the Keras default Kiln implements. Anything else is
//! [`NnError::Unsupported`](crate::NnError::Unsupported), naming the layer and the option.

use serde_json::Value;

use crate::error::{NnError, Result};
use crate::layer::Layer;
use crate::policy::DTypePolicy;

/// Options that do not change what a layer with loaded weights computes, with the values that keep it so.
fn harmless(key: &str, value: &Value) -> bool {
    match key {
        "name" | "seed" | "batch_input_shape" | "batch_shape" | "shared_object_id" => true,
        // Kiln has no frozen layers yet.
        "trainable" => value == &Value::Bool(true),
        // The model-wide policy is read apart (`config::model_policy`).
        "dtype" => DTypePolicy::from_keras(value).is_some(),
        k if k.ends_with("_initializer") => true,
        k if k.ends_with("_regularizer") || k.ends_with("_constraint") => value.is_null(),
        "data_format" => value.is_null() || value == "channels_last",
        "groups" => value.as_u64() == Some(1),
        "noise_shape"
        | "lora_rank"
        | "quantization_config"
        | "renorm_clipping"
        | "virtual_batch_size"
        | "adjustment"
        | "fused" => value.is_null(),
        // Meaningful only with LoRA or renorm, both refused above.
        "lora_alpha" | "renorm_momentum" => true,
        "synchronized" | "renorm" => value == &Value::Bool(false),
        "interpolation" => value == "bilinear",
        "fill_value" => value.as_f64() == Some(0.0),
        "fill_mode" => value == "reflect",
        _ => false,
    }
}

/// Whether a Keras value equals the value Kiln's config holds (numbers to float32 precision, activations by
/// meaning: `silu` is `swish`).
fn same(key: &str, keras: &Value, kiln: &Value) -> bool {
    match (keras, kiln) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-30) || a == b,
            _ => false,
        },
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(key, x, y)),
        (Value::String(a), Value::String(b)) if key == "activation" => {
            a == b || kiln_autograd::Activation::from_name(a) == kiln_autograd::Activation::from_name(b)
        }
        // Pooling strides `None` mean the pool size, which Kiln's config spells out.
        (Value::Null, Value::Array(_)) => key == "strides",
        // Keras 2 writes a single pool size or stride as a number where Kiln has a pair.
        (Value::Number(_), Value::Array(b)) => b.iter().all(|y| same(key, keras, y)),
        _ => keras == kiln,
    }
}

/// Checks every option of `keras` (a Keras layer config) against `layer`, the Kiln layer built from it.
pub(crate) fn check_layer(class: &str, keras: &Value, layer: &dyn Layer) -> Result<()> {
    let Some(opts) = keras.as_object() else {
        return Err(NnError::unsupported(class, "config", keras));
    };
    let kiln = layer.config();
    let who = || format!("{} ({class})", layer.name().or(opts.get("name").and_then(Value::as_str)).unwrap_or("?"));
    for (key, value) in opts {
        let ok = match kiln.get(key) {
            Some(k) if key != "name" => same(key, value, k),
            _ => harmless(key, value),
        };
        if !ok {
            return Err(NnError::unsupported(who(), key, value));
        }
    }
    Ok(())
}
