"""Minimal NumPy interpreter for the ONNX ops used by the onnxgrad fixtures.

Used only by make_fixtures.py to check, independently of PyTorch and of
onnxruntime, that each exported graph computes the saved logits and that its
finite-difference directional derivatives match the saved Jacobian.  It follows
the ONNX operator spec (opsets 13-17) for the attributes torch.onnx.export
emits; it is not a general ONNX runtime.  Evaluate in float64 by passing
dtype=np.float64 (floating initializers are cast).
"""
import math

import numpy as np
from onnx import numpy_helper


def _attrs(node):
    out = {}
    for a in node.attribute:
        if a.type == a.FLOAT:
            out[a.name] = a.f
        elif a.type == a.INT:
            out[a.name] = a.i
        elif a.type == a.STRING:
            out[a.name] = a.s.decode()
        elif a.type == a.INTS:
            out[a.name] = list(a.ints)
        elif a.type == a.FLOATS:
            out[a.name] = list(a.floats)
        elif a.type == a.TENSOR:
            out[a.name] = numpy_helper.to_array(a.t)
        else:
            raise NotImplementedError(f"attribute type {a.type} ({a.name})")
    return out


def _cast_float(a, dtype):
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.floating):
        return a.astype(dtype)
    return a


def _pool_geometry(x, at, pad_value):
    """Pads x's spatial axes (explicit pads + ceil_mode extension) and returns
    (padded x, kernel, strides, dilations, output spatial shape, pads)."""
    sp = x.ndim - 2
    k = at["kernel_shape"]
    s = at.get("strides", [1] * sp)
    d = at.get("dilations", [1] * sp)
    pads = at.get("pads", [0] * (2 * sp))
    if at.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise NotImplementedError("auto_pad")
    ceil = at.get("ceil_mode", 0)
    out, extra = [], []
    for i in range(sp):
        H = x.shape[2 + i]
        span = (k[i] - 1) * d[i] + 1
        num = H + pads[i] + pads[i + sp] - span
        o = (-(-num // s[i]) if ceil else num // s[i]) + 1
        out.append(o)
        need = (o - 1) * s[i] + span - (H + pads[i] + pads[i + sp])
        extra.append(max(0, need))
    width = [(0, 0), (0, 0)] + [(pads[i], pads[i + sp] + extra[i]) for i in range(sp)]
    xp = np.pad(x, width, mode="constant", constant_values=pad_value)
    return xp, k, s, d, out, pads


def _windows(xp, k, s, d, out):
    """Yields the strided view of xp for each 2-D kernel offset."""
    assert len(k) == 2, "2-D pooling/conv only"
    for a in range(k[0]):
        for b in range(k[1]):
            ya, xb = a * d[0], b * d[1]
            yield (a, b), xp[:, :, ya:ya + s[0] * (out[0] - 1) + 1:s[0],
                             xb:xb + s[1] * (out[1] - 1) + 1:s[1]]


def _conv(x, w, b, at):
    g = at.get("group", 1)
    k = list(w.shape[2:])
    at = dict(at)
    at["kernel_shape"] = k
    at.setdefault("ceil_mode", 0)
    xp, k, s, d, out, _ = _pool_geometry(x, at, 0.0)
    N, C = x.shape[:2]
    M = w.shape[0]
    cg, mg = C // g, M // g
    y = np.zeros((N, M) + tuple(out), dtype=x.dtype)
    for (a, bb), win in _windows(xp, k, s, d, out):
        for gi in range(g):
            y[:, gi * mg:(gi + 1) * mg] += np.einsum(
                "nchw,mc->nmhw", win[:, gi * cg:(gi + 1) * cg],
                w[gi * mg:(gi + 1) * mg, :, a, bb])
    if b is not None:
        y += b.reshape(1, M, 1, 1)
    return y


def _maxpool(x, at):
    xp, k, s, d, out, _ = _pool_geometry(x, at, -np.inf)
    y = None
    for _, win in _windows(xp, k, s, d, out):
        y = win.copy() if y is None else np.maximum(y, win)
    return y


def _avgpool(x, at):
    xp, k, s, d, out, pads = _pool_geometry(x, at, 0.0)
    sp = x.ndim - 2
    # counting mask: real input (count_include_pad=0) or input + explicit pads
    if at.get("count_include_pad", 0):
        m = np.ones((1, 1) + tuple(x.shape[2 + i] + pads[i] + pads[i + sp] for i in range(sp)))
        width = [(0, 0), (0, 0)] + [(0, xp.shape[2 + i] - m.shape[2 + i]) for i in range(sp)]
    else:
        m = np.ones((1, 1) + x.shape[2:])
        width = [(0, 0), (0, 0)] + [(pads[i], xp.shape[2 + i] - x.shape[2 + i] - pads[i])
                                    for i in range(sp)]
    mp = np.pad(m, width)
    tot, cnt = 0.0, 0.0
    dd = [1] * sp
    for (_, win), (_, mw) in zip(_windows(xp, k, s, dd, out), _windows(mp, k, s, dd, out)):
        tot = tot + win
        cnt = cnt + mw
    return (tot / cnt).astype(x.dtype)


def _axes_list(v):
    return [int(a) for a in np.asarray(v).reshape(-1)]


def run(model, feeds, dtype=np.float64):
    """Evaluates model (onnx.ModelProto) on feeds {name: array}; returns
    {output name: array} for the graph outputs."""
    g = model.graph
    env = {}
    for t in g.initializer:
        env[t.name] = _cast_float(numpy_helper.to_array(t), dtype)
    for k, v in feeds.items():
        env[k] = _cast_float(v, dtype)
    for node in g.node:
        if node.domain not in ("", "ai.onnx"):
            raise NotImplementedError(f"domain {node.domain}")
        at = _attrs(node)
        ins = [env[n] if n else None for n in node.input]
        op = node.op_type
        x = ins[0] if ins else None
        if op == "Constant":
            y = _cast_float(at["value"], dtype)
        elif op == "ConstantOfShape":
            v = at.get("value", np.zeros(1, dtype=np.float32))
            y = np.full([int(d) for d in x], _cast_float(v, dtype).reshape(-1)[0],
                        dtype=_cast_float(v, dtype).dtype)
        elif op in ("Identity", "Dropout"):
            y = x
        elif op == "Gemm":
            A = x.T if at.get("transA", 0) else x
            B = ins[1].T if at.get("transB", 0) else ins[1]
            y = at.get("alpha", 1.0) * (A @ B)
            if len(ins) > 2 and ins[2] is not None:
                y = y + at.get("beta", 1.0) * ins[2]
        elif op == "MatMul":
            y = np.matmul(x, ins[1])
        elif op == "Relu":
            y = np.maximum(x, 0)
        elif op == "LeakyRelu":
            y = np.where(x > 0, x, at.get("alpha", 0.01) * x)
        elif op == "Sigmoid":
            y = 1.0 / (1.0 + np.exp(-x))
        elif op == "Tanh":
            y = np.tanh(x)
        elif op == "Exp":
            y = np.exp(x)
        elif op == "Erf":
            y = np.vectorize(math.erf, otypes=[x.dtype])(x)
        elif op in ("Add", "Sub", "Mul", "Div"):
            f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
            y = f(x, ins[1])
            if np.issubdtype(x.dtype, np.integer) and op == "Div":
                y = (x // ins[1])
            y = y.astype(np.result_type(x, ins[1]))
        elif op == "Clip":
            lo = ins[1] if len(ins) > 1 and ins[1] is not None else -np.inf
            hi = ins[2] if len(ins) > 2 and ins[2] is not None else np.inf
            y = np.minimum(np.maximum(x, lo), hi)
        elif op in ("Softmax", "LogSoftmax"):
            ax = at.get("axis", -1)
            z = x - x.max(axis=ax, keepdims=True)
            lse = np.log(np.exp(z).sum(axis=ax, keepdims=True))
            y = np.exp(z - lse) if op == "Softmax" else z - lse
        elif op == "Flatten":
            ax = at.get("axis", 1)
            y = x.reshape(int(np.prod(x.shape[:ax])), -1)
        elif op == "Reshape":
            shp = [int(v) for v in ins[1]]
            if not at.get("allowzero", 0):
                shp = [x.shape[i] if v == 0 else v for i, v in enumerate(shp)]
            y = x.reshape(shp)
        elif op == "Shape":
            y = np.array(x.shape, dtype=np.int64)
        elif op == "Gather":
            y = np.take(x, ins[1], axis=at.get("axis", 0))
        elif op == "Unsqueeze":
            y = x
            axes = sorted(a % (x.ndim + len(_axes_list(ins[1]))) for a in _axes_list(ins[1]))
            for a in axes:
                y = np.expand_dims(y, a)
        elif op == "Squeeze":
            if len(ins) > 1 and ins[1] is not None:
                y = np.squeeze(x, axis=tuple(a % x.ndim for a in _axes_list(ins[1])))
            else:
                y = np.squeeze(x)
        elif op == "Concat":
            y = np.concatenate(ins, axis=at["axis"])
        elif op == "Transpose":
            y = np.transpose(x, at.get("perm"))
        elif op == "Slice":
            starts, ends = _axes_list(ins[1]), _axes_list(ins[2])
            axes = _axes_list(ins[3]) if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
            steps = _axes_list(ins[4]) if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
            sl = [slice(None)] * x.ndim
            for st, en, a, sp in zip(starts, ends, axes, steps):
                sl[a % x.ndim] = slice(st, en, sp)   # Python slicing clamps like ONNX
            y = x[tuple(sl)]
        elif op == "Pad":
            mode = at.get("mode", "constant")
            pads = _axes_list(ins[1])
            cv = float(ins[2]) if len(ins) > 2 and ins[2] is not None and ins[2].size else 0.0
            r = x.ndim
            if mode != "constant":
                raise NotImplementedError(f"Pad mode {mode}")
            if any(p < 0 for p in pads):
                raise NotImplementedError("negative pads")
            y = np.pad(x, [(pads[i], pads[i + r]) for i in range(r)], constant_values=cv)
        elif op in ("ReduceMean", "ReduceSum"):
            kd = bool(at.get("keepdims", 1))
            if op == "ReduceSum" and len(ins) > 1 and ins[1] is not None:
                axes = _axes_list(ins[1])
            else:
                axes = at.get("axes")
            if not axes:
                if op == "ReduceSum" and at.get("noop_with_empty_axes", 0):
                    y = x
                    env[node.output[0]] = y
                    continue
                axes = list(range(x.ndim))
            f = np.mean if op == "ReduceMean" else np.sum
            y = f(x, axis=tuple(a % x.ndim for a in axes), keepdims=kd)
        elif op == "CumSum":
            ax = int(np.asarray(ins[1]).reshape(-1)[0])
            if at.get("exclusive", 0) or at.get("reverse", 0):
                raise NotImplementedError("CumSum exclusive/reverse")
            y = np.cumsum(x, axis=ax)
        elif op == "Conv":
            y = _conv(x, ins[1], ins[2] if len(ins) > 2 else None, at)
        elif op == "MaxPool":
            if len(node.output) > 1 and node.output[1]:
                raise NotImplementedError("MaxPool Indices")
            y = _maxpool(x, at)
        elif op == "AveragePool":
            y = _avgpool(x, at)
        elif op == "GlobalAveragePool":
            y = x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)
        elif op == "BatchNormalization":
            sc, b, mu, var = ins[1:5]
            sh = (1, -1) + (1,) * (x.ndim - 2)
            y = (x - mu.reshape(sh)) / np.sqrt(var.reshape(sh) + at.get("epsilon", 1e-5)) \
                * sc.reshape(sh) + b.reshape(sh)
        elif op == "Cast":
            to = at["to"]
            y = x.astype({1: dtype, 7: np.int64, 11: np.float64, 6: np.int32, 9: bool}[to])
        else:
            raise NotImplementedError(f"op {op}")
        env[node.output[0]] = np.asarray(y)
    return {o.name: env[o.name] for o in g.output}
