"""The Fashion-MNIST flagship in Keras (TensorFlow backend), to compare `cargo xtask train-fashion` with on the
same machine.

The model of `kiln::flagships::fashion_cnn` — Rescaling(1/255) → RandomFlip("horizontal") → [Conv2D(32,3,same) →
BatchNormalization → ReLU] ×2 → MaxPooling2D → Dropout(0.25) → [Conv2D(64,3,same) → BN → ReLU] ×2 →
MaxPooling2D → Dropout(0.25) → Flatten → Dense(128) → BN → ReLU → Dropout(0.5) → Dense(10, softmax) — with Adam
1e-3, batch 64, validation_split=0.1, EarlyStopping(patience=3, restore_best_weights=True),
ReduceLROnPlateau(patience=2); raw 0..255 pixels, class-index labels. Epoch wall time (validation included) from a
callback, loading excluded; the summary line gives the median epoch, test accuracy and peak RSS.

    pip install tensorflow-cpu
    python3 benches/reference/keras_fashion.py --mnist-dir /usr/share/datasets/fashion-mnist --epochs 15
"""
import os
import resource
import statistics
import time

from common import load_mnist, parse_args

args = parse_args(__doc__)
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers as L  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(args.threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
keras.utils.set_random_seed(0)

train_x, train_y, test_x, test_y = load_mnist(args.mnist_dir)
x_train, x_test = (a.reshape(-1, 28, 28, 1).astype("float32") for a in (train_x, test_x))


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
model = keras.Model(inputs, L.Dense(10, activation="softmax")(x))
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.summary()


class EpochTimes(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        times.append(time.perf_counter() - self.t0)


times = []
callbacks = [EpochTimes(), keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True),
             keras.callbacks.ReduceLROnPlateau(patience=2)]
model.fit(x_train, train_y, batch_size=64, epochs=args.epochs, validation_split=0.1, callbacks=callbacks, verbose=2)
loss, acc = model.evaluate(x_test, test_y, batch_size=64, verbose=0)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"keras {keras.__version__}, {args.threads} threads: median epoch {statistics.median(times):.2f} s "
      f"(best {min(times):.2f} s, {len(times)} epochs), test accuracy {acc * 100:.2f} %, peak RSS {rss:.0f} MB")
