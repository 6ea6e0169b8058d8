"""Spec-built modules vs hand-written references, measured side by side in one run.

For torchvision's resnet50 and googlenet (aux heads on, train mode) and the WRN-28-10 of pystyle.info's 「Pytorch – Wide ResNet の
仕組みと実装について解説」 (tests/references/wrn_pystyle.py) it prints, as ratios
spec ÷ reference (issue 14's targets: fwd+bwd ≤ 1.03, construction ≤ 1.1 — see
bench/bench_build.py for the alternated construction figures —, graph breaks 0):
  - forward+backward time in train mode (eager; CPU, and CUDA when available),
    the two models timed alternately with the same weights and input, median of N;
  - module construction time (ours from the spec path, and from a compiled graph);
  - torch.compile graph breaks (torch._dynamo.explain) of the spec-built module.

    .venv/bin/python bench/bench_torch.py            # issue sizes: rn50 16×224², WRN 64×32²
    .venv/bin/python bench/bench_torch.py --small    # CPU-friendly: rn50 4×112², WRN 8×32²
    .venv/bin/python bench/bench_torch.py --small --threads 1 --reps 9   # a shared machine
    .venv/bin/python bench/bench_torch.py --small --only googlenet
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import torch  # noqa: E402

import archspec  # noqa: E402
from archspec.torch_backend import build_module  # noqa: E402


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def fwd_bwd_ratio(ours: torch.nn.Module, ref: torch.nn.Module, x: torch.Tensor, reps: int,
                  device: str) -> tuple[float, float, float, float]:
    """Seconds of forward+backward for (ours, ref), alternated: best of each, the ratio of
    the bests (robust to other load on a shared machine) and the ratio of the medians."""
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.to(device).train(), ref.to(device).train()
    x = x.to(device)

    def step(m: torch.nn.Module) -> float:
        m.zero_grad(set_to_none=True)
        _sync(device)
        t = time.perf_counter()
        out = m(x)
        out = out[0] if isinstance(out, tuple) else out
        out.float().sum().backward()
        _sync(device)
        return time.perf_counter() - t

    step(ours), step(ref)                                  # warm-up
    a, b = [], []
    for i in range(reps):
        for m, acc in ((ours, a), (ref, b)) if i % 2 == 0 else ((ref, b), (ours, a)):
            acc.append(step(m))
    ta, tb = min(a), min(b)
    return ta, tb, ta / tb, statistics.median(a) / statistics.median(b)


def median_time(fn: Callable[[], object], reps: int) -> float:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def graph_breaks(m: torch.nn.Module, x: torch.Tensor) -> int:
    import torch._dynamo as dynamo
    dynamo.reset()
    n = dynamo.explain(m.eval())(x).graph_break_count
    dynamo.reset()
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="CPU-friendly batch sizes")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions per model")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--only", nargs="*", help="model names to measure (resnet50, googlenet, "
                    "WRN-28-10)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    import torchvision
    from references.wrn_pystyle import WideResNet

    rn_b, rn_s = (4, 112) if args.small else (16, 224)
    wrn_b = 8 if args.small else 64
    reps = args.reps or (10 if args.small else 10)
    cases = [
        ("resnet50", f"{rn_b}×3×{rn_s}²", "specs/resnet50.yaml", torchvision.models.resnet50,
         (rn_b, 3, rn_s, rn_s)),
        ("googlenet", f"{rn_b}×3×{rn_s}²", "specs/googlenet.yaml",
         lambda: torchvision.models.googlenet(aux_logits=True, transform_input=False,
                                              init_weights=True), (rn_b, 3, rn_s, rn_s)),
        ("WRN-28-10", f"{wrn_b}×3×32²", "specs/wrn-28-10.yaml", lambda: WideResNet(28, 10),
         (wrn_b, 3, 32, 32)),
    ]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for name, size, path, ctor, shape in cases:
        if args.only and name not in args.only:
            continue
        g = archspec.compile_graph(archspec.load_spec(path))
        t_ref = median_time(ctor, 3)
        t_path = median_time(lambda: build_module(path), 3)
        t_graph = median_time(lambda: build_module(g), 3)
        ours, ref = build_module(path), ctor()
        x = torch.randn(*shape)
        breaks = graph_breaks(ours, x[:2])
        for dev in devices:
            ta, tb, r, rmed = fwd_bwd_ratio(ours, ref, x, reps, dev)
            rows.append((name, size, dev, ta, tb, r, rmed, t_path / t_ref, t_graph / t_ref,
                         breaks))
        ours.cpu(), ref.cpu()
    head = ("model", "batch", "device", "spec s", "ref s", "fwd+bwd ratio", "(medians)",
            "build ratio (path)", "build ratio (graph)", "graph breaks")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of {reps} "
          f"alternated fwd+bwd steps (train mode); build: median of 3 constructions")
    widths = [max(len(h), 12) for h in head]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for r in rows:
        cells = (r[0], r[1], r[2], f"{r[3]:.3f}", f"{r[4]:.3f}", f"{r[5]:.3f}", f"{r[6]:.3f}",
                 f"{r[7]:.2f}", f"{r[8]:.2f}", str(r[9]))
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
