"""The flagship notebook's model trained with PyTorch, to compare Kiln with on the same machine.

Conv2d(1→3, 5×5) → swish → Conv2d(3→6, 5×5) → swish → flatten (NHWC order, as Keras) → Linear(2400→84) → swish →
Linear(84→10) → softmax cross-entropy; Glorot-uniform weights, zero biases, RMSprop with Keras' hyper-parameters
(lr 1e-3, rho 0.9, eps 1e-7 — PyTorch adds eps outside the square root, Keras inside), batch 32, raw 0..255
pixels, shuffled every epoch. Epoch wall time excludes loading.

    pip install torch numpy
    python3 benches/reference/torch_mnist.py --mnist-dir ../shared/mnist --epochs 3 --threads 2
"""
import os
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
x_train = torch.tensor(train_x.reshape(-1, 1, 28, 28).astype(np.float32))
y_train = torch.tensor(train_y.astype(np.int64))
x_test = torch.tensor(test_x.reshape(-1, 1, 28, 28).astype(np.float32))
y_test = torch.tensor(test_y.astype(np.int64))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 3, 5), nn.Conv2d(3, 6, 5)
        self.d1, self.d2 = nn.Linear(2400, 84), nn.Linear(84, 10)
        for m in (self.c1, self.c2, self.d1, self.d2):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.silu(self.c2(F.silu(self.c1(x))))
        return self.d2(F.silu(self.d1(x.permute(0, 2, 3, 1).flatten(1))))


model = Net()
opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
times = []
for epoch in range(args.epochs):
    perm = torch.randperm(len(x_train))
    t0, total = time.perf_counter(), 0.0
    for i in range(0, len(x_train), 32):
        b = perm[i:i + 32]
        opt.zero_grad()
        loss = F.cross_entropy(model(x_train[b]), y_train[b])
        loss.backward()
        opt.step()
        total += loss.item()
    times.append(time.perf_counter() - t0)
    print(f"epoch {epoch + 1}: {times[-1]:.2f} s, loss {total / (len(x_train) / 32):.4f}", flush=True)
with torch.no_grad():
    acc = (model(x_test).argmax(1) == y_test).float().mean().item()
print(f"torch {torch.__version__}, {args.threads} threads: median epoch {statistics.median(times):.2f} s, "
      f"test accuracy {acc * 100:.2f} %")
