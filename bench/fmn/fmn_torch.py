#!/usr/bin/python3
"""FMN and DDN in plain PyTorch, the baseline for auditor/attack's FMN refinement.

Rebuilds a checkpoint of the repository's trainer (a chain of Conv, Relu,
MaxPool, Flatten and Gemm nodes) as torch modules with the ONNX
initializers as weights (bench/deepfool/deepfool_torch.py's torch_model),
attacks the images that `go run ./bench/fmn -out PREFIX` wrote
(PREFIX.x.npy) away from their clean predictions (PREFIX.pred.npy) with
FMN (L2 and Linf) and DDN (L2), 100 steps each from the clean images, and
compares, image by image, the best margin these find with DeepFool's and
the Go refinement's (PREFIX.NORM.deepfool.npy, PREFIX.NORM.fmnSTEPS.npy).

Run from the repository root (see bench/fmn/README.md):

    /usr/bin/python3 bench/fmn/fmn_torch.py --model CKPT.onnx --prefix bench/fmn/out/NAME

FMN: Pintor, Roli, Brendel, Biggio, "Fast Minimum-norm Adversarial Attacks
through Adaptive Norm Constraints", NeurIPS 2021 (Algorithm 1, with the
authors' defaults: gamma 0.05 -> 0.001 and alpha alpha0 -> alpha0/100, both
cosine-annealed; the step is alpha * g / ||g||_2 on the logit difference
max_{j != y} z_j - z_y). The paper and the authors' code project onto the
eps-ball, then clip to [0, 1] ("fmn_paper"); from the clean image this
stalls on most MNIST images, where the clip undoes the step on the pixels at
0 or 1 and the point settles inside the ball, short of the boundary, with
the same eps every step. "fmn" clips first and then projects (the clipped
point scaled toward x0 stays in the box), which reaches the ball's surface;
for Linf "fmn_a10" also starts at alpha0 = 10. DDN: Rony et al., "Decoupling Direction and Norm for Efficient
Gradient-Based L2 Adversarial Attacks", CVPR 2019 (SGD on the
cross-entropy with the normalised gradient, lr 1 cosine-annealed to 0.01,
the norm eps scaled by 1 -/+ gamma = 0.05, start eps = 1, no quantisation,
since the margins here are of continuous pixels). Every margin counted is
the norm of a point a separate forward pass confirms as misclassified.
"""

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import torch_threads  # noqa: E402

torch_threads.cap(sys.argv[1:])  # before numpy and torch load

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "deepfool"))
from deepfool_torch import torch_model  # noqa: E402


def norms(delta, norm):
    flat = delta.flatten(1).double()
    return flat.norm(p=2, dim=1) if norm == "L2" else flat.abs().max(dim=1).values


def logit_diff(logits, labels):
    """max_{j != y} z_j - z_y: positive where the prediction is not y."""
    other = logits.clone()
    other[torch.arange(len(labels)), labels] = -math.inf
    return other.max(dim=1).values - logits[torch.arange(len(labels)), labels]


def cosine(init, final, i, steps):
    return final + (init - final) * (1 + math.cos(math.pi * i / steps)) / 2


def fmn(model, x0, y, norm, steps=100, alpha0=1.0, gamma0=0.05, gamma_final=0.001, clip_first=True):
    n = len(x0)
    view = (n,) + (1,) * (x0.dim() - 1)
    delta = torch.zeros_like(x0, requires_grad=True)
    eps = torch.full((n,), math.inf, dtype=x0.dtype)
    worst = norms(torch.maximum(x0, 1 - x0), norm).to(x0.dtype)
    best = torch.full((n,), math.inf, dtype=torch.float64)
    best_adv = x0.clone()
    found = torch.zeros(n, dtype=torch.bool)
    for i in range(steps):
        gamma = cosine(gamma0, gamma_final, i, steps)
        alpha = cosine(alpha0, alpha0 / 100, i, steps)
        x = x0 + delta
        logits = model(x)
        loss = logit_diff(logits, y)
        g = torch.autograd.grad(loss.sum(), delta)[0]
        with torch.no_grad():
            dn = norms(delta, norm)
            adv = logits.argmax(1) != y
            better = adv & (dn < best)
            best = torch.where(better, dn, best)
            best_adv[better] = x[better].detach()
            found |= adv
            dual = g.flatten(1).norm(p=2 if norm == "L2" else 1, dim=1).clamp_min(1e-12)
            to_boundary = loss.abs() / dual
            eps = torch.where(adv, torch.minimum(eps * (1 - gamma), best.to(eps.dtype)),
                              torch.where(found, eps * (1 + gamma), dn.to(eps.dtype) + to_boundary))
            eps = torch.minimum(eps, worst)
            g = g / g.flatten(1).norm(p=2, dim=1).clamp_min(1e-12).view(view)
            delta += alpha * g
            if clip_first:
                delta.copy_((x0 + delta).clamp(0, 1) - x0)
            if norm == "L2":
                dn = delta.flatten(1).norm(p=2, dim=1)
                delta *= torch.where(dn > eps, eps / dn.clamp_min(1e-12), torch.ones_like(dn)).view(view)
            else:
                delta.copy_(torch.maximum(torch.minimum(delta, eps.view(view)), -eps.view(view)))
            if not clip_first:
                delta.copy_((x0 + delta).clamp(0, 1) - x0)
    return best_adv


def ddn(model, x0, y, steps=100, gamma=0.05, init_norm=1.0):
    n = len(x0)
    view = (n,) + (1,) * (x0.dim() - 1)
    delta = torch.zeros_like(x0, requires_grad=True)
    eps = torch.full((n,), init_norm, dtype=x0.dtype)
    worst = norms(torch.maximum(x0, 1 - x0), "L2").to(x0.dtype)
    best = torch.full((n,), math.inf, dtype=torch.float64)
    best_adv = x0.clone()
    for i in range(steps):
        lr = cosine(1.0, 0.01, i, steps)
        x = x0 + delta
        logits = model(x)
        loss = F.cross_entropy(logits, y, reduction="none")
        g = torch.autograd.grad(loss.sum(), delta)[0]
        with torch.no_grad():
            dn = norms(delta, "L2")
            adv = logits.argmax(1) != y
            better = adv & (dn < best)
            best = torch.where(better, dn, best)
            best_adv[better] = x[better].detach()
            gn = g.flatten(1).norm(p=2, dim=1)
            g = g / gn.clamp_min(1e-12).view(view)
            zero = gn == 0
            if zero.any():
                g[zero] = torch.randn_like(g[zero])
            delta += lr * g  # ascent on the cross-entropy
            eps = torch.minimum(eps * torch.where(adv, 1 - gamma, 1 + gamma), worst)
            delta *= (eps / delta.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)).view(view)
            delta.copy_((x0 + delta).clamp(0, 1) - x0)
    return best_adv


def confirmed(model, x0, adv, y, norm):
    """Margins of the points a forward pass confirms (inf elsewhere)."""
    with torch.no_grad():
        ok = model(adv).argmax(1) != y
    m = norms(adv - x0, norm).numpy()
    m[~ok.numpy()] = np.inf
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="the checkpoint (.onnx) the Go side attacked")
    ap.add_argument("--prefix", required=True, help="PREFIX of the files `go run ./bench/fmn -out PREFIX` wrote")
    ap.add_argument("--norms", default="L2,Linf")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--paper", action="store_true", help="also run FMN with the paper's order (project, then clip)")
    ap.add_argument("--compare-only", action="store_true",
                    help="skip the attacks: compare with the margins a previous run saved (PREFIX.NORM.torch.npz)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = torch_model(args.model)
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(np.load(args.prefix + ".x.npy"))
    pred = torch.from_numpy(np.load(args.prefix + ".pred.npy")).long()
    with torch.no_grad():
        tpred = model(x).argmax(1)
    if (tpred != pred).any():
        print(f"warning: the torch twin predicts differently on {(tpred != pred).sum().item()} images")
    print(f"{args.model}: {len(x)} images, {args.steps} steps, {args.threads} threads")
    for norm in args.norms.split(","):
        attacks = {"fmn": lambda xb, yb: fmn(model, xb, yb, norm, args.steps)}
        if args.paper:
            attacks["fmn_paper"] = lambda xb, yb: fmn(model, xb, yb, norm, args.steps, clip_first=False)
        if norm == "Linf":
            attacks["fmn_a10"] = lambda xb, yb: fmn(model, xb, yb, norm, args.steps, alpha0=10.0)
        else:
            attacks["ddn"] = lambda xb, yb: ddn(model, xb, yb, args.steps)
        saved = f"{args.prefix}.{norm}.torch.npz"
        if args.compare_only:
            found = dict(np.load(saved))
        else:
            found = {}
            for name, attack in attacks.items():
                t0 = time.time()
                adv = torch.cat([attack(x[s:s + args.batch], pred[s:s + args.batch]) for s in range(0, len(x), args.batch)])
                dt = time.time() - t0
                found[name] = confirmed(model, x, adv, pred, norm)
                print(f"{norm} torch {name}: {dt:.2f} s")
            np.savez(saved, **found)
        for name, m in found.items():
            ok = np.isfinite(m)
            print(f"{norm} torch {name}: mean margin {m[ok].mean():.6g} over {ok.sum()} flipped images")
        best = np.minimum.reduce(list(found.values()))
        ok = np.isfinite(best)
        print(f"{norm} best of torch {'/'.join(found)}: mean {best[ok].mean():.6g} over {ok.sum()} images")
        ours = {"deepfool": np.load(f"{args.prefix}.{norm}.deepfool.npy").astype(np.float64)}
        for f in sorted(os.listdir(os.path.dirname(args.prefix) or ".")):
            stem = os.path.basename(args.prefix) + f".{norm}.fmn"
            if f.startswith(stem) and f.endswith(".npy"):
                ours["refined " + f[len(stem):-4] + " steps"] = np.load(os.path.join(os.path.dirname(args.prefix), f)).astype(np.float64)
        # The best of everything, the Go refinements included.
        overall = np.minimum.reduce([best] + [m for name, m in ours.items() if name != "deepfool"])
        for name, m in sorted(ours.items(), key=lambda kv: (len(kv[0]), kv[0])):
            both = ok & np.isfinite(m)
            ratio = m[both].mean() / best[both].mean()
            below = (m[both] < best[both] * (1 - 1e-6)).mean()
            print(f"{norm} go {name}: mean {m[both].mean():.6g}, ratio to torch's best {ratio:.4f} "
                  f"(per image median {np.median(m[both] / best[both]):.4f}), below it on {100 * below:.1f} % "
                  f"of {both.sum()} images; ratio to the best of all {m[both].mean() / overall[both].mean():.4f}")

if __name__ == "__main__":
    main()
