#!/usr/bin/python3
"""Summarises onnxruntime profiles (Chrome-trace JSON) by operator and node.

onnxruntime's profiler (SessionOptions.EnableProfiling) writes one JSON file
per session: a list of events, among them one "model_run" per Run (category
Session) and one "<node>_kernel_time" per node per run (category Node, with
args.op_name). This prints, per file, the total run time and the kernel time
summed by operator type and by node, largest first.

  /usr/bin/python3 bench/train/ort_profile.py [--top 20] [--skip-runs 2] PROFILE.json...
"""

import argparse
import collections
import json
import sys


def summarise(path, top, skip):
    with open(path) as f:
        events = json.load(f)
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"), key=lambda e: e["ts"])
    if not runs:
        print(f"{path}: no runs")
        return
    # Skip the first runs (warm-up: allocation, kernel selection).
    t_from = runs[skip]["ts"] if len(runs) > skip else runs[0]["ts"]
    runs = [r for r in runs if r["ts"] >= t_from]
    total = sum(r["dur"] for r in runs)
    by_op, by_node = collections.Counter(), collections.Counter()
    op_of = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < t_from:
            continue
        node = e["name"][: -len("_kernel_time")]
        op = e.get("args", {}).get("op_name", "?")
        by_op[op] += e["dur"]
        by_node[node] += e["dur"]
        op_of[node] = op
    kernels = sum(by_op.values())
    n = len(runs)
    print(f"{path}: {n} runs, {total / n / 1000:.2f} ms per run, kernels {kernels / n / 1000:.2f} ms per run")
    print(f"  {'operator':28s} {'ms/run':>8s} {'share':>6s}")
    for op, d in by_op.most_common(top):
        print(f"  {op:28s} {d / n / 1000:8.2f} {d / total:6.1%}")
    print(f"  {'node':60s} {'operator':16s} {'ms/run':>8s} {'share':>6s}")
    for node, d in by_node.most_common(top):
        print(f"  {node[:60]:60s} {op_of[node][:16]:16s} {d / n / 1000:8.2f} {d / total:6.1%}")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--skip-runs", type=int, default=2, help="warm-up runs left out")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args(argv)
    for p in a.files:
        summarise(p, a.top, a.skip_runs)


if __name__ == "__main__":
    main(sys.argv[1:])
