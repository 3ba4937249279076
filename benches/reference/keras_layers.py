"""Keras' own outputs for Kiln's layer tests (crates/kiln-nn/tests/keras_layers.rs): pooling and rescaling
layers on a fixed input, and the summary() of a model using them. Run it in a throwaway venv
(`pip install tensorflow-cpu`): `python benches/reference/keras_layers.py`."""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import keras  # noqa: E402

x = ((np.arange(1 * 5 * 5 * 2, dtype="float32") * 7919) % 23 / 4.0 - 2.5).reshape(1, 5, 5, 2)
L = keras.layers
layers = {
    "avg2_valid": L.AveragePooling2D(2),
    "avg3_s2_same": L.AveragePooling2D(3, strides=2, padding="same"),
    "gap": L.GlobalAveragePooling2D(),
    "gap_keepdims": L.GlobalAveragePooling2D(keepdims=True),
    "gmp": L.GlobalMaxPooling2D(),
    "rescale": L.Rescaling(1 / 255, offset=-0.5),
}
out = {"input": x.ravel().tolist()}
for name, layer in layers.items():
    y = np.asarray(layer(x))
    out[name] = {"shape": list(y.shape), "values": y.ravel().tolist()}

xs = np.linspace(-3, 3, 13, dtype="float32")
for name in ["leaky_relu", "elu", "gelu"]:
    out[f"activation_{name}"] = {"input": xs.tolist(), "values": np.asarray(keras.activations.get(name)(xs)).tolist()}

keras.backend.clear_session()
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((12, 12, 1)),
    L.Rescaling(1 / 255),
    L.Conv2D(4, 3, padding="same", activation="relu"),
    L.AveragePooling2D(2),
    L.MaxPooling2D(2, padding="same"),
    L.GlobalAveragePooling2D(),
    L.Dense(10, activation="softmax"),
])
lines = []
model.summary(print_fn=lambda s, **kw: lines.append(s), line_length=None)
out["summary"] = "\n".join(lines)
print(json.dumps(out, indent=1))
