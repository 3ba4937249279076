//! Keras model files made by real Keras 3.15.1 (`benches/reference/keras_files.py make`, in
//! `fixtures/keras_files/`): the notebook's Sequential model, the Fashion flagship (Rescaling, RandomFlip,
//! BatchNormalization, ReLU, Dropout), a small Sequential with RMSprop state, a functional graph with merges and
//! Adam state, Adam under a warmup CosineDecay, a legacy `.h5` by Keras 3 and one by Keras 2 (tf_keras 2.21).
//! Each loads, predicts Keras' probabilities for fixed inputs, and takes one more training step equal to the step
//! Keras takes after loading its own file (which needs the optimizer state and `iterations` read back).
//! Tolerance 1e-5: float32 sums of at most a few thousand O(1) products per output.

use std::io::Read;

use kiln_nn::prelude::*;
use kiln_nn::{NnError, Result};
use kiln_tensor::Tensor;
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keras_files");

fn expected() -> Value {
    let text = std::fs::read_to_string(format!("{DIR}/expected.json")).expect("fixture expectations");
    serde_json::from_str(&text).expect("valid JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("a list").iter().map(|x| x.as_f64().expect("a number") as f32).collect()
}

fn shape(e: &Value, n: usize) -> Vec<usize> {
    let mut s = vec![n];
    s.extend(e["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize));
    s
}

fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: kiln {g} vs keras {w}");
    }
}

fn check_predictions(name: &str, model: &mut Model, e: &Value) {
    let x = floats(&e["x"]);
    let x = Tensor::from_slice(&shape(e, x.len() / model.input_shape().iter().product::<usize>()), &x).unwrap();
    let p = model.predict(&x, 4).unwrap();
    close(&format!("{name} predictions"), p.as_slice(), &floats(&e["predictions"]), 1e-5);
}

/// One more training step on Keras' batch: its loss and the predictions after it.
fn check_step(name: &str, model: &mut Model, e: &Value) {
    let xs = floats(&e["step_x"]);
    let n = e["step_y"].as_array().unwrap().len();
    let xs = Tensor::from_slice(&shape(e, n), &xs).unwrap();
    let labels: Vec<f32> = floats(&e["step_y"]);
    let c = model.compiled().expect("compiled from the file");
    let ys = if c.loss == kiln_nn::Loss::CategoricalCrossentropy {
        let mut one_hot = vec![0.0; n * 10];
        for (i, &l) in labels.iter().enumerate() {
            one_hot[i * 10 + l as usize] = 1.0;
        }
        Tensor::from_slice(&[n, 10], &one_hot).unwrap()
    } else {
        Tensor::from_slice(&[n], &labels).unwrap()
    };
    let stats = model.train_on_batch(&xs, &ys).unwrap();
    let want = e["step_loss"].as_f64().unwrap() as f32;
    assert!(
        (stats.loss - want).abs() <= 1e-5 * want.abs().max(1.0),
        "{name} step loss: kiln {} vs keras {want}",
        stats.loss
    );
    let x = floats(&e["x"]);
    let x = Tensor::from_slice(&shape(e, x.len() / model.input_shape().iter().product::<usize>()), &x).unwrap();
    let p = model.predict(&x, 4).unwrap();
    close(&format!("{name} predictions after a step"), p.as_slice(), &floats(&e["after_step"]), 1e-5);
}

#[test]
fn every_keras_fixture_predicts_and_trains_on_as_in_keras() {
    let exp = expected();
    for (name, e) in exp.as_object().unwrap() {
        let file = format!("{DIR}/{}", e["file"].as_str().unwrap());
        let mut model = Model::load_keras(&file).unwrap_or_else(|err| panic!("{name}: {err}"));
        check_predictions(name, &mut model, e);
        if e.get("step_x").is_some() {
            check_step(name, &mut model, e);
        }
    }
}

#[test]
fn the_fixtures_keep_keras_names_order_and_settings() {
    let seed = Model::load_keras(format!("{DIR}/seed.keras")).unwrap();
    assert_eq!(seed.count_params(), 203_068);
    assert!(seed.is_chain());
    let c = seed.compiled().unwrap();
    assert_eq!(c.optimizer.name(), "rmsprop");
    assert!(c.accuracy);
    let fashion = Model::load_keras(format!("{DIR}/fashion.keras")).unwrap();
    let classes: Vec<&str> = fashion.layers().iter().map(|l| l.1).collect();
    assert_eq!(&classes[..5], &["Rescaling", "RandomFlip", "Conv2D", "BatchNormalization", "ReLU"]);
    assert_eq!(fashion.compiled().unwrap().optimizer, Optimizer::adam());
    // The fresh Adam the file holds: no state, no steps.
    assert_eq!(fashion.iterations(), 0);
    let small = Model::load_keras(format!("{DIR}/small.keras")).unwrap();
    assert_eq!(small.iterations(), 3);
    let residual = Model::load_keras(format!("{DIR}/residual.keras")).unwrap();
    assert_eq!(residual.iterations(), 3);
    assert!(!residual.is_chain());
    assert!(residual.summary().contains("Connected to"));
    // A schedule drives the rate: Keras then stores no learning_rate variable, only iterations and the moments.
    let schedule = Model::load_keras(format!("{DIR}/schedule.keras")).unwrap();
    assert!(schedule.learning_rate_schedule().is_some());
    assert_eq!(schedule.iterations(), 3);
}

fn entry(file: &str, name: &str) -> Vec<u8> {
    let bytes = std::fs::read(format!("{DIR}/{file}")).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = Vec::new();
    zip.by_name(name).unwrap().read_to_end(&mut out).unwrap();
    out
}

#[test]
fn keras_weights_files_load_into_a_model_of_the_same_architecture() {
    let exp = expected();
    let mut model = Model::load_keras(format!("{DIR}/residual.keras")).unwrap();
    let keras_weights = entry("residual.keras", "model.weights.h5");
    // Scramble, then read Keras' own weights file (what `save_weights("m.weights.h5")` writes).
    let zeros: Vec<Tensor> = model.get_weights().unwrap().iter().map(|w| Tensor::zeros(w.dims()).unwrap()).collect();
    model.set_weights(&zeros).unwrap();
    model.load_keras_weights_from_slice(&keras_weights).unwrap();
    check_predictions("residual from its weights file", &mut model, &exp["residual"]);
}

#[test]
fn a_kiln_written_keras_file_reads_back_to_the_same_model_and_state() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    for name in ["seed", "small", "residual", "fashion", "legacy", "keras2", "schedule"] {
        let e = &exp[name];
        let model = Model::load_keras(format!("{DIR}/{}", e["file"].as_str().unwrap())).unwrap();
        let path = dir.path().join(format!("{name}.keras"));
        model.save_keras(&path).unwrap();
        let mut again = Model::load_keras(&path).unwrap();
        assert_eq!(again.layers(), model.layers(), "{name}");
        assert_eq!(again.inbound(), model.inbound(), "{name}");
        assert_eq!(again.compiled(), model.compiled(), "{name}");
        assert_eq!(again.iterations(), model.iterations(), "{name}");
        for ((a, wa), (b, wb)) in again.weights().unwrap().iter().zip(model.weights().unwrap().iter()) {
            assert_eq!(a, b);
            assert_eq!(wa.as_slice(), wb.as_slice(), "{name}: {a}");
        }
        check_predictions(name, &mut again, e);
        if e.get("step_x").is_some() && name != "legacy" {
            // The optimizer state went through Kiln's file: the next step is still Keras'.
            check_step(name, &mut again, e);
        }
        // And weights-only, Keras 3 layout.
        let wpath = dir.path().join(format!("{name}.weights.h5"));
        model.save_keras_weights(&wpath).unwrap();
        again.load_keras_weights(&wpath).unwrap();
    }
}

fn unsupported(r: Result<Model>) -> (String, String) {
    match r {
        Err(NnError::Unsupported { layer, option, .. }) => (layer, option),
        Err(e) => panic!("expected Unsupported, got {e}"),
        Ok(_) => panic!("expected Unsupported, the file loaded"),
    }
}

/// `seed.keras` with its config edited by `edit`.
fn edited(edit: impl Fn(&mut Value)) -> Vec<u8> {
    edited_file("seed.keras", edit)
}

/// A fixture archive with its config edited by `edit`.
fn edited_file(file: &str, edit: impl Fn(&mut Value)) -> Vec<u8> {
    use std::io::Write;
    let mut cfg: Value = serde_json::from_slice(&entry(file, "config.json")).unwrap();
    edit(&mut cfg);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in [
        ("metadata.json", entry(file, "metadata.json")),
        ("config.json", serde_json::to_vec(&cfg).unwrap()),
        ("model.weights.h5", entry(file, "model.weights.h5")),
    ] {
        zip.start_file(name, opts).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn options_kiln_lacks_are_refused_naming_layer_and_option() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("groups", Box::new(|c: &mut Value| c["config"]["layers"][1]["config"]["groups"] = 3.into()), "groups"),
        (
            "regularizer",
            Box::new(|c: &mut Value| {
                c["config"]["layers"][1]["config"]["kernel_regularizer"] = serde_json::json!({"class_name": "L2"})
            }),
            "kernel_regularizer",
        ),
        (
            "frozen",
            Box::new(|c: &mut Value| c["config"]["layers"][4]["config"]["trainable"] = false.into()),
            "trainable",
        ),
        (
            "bf16",
            Box::new(|c: &mut Value| {
                c["config"]["layers"][4]["config"]["dtype"]["config"]["name"] = "mixed_bfloat16".into()
            }),
            "dtype",
        ),
        (
            "unknown option",
            Box::new(|c: &mut Value| c["config"]["layers"][2]["config"]["frobnicate"] = 1.into()),
            "frobnicate",
        ),
        ("class", Box::new(|c: &mut Value| c["config"]["layers"][3]["class_name"] = "LSTM".into()), "class_name"),
        (
            "clipnorm",
            Box::new(|c: &mut Value| c["compile_config"]["optimizer"]["config"]["clipnorm"] = 1.0.into()),
            "clipnorm",
        ),
        (
            "centered",
            Box::new(|c: &mut Value| c["compile_config"]["optimizer"]["config"]["centered"] = true.into()),
            "centered",
        ),
        (
            "optimizer",
            Box::new(|c: &mut Value| c["compile_config"]["optimizer"]["class_name"] = "Lion".into()),
            "class_name",
        ),
        (
            "loss",
            Box::new(|c: &mut Value| {
                c["compile_config"]["loss"] =
                    serde_json::json!({"class_name": "CategoricalCrossentropy", "config": {"from_logits": true}})
            }),
            "from_logits",
        ),
    ];
    for (what, edit, option) in cases {
        let (_, got) = unsupported(Model::load_keras_from_slice(&edited(edit)));
        assert_eq!(got, option, "{what}");
    }
    // Keras 2's BatchNormalization axis: the last input axis reads as Kiln's -1; any other is refused.
    let bn = |axis: Value| {
        move |c: &mut Value| {
            for l in c["config"]["layers"].as_array_mut().unwrap() {
                if l["class_name"] == "BatchNormalization" {
                    l["config"]["axis"] = axis.clone();
                }
            }
        }
    };
    assert!(Model::load_keras_from_slice(&edited_file("residual.keras", bn(serde_json::json!([3])))).is_ok());
    let (layer, option) =
        unsupported(Model::load_keras_from_slice(&edited_file("residual.keras", bn(serde_json::json!([2])))));
    assert_eq!((layer.as_str(), option.as_str()), ("batch_normalization_10 (BatchNormalization)", "axis"));
    // The layer is named with its class.
    let (layer, _) =
        unsupported(Model::load_keras_from_slice(&edited(|c| c["config"]["layers"][1]["config"]["groups"] = 3.into())));
    assert!(layer.contains("Conv2D"), "{layer}");
}

#[test]
fn damaged_files_are_typed_errors_naming_the_entry() {
    let good = std::fs::read(format!("{DIR}/small.keras")).unwrap();
    // Truncated anywhere: a typed error, never a panic.
    for cut in [0, 2, 10, 100, good.len() / 2, good.len() - 30, good.len() - 1] {
        assert!(Model::load_keras_from_slice(&good[..cut]).is_err(), "cut at {cut}");
    }
    // A weights file whose dataset has the wrong shape for the config.
    let bad = edited(|c| c["config"]["layers"][4]["config"]["units"] = 85.into());
    match Model::load_keras_from_slice(&bad) {
        Err(NnError::KerasFile { entry, message, .. }) => {
            assert!(entry.starts_with("model.weights.h5:layers/dense/vars/0"), "{entry}");
            assert!(message.contains("shape"), "{message}");
        }
        other => panic!("expected a KerasFile error, got {other:?}"),
    }
    // Missing entries.
    match Model::load_keras_from_slice(&edited_without("config.json")) {
        Err(NnError::KerasFile { entry, .. }) => assert_eq!(entry, "config.json"),
        other => panic!("expected a KerasFile error, got {other:?}"),
    }
    assert!(matches!(Model::load_keras_from_slice(b"not a model"), Err(NnError::KerasFile { .. })));
}

fn edited_without(skip: &str) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for name in ["metadata.json", "config.json", "model.weights.h5"] {
        if name != skip {
            zip.start_file(name, opts).unwrap();
            zip.write_all(&entry("seed.keras", name)).unwrap();
        }
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn relu_options_away_from_the_plain_rectifier_are_refused() {
    use kiln_nn::layers::ReLU;
    assert!(ReLU::from_config(&serde_json::json!({"name": "r", "max_value": null, "negative_slope": 0.0})).is_ok());
    for (key, value) in [("max_value", 6.0), ("negative_slope", 0.1), ("threshold", 0.5)] {
        match ReLU::from_config(&serde_json::json!({ "name": "r", key: value })) {
            Err(NnError::Unsupported { option, .. }) => assert_eq!(option, key),
            other => panic!("{key}: expected Unsupported, got {other:?}"),
        }
    }
}

/// A weights file for the `small` fixture's architecture with one dataset replaced by `bad` (written by hand, as
/// another tool might).
fn small_weights_with(bad: impl Fn(&mut hdf5_pure::GroupBuilder)) -> Vec<u8> {
    let mut b = hdf5_pure::FileBuilder::new();
    let mut layers = b.create_group("layers");
    for (k, (path, shapes)) in
        [("dense", [[12u64, 16], [16, 0]]), ("dense_1", [[16, 8], [8, 0]]), ("dense_2", [[8, 10], [10, 0]])]
            .iter()
            .enumerate()
    {
        let mut l = layers.create_group(path);
        let mut vars = l.create_group("vars");
        for (i, s) in shapes.iter().enumerate() {
            let dims: Vec<u64> = s.iter().copied().filter(|&d| d > 0).collect();
            let n = dims.iter().product::<u64>() as usize;
            if k == 1 && i == 0 {
                bad(&mut vars);
            } else {
                vars.create_dataset(&i.to_string()).with_f32_data(&vec![0.5; n]).with_shape(&dims);
            }
        }
        l.add_group(vars.finish());
        layers.add_group(l.finish());
    }
    b.add_group(layers.finish());
    b.finish().unwrap()
}

#[test]
fn weights_of_the_wrong_dtype_or_shape_name_the_dataset() {
    let mut model = Model::load_keras(format!("{DIR}/small.keras")).unwrap();
    let before = model.get_weights().unwrap();
    let good = small_weights_with(|v| {
        v.create_dataset("0").with_f32_data(&[0.5; 128]).with_shape(&[16, 8]);
    });
    model.load_keras_weights_from_slice(&good).unwrap();
    model.set_weights(&before).unwrap();
    let f64_kernel = small_weights_with(|v| {
        v.create_dataset("0").with_f64_data(&[0.5; 128]).with_shape(&[16, 8]);
    });
    let wrong_shape = small_weights_with(|v| {
        v.create_dataset("0").with_f32_data(&[0.5; 128]).with_shape(&[8, 16]);
    });
    for (bytes, needle) in [(f64_kernel, "dtype"), (wrong_shape, "shape")] {
        match model.load_keras_weights_from_slice(&bytes) {
            Err(NnError::KerasFile { entry, message, .. }) => {
                assert_eq!(entry, "layers/dense_1/vars/0");
                assert!(message.contains(needle), "{message}");
            }
            other => panic!("expected a KerasFile error, got {other:?}"),
        }
        // Nothing changed.
        for (a, b) in model.get_weights().unwrap().iter().zip(&before) {
            assert_eq!(a.as_slice(), b.as_slice());
        }
    }
}

#[test]
fn absurd_shapes_in_a_config_are_refused_before_allocating() {
    let huge = edited(|c| {
        c["config"]["layers"][0]["config"]["batch_shape"] =
            serde_json::json!([null, 4_000_000_000u64, 4_000_000_000u64, 1])
    });
    assert!(Model::load_keras_from_slice(&huge).is_err());
    let units = edited(|c| c["config"]["layers"][4]["config"]["units"] = serde_json::json!(4_000_000_000_000u64));
    assert!(Model::load_keras_from_slice(&units).is_err());
}

/// Keras' `mixed_bfloat16` policy on every layer (as Keras writes it under `set_global_policy`) loads as the
/// model's policy and is written back so; a model mixing policies, or a policy Kiln does not run, is refused
/// naming the layer.
#[test]
fn dtype_policies_load_and_save() {
    let policy = |name: &str| serde_json::json!({"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": null});
    let set_all = |name: &'static str| {
        move |c: &mut Value| {
            for l in c["config"]["layers"].as_array_mut().unwrap() {
                if l["class_name"] != "InputLayer" {
                    l["config"]["dtype"] = policy(name);
                }
            }
            c["config"]["dtype"] = policy(name);
        }
    };
    let plain = Model::load_keras_from_slice(&entry_file("seed.keras")).unwrap();
    assert_eq!(plain.dtype_policy(), DTypePolicy::Float32);
    let mixed = Model::load_keras_from_slice(&edited(set_all("mixed_bfloat16"))).unwrap();
    assert_eq!(mixed.dtype_policy(), DTypePolicy::MixedBfloat16);
    // The weights are the file's f32 values, whatever the policy.
    assert_eq!(plain.weights().unwrap(), mixed.weights().unwrap());
    let (layer, option) = unsupported(Model::load_keras_from_slice(&edited(|c| {
        set_all("mixed_bfloat16")(c);
        c["config"]["layers"][2]["config"]["dtype"] = policy("float32");
    })));
    assert_eq!(option, "dtype");
    assert!(!layer.is_empty());
    let (_, option) = unsupported(Model::load_keras_from_slice(&edited(set_all("mixed_float16"))));
    assert_eq!(option, "dtype");
    // tf.keras 2 spells the policy `Policy`.
    let keras2 = Model::load_keras_from_slice(&edited(|c| {
        for l in c["config"]["layers"].as_array_mut().unwrap() {
            if l["class_name"] != "InputLayer" {
                l["config"]["dtype"] =
                    serde_json::json!({"class_name": "Policy", "config": {"name": "mixed_bfloat16"}});
            }
        }
    }))
    .unwrap();
    assert_eq!(keras2.dtype_policy(), DTypePolicy::MixedBfloat16);

    // Kiln writes the policy on every layer, and reads it back (.keras and model.json).
    let bytes = mixed.to_keras_bytes().unwrap();
    let back = Model::load_keras_from_slice(&bytes).unwrap();
    assert_eq!(back.dtype_policy(), DTypePolicy::MixedBfloat16);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut text = String::new();
    zip.by_name("config.json").unwrap().read_to_string(&mut text).unwrap();
    let cfg: Value = serde_json::from_str(&text).unwrap();
    for l in cfg["config"]["layers"].as_array().unwrap().iter().filter(|l| l["class_name"] != "InputLayer") {
        assert_eq!(l["config"]["dtype"], policy("mixed_bfloat16"), "{}", l["config"]["name"]);
    }
    let json = Model::from_json_slice(&serde_json::to_vec(&mixed.to_json()).unwrap()).unwrap();
    assert_eq!(json.dtype_policy(), DTypePolicy::MixedBfloat16);
}

fn entry_file(file: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{file}")).unwrap()
}
