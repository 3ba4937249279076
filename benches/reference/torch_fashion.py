"""The Fashion-MNIST flagship in PyTorch, to compare `cargo xtask train-fashion` with on the same machine.

The model of `kiln::flagships::fashion_cnn` with Keras' choices: Conv2d(padding=1) with Glorot-uniform weights and
zero biases, BatchNorm with Keras' momentum 0.99 (PyTorch's momentum 0.01) and epsilon 1e-3, horizontal flips of
half the training images, dropout 0.25/0.25/0.5, Adam (lr 1e-3, eps 1e-7), batch 64, the last 10 % of the training
images held out and evaluated after every epoch, early stopping (patience 3, best weights restored) and
ReduceLROnPlateau (patience 2, factor 0.1) on the validation loss; raw 0..255 pixels scaled by 1/255 in the model.
Epoch wall time (validation included) excludes loading; the summary line gives the median epoch, test accuracy and
peak RSS.

    pip install torch numpy
    python3 benches/reference/torch_fashion.py --mnist-dir /usr/share/datasets/fashion-mnist --epochs 15
"""
import copy
import os
import resource
import statistics
import time

from common import load_mnist, parse_args

args = parse_args(__doc__)
os.environ["OMP_NUM_THREADS"] = str(args.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.set_num_interop_threads(1)
torch.manual_seed(0)

train_x, train_y, test_x, test_y = load_mnist(args.mnist_dir)
as_x = lambda a: torch.tensor(a.reshape(-1, 1, 28, 28).astype(np.float32))  # noqa: E731
x_all, y_all = as_x(train_x), torch.tensor(train_y.astype(np.int64))
n_val = len(x_all) // 10
x_train, y_train, x_val, y_val = x_all[:-n_val], y_all[:-n_val], x_all[-n_val:], y_all[-n_val:]
x_test, y_test = as_x(test_x), torch.tensor(test_y.astype(np.int64))


def conv_bn(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01), nn.ReLU()]


model = nn.Sequential(
    *conv_bn(1, 32), *conv_bn(32, 32), nn.MaxPool2d(2), nn.Dropout(0.25),
    *conv_bn(32, 64), *conv_bn(64, 64), nn.MaxPool2d(2), nn.Dropout(0.25),
    nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.BatchNorm1d(128, eps=1e-3, momentum=0.01), nn.ReLU(),
    nn.Dropout(0.5), nn.Linear(128, 10),
)
for m in model.modules():
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=2, factor=0.1)


def evaluate(x, y):
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(x[i:i + 256] / 255) for i in range(0, len(x), 256)])
    return F.cross_entropy(out, y).item(), (out.argmax(1) == y).float().mean().item()


times, best, best_state, wait = [], float("inf"), None, 0
for epoch in range(args.epochs):
    model.train()
    perm = torch.randperm(len(x_train))
    t0, total = time.perf_counter(), 0.0
    for i in range(0, len(x_train), 64):
        b = perm[i:i + 64]
        xb = x_train[b] / 255
        flip = torch.rand(len(b)) < 0.5
        xb[flip] = xb[flip].flip(3)
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), y_train[b])
        loss.backward()
        opt.step()
        total += loss.item()
    val_loss, val_acc = evaluate(x_val, y_val)
    times.append(time.perf_counter() - t0)
    plateau.step(val_loss)
    print(f"epoch {epoch + 1}: {times[-1]:.2f} s, loss {total / (len(x_train) / 64):.4f}, val_loss {val_loss:.4f}, "
          f"val_accuracy {val_acc:.4f}", flush=True)
    if val_loss < best:
        best, best_state, wait = val_loss, copy.deepcopy(model.state_dict()), 0
    else:
        wait += 1
        if wait >= 3:
            break
model.load_state_dict(best_state)
_, acc = evaluate(x_test, y_test)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"torch {torch.__version__}, {args.threads} threads: median epoch {statistics.median(times):.2f} s "
      f"(best {min(times):.2f} s, {len(times)} epochs), test accuracy {acc * 100:.2f} %, peak RSS {rss:.0f} MB")
