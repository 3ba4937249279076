//! Training across ranks (`kiln_nn::distributed`) with ranks that are threads of this process: the same
//! replica count gives the same bits on one process or on any number of ranks, every rank ends with the same
//! weights, rank 0's weights win at the start, BatchNormalization's statistics span all ranks, only rank 0
//! writes, and a failure or a missing peer is an error on every rank rather than a hang.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::synthetic;
use kiln_nn::NnError;
use kiln_nn::callbacks::CSVLogger;
use kiln_nn::distributed::{Collective, ThreadGroup};
use kiln_nn::prelude::*;
use kiln_tensor::Tensor;

type Weights = Vec<(String, Tensor)>;

/// The small flagship with a Dropout (so each replica's own mask stream matters) — `seed` for its weights.
fn model(seed: u64) -> Model {
    let inputs = Input::new(&[12, 12, 1]);
    let x = Conv2D::new(3, 5).activation(ActivationFn::Swish).call(&inputs).unwrap();
    let x = Conv2D::new(6, 5).activation(ActivationFn::Swish).call(&x).unwrap();
    let x = Flatten::new().call(&x).unwrap();
    let x = Dense::new(16).activation(ActivationFn::Swish).call(&x).unwrap();
    let x = Dropout::new(0.2).call(&x).unwrap();
    let outputs = Dense::new(10).activation(ActivationFn::Softmax).call(&x).unwrap();
    let mut m = Model::new(&inputs, &outputs).unwrap();
    m.compile("categorical_crossentropy", Optimizer::adam(), &["accuracy"]).unwrap();
    m.set_seed(seed).unwrap();
    m.set_threads(Some(1)).unwrap();
    m
}

/// Keras' `class_weight`, so every comparison also checks that each rank's replicas weigh their samples.
const CLASS_WEIGHT: [f32; 10] = [1.0, 2.0, 0.5, 1.0, 1.5, 1.0, 0.25, 1.0, 3.0, 1.0];

/// 2 epochs of 103 samples in batches of 19 (uneven replica splits, a short last batch), with class weights.
fn opts<'a>() -> FitOptions<'a> {
    FitOptions::default().epochs(2).batch_size(19).verbose(Verbose::Silent).class_weight(&CLASS_WEIGHT)
}

fn alone(replicas: usize) -> (Vec<f32>, Weights) {
    alone_with(replicas, model)
}

fn alone_with(replicas: usize, build: fn(u64) -> Model) -> (Vec<f32>, Weights) {
    let (x, y) = synthetic(103, 12, 4);
    let mut m = build(7);
    m.set_replicas(replicas).unwrap();
    let h = m.fit(&x, &y, &opts()).unwrap();
    (h.loss(), m.weights().unwrap())
}

/// Trains on `ranks` threads with `replicas` replicas in all; rank r's model starts from seed `seeds(r)`.
fn on_ranks(ranks: usize, replicas: usize, seeds: impl Fn(usize) -> u64 + Sync) -> Vec<(Vec<f32>, Weights)> {
    on_ranks_with(ranks, replicas, seeds, model)
}

fn on_ranks_with(
    ranks: usize,
    replicas: usize,
    seeds: impl Fn(usize) -> u64 + Sync,
    build: fn(u64) -> Model,
) -> Vec<(Vec<f32>, Weights)> {
    let (x, y) = synthetic(103, 12, 4);
    let group = ThreadGroup::new(ranks);
    std::thread::scope(|s| {
        let handles: Vec<_> = group
            .into_iter()
            .map(|member| {
                let (x, y, seeds) = (&x, &y, &seeds);
                s.spawn(move || {
                    let mut m = build(seeds(member.rank()));
                    m.set_replicas(replicas).unwrap();
                    m.set_collective(Arc::new(member)).unwrap();
                    let h = m.fit(x, y, &opts()).unwrap();
                    (h.loss(), m.weights().unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Runs `body` on each rank of `group` (threads), with the small flagship (seed 7, two replicas) joined to it.
fn each_rank(group: Vec<ThreadGroup>, body: impl Fn(usize, &mut Model) + Sync) {
    std::thread::scope(|s| {
        for member in group {
            let body = &body;
            s.spawn(move || {
                let rank = member.rank();
                let mut m = model(7);
                m.set_replicas(2).unwrap();
                m.set_collective(Arc::new(member)).unwrap();
                body(rank, &mut m);
            });
        }
    });
}

fn same_bits(what: &str, a: &Weights, b: &Weights) {
    assert_eq!(a.len(), b.len());
    for ((n, p), (_, q)) in a.iter().zip(b) {
        assert!(p.as_slice().iter().zip(q.as_slice()).all(|(u, v)| u.to_bits() == v.to_bits()), "{what}: {n} differs");
    }
}

#[test]
fn two_ranks_equal_one_process_with_two_replicas() {
    let (loss, w) = alone(2);
    let runs = on_ranks(2, 2, |_| 7);
    for (r, (l, wr)) in runs.iter().enumerate() {
        assert_eq!(l, &loss, "rank {r}: epoch losses");
        same_bits(&format!("rank {r} vs one process"), wr, &w);
    }
    // …and differs from training each batch as one piece (the replicas really split it).
    let (_, w1) = alone(1);
    assert!(w.iter().zip(&w1).any(|((_, a), (_, b))| a.as_slice() != b.as_slice()));
}

#[test]
fn four_replicas_give_the_same_bits_on_one_two_or_four_ranks() {
    let four = on_ranks(4, 4, |_| 7);
    let two = on_ranks(2, 4, |_| 7);
    let one = alone(4);
    for (r, (l, w)) in four.iter().chain(&two).chain([&one]).enumerate() {
        assert_eq!(l, &four[0].0, "run {r}: epoch losses");
        same_bits(&format!("run {r}"), w, &four[0].1);
    }
    // Four replicas reduce differently from two (a fold of four terms), yet train as well.
    let (l2, _) = alone(2);
    assert_ne!(four[0].0, l2);
    assert!(four[0].0[1] < four[0].0[0], "loss falls: {:?}", four[0].0);
}

#[test]
fn rank_zero_weights_win_at_the_start() {
    let (_, w) = alone(2);
    let runs = on_ranks(2, 2, |r| 7 + 100 * r as u64);
    same_bits("rank 1 started from other weights", &runs[1].1, &w);
    same_bits("rank 0", &runs[0].1, &w);
}

#[test]
fn only_rank_zero_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = synthetic(40, 12, 4);
    let dir_path = dir.path();
    each_rank(ThreadGroup::with_timeout(2, Duration::from_secs(20)), |rank, m| {
        assert_eq!(m.is_chief(), rank == 0);
        // A profiled step runs on one rank alone, so it is refused rather than splitting the weights.
        assert!(matches!(m.profile_step(&x, &y), Err(NnError::Unsupported { .. })));
        let mut log = CSVLogger::new(dir_path.join(format!("log-{rank}.csv")));
        let o = opts().epochs(1).checkpoint(dir_path.join(format!("ckpt-{rank}"))).callback(&mut log);
        m.fit(&x, &y, &o).unwrap();
    });
    assert!(dir.path().join("log-0.csv").is_file() && dir.path().join("ckpt-0").is_dir());
    assert!(!dir.path().join("log-1.csv").exists() && !dir.path().join("ckpt-1").exists());
}

/// The small flagship with BatchNormalization after the convolutions and the hidden Dense layer.
fn bn_model(seed: u64) -> Model {
    let inputs = Input::new(&[12, 12, 1]);
    let x = Conv2D::new(4, 3).call(&inputs).unwrap();
    let x = BatchNormalization::new().call(&x).unwrap();
    let x = Activation::new(ActivationFn::Relu).call(&x).unwrap();
    let x = Flatten::new().call(&x).unwrap();
    let x = Dense::new(16).call(&x).unwrap();
    let x = BatchNormalization::new().call(&x).unwrap();
    let x = Dropout::new(0.2).call(&x).unwrap();
    let outputs = Dense::new(10).activation(ActivationFn::Softmax).call(&x).unwrap();
    let mut m = Model::new(&inputs, &outputs).unwrap();
    m.compile("categorical_crossentropy", Optimizer::rmsprop(), &["accuracy"]).unwrap();
    m.set_seed(seed).unwrap();
    m.set_threads(Some(1)).unwrap();
    m
}

#[test]
fn batch_statistics_meet_across_ranks() {
    // BatchNormalization's whole-batch statistics, and their gradients' sums, meet across ranks in replica
    // order: two ranks give one process's bits, moving statistics included; four replicas on one, two or four
    // ranks agree.
    let (loss, w) = alone_with(2, bn_model);
    for (r, (l, wr)) in on_ranks_with(2, 2, |_| 7, bn_model).iter().enumerate() {
        assert_eq!(l, &loss, "rank {r}: epoch losses");
        same_bits(&format!("rank {r} vs one process"), wr, &w);
    }
    assert!(w.iter().any(|(n, t)| n.contains("moving_variance") && t.as_slice().iter().any(|&v| v != 1.0)));
    let four = on_ranks_with(4, 4, |_| 7, bn_model);
    let two = on_ranks_with(2, 4, |_| 7, bn_model);
    let one = alone_with(4, bn_model);
    for (r, (l, wr)) in four.iter().chain(&two).chain([&one]).enumerate() {
        assert_eq!(l, &four[0].0, "run {r}");
        same_bits(&format!("run {r}"), wr, &four[0].1);
    }
    // A batch with fewer samples than replicas cannot meet at the statistics: refused on every rank, no hang.
    let (x, y) = synthetic(40, 12, 4);
    let group = ThreadGroup::with_timeout(2, Duration::from_secs(20));
    std::thread::scope(|s| {
        for member in group {
            let (x, y) = (&x, &y);
            s.spawn(move || {
                let mut m = bn_model(7);
                m.set_replicas(2).unwrap();
                m.set_collective(Arc::new(member)).unwrap();
                let err = m.fit(x, y, &opts().batch_size(1)).unwrap_err();
                assert!(matches!(err, NnError::Unsupported { .. }), "{err}");
            });
        }
    });
}

#[test]
fn a_rank_that_leaves_is_named_by_the_others() {
    let (x, y) = synthetic(40, 12, 4);
    let mut group = ThreadGroup::with_timeout(2, Duration::from_secs(20));
    let leaver = group.pop().unwrap();
    let member = group.pop().unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut m = model(7);
            m.set_replicas(2).unwrap();
            // The start-of-run copy and the first step's exchange need rank 1, which leaves after joining.
            m.set_collective(Arc::new(member)).unwrap();
            let err = m.fit(&x, &y, &opts()).unwrap_err();
            assert!(matches!(err, NnError::Distributed { rank: 1, .. }), "{err}");
        });
        s.spawn(move || {
            let mut m = model(7);
            m.set_replicas(2).unwrap();
            m.set_collective(Arc::new(leaver)).unwrap();
            drop(m);
        });
    });
    // Replicas must spread evenly over the ranks.
    let group = ThreadGroup::new(2);
    let mut m = model(7);
    m.set_replicas(3).unwrap();
    let member: Arc<dyn Collective> = Arc::new(group.into_iter().next().unwrap());
    assert!(matches!(m.set_collective(member), Err(NnError::Config { .. })));
}

/// Saves a training checkpoint (weights and the optimizer's state) from rank 0 after batch `at` of the first
/// epoch — mid-epoch, while each rank's optimizer state is current only in its own shard.
struct SaveMidEpoch {
    dir: std::path::PathBuf,
    at: usize,
    epoch: usize,
}

impl kiln_nn::callbacks::Callback for SaveMidEpoch {
    fn on_epoch_begin(&mut self, epoch: usize, _: &mut Model) -> kiln_nn::Result<()> {
        self.epoch = epoch;
        Ok(())
    }

    fn on_train_batch_end(&mut self, batch: usize, _: &kiln_nn::callbacks::Logs, m: &mut Model) -> kiln_nn::Result<()> {
        if self.epoch == 0 && batch == self.at && m.is_chief() { m.save_checkpoint(&self.dir) } else { Ok(()) }
    }
}

/// Every tensor of a checkpoint (weights and `optimizer/<slot>/<weight>`), by name.
fn checkpoint_tensors(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(n, t)| (n, t.data().to_vec())).collect();
    all.sort();
    all
}

/// Asserts that two checkpoints hold the same tensors, bit for bit, naming the first that differs.
fn same_checkpoint(what: &str, a: &[(String, Vec<u8>)], b: &[(String, Vec<u8>)]) {
    assert_eq!(a.iter().map(|(n, _)| n).collect::<Vec<_>>(), b.iter().map(|(n, _)| n).collect::<Vec<_>>(), "{what}");
    if let Some(((n, _), _)) = a.iter().zip(b).find(|((_, u), (_, v))| u != v) {
        panic!("{what}: {n} differs");
    }
}

#[test]
fn the_optimizer_state_is_whole_wherever_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = synthetic(103, 12, 4);
    // One process: a checkpoint mid-epoch, after fit, and after one more step outside fit.
    let mut m = model(7);
    m.set_replicas(2).unwrap();
    let mut cb = SaveMidEpoch { dir: dir.path().join("mid-alone"), at: 2, epoch: 0 };
    m.fit(&x, &y, &opts().callback(&mut cb)).unwrap();
    m.save_checkpoint(dir.path().join("end-alone")).unwrap();
    m.train_on_batch(&x, &y).unwrap();
    m.save_checkpoint(dir.path().join("step-alone")).unwrap();

    let dir_path = dir.path();
    each_rank(ThreadGroup::new(2), |rank, m| {
        let mut cb = SaveMidEpoch { dir: dir_path.join("mid-ranks"), at: 2, epoch: 0 };
        m.fit(&x, &y, &opts().callback(&mut cb)).unwrap();
        // Each rank's own copy, also on rank 1: the state is whole on every rank after fit and a step.
        m.save_checkpoint(dir_path.join(format!("end-rank{rank}"))).unwrap();
        m.train_on_batch(&x, &y).unwrap();
        m.save_checkpoint(dir_path.join(format!("step-rank{rank}"))).unwrap();
    });
    let alone = checkpoint_tensors(&dir.path().join("mid-alone"));
    assert!(alone.iter().any(|(n, _)| n.starts_with("optimizer/1/")), "Adam's two slots are saved");
    same_checkpoint("mid-epoch, saved by rank 0", &checkpoint_tensors(&dir.path().join("mid-ranks")), &alone);
    for when in ["end", "step"] {
        let alone = checkpoint_tensors(&dir.path().join(format!("{when}-alone")));
        for rank in 0..2 {
            let ranks = checkpoint_tensors(&dir.path().join(format!("{when}-rank{rank}")));
            same_checkpoint(&format!("{when}: rank {rank}'s checkpoint"), &ranks, &alone);
        }
    }
}
