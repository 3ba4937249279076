//! Data-parallel replicas over one parameter store: each replica's dropout stream follows the model's seed, the
//! run stays bitwise identical for 1 and 2 threads, and a layer's state (a non-trainable parameter written with
//! `Recording::assign`) is updated once per step whatever the number of replicas.

use kiln_autograd::{ParamId, Params, Recording, Var};
use kiln_nn::prelude::*;
use kiln_nn::{Layer, Result};
use kiln_tensor::Tensor;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// `Input(4) → Dropout(0.5) → Dense(3)`, MSE, SGD, data-parallel (batches split in two halves).
fn dropout_model(seed: u64) -> Model {
    let mut m =
        Sequential::new(&[4]).add(Dropout::new(0.5)).add(Dense::new(3).name("dense")).build().expect("a valid model");
    m.compile("mse", Optimizer::sgd(), &[]).expect("mse and sgd");
    m.set_seed(seed).expect("seeded");
    m.set_data_parallel(true);
    // The same initial weights whatever the seed: only the dropout masks may differ.
    m.set_weight("dense/kernel", &Tensor::from_fn(&[4, 3], |i| 0.1 * i as f32 - 0.5).unwrap()).unwrap();
    m.set_weight("dense/bias", &Tensor::zeros(&[3]).unwrap()).unwrap();
    m
}

/// The kernel after one step on a batch of 8 whose first half (replica 0's) is all zeros: replica 0 then adds
/// nothing to the kernel's gradient (`dropout(0)ᵀ·dy = 0`), so the update shows replica 1's masks alone.
fn kernel_after_one_step(seed: u64, threads: usize) -> Vec<f32> {
    let mut m = dropout_model(seed);
    m.set_threads(Some(threads)).unwrap();
    let mut x = vec![0.0f32; 8 * 4];
    for (i, v) in x[16..].iter_mut().enumerate() {
        *v = 1.0 + (i % 5) as f32;
    }
    let x = Tensor::from_vec(&[8, 4], x).unwrap();
    let y = Tensor::from_fn(&[8, 3], |i| (i % 3) as f32).unwrap();
    m.train_on_batch(&x, &y).unwrap();
    m.weights().unwrap().into_iter().find(|(n, _)| n == "dense/kernel").unwrap().1.as_slice().to_vec()
}

#[test]
fn the_second_replicas_dropout_masks_follow_the_seed() {
    let a = kernel_after_one_step(1, 1);
    let b = kernel_after_one_step(2, 1);
    assert_ne!(a, b, "replica 1's masks must change with the model's seed");
    let again = kernel_after_one_step(1, 2);
    assert!(a.iter().zip(&again).all(|(p, q)| p.to_bits() == q.to_bits()), "1 vs 2 threads, same seed");
}

#[test]
fn dropout_training_is_bitwise_identical_for_1_and_2_threads() {
    let x = Tensor::from_fn(&[40, 4], |i| ((i * 37) % 11) as f32 * 0.3).unwrap();
    let y = Tensor::from_fn(&[40, 3], |i| ((i * 7) % 5) as f32 * 0.2).unwrap();
    let run = |threads: usize| {
        let mut m = dropout_model(9);
        m.set_threads(Some(threads)).unwrap();
        let h = m.fit(&x, &y, &FitOptions::default().epochs(3).batch_size(8).verbose(Verbose::Silent)).unwrap();
        (h.loss(), m.weights().unwrap())
    };
    let (l1, w1) = run(1);
    let (l2, w2) = run(2);
    assert_eq!(l1, l2);
    assert_eq!(w1, w2);
    // And the masks differ between epochs and steps (a seed per step): training moved the weights.
    assert_ne!(w1, dropout_model(9).weights().unwrap());
}

/// A layer with state: the identity on its input that counts the training steps it took part in, in a
/// non-trainable parameter `<name>/steps` updated with `Recording::assign` (Keras' `variable.assign`).
#[derive(Debug, Clone, Default)]
struct StepCounter {
    name: Option<String>,
    steps: Option<ParamId>,
}

impl Layer for StepCounter {
    fn class_name(&self) -> &'static str {
        "StepCounter"
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn set_name(&mut self, name: String) {
        self.name = Some(name);
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    fn build(&mut self, name: &str, _input: &[usize], params: &mut Params) -> Result<()> {
        self.steps = Some(params.add(format!("{name}/steps"), &Tensor::zeros(&[1])?, false)?);
        Ok(())
    }
    fn initialize(&self, params: &mut Params, _rng: &mut ChaCha8Rng) -> Result<()> {
        if let Some(id) = self.steps {
            params.value_mut(id)?.fill(0.0);
        }
        Ok(())
    }
    fn forward(&self, rec: &mut Recording<'_, '_>, x: Var, training: bool) -> Result<Var> {
        if let (Some(id), true) = (self.steps, training) {
            let one = rec.input(&[1], &[1.0])?;
            let steps = rec.param(id)?;
            let next = rec.bias_add(one, steps)?;
            rec.assign(id, next)?;
        }
        Ok(x)
    }
    fn weights(&self) -> Vec<(&'static str, ParamId)> {
        self.steps.map(|id| ("steps", id)).into_iter().collect()
    }
    fn config(&self) -> Value {
        json!({ "name": self.name })
    }
    fn box_clone(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}

#[test]
fn layer_state_is_assigned_once_per_step_and_left_alone_by_inference() {
    for (parallel, threads) in [(false, 1), (true, 1), (true, 2)] {
        let mut m = Sequential::new(&[4]).add(StepCounter::default()).add(Dense::new(2)).build().unwrap();
        m.compile("mse", Optimizer::sgd(), &[]).unwrap();
        m.set_data_parallel(parallel);
        m.set_threads(Some(threads)).unwrap();
        assert!(m.summary().contains("Non-trainable params: 1 (4.00 B)"), "{}", m.summary());
        let steps = |m: &Model| {
            let p = m.params();
            let id = p.find("step_counter/steps").expect("the state is a parameter of the store");
            p.value(id).unwrap()[0]
        };
        let x = Tensor::from_fn(&[12, 4], |i| i as f32 * 0.01).unwrap();
        let y = Tensor::zeros(&[12, 2]).unwrap();
        m.fit(&x, &y, &FitOptions::default().epochs(1).batch_size(4).verbose(Verbose::Silent)).unwrap();
        assert_eq!(steps(&m), 3.0, "three steps (data-parallel {parallel}, {threads} threads)");
        m.predict(&x, 4).unwrap();
        m.evaluate(&x, &y, 4).unwrap();
        assert_eq!(steps(&m), 3.0, "inference assigns nothing");
        // The optimizer leaves non-trainable state alone: it is not in any gradient.
        m.train_on_batch(&x, &y).unwrap();
        assert_eq!(steps(&m), 4.0);
    }
}
