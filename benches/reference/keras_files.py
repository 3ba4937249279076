"""Keras model files for Kiln's `.keras` / `.h5` tests (crates/kiln-nn/tests/keras_files.rs), made by real Keras 3,
and the check of Kiln-written files in Keras.

`make OUT_DIR` trains each fixture model a few steps on fixed data and writes, into OUT_DIR:
  seed.keras      the notebook's Sequential model (Conv2D swish ×2, Dense) after 3 RMSprop steps, saved with a fresh
                  RMSprop;
  fashion.keras   the Fashion flagship (Rescaling, RandomFlip, Conv2D/BatchNormalization/ReLU, Dropout, …) after
                  3 Adam steps, saved with a fresh Adam (so only `iterations` and `learning_rate` are stored);
  small.keras     a small Sequential (Dense relu/tanh/softmax) with RMSprop state after 3 steps;
  residual.keras  a small functional graph (Add, Concatenate, BatchNormalization, gelu) with Adam state;
  schedule.keras  Adam driven by CosineDecay with warmup (no learning_rate variable is then stored);
  legacy.h5       a small functional model in the legacy format (`model_config` + `model_weights`), by Keras 3;
  keras2.h5       a Sequential model with BatchNormalization saved by Keras 2 (`pip install tf_keras`), as older
                  notebooks have them (nested `inbound_nodes`, `batch_input_shape`, `axis: [3]`, `kernel:0`);
                  the optimizer state of both .h5 files is not read back, so their step starts a fresh optimizer;
  expected.json   for each: fixed inputs, Keras' predictions, and one more training step on a fixed batch (its
                  loss and the predictions after it), which needs the optimizer state to have been read.
`check DIR` opens every `*.keras` Kiln wrote in DIR, compares Keras' predictions with Kiln's (DIR/<name>.json:
{"x": …, "shape": …, "predictions": …}), then trains one more step in Keras to show training continues there.
Run it in a throwaway venv (`pip install tensorflow-cpu`)."""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers as L  # noqa: E402


def data(n, shape, k, scale=1.0):
    """Deterministic inputs in [0, scale) and labels (stream k)."""
    x = ((np.arange(n * int(np.prod(shape))) * 7919 + 104729 * (k + 1)) % 997 / 997.0 * scale).astype("float32")
    return x.reshape((n,) + shape), ((np.arange(n) * 3 + k) % 10).astype("int32")


def seed_model():
    m = keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(3, 5, activation="swish"),
        L.Conv2D(6, 5, activation="swish"),
        L.Flatten(),
        L.Dense(84, activation="swish"),
        L.Dense(10, activation="softmax"),
    ])
    m.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    return m, True


def fashion_model():
    def block(x, filters):
        for _ in range(2):
            x = L.Conv2D(filters, 3, padding="same")(x)
            x = L.BatchNormalization()(x)
            x = L.ReLU()(x)
        return L.Dropout(0.25)(L.MaxPooling2D(2)(x))

    inputs = keras.Input((28, 28, 1))
    x = L.RandomFlip("horizontal")(L.Rescaling(1 / 255)(inputs))
    x = block(block(x, 32), 64)
    x = L.Dense(128)(L.Flatten()(x))
    x = L.Dropout(0.5)(L.ReLU()(L.BatchNormalization()(x)))
    m = keras.Model(inputs, L.Dense(10, activation="softmax")(x))
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m, False


def small_model():
    m = keras.Sequential([
        keras.Input((12,)),
        L.Dense(16, activation="relu"),
        L.Dense(8, activation="tanh"),
        L.Dense(10, activation="softmax"),
    ])
    m.compile(optimizer=keras.optimizers.RMSprop(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m, False


def residual_model():
    inp = keras.Input((6, 6, 2))
    a = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    b = L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(a))
    r = L.Activation("relu")(L.Add()([b, L.Conv2D(4, 1)(inp)]))
    g = L.GlobalAveragePooling2D()(L.Concatenate()([r, a]))
    out = L.Dense(10, activation="softmax")(L.Dense(6, activation="gelu")(g))
    m = keras.Model(inp, out)
    m.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m, False


def schedule_model():
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, 100, warmup_target=2e-3, warmup_steps=10)
    m = keras.Sequential([keras.Input((12,)), L.Dense(10, activation="softmax")])
    m.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy")
    return m, False


def legacy_model():
    inp = keras.Input((8, 8, 2))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = L.BatchNormalization()(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Flatten()(x)
    out = L.Dense(10, activation="softmax")(x)
    m = keras.Model(inp, out)
    m.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    return m, False


def floats(a):
    """float32 values as the shortest decimals that read back exactly (9 significant digits)."""
    return [float(f"{v:.9g}") for v in np.asarray(a, "float32").ravel()]


def keras2_model():
    """A Keras 2 (tf_keras) Sequential model with BatchNormalization, saved in Keras 2's own .h5 format."""
    import tf_keras as k2

    m = k2.Sequential([
        k2.layers.Conv2D(3, 5, activation="swish", input_shape=(12, 12, 1)),
        k2.layers.BatchNormalization(),
        k2.layers.MaxPooling2D(2),
        k2.layers.Flatten(),
        k2.layers.Dense(10, activation="softmax"),
    ])
    m.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return m, True


def labels(y, one_hot, ks=keras):
    return ks.utils.to_categorical(y, 10) if one_hot else y


def make(out):
    os.makedirs(out, exist_ok=True)
    expected = {}
    # Fixtures kept small: the seed and Fashion models are saved with a fresh optimizer (their state would double
    # or triple the files); the small ones carry RMSprop and Adam state.
    for k, (name, build, fname, scale, fresh_optimizer) in enumerate([
        ("seed", seed_model, "seed.keras", 1.0, True),
        ("fashion", fashion_model, "fashion.keras", 255.0, True),
        ("small", small_model, "small.keras", 1.0, False),
        ("residual", residual_model, "residual.keras", 1.0, False),
        ("legacy", legacy_model, "legacy.h5", 1.0, False),
        ("keras2", keras2_model, "keras2.h5", 1.0, False),
        ("schedule", schedule_model, "schedule.keras", 1.0, False),
    ]):
        keras.utils.set_random_seed(k)
        m, one_hot = build()
        ks = keras if name != "keras2" else __import__("tf_keras")
        shape = tuple(m.input_shape[1:])
        for step in range(3):
            x, y = data(16, shape, 10 * k + step, scale)
            m.train_on_batch(x, labels(y, one_hot, ks))
        if fresh_optimizer:
            m.compile(optimizer=build()[0].optimizer, loss=m.loss, metrics=["accuracy"])
        m.save(os.path.join(out, fname))
        x, _ = data(4, shape, 100 + k, scale)
        before = m.predict(x, verbose=0)
        expected[name] = {
            "file": fname,
            "shape": list(shape),
            "x": floats(x),
            "predictions": floats(before),
            "keras_version": ks.__version__,
        }
        if name == "fashion":
            continue  # its training step is random (RandomFlip, Dropout)
        xs, ys = data(8, shape, 200 + k, scale)
        # The step Keras takes after loading its own file (a loaded model continues from the stored state).
        load = keras.saving.load_model if name != "keras2" else ks.models.load_model
        m2 = load(os.path.join(out, fname), compile=not fname.endswith(".h5"))
        if fname.endswith(".h5"):
            # A legacy file's optimizer state is not read back (by Keras 3 or Kiln): training restarts it.
            build_fresh, _ = build()
            m2.compile(optimizer=build_fresh.optimizer, loss=m.loss, metrics=["accuracy"])
        loss = float(np.ravel(m2.train_on_batch(xs, labels(ys, one_hot, ks)))[0])
        expected[name].update({
            "step_x": floats(xs),
            "step_y": ys.tolist(),
            "step_loss": loss,
            "after_step": floats(m2.predict(x, verbose=0)),
        })
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


def check(d):
    for fname in sorted(os.listdir(d)):
        if not fname.endswith(".keras"):
            continue
        name = fname[: -len(".keras")]
        with open(os.path.join(d, name + ".json")) as f:
            exp = json.load(f)
        m = keras.saving.load_model(os.path.join(d, fname))
        x = np.asarray(exp["x"], "float32").reshape([-1] + exp["shape"])
        p = m.predict(x, verbose=0)
        diff = float(np.abs(p - np.asarray(exp["predictions"], "float32").reshape(p.shape)).max())
        print(f"{fname}: {len(m.layers)} layers, {m.count_params()} params, optimizer {m.optimizer.name} "
              f"iterations {int(m.optimizer.iterations)}; max |Keras − Kiln| prediction {diff:.3g}")
        if "step_x" in exp:
            xs = np.asarray(exp["step_x"], "float32").reshape([-1] + exp["shape"])
            ys = np.asarray(exp["step_y"], "int32")
            one_hot = m.loss == "categorical_crossentropy"
            loss = float(np.ravel(m.train_on_batch(xs, labels(ys, one_hot)))[0])
            print(f"  one more step in Keras: loss {loss:.6f} (Kiln's step on the same batch: {exp['step_loss']:.6f})")
            assert abs(loss - exp["step_loss"]) < 1e-4, "training does not continue in Keras as in Kiln"
        assert diff <= 1e-6, f"{fname}: predictions differ by {diff}"
    print("all Kiln files open in Keras with equal predictions")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        sys.exit(__doc__)
    (make if sys.argv[1] == "make" else check)(sys.argv[2])
