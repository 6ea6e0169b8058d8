"""``archspec grid GRID --train``: train every valid cell, one run directory per cell.

Cells train one after another into ``OUT/runs/<cell>/``. After each finished cell its
metrics are merged into the grid's results table by cell name and the table
(``results.csv/json/md``) is rewritten atomically, with ``accuracy.png`` plotting the
test accuracy against the first axis. Run again, the command skips finished cells
and resumes an interrupted one; Ctrl-C stops at a step boundary, resumably.

This module imports nothing heavy at module level.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Sequence

from archspec.errors import Location, SpecError
from archspec.grid.model import TRAIN_METRICS as METRICS


def cell_run_dir(out: str, cell: str) -> str:
    from archspec.fsio import safe_name
    return os.path.join(out, "runs", safe_name(cell, "cell"))


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


def train_cells(grid: Any, results: Sequence[Any], table: Any, out: str, recipe: Any,
                options: Any, plot_metric: str = "test_acc") -> tuple[int, Any]:
    """Train the valid cells of ``grid`` into ``out/runs/<cell>``; return (exit status, the
    table with their metrics merged). ``options`` (a ``TrainOptions``) says how: data,
    device, amp, subsets; its spec, overrides and out are set per cell. Status 130 after
    Ctrl-C (run again to resume)."""
    from dataclasses import replace

    from archspec.grid.table import plot, write_results
    from archspec.train.loop import train
    plottable = [c for c in (*grid.columns, "depth", "params", "macs", *METRICS) if c != "run"]
    if plot_metric not in plottable:
        from archspec.errors import did_you_mean
        raise SpecError(f"--plot-metric {plot_metric}: no such column", Location(
            "--plot-metric"), did_you_mean(plot_metric, plottable)
            or "one of " + ", ".join(plottable))
    metrics: dict[str, dict[str, Any]] = {}
    status = 0
    cells = [r for r in results if r.ok]
    for i, r in enumerate(cells, 1):
        run = cell_run_dir(out, r.name)
        overrides = {**dict(grid.fixed), **dict(r.values)}
        done = _finished(run)
        resume = run if os.path.isfile(os.path.join(run, "run.json")) else None
        if resume:
            _check_same(r.name, run, grid.spec_path, overrides, recipe, options)
        if done is None:
            if not options.quiet:
                print(f"[{i}/{len(cells)}] {r.name}: " + ("resuming" if resume else "training"),
                      file=sys.stderr, flush=True)
            opts = replace(options, spec=grid.spec_path, overrides=tuple(overrides.items()),
                           recipe=recipe, out=None if resume else run)
            s = train(opts, resume=resume)   # a resume checks the spec and recipe itself
            if s.get("status") != "finished":
                status = 130
                print(f"archspec grid: stopped in cell '{r.name}'; run the same command again "
                      "to resume", file=sys.stderr)
                break
            done = s
        metrics[r.name] = _metrics(done, run)
        table = table.merge(metrics)
        write_results(table, out, with_plot=True)
        _plot_metric(table, grid, out, plot_metric, plot)
    return status, table


def _check_same(cell: str, run: str, spec_path: str, overrides: dict[str, Any], recipe: Any,
                options: Any) -> None:
    """Refuse to reuse or resume a cell trained otherwise than this command asks, saying how
    (a finished cell would otherwise put stale numbers in the table)."""
    from archspec.train import rundir
    from archspec.train.loop import load_network
    from archspec.train.recipe import diff_recipes, load_recipe
    info = rundir.read_json(os.path.join(run, "run.json"))
    diffs = diff_recipes(load_recipe(os.path.join(run, "recipe.yaml")), recipe)
    if options.data and options.data != info.get("data"):
        diffs.append(f"data: {info.get('data')!r} → {options.data!r}")
    for k in ("train_subset", "test_subset"):
        if (info.get(k) or 0) != (getattr(options, k) or 0):
            diffs.append(f"--{k.replace('_', '-')}: {info.get(k) or 0} → {getattr(options, k) or 0}")
    _, g = load_network(spec_path, overrides)
    if rundir.graph_fingerprint(g) != info.get("fingerprint"):
        diffs.insert(0, "the network (the template changed since)")
    if diffs:
        raise SpecError(f"cell '{cell}' was trained with other settings than this command's "
                        f"({'; '.join(diffs)})", Location(run),
                        "repeat the options of the first run, or train into another -o")


def _plot_metric(table: Any, grid: Any, out: str, y: str, plot: Any) -> None:
    x = grid.columns[0] if grid.columns else "params"
    if y in table.columns and x in table.columns:
        try:
            plot(table, os.path.join(out, "accuracy.png"), x=x, y=y)
        except (KeyError, ValueError):
            pass
