//! Keras' compile settings — `compile_config` of a `.keras` archive, `training_config` of a legacy `.h5` — read
//! into Kiln's loss, optimizer, schedule and metrics, and written from them.

use serde_json::{Map, Value, json};

use super::config::Source;
use crate::error::{NnError, Result};
use crate::model::{Compiled, Model};
use crate::optim::{Loss, Optimizer};
use crate::schedules::LearningRateSchedule;

/// Kiln's optimizer name for a Keras optimizer class (Keras 2.11+ wrote some as `Custom>Adam`).
fn kiln_optimizer(class: &str) -> Option<&'static str> {
    match class.trim_start_matches("Custom>") {
        "RMSprop" => Some("rmsprop"),
        "Adam" => Some("adam"),
        "AdamW" => Some("adamw"),
        "SGD" => Some("sgd"),
        _ => None,
    }
}

/// Keras' optimizer class for a Kiln optimizer.
fn keras_optimizer_class(o: Optimizer) -> &'static str {
    match o {
        Optimizer::RmsProp(_) => "RMSprop",
        Optimizer::Adam(_) => "Adam",
        Optimizer::AdamW(_) => "AdamW",
        Optimizer::Sgd(_) => "SGD",
    }
}

/// Whether an optimizer option at this value is one Kiln implements (for `class`'s own hyper-parameters the
/// value is read, not checked here).
fn optimizer_option_ok(kiln: &str, key: &str, value: &Value) -> bool {
    let zero = || value.is_null() || value.as_f64() == Some(0.0);
    match key {
        "name"
        | "jit_compile"
        | "ema_momentum"
        | "ema_overwrite_frequency"
        | "learning_rate"
        | "lr"
        | "weight_decay"
        | "epsilon" => true,
        "clipnorm" | "global_clipnorm" | "clipvalue" | "loss_scale_factor" | "gradient_accumulation_steps" => {
            value.is_null()
        }
        "use_ema" | "is_legacy_optimizer" | "amsgrad" | "centered" => value == &Value::Bool(false) || value.is_null(),
        // Keras 2's per-step learning-rate decay.
        "decay" => zero(),
        "rho" => kiln == "rmsprop",
        "momentum" => kiln == "sgd" || (kiln == "rmsprop" && zero()),
        "beta_1" | "beta_2" => kiln == "adam" || kiln == "adamw",
        "nesterov" => kiln == "sgd",
        _ => false,
    }
}

/// Reads a Keras optimizer (a serialized object, or a name) into Kiln's optimizer and schedule.
fn read_optimizer(src: Source<'_>, v: &Value) -> Result<(Optimizer, Option<LearningRateSchedule>)> {
    if let Some(name) = v.as_str() {
        return Ok((Optimizer::from_name(name)?, None));
    }
    let class =
        v.get("class_name").and_then(Value::as_str).ok_or_else(|| src.err("the optimizer lacks `class_name`"))?;
    let kiln = kiln_optimizer(class).ok_or_else(|| NnError::unsupported("optimizer", "class_name", class))?;
    let empty = Map::new();
    let cfg = v.get("config").and_then(Value::as_object).unwrap_or(&empty);
    for (key, value) in cfg {
        if !optimizer_option_ok(kiln, key, value) {
            return Err(NnError::unsupported(format!("optimizer ({class})"), key, value));
        }
    }
    let defaults = Optimizer::from_name(kiln)?.config();
    let mut kiln_cfg = defaults.as_object().cloned().unwrap_or_default();
    for (key, value) in cfg {
        let key = if key == "lr" { "learning_rate" } else { key.as_str() };
        if kiln_cfg.contains_key(key) && key != "name" {
            kiln_cfg.insert(key.to_owned(), value.clone());
        }
    }
    let mut schedule = None;
    if let Some(lr) = kiln_cfg.get("learning_rate").filter(|v| v.is_object()) {
        let s = LearningRateSchedule::from_config(lr)?;
        kiln_cfg.insert("learning_rate".into(), json!(s.at(0)));
        schedule = Some(s);
    }
    Ok((Optimizer::from_config(&Value::Object(kiln_cfg))?, schedule))
}

/// A Keras loss: a name, or a serialized loss object without options Kiln lacks.
fn read_loss(v: &Value) -> Result<Loss> {
    if let Some(name) = v.as_str() {
        return Loss::from_name(name);
    }
    let class = v.get("class_name").and_then(Value::as_str).unwrap_or("");
    let name = match class {
        "SparseCategoricalCrossentropy" => "sparse_categorical_crossentropy",
        "CategoricalCrossentropy" => "categorical_crossentropy",
        "MeanSquaredError" => "mean_squared_error",
        _ => return Err(NnError::unsupported("compile", "loss", v)),
    };
    for (key, value) in v.get("config").and_then(Value::as_object).into_iter().flatten() {
        let ok = match key.as_str() {
            "name" | "dtype" => true,
            "reduction" => value == "sum_over_batch_size" || value == "auto",
            "from_logits" => value == &Value::Bool(false),
            "label_smoothing" => value.as_f64() == Some(0.0),
            "axis" => value.as_i64() == Some(-1),
            "ignore_class" => value.is_null(),
            _ => false,
        };
        if !ok {
            return Err(NnError::unsupported(format!("loss ({class})"), key, value));
        }
    }
    Loss::from_name(name)
}

/// Whether the metrics list asks for accuracy (names or serialized metric objects, possibly nested per output).
fn read_metrics(v: &Value) -> Result<bool> {
    let mut accuracy = false;
    let mut stack = vec![v];
    while let Some(m) = stack.pop() {
        match m {
            Value::Null => {}
            Value::Array(list) => stack.extend(list),
            Value::String(name) => {
                crate::optim::Metric::from_name(name).map_err(|_| NnError::unsupported("compile", "metrics", name))?;
                accuracy = true;
            }
            Value::Object(o) => {
                // Keras 2 wraps `metrics=["accuracy"]` as a MeanMetricWrapper of `categorical_accuracy` (or another
                // accuracy function); any other wrapped function is a metric Kiln lacks.
                let wrapped = o.get("config").and_then(|c| c.get("fn")).and_then(Value::as_str);
                match (o.get("class_name").and_then(Value::as_str), wrapped) {
                    (Some("Accuracy" | "SparseCategoricalAccuracy" | "CategoricalAccuracy"), _) => accuracy = true,
                    (Some("MeanMetricWrapper"), Some(f)) if crate::optim::Metric::from_name(f).is_ok() => {
                        accuracy = true
                    }
                    _ => return Err(NnError::unsupported("compile", "metrics", m)),
                }
            }
            other => return Err(NnError::unsupported("compile", "metrics", other)),
        }
    }
    Ok(accuracy)
}

/// Compiles `model` as the Keras compile settings `cc` say (Keras 3 `compile_config`, or Keras 2
/// `training_config` whose optimizer is `optimizer_config`).
pub(crate) fn compile_from_keras(src: Source<'_>, model: &mut Model, cc: &Value) -> Result<()> {
    let loss = read_loss(cc.get("loss").ok_or_else(|| src.err("the compile settings lack `loss`"))?)?;
    let opt = cc
        .get("optimizer")
        .or_else(|| cc.get("optimizer_config"))
        .ok_or_else(|| src.err("the compile settings lack `optimizer`"))?;
    let (optimizer, schedule) = read_optimizer(src, opt)?;
    for key in ["loss_weights", "weighted_metrics"] {
        if let Some(v) = cc.get(key).filter(|v| !v.is_null()) {
            return Err(NnError::unsupported("compile", key, v));
        }
    }
    let accuracy = read_metrics(cc.get("metrics").unwrap_or(&Value::Null))?;
    model.compile_with(Compiled { loss, optimizer, accuracy })?;
    model.schedule = schedule;
    Ok(())
}

/// Keras 3's serialized optimizer for `model`'s (with its schedule in place of the rate, if any).
pub(crate) fn optimizer_to_keras(model: &Model, o: Optimizer) -> Value {
    let mut cfg = o.config();
    if let Some(c) = cfg.as_object_mut() {
        c.insert("name".into(), json!(o.name()));
        if let Some(s) = &model.schedule {
            let mut sc = s.config();
            sc["module"] = json!("keras.optimizers.schedules");
            sc["registered_name"] = Value::Null;
            c.insert("learning_rate".into(), sc);
        }
        for (k, v) in [
            ("clipnorm", Value::Null),
            ("global_clipnorm", Value::Null),
            ("clipvalue", Value::Null),
            ("use_ema", json!(false)),
            ("ema_momentum", json!(0.99)),
            ("ema_overwrite_frequency", Value::Null),
            ("loss_scale_factor", Value::Null),
            ("gradient_accumulation_steps", Value::Null),
        ] {
            c.insert(k.into(), v);
        }
        match o {
            Optimizer::RmsProp(_) => {
                c.insert("momentum".into(), json!(0.0));
                c.insert("centered".into(), json!(false));
            }
            Optimizer::Adam(_) | Optimizer::AdamW(_) => {
                c.insert("amsgrad".into(), json!(false));
            }
            Optimizer::Sgd(_) => {}
        }
    }
    json!({"module": "keras.optimizers", "class_name": keras_optimizer_class(o), "config": cfg, "registered_name": null})
}

/// Keras 3's `compile_config` for a compiled model.
pub(crate) fn compile_to_keras(model: &Model, c: Compiled) -> Value {
    json!({
        "optimizer": optimizer_to_keras(model, c.optimizer),
        "loss": c.loss.name(),
        "loss_weights": null,
        "metrics": if c.accuracy { json!(["accuracy"]) } else { Value::Null },
        "weighted_metrics": null,
        "run_eagerly": false,
        "steps_per_execution": 1,
        "jit_compile": false,
    })
}
