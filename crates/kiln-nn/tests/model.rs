//! The Keras-like model: summary, names, initialisers, fit/evaluate/predict, determinism, the NaN guard,
//! save/load and checkpoints.

mod common;

use common::{flagship, flagship_sized, synthetic};
use kiln_nn::prelude::*;
use kiln_nn::{NnError, fans};
use kiln_tensor::Tensor;

/// The notebook's `model.summary()` as Keras 3 prints it in a notebook (76 columns).
#[test]
fn flagship_summary_is_the_keras_table() {
    let expected = "\
Model: \"functional\"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ input_layer (InputLayer)        │ (None, 28, 28, 1)      │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d (Conv2D)                 │ (None, 24, 24, 3)      │            78 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d_1 (Conv2D)               │ (None, 20, 20, 6)      │           456 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ flatten (Flatten)               │ (None, 2400)           │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 84)             │       201,684 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 10)             │           850 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 203,068 (793.23 KB)
 Trainable params: 203,068 (793.23 KB)
 Non-trainable params: 0 (0.00 B)
";
    assert_eq!(flagship().summary(), expected);
}

/// The model reports the convolution algorithms `Auto` runs (per replica when data-parallel).
#[test]
fn conv_algorithms_are_reported() {
    use kiln_kernels::ConvAlgo;
    let mut m = flagship();
    let algos = m.conv_algorithms(32).unwrap();
    let names: Vec<&str> = algos.iter().map(|a| a.layer.as_str()).collect();
    assert_eq!(names, ["conv2d", "conv2d_1"]);
    assert_eq!(algos[0].backward_data, None, "the first layer computes no input gradient");
    assert!(algos.iter().all(|a| a.forward == ConvAlgo::Direct && a.backward_filter == ConvAlgo::Direct));
    assert_eq!(algos[1].backward_data, Some(ConvAlgo::Direct));
    m.set_data_parallel(true);
    assert_eq!(m.conv_algorithms(32).unwrap(), algos);
    let wide = Sequential::new(&[28, 28, 64]).add(Conv2D::new(64, 3).padding(Padding::Same)).build().unwrap();
    assert!(matches!(wide.conv_algorithms(32).unwrap()[0].forward, ConvAlgo::Winograd(_)));
}

#[test]
fn sequential_names_shapes_and_weights() {
    let model = Sequential::new(&[12, 12, 2])
        .add(Conv2D::new(4, 3).padding(Padding::Same).activation(ActivationFn::Relu))
        .add(MaxPooling2D::new(2))
        .add(Conv2D::new(5, (3, 2)).strides(2))
        .add(Dropout::new(0.5))
        .add(Flatten::new())
        .add(Dense::new(7).activation(ActivationFn::Tanh))
        .add(Dense::new(3).name("head"))
        .build()
        .unwrap();
    let layers = model.layers();
    let names: Vec<&str> = layers.iter().map(|l| l.0).collect();
    assert_eq!(names, ["conv2d", "max_pooling2d", "conv2d_1", "dropout", "flatten", "dense", "head"]);
    assert_eq!(layers[0].2, [12, 12, 4]);
    assert_eq!(layers[1].2, [6, 6, 4]);
    assert_eq!(layers[2].2, [2, 3, 5]);
    assert_eq!(layers[4].2, [30]);
    let weights = model.weights().unwrap();
    let names: Vec<&str> = weights.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv2d/kernel",
            "conv2d/bias",
            "conv2d_1/kernel",
            "conv2d_1/bias",
            "dense/kernel",
            "dense/bias",
            "head/kernel",
            "head/bias"
        ]
    );
    assert_eq!(weights[2].1.dims(), [3, 2, 4, 5], "conv kernels are HWIO");
    assert_eq!(weights[4].1.dims(), [30, 7], "dense kernels are (in, out)");
    // Sequential summaries have no InputLayer row, like Keras.
    assert!(!model.summary().contains("InputLayer"));
    assert!(model.summary().starts_with("Model: \"sequential\""));
}

#[test]
fn bad_configurations_are_errors() {
    let inputs = Input::new(&[4, 4, 1]);
    assert!(Conv2D::new(3, 5).call(&inputs).is_err(), "kernel larger than the image");
    assert!(Dense::new(3).call(&inputs).is_err(), "dense on an image needs a flatten");
    assert!(Conv2D::new(0, 3).call(&inputs).is_err());
    assert!(Dropout::new(1.5).call(&inputs).is_err());
    let other = Input::new(&[4, 4, 1]);
    let out = Flatten::new().call(&other).unwrap();
    assert!(matches!(Model::new(&inputs, &out), Err(NnError::Config { .. })));
    let dup = Sequential::new(&[3]).add(Dense::new(2).name("a")).add(Dense::new(2).name("a")).build();
    assert!(dup.is_err());
    let mut m = flagship_sized(12, 5);
    assert!(matches!(m.compile("nope", Optimizer::rmsprop(), &[]), Err(NnError::Unknown { .. })));
    assert!(matches!(m.compile("mse", Optimizer::rmsprop(), &["f1"]), Err(NnError::Unknown { .. })));
    let (x, y) = synthetic(4, 12, 1);
    let mut uncompiled = Sequential::new(&[12, 12, 1]).add(Flatten::new()).add(Dense::new(10)).build().unwrap();
    assert!(matches!(uncompiled.fit(&x, &y, &FitOptions::default()), Err(NnError::NotCompiled(_))));
    let wrong = Tensor::zeros(&[4, 11, 12, 1]).unwrap();
    assert!(matches!(m.fit(&wrong, &y, &FitOptions::default()), Err(NnError::Data { .. })));
    let short = Tensor::zeros(&[3, 10]).unwrap();
    assert!(matches!(m.fit(&x, &short, &FitOptions::default()), Err(NnError::Data { .. })));
    assert!(m.fit(&x, &y, &FitOptions::default().batch_size(0)).is_err());
    let (x7, y1) = (Tensor::zeros(&[1, 7]).unwrap(), Tensor::zeros(&[1, 10]).unwrap());
    assert!(matches!(m.train_on_batch(&x7, &y1), Err(NnError::Data { what: "x", .. })));
    assert!(matches!(m.train_on_batch(&x.rows(0..2).unwrap(), &y1), Err(NnError::Data { what: "y", .. })));
}

/// Glorot-uniform with Keras' fans: every kernel value inside ±√(6/(fan_in+fan_out)), spread like a uniform
/// distribution; biases zero.
#[test]
fn glorot_uniform_kernels_and_zero_biases() {
    let model = flagship();
    for (name, w) in model.weights().unwrap() {
        if name.ends_with("/bias") {
            assert!(w.as_slice().iter().all(|&v| v == 0.0), "{name}");
            continue;
        }
        let (fi, fo) = fans(w.dims());
        let limit = (6.0 / (fi + fo) as f64).sqrt();
        let v = w.as_slice();
        assert!(v.iter().all(|&x| f64::from(x).abs() <= limit), "{name} within ±{limit}");
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / v.len() as f64;
        // U(−l, l) has variance l²/3; with ≥ 75 values the sample variance is within 40% of it.
        assert!((var / (limit * limit / 3.0) - 1.0).abs() < 0.4, "{name}: variance {var} vs {}", limit * limit / 3.0);
    }
    assert_eq!(fans(&[5, 5, 3, 6]), (75, 150));
    assert_eq!(fans(&[2400, 84]), (2400, 84));
}

#[test]
fn fit_learns_and_reports_history() {
    let mut model = flagship_sized(12, 16);
    let (x, y) = synthetic(400, 12, 3);
    let (vx, vy) = synthetic(100, 12, 4);
    let before = model.evaluate(&vx, &vy, 32).unwrap();
    let h = model
        .fit(&x, &y, &FitOptions::default().epochs(3).verbose(Verbose::Silent).validation(Validation::Data(&vx, &vy)))
        .unwrap();
    assert_eq!(h.epochs.len(), 3);
    assert!(h.epochs[2].loss < h.epochs[0].loss, "{:?}", h.loss());
    let after = model.evaluate(&vx, &vy, 32).unwrap();
    assert!(after.loss < before.loss);
    assert!(after.accuracy.unwrap() > 0.8, "{after:?}");
    assert_eq!(h.epochs[2].val_accuracy, after.accuracy);
    assert_eq!(model.iterations(), 3 * 13);
    // predict: probabilities per row, agreeing with evaluate's accuracy.
    let p = model.predict(&vx, 7).unwrap();
    assert_eq!(p.dims(), [100, 10]);
    for row in p.as_slice().chunks(10) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    let pred = p.argmax(1).unwrap();
    let truth = vy.argmax(1).unwrap();
    let acc = pred.iter().zip(&truth).filter(|(a, b)| a == b).count() as f32 / 100.0;
    assert!((acc - after.accuracy.unwrap()).abs() < 1e-6);
    // validation_split holds out the last samples.
    let h =
        model.fit(&x, &y, &FitOptions::default().verbose(Verbose::Silent).validation(Validation::Split(0.25))).unwrap();
    assert!(h.epochs[0].val_loss.is_some());
    assert_eq!(model.iterations(), 3 * 13 + 10);
}

/// Same seed → bitwise the same weights after 100 steps with 1 and with 2 threads (and across runs).
#[test]
fn training_is_bitwise_deterministic_across_thread_counts() {
    let (x, y) = synthetic(320, 28, 5);
    let train = |threads: usize| {
        let mut m = flagship();
        m.set_seed(42).unwrap();
        m.set_threads(Some(threads)).unwrap();
        // 10 epochs of 10 steps = 100 steps, shuffled.
        m.fit(&x, &y, &FitOptions::default().epochs(10).verbose(Verbose::Silent)).unwrap();
        assert_eq!(m.iterations(), 100);
        m.weights().unwrap()
    };
    let one = train(1);
    let two = train(2);
    for ((n, a), (_, b)) in one.iter().zip(&two) {
        assert!(a.as_slice().iter().zip(b.as_slice()).all(|(p, q)| p.to_bits() == q.to_bits()), "{n} differs");
    }
    let mut other = flagship();
    other.set_seed(43).unwrap();
    assert_ne!(other.weights().unwrap()[0].1, one[0].1, "another seed, other weights");
}

/// Data-parallel training (each batch split over two replicas): bitwise identical with 1 and 2 threads, and
/// the same training as the single-replica step up to rounding.
#[test]
fn data_parallel_is_deterministic_and_equivalent() {
    let (x, y) = synthetic(200, 12, 11);
    let train = |threads: usize, parallel: bool| {
        let mut m = flagship_sized(12, 16);
        m.set_seed(3).unwrap();
        m.set_threads(Some(threads)).unwrap();
        m.set_data_parallel(parallel);
        let h = m.fit(&x, &y, &FitOptions::default().epochs(2).batch_size(25).verbose(Verbose::Silent)).unwrap();
        (h, m.weights().unwrap())
    };
    let (h1, w1) = train(1, true);
    let (h2, w2) = train(2, true);
    assert_eq!(h1.loss(), h2.loss());
    for ((n, a), (_, b)) in w1.iter().zip(&w2) {
        assert!(a.as_slice().iter().zip(b.as_slice()).all(|(p, q)| p.to_bits() == q.to_bits()), "{n} differs");
    }
    let (h0, w0) = train(2, false);
    for (a, b) in h0.loss().iter().zip(h1.loss()) {
        assert!((a - b).abs() <= 1e-3 * a.abs().max(1.0), "epoch losses {a} vs {b}");
    }
    for ((n, a), (_, b)) in w0.iter().zip(&w1) {
        let worst = a.as_slice().iter().zip(b.as_slice()).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-2, "{n}: weights differ by {worst}");
    }
    // Every optimizer (their state is split across threads too).
    for opt in [Optimizer::adam(), Optimizer::sgd_momentum(0.01, 0.9, true), Optimizer::sgd()] {
        let run = |threads: usize, parallel: bool| {
            let mut m = flagship_sized(12, 16);
            m.compile("categorical_crossentropy", opt, &["accuracy"]).unwrap();
            m.set_threads(Some(threads)).unwrap();
            m.set_data_parallel(parallel);
            m.fit(&x, &y, &FitOptions::default().batch_size(25).verbose(Verbose::Silent)).unwrap();
            m.weights().unwrap()
        };
        let (a, b, c) = (run(1, true), run(2, true), run(2, false));
        assert_eq!(a, b, "{opt:?}: 1 vs 2 threads");
        for ((n, p), (_, q)) in a.iter().zip(&c) {
            let worst = p.as_slice().iter().zip(q.as_slice()).map(|(u, v)| (u - v).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-2, "{opt:?} {n}: data-parallel vs whole batch differ by {worst}");
        }
    }
    // Weights set from outside reach the replica (save/load, set_weight, set_seed).
    let mut m = flagship_sized(12, 16);
    m.set_data_parallel(true);
    m.fit(&x, &y, &FitOptions::default().verbose(Verbose::Silent)).unwrap();
    let mut n = flagship_sized(12, 16);
    n.set_data_parallel(true);
    n.fit(&x, &y, &FitOptions::default().verbose(Verbose::Silent)).unwrap();
    for (name, w) in m.weights().unwrap() {
        n.set_weight(&name, &w).unwrap();
    }
    let (a, b) = (
        m.train_on_batch(&x.rows(0..10).unwrap(), &y.rows(0..10).unwrap()).unwrap(),
        n.train_on_batch(&x.rows(0..10).unwrap(), &y.rows(0..10).unwrap()).unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(m.weights().unwrap(), n.weights().unwrap());
}

/// A non-finite loss stops training with an error naming the epoch and the step (Keras' TerminateOnNaN).
#[test]
fn nan_loss_stops_training_with_epoch_and_step() {
    let mut model = flagship_sized(12, 8);
    let (x, y) = synthetic(64, 12, 6);
    let mut data = x.as_slice().to_vec();
    data[20 * 144 + 5] = f32::NAN; // sample 20: step 3 (batch 8, no shuffling) of the first epoch of the second fit
    let x = Tensor::from_vec(&[64, 12, 12, 1], data).unwrap();
    let mut clean = x.as_slice().to_vec();
    clean[20 * 144 + 5] = 0.0;
    let clean = Tensor::from_vec(&[64, 12, 12, 1], clean).unwrap();
    model.fit(&clean, &y, &FitOptions::default().batch_size(8).shuffle(false).verbose(Verbose::Silent)).unwrap();
    let before = model.weights().unwrap();
    let err = model
        .fit(
            &x,
            &y,
            &FitOptions::default().epochs(2).batch_size(8).shuffle(false).verbose(Verbose::Silent).resume_from_none(),
        )
        .unwrap_err();
    match err {
        NnError::NonFiniteLoss { epoch, step, value } => {
            assert_eq!((epoch, step), (1, 3));
            assert!(value.is_nan());
        }
        e => panic!("unexpected {e}"),
    }
    let msg = NnError::NonFiniteLoss { epoch: 2, step: 3, value: f32::NAN }.to_string();
    assert!(msg.contains("epoch 2") && msg.contains("step 3"), "{msg}");
    // The bad step did not touch the weights: they differ from `before` only by the two good steps.
    let after = model.weights().unwrap();
    assert!(after.iter().all(|(_, t)| t.as_slice().iter().all(|v| v.is_finite())));
    assert_ne!(before[0].1, after[0].1);
}

trait NoResume {
    fn resume_from_none(self) -> Self;
}
impl NoResume for FitOptions<'_> {
    fn resume_from_none(mut self) -> Self {
        self.resume_from = None;
        self
    }
}

#[test]
fn save_and_load_round_trip_and_reject_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = flagship_sized(12, 8);
    let (x, y) = synthetic(64, 12, 7);
    model.fit(&x, &y, &FitOptions::default().verbose(Verbose::Silent)).unwrap();
    model.set_metadata("input_scale", "1");
    model.save(dir.path()).unwrap();
    let mut loaded = Model::load(dir.path()).unwrap();
    assert_eq!(loaded.metadata().get("input_scale").map(String::as_str), Some("1"));
    // The saved model has no optimizer state (a checkpoint has), so only the trained one counts optimizer
    // variables, as in Keras; the layer rows and weight counts are the same.
    let layers_only = |s: String| -> Vec<String> {
        s.lines().filter(|l| !l.contains("Optimizer params") && !l.contains("Total params")).map(String::from).collect()
    };
    assert!(model.summary().contains("Optimizer params: 1,402 (5.48 KB)"), "RMSprop: iterations, rate, one slot");
    assert_eq!(layers_only(loaded.summary()), layers_only(model.summary()));
    assert_eq!(loaded.weights().unwrap(), model.weights().unwrap());
    assert_eq!(loaded.compiled(), model.compiled());
    assert_eq!(loaded.predict(&x, 32).unwrap(), model.predict(&x, 32).unwrap());
    // No temporary files are left behind.
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 2, "{names:?}");

    let weights = dir.path().join("model.safetensors");
    let good = std::fs::read(&weights).unwrap();
    // Truncated / garbage.
    std::fs::write(&weights, &good[..good.len() / 2]).unwrap();
    assert!(matches!(Model::load(dir.path()), Err(NnError::Format { .. })));
    std::fs::write(&weights, b"not safetensors").unwrap();
    assert!(matches!(Model::load(dir.path()), Err(NnError::Format { .. })));
    // Another architecture's weights: missing names / wrong shapes.
    let other = flagship_sized(12, 9);
    other.save_weights(&weights).unwrap();
    let err = Model::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("dense/kernel"), "{err}");
    // Extra tensors and wrong dtypes.
    let mut big = Sequential::new(&[12, 12, 1]).add(Flatten::new()).add(Dense::new(10)).build().unwrap();
    assert!(big.load_weights(&weights).is_err());
    let mut f16 = std::collections::HashMap::new();
    f16.insert(
        "dense/kernel".to_string(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![1], &[0, 0]).unwrap(),
    );
    std::fs::write(&weights, safetensors::tensor::serialize(f16, None).unwrap()).unwrap();
    assert!(big.load_weights(&weights).unwrap_err().to_string().contains("F16"));
    // Corrupt architecture.
    std::fs::write(dir.path().join("model.json"), b"{\"format\": \"kiln-model\", \"format_version\": 1, \"input_shape\": [12, 12, 1], \"layers\": [{\"class_name\": \"Conv3D\", \"config\": {}}]}").unwrap();
    assert!(matches!(Model::load(dir.path()), Err(NnError::Unknown { .. })));
    std::fs::write(dir.path().join("model.json"), b"{").unwrap();
    assert!(matches!(Model::load(dir.path()), Err(NnError::Format { .. })));
    assert!(matches!(Model::load(dir.path().join("missing")), Err(NnError::Io { .. })));
}

/// An interrupted save cannot destroy the previous file: the new content is written aside and renamed, so
/// the target holds either the old or the new bytes.
#[test]
fn writes_are_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    kiln_nn::io::write_atomic(&path, b"old").unwrap();
    // A failed write (target directory vanished) leaves no partial file and reports the path.
    let gone = dir.path().join("gone").join("w.safetensors");
    assert!(matches!(kiln_nn::io::write_atomic(&gone, b"new"), Err(NnError::Io { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    kiln_nn::io::write_atomic(&path, b"new").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// A run checkpointed after epoch 1 and resumed for epoch 2 ends bitwise where an uninterrupted 2-epoch run
/// ends.
#[test]
fn checkpoint_and_resume() {
    let (x, y) = synthetic(96, 12, 8);
    let opts = || FitOptions::default().batch_size(16).verbose(Verbose::Silent);
    let mut straight = flagship_sized(12, 8);
    straight.fit(&x, &y, &opts().epochs(2)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut first = flagship_sized(12, 8);
    first.fit(&x, &y, &opts().epochs(1).checkpoint(dir.path())).unwrap();
    let mut resumed = flagship_sized(12, 8);
    let h = resumed.fit(&x, &y, &opts().epochs(2).resume_from(dir.path())).unwrap();
    assert_eq!(h.epochs.len(), 1);
    assert_eq!(h.epochs[0].epoch, 2);
    assert_eq!(resumed.iterations(), straight.iterations());
    assert_eq!(resumed.weights().unwrap(), straight.weights().unwrap());
    // A checkpoint for another optimizer is refused.
    let mut adam = flagship_sized(12, 8);
    adam.compile("categorical_crossentropy", Optimizer::adam(), &["accuracy"]).unwrap();
    assert!(adam.fit(&x, &y, &opts().epochs(2).resume_from(dir.path())).is_err());
}

#[test]
fn optimizers_and_losses_train() {
    let (x, y) = synthetic(200, 12, 9);
    let labels: Vec<u8> = y.argmax(1).unwrap().iter().map(|&c| c as u8).collect();
    for (loss, opt) in [
        ("categorical_crossentropy", Optimizer::adam()),
        ("categorical_crossentropy", Optimizer::sgd_momentum(0.01, 0.9, true)),
        ("categorical_crossentropy", Optimizer::sgd().learning_rate(0.001)),
        ("sparse_categorical_crossentropy", Optimizer::rmsprop()),
        ("mse", Optimizer::adam()),
    ] {
        let mut m = flagship_sized(12, 16);
        m.compile(loss, opt, &["accuracy"]).unwrap();
        let sparse = ClassIndices::new(&labels);
        let target: &dyn Data = if loss.starts_with("sparse") { &sparse } else { &y };
        let h = m.fit(&x, target, &FitOptions::default().epochs(3).verbose(Verbose::Silent)).unwrap();
        assert!(h.epochs[2].loss < h.epochs[0].loss, "{loss} {opt:?}: {:?}", h.loss());
    }
}

#[test]
fn u8_images_and_one_hot_labels_feed_fit() {
    let pixels: Vec<u8> = (0..20 * 144).map(|i| (i * 7 % 256) as u8).collect();
    let labels: Vec<u8> = (0..20).map(|i| (i % 10) as u8).collect();
    let x = ImagesU8::new(&pixels, [12, 12, 1], 1.0).unwrap();
    let y = OneHot::new(&labels, 10).unwrap();
    let mut m = flagship_sized(12, 4);
    m.fit(&x, &y, &FitOptions::default().verbose(Verbose::Silent)).unwrap();
    assert!(OneHot::new(&[3, 10], 10).is_err());
    assert!(ImagesU8::new(&pixels[..100], [12, 12, 1], 1.0).is_err());
    // The converted tensors give exactly the same training as float tensors.
    let xt = Tensor::from_vec(&[20, 12, 12, 1], pixels.iter().map(|&p| f32::from(p)).collect()).unwrap();
    let yt =
        Tensor::from_vec(&[20, 10], (0..200).map(|i| f32::from(u8::from(i % 10 == (i / 10) % 10))).collect()).unwrap();
    let mut n = flagship_sized(12, 4);
    n.fit(&xt, &yt, &FitOptions::default().verbose(Verbose::Silent)).unwrap();
    assert_eq!(m.weights().unwrap(), n.weights().unwrap());
}

/// Training FLOPs from the layers' geometry: the notebook's 148.05 GFLOP per epoch (forward, weight gradients,
/// and input gradients for every layer but the first).
#[test]
fn train_flops_count_forward_weight_and_needed_input_gradients() {
    let model = flagship();
    let conv1 = 2 * 24 * 24 * 3 * 25;
    let rest = 2 * 20 * 20 * 6 * 75 + 2 * 2400 * 84 + 2 * 84 * 10;
    assert_eq!(model.train_flops_per_sample(), 2 * conv1 + 3 * rest);
    assert_eq!(model.train_flops_per_sample() * 60_000, 148_046_400_000);
    // A weightless layer first (Rescaling) still needs no input gradient for the convolution after it.
    let scaled = Sequential::new(&[28, 28, 1]).add(Rescaling::new(0.5)).add(Conv2D::new(3, 5)).build().unwrap();
    assert_eq!(scaled.train_flops_per_sample(), 2 * conv1);
    let per_layer = model.train_flops_per_layer();
    let names: Vec<_> = per_layer.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["conv2d", "conv2d_1", "flatten", "dense", "dense_1"]);
    assert_eq!((per_layer[0].forward, per_layer[0].backward), (conv1, conv1));
    assert_eq!((per_layer[3].forward, per_layer[3].backward), (2 * 2400 * 84, 4 * 2400 * 84));
    assert_eq!(per_layer[2].forward + per_layer[2].backward, 0);
}

/// The bytes a step moves, counted by hand for the notebook at batch 32 with RMSprop (one state slot).
#[test]
fn step_bytes_of_the_notebook() {
    let mut model = flagship();
    // Floats per sample, (forward in + out) + (backward dy + x for the weight gradient + dx when needed):
    // conv2d (784 → 1728, no dx), conv2d_1 (1728 → 2400), flatten (2400 → 2400, no weights), dense (2400 → 84),
    // dense_1 (84 → 10).
    let per_sample = (784 + 1728)
        + (1728 + 784)
        + (1728 + 2400)
        + (2400 + 1728 + 1728)
        + (2400 + 2400)
        + (2400 + 2400)
        + (2400 + 84)
        + (84 + 2400 + 2400)
        + (84 + 10)
        + (10 + 84 + 84);
    let (conv1_w, rest_w) = (3 * 25 + 3, (6 * 75 + 6) + (2400 * 84 + 84) + (84 * 10 + 10));
    for (dp, replicas) in [(false, 1), (true, 2)] {
        model.set_data_parallel(dp);
        let b = model.step_bytes(32);
        assert_eq!(b.activations, 4 * 32 * per_sample, "data parallel {dp}");
        // Weights read forward and written as gradients (and read again for dx after the first layer), per replica.
        assert_eq!(b.weights, 4 * replicas * (2 * conv1_w + 3 * rest_w));
        // RMSprop: weight and its one slot read and written, each replica's gradient read.
        assert_eq!(b.optimizer, 4 * (conv1_w + rest_w) * (4 + replicas));
        assert_eq!(b.total(), b.activations + b.weights + b.optimizer);
    }
}
