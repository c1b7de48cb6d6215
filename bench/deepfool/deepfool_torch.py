#!/usr/bin/python3
"""DeepFool in PyTorch on the CPU, the baseline for auditor/attack's DeepFool.

Rebuilds an ONNX classifier of the fixture kind (a chain of Conv, Relu,
MaxPool, Flatten and Gemm nodes) as torch modules with the ONNX initializers
as weights, checks it against onnx's reference logits, attacks the images
that `go test ./auditor/attack -run TestDumpBenchImages -args -bench-dump DIR`
wrote, with the same step semantics as auditor/attack (Foolbox 3's), and
prints images/s, the mean margins and, image by image, how the margins
compare with the ones the Go implementation found.

Run from the repository root (see bench/deepfool/README.md):

    /usr/bin/python3 bench/deepfool/deepfool_torch.py --dir bench/deepfool/out

Semantics (as auditor/attack/doc.go): candidates = the top-k clean logits,
fixed, reference k_hat = the clean prediction; per step, for each candidate
f' = f_k - f_khat, w' = grad f_k - grad f_khat, d_k = |f'| / (||w'||_q + 1e-8)
(q = 2 for l2, 1 for linf); the smallest plus 1e-4; L2 step d w'/(||w'||_2 +
1e-8), Linf step d sign(w'); P += step; x = clip(x0 + (1 + overshoot) P);
an image stops once its prediction differs from k_hat. The implementation
is the straightforward one: one forward pass per step over the images still
in play (converged images leave the batch, as in the Go code), then one
backward pass per candidate (torch.autograd.grad with retain_graph), which is
better than Foolbox 3's one forward and backward pass per candidate. Images
that do not flip in 50 steps are retried from x0 + N(0, sigma^2) noise; the
noise does not come from the Go generator, so retried images are not
comparable image by image (the script says how many there are).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import torch_threads  # noqa: E402

torch_threads.cap(sys.argv[1:])  # before numpy and torch load

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnx.numpy_helper  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def torch_model(path):
    """The ONNX chain at path as an nn.Sequential with the same weights."""
    m = onnx.load(path)
    g = m.graph
    init = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in g.initializer}
    layers = []
    prev = [i.name for i in g.input if i.name not in init][0]
    for n in g.node:
        data = [i for i in n.input if i not in init]
        if data != [prev]:
            sys.exit(f"{path}: node {n.name} ({n.op_type}) does not continue a chain: {list(n.input)}")
        a = attrs(n)
        if n.op_type == "Conv":
            w = init[n.input[1]]
            pads = a.get("pads", [0, 0, 0, 0])
            if pads[:2] != pads[2:] or a.get("group", 1) != 1 or a.get("dilations", [1, 1]) != [1, 1]:
                sys.exit(f"{path}: Conv {n.name}: unsupported attributes {a}")
            conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=tuple(a.get("strides", [1, 1])),
                             padding=tuple(pads[:2]), bias=len(n.input) > 2)
            conv.weight.data.copy_(w)
            if len(n.input) > 2:
                conv.bias.data.copy_(init[n.input[2]])
            layers.append(conv)
        elif n.op_type == "Relu":
            layers.append(nn.ReLU())
        elif n.op_type == "MaxPool":
            pads = a.get("pads", [0, 0, 0, 0])
            layers.append(nn.MaxPool2d(tuple(a["kernel_shape"]), stride=tuple(a.get("strides", a["kernel_shape"])),
                                       padding=tuple(pads[:2]), ceil_mode=bool(a.get("ceil_mode", 0))))
        elif n.op_type == "Flatten":
            if a.get("axis", 1) != 1:
                sys.exit(f"{path}: Flatten {n.name}: axis {a['axis']}")
            layers.append(nn.Flatten())
        elif n.op_type == "Gemm":
            w = init[n.input[1]]
            if a.get("transB", 0) != 1 or a.get("transA", 0) != 0 or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                sys.exit(f"{path}: Gemm {n.name}: unsupported attributes {a}")
            lin = nn.Linear(w.shape[1], w.shape[0], bias=len(n.input) > 2)
            lin.weight.data.copy_(w)
            if len(n.input) > 2:
                lin.bias.data.copy_(init[n.input[2]])
            layers.append(lin)
        else:
            sys.exit(f"{path}: op {n.op_type} is not supported by this script")
        prev = n.output[0]
    return nn.Sequential(*layers).eval()


def deepfool(model, x0, norm, overshoot=0.02, steps=50, candidates=0, retries=10, sigma=0.01,
             lo=0.0, hi=1.0, batch=64, seed=0):
    """Returns margins (inf on failure), steps and retries per image."""
    n = x0.shape[0]
    with torch.no_grad():
        logits = torch.cat([model(x0[s:s + batch]) for s in range(0, n, batch)])
    k = logits.shape[1] if candidates == 0 else candidates
    order = torch.sort(logits, dim=1, descending=True, stable=True).indices[:, :k]
    margins = np.full(n, np.inf)
    iters = np.zeros(n, dtype=np.int64)
    tries = np.zeros(n, dtype=np.int64)
    gen = torch.Generator().manual_seed(seed)
    for s in range(0, n, batch):
        idx = torch.arange(s, min(n, s + batch))
        start = x0[idx].clone()
        while len(idx) > 0:
            # One attempt for the images in idx, from start.
            x = start.clone()
            total = torch.zeros_like(x)
            ref, cand = order[idx, 0], order[idx, 1:]
            active = torch.arange(len(idx))
            attempt = torch.zeros(len(idx), dtype=torch.int64)
            for _ in range(steps + 1):
                xa = x[active].clone().requires_grad_(True)
                f = model(xa)
                rows = torch.arange(len(active))
                flipped = f.argmax(dim=1) != ref[active]
                done = flipped
                if attempt[active[0]] == steps:  # the budget is spent: no further step
                    done = torch.ones_like(flipped)
                for j in torch.nonzero(done).flatten().tolist():
                    i = int(idx[active[j]])
                    if flipped[j]:
                        delta = (x[active[j]] - x0[i]).flatten().double()
                        margins[i] = float(delta.norm(2) if norm == "l2" else delta.abs().max())
                    iters[i] += int(attempt[active[j]])
                keep = ~done
                if not keep.any():
                    active = active[keep]
                    break
                fk = f[rows, ref[active]]
                grads, gaps = [], []
                for c in range(cand.shape[1]):
                    gap = f[rows, cand[active, c]] - fk
                    (g,) = torch.autograd.grad(gap.sum(), xa, retain_graph=c < cand.shape[1] - 1)
                    grads.append(g[keep])
                    gaps.append(gap.detach()[keep])
                active = active[keep]
                w = torch.stack(grads, 1).flatten(2)          # [a, k-1, D]
                gaps = torch.stack(gaps, 1)                   # [a, k-1]
                q = w.norm(p=2 if norm == "l2" else 1, dim=2)
                dist = gaps.abs() / (q + 1e-8)
                best = dist.argmin(dim=1)
                r = torch.arange(len(active))
                d = dist[r, best] + 1e-4
                wb = w[r, best]
                if norm == "l2":
                    step = (d / (wb.norm(dim=1) + 1e-8))[:, None] * wb
                else:
                    step = d[:, None] * wb.sign()
                total[active] += step.view_as(total[active])
                x[active] = (start[active] + (1 + overshoot) * total[active]).clamp(lo, hi)
                attempt[active] += 1
            # Images that never flipped in this attempt: retry from noise.
            failed = [j for j in range(len(idx)) if np.isinf(margins[int(idx[j])])]
            failed = [j for j in failed if tries[int(idx[j])] < retries]
            for j in failed:
                tries[int(idx[j])] += 1
            idx = idx[failed]
            if len(idx) > 0:
                noise = torch.randn(x0[idx].shape, generator=gen) * sigma
                start = (x0[idx] + noise).clamp(lo, hi)
    return margins, iters, tries


def read_images(path, n):
    """The first n images of a .npy file, or of an IDX file (gzipped) as
    float32 [n, 1, H, W] in [0, 1], as the trainer reads MNIST."""
    if path.endswith(".npy"):
        return np.load(path)[:n].astype(np.float32)
    import gzip
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[2] != 8 or data[3] != 3:
        sys.exit(f"{path}: not an IDX file of 3-D unsigned bytes")
    count, h, w = (int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
    pix = np.frombuffer(data, dtype=np.uint8, offset=16, count=count * h * w).reshape(count, 1, h, w)
    return (pix[:n].astype(np.float32) / 255).copy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=os.path.join(HERE, "out"), help="folder with NAME.x.npy from TestDumpBenchImages")
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--norms", default="l2,linf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per case (the best is reported)")
    ap.add_argument("--model", help="an ONNX classifier outside testdata/models (with --images; no reference logits to check)")
    ap.add_argument("--torchscript", help="instead of --model: a TorchScript classifier (torch.jit.save), any architecture, such as the ResNet-18 of bench/deepfool/resnet18.py (with --images)")
    ap.add_argument("--images", help="with --model or --torchscript: its images, a .npy file [N, ...] or an IDX .gz file (MNIST's format)")
    ap.add_argument("--n", type=int, default=500, help="with --model or --torchscript: the first N images")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.ones(2, 2) @ torch.ones(2, 2)  # loads the BLAS
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, BLAS {', '.join(torch_threads.blas()) or 'none loaded'}")
    if torch_threads.reference_blas():
        print("warning: torch multiplies matrices with the reference BLAS (libblas3), several times slower than "
              "OpenBLAS on Gemm-heavy models: install libopenblas0-pthread for a fair baseline", file=sys.stderr)
    cases = []
    if args.torchscript:
        cases.append((os.path.splitext(os.path.basename(args.torchscript))[0], torch.jit.load(args.torchscript).eval(), torch.from_numpy(read_images(args.images, args.n))))
    elif args.model:
        cases.append((os.path.splitext(os.path.basename(args.model))[0], torch_model(args.model), torch.from_numpy(read_images(args.images, args.n))))
    else:
        for name in args.models.split(","):
            model = torch_model(os.path.join(REPO, "testdata", "models", name + ".onnx"))
            fx = torch.from_numpy(np.load(os.path.join(REPO, "testdata", "models", name + ".x.npy")))
            want = np.load(os.path.join(REPO, "testdata", "models", name + ".logits.npy"))
            with torch.no_grad():
                err = np.abs(model(fx).numpy() - want).max()
            if err > 1e-5:
                sys.exit(f"{name}: rebuilt model's logits differ from {name}.logits.npy by {err}")
            cases.append((name, model, torch.from_numpy(np.load(os.path.join(args.dir, name + ".x.npy")))))
    for name, model, x in cases:
        for norm in args.norms.split(","):
            best = None
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                margins, iters, tries = deepfool(model, x, norm, batch=args.batch)
                dt = time.perf_counter() - t0
                best = dt if best is None else min(best, dt)
            ok = np.isfinite(margins)
            line = (f"{name} {norm}: {len(x) / best:.1f} images/s ({len(x)} images in {best:.2f} s), "
                    f"mean margin {margins[ok].mean():.6g}, {iters.mean():.3f} steps/image, "
                    f"{(tries > 0).sum()} retried, {(~ok).sum()} failed")
            gofile = os.path.join(args.dir, f"{name}.{norm}.npy")
            if os.path.exists(gofile):
                g = np.load(gofile)
                same = ok & np.isfinite(g[:, 0]) & (tries == 0) & (g[:, 2] == 0)
                rel = np.abs(margins[same] - g[same, 0]) / g[same, 0]
                line += (f"; vs Go: mean margin {g[np.isfinite(g[:, 0]), 0].mean():.6g}, "
                         f"{(iters[same] == g[same, 1]).mean() * 100:.1f}% same step count, "
                         f"relative margin difference median {np.median(rel):.2g}, "
                         f"99th percentile {np.quantile(rel, 0.99):.2g}, max {rel.max():.2g}")
            print(line, flush=True)


if __name__ == "__main__":
    main()
