"""Keras' own numbers for Kiln's BatchNormalization test (crates/kiln-nn/tests/keras_batch_norm.rs): two SGD steps
of `Input(4) → Dense(3) → BatchNormalization → Dense(2, softmax)` from fixed weights on a fixed batch (losses,
every weight after, including the moving statistics), the predictions of the trained model in inference, and its
summary(). Run it in a throwaway venv (`pip install tensorflow-cpu`):
`python benches/reference/keras_batch_norm.py`."""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import keras  # noqa: E402

L = keras.layers
x = (((np.arange(8 * 4) * 7919) % 23) / 4.0 - 2.5).astype("float32").reshape(8, 4)
y = np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype="int32")
model = keras.Sequential([keras.Input((4,)), L.Dense(3), L.BatchNormalization(), L.Dense(2, activation="softmax")])
k0 = ((np.arange(12) * 37 % 11) / 10.0 - 0.5).astype("float32").reshape(4, 3)
k1 = ((np.arange(6) * 13 % 7) / 5.0 - 0.6).astype("float32").reshape(3, 2)
model.layers[0].set_weights([k0, np.array([0.1, -0.2, 0.05], "float32")])
model.layers[2].set_weights([k1, np.array([0.0, 0.1], "float32")])
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
losses = [float(model.train_on_batch(x, y)) for _ in range(2)]
out = {
    "x": x.ravel().tolist(),
    "y": y.tolist(),
    "kernel0": k0.ravel().tolist(),
    "kernel1": k1.ravel().tolist(),
    "losses": losses,
    "weights": {v.path: np.asarray(v).ravel().tolist() for v in model.weights},
    "predict": np.asarray(model.predict(x, verbose=0)).ravel().tolist(),
}
lines = []
model.summary(print_fn=lambda s, **kw: lines.append(s), line_length=None)
out["summary"] = "\n".join(lines)
print(json.dumps(out, indent=1))
