//! The flagship model on real MNIST from `MNIST_DIR`: one epoch on the first 2,000 training images (raw pixels,
//! Keras defaults: RMSprop, batch 32, shuffled), evaluated on the first 1,000 test images. Without `MNIST_DIR`
//! the test prints `skipped` — and fails when `KILN_REQUIRE_MNIST` is set (CI sets it).
//!
//! Threshold. Issue #5 asked for ≥ 85%, but Keras itself does not get there on this task: Keras 3.15.1 on
//! TensorFlow 2.21, same machine, same data and settings, `keras.utils.set_random_seed(s)` for s = 0..9, gives
//! 73.8, 73.7, 75.7, 75.4, 71.6, 71.2, 73.2, 69.6, 80.4 and 61.3% (mean 72.6%, sd 5.1). (Step-for-step
//! equality with Keras from identical weights is checked by `keras_parity.rs`.) So this test asks what Keras
//! achieves: each of five seeds ≥ 60% (Keras' worst seed: 61.3%) and their mean ≥ 68% (Keras' mean minus two
//! standard errors of a 5-seed mean).

mod common;

use kiln_mnist::{Mnist, Scale};
use kiln_nn::prelude::*;

#[test]
fn flagship_learns_mnist_from_2000_images() {
    let Some(dir) = common::mnist_dir() else { return };
    let mnist = Mnist::load(&dir).unwrap();
    let x = mnist.train.images(Scale::Raw).unwrap().take(2000);
    let y = mnist.train.one_hot().unwrap().take(2000);
    let tx = mnist.test.images(Scale::Raw).unwrap().take(1000);
    let ty = mnist.test.one_hot().unwrap().take(1000);
    let mut accuracies = Vec::new();
    for seed in 0..5 {
        let mut model = common::flagship();
        model.set_seed(seed).unwrap();
        let h = model.fit(&x, &y, &FitOptions::default().epochs(1).verbose(Verbose::OneLine)).unwrap();
        let e = model.evaluate(&tx, &ty, 32).unwrap();
        let acc = e.accuracy.unwrap();
        println!(
            "seed {seed}: train loss {:.4} accuracy {:.4}; test loss {:.4} accuracy {acc:.4}",
            h.epochs[0].loss,
            h.epochs[0].accuracy.unwrap(),
            e.loss
        );
        assert!(acc >= 0.60, "seed {seed}: test accuracy {acc}");
        accuracies.push(acc);
    }
    let mean = accuracies.iter().sum::<f32>() / accuracies.len() as f32;
    println!("mean test accuracy {mean:.4}");
    assert!(mean >= 0.68, "mean test accuracy {mean} over seeds 0..5");
}
