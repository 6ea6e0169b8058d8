"""``archspec grid GRID --train``: train every valid cell, one run directory per cell.

Cells train one after another into ``OUT/runs/<cell>/``. After each finished cell its
metrics are merged into the grid's results table by cell name and the table
(``results.csv/json/md``) is rewritten atomically, with ``accuracy.png`` plotting the
test accuracy against the first axis. Run again, the command skips finished cells
and resumes an interrupted one; Ctrl-C stops at a step boundary, resumably.

This module imports nothing heavy at module level (the grid command imports it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from archspec.errors import Location, SpecError
from archspec.grid.model import TRAIN_METRICS as METRICS


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--train`` options of ``archspec grid``."""
    from archspec.commands.train import count
    g = p.add_argument_group("training (--train)")
    g.add_argument("--train", action="store_true",
                   help="train every valid cell (needs -o); skips finished cells, resumes others")
    g.add_argument("--recipe", metavar="FILE", help="recipe for every cell (default: wrn)")
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


def cell_run_dir(out: str, cell: str) -> str:
    from archspec.grid.run import safe_filename
    return os.path.join(out, "runs", safe_filename(cell))


def _metrics(summary: dict[str, Any], run: str) -> dict[str, Any]:
    hist = []
    try:
        with open(os.path.join(run, "metrics.jsonl"), encoding="utf-8") as fh:
            hist = [json.loads(line) for line in fh if line.strip()]
    except OSError:
        pass
    return {"test_acc": summary.get("final_test_acc"), "best_test_acc": summary.get("best_test_acc"),
            "test_loss": summary.get("final_test_loss"), "train_loss": summary.get("final_train_loss"),
            "epochs_done": summary.get("epochs_done"), "images_per_s": summary.get("images_per_s"),
            "train_s": round(sum(h.get("seconds", 0.0) for h in hist), 3), "run": run}


def _finished(run: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(run, "summary.json"), encoding="utf-8") as fh:
            s = json.load(fh)
    except (OSError, ValueError):
        return None
    return s if s.get("status") == "finished" else None


def train_cells(args: argparse.Namespace, grid: Any, results: Sequence[Any], table: Any
                ) -> tuple[int, Any]:
    """Train the valid cells of ``grid``; return (exit status, 130 after Ctrl-C; the table)."""
    from archspec.commands.train import recipe_from_args
    from archspec.grid.table import plot, write_results
    from archspec.train.loop import TrainOptions, train
    if not args.out:
        raise SpecError("--train writes one run per cell into the -o folder", Location("--train"),
                        "add -o DIR")
    plottable = [c for c in (*grid.columns, "depth", "params", "macs", *METRICS) if c != "run"]
    if args.plot_metric not in plottable:
        from archspec.errors import did_you_mean
        raise SpecError(f"--plot-metric {args.plot_metric}: no such column", Location(
            "--plot-metric"), did_you_mean(args.plot_metric, plottable)
            or "one of " + ", ".join(plottable))
    recipe = recipe_from_args(args, required=True)
    metrics: dict[str, dict[str, Any]] = {}
    status = 0
    cells = [r for r in results if r.ok]
    for i, r in enumerate(cells, 1):
        run = cell_run_dir(args.out, r.name)
        overrides = {**dict(grid.fixed), **dict(r.values)}
        done = _finished(run)
        resume = run if os.path.isfile(os.path.join(run, "run.json")) else None
        if resume:
            _check_same(r.name, run, grid.spec_path, overrides, recipe, args)
        if done is None:
            if not args.quiet:
                print(f"[{i}/{len(cells)}] {r.name}: " + ("resuming" if resume else "training"),
                      file=sys.stderr, flush=True)
            opts = TrainOptions(spec=grid.spec_path, overrides=tuple(overrides.items()),
                                recipe=recipe, data=args.data, data_dir=args.data_dir,
                                out=None if resume else run, device=args.device, amp=args.amp,
                                channels_last=args.channels_last, compile=args.compile,
                                download=not args.no_download, train_subset=args.train_subset,
                                test_subset=args.test_subset, quiet=args.quiet)
            s = train(opts, resume=resume)   # a resume checks the spec and recipe itself
            if s.get("status") != "finished":
                status = 130
                print(f"archspec grid: stopped in cell '{r.name}'; run the same command again "
                      "to resume", file=sys.stderr)
                break
            done = s
        metrics[r.name] = _metrics(done, run)
        table = table.merge(metrics)
        write_results(table, args.out, with_plot=True)
        _plot_metric(table, grid, args, plot)
    return status, table


def _check_same(cell: str, run: str, spec_path: str, overrides: dict[str, Any], recipe: Any,
                args: argparse.Namespace) -> None:
    """Refuse to reuse or resume a cell trained otherwise than this command asks, saying how
    (a finished cell would otherwise put stale numbers in the table)."""
    from archspec.train import rundir
    from archspec.train.loop import load_network
    from archspec.train.recipe import diff_recipes, load_recipe
    info = rundir.read_json(os.path.join(run, "run.json"))
    diffs = diff_recipes(load_recipe(os.path.join(run, "recipe.yaml")), recipe)
    if args.data and args.data != info.get("data"):
        diffs.append(f"data: {info.get('data')!r} → {args.data!r}")
    for k in ("train_subset", "test_subset"):
        if (info.get(k) or 0) != (getattr(args, k) or 0):
            diffs.append(f"--{k.replace('_', '-')}: {info.get(k) or 0} → {getattr(args, k) or 0}")
    _, g = load_network(spec_path, overrides)
    if rundir.graph_fingerprint(g) != info.get("fingerprint"):
        diffs.insert(0, "the network (the template changed since)")
    if diffs:
        raise SpecError(f"cell '{cell}' was trained with other settings than this command's "
                        f"({'; '.join(diffs)})", Location(run),
                        "repeat the options of the first run, or train into another -o")


def _plot_metric(table: Any, grid: Any, args: argparse.Namespace, plot: Any) -> None:
    x = grid.columns[0] if grid.columns else "params"
    y = args.plot_metric
    if y in table.columns and x in table.columns:
        try:
            plot(table, os.path.join(args.out, "accuracy.png"), x=x, y=y)
        except (KeyError, ValueError):
            pass
