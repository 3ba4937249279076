//! After warm-up, a training step of the flagship model (forward, fused softmax cross-entropy, backward,
//! RMSprop update, accuracy) performs no heap allocation: the tape's arena, its recycled backward records, the
//! kernels' scratch pools and the optimizer state are all reused. A counting global allocator proves it, on the
//! calling thread (`set_threads(None)`) and on the model's 2-thread pool.

mod common;

use kiln_kernels::alloc_count::{CountingAllocator, allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn batch() -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..32 * 784).map(|i| ((i * 37) % 256) as f32).collect();
    let mut y = vec![0.0f32; 320];
    for r in 0..32 {
        y[r * 10 + (r * 7) % 10] = 1.0;
    }
    (x, y)
}

fn steady_state_allocations(threads: Option<usize>) -> usize {
    let mut model = common::flagship();
    model.set_threads(threads).unwrap();
    let (x, y) = batch();
    for _ in 0..5 {
        model.train_on_batch(&x, &y).unwrap();
    }
    let before = allocations();
    for _ in 0..20 {
        model.train_on_batch(&x, &y).unwrap();
    }
    let during = allocations() - before;
    // The count is global: make sure it really counts (this allocates).
    let probe = allocations();
    drop(std::hint::black_box(vec![1u8; 10]));
    assert!(allocations() > probe, "the counting allocator is active");
    during
}

#[test]
fn warm_training_step_does_not_allocate() {
    assert_eq!(steady_state_allocations(None), 0, "allocations in 20 warm steps on the calling thread");
    assert_eq!(steady_state_allocations(Some(2)), 0, "allocations in 20 warm steps on a 2-thread pool");
}
