"""``archspec grid GRID``: expand an ablation grid, shape-check and count every cell, tabulate."""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from archspec.errors import Location, SpecError, format_error

NAME = "grid"
HELP = "expand an ablation grid (template × axes), check and count every cell, tabulate"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from archspec.cli import add_set_argument
    p.add_argument("grid", metavar="GRID", help="grid file (YAML), see docs/grids.md")
    p.add_argument("--format", choices=("table", "csv", "json", "markdown"), default="table",
                   help="what to print on stdout (default: table)")
    p.add_argument("-o", "--out", metavar="DIR",
                   help="write results.csv, results.json, results.md and plot.png here")
    p.add_argument("--render", action="store_true",
                   help="with -o: one SVG diagram per cell, under DIR/diagrams/")
    p.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                   help="processes (default: every core this process may use)")
    p.add_argument("--max-cells", type=int, default=None, metavar="N",
                   help="refuse grids of more cells (default 10,000); a grid's own max_cells "
                        "may lower this limit, never raise it")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, no table")
    add_set_argument(p)
    _add_train_arguments(p)


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--train`` options of ``archspec grid``."""
    from archspec.commands.train import count
    g = p.add_argument_group("training (--train)")
    g.add_argument("--train", action="store_true",
                   help="train every valid cell (needs -o); skips finished cells, resumes others")
    g.add_argument("--recipe", metavar="FILE", help="recipe YAML or shipped name for every cell (default: wrn)")
    g.add_argument("--recipe-set", dest="recipe_overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a recipe field, e.g. epochs=30")
    g.add_argument("--data", choices=("cifar10", "cifar100", "imagefolder"))
    g.add_argument("--data-dir", metavar="DIR")
    g.add_argument("--epochs", type=count(1), metavar="N")
    g.add_argument("--batch-size", type=count(1), metavar="N")
    g.add_argument("--seed", type=int, metavar="N")
    g.add_argument("--device", default="auto")
    g.add_argument("--amp", choices=("bf16", "fp16", "off"), default="off")
    g.add_argument("--channels-last", action="store_true")
    g.add_argument("--compile", action="store_true")
    g.add_argument("--no-download", action="store_true")
    g.add_argument("--train-subset", type=count(0), default=0, metavar="N")
    g.add_argument("--test-subset", type=count(0), default=0, metavar="N")
    g.add_argument("--plot-metric", default="test_acc", metavar="COLUMN",
                   help="metric plotted against the first axis in accuracy.png")


class _Progress:
    """``[ 120/1000] cells`` on stderr, rewritten in place; silent when stderr is not a TTY."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if self.enabled:
            print(f"\r[{done:>{len(str(total))}}/{total}] cells checked", end="",
                  file=sys.stderr, flush=True)
            self.shown = True

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from archspec.grid import ResultsTable, load_grid, run_grid, write_results
    from archspec.grid.table import FORMATS
    if args.jobs is not None and args.jobs < 1:
        raise SpecError(f"--jobs must be 1 or more, got {args.jobs}", Location("--jobs"))
    if args.max_cells is not None and args.max_cells < 1:
        raise SpecError(f"--max-cells must be 1 or more, got {args.max_cells}",
                        Location("--max-cells"))
    if args.render and not args.out:
        raise SpecError("--render writes diagrams into the -o folder", Location("--render"),
                        "add -o DIR")
    grid = load_grid(args.grid, overrides=args.overrides, max_cells=args.max_cells)
    render_dir = None
    if args.render:
        if importlib.util.find_spec("archspec.render") is not None:
            render_dir = os.path.join(args.out, "diagrams")
        else:
            print("archspec grid: --render skipped: archspec.render is not available",
                  file=sys.stderr)
    progress = _Progress(not args.quiet and sys.stderr.isatty() and len(grid.cells) >= 20)
    try:
        results = run_grid(grid, jobs=args.jobs, render_dir=render_dir, progress=progress)
    finally:
        progress.close()
    for r in results:
        if r.render_error:
            print(f"archspec grid: warning: {r.render_error}", file=sys.stderr)
    bad = [r for r in results if not r.ok]
    for r in bad:
        for e in r.errors:
            print(format_error(e.to_spec_error()), file=sys.stderr)
    table = ResultsTable.from_results(grid, results)
    if args.out:
        write_results(table, args.out, with_plot=any(r.ok for r in results))
    status = 0
    if args.train:       # the valid cells; the invalid ones are reported above, and exit 2
        status, table = _train(args, grid, results, table)
    if not args.quiet or args.format != "table":
        print(FORMATS[args.format](table), end="" if args.format in ("csv", "markdown") else "\n")
    return status or (2 if bad else 0)


def _train(args: argparse.Namespace, grid, results, table):
    """``--train``: the recipe and options from the flags, then every valid cell."""
    from archspec.commands.train import recipe_from_args
    from archspec.train.grid import train_cells
    from archspec.train.loop import TrainOptions
    if not args.out:
        raise SpecError("--train writes one run per cell into the -o folder", Location("--train"),
                        "add -o DIR")
    options = TrainOptions(data=args.data, data_dir=args.data_dir, device=args.device,
                           amp=args.amp, channels_last=args.channels_last, compile=args.compile,
                           download=not args.no_download, train_subset=args.train_subset,
                           test_subset=args.test_subset, quiet=args.quiet)
    return train_cells(grid, results, table, args.out, recipe_from_args(args, required=True),
                       options, plot_metric=args.plot_metric)
