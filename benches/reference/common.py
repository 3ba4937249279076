"""What both reference scripts share: the command line and the MNIST IDX reader (numpy only)."""
import argparse
import gzip
import os

import numpy as np


def parse_args(doc):
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--mnist-dir", default=os.environ.get("MNIST_DIR", "."))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", default=None, help="write the trained model here (model.save: .keras or .h5)")
    return ap.parse_args()


def load_mnist(directory):
    """(train images, train labels, test images, test labels): uint8 arrays, images N×28×28."""

    def idx(name, offset):
        with gzip.open(os.path.join(directory, name)) as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)

    return (idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28), idx("train-labels-idx1-ubyte.gz", 8),
            idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28), idx("t10k-labels-idx1-ubyte.gz", 8))
