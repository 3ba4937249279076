"""The flagship notebook in Keras (TensorFlow backend), to compare Kiln with on the same machine.

The notebook's model and `compile` call (Keras defaults: RMSprop, Glorot-uniform kernels, zero biases), batch 32,
raw 0..255 pixels; epoch wall time from a callback (loading excluded).

    pip install tensorflow-cpu
    python3 benches/reference/keras_mnist.py --mnist-dir ../shared/mnist --epochs 3 --threads 2
"""
import os
import statistics
import time

from common import load_mnist, parse_args

args = parse_args(__doc__)
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(args.threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
keras.utils.set_random_seed(0)


train_x, train_y, test_x, test_y = load_mnist(args.mnist_dir)
x_train = train_x.reshape(-1, 28, 28, 1).astype("float32")
y_train = keras.utils.to_categorical(train_y, 10)
x_test = test_x.reshape(-1, 28, 28, 1).astype("float32")
y_test = keras.utils.to_categorical(test_y, 10)

model = keras.Sequential([
    keras.Input((28, 28, 1)),
    layers.Conv2D(3, 5, activation="swish"),
    layers.Conv2D(6, 5, activation="swish"),
    layers.Flatten(),
    layers.Dense(84, activation="swish"),
    layers.Dense(10, activation="softmax"),
])
model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
times = []


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        times.append(time.perf_counter() - self.t0)
        print(f"epoch {epoch + 1}: {times[-1]:.2f} s, loss {logs['loss']:.4f}", flush=True)


model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0, callbacks=[EpochTimer()])
_, acc = model.evaluate(x_test, y_test, verbose=0)
if args.save:
    model.save(args.save)
print(f"keras {keras.__version__} (tensorflow {tf.__version__}), {args.threads} threads: median epoch "
      f"{statistics.median(times):.2f} s, test accuracy {acc * 100:.2f} %")
