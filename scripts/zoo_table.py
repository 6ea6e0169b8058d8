"""Write docs/zoo.md: one row per torchvision CNN builder, measured now.

For each builder of tests/golden/torchvision-zoo.json (torchvision 0.29.1's 68 CNNs):
archspec's parameter count and GMACs at the default weights' input size beside
torchvision's (its ``num_params`` and ``_ops``), the spec's lines (the builder's short
spec plus every spec file it extends or includes, shared library files counted once per
family) beside the lines of torchvision's module for that family, and the wall time of
``archspec check <builder>`` as a whole process (the median of three runs; it never
imports torch). Run from the repository root:

    .venv/bin/python scripts/zoo_table.py            # about a minute
"""
from __future__ import annotations

import importlib
import inspect
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import archspec  # noqa: E402

GOLDEN = os.path.join(ROOT, "tests", "golden", "torchvision-zoo.json")
OUT = os.path.join(ROOT, "docs", "zoo.md")


def check_seconds(builder: str, runs: int = 3) -> float:
    """Median wall seconds of ``archspec check <builder>``, a fresh process each run."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "archspec", "check", builder], cwd=ROOT,
                       check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def spec_lines(spec: archspec.Spec) -> int:
    """Lines of every file the spec was read from (itself, what it extends, includes)."""
    return sum(text.count("\n") for _, text in spec.sources)


def torchvision_lines(family: str) -> int:
    """Lines of torchvision's module that defines the family (weights tables included)."""
    mod = importlib.import_module(f"torchvision.models.{family}")
    return len(inspect.getsource(mod).splitlines())


def default_weights(entry: dict) -> dict:
    """The builder's IMAGENET1K_V1 weights' figures (its first published ones)."""
    w = entry["weights"]
    return w.get("IMAGENET1K_V1") or w[sorted(w)[0]]


def row(builder: str, entry: dict) -> str:
    w = default_weights(entry)
    path = os.path.join(ROOT, "specs", f"{builder}.yaml")
    spec = archspec.load_spec(path, {"in_size": w["input_size"]})
    s = archspec.summarize(archspec.compile_graph(spec))
    return (f"| `{builder}` | {s.params:,} | {entry['params']:,} | {s.macs / 1e9:.3f} | "
            f"{w['gflops']:.3f} | {w['input_size']} | {spec_lines(spec)} | "
            f"{torchvision_lines(entry['family'])} | {check_seconds(builder):.2f} |")


def main() -> int:
    table = json.load(open(GOLDEN, encoding="utf-8"))
    rows = [row(b, e) for b, e in sorted(table["builders"].items(),
                                          key=lambda kv: (kv[1]["family"], kv[0]))]
    head = [
        "# The torchvision zoo as specs",
        "",
        f"Every CNN classification builder of torchvision {table['torchvision']} "
        f"({len(rows)}) is a spec under `specs/`, by the builder's name (`archspec summary "
        "efficientnet_b3`, `archspec.build_module(\"regnet_y_16gf\")`). Written by "
        "`scripts/zoo_table.py`; the figures are measured when it runs. Parameters and "
        "GMACs are archspec's static counts (no torch) beside torchvision's (its weights' "
        "`num_params` and `_ops`, at their input size); *spec lines* counts the builder's "
        "spec and every file it extends or includes, *torchvision lines* the family's "
        "module (its weights tables too); *check* is the wall time of `archspec check "
        "<builder>` as a whole process. The exactness tests are "
        "`tests/test_zoo_counts.py` (all 68, torch-free) and `tests/test_zoo_exact.py` "
        "(one per family; all with `--zoo-all`).",
        "",
        "| builder | params | torchvision | GMACs | torchvision | input | spec lines | "
        "torchvision lines | check (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    tmp = OUT + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(head + rows) + "\n")
    os.replace(tmp, OUT)
    print(f"{OUT}: {len(rows)} builders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
