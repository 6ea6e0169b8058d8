"""Benchmark: a 1,000-cell grid over the WRN template expands and shape-checks in < 3 s.

10 depths × 10 widths × 10 block types (count = blocks, so every cell is valid),
on every core this process may use (``--jobs`` to change), without importing
torch. Prints the figures; exits 1 if the budget is missed or torch was imported.

    .venv/bin/python bench/bench_grid.py [--jobs N] [--serial]

Issue 15 set the budget to 3 s on 2 cores (it was 10 s). What makes a cell cheap: the
template is parsed once per process (by its text), its layers and blocks once per parsed
node, and a block instance already expanded with the same arguments, input shape and the
spec values it may read is replayed, not expanded again: in one cell (a stage's copies)
and across cells (another depth, the same width and block). Measured, base a8b6154 and
this branch in one run, on 2 cores shared with other jobs (load average ~6, so walls are
~3× what a quiet machine gives): expand + check 35.2 s → 11.3 s, CPU (all processes)
13.8 s → 5.6 s; a serial run of the 1,000 cells 12.2 → 5.2 s of CPU. On a quiet machine
the base took 9.45-10.5 s, so expect about 3.5 s: the 3 s budget is not yet met there.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BUDGET_S = 3.0
GRID = """\
name: bench-1000
spec: {spec}
set: {{count: blocks}}
axes:
  d: {{expr: "range(10, 65, 6)"}}
  k: [1, 2, 3, 4, 5, 6, 8, 10, 12, 16]
  block: ["B(3,3)", "B(1,3,1)", "B(3,1)", "B(1,3)", "B(3,1,1)", "B(3,1,3)", "B(3)",
          "B(3,3,3)", "B(1,3,3)", "B(3,3,1)"]
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--serial", action="store_true", help="also time one process, for comparison")
    args = ap.parse_args()
    t0 = time.perf_counter()
    from archspec.grid import ResultsTable, load_grid, run_grid
    from archspec.grid.run import default_jobs
    t_import = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench-1000.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(GRID.format(spec=os.path.join(ROOT, "specs", "wrn.yaml")))
        t1 = time.perf_counter()
        grid = load_grid(path)
        t_expand = time.perf_counter() - t1
        jobs = args.jobs or default_jobs()
        t2 = time.perf_counter()
        results = run_grid(grid, jobs=jobs)
        t_check = time.perf_counter() - t2
        table = ResultsTable.from_results(grid, results)
        serial = None
        if args.serial:
            t3 = time.perf_counter()
            run_grid(grid, jobs=1)
            serial = time.perf_counter() - t3
    total = t_expand + t_check
    valid = sum(r.ok for r in results)
    ops = sum(r.depth or 0 for r in results)
    torch = "torch" in sys.modules
    print(f"cells:            {len(results)} ({valid} valid), {len(table.columns)} columns")
    print(f"import archspec:  {t_import:.2f} s")
    print(f"expand (load):    {t_expand:.3f} s")
    print(f"shape-check:      {t_check:.2f} s on {jobs} processes "
          f"({len(results) / t_check:.0f} cells/s)")
    if serial is not None:
        print(f"  one process:    {serial:.2f} s ({serial / t_check:.2f}× slower)")
    print(f"expand + check:   {total:.2f} s (budget {BUDGET_S:.0f} s)")
    print(f"params range:     {min(r.params for r in results if r.ok):,} … "
          f"{max(r.params for r in results if r.ok):,}; weighted depth sum {ops:,}")
    print(f"torch imported:   {torch}")
    ok = total < BUDGET_S and not torch and valid == len(results) == 1000
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
