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
                   help="refuse grids of more cells (default: the grid's max_cells, else 10,000)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, no table")
    add_set_argument(p)
    from archspec.train.grid import add_arguments as add_train_arguments
    add_train_arguments(p)


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
        from archspec.train.grid import train_cells
        status, table = train_cells(args, grid, results, table)
    if not args.quiet or args.format != "table":
        print(FORMATS[args.format](table), end="" if args.format in ("csv", "markdown") else "\n")
    return status or (2 if bad else 0)
