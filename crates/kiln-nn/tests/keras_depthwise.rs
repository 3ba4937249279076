//! DepthwiseConv2D against real Keras: the layer's output for fixed weights (depth multiplier 2, `same` padding,
//! stride 2, ReLU), its weights' names and shapes, and a summary() using it, from
//! `benches/reference/keras_depthwise.py` (Keras 3.15.1, TensorFlow 2.21). Tolerance 1e-5: nine products of O(1)
//! values per output.

use kiln_nn::prelude::*;
use kiln_tensor::Tensor;

const X: [f32; 50] = [
    -2.5, -0.75, 1.0, 2.75, -1.25, 0.5, 2.25, -1.75, 0.0, 1.75, -2.25, -0.5, 1.25, 3.0, -1.0, 0.75, 2.5, -1.5, 0.25,
    2.0, -2.0, -0.25, 1.5, -2.5, -0.75, 1.0, 2.75, -1.25, 0.5, 2.25, -1.75, 0.0, 1.75, -2.25, -0.5, 1.25, 3.0, -1.0,
    0.75, 2.5, -1.5, 0.25, 2.0, -2.0, -0.25, 1.5, -2.5, -0.75, 1.0, 2.75,
];
const KERNEL: [f32; 36] = [
    -0.5, -0.1, 0.3, -0.4, 0.0, 0.4, -0.3, 0.1, 0.5, -0.2, 0.2, -0.5, -0.1, 0.3, -0.4, 0.0, 0.4, -0.3, 0.1, 0.5, -0.2,
    0.2, -0.5, -0.1, 0.3, -0.4, 0.0, 0.4, -0.3, 0.1, 0.5, -0.2, 0.2, -0.5, -0.1, 0.3,
];
const BIAS: [f32; 4] = [0.1, -0.2, 0.05, 0.3];
const Y: [f64; 36] = [
    0.0,
    0.0,
    0.0,
    0.650000095,
    0.224999949,
    0.0,
    0.399999946,
    1.32500005,
    0.550000072,
    0.0,
    1.92499995,
    0.174999982,
    0.5,
    0.0,
    2.25,
    0.0,
    1.0,
    0.0,
    2.87499976,
    0.0,
    0.0,
    0.0,
    0.974999964,
    1.32500005,
    0.0,
    0.0,
    0.625,
    1.75,
    0.925000072,
    0.0,
    0.124999896,
    2.6500001,
    0.0,
    0.0,
    0.0,
    2.32500005,
];
const SUMMARY: &str = r#"Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ depthwise_conv2d_1              │ (None, 10, 10, 4)      │            40 │
│ (DepthwiseConv2D)               │                        │               │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ flatten (Flatten)               │ (None, 400)            │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 3)              │         1,203 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 1,243 (4.86 KB)
 Trainable params: 1,243 (4.86 KB)
 Non-trainable params: 0 (0.00 B)"#;

#[test]
fn output_weights_and_summary_match_keras() {
    let layer = DepthwiseConv2D::new(3)
        .strides(2)
        .padding(Padding::Same)
        .depth_multiplier(2)
        .activation(ActivationFn::Relu)
        .name("dw");
    let mut m = Sequential::new(&[5, 5, 2]).add(layer).build().unwrap();
    let names: Vec<(String, Vec<usize>)> =
        m.weights().unwrap().into_iter().map(|(n, t)| (n, t.dims().to_vec())).collect();
    assert_eq!(names, [("dw/kernel".to_owned(), vec![3, 3, 2, 2]), ("dw/bias".to_owned(), vec![4])]);
    m.set_weight("dw/kernel", &Tensor::from_slice(&[3, 3, 2, 2], &KERNEL).unwrap()).unwrap();
    m.set_weight("dw/bias", &Tensor::from_slice(&[4], &BIAS).unwrap()).unwrap();
    let y = m.predict(&Tensor::from_slice(&[1, 5, 5, 2], &X).unwrap(), 1).unwrap();
    assert_eq!(y.dims(), &[1, 3, 3, 4]);
    for (i, (g, w)) in y.as_slice().iter().zip(&Y).enumerate() {
        assert!((f64::from(*g) - w).abs() <= 1e-5, "[{i}]: kiln {g} vs keras {w}");
    }

    let model = Sequential::new(&[12, 12, 4])
        .add(DepthwiseConv2D::new(3).name("depthwise_conv2d_1"))
        .add(Flatten::new())
        .add(Dense::new(3))
        .build()
        .unwrap();
    assert_eq!(model.summary().trim_end(), SUMMARY);
}
