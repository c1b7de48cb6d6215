#!/usr/bin/python3
"""Generates the onnxgrad test fixtures in testdata/models/.

Run from the repository root with Debian's Python (torch 1.13, torchvision
0.14, onnx 1.12, numpy):

    /usr/bin/python3 testdata/gen/make_fixtures.py            # small fixtures + README
    /usr/bin/python3 testdata/gen/make_fixtures.py --large    # also resnet18 -> testdata/models/large/ (not committed)
    /usr/bin/python3 testdata/gen/make_fixtures.py --only op_resize   # remake some; README untouched

Without --large no resnet18 file is written; resnet18 is still built, exported
and checked in memory (~5 s) so that README.md and fixtures.json come out the
same either way.

The Go build and tests never run this script: its outputs are committed.  It is
deterministic (fixed seeds per fixture, one CPU thread); rerunning it with the
same torch/onnx/numpy versions rewrites identical files.

The package: table.py (the fixtures and their graph facts), models.py (the
PyTorch models), kinks.py (kink-margin probes), forms.py (export and the
external-model forms), onnx_numpy_ref.py (float64 NumPy interpreter of the
exported graphs) and check_numpy_ref.py (runs that interpreter on ONNX's own
node tests, first thing every run).

For every fixture NAME it writes to testdata/models/ (large ones to
testdata/models/large/):

  NAME.onnx         torch.onnx.export(model.eval(), x, opset_version=OPSET,
                    input_names=["input"], output_names=["logits"],
                    dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                    do_constant_folding=True)   (TorchScript exporter;
                    no dynamic_axes for the fixed-batch form; see forms.py
                    for the external-data and unsorted forms)
  NAME.x.npy        float32 input [N, ...] (NCHW, or NHWC for layout nhwc),
                    pixel-like values in [0, 1], all distinct
  NAME.logits.npy   float32 model(x) of the float32 model  [N, K]
                    (probabilities or log-probabilities for scores
                    softmax / logsoftmax)
  NAME.jac.npy      float32 Jacobian [N, K, ...input dims]:
                    J[n, k, ...] = d logits[n, k] / d x[n, ...],
                    computed by torch.autograd in float64 (model.double())

("unsupported" only gets its .onnx; cnn_external also NAME.onnx.data.)  It
also writes testdata/models/README.md (fixture table with the op types read
back from each .onnx) and testdata/models/fixtures.json (the same facts,
machine-readable, with the form/twin/layout/scores fields Go tests select on).

Checks done for every fixture (the script fails if one does not hold):
  * onnx.checker.check_model passes on the export (for cnn_unsorted the
    checker refuses the permuted file, so it checks the export before the
    permutation); the opset is the one asked for;
  * the logits saved equal model(x) in float32, and agree with the float64
    model to ~1e-5;
  * the Jacobian of the whole batch is block-diagonal (samples independent);
    its diagonal blocks are what is saved, and they equal the per-sample
    torch.autograd.functional.jacobian;
  * an independent NumPy interpreter of the ONNX graph as written
    (onnx_numpy_ref.py, float64) reproduces the logits, and its central
    finite differences along random directions match J·u;
  * twins: the scores equal the twin's logits (mapped by softmax /
    log_softmax where asked) in float64;
  * fixture-specific graph facts (table.py) and form facts (fixed batch in
    the Reshape constant, Transpose of an NHWC input, every tensor external,
    an unsorted node list).
x is re-drawn (next seed) until no input of a piecewise op is closer than
MARGIN to a kink (kinks.py), so float32 runtimes agree with torch on every
mask and argmax; the margins reached are listed in the README.
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
import torch
import torch.nn as nn
import torchvision

sys.dont_write_bytecode = True     # no __pycache__ in testdata/gen
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_numpy_ref  # noqa: E402
import forms  # noqa: E402
import kinks  # noqa: E402
import onnx_numpy_ref  # noqa: E402
from forms import check  # noqa: E402
from table import FIXTURES  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "models"))
LARGE = os.path.join(OUT, "large")
MARGIN = 1e-5          # minimum distance of any kink input from its kink (float32 safety)
MAX_TRIES = 40         # x re-draws before giving up on MARGIN
TWIN_TOL = 1e-9        # float64 scores vs the twin's: the same arithmetic up to op order

torch.set_num_threads(1)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def make_x(shape, n, seed):
    """Pixel-like values in (0, 1), all distinct within the batch."""
    rng = np.random.default_rng(seed)
    m = n * int(np.prod(shape))
    v = (rng.permutation(m) + rng.uniform(0.05, 0.95, size=m)) / m
    return v.reshape((n,) + tuple(shape)).astype(np.float32)


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def scores_of(z, scores):
    """Logits z [N, K] (float64) mapped to a fixture's scores."""
    if scores == "logits":
        return z
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) + z.max(1, keepdims=True)
    return np.exp(z - lse) if scores == "softmax" else z - lse


def build(fx, seed):
    torch.manual_seed(seed)
    model = fx["make"]().eval()
    kinks.attach_probes(model)
    return model


def worst(margins):
    return min(margins.values()) if margins else float("inf")


def pick_x(fx, model, n, seed):
    best = None
    for t in range(MAX_TRIES):
        x = make_x(fx["shape"], n, seed * 1000 + t)
        mg = kinks.kink_margins(model, torch.from_numpy(x))
        if best is None or worst(mg) > worst(best[1]):
            best = (x, mg, t)
        if worst(mg) >= MARGIN:
            break
    x, mg, t = best
    check(worst(mg) >= MARGIN, f"{fx['name']}: no x with kink margin >= {MARGIN} (best {worst(mg):.3g})")
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
    worst_err = 0.0
    for _ in range(dirs):
        u = rng.standard_normal(x.shape)
        u /= np.sqrt((u.reshape(len(u), -1) ** 2).sum(1)).reshape((-1,) + (1,) * (u.ndim - 1))
        yp = onnx_numpy_ref.run(m, {"input": xd + h * u})["logits"]
        ym = onnx_numpy_ref.run(m, {"input": xd - h * u})["logits"]
        fd = (yp - ym) / (2 * h)
        n, k = jac.shape[:2]
        ju = (jac.reshape(n, k, -1).astype(np.float64) * u.reshape(n, 1, -1)).sum(-1)
        worst_err = max(worst_err, rel_err(fd, ju))
    return worst_err


def npy_bytes(arr):
    b = io.BytesIO()
    np.save(b, np.ascontiguousarray(arr, dtype=np.float32))
    return b.getvalue()


# --------------------------------------------------------------------------
# one fixture
# --------------------------------------------------------------------------
def inputs(fx, model, n, twin):
    """(x, kink margins, x seed) of a fixture: its own draw, or its twin's x."""
    if twin is None:
        x, margins, tries = pick_x(fx, model, n, fx["seed"])
        return x, margins, fx["seed"] * 1000 + tries
    x = twin["x"][:n]
    if fx.get("layout", "nchw") == "nhwc":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    margins = kinks.kink_margins(model, torch.from_numpy(x))
    check(worst(margins) >= MARGIN, f"{fx['name']}: twin's x is {worst(margins):.3g} from a kink")
    return x, margins, twin["x_seed"]


def files_of(fx, blob, seed):
    """({file name: bytes} of the model, the ModelProto to evaluate, the
    checker's complaint about the file if any) for the fixture's form."""
    name, form = fx["name"], fx.get("form", "plain")
    if form == "external_data":
        files = forms.external_data(blob, name)
        return files, forms.load_files(files, name + ".onnx"), None
    if form == "unsorted":
        blob = forms.unsorted(blob, seed)
        m = onnx.load_from_string(blob)
        return {name + ".onnx": blob}, m, forms.checker_complaint(m)
    return {name + ".onnx": blob}, onnx.load_from_string(blob), None


def run_fixture(fx, write, done):
    name, opset = fx["name"], fx["opset"]
    n = fx.get("n", 4)
    large = fx.get("large", False)
    form = fx.get("form", "plain")
    twin = done[fx["twin"]] if "twin" in fx else None
    seed = twin["seed"] if twin else fx["seed"]
    model = build(fx, seed)
    x, margins, x_seed = inputs(fx, model, n, twin)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        logits_before = model(xt).numpy()
    blob = forms.export_bytes(model, xt, opset, dynamic=form != "fixed_batch")
    with torch.no_grad():
        logits = model(xt).numpy()
    check(np.array_equal(logits, logits_before), f"{name}: export changed the model output")
    onnx.checker.check_model(onnx.load_from_string(blob))       # the export, before any form
    files, m, complaint = files_of(fx, blob, seed)
    opsets = {o.domain: o.version for o in m.opset_import}
    check(opsets.get("", opsets.get("ai.onnx")) == opset, f"{name}: opset {opsets}")
    ops = forms.op_types(m)
    for op in fx.get("expect", []):
        check(op in ops, f"{name}: no {op} node")
    main_file = files[name + ".onnx"]
    info = dict(name=name, opset=opset, input_shape=list(x.shape),
                ops=ops, nodes=len(m.graph.node), how=" ".join(fx["how"].split()).rstrip("."),
                onnx_bytes=len(main_file), onnx_sha256=hashlib.sha256(main_file).hexdigest()[:16],
                large=large, onnx_only=bool(fx.get("onnx_only")),
                x_seed=x_seed, weight_seed=seed,
                form=form, twin=fx.get("twin"), layout=fx.get("layout", "nchw"),
                scores=fx.get("scores", "logits"), dynamic_batch=form != "fixed_batch",
                margins={k: float(f"{v:.3g}") for k, v in sorted(margins.items())})
    if form == "external_data":
        info["external_data"] = name + ".onnx.data"
    info["facts"] = facts(fx, model, m) + form_facts(fx, m, files, n, complaint)
    print(f"== {name}: opset {opset}, input {info['input_shape']}, "
          f"{len(m.graph.node)} nodes, {len(main_file)} bytes\n   ops: {ops}")
    print(f"   margins: {info['margins']} (x seed {x_seed})")

    # the ONNX graph (NumPy interpreter, float64) reproduces the logits
    ref = onnx_numpy_ref.run(m, {"input": x.astype(np.float64)})["logits"]
    info["onnx_vs_torch_f32"] = rel_err(ref, logits)
    check(info["onnx_vs_torch_f32"] < 1e-5, f"{name}: onnx numpy eval vs torch {info['onnx_vs_torch_f32']}")
    print(f"   numpy-ONNX(float64) vs torch float32 logits: rel err {info['onnx_vs_torch_f32']:.2e}")

    result = dict(x=x, seed=seed, x_seed=x_seed)
    if not fx.get("onnx_only"):
        K = logits.shape[1]
        info["K"] = K
        jac, y64 = jacobian(model, x)
        result["y64"] = y64
        check(jac.shape == (n, K) + tuple(fx["shape"]), f"{name}: jac shape {jac.shape}")
        check(rel_err(logits, y64) < 1e-5, f"{name}: float32 vs float64 logits {rel_err(logits, y64)}")
        info["onnx_vs_torch_f64"] = rel_err(ref, y64)
        check(info["onnx_vs_torch_f64"] < 1e-5, f"{name}: onnx vs float64 {info['onnx_vs_torch_f64']}")
        fd = fd_check(m, x, jac, np.random.default_rng(seed))
        info["fd_rel_err"] = fd
        check(fd < 1e-4, f"{name}: finite differences vs Jacobian rel err {fd}")
        info["jac_absmax"] = float(np.abs(jac).max())
        print(f"   jac {jac.shape}: max|J| {info['jac_absmax']:.3g}, "
              f"FD (numpy-ONNX float64) vs J.u rel err {fd:.2e}, onnx vs float64 torch {info['onnx_vs_torch_f64']:.2e}")
        if twin is not None:
            info["twin_rel_err"] = rel_err(y64, scores_of(twin["y64"][:n], info["scores"]))
            check(info["twin_rel_err"] < TWIN_TOL, f"{name}: scores vs twin {fx['twin']}: {info['twin_rel_err']}")
            print(f"   scores vs twin {fx['twin']} (float64): rel err {info['twin_rel_err']:.1e}")

    blobs = dict(files)
    if not fx.get("onnx_only"):
        for suffix, arr in (("x", x), ("logits", logits), ("jac", jac.astype(np.float32))):
            blobs[f"{name}.{suffix}.npy"] = npy_bytes(arr)
    info["files"] = {k: len(v) for k, v in blobs.items()}     # same with or without --large
    if write:
        outdir = LARGE if large else OUT
        os.makedirs(outdir, exist_ok=True)
        for k, v in blobs.items():
            with open(os.path.join(outdir, k), "wb") as f:
                f.write(v)
        # read back what was written (onnx.load follows external data)
        back = onnx.load(os.path.join(outdir, f"{name}.onnx"))
        check(forms.op_types(back) == ops, "re-read op list")
        if not fx.get("onnx_only"):
            check(np.array_equal(np.load(os.path.join(outdir, f"{name}.logits.npy")), logits), "logits")
            j2 = np.load(os.path.join(outdir, f"{name}.jac.npy"))
            check(j2.dtype == np.float32 and j2.shape == jac.shape, "jac dtype/shape")
            check(np.array_equal(j2, jac.astype(np.float32)), "jac read-back")
    done[name] = result
    return info


def facts(fx, model, m):
    """What the exporter did, checked against the graph: BatchNorm folding,
    the fixture's own facts (table.py), then pads, Identity and Constant
    nodes."""
    ops = forms.op_types(m)
    out = []
    n_bn_mod = sum(isinstance(x, nn.BatchNorm2d) for x in model.modules())
    n_bn = sum(nd.op_type == "BatchNormalization" for nd in m.graph.node)
    if n_bn_mod:
        out.append(f"{n_bn_mod} BatchNorm2d modules -> {n_bn} BatchNormalization nodes "
                   f"({n_bn_mod - n_bn} folded into the preceding Conv)")
    if "facts" in fx:
        out += fx["facts"](model, m)
    prod = forms.producers(m)
    for nd in m.graph.node:
        if nd.op_type == "AveragePool" and nd.input[0] in prod and prod[nd.input[0]].op_type == "Pad":
            pn = prod[nd.input[0]]
            c = prod.get(pn.input[1])
            pads = (onnx.numpy_helper.to_array(c.attribute[0].t).tolist()
                    if c is not None and c.op_type == "Constant" else "computed")
            out.append(f"AvgPool2d (count_include_pad=True) exports as Pad(pads={pads}) -> "
                       "AveragePool(pads=0), even when its padding is 0")
    ids = [nd for nd in m.graph.node if nd.op_type == "Identity"]
    if ids:
        vals = [forms.constant_value(m, nd.input[0]) for nd in ids]
        check(all(v is not None for v in vals), "Identity of a computed tensor")
        what = "all zero" if all(not v.any() for v in vals) else "some nonzero"
        out.append(f"{len(ids)} Identity nodes: the exporter keeps one copy of initializers "
                   f"with equal values ({what}: biases torchvision initialises to 0) and "
                   "makes the others Identity nodes reading that copy")
    if "Constant" in ops:
        out.append("scalar/axes constants are Constant nodes, weights are initializers")
    return out


def form_facts(fx, m, files, n, complaint):
    """Checks and states what makes an external-model form what it is."""
    name, form = fx["name"], fx.get("form", "plain")
    if form == "fixed_batch":
        dims = forms.input_dims(m)
        check(dims == [n] + list(fx["shape"]), f"{name}: input dims {dims}")
        shapes = [forms.constant_value(m, r.input[1]) for r in m.graph.node if r.op_type == "Reshape"]
        held = [s.tolist() for s in shapes if s is not None and s[0] == n]
        check(held, f"{name}: no Reshape constant holds the batch {n}")
        return [f"input `input` is static {dims} (no dynamic_axes); the flatten Reshape's "
                f"shape is the constant {held[0]}, which holds the batch"]
    if form == "nhwc":
        first = [nd for nd in m.graph.node if "input" in nd.input]
        perm = [a.ints for a in first[0].attribute if a.name == "perm"] if first else []
        check(len(first) == 1 and first[0].op_type == "Transpose" and list(perm[0]) == [0, 3, 1, 2],
              f"{name}: the input is not read by one Transpose(perm 0,3,1,2)")
        return ["input `input` is [N, 28, 28, 1]; its only reader is Transpose(perm=[0, 3, 1, 2]), "
                "then cnn's graph"]
    if form == "external_data":
        raw = onnx.load_from_string(files[name + ".onnx"])
        inits = list(raw.graph.initializer)
        loc = {e.value for t in inits for e in t.external_data if e.key == "location"}
        check(inits and all(t.data_location == onnx.TensorProto.EXTERNAL and not t.raw_data
                            for t in inits) and loc == {name + ".onnx.data"},
              f"{name}: not every initializer is external in {name}.onnx.data")
        return [f"all {len(inits)} initializers (biases of 4 floats too: size_threshold=0) have "
                f"data_location EXTERNAL with location `{name}.onnx.data`, offset and length; "
                f"the .onnx holds no tensor data ({len(files[name + '.onnx'])} bytes, data file "
                f"{len(files[name + '.onnx.data'])} bytes); onnx.load reads them back"]
    if form == "unsorted":
        check(not onnx_numpy_ref.is_sorted(m), f"{name}: node list is sorted")
        check(complaint, f"{name}: onnx.checker accepts the unsorted graph")
        order = " ".join(nd.op_type for nd in m.graph.node)
        return [f"node order: {order}",
                "onnx.checker.check_model refuses the file, so the script checks the export "
                f"before the permutation; the checker says: \"{complaint}\"",
                "the NumPy interpreter evaluates nodes in dependency order"]
    return []


# --------------------------------------------------------------------------
# README and fixtures.json
# --------------------------------------------------------------------------
README_HEAD = """# onnxgrad test fixtures

Generated by `testdata/gen/make_fixtures.py` (run from the repository root with
`/usr/bin/python3 testdata/gen/make_fixtures.py`; add `--large` for
`large/resnet18`). Do not edit by hand: rerun the script. The Go build and
tests never need Python.

Made with torch {torch}, torchvision {torchvision}, onnx {onnx}, numpy {numpy}
(Debian packages), TorchScript exporter: `torch.onnx.export(model.eval(), x,
opset_version=OPSET, input_names=["input"], output_names=["logits"],
dynamic_axes={{"input": {{0: "N"}}, "logits": {{0: "N"}}}}, do_constant_folding=True)`
(without `dynamic_axes` for the fixed-batch form). All weights are random.

Files per fixture `NAME`:

| file | dtype / shape | content |
|---|---|---|
| `NAME.onnx` | | the model; input `input` `[N, ...]`, output `logits` `[N, K]` (scores: logits, probabilities or log-probabilities, see `scores`) |
| `NAME.onnx.data` | | `cnn_external` only: its tensors (external data) |
| `NAME.x.npy` | float32 `[N, C, H, W]` (`[N, H, W, C]` for layout nhwc) | inputs, pixel-like values in (0, 1), all distinct |
| `NAME.logits.npy` | float32 `[N, K]` | `model(x)` of the float32 PyTorch model |
| `NAME.jac.npy` | float32 `[N, K, ...input dims]` | `J[n,k,...] = d logits[n,k] / d x[n,...]`, torch.autograd in float64, cast to float32 |

`fixtures.json` holds the same facts as the tables below, machine-readable, one
object per fixture: `name`, `dir` (`.` or `large`), `opset`, `input_shape`
(of x), `K`, `ops`, `nodes`, `form` (`plain`, `fixed_batch`, `nhwc`,
`external_data`, `unsorted`), `twin` (the fixture whose weights and x this one
shares, or null), `layout` (`nchw`, `nhwc`), `scores` (`logits`, `softmax`,
`logsoftmax`), `dynamic_batch`, `external_data` (the data file, external form
only), `files` (name: bytes), `margins`, `onnx_vs_torch_f32`,
`onnx_vs_torch_f64`, `fd_rel_err`, `twin_rel_err`, `jac_absmax`, seeds and
sizes. The `.npy` files are NumPy format 1.0, little-endian `<f4`, C order.

Checks the script makes before writing: `onnx.checker.check_model` on the
export; saved logits equal `model(x)` in float32; the batch Jacobian is
block-diagonal (samples independent) and each block equals the per-sample
`torch.autograd.functional.jacobian` (this is the saved layout); a NumPy
interpreter of the graph as written (`testdata/gen/onnx_numpy_ref.py`, float64)
reproduces the logits ("ONNX vs torch" below, max abs error / max |logits|),
and its central finite differences along 4 random directions match `J·u`
("FD" below); twins' scores equal the twin's logits, mapped by softmax or
log_softmax where asked (float64, below {twin_tol:g} relative). onnxruntime
was not used.

The NumPy interpreter follows the ONNX 1.12 operator spec; before exporting
anything the script runs it on ONNX's own node tests (`check_numpy_ref.py`,
Debian's libonnx-testdata). Of the {conf_run} tests whose nodes all have an
evaluator ({conf_ops} op types), {conf_pass} pass and {conf_refused} are refused for attribute
values no fixture uses ({conf_refused_ops}); none fails.

`x` is re-drawn until no input of a piecewise op is closer than {margin:g} to a
kink (the "margins" column, float32 forward): ReLU, LeakyReLU and SELU inputs
from 0, ReLU6 and Clip inputs from their bounds, HardSwish and HardSigmoid
inputs from -3 and 3, MaxPool windows with a positive maximum (top-1 minus
top-2), the two operands of Max and Min, and top-1 minus top-2 over the
reduced axes of ReduceMax and ReduceMin. So float32 runtimes reproduce torch's
masks and argmaxes. Finite-difference steps must stay below these margins
(times the local gain) to avoid crossing a kink.
"""


def fmt_shape(s):
    return "[" + ",".join(str(v) for v in s) + "]"


def write_readme(infos, conformance):
    per_op, results = conformance
    lines = [README_HEAD.format(
        torch=torch.__version__, torchvision=torchvision.__version__,
        onnx=onnx.__version__, numpy=np.__version__, margin=MARGIN, twin_tol=TWIN_TOL,
        conf_run=len(results), conf_pass=sum(s == "pass" for _, s, _ in results),
        conf_ops=len(per_op), conf_refused=sum(s == "refused" for _, s, _ in results),
        conf_refused_ops="; ".join(sorted({d for _, s, d in results if s == "refused"})))]
    lines.append("## Twins and forms\n")
    lines.append("Fixtures that share weights and x with a twin, for tests that compare them "
                 "(margins of the external-model forms and of probability outputs must equal "
                 "their plain twin's). \"scores vs twin\" is max |y − f(y_twin)| / max |f(y_twin)| "
                 "of the float64 PyTorch outputs, f the map from logits to this fixture's scores.\n")
    lines.append("| fixture | twin | form | layout | scores | input | dynamic batch | scores vs twin |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for i in infos:
        if i.get("twin") or i["form"] != "plain" or i["scores"] != "logits":
            tv = f"{i['twin_rel_err']:.1e}" if "twin_rel_err" in i else "-"
            lines.append(f"| `{i['name']}` | {('`' + i['twin'] + '`') if i.get('twin') else '-'} | "
                         f"{i['form']} | {i['layout']} | {i['scores']} | {fmt_shape(i['input_shape'])} | "
                         f"{'yes' if i['dynamic_batch'] else 'no'} | {tv} |")
    lines.append("\n## Fixtures\n")
    lines.append("| fixture | input | K | opset | op types in the graph | nodes | ONNX vs torch | FD | margins |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for i in infos:
        nm = f"`large/{i['name']}`" if i["large"] else f"`{i['name']}`"
        mg = ", ".join(f"{k} {v:g}" for k, v in i["margins"].items()) or "smooth"
        fd = f"{i['fd_rel_err']:.1e}" if "fd_rel_err" in i else "-"
        lines.append(f"| {nm} | {fmt_shape(i['input_shape'])} | {i.get('K', 10)} | {i['opset']} | "
                     f"{', '.join(i['ops'])} | {i['nodes']} | {i['onnx_vs_torch_f32']:.1e} | {fd} | {mg} |")
    lines.append("\n## How each was made\n")
    for i in infos:
        lines.append(f"- **{i['name']}** (weights seed {i['weight_seed']}, x seed {i['x_seed']}): {i['how']}.")
        for f in i["facts"]:
            lines.append(f"  - {f}.")
    lines.append("\n## Sizes (bytes)\n")
    lines.append("| fixture | .onnx | .onnx.data | .x.npy | .logits.npy | .jac.npy | committed |")
    lines.append("|---|---|---|---|---|---|---|")
    total = 0
    for i in infos:
        fs = i["files"]
        row = [str(fs.get(f"{i['name']}{s}", "-"))
               for s in (".onnx", ".onnx.data", ".x.npy", ".logits.npy", ".jac.npy")]
        if not i["large"]:
            total += sum(fs.values())
        lines.append(f"| {i['name']} | " + " | ".join(row) + f" | {'no (large/, gitignored)' if i['large'] else 'yes'} |")
    n_small = sum(not i["large"] for i in infos)
    lines.append(f"\nCommitted fixture data ({n_small} fixtures, every file above marked yes): "
                 f"{total} bytes.")
    lines.append("\n`large/` is ignored by `large/.gitignore`; `make_fixtures.py --large` writes "
                 "`large/resnet18.{onnx,x.npy,logits.npy,jac.npy}` (N = 2).\n")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("\n".join(lines))


def write_manifest(infos):
    manifest = [{k: v for k, v in i.items() if k not in ("how", "facts")} for i in infos]
    for mi, i in zip(manifest, infos):
        mi["dir"] = "large" if i["large"] else "."
    with open(os.path.join(OUT, "fixtures.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


def conformance_check():
    """Runs the NumPy interpreter on ONNX's node tests; stops on a failure."""
    per_op, results = check_numpy_ref.check()
    failed = [f"{t} ({d})" for t, s, d in results if s == "fail"]
    check(not failed, "NumPy interpreter fails ONNX node tests: " + ", ".join(failed))
    n_pass = sum(s == "pass" for _, s, _ in results)
    print(f"NumPy interpreter: {n_pass} of {len(results)} ONNX node tests pass ({len(per_op)} ops), "
          f"{len(results) - n_pass} refused")
    return per_op, results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--large", action="store_true",
                    help="also write testdata/models/large/resnet18.* (~45 MB, not committed)")
    ap.add_argument("--only", nargs="*", help="fixture names to (re)make (their twins are "
                    "made in memory); README/manifest untouched")
    args = ap.parse_args()
    import warnings
    warnings.filterwarnings("ignore")
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(LARGE, exist_ok=True)
    with open(os.path.join(LARGE, ".gitignore"), "w") as f:
        f.write("# resnet18 fixtures (~45 MB) are made by make_fixtures.py --large and not committed\n*\n!.gitignore\n")
    by_name = {fx["name"]: fx for fx in FIXTURES}
    wanted = set(args.only or by_name)
    unknown = wanted - set(by_name)
    check(not unknown, f"unknown fixtures {sorted(unknown)}")
    needed = set(wanted)
    for name in list(wanted):
        while "twin" in by_name[name]:
            name = by_name[name]["twin"]
            needed.add(name)
    conformance = conformance_check()
    infos, done = [], {}
    for fx in FIXTURES:
        if fx["name"] not in needed:
            continue
        write = fx["name"] in wanted and (args.large or not fx.get("large"))
        infos.append(run_fixture(fx, write, done))
    untested = sorted({op for i in infos for op in i["ops"]} - {
        op for op, c in conformance[0].items() if c["pass"]})
    check(not untested, f"ops the fixtures use without a passing ONNX node test: {untested}")
    if args.only:
        return
    write_readme(infos, conformance)
    write_manifest(infos)
    print("wrote", os.path.join(OUT, "README.md"))


if __name__ == "__main__":
    main()
