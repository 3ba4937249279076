//! Pooling, rescaling, activation and augmentation layers against real Keras 3.15.1 (`benches/reference/keras_layers.py`): their
//! outputs on a fixed input, their `summary()` rows, and their configs through save/load.

use kiln_nn::prelude::*;
use kiln_tensor::Tensor;

/// The script's input: `((arange(50) * 7919) % 23 / 4 - 2.5)` as (1, 5, 5, 2).
fn input() -> Tensor {
    Tensor::from_fn(&[1, 5, 5, 2], |i| ((i * 7919) % 23) as f32 / 4.0 - 2.5).unwrap()
}

fn run(layer: impl kiln_nn::Layer + 'static) -> Tensor {
    let mut m = Sequential::new(&[5, 5, 2]).add(layer).build().unwrap();
    m.predict(&input(), 1).unwrap()
}

/// Each value within a few f32 roundings of Keras' (sums may run in another order).
fn close(got: &Tensor, shape: &[usize], want: &[f64]) {
    assert_eq!(&got.dims()[1..], &shape[1..]);
    for (g, w) in got.as_slice().iter().zip(want) {
        assert!((f64::from(*g) - w).abs() <= 4.0 * f64::from(f32::EPSILON) * w.abs().max(1.0), "{g} vs Keras {w}");
    }
    assert_eq!(got.as_slice().len(), want.len());
}

#[test]
fn outputs_match_keras() {
    // avg2_valid
    close(&run(AveragePooling2D::new(2)), &[1, 2, 2, 2], &[-0.625, 1.125, 0.625, -0.5, -0.125, -1.25, 1.125, 0.0]);
    // avg3_s2_same
    close(
        &run(AveragePooling2D::new(3).strides(2).padding(PoolPadding::Same)),
        &[1, 3, 3, 2],
        &[
            -0.625,
            1.125,
            0.7916666865348816,
            0.625,
            1.25,
            0.125,
            -0.25,
            -0.4166666567325592,
            1.1666666269302368,
            -0.2777777910232544,
            1.625,
            0.5,
            0.125,
            -1.0,
            0.5833333134651184,
            -0.5416666865348816,
            0.5625,
            0.875,
        ],
    );
    // gap
    close(&run(GlobalAveragePooling2D::new()), &[1, 2], &[0.17000000178813934, 0.3100000023841858]);
    // gap_keepdims
    close(
        &run(GlobalAveragePooling2D::new().keepdims(true)),
        &[1, 1, 1, 2],
        &[0.17000000178813934, 0.3100000023841858],
    );
    // gmp
    close(&run(GlobalMaxPooling2D::new()), &[1, 2], &[3.0, 3.0]);
    // rescale
    close(
        &run(Rescaling::new(1.0 / 255.0).offset(-0.5)),
        &[1, 5, 5, 2],
        &[
            -0.5098039507865906,
            -0.5029411911964417,
            -0.4960784316062927,
            -0.4892156720161438,
            -0.5049019455909729,
            -0.49803921580314636,
            -0.49117645621299744,
            -0.5068627595901489,
            -0.5,
            -0.4931372404098511,
            -0.5088235139846802,
            -0.501960813999176,
            -0.4950980246067047,
            -0.4882352948188782,
            -0.5039215683937073,
            -0.49705880880355835,
            -0.4901960790157318,
            -0.5058823823928833,
            -0.499019593000412,
            -0.49215686321258545,
            -0.5078431367874146,
            -0.5009803771972656,
            -0.4941176474094391,
            -0.5098039507865906,
            -0.5029411911964417,
            -0.4960784316062927,
            -0.4892156720161438,
            -0.5049019455909729,
            -0.49803921580314636,
            -0.49117645621299744,
            -0.5068627595901489,
            -0.5,
            -0.4931372404098511,
            -0.5088235139846802,
            -0.501960813999176,
            -0.4950980246067047,
            -0.4882352948188782,
            -0.5039215683937073,
            -0.49705880880355835,
            -0.4901960790157318,
            -0.5058823823928833,
            -0.499019593000412,
            -0.49215686321258545,
            -0.5078431367874146,
            -0.5009803771972656,
            -0.4941176474094391,
            -0.5098039507865906,
            -0.5029411911964417,
            -0.4960784316062927,
            -0.4892156720161438,
        ],
    );
}

#[test]
fn summary_rows_match_keras() {
    let mut m = Sequential::new(&[12, 12, 1])
        .add(Rescaling::new(1.0 / 255.0))
        .add(Conv2D::new(4, 3).padding(Padding::Same).activation(ActivationFn::Relu))
        .add(AveragePooling2D::new(2))
        .add(MaxPooling2D::new(2).padding(PoolPadding::Same))
        .add(GlobalAveragePooling2D::new())
        .add(Dense::new(10).activation(ActivationFn::Softmax))
        .build()
        .unwrap();
    m.compile("categorical_crossentropy", Optimizer::adam(), &[]).unwrap();
    let want = r#"Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ rescaling (Rescaling)           │ (None, 12, 12, 1)      │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d (Conv2D)                 │ (None, 12, 12, 4)      │            40 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ average_pooling2d               │ (None, 6, 6, 4)        │             0 │
│ (AveragePooling2D)              │                        │               │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d (MaxPooling2D)    │ (None, 3, 3, 4)        │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ global_average_pooling2d        │ (None, 4)              │             0 │
│ (GlobalAveragePooling2D)        │                        │               │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 10)             │            50 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 90 (360.00 B)
 Trainable params: 90 (360.00 B)
 Non-trainable params: 0 (0.00 B)
"#;
    assert_eq!(m.summary().trim_end(), want.trim_end());
}

#[test]
fn configs_survive_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Sequential::new(&[6, 6, 2])
        .add(Rescaling::new(0.5).offset(1.0))
        .add(AveragePooling2D::new(3).strides(1).padding(PoolPadding::Same))
        .add(GlobalMaxPooling2D::new().keepdims(true))
        .add(GlobalAveragePooling2D::new())
        .build()
        .unwrap();
    let x = Tensor::from_fn(&[3, 6, 6, 2], |i| (i % 11) as f32 - 4.0).unwrap();
    let before = m.predict(&x, 3).unwrap();
    m.save(dir.path()).unwrap();
    let mut back = Model::load(dir.path()).unwrap();
    assert_eq!(back.to_json(), m.to_json());
    assert_eq!(back.predict(&x, 3).unwrap(), before);
    assert_eq!(before.dims(), &[3, 2]);
}

#[test]
fn a_name_wider_than_its_column_is_cut_as_keras_cuts_it() {
    let m = Sequential::new(&[3])
        .add(Dense::new(2).name("a_very_long_layer_name_that_exceeds_the_column"))
        .build()
        .unwrap();
    // Keras 3.15.1's rows for the same model.
    let want = "│ a_very_long_layer_name_that_ex… │ (None, 2)              │             8 │\n\
                │ (Dense)                         │                        │               │\n";
    assert!(m.summary().contains(want), "{}", m.summary());
}

#[test]
fn activations_match_keras() {
    let xs: Vec<f32> = (0..13).map(|i| -3.0 + 0.5 * i as f32).collect();
    let x = Tensor::from_slice(&[13, 1], &xs).unwrap();
    let mut m =
        Sequential::new(&[1]).add(Activation::new(ActivationFn::from_name("leaky_relu").unwrap())).build().unwrap();
    close(
        &m.predict(&x, 13).unwrap(),
        &[13, 1],
        &[
            -0.6000000238418579,
            -0.5,
            -0.4000000059604645,
            -0.30000001192092896,
            -0.20000000298023224,
            -0.10000000149011612,
            0.0,
            0.5,
            1.0,
            1.5,
            2.0,
            2.5,
            3.0,
        ],
    );
    let mut m = Sequential::new(&[1]).add(Activation::new(ActivationFn::from_name("elu").unwrap())).build().unwrap();
    close(
        &m.predict(&x, 13).unwrap(),
        &[13, 1],
        &[
            -0.9502129554748535,
            -0.9179149866104126,
            -0.8646647334098816,
            -0.7768698334693909,
            -0.6321205496788025,
            -0.39346933364868164,
            0.0,
            0.5,
            1.0,
            1.5,
            2.0,
            2.5,
            3.0,
        ],
    );
    let mut m = Sequential::new(&[1]).add(Activation::new(ActivationFn::from_name("gelu").unwrap())).build().unwrap();
    close(
        &m.predict(&x, 13).unwrap(),
        &[13, 1],
        &[
            -0.004049696493893862,
            -0.015524163842201233,
            -0.045500267297029495,
            -0.10021080076694489,
            -0.15865525603294373,
            -0.1542687714099884,
            0.0,
            0.3457312285900116,
            0.8413447141647339,
            1.3997892141342163,
            1.9544997215270996,
            2.48447585105896,
            2.995950222015381,
        ],
    );
}

#[test]
fn random_flip_acts_in_training_only_and_keeps_threads_bitwise_equal() {
    use kiln_nn::Layer;
    use kiln_nn::layers::FlipMode;
    let x = Tensor::from_fn(&[8, 4, 4, 1], |i| (i % 16) as f32).unwrap();
    let build = || {
        let mut m = Sequential::new(&[4, 4, 1])
            .add(RandomFlip::new(FlipMode::Horizontal))
            .add(Flatten::new())
            .add(Dense::new(3).activation(ActivationFn::Softmax))
            .build()
            .unwrap();
        m.compile("sparse_categorical_crossentropy", Optimizer::sgd(), &[]).unwrap();
        m
    };
    // Inference: the identity.
    let mut flip = Sequential::new(&[4, 4, 1]).add(RandomFlip::new(FlipMode::HorizontalAndVertical)).build().unwrap();
    assert_eq!(flip.predict(&x, 8).unwrap(), x);
    // Training: the same bits with 1 or 2 threads (each replica draws from its own stream of the model's seed).
    let y = ClassIndices::new(&[0, 1, 2, 0, 1, 2, 0, 1]);
    let train = |threads: Option<usize>| {
        let mut m = build();
        m.set_threads(threads).unwrap();
        m.set_data_parallel(true);
        m.fit(&x, &y, &FitOptions::default().epochs(3).batch_size(4).verbose(Verbose::Silent)).unwrap();
        m.get_weights().unwrap()
    };
    let one = train(None);
    assert_eq!(one, train(Some(2)));
    // The flips change what the model learns: without them the weights differ.
    let mut plain = Sequential::new(&[4, 4, 1])
        .add(Flatten::new())
        .add(Dense::new(3).activation(ActivationFn::Softmax))
        .build()
        .unwrap();
    plain.compile("sparse_categorical_crossentropy", Optimizer::sgd(), &[]).unwrap();
    plain.set_data_parallel(true);
    plain.fit(&x, &y, &FitOptions::default().epochs(3).batch_size(4).verbose(Verbose::Silent)).unwrap();
    assert_ne!(plain.get_weights().unwrap(), one);
    // Config round trip; a per-layer seed is refused, not ignored.
    let cfg = RandomFlip::new(FlipMode::Vertical).config();
    assert_eq!(RandomFlip::from_config(&cfg).unwrap().config(), cfg);
    let mut seeded = cfg.clone();
    seeded["seed"] = serde_json::json!(3);
    assert!(RandomFlip::from_config(&seeded).is_err());
}
