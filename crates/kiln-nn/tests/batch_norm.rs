//! BatchNormalization in a model: training statistics over the whole batch even when it is split across the two
//! replicas, the same bits for 1 and 2 threads, moving statistics as non-trainable weights that inference uses,
//! summary rows and save/load.

use kiln_nn::prelude::*;
use kiln_tensor::Tensor;

/// `Input(6,6,2) → Conv2D(4,3) → BN → ReLU → Dropout → Flatten → Dense(8) → BN → Dense(3, softmax)`.
fn bn_model(data_parallel: bool) -> Model {
    let mut m = Sequential::new(&[6, 6, 2])
        .add(Conv2D::new(4, 3))
        .add(BatchNormalization::new())
        .add(Activation::new(ActivationFn::Relu))
        .add(Dropout::new(0.25))
        .add(Flatten::new())
        .add(Dense::new(8))
        .add(BatchNormalization::new())
        .add(Dense::new(3).activation(ActivationFn::Softmax))
        .build()
        .expect("a valid model");
    m.compile("sparse_categorical_crossentropy", Optimizer::adam(), &["accuracy"]).unwrap();
    m.set_seed(3).unwrap();
    m.set_data_parallel(data_parallel);
    m
}

fn data(n: usize) -> (Tensor, Tensor) {
    let x = Tensor::from_fn(&[n, 6, 6, 2], |i| ((i * 37 + i / 72) % 23) as f32 * 0.1 - 1.0).unwrap();
    let y = Tensor::from_fn(&[n], |i| ((i * 5) % 3) as f32).unwrap();
    (x, y)
}

#[test]
fn training_is_bitwise_identical_for_1_and_2_threads() {
    let (x, y) = data(40);
    let run = |threads: usize| {
        let mut m = bn_model(true);
        m.set_threads(Some(threads)).unwrap();
        let opts = FitOptions::default().epochs(2).batch_size(10).verbose(Verbose::Silent);
        let h = m.fit(&x, &y, &opts).unwrap();
        (h.loss(), m.weights().unwrap())
    };
    let (l1, w1) = run(1);
    let (l2, w2) = run(2);
    assert_eq!(l1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), l2.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    assert_eq!(w1.len(), w2.len());
    for ((n1, t1), (n2, t2)) in w1.iter().zip(&w2) {
        assert_eq!(n1, n2);
        assert!(t1.as_slice().iter().zip(t2.as_slice()).all(|(a, b)| a.to_bits() == b.to_bits()), "{n1} differs");
    }
    // The moving statistics moved away from their initial 0 and 1.
    let mm = &w1.iter().find(|(n, _)| n == "batch_normalization/moving_mean").unwrap().1;
    assert!(mm.as_slice().iter().any(|&v| v != 0.0));
}

/// `Input(3) → BN → Dense(1)`: the moving mean after one step is `0.01 ×` the whole batch's mean, also with the
/// batch split in two halves whose own means differ.
#[test]
fn statistics_are_over_the_whole_batch_across_replicas() {
    let x = Tensor::from_fn(&[8, 3], |i| if i < 12 { 0.0 } else { 1.0 + (i % 3) as f32 }).unwrap();
    let y = Tensor::zeros(&[8, 1]).unwrap();
    let mut want_mean = [0f64; 3];
    let mut want_var = [0f64; 3];
    for ch in 0..3 {
        let col: Vec<f64> = (0..8).map(|r| f64::from(x.as_slice()[r * 3 + ch])).collect();
        want_mean[ch] = col.iter().sum::<f64>() / 8.0;
        want_var[ch] = col.iter().map(|v| (v - want_mean[ch]).powi(2)).sum::<f64>() / 8.0;
    }
    for (parallel, threads) in [(false, 1), (true, 1), (true, 2)] {
        let mut m = Sequential::new(&[3]).add(BatchNormalization::new()).add(Dense::new(1)).build().unwrap();
        m.compile("mse", Optimizer::sgd(), &[]).unwrap();
        m.set_data_parallel(parallel);
        m.set_threads(Some(threads)).unwrap();
        m.train_on_batch(&x, &y).unwrap();
        let w = m.weights().unwrap();
        let get = |n: &str| w.iter().find(|(k, _)| k == n).unwrap().1.as_slice().to_vec();
        let (mm, mv) = (get("batch_normalization/moving_mean"), get("batch_normalization/moving_variance"));
        for ch in 0..3 {
            let em = 0.01 * want_mean[ch];
            let ev = 0.99 + 0.01 * want_var[ch];
            assert!((f64::from(mm[ch]) - em).abs() < 1e-6, "mean {ch}: {} vs {em} ({parallel}, {threads})", mm[ch]);
            assert!((f64::from(mv[ch]) - ev).abs() < 1e-6, "variance {ch}: {} vs {ev} ({parallel}, {threads})", mv[ch]);
        }
    }
}

#[test]
fn summary_counts_moving_statistics_as_non_trainable() {
    let m = bn_model(true);
    let s = m.summary();
    // Two BN layers of 4 and 8 channels: γ, β trainable, moving mean and variance not.
    assert!(s.contains("Non-trainable params: 24 (96.00 B)"), "{s}");
    // The name and class do not fit one 31-column cell: wrapped as Keras' rich table does.
    assert!(s.contains("│ batch_normalization             │ (None, 4, 4, 4)        │            16 │"), "{s}");
    assert!(s.contains("│ (BatchNormalization)            │"), "{s}");
    assert!(s.contains("│ batch_normalization_1           │ (None, 8)              │            32 │"), "{s}");
}

#[test]
fn inference_uses_the_moving_statistics_and_survives_save_and_load() {
    let (x, y) = data(30);
    let mut m = bn_model(true);
    m.fit(&x, &y, &FitOptions::default().epochs(1).batch_size(10).verbose(Verbose::Silent)).unwrap();
    let p = m.predict(&x, 7).unwrap();
    // Inference does not depend on how the samples are batched (no batch statistics) …
    let q = m.predict(&x, 30).unwrap();
    for (a, b) in p.as_slice().iter().zip(q.as_slice()) {
        assert!((a - b).abs() < 1e-6);
    }
    // … and a saved and reloaded model predicts the same.
    let dir = std::env::temp_dir().join(format!("kiln-bn-{}", std::process::id()));
    m.save(&dir).unwrap();
    let mut back = Model::load(&dir).unwrap();
    let r = back.predict(&x, 7).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(p.as_slice(), r.as_slice());
}

/// A tape that was one half of a data-parallel step and then trains a whole batch alone weighs its statistics'
/// gradients as the whole batch: a single-replica step after a data-parallel one equals the same step on a fresh
/// model holding the same weights.
#[test]
fn a_single_replica_step_after_a_data_parallel_one_uses_the_whole_batch() {
    let x = Tensor::from_fn(&[8, 3], |i| ((i * 7) % 5) as f32 - 2.0).unwrap();
    let y = Tensor::from_fn(&[8], |i| (i % 3) as f32).unwrap();
    let model = |dp: bool| {
        let mut m = Sequential::new(&[3])
            .add(Dense::new(4))
            .add(BatchNormalization::new())
            .add(Dense::new(3).activation(ActivationFn::Softmax))
            .build()
            .unwrap();
        m.compile("sparse_categorical_crossentropy", Optimizer::sgd(), &[]).unwrap();
        m.set_data_parallel(dp);
        m
    };
    let mut a = model(true);
    a.train_on_batch(&x, &y).unwrap();
    let after_dp = a.get_weights().unwrap();
    a.set_data_parallel(false);
    a.train_on_batch(&x, &y).unwrap();
    let mut c = model(false);
    c.set_weights(&after_dp).unwrap();
    c.train_on_batch(&x, &y).unwrap();
    assert_eq!(a.get_weights().unwrap(), c.get_weights().unwrap());
}
