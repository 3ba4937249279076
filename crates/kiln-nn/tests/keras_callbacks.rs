//! Callbacks, learning-rate schedules and weight decay against real Keras 3.15.1: the numbers below were produced
//! by `benches/reference/keras_callbacks.py`, which drives Keras' own callbacks with the same sequences of epoch
//! logs, evaluates Keras' schedules at the same steps and trains a small model with decaying optimizers.

use kiln_nn::callbacks::{CSVLogger, Callback, EarlyStopping, Logs, Mode, ReduceLROnPlateau};
use kiln_nn::prelude::*;
use kiln_nn::schedules::{CosineDecay, ExponentialDecay, LearningRateSchedule, PiecewiseConstantDecay};

/// Keras' `Sequential([Input((2,)), Dense(2, softmax)])` compiled with RMSprop(1e-3) and accuracy.
fn tiny() -> Model {
    let mut m = Sequential::new(&[2]).add(Dense::new(2).activation(ActivationFn::Softmax)).build().unwrap();
    m.compile("categorical_crossentropy", Optimizer::rmsprop().learning_rate(1e-3), &["accuracy"]).unwrap();
    m
}

const SEQ: [f64; 12] = [1.0, 0.9, 0.95, 0.91, 0.89, 0.9, 0.92, 0.93, 0.88, 0.95, 0.96, 0.97];
const ACC: [f64; 10] = [0.5, 0.6, 0.58, 0.61, 0.61, 0.6, 0.59, 0.7, 0.69, 0.68];

/// As the Python driver: on_train_begin, then each epoch's begin and end with `key` = the next value, until the
/// model is asked to stop. Returns the epochs run and the learning rate after each.
fn drive(cb: &mut dyn Callback, model: &mut Model, seq: &[f64], key: &str) -> (usize, Vec<f64>) {
    model.set_stop_training(false);
    cb.on_train_begin(model).unwrap();
    let mut lrs = Vec::new();
    let mut epochs = 0;
    for (epoch, &v) in seq.iter().enumerate() {
        cb.on_epoch_begin(epoch, model).unwrap();
        let mut logs = Logs::default();
        logs.set(key, v);
        logs.set("loss", 0.5);
        cb.on_epoch_end(epoch, &mut logs, model).unwrap();
        lrs.push(f64::from(model.learning_rate().unwrap()));
        epochs += 1;
        if model.stop_training() {
            break;
        }
    }
    cb.on_train_end(model).unwrap();
    (epochs, lrs)
}

#[test]
fn early_stopping_decides_as_keras() {
    // (case, callback, sequence, key, Keras' epochs run, stopped_epoch, best_epoch, best)
    type Case<'a> = (&'a str, EarlyStopping, &'a [f64], &'a str, usize, usize, usize, f64);
    let cases: Vec<Case<'_>> = vec![
        ("patience2", EarlyStopping::new().patience(2), &SEQ, "val_loss", 4, 3, 1, 0.9),
        ("patience0", EarlyStopping::new(), &SEQ, "val_loss", 3, 2, 1, 0.9),
        ("min_delta", EarlyStopping::new().patience(2).min_delta(0.05), &SEQ, "val_loss", 4, 3, 1, 0.9),
        ("baseline", EarlyStopping::new().patience(3).baseline(0.85), &SEQ, "val_loss", 3, 2, 1, 0.9),
        ("start_from", EarlyStopping::new().patience(1).start_from_epoch(3), &SEQ, "val_loss", 6, 5, 4, 0.89),
        ("acc_auto", EarlyStopping::new().monitor("val_accuracy").patience(2), &ACC, "val_accuracy", 6, 5, 3, 0.61),
        (
            "acc_min_delta",
            EarlyStopping::new().monitor("val_accuracy").patience(1).min_delta(0.02),
            &ACC,
            "val_accuracy",
            3,
            2,
            1,
            0.6,
        ),
        ("restore", EarlyStopping::new().patience(3).restore_best_weights(true), &SEQ, "val_loss", 8, 7, 4, 0.89),
    ];
    for (name, mut cb, seq, key, epochs, stopped, best_epoch, best) in cases {
        let mut model = tiny();
        let (run, _) = drive(&mut cb, &mut model, seq, key);
        assert_eq!(run, epochs, "{name}: epochs run");
        assert_eq!(cb.stopped_epoch(), stopped, "{name}: stopped_epoch");
        assert_eq!(cb.best_epoch(), best_epoch, "{name}: best_epoch");
        assert_eq!(cb.best(), Some(best), "{name}: best");
    }
}

#[test]
fn early_stopping_restores_the_best_epochs_weights() {
    let mut model = tiny();
    let mut cb = EarlyStopping::new().patience(1).restore_best_weights(true).verbose(true);
    cb.on_train_begin(&mut model).unwrap();
    let mut snapshots = Vec::new();
    for (epoch, v) in [1.0, 0.5, 0.7, 0.8].into_iter().enumerate() {
        // Stand-in for an epoch of training: every weight changes.
        let w: Vec<_> = model.get_weights().unwrap().into_iter().map(|t| t.map(|x| x + 1.0).unwrap()).collect();
        model.set_weights(&w).unwrap();
        snapshots.push(model.get_weights().unwrap());
        let mut logs = Logs::default();
        logs.set("val_loss", v);
        cb.on_epoch_end(epoch, &mut logs, &mut model).unwrap();
        if model.stop_training() {
            break;
        }
    }
    cb.on_train_end(&mut model).unwrap();
    assert_eq!(cb.stopped_epoch(), 2);
    assert_eq!(model.get_weights().unwrap(), snapshots[1], "weights of the best epoch (1)");
    assert_eq!(
        cb.messages(),
        ["Epoch 3: early stopping", "Restoring model weights from the end of the best epoch: 2."]
    );
}

#[test]
fn monitoring_an_unknown_direction_is_an_error() {
    let mut model = tiny();
    let mut cb = EarlyStopping::new().monitor("val_f1");
    let mut logs = Logs::default();
    logs.set("val_f1", 0.5);
    assert!(cb.on_epoch_end(0, &mut logs, &mut model).is_err());
    let mut cb = EarlyStopping::new().monitor("val_f1").mode(Mode::Max);
    assert!(cb.on_epoch_end(0, &mut logs, &mut model).is_ok());
}

#[test]
fn reduce_lr_on_plateau_reduces_as_keras() {
    let keras_lrs = |v: &[f64]| v.to_vec();
    // (case, callback, sequence, key, Keras' rate after each epoch, Keras' messages)
    type Case<'a> = (&'a str, ReduceLROnPlateau, &'a [f64], &'a str, Vec<f64>, Vec<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        (
            "default_patience2",
            ReduceLROnPlateau::new().patience(2),
            &SEQ,
            "val_loss",
            keras_lrs(&[
                0.0010000000474974513,
                0.0010000000474974513,
                0.0010000000474974513,
                0.00010000000474974513,
                0.00010000000474974513,
                0.00010000000474974513,
                1.0000000656873453e-05,
                1.0000000656873453e-05,
                1.0000000656873453e-05,
                1.0000000656873453e-05,
                1.0000001111620804e-06,
                1.0000001111620804e-06,
            ]),
            vec![
                "Epoch 4: ReduceLROnPlateau reducing learning rate to 0.00010000000474974513.",
                "Epoch 7: ReduceLROnPlateau reducing learning rate to 1.0000000474974514e-05.",
                "Epoch 11: ReduceLROnPlateau reducing learning rate to 1.0000000656873453e-06.",
            ],
        ),
        (
            "factor_cooldown",
            ReduceLROnPlateau::new().patience(1).factor(0.5).cooldown(2),
            &SEQ,
            "val_loss",
            keras_lrs(&[
                0.0010000000474974513,
                0.0010000000474974513,
                0.0005000000237487257,
                0.0005000000237487257,
                0.0005000000237487257,
                0.0002500000118743628,
                0.0002500000118743628,
                0.0001250000059371814,
                0.0001250000059371814,
                6.25000029685907e-05,
                6.25000029685907e-05,
                3.125000148429535e-05,
            ]),
            vec![
                "Epoch 3: ReduceLROnPlateau reducing learning rate to 0.0005000000237487257.",
                "Epoch 6: ReduceLROnPlateau reducing learning rate to 0.0002500000118743628.",
                "Epoch 8: ReduceLROnPlateau reducing learning rate to 0.0001250000059371814.",
                "Epoch 10: ReduceLROnPlateau reducing learning rate to 6.25000029685907e-05.",
                "Epoch 12: ReduceLROnPlateau reducing learning rate to 3.125000148429535e-05.",
            ],
        ),
        (
            "min_lr",
            ReduceLROnPlateau::new().patience(1).factor(0.2).min_lr(1e-4),
            &SEQ,
            "val_loss",
            {
                let mut v = vec![0.0010000000474974513, 0.0010000000474974513, 0.00020000000949949026];
                v.extend([9.999999747378752e-05; 9]);
                v
            },
            vec![
                "Epoch 3: ReduceLROnPlateau reducing learning rate to 0.00020000000949949026.",
                "Epoch 4: ReduceLROnPlateau reducing learning rate to 0.0001.",
            ],
        ),
        (
            "acc",
            ReduceLROnPlateau::new().monitor("val_accuracy").patience(1).factor(0.5),
            &ACC,
            "val_accuracy",
            keras_lrs(&[
                0.0010000000474974513,
                0.0010000000474974513,
                0.0005000000237487257,
                0.0005000000237487257,
                0.0002500000118743628,
                0.0001250000059371814,
                6.25000029685907e-05,
                6.25000029685907e-05,
                3.125000148429535e-05,
                1.5625000742147677e-05,
            ]),
            vec![
                "Epoch 3: ReduceLROnPlateau reducing learning rate to 0.0005000000237487257.",
                "Epoch 5: ReduceLROnPlateau reducing learning rate to 0.0002500000118743628.",
                "Epoch 6: ReduceLROnPlateau reducing learning rate to 0.0001250000059371814.",
                "Epoch 7: ReduceLROnPlateau reducing learning rate to 6.25000029685907e-05.",
                "Epoch 9: ReduceLROnPlateau reducing learning rate to 3.125000148429535e-05.",
                "Epoch 10: ReduceLROnPlateau reducing learning rate to 1.5625000742147677e-05.",
            ],
        ),
    ];
    for (name, mut cb, seq, key, lrs, messages) in cases {
        let mut model = tiny();
        let (_, got) = drive(&mut cb, &mut model, seq, key);
        assert_eq!(got, lrs, "{name}: learning rates");
        assert_eq!(cb.messages(), messages.as_slice(), "{name}: messages");
    }
}

#[test]
fn reduce_lr_on_plateau_rejects_a_factor_of_one() {
    let mut model = tiny();
    assert!(ReduceLROnPlateau::new().factor(1.0).on_train_begin(&mut model).is_err());
}

#[test]
fn schedules_match_keras() {
    // (schedule, steps, Keras' values as float(np.asarray(schedule(step)))).
    let cases: Vec<(LearningRateSchedule, Vec<u64>, Vec<f64>)> = vec![
        (
            ExponentialDecay::new(1e-3, 100, 0.96).unwrap().into(),
            vec![0, 1, 50, 99, 100, 101, 1000, 12345],
            vec![
                0.0010000000474974513,
                0.000999591895379126,
                0.0009797959355637431,
                0.0009603920043446124,
                0.0009600000339560211,
                0.0009596082381904125,
                0.0006648324779234827,
                6.477129772974877e-06,
            ],
        ),
        (
            ExponentialDecay::new(1e-3, 100, 0.96).unwrap().staircase(true).into(),
            vec![0, 99, 100, 250, 1000],
            vec![
                0.0010000000474974513,
                0.0010000000474974513,
                0.0009600000339560211,
                0.0009216000325977802,
                0.0006648324779234827,
            ],
        ),
        (
            PiecewiseConstantDecay::new(vec![100, 500], vec![1e-3, 5e-4, 1e-4]).unwrap().into(),
            vec![0, 100, 101, 500, 501, 10000],
            vec![
                0.0010000000474974513,
                0.0010000000474974513,
                0.0005000000237487257,
                0.0005000000237487257,
                9.999999747378752e-05,
                9.999999747378752e-05,
            ],
        ),
        (
            CosineDecay::new(1e-3, 1000).unwrap().into(),
            vec![0, 1, 250, 500, 999, 1000, 5000],
            vec![
                0.0010000000474974513,
                0.0009999974863603711,
                0.0008535534725524485,
                0.0004999999655410647,
                2.4735928860764034e-09,
                0.0,
                0.0,
            ],
        ),
        (
            CosineDecay::new(1e-3, 1000).unwrap().alpha(0.1).into(),
            vec![0, 333, 1000, 2000],
            vec![0.0010000000474974513, 0.0007754079415462911, 0.00010000000474974513, 0.00010000000474974513],
        ),
        (
            CosineDecay::new(0.0, 1000).unwrap().warmup(1e-3, 100).into(),
            vec![0, 50, 99, 100, 101, 600, 1100, 2000],
            vec![
                0.0,
                0.0005000000237487257,
                0.0009900000877678394,
                0.0010000000474974513,
                0.0009999974863603711,
                0.0004999999655410647,
                0.0,
                0.0,
            ],
        ),
    ];
    for (s, steps, want) in cases {
        for (&t, &w) in steps.iter().zip(&want) {
            let got = f64::from(s.at(t));
            // TensorFlow's float32 pow and cos may round differently from Rust's by an ulp or two; near a
            // cosine's zero the absolute error is what is bounded.
            let tol = 3.0 * f64::from(f32::EPSILON) * w.abs() + 1e-12;
            assert!((got - w).abs() <= tol, "{s:?} at step {t}: {got:e} vs Keras {w:e}");
        }
        let back = LearningRateSchedule::from_config(&s.config()).unwrap();
        assert_eq!(back, s, "config round trip");
    }
    assert!(ExponentialDecay::new(1e-3, 0, 0.9).is_err());
    assert!(PiecewiseConstantDecay::new(vec![10], vec![1.0]).is_err());
    assert!(PiecewiseConstantDecay::new(vec![10, 5], vec![1.0, 0.5, 0.1]).is_err());
}

#[test]
#[allow(clippy::approx_constant, reason = "0.6931471 is the loss the Keras script logged, not ln 2")]
fn csv_logger_writes_keras_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.csv");
    let mut model = tiny();
    let f = |x: f32| f64::from(x);
    let mut cb = CSVLogger::new(&path);
    cb.on_train_begin(&mut model).unwrap();
    for (e, (loss, acc, lr)) in [(0.693_147_1_f32, 0.5f32, 1e-3f32), (0.1234567, 0.96875, 1e-5)].into_iter().enumerate()
    {
        let mut logs = Logs::default();
        logs.set("loss", f(loss));
        logs.set("accuracy", f(acc));
        logs.set("learning_rate", f(lr));
        cb.on_epoch_end(e, &mut logs, &mut model).unwrap();
    }
    cb.on_train_end(&mut model).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "epoch,accuracy,learning_rate,loss,val_accuracy,val_learning_rate,val_loss\r\n\
         0,0.5,0.0010000000474974513,0.6931471228599548,NA,NA,NA\r\n\
         1,0.96875,9.999999747378752e-06,0.12345670163631439,NA,NA,NA\r\n"
    );
    let mut cb = CSVLogger::new(&path).separator(";");
    cb.on_train_begin(&mut model).unwrap();
    let mut logs = Logs::default();
    for (k, v) in [("loss", 0.25f32), ("accuracy", 0.75), ("val_loss", 0.3), ("val_accuracy", 0.7)] {
        logs.set(k, f(v));
    }
    cb.on_epoch_end(0, &mut logs, &mut model).unwrap();
    cb.on_train_end(&mut model).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "epoch;accuracy;loss;val_accuracy;val_loss\r\n0;0.75;0.25;0.699999988079071;0.30000001192092896\r\n"
    );
    // Appending to a file that has a header adds rows only.
    let mut cb = CSVLogger::new(&path).separator(";").append(true);
    cb.on_train_begin(&mut model).unwrap();
    cb.on_epoch_end(1, &mut logs, &mut model).unwrap();
    cb.on_train_end(&mut model).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("epoch;").count(), 1);
    assert!(text.ends_with("\r\n1;0.75;0.25;0.699999988079071;0.30000001192092896\r\n"));
}

#[test]
fn weight_decay_trains_as_keras() {
    // Three `train_on_batch` steps of Dense(2, softmax) from fixed weights (the script's `weight_decay()`).
    let x =
        kiln_tensor::Tensor::from_slice(&[4, 3], &[0.5, -1.0, 2.0, 1.5, 0.25, -0.75, -0.5, 0.8, 0.1, 2.0, -0.3, 0.6])
            .unwrap();
    let y = kiln_tensor::Tensor::from_slice(&[4, 2], &[1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]).unwrap();
    let kernel = kiln_tensor::Tensor::from_slice(&[3, 2], &[0.1, -0.2, 0.3, 0.05, -0.15, 0.25]).unwrap();
    let bias = kiln_tensor::Tensor::from_slice(&[2], &[0.01, -0.02]).unwrap();
    // (optimizer, Keras' losses, kernel and bias after the third step)
    type Case = (Optimizer, [f32; 3], [f32; 6], [f32; 2]);
    let cases: [Case; 3] = [
        (
            Optimizer::adamw().learning_rate(0.01),
            [0.920_470_4, 0.900_457_7, 0.880_802_6],
            [0.129_899_16, -0.229_887_16, 0.269_982_37, 0.079_975_65, -0.119_996_6, 0.219_984_62],
            [-0.020_042_378, 0.010_043_577],
        ),
        (
            Optimizer::sgd_momentum(0.1, 0.9, false).weight_decay(0.01),
            [0.920_470_4, 0.839_051_6, 0.706_562_6],
            [0.147_442_68, -0.247_143, 0.111_660_37, 0.237_290_73, 0.130_883_1, -0.031_182_818],
            [-0.009_078_628, -0.000_891_405_16],
        ),
        (
            Optimizer::rmsprop().learning_rate(0.01).weight_decay(0.05),
            [0.920_470_4, 0.858_274_1, 0.816_379_7],
            [0.167_587_04, -0.267_437_1, 0.227_176_15, 0.122_299_15, -0.077_109_1, 0.176_959_15],
            [-0.068_004_24, 0.058_019_25],
        ),
    ];
    for (opt, losses, k_want, b_want) in cases {
        let mut m = Sequential::new(&[3]).add(Dense::new(2).activation(ActivationFn::Softmax)).build().unwrap();
        m.compile("categorical_crossentropy", opt, &[]).unwrap();
        m.set_weights(&[kernel.clone(), bias.clone()]).unwrap();
        for want in losses {
            let got = m.train_on_batch(&x, &y).unwrap().loss;
            assert!((got - want).abs() <= 2e-6 * want.abs(), "{}: loss {got} vs Keras {want}", opt.name());
        }
        let w = m.get_weights().unwrap();
        for (got, want) in w[0].as_slice().iter().chain(w[1].as_slice()).zip(k_want.iter().chain(&b_want)) {
            // A few f32 roundings apart at most: Keras on TensorFlow sums the 4-sample gradient in another order.
            assert!((got - want).abs() <= 1e-6 + 2e-6 * want.abs(), "{}: weight {got} vs Keras {want}", opt.name());
        }
    }
}
