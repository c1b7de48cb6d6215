#!/usr/bin/python3
"""Generates the onnxgrad test fixtures in testdata/models/.

Run from the repository root with Debian's Python (torch 1.13, onnx 1.12,
numpy; torchvision only for --large):

    /usr/bin/python3 testdata/gen/make_fixtures.py            # small fixtures + README
    /usr/bin/python3 testdata/gen/make_fixtures.py --large    # also resnet18 -> testdata/models/large/ (not committed)

Without --large no resnet18 file is written; resnet18 is still built, exported
and checked in memory (~5 s) so that README.md and fixtures.json come out the
same either way (if torchvision is missing, the previous row is kept).

The Go build and tests never run this script: its outputs are committed.  It is
deterministic (fixed seeds per fixture, one CPU thread); rerunning it with the
same torch/onnx/numpy versions rewrites identical files.

For every fixture NAME it writes to testdata/models/ (large ones to
testdata/models/large/):

  NAME.onnx         torch.onnx.export(model.eval(), x, opset_version=OPSET,
                    input_names=["input"], output_names=["logits"],
                    dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                    do_constant_folding=True)   (TorchScript exporter)
  NAME.x.npy        float32 input [N, C, H, W], pixel-like values in [0, 1],
                    all distinct
  NAME.logits.npy   float32 model(x) of the float32 model  [N, K]
  NAME.jac.npy      float32 Jacobian [N, K, C, H, W]:
                    J[n, k, ...] = d logits[n, k] / d x[n, ...],
                    computed by torch.autograd in float64 (model.double())

("unsupported" only gets its .onnx.)  It also writes testdata/models/README.md
(fixture table with the op types read back from each .onnx) and
testdata/models/fixtures.json (the same facts, machine-readable).

Checks done for every fixture (the script fails if one does not hold):
  * onnx.checker.check_model passes; the opset is the one asked for;
  * the logits saved equal model(x) in float32, and agree with the float64
    model to ~1e-5;
  * the Jacobian of the whole batch is block-diagonal (samples independent);
    its diagonal blocks are what is saved, and they equal the per-sample
    torch.autograd.functional.jacobian;
  * an independent NumPy interpreter of the exported ONNX graph
    (onnx_numpy_ref.py, float64) reproduces the logits, and its central
    finite differences along random directions match J·u;
  * fixture-specific graph facts (the Shape->Gather->Unsqueeze->Concat->Reshape
    chain in mlp_view, a surviving BatchNormalization in resnet_small, ...).
x is re-drawn (next seed) until no ReLU/LeakyReLU input, MaxPool top-2 gap
or Clip bound distance is closer than MARGIN to a kink, so float32 runtimes
agree with torch on every mask and argmax; the margins reached are listed in
the README.
"""
import argparse
import copy
import hashlib
import io
import json
import os
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True     # no __pycache__ in testdata/gen
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_numpy_ref  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "models"))
LARGE = os.path.join(OUT, "large")
MARGIN = 1e-5          # minimum distance of any kink input from its kink (float32 safety)
MAX_TRIES = 40         # x re-draws before giving up on MARGIN

torch.set_num_threads(1)


# --------------------------------------------------------------------------
# kink-margin probes (ReLU / LeakyReLU input, MaxPool top-2 gap, Clip bounds)
# --------------------------------------------------------------------------
_PROBE = {"on": False, "m": {}}


def _note(kind, value):
    if _PROBE["on"]:
        m = _PROBE["m"]
        m[kind] = min(m.get(kind, float("inf")), float(value))


def note_kink(kind, t, points):
    if _PROBE["on"]:
        t = t.detach()
        _note(kind, min((t - p).abs().min().item() for p in points))


def _relu_pre(mod, inp):
    note_kink(type(mod).__name__, inp[0], [0.0])


def _maxpool_pre(mod, inp):
    """Smallest top1-top2 gap over windows whose max is > 0 (all MaxPools here
    follow a ReLU, so a window with max 0 has zero gradient whichever argmax)."""
    if not _PROBE["on"]:
        return
    x = inp[0].detach()
    k, s, p, d = (mod.kernel_size, mod.stride, mod.padding, mod.dilation)
    k, s, p, d = [(v, v) if isinstance(v, int) else tuple(v) for v in (k, s, p, d)]
    assert d == (1, 1) and not mod.ceil_mode
    xp = F.pad(x, (p[1], p[1], p[0], p[0]), value=float("-inf"))
    w = xp.unfold(2, k[0], s[0]).unfold(3, k[1], s[1])
    w = w.reshape(*w.shape[:4], -1)
    top = w.topk(2, dim=-1).values
    gap = top[..., 0] - top[..., 1]
    gap = gap[top[..., 0] > 0]
    if gap.numel():
        _note("MaxPool2d", gap.min().item())


def attach_probes(model):
    for m in model.modules():
        if isinstance(m, (nn.ReLU, nn.LeakyReLU)):
            m.register_forward_pre_hook(_relu_pre)
        elif isinstance(m, nn.MaxPool2d):
            m.register_forward_pre_hook(_maxpool_pre)


def kink_margins(model, x):
    _PROBE["on"], _PROBE["m"] = True, {}
    try:
        with torch.no_grad():
            model(x)
    finally:
        _PROBE["on"] = False
    return dict(_PROBE["m"])


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------
def mlp_layers():
    return [nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10)]


def make_mlp():
    return nn.Sequential(nn.Flatten(), *mlp_layers())


class MLPView(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(*mlp_layers())   # same creation order as mlp -> same weights

    def forward(self, x):
        return self.body(x.view(x.size(0), -1))


def make_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 7 * 7, 16), nn.ReLU(), nn.Linear(16, 10))


def make_cnn_overlap():
    # 3x16x16 -> conv s2 -> 6x8x8 -> maxpool k3 s2 p1 -> 6x4x4 -> dilated grouped conv -> 6x4x4
    # -> avgpool k2 s2 -> 6x2x2 -> depthwise conv -> 6x2x2 -> 24 -> 10
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=2), nn.Tanh(),
        nn.AvgPool2d(2, stride=2),
        nn.Conv2d(6, 6, 3, padding=1, groups=6), nn.LeakyReLU(0.1),
        nn.Flatten(), nn.Linear(6 * 2 * 2, 10))


class Misc(nn.Module):
    """1x12x12: Conv-Sigmoid, AvgPool(k3 s2 p1, count_include_pad=False,
    ceil_mode=True), Dropout, Flatten, Linear-Tanh, residual h + 0.5*fc2(h),
    clamp(-2, 2), Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)                       # 12 -> 10
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False,
                                 ceil_mode=True)             # 10 -> 6 (5 without ceil_mode)
        self.drop = nn.Dropout(0.5)
        self.fc1 = nn.Linear(4 * 6 * 6, 20)
        self.fc2 = nn.Linear(20, 20)
        self.fc3 = nn.Linear(20, 10)
        with torch.no_grad():                               # make clamp(-2, 2) active somewhere
            self.fc2.weight.mul_(6.0)
            self.fc1.weight.mul_(3.0)

    def forward(self, x):
        h = self.pool(torch.sigmoid(self.conv(x)))
        h = torch.flatten(self.drop(h), 1)
        h = torch.tanh(self.fc1(h))
        h2 = self.fc2(h)
        h = h + 0.5 * h2
        note_kink("Clip", h, [-2.0, 2.0])
        h = torch.clamp(h, -2, 2)
        return self.fc3(h)


class Misc2(nn.Module):
    """3x8x8: (x - mean) / std with [1,3,1,1] constants, Conv-Tanh, F.pad
    (asymmetric, value 0.5)-Conv-Sigmoid, torch.cat on channels,
    torch.mean(dim=1, keepdim=True), h.sum(dim=3), Linear."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))
        self.conv_a = nn.Conv2d(3, 4, 3, padding=1)          # 8x8 -> 8x8
        self.conv_b = nn.Conv2d(3, 4, 3)                     # padded 10x10 -> 8x8
        self.fc = nn.Linear(8 * 8, 10)

    def forward(self, x):
        x = (x - self.mean) / self.std
        a = torch.tanh(self.conv_a(x))
        b = torch.sigmoid(self.conv_b(F.pad(x, (1, 1, 2, 0), mode="constant", value=0.5)))
        h = torch.cat([a, b], dim=1)                         # [N, 8, 8, 8]
        m = torch.mean(h, dim=1, keepdim=True)               # [N, 1, 8, 8]
        h = h - 2.0 * m
        s = h.sum(dim=3)                                     # [N, 8, 8]
        return self.fc(torch.flatten(s, 1))


class Misc3(nn.Module):
    """1x8x8: squeeze, transpose, MatMul with a weight parameter, Tanh,
    permute, slice h[:, 2:10], unsqueeze, Conv-Tanh, Flatten, Linear."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 12) / 8 ** 0.5)
        self.b = nn.Parameter(0.1 * torch.randn(12))
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 8 * 8, 10)

    def forward(self, x):
        h = x.squeeze(1)                                     # [N, 8, 8]
        h = h.transpose(1, 2)
        h = torch.tanh(torch.matmul(h, self.w) + self.b)     # [N, 8, 12]
        h = h.permute(0, 2, 1)                               # [N, 12, 8]
        h = h[:, 2:10]                                       # [N, 8, 8]
        h = h.unsqueeze(1)                                   # [N, 1, 8, 8]
        h = torch.tanh(self.conv(h))
        return self.fc(torch.flatten(h, 1))


class SmallMLP(nn.Module):
    """1x8x8 -> Flatten, Linear 64->16, Tanh, Linear 16->10, then softmax /
    log_softmax over the classes (or nothing)."""

    def __init__(self, head):
        super().__init__()
        self.head = head
        self.fc1 = nn.Linear(64, 16)
        self.fc2 = nn.Linear(16, 10)
        with torch.no_grad():
            self.fc2.weight.mul_(4.0)                        # spread the probabilities

    def forward(self, x):
        z = self.fc2(torch.tanh(self.fc1(torch.flatten(x, 1))))
        if self.head == "softmax":
            return torch.softmax(z, dim=1)
        if self.head == "log_softmax":
            return torch.log_softmax(z, dim=1)
        return z


class Unsupported(nn.Module):
    """erf-based GELU (Erf) and torch.cumsum (CumSum) on the differentiable path."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        h = F.gelu(self.fc1(torch.flatten(x, 1)))           # approximate="none" -> Erf
        h = torch.cumsum(h, dim=1)
        return self.fc2(h)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, post_bn=False):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                      nn.BatchNorm2d(cout))
        # a BN after the residual Add cannot be folded into a Conv by the exporter
        self.post_bn = nn.BatchNorm2d(cout) if post_bn else None

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h)) + idt
        if self.post_bn is not None:
            h = self.post_bn(h)
        return self.relu(h)


class ResNetSmall(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2, post_bn=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(h), 1))


def calibrate_bn(model, shape, seed, passes=8, batch=32):
    """Non-trivial BN: random affine parameters, then running statistics from
    train-mode passes on random [0,1] data (cumulative average)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
                m.reset_running_stats()
                m.momentum = None
        model.train()
        for _ in range(passes):
            model(torch.rand((batch,) + tuple(shape), generator=g))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
    return model.eval()


def make_resnet_small():
    return calibrate_bn(ResNetSmall(), (3, 16, 16), seed=606)


def make_resnet18():
    import torchvision
    return calibrate_bn(torchvision.models.resnet18(num_classes=10), (3, 32, 32), seed=909,
                        passes=4, batch=16)


# --------------------------------------------------------------------------
# fixture table
# --------------------------------------------------------------------------
FIXTURES = [
    dict(name="mlp", make=make_mlp, shape=(1, 28, 28), opset=13, seed=101,
         how="nn.Sequential(Flatten, Linear 784->32, ReLU, Linear 32->32, ReLU, Linear 32->10)"),
    dict(name="mlp_view", make=MLPView, shape=(1, 28, 28), opset=13, seed=101,
         how="as mlp (same weights and x) but flattened with x.view(x.size(0), -1)"),
    dict(name="cnn", make=make_cnn, shape=(1, 28, 28), opset=13, seed=303,
         how="Conv(1->4,k3,p1)-ReLU-MaxPool(2), Conv(4->8,k3,p1)-ReLU-MaxPool(2), Flatten, "
             "Linear(392->16)-ReLU-Linear(16->10)"),
    dict(name="cnn_opset17", make=make_cnn, shape=(1, 28, 28), opset=17, seed=303,
         how="cnn (same weights and x) exported at opset 17"),
    dict(name="cnn_overlap", make=make_cnn_overlap, shape=(3, 16, 16), opset=13, seed=404,
         how="Conv(3->6,k3,s2,p1)-ReLU, MaxPool(k3,s2,p1), Conv(6->6,k3,p2,dil2,groups2)-Tanh, "
             "AvgPool(k2,s2), depthwise Conv(6->6,g6,k3,p1)-LeakyReLU(0.1), Flatten, Linear(24->10)"),
    dict(name="misc", make=Misc, shape=(1, 12, 12), opset=13, seed=505,
         how="Conv(1->4,k3)-Sigmoid, AvgPool(k3,s2,p1,count_include_pad=False,ceil_mode=True), "
             "Dropout(0.5), Flatten, Linear(144->20)-Tanh, h + 0.5*Linear(20->20)(h), "
             "clamp(-2,2), Linear(20->10)"),
    dict(name="misc2", make=Misc2, shape=(3, 8, 8), opset=13, seed=515,
         how="(x-mean)/std [1,3,1,1]; Conv(3->4,k3,p1)-Tanh; F.pad(x,(1,1,2,0),value=0.5)-"
             "Conv(3->4,k3)-Sigmoid; cat(dim=1); h - 2*mean(h,dim=1,keepdim=True); "
             "sum(dim=3); Flatten; Linear(64->10)"),
    dict(name="misc3", make=Misc3, shape=(1, 8, 8), opset=13, seed=525,
         how="squeeze(1), transpose(1,2), tanh(matmul(h, W[8,12]) + b), permute(0,2,1), "
             "h[:, 2:10], unsqueeze(1), Conv(1->3,k3,p1)-Tanh, Flatten, Linear(192->10)"),
    dict(name="misc_softmax", make=lambda: SmallMLP("softmax"), shape=(1, 8, 8), opset=13,
         seed=535, how="Flatten, Linear(64->16)-Tanh-Linear(16->10), torch.softmax(dim=1): "
                       "outputs are probabilities"),
    dict(name="misc_logsoftmax", make=lambda: SmallMLP("log_softmax"), shape=(1, 8, 8),
         opset=13, seed=535, how="as misc_softmax (same weights and x) with "
                                 "torch.log_softmax(dim=1)"),
    dict(name="resnet_small", make=make_resnet_small, shape=(3, 16, 16), opset=13, seed=606,
         how="stem Conv(3->8,k3,p1)-BN-ReLU; BasicBlock(8->8); BasicBlock(8->16, stride 2, "
             "1x1 conv+BN shortcut) with a BN after the residual Add; ReLU; "
             "AdaptiveAvgPool2d(1); Flatten; Linear(16->10). BN stats from 8 train-mode "
             "passes on random data, random affine"),
    dict(name="unsupported", make=Unsupported, shape=(1, 8, 8), opset=13, seed=707,
         onnx_only=True,
         how="Flatten, Linear(64->16), F.gelu (exact, Erf), torch.cumsum(dim=1), Linear(16->10); "
             ".onnx only"),
    dict(name="resnet18", make=make_resnet18, shape=(3, 32, 32), opset=13, seed=909, n=2,
         large=True,
         how="torchvision resnet18(num_classes=10), random init (seed 909), random BN affine, "
             "BN stats from 4 train-mode passes on random data; written only with --large"),
]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def make_x(shape, n, seed):
    """Pixel-like values in (0, 1), all distinct within the batch."""
    rng = np.random.default_rng(seed)
    m = n * int(np.prod(shape))
    v = (rng.permutation(m) + rng.uniform(0.05, 0.95, size=m)) / m
    return v.reshape((n,) + tuple(shape)).astype(np.float32)


def export_bytes(model, x, opset):
    f = io.BytesIO()
    torch.onnx.export(model, x, f, opset_version=opset, input_names=["input"],
                      output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      do_constant_folding=True)
    return f.getvalue()


def op_types(m):
    return sorted(set(n.op_type for n in m.graph.node))


def has_view_chain(m):
    """Reshape(input, Concat(Unsqueeze(Gather(Shape(input))), ...))."""
    prod = {o: n for n in m.graph.node for o in n.output}
    for n in m.graph.node:
        if n.op_type != "Reshape" or n.input[0] != "input":
            continue
        c = prod.get(n.input[1])
        if c is None or c.op_type != "Concat":
            continue
        for ci in c.input:
            u = prod.get(ci)
            if u is None or u.op_type != "Unsqueeze":
                continue
            g = prod.get(u.input[0])
            if g is None or g.op_type != "Gather":
                continue
            s = prod.get(g.input[0])
            if s is not None and s.op_type == "Shape" and s.input[0] == "input":
                return True
    return False


def check(cond, msg):
    if not cond:
        raise SystemExit(f"CHECK FAILED: {msg}")


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def build(fx):
    torch.manual_seed(fx["seed"])
    model = fx["make"]().eval()
    attach_probes(model)
    return model


def pick_x(fx, model, n):
    best = None
    for t in range(MAX_TRIES):
        x = make_x(fx["shape"], n, fx["seed"] * 1000 + t)
        mg = kink_margins(model, torch.from_numpy(x))
        worst = min(mg.values()) if mg else float("inf")
        if best is None or worst > best[2]:
            best = (x, mg, worst, t)
        if worst >= MARGIN:
            break
    x, mg, worst, t = best
    check(worst >= MARGIN, f"{fx['name']}: no x with kink margin >= {MARGIN} (best {worst:.3g})")
    return x, mg, t


def jacobian(model, x):
    md = copy.deepcopy(model).double().eval()
    xd = torch.from_numpy(x).double()
    with torch.no_grad():
        y64 = md(xd).numpy()
    full = torch.autograd.functional.jacobian(md, xd).numpy()     # [N, K, N, ...]
    n = x.shape[0]
    diag = np.stack([full[i, :, i] for i in range(n)])             # [N, K, ...]
    off = full.copy()
    for i in range(n):
        off[i, :, i] = 0
    check(np.all(off == 0), "samples are not independent (off-diagonal Jacobian blocks != 0)")
    for i in range(n):                                              # per-sample layout check
        ji = torch.autograd.functional.jacobian(
            lambda v: md(v.unsqueeze(0)).squeeze(0), xd[i]).numpy()  # [K, ...]
        check(np.array_equal(ji, diag[i]) or rel_err(ji, diag[i]) < 1e-12,
              "per-sample jacobian differs from batch jacobian diagonal")
    return diag, y64


def fd_check(m, x, jac, rng, dirs=4, h=1e-7):
    """Central differences of the NumPy ONNX interpreter (float64) along random
    unit directions u (unit L2 norm per sample), against sum(J * u)."""
    xd = x.astype(np.float64)
    worst = 0.0
    for _ in range(dirs):
        u = rng.standard_normal(x.shape)
        u /= np.sqrt((u.reshape(len(u), -1) ** 2).sum(1)).reshape((-1,) + (1,) * (u.ndim - 1))
        yp = onnx_numpy_ref.run(m, {"input": xd + h * u})["logits"]
        ym = onnx_numpy_ref.run(m, {"input": xd - h * u})["logits"]
        fd = (yp - ym) / (2 * h)
        n, k = jac.shape[:2]
        ju = (jac.reshape(n, k, -1).astype(np.float64) * u.reshape(n, 1, -1)).sum(-1)
        worst = max(worst, rel_err(fd, ju))
    return worst


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def run_fixture(fx, write_large):
    name, opset = fx["name"], fx["opset"]
    n = fx.get("n", 4)
    large = fx.get("large", False)
    outdir = LARGE if large else OUT
    write = write_large or not large
    model = build(fx)
    x, margins, tries = pick_x(fx, model, n)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        logits_before = model(xt).numpy()
    blob = export_bytes(model, xt, opset)
    with torch.no_grad():
        logits = model(xt).numpy()
    check(np.array_equal(logits, logits_before), f"{name}: export changed the model output")
    m = onnx.load_from_string(blob)
    onnx.checker.check_model(m)
    opsets = {o.domain: o.version for o in m.opset_import}
    check(opsets.get("", opsets.get("ai.onnx")) == opset, f"{name}: opset {opsets}")
    ops = op_types(m)
    info = dict(name=name, opset=opset, input_shape=[n] + list(fx["shape"]),
                ops=ops, nodes=len(m.graph.node), how=fx["how"],
                onnx_bytes=len(blob), onnx_sha256=hashlib.sha256(blob).hexdigest()[:16],
                large=large, onnx_only=bool(fx.get("onnx_only")),
                x_seed=fx["seed"] * 1000 + tries, weight_seed=fx["seed"],
                margins={k: float(f"{v:.3g}") for k, v in sorted(margins.items())})
    info["facts"] = facts(fx, model, m)
    print(f"== {name}: opset {opset}, input {info['input_shape']}, "
          f"{len(m.graph.node)} nodes, {len(blob)} bytes\n   ops: {ops}")
    print("   node order:", " ".join(nd.op_type for nd in m.graph.node if nd.op_type != "Constant"))
    print(f"   margins: {info['margins']} (x re-draws: {tries})")

    # the ONNX graph (NumPy interpreter, float64) reproduces the logits
    ref = onnx_numpy_ref.run(m, {"input": x.astype(np.float64)})["logits"]
    info["onnx_vs_torch_f32"] = rel_err(ref, logits)
    check(info["onnx_vs_torch_f32"] < 1e-5, f"{name}: onnx numpy eval vs torch {info['onnx_vs_torch_f32']}")
    print(f"   numpy-ONNX(float64) vs torch float32 logits: rel err {info['onnx_vs_torch_f32']:.2e}")

    if not fx.get("onnx_only"):
        K = logits.shape[1]
        info["K"] = K
        jac, y64 = jacobian(model, x)
        check(jac.shape == (n, K) + tuple(fx["shape"]), f"{name}: jac shape {jac.shape}")
        check(rel_err(logits, y64) < 1e-5, f"{name}: float32 vs float64 logits {rel_err(logits, y64)}")
        info["onnx_vs_torch_f64"] = rel_err(ref, y64)
        check(info["onnx_vs_torch_f64"] < 1e-5, f"{name}: onnx vs float64 {info['onnx_vs_torch_f64']}")
        fd = fd_check(m, x, jac, np.random.default_rng(fx["seed"]))
        info["fd_rel_err"] = fd
        check(fd < 1e-4, f"{name}: finite differences vs Jacobian rel err {fd}")
        info["jac_absmax"] = float(np.abs(jac).max())
        print(f"   jac {jac.shape}: max|J| {info['jac_absmax']:.3g}, "
              f"FD (numpy-ONNX float64) vs J.u rel err {fd:.2e}, onnx vs float64 torch {info['onnx_vs_torch_f64']:.2e}")

    blobs = {f"{name}.onnx": blob}
    if not fx.get("onnx_only"):
        for suffix, arr in (("x", x), ("logits", logits), ("jac", jac.astype(np.float32))):
            b = io.BytesIO()
            np.save(b, np.ascontiguousarray(arr, dtype=np.float32))
            blobs[f"{name}.{suffix}.npy"] = b.getvalue()
    info["files"] = {k: len(v) for k, v in blobs.items()}     # same with or without --large
    if write:
        os.makedirs(outdir, exist_ok=True)
        for k, v in blobs.items():
            with open(os.path.join(outdir, k), "wb") as f:
                f.write(v)
        # read back what was written
        back = onnx.load(os.path.join(outdir, f"{name}.onnx"))
        check(op_types(back) == ops, "re-read op list")
        if not fx.get("onnx_only"):
            check(np.array_equal(np.load(os.path.join(outdir, f"{name}.logits.npy")), logits), "logits")
            j2 = np.load(os.path.join(outdir, f"{name}.jac.npy"))
            check(j2.dtype == np.float32 and j2.shape == jac.shape, "jac dtype/shape")
            check(np.array_equal(j2, jac.astype(np.float32)), "jac read-back")
    return info


def facts(fx, model, m):
    """What the exporter did, checked against the graph."""
    name, ops = fx["name"], op_types(m)
    out = []
    n_bn_mod = sum(isinstance(x, nn.BatchNorm2d) for x in model.modules())
    n_bn = sum(nd.op_type == "BatchNormalization" for nd in m.graph.node)
    if n_bn_mod:
        out.append(f"{n_bn_mod} BatchNorm2d modules -> {n_bn} BatchNormalization nodes "
                   f"({n_bn_mod - n_bn} folded into the preceding Conv)")
    if name == "mlp_view":
        chain = has_view_chain(m)
        check(chain, "mlp_view: Shape->Gather->Unsqueeze->Concat->Reshape chain was folded away")
        out.append("Shape->Gather->Unsqueeze->Concat->Reshape chain present (not constant-folded: "
                   "the batch axis is dynamic)")
    if name == "mlp":
        check("Flatten" in ops, "mlp: no Flatten")
    if name == "resnet_small":
        check(n_bn >= 1, "resnet_small: no BatchNormalization survived export")
        check("GlobalAveragePool" in ops, "resnet_small: no GlobalAveragePool")
    if name == "misc":
        check("Dropout" not in ops, "misc: Dropout node present")
        out.append("Dropout emits no node")
        ap = [nd for nd in m.graph.node if nd.op_type == "AveragePool"][0]
        out.append("AveragePool attributes: " + ", ".join(
            f"{a.name}={onnx.helper.get_attribute_value(a)}" for a in ap.attribute))
    if name == "misc2" and "ConstantOfShape" in ops:
        out.append("F.pad's pads are computed by a ConstantOfShape->Concat->Reshape->Slice->"
                   "Transpose->Reshape->Cast chain of constants that do_constant_folding "
                   "does not fold; the Pad's pads input must be constant-evaluated")
    prod = {o: nd for nd in m.graph.node for o in nd.output}
    for nd in m.graph.node:
        if nd.op_type == "AveragePool" and nd.input[0] in prod and prod[nd.input[0]].op_type == "Pad":
            pn = prod[nd.input[0]]
            c = prod.get(pn.input[1])
            pads = (onnx.numpy_helper.to_array(c.attribute[0].t).tolist()
                    if c is not None and c.op_type == "Constant" else "computed")
            out.append(f"AvgPool2d (count_include_pad=True) exports as Pad(pads={pads}) -> "
                       "AveragePool(pads=0), even when its padding is 0")
    if name == "unsupported":
        check("Erf" in ops and "CumSum" in ops, "unsupported: Erf/CumSum missing")
    if "Constant" in ops:
        out.append("scalar/axes constants are Constant nodes, weights are initializers")
    return out


README_HEAD = """# onnxgrad test fixtures

Generated by `testdata/gen/make_fixtures.py` (run from the repository root with
`/usr/bin/python3 testdata/gen/make_fixtures.py`; add `--large` for
`large/resnet18`). Do not edit by hand: rerun the script. The Go build and
tests never need Python.

Made with torch {torch}, onnx {onnx}, numpy {numpy} (Debian packages), TorchScript
exporter: `torch.onnx.export(model.eval(), x, opset_version=OPSET,
input_names=["input"], output_names=["logits"], dynamic_axes={{"input": {{0: "N"}},
"logits": {{0: "N"}}}}, do_constant_folding=True)`.

Files per fixture `NAME`:

| file | dtype / shape | content |
|---|---|---|
| `NAME.onnx` | | the exported model; input `input` `[N, ...]`, output `logits` `[N, K]` |
| `NAME.x.npy` | float32 `[N, C, H, W]` | inputs, pixel-like values in (0, 1), all distinct |
| `NAME.logits.npy` | float32 `[N, K]` | `model(x)` of the float32 PyTorch model |
| `NAME.jac.npy` | float32 `[N, K, C, H, W]` | `J[n,k,c,h,w] = d logits[n,k] / d x[n,c,h,w]`, torch.autograd in float64, cast to float32 |

`fixtures.json` holds the same facts as the table below, machine-readable.
The `.npy` files are NumPy format 1.0, little-endian `<f4`, C order.

Checks the script makes before writing: `onnx.checker.check_model`; saved
logits equal `model(x)` in float32; the batch Jacobian is block-diagonal
(samples independent) and each block equals the per-sample
`torch.autograd.functional.jacobian` (this is the saved layout); a NumPy
interpreter of the exported graph (`testdata/gen/onnx_numpy_ref.py`, float64)
reproduces the logits ("ONNX vs torch" below, max abs error / max |logits|),
and its central finite differences along 4 random directions match `J·u`
("FD" below). onnxruntime was not used.

`x` is re-drawn until every ReLU/LeakyReLU input is at least {margin:g} away from 0,
every MaxPool window with a positive maximum has top-1 minus top-2 at least
{margin:g}, and every Clip input is at least {margin:g} from the bounds (the
"margins" column, float32 forward), so float32 runtimes reproduce torch's masks
and argmaxes. Finite-difference steps must stay below these margins (times the
local gain) to avoid crossing a kink.

Some fixtures share weights and inputs on purpose: `mlp`/`mlp_view`,
`cnn`/`cnn_opset17`, `misc_softmax`/`misc_logsoftmax` (same logits `z`; outputs
`softmax(z)` and `log_softmax(z)`).
"""


def write_readme(infos):
    lines = [README_HEAD.format(torch=torch.__version__, onnx=onnx.__version__,
                                numpy=np.__version__, margin=MARGIN)]
    lines.append("## Fixtures\n")
    lines.append("| fixture | input `[N,C,H,W]` | K | opset | op types in the graph | nodes | ONNX vs torch | FD | margins |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for i in infos:
        nm = f"`large/{i['name']}`" if i["large"] else f"`{i['name']}`"
        mg = ", ".join(f"{k} {v:g}" for k, v in i["margins"].items()) or "smooth"
        fd = f"{i['fd_rel_err']:.1e}" if "fd_rel_err" in i else "-"
        lines.append(f"| {nm} | {i['input_shape']} | {i.get('K', 10)} | {i['opset']} | "
                     f"{', '.join(i['ops'])} | {i['nodes']} | {i['onnx_vs_torch_f32']:.1e} | {fd} | {mg} |")
    lines.append("\n## How each was made\n")
    for i in infos:
        lines.append(f"- **{i['name']}** (weights seed {i['weight_seed']}, x seed {i['x_seed']}): {i['how']}.")
        for f in i["facts"]:
            lines.append(f"  - {f}.")
    lines.append("\n## Sizes (bytes)\n")
    lines.append("| fixture | .onnx | .x.npy | .logits.npy | .jac.npy | committed |")
    lines.append("|---|---|---|---|---|---|")
    total = 0
    for i in infos:
        fs = i["files"]
        row = [str(fs.get(f"{i['name']}{s}", "-")) for s in (".onnx", ".x.npy", ".logits.npy", ".jac.npy")]
        if not i["large"]:
            total += sum(fs.values())
        lines.append(f"| {i['name']} | " + " | ".join(row) + f" | {'no (large/, gitignored)' if i['large'] else 'yes'} |")
    lines.append(f"\nCommitted fixture data (all small fixtures): {total} bytes.")
    lines.append("\n`large/` is ignored by `large/.gitignore`; `make_fixtures.py --large` writes "
                 "`large/resnet18.{onnx,x.npy,logits.npy,jac.npy}` (N = 2).\n")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--large", action="store_true",
                    help="also write testdata/models/large/resnet18.* (~45 MB, not committed)")
    ap.add_argument("--only", nargs="*", help="fixture names to (re)make; README/manifest untouched")
    args = ap.parse_args()
    import warnings
    warnings.filterwarnings("ignore")
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(LARGE, exist_ok=True)
    with open(os.path.join(LARGE, ".gitignore"), "w") as f:
        f.write("# resnet18 fixtures (~45 MB) are made by make_fixtures.py --large and not committed\n*\n!.gitignore\n")
    try:
        import torchvision  # noqa: F401
        have_tv = True
    except ImportError:
        if args.large:
            raise
        have_tv = False
    prev = {}
    mpath = os.path.join(OUT, "fixtures.json")
    if os.path.exists(mpath):
        with open(mpath) as f:
            prev = {e["name"]: e for e in json.load(f)}
    infos = []
    for fx in FIXTURES:
        if args.only and fx["name"] not in args.only:
            continue
        if fx.get("large") and not have_tv:
            # Without --large the large fixtures are only evaluated in memory for the
            # README row; without torchvision keep the previous row.
            print(f"== {fx['name']}: torchvision missing, keeping the previous README row")
            if fx["name"] in prev:
                e = dict(prev[fx["name"]], how=fx["how"], facts=[])
                infos.append(e)
            continue
        infos.append(run_fixture(fx, args.large))
    if args.only:
        return
    write_readme(infos)
    manifest = [{k: v for k, v in i.items() if k not in ("how", "facts")} for i in infos]
    for mi, i in zip(manifest, infos):
        mi["dir"] = "large" if i["large"] else "."
    with open(os.path.join(OUT, "fixtures.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", os.path.join(OUT, "README.md"))


if __name__ == "__main__":
    main()
