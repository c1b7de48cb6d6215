#!/usr/bin/python3
"""Runs onnx_numpy_ref.py on ONNX's own backend node tests.

Every test in Debian's libonnx-testdata (ONNX 1.12's
onnx/backend/test/data/node: a one-node model.onnx with input_*.pb and
expected output_*.pb) whose nodes all have an evaluator in onnx_numpy_ref is
run in float64 and compared with the expected outputs (ONNX's own tolerances:
rtol 1e-3, atol 1e-7).  A test that uses an attribute value the interpreter
refuses (NotImplementedError) is counted as refused, not as failed.

    /usr/bin/python3 testdata/gen/check_numpy_ref.py [-v] [TESTDIR]

make_fixtures.py calls check() before exporting anything and stops if a test
fails for an op that a fixture uses.
"""
import argparse
import collections
import glob
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_numpy_ref  # noqa: E402

NODE_TESTS = "/usr/share/libonnx-testdata/data/node"
UNSUPPORTED_TYPES = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.STRING}


def _load_pb(path):
    """The tensor in path, or None when it holds something else (a sequence
    or optional value, which no op here takes)."""
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    try:
        return numpy_helper.to_array(t)
    except ValueError:
        return None


def _run_one(d):
    """(op types, status, detail) of one node test directory."""
    m = onnx.load(os.path.join(d, "model.onnx"))
    ops = sorted({n.op_type for n in m.graph.node})
    if any(o not in onnx_numpy_ref.OPS for o in ops):
        return ops, "skip", "op not implemented"
    types = {v.type.tensor_type.elem_type for v in list(m.graph.input) + list(m.graph.output)}
    if types & UNSUPPORTED_TYPES:
        return ops, "skip", "float16, bfloat16 or string tensors"
    sets = sorted(glob.glob(os.path.join(d, "test_data_set_*")))
    if not sets:
        return ops, "skip", "no data"
    ins = [i.name for i in m.graph.input]
    outs = [o.name for o in m.graph.output]
    for s in sets:
        feeds = {}
        for i, p in enumerate(sorted(glob.glob(os.path.join(s, "input_*.pb")),
                                     key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))):
            a = _load_pb(p)
            if a is None or a.dtype.kind not in "fiub":
                return ops, "skip", "input is not a numeric tensor"
            feeds[ins[i]] = a
        want = {}
        for i, p in enumerate(sorted(glob.glob(os.path.join(s, "output_*.pb")),
                                     key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))):
            a = _load_pb(p)
            if a is None:
                return ops, "skip", "output is not a tensor"
            want[outs[i]] = a
        try:
            got = onnx_numpy_ref.run(m, feeds)
        except NotImplementedError as e:
            return ops, "refused", str(e)
        except Exception as e:  # noqa: BLE001 - any other exception is a wrong evaluator
            return ops, "fail", f"{type(e).__name__}: {e}"
        for k, w in want.items():
            g = got[k]
            if g.shape != w.shape:
                return ops, "fail", f"{k}: shape {g.shape}, want {w.shape}"
            if w.dtype.kind == "f":
                ok = np.allclose(g, w, rtol=1e-3, atol=1e-7, equal_nan=True)
            else:
                ok = np.array_equal(g, w)
            if not ok:
                err = np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)))
                return ops, "fail", f"{k}: max abs error {err:.3g}"
    return ops, "pass", ""


def check(test_dir=NODE_TESTS, verbose=False):
    """Runs every applicable node test; returns {op: Counter(status)} and
    the list of (test, status, detail) of every test run."""
    per_op = collections.defaultdict(collections.Counter)
    results = []
    for d in sorted(glob.glob(os.path.join(test_dir, "test_*"))):
        ops, status, detail = _run_one(d)
        if status == "skip":
            continue
        for o in ops:
            per_op[o][status] += 1
        results.append((os.path.basename(d), status, detail))
        if verbose:
            print(f"{status:8s} {os.path.basename(d)} {detail}")
    return per_op, results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("-v", action="store_true", help="print every test")
    ap.add_argument("dir", nargs="?", default=NODE_TESTS)
    args = ap.parse_args()
    per_op, results = check(args.dir, args.v)
    for o in sorted(per_op):
        c = per_op[o]
        print(f"{o:24s} pass {c['pass']:3d}  refused {c['refused']:2d}  fail {c['fail']:2d}")
    status = collections.Counter(s for _, s, _ in results)
    print(f"{len(results)} node tests: {status['pass']} pass, {status['refused']} refused, "
          f"{status['fail']} fail")
    for t, s, d in results:
        if s != "pass":
            print(f"{s}: {t}: {d}")
    sys.exit(1 if status["fail"] else 0)


if __name__ == "__main__":
    main()
