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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,2500,5000,10000")
    ap.add_argument("--kinds", default="concat,chain")
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
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
