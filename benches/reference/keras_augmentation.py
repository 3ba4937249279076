"""Keras' own outputs for Kiln's augmentation tests (crates/kiln-nn/tests/keras_augmentation.rs): TensorFlow's
projective transform (`keras.ops.image.affine_transform`, which RandomTranslation, RandomRotation and RandomZoom
run) of a fixed 2×5×6×2 batch by fixed transforms — a rotation, a zoom, a translation past the border — under every
fill mode, bilinear; and the transforms Keras' layers build for given random draws. Run it in a throwaway venv
(`pip install tensorflow-cpu`): `python benches/reference/keras_augmentation.py`."""
import json
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import keras  # noqa: E402

x = (((np.arange(2 * 5 * 6 * 2) * 7919) % 23) / 4.0 - 2.5).astype("float32").reshape(2, 5, 6, 2)
h, w = 5, 6
angle = 0.4
c, s = math.cos(angle), math.sin(angle)
rotation = [c, -s, ((w - 1) - (c * (w - 1) - s * (h - 1))) / 2, s, c, ((h - 1) - (s * (w - 1) + c * (h - 1))) / 2, 0, 0]
zoom = [0.7, 0, (w - 1) / 2 * (1 - 0.7), 0, 1.3, (h - 1) / 2 * (1 - 1.3), 0, 0]
shift = [1, 0, -4.6, 0, 1, 7.3, 0.01, -0.02]
transforms = np.array([rotation, zoom], dtype="float32")
out = {"x": x.ravel().tolist(), "transforms": transforms.ravel().tolist()}
for mode in ["reflect", "wrap", "nearest", "constant"]:
    for name, t in [("rot_zoom", transforms), ("shift", np.array([shift, shift], dtype="float32"))]:
        y = keras.ops.image.affine_transform(x, t, interpolation="bilinear", fill_mode=mode, fill_value=0.5)
        out[f"{mode}_{name}"] = np.asarray(y).ravel().tolist()
out["shift"] = shift
# The layers, with degenerate factor ranges (lower = upper) so that their draws are fixed: Keras' transforms.
L = keras.layers
for name, layer in [
    ("layer_rotation", L.RandomRotation((0.1, 0.1))),
    ("layer_zoom", L.RandomZoom((0.2, 0.2), (-0.1, -0.1))),
    ("layer_zoom_same", L.RandomZoom((-0.25, -0.25))),
    ("layer_translation", L.RandomTranslation((0.1, 0.1), (-0.2, -0.2), fill_mode="constant", fill_value=0.5)),
]:
    out[name] = np.asarray(layer(x, training=True)).ravel().tolist()
    out[name + "_inference"] = np.asarray(layer(x, training=False)).ravel().tolist()
print(json.dumps(out))
