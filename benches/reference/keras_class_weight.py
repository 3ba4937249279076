"""Keras' own numbers for Kiln's class_weight test (crates/kiln-nn/tests/keras_class_weight.rs): one epoch of
`Input(4) → Dense(3, softmax)` (and `Dense(3)` under MSE) from fixed weights, SGD(0.1), batch 4, no shuffling,
`class_weight={0: 1.0, 1: 3.0, 2: 0.5}`, for sparse labels, one-hot labels and mean squared error: the logged loss
and accuracy and the weights after. Run it in a throwaway venv (`pip install tensorflow-cpu`):
`python benches/reference/keras_class_weight.py`."""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import keras  # noqa: E402

x = (((np.arange(8 * 4) * 7919) % 23) / 4.0 - 2.5).astype("float32").reshape(8, 4)
labels = np.array([0, 1, 2, 1, 0, 2, 1, 1], dtype="int32")
kernel = ((np.arange(12) * 37 % 11) / 10.0 - 0.5).astype("float32").reshape(4, 3)
class_weight = {0: 1.0, 1: 3.0, 2: 0.5}
out = {"x": x.ravel().tolist(), "labels": labels.tolist(), "kernel": kernel.ravel().tolist()}
for name, loss, y, activation in [
    ("sparse", "sparse_categorical_crossentropy", labels, "softmax"),
    ("categorical", "categorical_crossentropy", keras.utils.to_categorical(labels, 3), "softmax"),
    ("mse", "mse", keras.utils.to_categorical(labels, 3), None),
]:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation=activation)])
    model.layers[0].set_weights([kernel, np.array([0.1, -0.2, 0.05], "float32")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, metrics=["accuracy"])
    h = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, class_weight=class_weight, verbose=0)
    out[name] = {
        "loss": h.history["loss"][0],
        "accuracy": h.history["accuracy"][0],
        "kernel": np.asarray(model.layers[0].kernel).ravel().tolist(),
        "bias": np.asarray(model.layers[0].bias).ravel().tolist(),
    }
print(json.dumps(out, indent=1))
