"""Keras' own numbers for Kiln's functional-merge test (crates/kiln-nn/tests/keras_merge.rs): a small graph with a
residual `Add` (BatchNormalization on one branch, a 1×1 shortcut from the input), a `Concatenate` of two branches,
and an `Add` of three inputs (one of them twice). Fixed weights, two SGD steps on a fixed batch; it prints the
layer order, summary(), the weights after the steps and the predictions as JSON. Run it in a throwaway venv
(`pip install tensorflow-cpu`): `python benches/reference/keras_merge.py > crates/kiln-nn/tests/fixtures/keras_merge.json`."""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402


def model():
    inp = keras.Input((6, 6, 2))
    a = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    b = layers.Conv2D(4, 3, padding="same")(a)
    b = layers.BatchNormalization()(b)
    s = layers.Conv2D(4, 1)(inp)
    r = layers.Add()([b, s])
    r = layers.Activation("relu")(r)
    c = layers.Concatenate()([r, a])
    g = layers.GlobalAveragePooling2D()(c)
    d = layers.Dense(5, activation="tanh")(g)
    e = layers.Dense(5)(g)
    m = layers.Add()([d, e, d])
    out = layers.Dense(3, activation="softmax")(m)
    return keras.Model(inp, out)


def values(n, k):
    """Deterministic values in [-0.5, 0.5) (weight k of the model)."""
    return ((np.arange(n) * 7919 + 104729 * (k + 1)) % 97 / 97.0 - 0.5).astype("float32")


m = model()
init = []
for k, w in enumerate(m.weights):
    v = values(int(np.prod(w.shape)), k).reshape(w.shape)
    if "moving_variance" in w.path:
        v = np.abs(v) + 0.5
    init.append(v)
m.set_weights(init)
x = (((np.arange(8 * 6 * 6 * 2) * 7919) % 101) / 50.0 - 1.0).astype("float32").reshape(8, 6, 6, 2)
y = (np.arange(8) % 3).astype("int32")
m.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
lines = []
m.summary(print_fn=lambda s, **kw: lines.append(s), line_length=None)
losses = [float(m.train_on_batch(x, y)[0]) for _ in range(2)]
print(json.dumps({
    "layers": [[l.name, l.__class__.__name__] for l in m.layers],
    "summary": "\n".join(lines),
    "init": [[w.path, list(w.shape), v.ravel().tolist()] for w, v in zip(m.weights, init)],
    "x": x.ravel().tolist(), "y": y.tolist(),
    "losses": losses,
    "trained": [np.asarray(w).ravel().tolist() for w in m.weights],
    "predictions": np.asarray(m.predict(x, verbose=0)).ravel().tolist(),
}))
