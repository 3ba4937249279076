//! Functional merges against real Keras: a graph with a residual `Add` (BatchNormalization on one branch, a 1×1
//! shortcut from the input), a `Concatenate` of two branches and an `Add` of three inputs (one twice), from
//! `benches/reference/keras_merge.py` (Keras 3.15.1, TensorFlow 2.21) in `fixtures/keras_merge.json`: Keras'
//! layer order, its summary() with "Connected to", and two SGD steps from fixed weights (losses, every weight
//! incl. the moving statistics, predictions). Tolerance 1e-5: a few dozen products of O(1) values per output,
//! two steps of rate 0.1.

use kiln_nn::prelude::*;
use kiln_tensor::Tensor;
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/keras_merge.json")).expect("valid JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("a list").iter().map(|x| x.as_f64().expect("a number")).collect()
}

/// The Keras script's graph, written as a Kiln user would.
fn graph() -> kiln_nn::Result<Model> {
    let inp = Input::new(&[6, 6, 2]);
    let a = Conv2D::new(4, 3).padding(Padding::Same).activation(ActivationFn::Relu).call(&inp)?;
    let b = Conv2D::new(4, 3).padding(Padding::Same).call(&a)?;
    let b = BatchNormalization::new().call(&b)?;
    let s = Conv2D::new(4, 1).call(&inp)?;
    let r = Add::new().call_on(&[&b, &s])?;
    let r = Activation::new(ActivationFn::Relu).call(&r)?;
    let c = Concatenate::new().call_on(&[&r, &a])?;
    let g = GlobalAveragePooling2D::new().call(&c)?;
    let d = Dense::new(5).activation(ActivationFn::Tanh).call(&g)?;
    let e = Dense::new(5).call(&g)?;
    let m = Add::new().call_on(&[&d, &e, &d])?;
    let out = Dense::new(3).activation(ActivationFn::Softmax).call(&m)?;
    Model::new(&inp, &out)
}

fn model(f: &Value) -> Model {
    let mut m = graph().unwrap();
    m.compile("sparse_categorical_crossentropy", Optimizer::sgd().learning_rate(0.1), &["accuracy"]).unwrap();
    for w in f["init"].as_array().unwrap() {
        let dims: Vec<usize> = w[1].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let v: Vec<f32> = floats(&w[2]).into_iter().map(|v| v as f32).collect();
        m.set_weight(w[0].as_str().unwrap(), &Tensor::from_slice(&dims, &v).unwrap()).unwrap();
    }
    m
}

fn close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((f64::from(*g) - w).abs() <= 1e-5, "{what}[{i}]: kiln {g} vs keras {w}");
    }
}

fn batch(f: &Value) -> (Tensor, Tensor) {
    let x: Vec<f32> = floats(&f["x"]).into_iter().map(|v| v as f32).collect();
    let y: Vec<f32> = floats(&f["y"]).into_iter().map(|v| v as f32).collect();
    (Tensor::from_slice(&[8, 6, 6, 2], &x).unwrap(), Tensor::from_slice(&[8], &y).unwrap())
}

#[test]
fn layer_order_and_weights_follow_keras() {
    let f = fixture();
    let m = graph().unwrap();
    let want: Vec<(&str, &str)> = f["layers"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|l| (l[0].as_str().unwrap(), l[1].as_str().unwrap()))
        .collect();
    let got: Vec<(&str, &str)> = m.layers().iter().map(|l| (l.0, l.1)).collect();
    assert_eq!(got, want);
    let names: Vec<String> = m.weights().unwrap().into_iter().map(|(n, _)| n).collect();
    let keras: Vec<&str> = f["init"].as_array().unwrap().iter().map(|w| w[0].as_str().unwrap()).collect();
    assert_eq!(names, keras, "get_weights() order");
    assert_eq!(m.inbound()[4], ["batch_normalization", "conv2d_2"]);
}

#[test]
fn summary_has_keras_connected_to_column() {
    let f = fixture();
    assert_eq!(graph().unwrap().summary().trim_end(), f["summary"].as_str().unwrap().trim_end());
}

#[test]
fn two_sgd_steps_match_keras_with_and_without_replicas() {
    let f = fixture();
    let (x, y) = batch(&f);
    let mut bits = Vec::new();
    for (parallel, threads) in [(false, Some(2)), (true, Some(2)), (true, None)] {
        let mut m = model(&f);
        m.set_data_parallel(parallel);
        m.set_threads(threads).unwrap();
        let losses: Vec<f32> = (0..2).map(|_| m.train_on_batch(&x, &y).unwrap().loss).collect();
        close("losses", &losses, &floats(&f["losses"]));
        for ((name, got), want) in m.weights().unwrap().iter().zip(f["trained"].as_array().unwrap()) {
            close(name, got.as_slice(), &floats(want));
        }
        let p = m.predict(&x, 8).unwrap();
        close("predictions", p.as_slice(), &floats(&f["predictions"]));
        if parallel {
            bits.push(
                m.get_weights()
                    .unwrap()
                    .iter()
                    .flat_map(|t| t.as_slice().to_vec())
                    .map(f32::to_bits)
                    .collect::<Vec<_>>(),
            );
        }
    }
    assert_eq!(bits[0], bits[1], "data-parallel bits differ between 2 threads and 1");
}

#[test]
fn a_graph_saves_and_loads_with_its_wiring() {
    let f = fixture();
    let (x, y) = batch(&f);
    let mut m = model(&f);
    m.train_on_batch(&x, &y).unwrap();
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path()).unwrap();
    let mut back = Model::load(dir.path()).unwrap();
    // A saved model holds no optimizer state (checkpoints do), so Keras' "Optimizer params" row is gone.
    assert_eq!(back.summary(), graph().unwrap().summary());
    assert_eq!(back.inbound(), m.inbound());
    let (p, q) = (m.predict(&x, 8).unwrap(), back.predict(&x, 8).unwrap());
    assert_eq!(p.as_slice(), q.as_slice());
}

#[test]
fn bad_merges_are_typed_errors() {
    let inp = Input::new(&[4, 4, 2]);
    let a = Conv2D::new(3, 1).call(&inp).unwrap();
    let err = Add::new().call_on(&[&inp, &a]).unwrap_err().to_string();
    assert!(err.contains("one shape") && err.contains("[4, 4, 2]") && err.contains("[4, 4, 3]"), "{err}");
    let p = MaxPooling2D::new(2).call(&a).unwrap();
    let err = Concatenate::new().call_on(&[&a, &p]).unwrap_err().to_string();
    assert!(err.contains("every dimension but axis -1"), "{err}");
    let err = Concatenate::new().axis(0).call_on(&[&a, &a]).unwrap_err().to_string();
    assert!(err.contains("batch axis"), "{err}");
    let err = Concatenate::new().axis(4).call_on(&[&a, &a]).unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");
    assert!(Dense::new(2).call_on(&[&a, &a]).unwrap_err().to_string().contains("takes one input, not 2"));
    // Along the channels (axis 3 = −1) and the width (axis 2).
    assert_eq!(Concatenate::new().axis(3).call_on(&[&inp, &a]).unwrap().shape(), [4, 4, 5]);
    assert_eq!(Concatenate::new().axis(2).call_on(&[&a, &a, &a]).unwrap().shape(), [4, 12, 3]);
    // A branch from another input: Keras' "graph disconnected".
    let other = Input::named(&[4, 4, 2], "other");
    let joined = Add::new().call_on(&[&inp, &other]).unwrap();
    let err = Model::new(&inp, &joined).unwrap_err().to_string();
    assert!(err.contains("disconnected"), "{err}");
}

#[test]
fn a_saved_graph_reading_an_unknown_layer_is_an_error() {
    let f = fixture();
    let m = model(&f);
    let mut json = m.to_json();
    json["layers"][4]["inbound"][1] = "nowhere".into();
    let err = Model::from_json_slice(&serde_json::to_vec(&json).unwrap()).unwrap_err().to_string();
    assert!(err.contains("reads `nowhere`"), "{err}");
}
