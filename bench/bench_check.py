"""How fast is the front end? Wall time of whole `archspec check` processes, and of
shape-checking a generated 1,000-node spec in-process; proof that check never imports torch.

    .venv/bin/python bench/bench_check.py [--runs 10]

Targets (issue 2): `archspec check specs/resnet152.yaml` under 1 s for the whole
process, a 1,000-node graph shape-checked in under 100 ms. Timings are the median and
the best of --runs; the machine's load shows in the spread, so read the best as the cost
and the median as what a user waits. Exit status 1 when a target is missed.

In-process rows repeat a load in one process: from issue 15 on, files are parsed once
per process (by their text) and identical block instances are expanded once, so repeats
are "warm"; the resnet152 row is also shown cold (caches cleared before each run), which
is what a fresh process pays. Issue 15's figure, base a8b6154 and this branch in one run
(``--runs 5``, 2 cores shared with other jobs, load ~6): `archspec check
specs/resnet152.yaml`, whole process, best/median 1128/1250 ms before, 1132/1262 ms after
(within 1.1×: the process is interpreter start and imports); in-process load + compile
of resnet152, best, 48.6 ms before, about 27 ms cold and 9 ms warm after.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "torchvision", "matplotlib", "numpy", "graphviz")


def archspec_cmd() -> list[str]:
    """The installed console script next to this Python, else ``python -m archspec``."""
    exe = Path(sys.executable).parent / "archspec"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "archspec"]


def time_process(args: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
        out.append(time.perf_counter() - t)
        if r.returncode != 0:
            sys.exit(f"{' '.join(args)} failed:\n{r.stderr}")
    return out


def heavy_imports(spec: str) -> tuple[list[str], list[tuple[float, str]]]:
    """Modules of HEAVY that `archspec check` loads, and what its main imports cost."""
    code = ("import json, sys; from archspec.cli import main; rc = main(['check', '-q', %r]); "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in %r)))"
            % (spec, HEAVY))
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT,
                       capture_output=True, text=True)
    loaded = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else ["<failed>"]
    cumulative: dict[str, float] = {}
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (.*)$", line)
        if m:
            cumulative[m.group(2).strip()] = int(m.group(1)) / 1e6
    shown = ("archspec", "networkx", "yaml", "archspec.spec.loader", "archspec.ops")
    return loaded, [(cumulative[m], m) for m in shown if m in cumulative]


def generated_spec(blocks: int) -> str:
    """A residual network of ``blocks`` blocks of 8 ops each, plus a stem and a head."""
    return f"""\
name: generated
params: {{blocks: {blocks}, width: 16}}
input: {{shape: [3, 32, 32]}}
blocks:
  res:
    params: {{w: int}}
    layers:
      - conv1: {{op: conv, out: w, kernel: 3, padding: 1, bias: false}}
      - bn1: {{op: batchnorm}}
      - relu1: {{op: relu}}
      - conv2: {{op: conv, out: w, kernel: 3, padding: 1, bias: false}}
      - bn2: {{op: batchnorm}}
      - drop: {{op: dropout, p: 0.1}}
      - add: {{op: add, from: [drop, input]}}
      - relu2: {{op: relu}}
layers:
  - stem: {{op: conv, out: width, kernel: 3, padding: 1}}
  - body: {{block: res, w: width, repeat: blocks}}
  - pool: {{op: adaptive_avgpool, size: 1}}
  - flat: {{op: flatten}}
  - fc: {{op: linear, out: 10}}
"""


def best_of(fn, runs: int) -> tuple[float, float, object]:
    times, value = [], None
    for _ in range(runs):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times), value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import archspec
    from archspec.shapes import check_graph, summarize

    spec = "specs/resnet152.yaml" if (ROOT / "specs/resnet152.yaml").exists() else "specs/wrn.yaml"
    rows: list[tuple[str, float, float, str, bool]] = []
    cmd = archspec_cmd()
    t = time_process(cmd + ["check", spec], args.runs)
    rows.append((f"archspec check {spec} (whole process)", min(t), statistics.median(t),
                 "< 1 s", statistics.median(t) < 1.0))
    t = time_process([sys.executable, "-c", "pass"], args.runs)
    rows.append(("python -c pass (interpreter start, for scale)", min(t), statistics.median(t),
                 "", True))
    t = time_process(cmd + ["check"] + sorted(str(p.relative_to(ROOT)) for p in
                                              (ROOT / "specs").glob("*.yaml")), args.runs)
    rows.append((f"archspec check specs/*.yaml ({len(list((ROOT / 'specs').glob('*.yaml')))} specs)",
                 min(t), statistics.median(t), "", True))

    clear = getattr(importlib.import_module("archspec.graph"), "clear_caches", lambda: None)

    def cold() -> Any:
        clear()     # as a fresh process: no parse or block instance remembered
        return archspec.compile_graph(archspec.load_spec(spec))
    lo, med, g = best_of(cold, args.runs)
    rows.append((f"  in-process load + compile {spec} ({g.number_of_nodes() - 1} ops), cold",
                 lo, med, "", True))
    lo, med, g = best_of(lambda: archspec.compile_graph(archspec.load_spec(spec)), args.runs)
    rows.append((f"  in-process load + compile {spec}, warm (caches kept)", lo, med, "", True))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generated.yaml"
        path.write_text(generated_spec(125), encoding="utf-8")
        lo, med, loaded = best_of(lambda: archspec.load_spec(path), args.runs)
        rows.append(("  generated spec: load (YAML, keys, params)", lo, med, "", True))
        lo, med, g = best_of(lambda: archspec.compile_graph(loaded), args.runs)
        n = g.number_of_nodes() - 1
        rows.append((f"  generated spec: expand + shape-check ({n} ops)", lo, med, "< 100 ms",
                     med < 0.1))
        lo, med, _ = best_of(lambda: archspec.compile_graph(archspec.load_spec(path)), args.runs)
        rows.append((f"  generated spec: load + expand + shape-check ({n} ops)", lo, med,
                     "< 100 ms", med < 0.1))
        lo, med, _ = best_of(lambda: check_graph(g), args.runs)
        rows.append((f"  check_graph re-inference ({n} ops)", lo, med, "< 100 ms", med < 0.1))
        lo, med, _ = best_of(lambda: summarize(g), args.runs)
        rows.append((f"  summarize ({n} ops)", lo, med, "", True))

    loaded_heavy, top = heavy_imports(spec)
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'best':>9}  {'median':>9}  target")
    print("─" * (width + 34))
    for name, lo, med, target, ok in rows:
        mark = "" if not target else ("  ok" if ok else "  MISSED")
        print(f"{name:<{width}}  {lo * 1e3:7.1f}ms  {med * 1e3:7.1f}ms  {target}{mark}")
    print("─" * (width + 34))
    print(f"heavy modules imported by `archspec check`: {loaded_heavy or 'none'} "
          f"(of {', '.join(HEAVY)})")
    print("import cost (cumulative, one run under -X importtime): " + ", ".join(f"{m} {s * 1e3:.0f}ms" for s, m in top))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, runs={args.runs}, "
          f"cmd={' '.join(cmd) if shutil.which(cmd[0]) or Path(cmd[0]).exists() else cmd}")
    ok = all(r[4] for r in rows) and not loaded_heavy
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
