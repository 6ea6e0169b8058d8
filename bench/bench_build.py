"""Construction time of spec-built modules over their references' constructors, side by side.

Both sides include weight initialisation (torch's default ``reset_parameters`` and then the
spec's ``init``, as the references do). For resnet50, googlenet (torchvision's
constructors), WRN-28-10 (the seed's hand-written tests/references/wrn_pystyle.py) and
resnet18 it prints, as ratios ours ÷ reference's constructor (issue 14's target ≤ 1.1):

  - ``path``: ``build_module("specs/<spec>.yaml")`` in a process that built the spec before
    (the checked graph is reused while the spec's files are unchanged: a seed sweep, a grid);
  - ``fresh``: the same with the front end run again (load, expand, shape-check: the
    in-process graph cache emptied before each build);
  - ``meta ms``: ours − reference in CPU milliseconds, both built on the meta device
    (no weight memory, no init kernels): the Python construction overhead alone, which
    the random-number kernels of the weight init (most of the time, and the part a loaded
    machine disturbs most) do not blur; ``est`` = 1 + that ÷ the reference's CPU time;
  - ``first``: the first build of the spec in the process beside the reference's first
    construction (one sample each, wall time; the first model of a run also pays one-off
    imports and fx's first code generation).

The two sides alternate (ABAB…, order flipped every rep) and each ratio is of medians,
of wall time and (``cpu``) of the process's CPU time, which other load on a shared
machine disturbs far less (with one thread, construction is all on this process's CPU).

    PYTHONPATH=. .venv/bin/python bench/bench_build.py --threads 1 --reps 9
    PYTHONPATH=. .venv/bin/python bench/bench_build.py --threads 1 --only resnet50 googlenet
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

from archspec import torch_backend  # noqa: E402


def _cases() -> list[tuple[str, str, Callable[[], torch.nn.Module]]]:
    """(name, spec path, reference constructor) of every model measured."""
    import torchvision
    from references.wrn_pystyle import WideResNet
    return [
        ("resnet50", "specs/resnet50.yaml", torchvision.models.resnet50),
        ("googlenet", "specs/googlenet.yaml",
         lambda: torchvision.models.googlenet(aux_logits=True, transform_input=False,
                                              init_weights=True)),
        ("wrn-28-10", "specs/wrn-28-10.yaml", lambda: WideResNet(28, 10)),
        ("resnet18", "specs/resnet18.yaml", torchvision.models.resnet18),
    ]


def _seconds(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def alternated(ours: Callable[[], object], ref: Callable[[], object], reps: int
               ) -> tuple[float, float, float]:
    """Median wall seconds of (ours, ref), the two run alternately (order flipped every
    rep), and the ratio of their median CPU seconds."""
    a, b = [], []
    for i in range(reps):
        if i % 2 == 0:
            a.append(_seconds(ours)), b.append(_seconds(ref))
        else:
            b.append(_seconds(ref)), a.append(_seconds(ours))
    med = [statistics.median(t[k] for t in side) for side in (a, b) for k in (0, 1)]
    return med[0], med[2], med[1] / med[3]


def _fresh(path: str) -> Callable[[], object]:
    def build() -> object:
        torch_backend._GRAPHS.clear()
        return torch_backend.build_module(path)
    return build


def meta_overhead(path: str, ctor: Callable[[], object], reps: int) -> tuple[float, float]:
    """(ours − ref CPU seconds on the meta device, the reference's CPU seconds on the CPU)."""
    def on_meta(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            with torch.device("meta"):
                return fn()
        return run
    a, b = [], []
    for _ in range(reps):
        a.append(_seconds(on_meta(lambda: torch_backend.build_module(path)))[1])
        b.append(_seconds(on_meta(ctor))[1])
    ref_cpu = statistics.median(_seconds(ctor)[1] for _ in range(max(3, reps // 3)))
    return statistics.median(a) - statistics.median(b), ref_cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=9, help="alternated repetitions (median)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--only", nargs="*", help="model names to measure")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), medians of "
          f"{args.reps} alternated constructions (first: one each)")
    head = ("model", "ours s", "ref s", "path", "path cpu", "fresh", "fresh cpu", "meta ms",
            "est", "first")
    print("  ".join(h.ljust(10) for h in head))
    for name, path, ctor in _cases():
        if args.only and name not in args.only:
            continue
        first = _seconds(lambda: torch_backend.build_module(path))[0] / _seconds(ctor)[0]
        ta, tb, cpu = alternated(lambda: torch_backend.build_module(path), ctor, args.reps)
        fa, fb, fcpu = alternated(_fresh(path), ctor, args.reps)
        over, ref_cpu = meta_overhead(path, ctor, args.reps)
        cells = (name, f"{ta:.3f}", f"{tb:.3f}", f"{ta / tb:.3f}", f"{cpu:.3f}",
                 f"{fa / fb:.3f}", f"{fcpu:.3f}", f"{over * 1e3:.1f}",
                 f"{1 + over / ref_cpu:.3f}", f"{first:.2f}")
        print("  ".join(c.ljust(10) for c in cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
