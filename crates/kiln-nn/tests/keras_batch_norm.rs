//! BatchNormalization against real Keras: two SGD steps of `Input(4) → Dense(3) → BatchNormalization →
//! Dense(2, softmax)` from fixed weights, the weights after them (moving statistics included), the trained
//! model's inference predictions and its summary rows. The numbers come from
//! `benches/reference/keras_batch_norm.py` (Keras 3.15, TensorFlow 2.21 CPU).
//!
//! Tolerance 1e-5: Keras sums the batch statistics in f32 and Kiln in f64; over 8 rows of O(1) values the
//! difference is a few f32 ulps, amplified at most ~10× by the two steps; a wrong formula (unbiased variance,
//! per-replica statistics, a missing term of the input gradient) moves these numbers by 1e-3 or more.

use kiln_nn::prelude::*;
use kiln_tensor::Tensor;

const X: [f32; 32] = [
    -2.5, -0.75, 1.0, 2.75, -1.25, 0.5, 2.25, -1.75, 0.0, 1.75, -2.25, -0.5, 1.25, 3.0, -1.0, 0.75, 2.5, -1.5, 0.25,
    2.0, -2.0, -0.25, 1.5, -2.5, -0.75, 1.0, 2.75, -1.25, 0.5, 2.25, -1.75, 0.0,
];
const Y: [f32; 8] = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
const KERNEL0: [f32; 12] = [-0.5, -0.1, 0.3, -0.4, 0.0, 0.4, -0.3, 0.1, 0.5, -0.2, 0.2, -0.5];
const KERNEL1: [f32; 6] = [-0.6, 0.6, 0.4, 0.2, 0.0, -0.2];
const LOSSES: [f64; 2] = [0.899885356, 0.815448284];
const PREDICT: [f64; 16] = [
    0.31353426,
    0.68646574,
    0.575869977,
    0.424130052,
    0.357693344,
    0.642306685,
    0.809845984,
    0.190154031,
    0.639362276,
    0.360637724,
    0.286019057,
    0.713980973,
    0.753914833,
    0.246085182,
    0.556845665,
    0.443154335,
];
const WEIGHTS: [(&str, &[f64]); 8] = [
    (
        "dense/kernel",
        &[
            -0.435535878,
            -0.154475987,
            0.280015588,
            -0.418352038,
            0.0124185346,
            0.396006942,
            -0.364162803,
            0.120594531,
            0.512055993,
            -0.216645479,
            0.156206384,
            -0.502846122,
        ],
    ),
    ("dense/bias", &[0.100000009, -0.200000003, 0.0500000007]),
    ("batch_normalization/gamma", &[0.929616451, 1.01171207, 1.00051355]),
    ("batch_normalization/beta", &[-0.00437556766, 0.000838450447, 0.000754597248]),
    ("batch_normalization/moving_mean", &[-0.00325730862, -0.00281088776, 0.00936429016]),
    ("batch_normalization/moving_variance", &[0.994592905, 0.982693136, 1.01297426]),
    ("dense_1/kernel", &[-0.540931463, 0.540931463, 0.45200792, 0.147992089, 0.00255251024, -0.202552527]),
    ("dense_1/bias", &[0.00374661316, 0.0962533876]),
];
const SUMMARY: &str = r#"Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ dense (Dense)                   │ (None, 3)              │            15 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ batch_normalization             │ (None, 3)              │            12 │
│ (BatchNormalization)            │                        │               │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 2)              │             8 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 37 (152.00 B)
 Trainable params: 29 (116.00 B)
 Non-trainable params: 6 (24.00 B)
 Optimizer params: 2 (12.00 B)"#;

fn model() -> Model {
    let mut m = Sequential::new(&[4])
        .add(Dense::new(3))
        .add(BatchNormalization::new())
        .add(Dense::new(2).activation(ActivationFn::Softmax))
        .build()
        .unwrap();
    m.compile("sparse_categorical_crossentropy", Optimizer::sgd().learning_rate(0.1), &[]).unwrap();
    let t = |d: &[usize], v: &[f32]| Tensor::from_slice(d, v).unwrap();
    m.set_weight("dense/kernel", &t(&[4, 3], &KERNEL0)).unwrap();
    m.set_weight("dense/bias", &t(&[3], &[0.1, -0.2, 0.05])).unwrap();
    m.set_weight("dense_1/kernel", &t(&[3, 2], &KERNEL1)).unwrap();
    m.set_weight("dense_1/bias", &t(&[2], &[0.0, 0.1])).unwrap();
    m
}

fn close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((f64::from(*g) - w).abs() <= 1e-5, "{what}[{i}]: kiln {g} vs keras {w}");
    }
}

#[test]
fn two_sgd_steps_match_keras_with_and_without_data_parallel_replicas() {
    for parallel in [false, true] {
        let mut m = model();
        m.set_data_parallel(parallel);
        let x = Tensor::from_slice(&[8, 4], &X).unwrap();
        let y = Tensor::from_slice(&[8], &Y).unwrap();
        let losses: Vec<f32> = (0..2).map(|_| m.train_on_batch(&x, &y).unwrap().loss).collect();
        close("losses", &losses, &LOSSES);
        let w = m.weights().unwrap();
        for (name, want) in WEIGHTS {
            let got = &w.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no weight {name}")).1;
            close(name, got.as_slice(), want);
        }
        close("predict", m.predict(&x, 3).unwrap().as_slice(), &PREDICT);
    }
}

/// Keras' summary after training, which counts the built optimizer's variables (iterations and learning rate
/// for plain SGD) in a row of their own and in the total.
#[test]
fn summary_matches_keras() {
    let mut m = model();
    let before = m.summary();
    assert!(!before.contains("Optimizer params"), "{before}");
    let x = Tensor::from_slice(&[8, 4], &X).unwrap();
    let y = Tensor::from_slice(&[8], &Y).unwrap();
    m.train_on_batch(&x, &y).unwrap();
    assert_eq!(m.summary().trim_end(), SUMMARY);
}
