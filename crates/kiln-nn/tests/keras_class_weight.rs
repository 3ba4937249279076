//! `class_weight` against real Keras: one epoch of `Input(4) → Dense(3, softmax)` (and `Dense(3)` under MSE) from
//! fixed weights, SGD(0.1), batch 4, no shuffling, `class_weight={0: 1.0, 1: 3.0, 2: 0.5}`, for sparse labels,
//! one-hot labels and mean squared error: the logged loss and accuracy (unweighted: Keras
//! weights only `weighted_metrics`) and the weights after. The
//! numbers come from `benches/reference/keras_class_weight.py` (Keras 3.15.1, TensorFlow 2.21 CPU).
//!
//! Tolerance 1e-5: two SGD steps on 4 samples of O(1) values; a weight applied to the wrong sample, a loss divided
//! by Σw instead of the batch size, or a weighted accuracy moves these numbers by 1e-2 or more.

use kiln_nn::prelude::*;
use kiln_tensor::Tensor;

const X: [f32; 32] = [
    -2.5, -0.75, 1.0, 2.75, -1.25, 0.5, 2.25, -1.75, 0.0, 1.75, -2.25, -0.5, 1.25, 3.0, -1.0, 0.75, 2.5, -1.5, 0.25,
    2.0, -2.0, -0.25, 1.5, -2.5, -0.75, 1.0, 2.75, -1.25, 0.5, 2.25, -1.75, 0.0,
];
const LABELS: [u8; 8] = [0, 1, 2, 1, 0, 2, 1, 1];
const KERNEL: [f32; 12] = [-0.5, -0.1, 0.3, -0.4, 0.0, 0.4, -0.3, 0.1, 0.5, -0.2, 0.2, -0.5];
const CLASS_WEIGHT: [f32; 3] = [1.0, 3.0, 0.5];

struct Case {
    name: &'static str,
    loss: f64,
    accuracy: f64,
    kernel: &'static [f64],
    bias: &'static [f64],
}

const CASES: [Case; 3] = [
    Case {
        name: "sparse",
        loss: 2.669783115386963,
        accuracy: 0.25,
        kernel: &[
            -0.467659473,
            -0.126549572,
            0.294209093,
            -0.508881688,
            0.379006386,
            0.129875332,
            -0.285481602,
            0.263794631,
            0.321686953,
            -0.0881361663,
            0.00783904642,
            -0.419702888,
        ],
        bias: &[0.0827911645, -0.000577911735, -0.132213265],
    },
    Case {
        name: "categorical",
        loss: 2.669783115386963,
        accuracy: 0.25,
        kernel: &[
            -0.467659473,
            -0.126549572,
            0.294209093,
            -0.508881688,
            0.379006386,
            0.129875332,
            -0.285481602,
            0.263794631,
            0.321686953,
            -0.0881361663,
            0.00783904642,
            -0.419702888,
        ],
        bias: &[0.0827911645, -0.000577911735, -0.132213265],
    },
    Case {
        name: "mse",
        loss: 1.9599595069885254,
        accuracy: 0.125,
        kernel: &[
            -0.338157684,
            -0.0508910082,
            0.336203605,
            -0.21765919,
            0.34971571,
            0.161693931,
            -0.282611907,
            0.14959836,
            0.174527183,
            -0.0765403658,
            0.0865308121,
            -0.209565401,
        ],
        bias: &[0.215098634, -0.00901030749, -0.0990869105],
    },
];

fn close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((f64::from(*g) - w).abs() <= 1e-5, "{what}[{i}]: kiln {g} vs keras {w}");
    }
}

#[test]
fn one_epoch_with_class_weights_matches_keras() {
    let x = Tensor::from_slice(&[8, 4], &X).unwrap();
    let sparse = ClassIndices::new(&LABELS);
    let one_hot = OneHot::new(&LABELS, 3).unwrap();
    for case in &CASES {
        for parallel in [false, true] {
            let (loss, activation): (&str, ActivationFn) = match case.name {
                "sparse" => ("sparse_categorical_crossentropy", ActivationFn::Softmax),
                "categorical" => ("categorical_crossentropy", ActivationFn::Softmax),
                _ => ("mse", ActivationFn::Linear),
            };
            let mut m = Sequential::new(&[4]).add(Dense::new(3).activation(activation)).build().unwrap();
            m.compile(loss, Optimizer::sgd().learning_rate(0.1), &["accuracy"]).unwrap();
            m.set_data_parallel(parallel);
            m.set_weight("dense/kernel", &Tensor::from_slice(&[4, 3], &KERNEL).unwrap()).unwrap();
            m.set_weight("dense/bias", &Tensor::from_slice(&[3], &[0.1, -0.2, 0.05]).unwrap()).unwrap();
            let y: &dyn Data = if case.name == "sparse" { &sparse } else { &one_hot };
            let opts =
                FitOptions::default().batch_size(4).shuffle(false).class_weight(&CLASS_WEIGHT).verbose(Verbose::Silent);
            let h = m.fit(&x, y, &opts).unwrap();
            let what = format!("{} (data-parallel {parallel})", case.name);
            close(&format!("{what} loss"), &h.loss(), &[case.loss]);
            close(&format!("{what} accuracy"), &h.accuracy(), &[case.accuracy]);
            let w = m.weights().unwrap();
            close(&format!("{what} kernel"), w[0].1.as_slice(), case.kernel);
            close(&format!("{what} bias"), w[1].1.as_slice(), case.bias);
        }
    }
}

#[test]
fn class_weights_must_be_finite_and_non_negative() {
    let mut m = Sequential::new(&[4]).add(Dense::new(3).activation(ActivationFn::Softmax)).build().unwrap();
    m.compile("sparse_categorical_crossentropy", Optimizer::sgd(), &["accuracy"]).unwrap();
    let x = Tensor::from_slice(&[8, 4], &X).unwrap();
    for bad in [[1.0, f32::NAN, 1.0], [1.0, -1.0, 1.0]] {
        let opts = FitOptions::default().class_weight(&bad).verbose(Verbose::Silent);
        assert!(m.fit(&x, &ClassIndices::new(&LABELS), &opts).is_err());
    }
}
