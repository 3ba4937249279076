//! Callbacks and schedules inside `fit`, on a small model and synthetic data: they stop training, change the
//! rate the optimizer really uses, save what they should, survive save/load, and leave determinism intact.

mod common;

use kiln_nn::callbacks::{
    BackupAndRestore, Callback, EarlyStopping, LearningRateScheduler, Logs, ModelCheckpoint, ReduceLROnPlateau,
    SaveFreq, TerminateOnNaN,
};
use kiln_nn::prelude::*;
use kiln_nn::schedules::{ExponentialDecay, PiecewiseConstantDecay};
use kiln_nn::{NnError, Verbose};

fn model() -> Model {
    let mut m = common::flagship_sized(12, 16);
    m.set_seed(3).unwrap();
    m
}

fn quiet<'a>() -> FitOptions<'a> {
    FitOptions::default().verbose(Verbose::Silent).batch_size(16)
}

/// Records which hooks ran, in order.
#[derive(Default)]
struct Trace(Vec<String>);

impl Callback for Trace {
    fn on_train_begin(&mut self, _: &mut Model) -> kiln_nn::Result<()> {
        self.0.push("train_begin".into());
        Ok(())
    }
    fn on_epoch_begin(&mut self, e: usize, _: &mut Model) -> kiln_nn::Result<()> {
        self.0.push(format!("epoch_begin {e}"));
        Ok(())
    }
    fn on_train_batch_end(&mut self, b: usize, logs: &Logs, _: &mut Model) -> kiln_nn::Result<()> {
        assert!(logs.get("loss").is_some() && logs.get("accuracy").is_some());
        self.0.push(format!("batch {b}"));
        Ok(())
    }
    fn on_epoch_end(&mut self, e: usize, logs: &mut Logs, _: &mut Model) -> kiln_nn::Result<()> {
        let keys: Vec<&str> = logs.keys().collect();
        self.0.push(format!("epoch_end {e} {keys:?}"));
        Ok(())
    }
    fn on_train_end(&mut self, _: &mut Model) -> kiln_nn::Result<()> {
        self.0.push("train_end".into());
        Ok(())
    }
}

#[test]
fn hooks_run_in_keras_order_with_keras_logs() {
    let (x, y) = common::synthetic(40, 12, 1);
    let mut m = model();
    let mut t = Trace::default();
    m.fit(&x, &y, &quiet().epochs(2).validation(Validation::Split(0.2)).callback(&mut t)).unwrap();
    let keys = r#"["accuracy", "loss", "val_accuracy", "val_loss"]"#;
    let want: Vec<String> = [
        "train_begin".to_owned(),
        "epoch_begin 0".into(),
        "batch 0".into(),
        "batch 1".into(),
        format!("epoch_end 0 {keys}"),
        "epoch_begin 1".into(),
        "batch 0".into(),
        "batch 1".into(),
        format!("epoch_end 1 {keys}"),
        "train_end".into(),
    ]
    .into();
    assert_eq!(t.0, want);
}

#[test]
fn early_stopping_ends_fit_and_restores_the_best_weights() {
    let (x, y) = common::synthetic(64, 12, 2);
    let mut m = model();
    // A validation loss that cannot improve on its first value: the learning rate makes training diverge away.
    m.set_learning_rate(0.5).unwrap();
    let mut stop = EarlyStopping::new().monitor("val_loss").patience(1).restore_best_weights(true);
    let h = m.fit(&x, &y, &quiet().epochs(10).validation(Validation::Split(0.25)).callback(&mut stop)).unwrap();
    assert!(h.epochs.len() < 10, "stopped early ({} epochs)", h.epochs.len());
    assert_eq!(stop.stopped_epoch() + 1, h.epochs.len());
    let best = stop.best_epoch();
    let vx = kiln_nn::Rows::new(&x, 48..64).unwrap();
    let vy = kiln_nn::Rows::new(&y, 48..64).unwrap();
    let now = m.evaluate(&vx, &vy, 16).unwrap().loss;
    assert_eq!(now, h.epochs[best].val_loss.unwrap(), "the restored weights give the best epoch's val_loss");
}

#[test]
fn the_optimizer_uses_the_rate_callbacks_set() {
    let (x, y) = common::synthetic(32, 12, 3);
    let mut m = model();
    // A rate of zero from the second epoch on: the weights stop changing.
    let mut sched = LearningRateScheduler::new(|epoch, lr| if epoch == 0 { lr } else { 0.0 });
    let mut after_first = None;
    struct Snap<'s>(&'s mut Option<Vec<kiln_tensor::Tensor>>);
    impl Callback for Snap<'_> {
        fn on_epoch_end(&mut self, e: usize, _: &mut Logs, m: &mut Model) -> kiln_nn::Result<()> {
            if e == 0 {
                *self.0 = Some(m.get_weights()?);
            }
            Ok(())
        }
    }
    let h = m.fit(&x, &y, &quiet().epochs(3).callback(&mut sched).callback(&mut Snap(&mut after_first))).unwrap();
    assert_eq!(h.epochs[1].learning_rate, Some(0.0));
    assert_eq!(h.epochs[0].learning_rate, Some(1e-3));
    assert_eq!(m.get_weights().unwrap(), after_first.unwrap(), "a rate of 0 leaves the weights as they were");
    assert_eq!(m.learning_rate().unwrap(), 0.0);
}

#[test]
fn reduce_lr_on_plateau_changes_the_models_rate() {
    let (x, y) = common::synthetic(32, 12, 4);
    let mut m = model();
    // `loss` on training data always improves early; `min_delta` huge makes every epoch a plateau.
    let mut plateau = ReduceLROnPlateau::new().monitor("loss").patience(1).min_delta(10.0).factor(0.5);
    let h = m.fit(&x, &y, &quiet().epochs(3).callback(&mut plateau)).unwrap();
    let lrs: Vec<f32> = h.epochs.iter().map(|e| e.learning_rate.unwrap()).collect();
    // Keras logs the rate before reducing it: epoch 1 (the first without improvement) halves it.
    assert_eq!(lrs, [1e-3, 1e-3, (1e-3f64 * 0.5) as f32]);
    assert_eq!(m.learning_rate().unwrap(), ((f64::from(1e-3f32) * 0.5) * 0.5) as f32);
}

#[test]
fn a_schedule_drives_the_rate_and_cannot_be_overridden() {
    let (x, y) = common::synthetic(32, 12, 5);
    let mut m = model();
    // Rate 1e-3 for the first two steps, then 0: after step 2 the weights stay put.
    m.set_learning_rate_schedule(Some(PiecewiseConstantDecay::new(vec![1], vec![1e-3, 0.0]).unwrap().into()));
    let (xb, yb) = (kiln_nn::Rows::new(&x, 0..16).unwrap(), kiln_nn::Rows::new(&y, 0..16).unwrap());
    let w0 = m.get_weights().unwrap();
    m.train_on_batch(&xb, &yb).unwrap();
    let w1 = m.get_weights().unwrap();
    m.train_on_batch(&xb, &yb).unwrap();
    let w2 = m.get_weights().unwrap();
    assert_eq!(m.learning_rate().unwrap(), 0.0);
    m.train_on_batch(&xb, &yb).unwrap();
    assert_ne!(w0, w1);
    assert_ne!(w1, w2);
    assert_eq!(m.get_weights().unwrap(), w2, "rate 0 from step 2 on");
    let err = m.set_learning_rate(1e-2).unwrap_err();
    assert!(err.to_string().contains("LearningRateSchedule"), "{err}");
    // A callback that sets the rate fails under a (non-zero) schedule, as in Keras.
    m.set_learning_rate_schedule(Some(ExponentialDecay::new(1e-3, 10, 0.9).unwrap().into()));
    let mut plateau = ReduceLROnPlateau::new().monitor("loss").patience(0).min_delta(10.0);
    assert!(m.fit(&x, &y, &quiet().epochs(2).callback(&mut plateau)).is_err());
}

#[test]
fn schedules_and_changed_rates_survive_save_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = model();
    m.set_learning_rate_schedule(Some(ExponentialDecay::new(1e-3, 10, 0.5).unwrap().staircase(true).into()));
    m.save(dir.path().join("m")).unwrap();
    let back = Model::load(dir.path().join("m")).unwrap();
    assert_eq!(back.learning_rate_schedule(), m.learning_rate_schedule());

    let (x, y) = common::synthetic(32, 12, 6);
    let mut m = model();
    m.set_learning_rate(2.5e-4).unwrap();
    m.fit(&x, &y, &quiet().epochs(1).checkpoint(dir.path().join("ck"))).unwrap();
    let mut resumed = model();
    resumed.load_checkpoint(dir.path().join("ck")).unwrap();
    assert_eq!(resumed.learning_rate().unwrap(), 2.5e-4);
}

#[test]
fn terminate_on_nan_stops_quietly_and_without_it_fit_fails() {
    let (x, y) = common::synthetic(64, 12, 7);
    let diverging = || {
        let mut m = model();
        m.compile("categorical_crossentropy", Optimizer::sgd().learning_rate(1e30), &["accuracy"]).unwrap();
        m
    };
    let mut m = diverging();
    let mut nan = TerminateOnNaN::new();
    let h = m.fit(&x, &y, &quiet().epochs(3).callback(&mut nan)).unwrap();
    assert_eq!(h.epochs.len(), 1, "stopped in the first epoch");
    assert!(!h.epochs[0].loss.is_finite());
    assert_eq!(nan.messages().len(), 1);
    assert!(nan.messages()[0].ends_with(": Invalid loss, terminating training"), "{:?}", nan.messages());
    assert!(m.get_weights().unwrap().iter().all(|w| w.as_slice().iter().all(|v| v.is_finite())));

    let mut m = diverging();
    let mut nan = TerminateOnNaN::new().raise_error(true);
    assert!(matches!(m.fit(&x, &y, &quiet().epochs(3).callback(&mut nan)), Err(NnError::NonFiniteLoss { .. })));
    let mut m = diverging();
    assert!(matches!(m.fit(&x, &y, &quiet().epochs(3)), Err(NnError::NonFiniteLoss { .. })));
}

#[test]
fn model_checkpoint_saves_the_best_epochs_only() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = common::synthetic(64, 12, 8);
    let mut m = model();
    let template = dir.path().join("best-{epoch:02d}").to_string_lossy().into_owned();
    let mut ck = ModelCheckpoint::new(template).monitor("val_loss").save_best_only(true);
    let h = m.fit(&x, &y, &quiet().epochs(3).validation(Validation::Split(0.25)).callback(&mut ck)).unwrap();
    let mut best = f32::INFINITY;
    for e in &h.epochs {
        let saved = dir.path().join(format!("best-{:02}", e.epoch)).join("model.json").exists();
        let v = e.val_loss.unwrap();
        assert_eq!(saved, v < best, "epoch {}: val_loss {v}, best before {best}", e.epoch);
        best = best.min(v);
    }
    assert!(dir.path().join("best-01").exists());
    let mut every = ModelCheckpoint::new(dir.path().join("w-{epoch}-{batch}.safetensors").to_string_lossy())
        .save_weights_only(true)
        .save_freq(SaveFreq::Batches(3));
    m.fit(&x, &y, &quiet().epochs(1).callback(&mut every)).unwrap();
    assert!(dir.path().join("w-1-3.safetensors").exists());
    let mut keras = ModelCheckpoint::new(dir.path().join("m.keras").to_string_lossy());
    assert!(m.fit(&x, &y, &quiet().epochs(1).callback(&mut keras)).is_err());
}

#[test]
fn callbacks_keep_one_and_two_threads_bitwise_equal() {
    let (x, y) = common::synthetic(48, 12, 9);
    let run = |threads: Option<usize>, schedule: bool| {
        let mut m = model();
        m.set_data_parallel(true);
        m.set_threads(threads).unwrap();
        let mut stop = EarlyStopping::new().monitor("val_loss").patience(5);
        // Every epoch is a plateau (min_delta 10): the rate halves each epoch.
        let mut plateau = ReduceLROnPlateau::new().monitor("loss").patience(1).min_delta(10.0).factor(0.5);
        let opts = quiet().epochs(3).validation(Validation::Split(0.25)).callback(&mut stop);
        let opts = if schedule {
            m.set_learning_rate_schedule(Some(ExponentialDecay::new(1e-3, 2, 0.7).unwrap().into()));
            opts
        } else {
            opts.callback(&mut plateau)
        };
        let h = m.fit(&x, &y, &opts).unwrap();
        let lrs: Vec<Option<f32>> = h.epochs.iter().map(|e| e.learning_rate).collect();
        (lrs, m.learning_rate().unwrap(), m.get_weights().unwrap())
    };
    for schedule in [false, true] {
        let one = run(None, schedule);
        assert_eq!(one, run(Some(2), schedule), "schedule {schedule}");
        assert_ne!(one.1, 1e-3, "the rate moved");
    }
}

/// Stops training after `at` batches in all (a stand-in for an interruption inside an epoch).
struct StopAfter {
    at: usize,
    seen: usize,
}

impl Callback for StopAfter {
    fn on_train_batch_end(&mut self, _: usize, _: &Logs, m: &mut Model) -> kiln_nn::Result<()> {
        self.seen += 1;
        if self.seen == self.at {
            m.set_stop_training(true);
        }
        Ok(())
    }
}

#[test]
fn backup_and_restore_continues_an_interrupted_run_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    let (x, y) = common::synthetic(64, 12, 10);
    let fresh = || {
        let mut m = model();
        m.set_data_parallel(true);
        m
    };
    let mut whole = fresh();
    whole.fit(&x, &y, &quiet().epochs(3)).unwrap();

    // Interrupted in the middle of the second epoch (4 steps per epoch): the backup holds epoch 1.
    let mut m = fresh();
    let mut b = BackupAndRestore::new(&backup);
    let h = m.fit(&x, &y, &quiet().epochs(3).callback(&mut b).callback(&mut StopAfter { at: 6, seen: 0 })).unwrap();
    assert_eq!(h.epochs.len(), 2);
    assert_eq!(m.epochs_done(), 1, "the cut epoch does not count");
    assert!(backup.join("checkpoint.safetensors").exists(), "kept after an interrupted run");

    // A new process would start from a fresh model: the backup brings it to epoch 1, fit continues with epoch 2.
    let mut m = fresh();
    let mut b = BackupAndRestore::new(&backup);
    let h = m.fit(&x, &y, &quiet().epochs(3).callback(&mut b)).unwrap();
    assert_eq!(b.restored_epochs(), Some(1));
    assert_eq!(h.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(m.get_weights().unwrap(), whole.get_weights().unwrap(), "bitwise equal to the uninterrupted run");
    assert_eq!(m.iterations(), whole.iterations());
    assert!(!backup.exists(), "deleted after a complete run");
}
