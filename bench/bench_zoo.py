"""Spec-built torchvision models vs torchvision's own, forward+backward, side by side.

For each model named (default: efficientnet_b0 and convnext_tiny) it builds
specs/<name>.yaml and torchvision.models.<name>(), loads torchvision's state_dict into
ours (strict), and times forward+backward in train mode, the two alternated step by
step with the same weights and input (warm-up first, then the order flips every step).
It prints the median seconds of each and the ratio ours / torchvision of the medians
(target ≤ 1.05 on the CPU), of the best steps, and the median of the step-by-step
ratios (each step of ours over the torchvision step next to it: the figure least moved
by other load on a shared machine, as is --threads 1). A model whose spec does not
exist yet is skipped with a message.

    .venv/bin/python bench/bench_zoo.py                                 # batch 8, 224², 5 reps
    .venv/bin/python bench/bench_zoo.py --threads 1 --reps 15           # on shared cores
    .venv/bin/python bench/bench_zoo.py efficientnet_b0 --batch 4 --size 160 --reps 9
"""
from __future__ import annotations

import argparse
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
        m(x).sum().backward()
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
    torch.manual_seed(0)
    ref = ctor()
    with torch.device("meta"):
        ours = build_module(path)
    ours = ours.to_empty(device="cpu")       # weights come from ref (time_pair loads them)
    x = torch.randn(batch, 3, size, size)
    return time_pair(ours, ref, x, reps, device)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", default=["efficientnet_b0", "convnext_tiny"],
                    help="torchvision model names with a spec of the same name")
    ap.add_argument("--batch", type=int, default=8, help="batch size")
    ap.add_argument("--size", type=int, default=224, help="input height and width")
    ap.add_argument("--reps", type=int, default=5, help="timed steps per model (alternated)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        r = bench_one(name, args.batch, args.size, args.reps, args.device)
        if r is not None:
            rows.append((name, *r))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}, "
          f"batch {args.batch}×3×{args.size}², {args.reps} alternated fwd+bwd steps each "
          f"(train mode)")
    head = ("model", "ours s (median)", "torchvision s", "ratio (medians)", "ratio (bests)",
            "ratio (paired)")
    widths = [max(len(h), 16) for h in head]
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
