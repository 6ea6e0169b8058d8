"""Render time of ResNet-152: archspec render vs torchview, side by side in one run.

    .venv/bin/python bench/bench_render.py [--repeat 3] [--spec specs/resnet152.yaml]

For each level of detail (every op; collapsed to blocks; collapsed to stages)
both tools draw the same network, torchvision's ``resnet152``, to SVG with the
same ``dot`` program; the table gives the median wall time of ``--repeat`` runs,
split into building the graph and laying it out, and the node count of the DOT.

* archspec: load + compile the spec (no torch), :func:`archspec.render.to_dot`,
  then ``dot -Tsvg``.
* torchview (``pip install torchview``; a benchmark-only dependency): trace
  ``torchvision.models.resnet152()`` with a 1×3×224×224 input (``draw_graph``),
  then ``dot -Tsvg`` on its ``visual_graph``. Its depth counts module nesting
  (1 = layer1..4 as boxes, 2 = each Bottleneck a box, inf = every op).

Only ratios measured in the same run are meaningful; absolute times depend on
the machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def dot_svg(source: str) -> bytes:
    return subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True,
                          check=True).stdout


def count_nodes(source: str) -> int:
    """Node statements in DOT text (not edges, not default-attribute lines)."""
    n = 0
    for line in source.splitlines():
        t = line.strip()
        if "[" in t and "->" not in t and not t.startswith(("graph ", "node ", "edge ")):
            n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--spec", default=os.path.join(ROOT, "specs", "resnet152.yaml"))
    args = ap.parse_args()

    import archspec
    from archspec.render import to_dot

    levels = [("every op", None, float("inf")), ("blocks collapsed", 2, 2),
              ("stages collapsed", 1, 1)]
    try:
        import torch
        import torchvision
        from torchview import draw_graph
        model = torchvision.models.resnet152().eval()
        have_tv = True
    except ImportError as e:  # pragma: no cover - depends on the environment
        print(f"torchview unavailable ({e}); timing archspec only")
        have_tv = False

    dot_v = subprocess.run(["dot", "-V"], capture_output=True, text=True).stderr.strip()
    print(f"ResNet-152 to SVG, median of {args.repeat}; {dot_v}; "
          f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    head = f"{'detail':<18} {'tool':<10} {'nodes':>6} {'graph s':>8} {'layout s':>9} {'total s':>8}"
    print(head)
    print("-" * len(head))
    ratios = []
    for name, depth, tv_depth in levels:
        def build_archspec() -> str:
            g = archspec.compile_graph(archspec.load_spec(args.spec))
            return to_dot(g, depth).source
        t_graph, src = timed(build_archspec, args.repeat)
        t_layout, _ = timed(lambda: dot_svg(src), args.repeat)
        nodes = count_nodes(src)
        a_total = t_graph + t_layout
        print(f"{name:<18} {'archspec':<10} {nodes:>6} {t_graph:>8.3f} {t_layout:>9.3f} "
              f"{a_total:>8.3f}")
        if have_tv:
            def build_tv() -> str:
                with torch.no_grad():
                    cg = draw_graph(model, input_size=(1, 3, 224, 224), depth=tv_depth,
                                    expand_nested=True, device="cpu")
                return cg.visual_graph.source
            t_graph, tsrc = timed(build_tv, args.repeat)
            t_layout, _ = timed(lambda: dot_svg(tsrc), args.repeat)
            nodes = count_nodes(tsrc)
            t_total = t_graph + t_layout
            print(f"{'':<18} {'torchview':<10} {nodes:>6} {t_graph:>8.3f} {t_layout:>9.3f} "
                  f"{t_total:>8.3f}")
            ratios.append((name, t_total / a_total))
    if ratios:
        print()
        for name, r in ratios:
            print(f"{name}: torchview takes {r:.2f}× archspec's total time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
