"""Build and render time against op count: a wide concat and a chain.

    .venv/bin/python bench/bench_scaling.py [--sizes 1000,2500,5000,10000] [--timeout 300]

Each spec is generated into a temporary folder: a ``for`` loop of N ``relu`` layers
that all read the input, joined by one N-input ``concat`` ("concat"), or N ``relu``
layers each reading the one before ("chain"). Every command is run as the real CLI
(``python -m archspec``), one process per measurement, so start-up (importing torch,
about 2-4 s) is included. Columns:

* ``build``: wall time of ``archspec build`` (compile, torch module, dummy forward,
  model.py, weights, summary; graph.svg only when dot can lay it out), and the
  ``built in`` time it prints (compile + torch module, start-up excluded);
* ``render dot``: ``archspec render --format dot`` (the DOT text, no layout);
* ``render svg``: ``archspec render`` to SVG with Graphviz (refused, exit 2, when the
  diagram is wider than :data:`archspec.render.dot.MAX_RANK_WIDTH`).

With ``--front-end`` it measures only the front end, in this process and without torch:
load + compile (expand, shapes, counts) of the same specs and of a residual network of
8-op blocks (bench_check's generated spec), best of 3 cold runs (the process's parse and
block-instance caches cleared before each), as milliseconds per op; a compile
linear in ops keeps that column flat. Measured (issue 15, 2 shared cores, load ~6;
``--front-end --sizes 100,1000,4000``; base a8b6154 and this branch in one run; a
loaded machine makes single rows jump by 2×, so read the columns, not one row):

=========  =====  ===============  ===============
spec       ops    base ms/op       now ms/op
=========  =====  ===============  ===============
concat     101    0.094            0.059
concat     1001   0.084            0.057
concat     4001   0.084            0.062
chain      100    0.087            0.025
chain      1000   0.067            0.032
chain      4000   0.038            0.045
resblocks  100    0.210            0.085
resblocks  996    0.069            0.026
resblocks  3996   0.069            0.021
=========  =====  ===============  ===============

Only times from the same run are comparable; the machine's load changes them.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spec_text(kind: str, n: int) -> str:
    """A spec of ``n`` relus, side by side into one concat, or in a chain."""
    lines = [f"name: {kind}{n}", "input: {shape: [1, 4, 4]}", "layers:", "  - for: i",
             f"    in: range({n})", "    layers:"]
    if kind == "concat":
        lines.append('      - "r{i}": {op: relu, from: input}')
        lines.append("  - cat: {op: concat, from: [%s]}" % ", ".join(f"r{i}" for i in range(n)))
    else:
        lines.append('      - "r{i}": {op: relu}')
    return "\n".join(lines) + "\n"


def run(args: list[str], timeout: float) -> tuple[str, str]:
    """(wall time or 'timeout'/'refused', stdout+stderr) of one archspec command."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", "archspec", *args], capture_output=True,
                           text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return f">{timeout:.0f}s", ""
    wall = time.perf_counter() - t0
    out = p.stdout + p.stderr
    if p.returncode == 2:
        return f"refused {wall:.1f}s", out
    if p.returncode != 0:
        return f"exit {p.returncode}", out
    return f"{wall:.1f}s", out


def front_end(sizes: list[int], kinds: list[str]) -> None:
    """Load + compile in this process (no torch): best of 3, in ms per op."""
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import archspec
    import archspec.graph
    from bench_check import generated_spec
    print(f"{'spec':<10} {'ops':>6} {'compile':>10} {'ms/op':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds + ["resblocks"]:
            for n in sizes:
                text = generated_spec(max(1, (n - 4) // 8)) if kind == "resblocks" else \
                    spec_text(kind, n)
                spec = os.path.join(tmp, f"{kind}{n}.yaml")
                with open(spec, "w", encoding="utf-8") as fh:
                    fh.write(text)
                best, ops = float("inf"), 0
                for _ in range(3):
                    clear = getattr(archspec.graph, "clear_caches", None)
                    if clear is not None:   # cold, as a fresh process loads and compiles
                        clear()
                    t0 = time.perf_counter()
                    g = archspec.compile_graph(archspec.load_spec(spec))
                    best = min(best, time.perf_counter() - t0)
                    ops = g.number_of_nodes() - 1
                print(f"{kind:<10} {ops:>6} {best * 1e3:>8.1f}ms {best * 1e3 / ops:>7.3f}",
                      flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,2500,5000,10000")
    ap.add_argument("--kinds", default="concat,chain")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--front-end", action="store_true",
                    help="time load + compile in-process (no torch), in ms per op")
    a = ap.parse_args()
    if a.front_end:
        front_end([int(x) for x in a.sizes.split(",")], a.kinds.split(","))
        return 0
    print(f"{'spec':<14} {'ops':>6} {'build':>9} {'built in':>9} {'render dot':>11} "
          f"{'render svg':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in a.kinds.split(","):
            for n in map(int, a.sizes.split(",")):
                spec = os.path.join(tmp, f"{kind}{n}.yaml")
                with open(spec, "w", encoding="utf-8") as fh:
                    fh.write(spec_text(kind, n))
                build, out = run(["build", spec, "-o", os.path.join(tmp, f"b{kind}{n}")],
                                 a.timeout)
                m = re.search(r"built in ([0-9.]+)s", out)
                dot, _ = run(["render", spec, "--format", "dot", "-o",
                              os.path.join(tmp, "g.dot")], a.timeout)
                svg, _ = run(["render", spec, "-o", os.path.join(tmp, "g.svg")], a.timeout)
                ops = n + (2 if kind == "concat" else 1)
                print(f"{kind:<14} {ops:>6} {build:>9} {(m.group(1) + 's') if m else '-':>9} "
                      f"{dot:>11} {svg:>14}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
