"""Kink-margin probes for make_fixtures.py.

A fixture input x is usable when no input of a piecewise op sits within
MARGIN of a kink, so float32 runtimes take the same branch as torch:
ReLU/LeakyReLU/SELU at 0, ReLU6 (Hardtanh) at its bounds, HardSwish and
HardSigmoid at -3 and 3, MaxPool's top-1 minus top-2 in every window, and for
functional ops (called from the models' forward): clamp bounds, the two
operands of torch.maximum/minimum, and the top-2 gap of torch.amax/amin.

kink_margins(model, x) runs the model once with the probes on and returns
{kind: smallest distance seen}.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

_PROBE = {"on": False, "m": {}}


def _note(kind, value):
    if _PROBE["on"]:
        m = _PROBE["m"]
        m[kind] = min(m.get(kind, float("inf")), float(value))


def note_kink(kind, t, points):
    """Records the smallest distance of t's elements from any of points."""
    if _PROBE["on"]:
        t = t.detach()
        _note(kind, min((t - p).abs().min().item() for p in points))


def note_gap(kind, t, dims):
    """Records the smallest top-1 minus top-2 gap of t over dims (the ties of
    amax over dims); pass -t for amin."""
    if _PROBE["on"]:
        t = t.detach()
        dims = [d % t.dim() for d in dims]
        rest = [d for d in range(t.dim()) if d not in dims]
        w = t.permute(*rest, *dims).reshape(*[t.shape[d] for d in rest], -1)
        top = w.topk(2, dim=-1).values
        _note(kind, (top[..., 0] - top[..., 1]).min().item())


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


def _points(mod):
    """The kinks of a piecewise elementwise module, or None."""
    if isinstance(mod, (nn.ReLU, nn.LeakyReLU, nn.SELU)):
        return [0.0]
    if isinstance(mod, nn.Hardtanh):                    # ReLU6 is a Hardtanh(0, 6)
        return [mod.min_val, mod.max_val]
    if isinstance(mod, (nn.Hardswish, nn.Hardsigmoid)):
        return [-3.0, 3.0]
    return None


def _elementwise_pre(mod, inp):
    note_kink(type(mod).__name__, inp[0], _points(mod))


def attach_probes(model):
    for m in model.modules():
        if _points(m) is not None:
            m.register_forward_pre_hook(_elementwise_pre)
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
