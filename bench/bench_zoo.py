"""Spec-built torchvision models vs torchvision's own, forward+backward, side by side.

For each model named (default: efficientnet_b0 and convnext_tiny; ``--families``: one
builder per family of the zoo, the representatives of tests/test_zoo_exact.py) it builds
specs/<name>.yaml and torchvision.models.<name>(), loads torchvision's state_dict into
ours (strict), and times forward+backward in train mode, the two alternated step by
step with the same weights and input (warm-up first, then the order flips every step).
It prints the median seconds of each and the ratio ours / torchvision of the medians
(target ≤ 1.05 on the CPU, issue 16), of the best steps, and the median of the
step-by-step ratios (each step of ours over the torchvision step next to it: the figure
least moved by other load on a shared machine, as is --threads 1). A model whose spec
does not exist yet, or that torch refuses at this batch and size (train-mode BatchNorm
needs more than one value per channel: Inception v3 at 75×75 and batch 1), is skipped
with a message.

GoogLeNet and Inception v3 are built with ``aux_logits=False`` on both sides (the spec's
``--set aux_logits=false``): their auxiliary heads run only in training, where they make
the output a tuple and, for Inception, need a 17×17 grid (an input of 299 or more); the
benchmark is the network's trunk at any --size, the same work on both sides.
Inception's spec also gets ``in_size`` = --size, raised to 75 (its smallest input) if
below. Any tuple output is reduced to its first element (the main logits) before the
backward.

    .venv/bin/python bench/bench_zoo.py                                 # batch 8, 224², 5 reps
    .venv/bin/python bench/bench_zoo.py --threads 1 --reps 15           # on shared cores
    .venv/bin/python bench/bench_zoo.py efficientnet_b0 --batch 4 --size 160 --reps 9
    .venv/bin/python bench/bench_zoo.py --families --threads 1 --reps 9 # the issue-16 table
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import torch  # noqa: E402

from archspec.torch_backend import build_module  # noqa: E402
from bench_torch import _sync  # noqa: E402

ROOT = os.path.join(HERE, "..")
GOLDEN = os.path.join(ROOT, "tests", "golden", "torchvision-zoo.json")
#: each family's builder in --families, as tests/test_zoo_exact.py REPRESENTATIVE (a
#: family not named there: its alphabetically first builder with a spec)
REPRESENTATIVE = {"resnet": "resnet50", "efficientnet": "efficientnet_b0",
                  "regnet": "regnet_y_400mf", "convnext": "convnext_tiny",
                  "shufflenetv2": "shufflenet_v2_x1_0", "mobilenetv3": "mobilenet_v3_small",
                  "vgg": "vgg16", "squeezenet": "squeezenet1_0", "densenet": "densenet121",
                  "mobilenetv2": "mobilenet_v2", "mnasnet": "mnasnet1_0"}
#: builders benchmarked without their training-only auxiliary heads (see the docstring)
NO_AUX = {"googlenet", "inception_v3"}
#: the smallest input side a builder takes (Inception v3's three grid reductions)
MIN_SIZE = {"inception_v3": 75}


def family_representatives() -> list[str]:
    """One builder per zoo family that has a spec: the named one, else the first."""
    with open(GOLDEN) as f:
        zoo = json.load(f)["builders"]
    have = sorted(b for b in zoo if os.path.exists(os.path.join(ROOT, "specs", f"{b}.yaml")))
    out = []
    for family in sorted({zoo[b]["family"] for b in have}):
        named = REPRESENTATIVE.get(family)
        out.append(named if named in have else min(b for b in have if zoo[b]["family"] == family))
    return out


def _logits(out: object) -> torch.Tensor:
    """The main output: the first element of a tuple or named tuple (GoogLeNetOutputs,
    InceptionOutputs, a spec's (logits, aux…)), else the tensor itself."""
    return out[0] if isinstance(out, tuple) else out


def time_pair(ours: torch.nn.Module, ref: torch.nn.Module, x: torch.Tensor, reps: int,
              device: str) -> tuple[list[float], list[float]]:
    """Seconds of each forward+backward step of (ours, ref), alternated so that load on
    a shared machine falls on both alike; one warm-up step each is not counted."""
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.to(device).train(), ref.to(device).train()
    x = x.to(device)

    def step(m: torch.nn.Module) -> float:
        m.zero_grad(set_to_none=True)
        _sync(device)
        t = time.perf_counter()
        _logits(m(x)).sum().backward()
        _sync(device)
        return time.perf_counter() - t

    step(ours), step(ref)
    a: list[float] = []
    b: list[float] = []
    for i in range(reps):
        for m, acc in ((ours, a), (ref, b)) if i % 2 == 0 else ((ref, b), (ours, a)):
            acc.append(step(m))
    return a, b


def bench_one(name: str, batch: int, size: int, reps: int, device: str
              ) -> tuple[list[float], list[float]] | None:
    """The step times of (ours, torchvision), or None when the spec or the torchvision
    builder is missing (said on stderr)."""
    import torchvision
    path = os.path.join(ROOT, "specs", f"{name}.yaml")
    if not os.path.exists(path):
        print(f"skipping {name}: no spec specs/{name}.yaml yet", file=sys.stderr)
        return None
    ctor = getattr(torchvision.models, name, None)
    if ctor is None:
        print(f"skipping {name}: torchvision.models has no {name}", file=sys.stderr)
        return None
    if size < MIN_SIZE.get(name, 0):
        size = MIN_SIZE[name]
        print(f"{name}: at {size}×{size}, its smallest input", file=sys.stderr)
    kwargs: dict = {"aux_logits": False} if name in NO_AUX else {}
    overrides = dict(kwargs)
    if name == "inception_v3":
        overrides["in_size"] = size
    torch.manual_seed(0)
    ref = ctor(**kwargs)
    with torch.device("meta"):
        ours = build_module(path, overrides or None)
    ours = ours.to_empty(device="cpu")       # weights come from ref (time_pair loads them)
    x = torch.randn(batch, 3, size, size)
    return time_pair(ours, ref, x, reps, device)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", default=[],
                    help="torchvision model names with a spec of the same name")
    ap.add_argument("--families", action="store_true",
                    help="one builder per zoo family (tests/test_zoo_exact.py's representatives)"
                         "; with model names, only those of them")
    ap.add_argument("--batch", type=int, default=8, help="batch size")
    ap.add_argument("--size", type=int, default=224, help="input height and width")
    ap.add_argument("--reps", type=int, default=5, help="timed steps per model (alternated)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.models or ["efficientnet_b0", "convnext_tiny"]
    if args.families:
        reps = family_representatives()
        names = [n for n in reps if n in args.models] if args.models else reps
    rows = []
    for name in names:
        try:
            r = bench_one(name, args.batch, args.size, args.reps, args.device)
        except ValueError as e:     # train-mode BatchNorm on 1 value per channel, and kin
            print(f"skipping {name}: {e} (a larger --batch or --size)", file=sys.stderr)
            continue
        if r is not None:
            rows.append((name, *r))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}, "
          f"batch {args.batch}×3×{args.size}², {args.reps} alternated fwd+bwd steps each "
          f"(train mode)")
    head = ("model", "ours s (median)", "torchvision s", "ratio (medians)", "ratio (bests)",
            "ratio (paired)")
    widths = [20] + [max(len(h), 16) for h in head[1:]]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for name, a, b in rows:
        ma, mb = statistics.median(a), statistics.median(b)
        paired = statistics.median(x / y for x, y in zip(a, b))
        cells = (name, f"{ma:.3f}", f"{mb:.3f}", f"{ma / mb:.3f}", f"{min(a) / min(b):.3f}",
                 f"{paired:.3f}")
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
