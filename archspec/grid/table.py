"""The results table of a grid, and its text, CSV, JSON, Markdown and plot forms.

One row per cell, keyed by the cell's name; columns are the varied parameters,
then the static measures (depth, params, MACs, output shape), then any metric
columns merged in later by cell name (training adds accuracy, loss, time …), so
every writer handles columns it has never heard of.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

from archspec.grid.model import Grid
from archspec.grid.run import CellResult

TABLE_VERSION = 1
MEASURES = ("depth", "params", "macs", "output_shape")


@dataclass(frozen=True)
class ResultsTable:
    """A grid's results: ``rows[i][j]`` is column ``columns[j]`` of cell ``rows[i][0]``."""

    grid: str
    spec: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    param_columns: tuple[str, ...] = ()      # the varied parameters (for the text table)
    plot: tuple[str, str] = ("params", "macs")

    @classmethod
    def from_results(cls, grid: Grid, results: Sequence[CellResult]) -> "ResultsTable":
        pcols = grid.columns
        budget = grid.budget is not None
        cols = ("cell", *pcols, *MEASURES, *(("budget_target",) if budget else ()),
                "status", "error")
        rows = []
        for r in results:
            vals = dict(r.values)
            row = [r.name, *(vals.get(c) for c in pcols), r.depth, r.params, r.macs,
                   list(r.output_shape) if r.output_shape is not None else None]
            if budget:
                row.append(r.budget_target)
            row += ["ok" if r.ok else "invalid", "; ".join(e.message for e in r.errors) or None]
            rows.append(tuple(row))
        if any(r.diagram for r in results):
            cols += ("diagram",)
            rows = [row + (r.diagram,) for row, r in zip(rows, results)]
        return cls(grid.name, grid.spec_path, cols, tuple(rows), pcols, grid.plot)

    def column(self, name: str) -> list[Any]:
        j = self.columns.index(name)
        return [r[j] for r in self.rows]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in self.rows]

    def merge(self, metrics: Mapping[str, Mapping[str, Any]]) -> "ResultsTable":
        """Add metric columns by cell name (new columns at the end; missing cells get None).

        >>> t = ResultsTable("g", "s.yaml", ("cell", "params"), (("a", 1), ("b", 2)))
        >>> t.merge({"b": {"top1": 0.9}}).rows
        (('a', 1, None), ('b', 2, 0.9))
        """
        names = {r[0] for r in self.rows}
        unknown = sorted(set(metrics) - names)
        if unknown:
            raise KeyError(f"metrics for cells not in the grid: {', '.join(unknown)}")
        new: list[str] = []
        for m in metrics.values():
            for k in m:
                if k not in self.columns and k not in new:
                    new.append(k)
        cols = self.columns + tuple(new)
        rows = []
        for r in self.rows:
            row = list(r) + [None] * len(new)
            for k, v in metrics.get(r[0], {}).items():
                row[cols.index(k)] = v
            rows.append(tuple(row))
        return replace(self, columns=cols, rows=tuple(rows))


# ------------------------------------------------------------------ formats
def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return "(" + ", ".join(map(str, v)) + ")" if v and all(isinstance(x, int) for x in v) \
            else str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _human(v: Any) -> str:
    from archspec.shapes import human
    return human(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else _cell(v)


def _display(t: ResultsTable) -> tuple[list[str], list[list[str]]]:
    """Columns and cells for people: counts with separators, shapes as (N, C, H, W)."""
    skip = {"status", "error", "budget_target", "diagram"}
    cols = [c for c in t.columns if c not in skip]
    out = []
    for rec in t.records():
        row = []
        for c in cols:
            v = rec[c]
            if rec["status"] != "ok" and c in MEASURES:
                row.append("invalid" if c == "params" else "-")
            elif c == "params" and v is not None:
                row.append(f"{v:,}")
            elif c == "macs" and v is not None:
                row.append(_human(v))
            elif c == "output_shape" and v is not None:
                row.append("(N, " + ", ".join(map(str, v)) + ")")
            else:
                row.append(_cell(v))
        out.append(row)
    head = ["output" if c == "output_shape" else c for c in cols]
    return head, out


def to_text(t: ResultsTable) -> str:
    """An aligned table for the terminal (numbers right-aligned)."""
    head, body = _display(t)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(head)]
    numeric = {i for i, h in enumerate(head) if h in ("depth", "params", "macs") or
               (body and all(_is_number(r[i]) for r in body))}

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    rule = "─" * (sum(widths) + 2 * (len(widths) - 1))
    ok = sum(1 for r in t.records() if r["status"] == "ok")
    lines = [f"{t.grid} ({t.spec})", rule, fmt(head), rule, *(fmt(r) for r in body), rule,
             f"{len(t.rows)} cells, {ok} valid" + (f", {len(t.rows) - ok} invalid"
                                                  if ok < len(t.rows) else "")]
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return False


def to_markdown(t: ResultsTable) -> str:
    head, body = _display(t)
    esc = [[c.replace("|", "\\|") for c in r] for r in body]
    right = {"depth", "params", "macs"}
    lines = [f"# {t.grid}", "", f"Template: `{t.spec}`", "",
             "| " + " | ".join(head) + " |",
             "|" + "|".join("---:" if h in right else "---" for h in head) + "|",
             *("| " + " | ".join(r) + " |" for r in esc)]
    return "\n".join(lines) + "\n"


def to_csv(t: ResultsTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(t.columns)
    for r in t.rows:
        w.writerow(["x".join(map(str, v)) if isinstance(v, list) and t.columns[j] ==
                    "output_shape" else _csv_value(v) for j, v in enumerate(r)])
    return buf.getvalue()


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, list):
        return json.dumps(v)
    return v


def to_json(t: ResultsTable) -> str:
    doc = {"archspec_grid_results": TABLE_VERSION, "grid": t.grid, "spec": t.spec,
           "columns": list(t.columns), "cells": t.records()}
    return json.dumps(doc, indent=2, default=str)


def write_atomic(path: str, data: str | bytes) -> None:
    """Write through a temporary file in the same folder, then rename: never half a file."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def plot(t: ResultsTable, path: str, x: str | None = None, y: str | None = None) -> str:
    """Scatter ``y`` against ``x`` (default: the grid's ``plot:``, else params vs MACs).

    Count columns get log axes; cells are labelled when there are few. matplotlib is
    imported here, on first use, with the Agg backend (no display needed).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = x or t.plot[0]
    y = y or t.plot[1]
    for c in (x, y):
        if c not in t.columns:
            raise KeyError(f"no column '{c}' to plot; columns: {', '.join(t.columns)}")
    recs = [r for r in t.records() if r["status"] == "ok" and _num(r[x]) is not None
            and _num(r[y]) is not None]
    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    xs = [_num(r[x]) for r in recs]
    ys = [_num(r[y]) for r in recs]
    ax.scatter(xs, ys, s=22, color="#3465a4")
    if len(recs) <= 40:
        for r, a, b in zip(recs, xs, ys):
            ax.annotate(str(r["cell"]), (a, b), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    for c, set_scale in ((x, ax.set_xscale), (y, ax.set_yscale)):
        vals = [v for v in (xs if c == x else ys) if v]
        if c in ("params", "macs") and vals and min(vals) > 0 and max(vals) / min(vals) > 20:
            set_scale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(t.grid)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=os.path.splitext(path)[1][1:] or "png")
    plt.close(fig)
    write_atomic(path, buf.getvalue())
    return path


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


FORMATS = {"table": to_text, "csv": to_csv, "json": to_json, "markdown": to_markdown}
FILES = {"csv": "results.csv", "json": "results.json", "markdown": "results.md"}


def write_results(t: ResultsTable, out_dir: str, *, with_plot: bool = True,
                  formats: Iterable[str] = ("csv", "json", "markdown")) -> list[str]:
    """Write ``results.csv/json/md`` and ``plot.png`` into ``out_dir``; return the paths."""
    paths = []
    for f in formats:
        p = os.path.join(out_dir, FILES[f])
        write_atomic(p, FORMATS[f](t))
        paths.append(p)
    if with_plot:
        paths.append(plot(t, os.path.join(out_dir, "plot.png")))
    return paths
