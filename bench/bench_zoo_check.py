"""Whole-process `archspec check` time against graph size, over the torchvision zoo.

    .venv/bin/python bench/bench_zoo_check.py                          # all 68, 3 runs each
    .venv/bin/python bench/bench_zoo_check.py --runs 5 --plot /tmp/zoo-check.png
    .venv/bin/python bench/bench_zoo_check.py --only resnet18 alexnet --runs 1

For every builder of tests/golden/torchvision-zoo.json that has a spec, it runs
`python -m archspec check <builder>` as a fresh process --runs times (the median is
reported: what a user waits, interpreter start and imports included) and counts the ops
of the builder's graph (``archspec.compile_graph``'s nodes less the input, the figure
`archspec summary` prints as "Ops"). It prints a table sorted by ops, a least-squares
line ``ms = a + b·ops`` (b is the front end's cost per op, a the fixed cost of a
process), and writes a scatter plot with that line to --plot (a PNG; matplotlib's Agg
backend). Why: issue 16 wants check on the largest builder by params, regnet_y_128gf,
under 1 s for the whole process; the zoo spans 22 ops (alexnet) to 1,092
(efficientnet_v2_l), so the slope says how much of a check is the graph's size and
how much the fixed start-up cost.

It asserts nothing: a report, not a gate (bench/bench_check.py is the gate on 1 s). The
plot is generated output and goes under bench/results/ by default, which .gitignore
leaves out; docs/images/ holds only the diagrams scripts/make_docs_images.sh makes.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "torchvision-zoo.json"


def builders(only: list[str] | None) -> list[tuple[str, str]]:
    """(builder, family) of every zoo builder with a spec, or of those named by --only
    (an unknown name is an error: a typo should not silently shrink the report)."""
    zoo = json.loads(GOLDEN.read_text())["builders"]
    names = only if only else sorted(zoo)
    unknown = [n for n in names if n not in zoo]
    if unknown:
        sys.exit(f"not torchvision zoo builders: {', '.join(unknown)} (see {GOLDEN.name})")
    return [(n, zoo[n]["family"]) for n in names if (ROOT / "specs" / f"{n}.yaml").exists()]


def op_count(builder: str) -> int:
    """Ops of the builder's graph: every node but the input (as `archspec summary`)."""
    import archspec
    g = archspec.compile_graph(archspec.load_spec(builder))
    return sum(1 for _, d in g.nodes(data=True) if d.get("op") != "input")


def check_ms(builder: str, runs: int) -> float:
    """Median wall milliseconds of a fresh `python -m archspec check <builder>` process."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "archspec", "check", "-q", builder],
                           cwd=ROOT, capture_output=True, text=True)
        times.append((time.perf_counter() - t) * 1e3)
        if r.returncode != 0:
            sys.exit(f"archspec check {builder} failed:\n{r.stderr}")
    return statistics.median(times)


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of ys on xs; slope 0 when xs are all equal."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return my - slope * mx, slope


def plot(rows: list[tuple[str, str, int, float]], line: tuple[float, float], path: Path) -> None:
    """Scatter of check ms against ops, one colour per family, with the fitted line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for family in sorted({r[1] for r in rows}):
        pts = [(r[2], r[3]) for r in rows if r[1] == family]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=family, s=18)
    a, b = line
    xs = [0, max(r[2] for r in rows)]
    ax.plot(xs, [a + b * x for x in xs], "k--", lw=1, label=f"{a:.0f} ms + {b:.3f} ms/op")
    ax.axhline(1000, color="red", lw=0.8, ls=":", label="1 s target")
    ax.set_xlabel("ops in the graph")
    ax.set_ylabel("archspec check, whole process (ms, median)")
    ax.set_title("archspec check over the torchvision zoo")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, ncol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="processes per builder (median)")
    ap.add_argument("--only", nargs="+", metavar="BUILDER", help="only these builders")
    ap.add_argument("--plot", type=Path, default=ROOT / "bench" / "results" / "zoo-check.png",
                    help="PNG to write (default bench/results/zoo-check.png, git-ignored)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    todo = builders(args.only)
    if not todo:
        sys.exit("no builder with a spec to time")
    rows = [(b, fam, op_count(b), check_ms(b, args.runs)) for b, fam in todo]
    rows.sort(key=lambda r: (r[2], r[0]))
    print(f"archspec check, whole process, median of {args.runs} run(s); "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"{'builder':<22}{'family':<14}{'ops':>6}{'check ms':>10}")
    for b, fam, ops, ms in rows:
        print(f"{b:<22}{fam:<14}{ops:>6}{ms:>10.0f}")
    a, slope = fit_line([r[2] for r in rows], [r[3] for r in rows])
    print(f"fit: ms = {a:.0f} + {slope:.3f} × ops ({len(rows)} builders); "
          f"slowest {max(rows, key=lambda r: r[3])[0]} {max(r[3] for r in rows):.0f} ms")
    plot(rows, (a, slope), args.plot)
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
