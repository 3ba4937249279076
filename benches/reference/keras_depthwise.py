"""Keras' own numbers for Kiln's DepthwiseConv2D test (crates/kiln-nn/tests/keras_depthwise.rs): the layer's output
on a fixed input with fixed weights (depth multiplier 2, `same` padding, stride 2), its weight names and shapes,
and a summary() using it. Run it in a throwaway venv (`pip install tensorflow-cpu`):
`python benches/reference/keras_depthwise.py`."""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import keras  # noqa: E402

x = (((np.arange(1 * 5 * 5 * 2) * 7919) % 23) / 4.0 - 2.5).astype("float32").reshape(1, 5, 5, 2)
kernel = ((np.arange(3 * 3 * 2 * 2) * 37 % 11) / 10.0 - 0.5).astype("float32").reshape(3, 3, 2, 2)
bias = np.array([0.1, -0.2, 0.05, 0.3], "float32")
layer = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, activation="relu")
layer.build(x.shape)
layer.set_weights([kernel, bias])
y = np.asarray(layer(x))
model = keras.Sequential([keras.Input((12, 12, 4)), keras.layers.DepthwiseConv2D(3), keras.layers.Flatten(),
                          keras.layers.Dense(3)])
lines = []
model.summary(print_fn=lambda s, **kw: lines.append(s), line_length=None)
print(json.dumps({
    "x": x.ravel().tolist(), "kernel": kernel.ravel().tolist(), "bias": bias.tolist(),
    "shape": list(y.shape), "y": y.ravel().tolist(),
    "weights": [[w.name, list(w.shape)] for w in layer.weights],
    "summary": "\n".join(lines),
}))
