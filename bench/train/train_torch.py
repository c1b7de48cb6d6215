#!/usr/bin/python3
"""PyTorch (CPU) counterpart of marginaudit's trainer, for timing epochs.

Trains the study's Fashion-MNIST (or MNIST) classifiers as trainer/train does
and prints, per epoch, the seconds of training (the loop over the mini-batches:
batch assembly, PGD, forward, backward and Adam; evaluation excluded, as in
train.Epoch.Train), wall clock and the process's CPU time, and the test
accuracy.

  cnn  Conv(1→32, 3×3, pads 1) ReLU MaxPool(2) Conv(32→64, 3×3, pads 1) ReLU
       MaxPool(2) Flatten Linear(3136→128) ReLU Linear(128→10)
       (trainer/model: Arch{Kind: "cnn"} defaults)
  mlp  Flatten Linear(784→256) ReLU Linear(256→256) ReLU Linear(256→10)

Same initialisation scheme as model.Model.Init (He normal before a ReLU,
Glorot uniform for the last layer, zero biases; other random numbers), Adam
(lr 1e-3, betas 0.9/0.999, eps 1e-8), mean softmax cross-entropy, batches of
128 over a shuffled order, the last batch smaller; with --adv the first half
(⌊n/2 + ½⌋) of every batch is replaced by L∞ PGD examples as in
auditor/attack's PGD without EarlyStop: a uniform random start in the ε-ball
clipped to [0, 1], then `steps` steps x += step·sign(∇ₓ CE), each followed by
the projection onto the ball and [0, 1]; the last iterate is used. The
gradient is taken with respect to the images only (torch.autograd.grad), as
the Go side's input-gradient graph does.

Debian's Python only: /usr/bin/python3 with python3-torch and python3-numpy.

  /usr/bin/python3 bench/train/train_torch.py --arch cnn --threads 1 --limit 10000
  /usr/bin/python3 bench/train/train_torch.py --arch cnn --adv --threads 2 --epochs 1
"""

import argparse
import gzip
import json
import math
import os
import sys
import time


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import torch_threads  # noqa: E402

torch_threads.cap(sys.argv[1:])

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# Default locations as in trainer/dataset (DEVELOPERS.md).
DEFAULT_DIRS = {
    "fashion-mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": os.path.expanduser("~/.cache/marginaudit/data/mnist"),
}

# train.DefaultAdversarial.
PGD_DEFAULTS = {
    "fashion-mnist": (0.1, 0.01, 20),
    "mnist": (0.3, 0.01, 40),
}


def read_idx(path):
    """Reads an IDX file (gzipped or plain) as a numpy array of uint8."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    magic = int.from_bytes(raw[0:4], "big")
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: bad magic {magic:#x}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise ValueError(f"{path}: {data.size} bytes, header says {dims}")
    return data.reshape(dims)


def find(dirname, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(dirname, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"no {stem}[.gz] in {dirname}")


def load(dirname, split):
    pre = "train" if split == "train" else "t10k"
    images = read_idx(find(dirname, pre + "-images-idx3-ubyte"))
    labels = read_idx(find(dirname, pre + "-labels-idx1-ubyte"))
    x = torch.from_numpy(images.astype(np.float32) / 255).unsqueeze(1)  # N,1,28,28
    y = torch.from_numpy(labels.astype(np.int64))
    return x.contiguous(), y


def build(arch):
    if arch == "cnn":
        net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
        )
    elif arch == "mlp":
        net = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10),
        )
    else:
        raise ValueError(arch)
    layers = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for i, m in enumerate(layers):
            if i == len(layers) - 1:
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            m.bias.zero_()
    return net


def pgd(net, x0, y, eps, step, steps):
    """L∞ PGD with a random start, as auditor/attack.PGD (no EarlyStop)."""
    lo, hi = torch.clamp(x0 - eps, min=0), torch.clamp(x0 + eps, max=1)
    x = torch.max(torch.min(x0 + torch.empty_like(x0).uniform_(-eps, eps), hi), lo)
    for _ in range(steps):
        x.requires_grad_(True)
        loss = F.cross_entropy(net(x), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x = torch.max(torch.min(x + step * g.sign(), hi), lo)
    return x.detach()


def epoch(net, opt, x, y, batch, adv, gen):
    order = torch.randperm(x.shape[0], generator=gen)
    loss_sum, correct = 0.0, 0
    for s in range(0, x.shape[0], batch):
        idx = order[s : s + batch]
        xb, yb = x[idx], y[idx]
        if adv is not None:
            m = min(len(idx), int(math.floor(0.5 * len(idx) + 0.5)))
            if m > 0:
                xb[:m] = pgd(net, xb[:m], yb[:m], *adv)
        logits = net(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.item() * len(idx)
        correct += (logits.argmax(1) == yb).sum().item()
    return loss_sum / x.shape[0], correct / x.shape[0]


def profile(net, opt, x, y, batch, adv, gen, n):
    from torch.profiler import ProfilerActivity, profile as tprofile

    def steps(k):
        epoch(net, opt, x[: k * batch], y[: k * batch], batch, adv, gen)

    steps(3)
    with tprofile(activities=[ProfilerActivity.CPU]) as prof:
        steps(n)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


@torch.no_grad()
def accuracy(net, x, y, batch=1000):
    correct = 0
    for s in range(0, x.shape[0], batch):
        correct += (net(x[s : s + batch]).argmax(1) == y[s : s + batch]).sum().item()
    return correct / x.shape[0]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="fashion-mnist", choices=sorted(DEFAULT_DIRS))
    ap.add_argument("--data-dir", default="", help="folder of the IDX files (default: the dataset's default location)")
    ap.add_argument("--arch", default="cnn", choices=["cnn", "mlp"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (interop threads: 1)")
    ap.add_argument("--limit", type=int, default=0, help="train on the first LIMIT training images (0: all)")
    ap.add_argument("--test-limit", type=int, default=0, help="test on the first images only (0: all)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--adv", action="store_true", help="PGD adversarial training with the dataset's defaults")
    ap.add_argument("--adv-eps", type=float, default=0)
    ap.add_argument("--adv-step", type=float, default=0)
    ap.add_argument("--adv-steps", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="also print one JSON object per epoch")
    ap.add_argument("--profile", type=int, default=0,
                    help="instead of training, profile this many batches (after 3 warm-up ones) with torch.profiler "
                         "and print the operators by self CPU time")
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    d = a.data_dir or DEFAULT_DIRS[a.data]
    xtr, ytr = load(d, "train")
    xte, yte = load(d, "test")
    if a.limit > 0:
        xtr, ytr = xtr[: a.limit], ytr[: a.limit]
    if a.test_limit > 0:
        xte, yte = xte[: a.test_limit], yte[: a.test_limit]
    adv = None
    if a.adv:
        eps, step, steps = PGD_DEFAULTS[a.data]
        adv = (a.adv_eps or eps, a.adv_step or step, a.adv_steps or steps)

    net = build(a.arch)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    nparams = sum(p.numel() for p in net.parameters())
    print(f"torch {torch.__version__}: {a.arch} ({nparams} weights), {a.data}, {xtr.shape[0]} training / "
          f"{xte.shape[0]} test images, batch {a.batch}, {a.threads} threads"
          + (f", PGD L∞ ε={adv[0]} step {adv[1]} {adv[2]} steps on half of each batch" if adv else ""), flush=True)
    if a.profile > 0:
        profile(net, opt, xtr, ytr, a.batch, adv, gen, a.profile)
        return
    for e in range(1, a.epochs + 1):
        net.train()
        t0, c0 = time.perf_counter(), time.process_time()
        loss, acc = epoch(net, opt, xtr, ytr, a.batch, adv, gen)
        train_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        net.eval()
        t1 = time.perf_counter()
        test_acc = accuracy(net, xte, yte)
        eval_s = time.perf_counter() - t1
        print(f"epoch {e}: train loss {loss:.4f} acc {acc:.4f} | test acc {test_acc:.4f} | "
              f"train {train_s:.2f} s (CPU {cpu_s:.2f} s), eval {eval_s:.2f} s", flush=True)
        if a.json:
            print(json.dumps({"impl": "torch", "arch": a.arch, "adv": a.adv, "threads": a.threads,
                              "images": xtr.shape[0], "epoch": e, "train_s": train_s, "cpu_s": cpu_s, "eval_s": eval_s,
                              "train_loss": loss, "train_acc": acc, "test_acc": test_acc}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
