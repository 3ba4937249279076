"""Keras' own answers for Kiln's callback, schedule and weight-decay tests (crates/kiln-nn/tests/keras_callbacks.rs).

Drives real Keras 3 callbacks with fixed sequences of epoch logs, evaluates Keras' learning-rate schedules at
fixed steps, and trains a small model three steps with AdamW and other optimizers given weight decay; prints one
JSON document. Run it in a throwaway venv (`pip install tensorflow-cpu`):

    python benches/reference/keras_callbacks.py > /tmp/keras_callbacks.json

The numbers it prints are pinned in the Rust test; rerun it when a case changes.
"""
import io
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import keras  # noqa: E402


def f32(x):
    return float(np.float32(x))


def schedules():
    s = keras.optimizers.schedules
    cases = {
        "exp": (s.ExponentialDecay(1e-3, 100, 0.96), [0, 1, 50, 99, 100, 101, 1000, 12345]),
        "exp_stair": (s.ExponentialDecay(1e-3, 100, 0.96, staircase=True), [0, 99, 100, 250, 1000]),
        "piecewise": (s.PiecewiseConstantDecay([100, 500], [1e-3, 5e-4, 1e-4]), [0, 100, 101, 500, 501, 10000]),
        "cosine": (s.CosineDecay(1e-3, 1000), [0, 1, 250, 500, 999, 1000, 5000]),
        "cosine_alpha": (s.CosineDecay(1e-3, 1000, alpha=0.1), [0, 333, 1000, 2000]),
        "cosine_warmup": (
            s.CosineDecay(0.0, 1000, warmup_target=1e-3, warmup_steps=100),
            [0, 50, 99, 100, 101, 600, 1100, 2000],
        ),
    }
    out = {}
    for name, (sched, steps) in cases.items():
        out[name] = {"steps": steps, "values": [float(np.asarray(sched(np.int64(t)))) for t in steps]}
    return out


def tiny_model(metrics=("accuracy",)):
    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    m.compile(optimizer=keras.optimizers.RMSprop(1e-3), loss="categorical_crossentropy", metrics=list(metrics))
    # Build the compiled metrics so `mode="auto"` can see their direction, as after a real `fit`.
    m.fit(np.zeros((2, 2), "float32"), np.eye(2, dtype="float32"), epochs=1, verbose=0)
    return m


def drive(cb, model, seq, key):
    """on_train_begin, then on_epoch_end with `key` taking each value of `seq`, until stop_training."""
    cb.set_model(model)
    model.stop_training = False
    cb.on_train_begin()
    epochs, lrs = 0, []
    for epoch, v in enumerate(seq):
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, {key: v, "loss": 0.5})
        lrs.append(float(np.asarray(model.optimizer.learning_rate)))
        epochs += 1
        if model.stop_training:
            break
    cb.on_train_end()
    return epochs, lrs


SEQ = [1.0, 0.9, 0.95, 0.91, 0.89, 0.9, 0.92, 0.93, 0.88, 0.95, 0.96, 0.97]
ACC = [0.5, 0.6, 0.58, 0.61, 0.61, 0.6, 0.59, 0.7, 0.69, 0.68]


def early_stopping():
    out = {}
    cases = {
        "patience2": (dict(patience=2), SEQ, "val_loss"),
        "patience0": (dict(), SEQ, "val_loss"),
        "min_delta": (dict(patience=2, min_delta=0.05), SEQ, "val_loss"),
        "baseline": (dict(patience=3, baseline=0.85), SEQ, "val_loss"),
        "start_from": (dict(patience=1, start_from_epoch=3), SEQ, "val_loss"),
        "acc_auto": (dict(monitor="val_accuracy", patience=2), ACC, "val_accuracy"),
        "acc_min_delta": (dict(monitor="val_accuracy", patience=1, min_delta=0.02), ACC, "val_accuracy"),
        "restore": (dict(patience=3, restore_best_weights=True), SEQ, "val_loss"),
    }
    for name, (kw, seq, key) in cases.items():
        model = tiny_model()
        cb = keras.callbacks.EarlyStopping(**kw)
        epochs, _ = drive(cb, model, seq, key)
        out[name] = {
            "epochs_run": epochs,
            "stopped_epoch": cb.stopped_epoch,
            "best_epoch": cb.best_epoch,
            "best": None if cb.best is None else float(cb.best),
        }
    return out


def reduce_lr():
    out = {}
    cases = {
        "default_patience2": (dict(patience=2), SEQ, "val_loss"),
        "factor_cooldown": (dict(patience=1, factor=0.5, cooldown=2), SEQ, "val_loss"),
        "min_lr": (dict(patience=1, factor=0.2, min_lr=1e-4), SEQ, "val_loss"),
        "acc": (dict(monitor="val_accuracy", patience=1, factor=0.5), ACC, "val_accuracy"),
    }
    for name, (kw, seq, key) in cases.items():
        model = tiny_model()
        cb = keras.callbacks.ReduceLROnPlateau(verbose=1, **kw)
        buf = io.StringIO()
        old = sys.stdout
        sys.stdout = buf
        try:
            _, lrs = drive(cb, model, seq, key)
        finally:
            sys.stdout = old
        out[name] = {"learning_rates": lrs, "messages": [l for l in buf.getvalue().splitlines() if l]}
    return out


def csv_logger():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "log.csv")
        cb = keras.callbacks.CSVLogger(path)
        cb.set_model(tiny_model())
        cb.on_train_begin()
        rows = [
            {"loss": f32(0.6931471), "accuracy": f32(0.5), "learning_rate": f32(1e-3)},
            {"loss": f32(0.1234567), "accuracy": f32(0.96875), "learning_rate": f32(1e-5)},
        ]
        for e, logs in enumerate(rows):
            cb.on_epoch_end(e, dict(logs))
        cb.on_train_end()
        with open(path, newline="") as f:
            no_val = f.read()
        cb = keras.callbacks.CSVLogger(path, separator=";")
        cb.set_model(tiny_model())
        cb.on_train_begin()
        cb.on_epoch_end(0, {"loss": f32(0.25), "accuracy": f32(0.75), "val_loss": f32(0.3), "val_accuracy": f32(0.7)})
        cb.on_train_end()
        with open(path, newline="") as f:
            with_val = f.read()
    return {"no_val": no_val, "with_val_semicolon": with_val}


def weight_decay():
    """Three train_on_batch steps of Dense(2, softmax) from fixed weights under optimizers with weight decay."""
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [-0.5, 0.8, 0.1], [2.0, -0.3, 0.6]], "float32")
    y = np.eye(2, dtype="float32")[[0, 1, 1, 0]]
    kernel = np.array([[0.1, -0.2], [0.3, 0.05], [-0.15, 0.25]], "float32")
    bias = np.array([0.01, -0.02], "float32")
    out = {}
    for name, opt in [
        ("adamw", lambda: keras.optimizers.AdamW(learning_rate=0.01)),
        ("sgd_momentum_wd", lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, weight_decay=0.01)),
        ("rmsprop_wd", lambda: keras.optimizers.RMSprop(learning_rate=0.01, weight_decay=0.05)),
    ]:
        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
        m.layers[0].set_weights([kernel, bias])
        m.compile(optimizer=opt(), loss="categorical_crossentropy")
        losses = [float(m.train_on_batch(x, y)) for _ in range(3)]
        k, b = m.layers[0].get_weights()
        out[name] = {"losses": losses, "kernel": k.ravel().tolist(), "bias": b.tolist()}
    return out


if __name__ == "__main__":
    print(json.dumps({
        "keras_version": keras.__version__,
        "schedules": schedules(),
        "early_stopping": early_stopping(),
        "reduce_lr_on_plateau": reduce_lr(),
        "csv_logger": csv_logger(),
        "weight_decay": weight_decay(),
    }, indent=1))
