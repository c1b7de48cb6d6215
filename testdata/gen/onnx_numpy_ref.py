"""Minimal NumPy interpreter for the ONNX ops used by the onnxgrad fixtures.

Used only by make_fixtures.py to check, independently of PyTorch and of
onnxruntime, that each exported graph computes the saved logits and that its
finite-difference directional derivatives match the saved Jacobian.  Each op
follows the ONNX operator spec (opsets 13-17; ONNX 1.12's doc strings,
`onnx.defs.get_schema(OP).doc`) for the attributes exporters emit; it is not a
general ONNX runtime.  check_numpy_ref.py runs it on ONNX's own node tests
(Debian's libonnx-testdata) for every op it implements.

Evaluate in float64 by passing dtype=np.float64 (floating initializers and
feeds are cast).  Nodes are evaluated in dependency order, so graphs whose
node list is not topologically sorted run too.
"""
import functools
import itertools
import math

import numpy as np
from onnx import numpy_helper

OPS = {}          # op type -> function(inputs, attributes, node, dtype) -> output or tuple of outputs


def op(*names):
    """Registers the decorated function as the evaluator of the named ops."""
    def deco(f):
        for n in names:
            OPS[n] = f
        return f
    return deco


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


def _axes_list(v):
    return [int(a) for a in np.asarray(v).reshape(-1)]


def _opt(ins, i):
    """Input i, or None when it is absent or given as the empty name."""
    return ins[i] if len(ins) > i and ins[i] is not None else None


# --------------------------------------------------------------------------
# convolution and pooling
# --------------------------------------------------------------------------
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
    """Yields (kernel offset, strided view of xp) for each kernel offset."""
    for off in itertools.product(*(range(ki) for ki in k)):
        sl = tuple(slice(o * di, o * di + si * (n - 1) + 1, si)
                   for o, di, si, n in zip(off, d, s, out))
        yield off, xp[(slice(None), slice(None)) + sl]


@op("Conv")
def _conv(ins, at, node, dtype):
    x, w, b = ins[0], ins[1], _opt(ins, 2)
    g = at.get("group", 1)
    at = dict(at, kernel_shape=list(w.shape[2:]))
    at.setdefault("ceil_mode", 0)
    xp, k, s, d, out, _ = _pool_geometry(x, at, 0.0)
    N, C = x.shape[:2]
    M = w.shape[0]
    cg, mg = C // g, M // g
    y = np.zeros((N, M) + tuple(out), dtype=x.dtype)
    for off, win in _windows(xp, k, s, d, out):
        for gi in range(g):
            y[:, gi * mg:(gi + 1) * mg] += np.einsum(
                "nc...,mc->nm...", win[:, gi * cg:(gi + 1) * cg],
                w[(slice(gi * mg, (gi + 1) * mg), slice(None)) + off])
    if b is not None:
        y += b.reshape((1, M) + (1,) * len(out))
    return y


def _split_total_padding(total, auto):
    """Begin and end pads from total padding (ConvTranspose spec; / is floor
    division, as in ONNX's reference: a negative total, an output_shape past
    the full output, then adds zeros at the end)."""
    half = [t // 2 for t in total]
    if auto == "SAME_UPPER":
        return half + [t - h for t, h in zip(total, half)]
    return [t - h for t, h in zip(total, half)] + half


@op("ConvTranspose")
def _conv_transpose(ins, at, node, dtype):
    """Scatters every input pixel times the kernel into the full output, then
    crops pads; output_padding extends the end (spec equation for
    output_shape; auto_pad / output_shape derive the pads)."""
    x, w, b = ins[0], ins[1], _opt(ins, 2)
    g = at.get("group", 1)
    sp = x.ndim - 2
    k = list(w.shape[2:])
    s = at.get("strides", [1] * sp)
    d = at.get("dilations", [1] * sp)
    opad = at.get("output_padding", [0] * sp)
    ins_sp = x.shape[2:]
    full = [s[i] * (ins_sp[i] - 1) + opad[i] + (k[i] - 1) * d[i] + 1 for i in range(sp)]
    auto = at.get("auto_pad", "NOTSET")
    if "output_shape" in at:
        want = at["output_shape"][-sp:]
        pads = _split_total_padding([full[i] - want[i] for i in range(sp)], auto)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = _split_total_padding([full[i] - ins_sp[i] * s[i] for i in range(sp)], auto)
    elif auto in ("NOTSET", "", "VALID"):
        pads = at.get("pads", [0] * (2 * sp)) if auto != "VALID" else [0] * (2 * sp)
    else:
        raise NotImplementedError(f"auto_pad {auto}")
    N, C = x.shape[:2]
    mg = w.shape[1]
    cg = C // g
    M = mg * g
    yf = np.zeros((N, M) + tuple(full), dtype=x.dtype)
    for off in itertools.product(*(range(ki) for ki in k)):
        sl = tuple(slice(o * di, o * di + si * (n - 1) + 1, si)
                   for o, di, si, n in zip(off, d, s, ins_sp))
        for gi in range(g):
            yf[(slice(None), slice(gi * mg, (gi + 1) * mg)) + sl] += np.einsum(
                "nc...,cm->nm...", x[:, gi * cg:(gi + 1) * cg],
                w[(slice(gi * cg, (gi + 1) * cg), slice(None)) + off])
    # negative pads (an output_shape beyond the full output) add zeros
    yf = np.pad(yf, [(0, 0), (0, 0)] + [(max(0, -pads[i]), max(0, -pads[i + sp])) for i in range(sp)])
    crop = tuple(slice(max(0, pads[i]), yf.shape[2 + i] - max(0, pads[i + sp])) for i in range(sp))
    y = yf[(slice(None), slice(None)) + crop]
    if b is not None:
        y = y + b.reshape((1, M) + (1,) * sp)
    return y


@op("MaxPool")
def _maxpool(ins, at, node, dtype):
    if len(node.output) > 1 and node.output[1]:
        raise NotImplementedError("MaxPool Indices")
    x = ins[0]
    low = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
    xp, k, s, d, out, _ = _pool_geometry(x, at, low)
    y = None
    for _, win in _windows(xp, k, s, d, out):
        y = win.copy() if y is None else np.maximum(y, win)
    return y


@op("AveragePool")
def _avgpool(ins, at, node, dtype):
    x = ins[0]
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


@op("GlobalAveragePool")
def _gap(ins, at, node, dtype):
    x = ins[0]
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


# --------------------------------------------------------------------------
# normalization
# --------------------------------------------------------------------------
def _standardize(x, axes, eps):
    """(x - mean) / sqrt(var + eps) over axes, with mean and 1/sqrt(var + eps)."""
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    return (x - mu) * inv, mu, inv


@op("BatchNormalization")
def _batchnorm(ins, at, node, dtype):
    if at.get("training_mode", 0):
        raise NotImplementedError("BatchNormalization training_mode")
    x, sc, b, mu, var = ins[:5]
    sh = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mu.reshape(sh)) / np.sqrt(var.reshape(sh) + at.get("epsilon", 1e-5)) \
        * sc.reshape(sh) + b.reshape(sh)


@op("InstanceNormalization")
def _instancenorm(ins, at, node, dtype):
    x, sc, b = ins[:3]
    sh = (1, -1) + (1,) * (x.ndim - 2)
    z, _, _ = _standardize(x, tuple(range(2, x.ndim)), at.get("epsilon", 1e-5))
    return z * sc.reshape(sh) + b.reshape(sh)


@op("LayerNormalization")
def _layernorm(ins, at, node, dtype):
    """Normalizes over axes [axis, rank); outputs Y, Mean, InvStdDev
    (stash_type is ignored: everything is computed in the working dtype)."""
    x, sc, b = ins[0], ins[1], _opt(ins, 2)
    ax = at.get("axis", -1) % x.ndim
    z, mu, inv = _standardize(x, tuple(range(ax, x.ndim)), at.get("epsilon", 1e-5))
    y = z * sc
    if b is not None:
        y = y + b
    return y, mu, inv


# --------------------------------------------------------------------------
# elementwise
# --------------------------------------------------------------------------
def _unary(name, f):
    OPS[name] = lambda ins, at, node, dtype: f(ins[0], at)


_unary("Relu", lambda x, at: np.maximum(x, 0))
_unary("LeakyRelu", lambda x, at: np.where(x > 0, x, at.get("alpha", 0.01) * x))
_unary("Sigmoid", lambda x, at: 1.0 / (1.0 + np.exp(-x)))
_unary("Tanh", lambda x, at: np.tanh(x))
_unary("Exp", lambda x, at: np.exp(x))
_unary("Log", lambda x, at: np.log(x))
_unary("Sqrt", lambda x, at: np.sqrt(x))
_unary("Neg", lambda x, at: -x)
_unary("Abs", lambda x, at: np.abs(x))
_unary("Reciprocal", lambda x, at: 1.0 / x)
_unary("Erf", lambda x, at: np.vectorize(math.erf, otypes=[x.dtype])(x))
_unary("HardSigmoid", lambda x, at: np.clip(at.get("alpha", 0.2) * x + at.get("beta", 0.5), 0, 1))
_unary("HardSwish", lambda x, at: x * np.clip(x / 6.0 + 0.5, 0, 1))
_unary("Selu", lambda x, at: at.get("gamma", 1.05070102214813232421875) * np.where(
    x > 0, x, at.get("alpha", 1.67326319217681884765625) * (np.exp(np.minimum(x, 0)) - 1)))
_unary("Not", lambda x, at: np.logical_not(x))
_unary("Identity", lambda x, at: x)


@op("Dropout")
def _dropout(ins, at, node, dtype):
    if (len(node.output) > 1 and node.output[1]) or (_opt(ins, 2) is not None and bool(ins[2])):
        raise NotImplementedError("Dropout mask output / training_mode")
    return ins[0]


@op("Add", "Sub", "Mul", "Div", "Pow")
def _binary(ins, at, node, dtype):
    x, w = ins[0], ins[1]
    f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
         "Pow": np.power}[node.op_type]
    if node.op_type == "Pow":
        return f(x, w).astype(x.dtype)                      # Pow's result has the base's type
    y = f(x, w)
    if np.issubdtype(x.dtype, np.integer) and node.op_type == "Div":
        y = np.trunc(x / w)                                 # integer Div truncates (C semantics)
    return y.astype(np.result_type(x, w))


@op("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")
def _compare(ins, at, node, dtype):
    f = {"Equal": np.equal, "Less": np.less, "Greater": np.greater,
         "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal}[node.op_type]
    return f(ins[0], ins[1])


@op("Max", "Min", "Sum")
def _variadic(ins, at, node, dtype):
    f = {"Max": np.maximum, "Min": np.minimum, "Sum": np.add}[node.op_type]
    return functools.reduce(f, ins)


@op("Where")
def _where(ins, at, node, dtype):
    return np.where(ins[0], ins[1], ins[2])


@op("Clip")
def _clip(ins, at, node, dtype):
    lo, hi = _opt(ins, 1), _opt(ins, 2)
    return np.minimum(np.maximum(ins[0], -np.inf if lo is None else lo), np.inf if hi is None else hi)


@op("Softmax", "LogSoftmax")
def _softmax(ins, at, node, dtype):
    x, ax = ins[0], at.get("axis", -1)
    z = x - x.max(axis=ax, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=ax, keepdims=True))
    return np.exp(z - lse) if node.op_type == "Softmax" else z - lse


# --------------------------------------------------------------------------
# linear algebra
# --------------------------------------------------------------------------
@op("Gemm")
def _gemm(ins, at, node, dtype):
    A = ins[0].T if at.get("transA", 0) else ins[0]
    B = ins[1].T if at.get("transB", 0) else ins[1]
    y = at.get("alpha", 1.0) * (A @ B)
    if _opt(ins, 2) is not None:
        y = y + at.get("beta", 1.0) * ins[2]
    return y


@op("MatMul")
def _matmul(ins, at, node, dtype):
    return np.matmul(ins[0], ins[1])


@op("Einsum")
def _einsum(ins, at, node, dtype):
    # ONNX's Einsum is numpy's (explicit '->' form, implicit form, ellipsis).
    return np.einsum(at["equation"].replace(" ", ""), *ins)


# --------------------------------------------------------------------------
# reductions
# --------------------------------------------------------------------------
@op("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")
def _reduce(ins, at, node, dtype):
    """axes from the second input (ReduceSum since opset 13, all since 18)
    or the axes attribute; no axes: all, unless noop_with_empty_axes."""
    x = ins[0]
    axes = _axes_list(ins[1]) if _opt(ins, 1) is not None else at.get("axes")
    if not axes:
        if at.get("noop_with_empty_axes", 0):
            return x
        axes = list(range(x.ndim))
    f = {"ReduceMean": np.mean, "ReduceSum": np.sum, "ReduceMax": np.max,
         "ReduceMin": np.min}[node.op_type]
    return f(x, axis=tuple(a % x.ndim for a in axes), keepdims=bool(at.get("keepdims", 1)))


@op("CumSum")
def _cumsum(ins, at, node, dtype):
    ax = int(np.asarray(ins[1]).reshape(-1)[0])
    if at.get("exclusive", 0) or at.get("reverse", 0):
        raise NotImplementedError("CumSum exclusive/reverse")
    return np.cumsum(ins[0], axis=ax)


# --------------------------------------------------------------------------
# shapes and data movement
# --------------------------------------------------------------------------
@op("Constant")
def _constant(ins, at, node, dtype):
    for k in ("value_float", "value_int"):
        if k in at:
            return _cast_float(np.array(at[k], dtype=np.float32 if k == "value_float" else np.int64), dtype)
    for k in ("value_floats", "value_ints"):
        if k in at:
            return _cast_float(np.array(at[k], dtype=np.float32 if k == "value_floats" else np.int64), dtype)
    return _cast_float(at["value"], dtype)


@op("ConstantOfShape")
def _constant_of_shape(ins, at, node, dtype):
    v = _cast_float(at.get("value", np.zeros(1, dtype=np.float32)), dtype)
    return np.full([int(d) for d in ins[0]], v.reshape(-1)[0], dtype=v.dtype)


@op("Range")
def _range(ins, at, node, dtype):
    start, limit, delta = (np.asarray(v).reshape(()) for v in ins[:3])
    n = max(int(math.ceil((limit - start) / delta)), 0)
    return (start + np.arange(n) * delta).astype(np.result_type(start))


@op("Shape")
def _shape(ins, at, node, dtype):
    shp = np.array(ins[0].shape, dtype=np.int64)
    r = len(shp)
    start, end = at.get("start", 0), at.get("end", r)
    return shp[max(min(start + r if start < 0 else start, r), 0):
               max(min(end + r if end < 0 else end, r), 0)]


@op("Size")
def _size(ins, at, node, dtype):
    return np.array(ins[0].size, dtype=np.int64)


@op("Flatten")
def _flatten(ins, at, node, dtype):
    x, ax = ins[0], at.get("axis", 1)
    return x.reshape(int(np.prod(x.shape[:ax])), -1)


@op("Reshape")
def _reshape(ins, at, node, dtype):
    x = ins[0]
    shp = [int(v) for v in ins[1]]
    if not at.get("allowzero", 0):
        shp = [x.shape[i] if v == 0 else v for i, v in enumerate(shp)]
    return x.reshape(shp)


@op("Expand")
def _expand(ins, at, node, dtype):
    # bidirectional broadcast: like x * ones(shape)
    x = ins[0]
    return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(int(v) for v in ins[1]))).copy()


@op("Gather")
def _gather(ins, at, node, dtype):
    return np.take(ins[0], ins[1], axis=at.get("axis", 0))


@op("Unsqueeze")
def _unsqueeze(ins, at, node, dtype):
    x = ins[0]
    axes = _axes_list(ins[1]) if _opt(ins, 1) is not None else at["axes"]
    for a in sorted(a % (x.ndim + len(axes)) for a in axes):
        x = np.expand_dims(x, a)
    return x


@op("Squeeze")
def _squeeze(ins, at, node, dtype):
    x = ins[0]
    axes = _axes_list(ins[1]) if _opt(ins, 1) is not None else at.get("axes")
    return np.squeeze(x, axis=tuple(a % x.ndim for a in axes)) if axes else np.squeeze(x)


@op("Concat")
def _concat(ins, at, node, dtype):
    return np.concatenate(ins, axis=at["axis"])


@op("Split")
def _split(ins, at, node, dtype):
    x, ax = ins[0], at.get("axis", 0)
    split = _axes_list(ins[1]) if _opt(ins, 1) is not None else at.get("split")
    if split is None:
        n = len(node.output)
        split = [x.shape[ax] // n] * n
    return tuple(np.split(x, np.cumsum(split)[:-1], axis=ax))


@op("Transpose")
def _transpose(ins, at, node, dtype):
    return np.transpose(ins[0], at.get("perm"))


@op("Slice")
def _slice(ins, at, node, dtype):
    x = ins[0]
    starts, ends = _axes_list(ins[1]), _axes_list(ins[2])
    axes = _axes_list(ins[3]) if _opt(ins, 3) is not None else list(range(len(starts)))
    steps = _axes_list(ins[4]) if _opt(ins, 4) is not None else [1] * len(starts)
    sl = [slice(None)] * x.ndim
    for st, en, a, sp in zip(starts, ends, axes, steps):
        sl[a % x.ndim] = slice(st, en, sp)   # Python slicing clamps like ONNX
    return x[tuple(sl)]


@op("Pad")
def _pad(ins, at, node, dtype):
    x = ins[0]
    mode = at.get("mode", "constant")
    pads = _axes_list(ins[1])
    cv = _opt(ins, 2)
    cv = float(cv) if cv is not None and cv.size else 0.0
    r = x.ndim
    if mode != "constant":
        raise NotImplementedError(f"Pad mode {mode}")
    if any(p < 0 for p in pads):
        raise NotImplementedError("negative pads")
    return np.pad(x, [(pads[i], pads[i + r]) for i in range(r)], constant_values=cv)


@op("Cast")
def _cast(ins, at, node, dtype):
    to = {1: dtype, 11: np.float64, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16,
          6: np.int32, 7: np.int64, 9: bool, 12: np.uint32, 13: np.uint64}.get(at["to"])
    if to is None:
        raise NotImplementedError(f"Cast to type {at['to']}")
    return ins[0].astype(to)


# --------------------------------------------------------------------------
# Resize
# --------------------------------------------------------------------------
def _source_coords(mode, n_out, n_in, scale):
    """x_original for every x_resized in [0, n_out) (the spec's
    coordinate_transformation_mode equations).  length_resized is
    n_in * scale, not floored: that is what ONNX's reference (and its node
    test resize_downsample_scales_linear_align_corners) uses; with sizes, or
    integer scales as torch exports, it is the output length."""
    i = np.arange(n_out, dtype=np.float64)
    n_res = n_in * scale
    if mode == "half_pixel":
        return (i + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (i + 0.5) / scale - 0.5 if n_res > 1 else np.zeros(n_out)
    if mode == "align_corners":
        return i * (n_in - 1) / (n_res - 1) if n_res > 1 else np.zeros(n_out)
    if mode == "asymmetric":
        return i / scale
    if mode == "tf_half_pixel_for_nn":
        return (i + 0.5) / scale
    raise NotImplementedError(f"coordinate_transformation_mode {mode}")


_NEAREST = {
    "round_prefer_floor": lambda c: np.ceil(c - 0.5),
    "round_prefer_ceil": lambda c: np.floor(c + 0.5),
    "floor": np.floor,
    "ceil": np.ceil,
}


@op("Resize")
def _resize(ins, at, node, dtype):
    """Nearest and (n-)linear modes, one axis at a time (both are separable);
    source indices are clamped to the input, which is what the spec's
    reference (edge-padded neighbours) amounts to for these modes."""
    x, roi, scales, sizes = ins[0], _opt(ins, 1), _opt(ins, 2), _opt(ins, 3)
    mode = at.get("mode", "nearest")
    ctm = at.get("coordinate_transformation_mode", "half_pixel")
    if mode not in ("nearest", "linear"):
        raise NotImplementedError(f"Resize mode {mode}")
    if at.get("exclude_outside", 0) or ctm == "tf_crop_and_resize":
        raise NotImplementedError("Resize exclude_outside / tf_crop_and_resize")
    if sizes is not None and sizes.size:
        out = [int(v) for v in sizes]
        scales = [o / n for o, n in zip(out, x.shape)]
    else:
        scales = [float(v) for v in scales]
        out = [int(math.floor(n * s)) for n, s in zip(x.shape, scales)]
    y = x
    for ax, (n_in, n_out, s) in enumerate(zip(x.shape, out, scales)):
        if n_in == n_out and s == 1.0:
            continue
        c = _source_coords(ctm, n_out, n_in, s)
        if mode == "nearest":
            idx = np.clip(_NEAREST[at.get("nearest_mode", "round_prefer_floor")](c), 0, n_in - 1)
            y = np.take(y, idx.astype(np.int64), axis=ax)
        else:
            lo = np.floor(c)
            w = (c - lo).reshape((-1,) + (1,) * (y.ndim - ax - 1))
            i0 = np.clip(lo, 0, n_in - 1).astype(np.int64)
            i1 = np.clip(lo + 1, 0, n_in - 1).astype(np.int64)
            y = np.take(y, i0, axis=ax) * (1 - w) + np.take(y, i1, axis=ax) * w
    return y.astype(x.dtype)


# --------------------------------------------------------------------------
# graph
# --------------------------------------------------------------------------
def _dependency_order(nodes, available):
    """The nodes in an order where every input is computed before it is used,
    keeping the file's order where it already is one (Kahn's algorithm)."""
    have = set(available) | {""}
    left, order = list(nodes), []
    while left:
        ready = [n for n in left if all(i in have for i in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or an input nobody computes: " +
                             ", ".join(sorted({i for n in left for i in n.input if i not in have})))
        first = ready[0]
        order.append(first)
        have.update(first.output)
        left.remove(first)
    return order


def is_sorted(model):
    """Whether every node's inputs are graph inputs, initializers or outputs
    of nodes listed before it."""
    g = model.graph
    have = {t.name for t in g.initializer} | {i.name for i in g.input} | {""}
    for n in g.node:
        if any(i not in have for i in n.input):
            return False
        have.update(n.output)
    return True


def run(model, feeds, dtype=np.float64):
    """Evaluates model (onnx.ModelProto) on feeds {name: array}; returns
    {output name: array} for the graph outputs."""
    g = model.graph
    env = {}
    for t in g.initializer:
        env[t.name] = _cast_float(numpy_helper.to_array(t), dtype)
    for k, v in feeds.items():
        env[k] = _cast_float(v, dtype)
    nodes = list(g.node) if is_sorted(model) else _dependency_order(g.node, env)
    for node in nodes:
        if node.domain not in ("", "ai.onnx"):
            raise NotImplementedError(f"domain {node.domain}")
        f = OPS.get(node.op_type)
        if f is None:
            raise NotImplementedError(f"op {node.op_type}")
        ins = [env[n] if n else None for n in node.input]
        y = f(ins, _attrs(node), node, dtype)
        ys = y if isinstance(y, tuple) else (y,)
        for name, v in zip(node.output, ys):
            if name:
                env[name] = np.asarray(v)
    return {o.name: env[o.name] for o in g.output}
