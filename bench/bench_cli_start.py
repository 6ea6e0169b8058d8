"""How long does `archspec --version` take? Whole processes, as a ratio to `python -c pass`.

    .venv/bin/python bench/bench_cli_start.py [--runs 20] [--baseline REV]

The CLI's start-up is what a user pays before anything happens (and what shell completion
pays on every tab). Each command runs --runs times from a temporary folder; the table gives
the median and best wall time and the median as a multiple of a bare interpreter start
measured in the same run. With --baseline, the same commands also run against revision REV
of this repository (exported with `git archive` to a temporary folder and put first on
PYTHONPATH), so before and after are measured side by side. It also lists which of
networkx, yaml and torch each command imported (-X importtime), which the issue requires
to be none for --version and --help.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import io
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("networkx", "yaml", "torch")
COMMANDS = {"python -c pass": ["-c", "pass"],
            "archspec --version": ["-m", "archspec", "--version"],
            "archspec --help": ["-m", "archspec", "--help"]}


def wall(args: list[str], env: dict[str, str], cwd: str, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, cwd=cwd, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return out


def heavy_imports(args: list[str], env: dict[str, str], cwd: str) -> list[str]:
    r = subprocess.run([sys.executable, "-X", "importtime", *args], env=env, cwd=cwd,
                       capture_output=True, text=True)
    names = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines()}
    return [h for h in HEAVY if h in names]


def export(rev: str, dest: str) -> str:
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "archspec"],
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--baseline", metavar="REV", help="also measure this git revision")
    a = ap.parse_args()
    trees = {"now": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        if a.baseline:
            trees[a.baseline] = export(a.baseline, os.path.join(tmp, "baseline"))
        cwd = os.path.join(tmp, "cwd")
        os.mkdir(cwd)
        print(f"{'tree':<10} {'command':<20} {'median':>8} {'best':>8} {'× python':>9}  imports")
        for label, tree in trees.items():
            env = dict(os.environ, PYTHONPATH=tree)
            base = None
            for name, args in COMMANDS.items():
                ts = wall(args, env, cwd, a.runs)
                med = statistics.median(ts)
                base = base or med
                heavy = ", ".join(heavy_imports(args, env, cwd)) or "-"
                print(f"{label:<10} {name:<20} {med * 1e3:6.1f}ms {min(ts) * 1e3:6.1f}ms "
                      f"{med / base:8.2f}×  {heavy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
