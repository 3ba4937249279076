//! After warm-up, a training step of the flagship model (forward, fused softmax cross-entropy, backward,
//! RMSprop update, accuracy) performs no heap allocation: the tape's arena, its recycled backward records, the
//! kernels' scratch pools and the optimizer state are all reused. A counting global allocator proves it:
//!
//! * on the calling thread (`set_threads(None)`): 20 warm `train_on_batch` calls allocate nothing;
//! * on the model's 2-thread pool, with and without data parallelism: one epoch of 80 steps allocates as much
//!   as one epoch of 40 steps (the per-epoch bookkeeping of `fit`: the shuffled order, the history entry) give
//!   or take a few allocations made by rayon's work-stealing internals (crossbeam-epoch garbage bags, injector
//!   blocks — their number depends on scheduling, not on the step count), so the steps allocate nothing.
//!   The same holds with a BatchNormalization, whose replicas run in lockstep.
//!   (`fit` runs all its steps inside one `install` on the pool; calling `train_on_batch` from outside the
//!   pool instead makes rayon's global injector queue allocate a new 63-slot block every 63 calls.)

mod common;

use kiln_kernels::alloc_count::{CountingAllocator, allocations};
use kiln_nn::prelude::*;
use kiln_tensor::Tensor;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn data(batches: usize) -> (Tensor, Tensor) {
    let n = batches * 32;
    let x = Tensor::from_fn(&[n, 28, 28, 1], |i| ((i * 37) % 256) as f32).unwrap();
    let y = Tensor::from_fn(&[n, 10], |i| f32::from(u8::from(i % 10 == ((i / 10) * 7) % 10))).unwrap();
    (x, y)
}

fn counting(f: impl FnOnce()) -> usize {
    let before = allocations();
    f();
    let during = allocations() - before;
    let probe = allocations();
    drop(std::hint::black_box(vec![1u8; 10]));
    assert!(allocations() > probe, "the counting allocator is active");
    during
}

/// One test function: the count is global, so nothing else may run in this binary meanwhile.
#[test]
fn warm_training_steps_do_not_allocate() {
    on_the_calling_thread();
    on_a_pool();
}

fn on_the_calling_thread() {
    let mut model = common::flagship();
    model.set_threads(None).unwrap();
    let (x, y) = data(1);
    for _ in 0..5 {
        model.train_on_batch(&x, &y).unwrap();
    }
    let n = counting(|| {
        for _ in 0..20 {
            model.train_on_batch(&x, &y).unwrap();
        }
    });
    assert_eq!(n, 0, "allocations in 20 warm steps on the calling thread");
}

fn on_a_pool() {
    let (x80, y80) = data(80);
    let (x40, y40) = data(40);
    // The flagship, then with a BatchNormalization, whose two replicas run in lockstep (they meet at its
    // whole-batch statistics).
    for (data_parallel, bn) in [(false, false), (true, false), (true, true)] {
        let mut model = if bn { flagship_with_batch_norm() } else { common::flagship() };
        model.set_threads(Some(2)).unwrap();
        model.set_data_parallel(data_parallel);
        let opts = FitOptions::default().verbose(Verbose::Silent);
        // Warm-up: each worker keeps its own kernel scratch, and work-stealing decides which worker runs which
        // part of a kernel, so several epochs give both workers every part.
        model.fit(&x80, &y80, &FitOptions::default().verbose(Verbose::Silent).epochs(3)).unwrap();
        let short = counting(|| drop(model.fit(&x40, &y40, &opts).unwrap()));
        let long = counting(|| drop(model.fit(&x80, &y80, &opts).unwrap()));
        // Any allocation per step would add ≥ 40. A handful either way comes from rayon's own bookkeeping
        // (crossbeam-epoch garbage bags, injector blocks), which depends on how often work was stolen.
        assert!(
            long <= short + 4,
            "data_parallel {data_parallel}, batch norm {bn}: 40 extra steps made {} more allocations ({short} for 40 steps, {long} for 80)",
            long as i64 - short as i64
        );
    }
}

/// The flagship with a BatchNormalization after its hidden Dense layer.
fn flagship_with_batch_norm() -> Model {
    let inputs = Input::new(&[28, 28, 1]);
    let x = Conv2D::new(3, 5).activation(ActivationFn::Swish).call(&inputs).unwrap();
    let x = Conv2D::new(6, 5).activation(ActivationFn::Swish).call(&x).unwrap();
    let x = Flatten::new().call(&x).unwrap();
    let x = Dense::new(84).activation(ActivationFn::Swish).call(&x).unwrap();
    let x = BatchNormalization::new().call(&x).unwrap();
    let outputs = Dense::new(10).activation(ActivationFn::Softmax).call(&x).unwrap();
    let mut model = Model::new(&inputs, &outputs).unwrap();
    model.compile("categorical_crossentropy", Optimizer::rmsprop(), &["accuracy"]).unwrap();
    model
}
