#!/usr/bin/python3
"""Interleaved epoch timing: marginaudit's trainer against train_torch.py.

Runs the Go trainer (the binary of ./trainer/train/testdata/measure, or
several builds of it) and train_torch.py one after the other, reversing the
order in every other round, on the same training subset, thread count and
settings, so that the load of a shared machine falls on both alike. Prints every run's epoch times
as they come, then a Markdown table of the median seconds per epoch (of the
last epoch of each run: the first one of torch carries one-time start-up
costs), the same scaled to a full 60,000-image epoch, the ratio Go/torch, and
the same for the process's CPU time over the epoch's batches, which other
processes on a shared machine disturb less (with more than one thread it also
counts the time that idle pool threads spin).

  go build -o /tmp/measure ./trainer/train/testdata/measure
  /usr/bin/python3 bench/train/compare.py --go-bin /tmp/measure --threads 1,2 --rounds 3

Every line printed by both programs goes to --log as well (default: none).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCH = re.compile(r"^epoch (\d+): .*\| train ([0-9.]+) s")  # both programs' epoch lines
CPU = re.compile(r"\(CPU ([0-9.]+) s\)")
TEST_ACC = re.compile(r"test (?:loss [0-9.]+ )?acc ([0-9.]+)")


def run(cmd, log):
    """Runs cmd and returns [(epoch, train seconds, CPU seconds, test accuracy)] for epochs ≥ 1."""
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if log:
        log.write("$ " + " ".join(cmd) + "\n" + p.stdout + f"# exit {p.returncode}, {time.time() - t0:.1f} s wall\n")
        log.flush()
    if p.returncode != 0:
        sys.exit(f"compare: {' '.join(cmd)} failed with exit {p.returncode}:\n{p.stdout}")
    out = []
    for line in p.stdout.splitlines():
        m = EPOCH.match(line)
        if m and int(m.group(1)) > 0:
            acc, cpu = TEST_ACC.search(line), CPU.search(line)
            out.append((int(m.group(1)), float(m.group(2)), float(cpu.group(1)) if cpu else float("nan"),
                        float(acc.group(1)) if acc else float("nan")))
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--go-bin", required=True, action="append",
                    help="binary of ./trainer/train/testdata/measure; repeat as NAME=PATH to time several builds "
                         "(e.g. two commits) in the same session")
    ap.add_argument("--torch", default=os.path.join(HERE, "train_torch.py"))
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--cases", default="cnn,cnn-adv,mlp", help="comma-separated: cnn, cnn-adv, mlp, mlp-adv")
    ap.add_argument("--limit", type=int, default=5120, help="training images of standard epochs")
    ap.add_argument("--adv-limit", type=int, default=1280, help="training images of adversarial epochs")
    ap.add_argument("--test-limit", type=int, default=1000)
    ap.add_argument("--log", default="")
    a = ap.parse_args(argv)
    log = open(a.log, "a") if a.log else None
    gos = []  # (name, path)
    for b in a.go_bin:
        name, sep, path = b.partition("=")
        gos.append((name, path) if sep else ("go" if len(a.go_bin) == 1 else os.path.basename(b), b))

    results = {}  # (case, threads, program) -> [seconds of the last epoch of each run]
    cpus = {}  # the same, CPU seconds
    threads = [int(t) for t in a.threads.split(",")]
    cases = a.cases.split(",")
    for r in range(a.rounds):
        for th in threads:
            for case in cases:
                arch, adv = case.split("-")[0], case.endswith("-adv")
                limit = a.adv_limit if adv else a.limit
                order = [(name, [path, "-data", a.data, "-arch", arch, "-epochs", str(a.epochs), "-threads", str(th),
                                 "-limit", str(limit), "-test-limit", str(a.test_limit)] + (["-adv"] if adv else []))
                         for name, path in gos]
                order.append(("torch", [a.python, a.torch, "--data", a.data, "--arch", arch, "--epochs", str(a.epochs),
                                        "--threads", str(th), "--limit", str(limit), "--test-limit", str(a.test_limit)]
                              + (["--adv"] if adv else [])))
                if r % 2 == 1:
                    order.reverse()
                for impl, cmd in order:
                    ep = run(cmd, log)
                    results.setdefault((case, th, impl), []).append(ep[-1][1])
                    cpus.setdefault((case, th, impl), []).append(ep[-1][2])
                    print(f"round {r + 1} {case:8s} {th} thread(s) {impl:8s}: " +
                          ", ".join(f"{s:.2f} (CPU {c:.2f})" for _, s, c, _ in ep) +
                          f" s/epoch on {limit} images, test acc {ep[-1][3]:.4f}", flush=True)

    print()
    print("Median over the rounds of the last epoch's seconds (all rounds in brackets); 60k: scaled to a full epoch.")
    print()
    print("| case | threads | images | Go build | Go wall s | torch wall s | Go/torch wall | Go, 60k | torch, 60k "
          "| Go CPU s | torch CPU s | Go/torch CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v: ", ".join(f"{x:.2f}" for x in v)
    for case in cases:
        limit = a.adv_limit if case.endswith("-adv") else a.limit
        for th in threads:
            for name, _ in gos:
                g, t = results[(case, th, name)], results[(case, th, "torch")]
                gc, tc = cpus[(case, th, name)], cpus[(case, th, "torch")]
                gm, tm = statistics.median(g), statistics.median(t)
                gcm, tcm = statistics.median(gc), statistics.median(tc)
                scale = 60000 / limit
                print(f"| {case} | {th} | {limit} | {name} | {gm:.2f} ({fmt(g)}) | {tm:.2f} ({fmt(t)}) | **{gm / tm:.2f}** | "
                      f"{gm * scale:.0f} | {tm * scale:.0f} | {gcm:.2f} ({fmt(gc)}) | {tcm:.2f} ({fmt(tc)}) | {gcm / tcm:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
