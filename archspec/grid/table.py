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
import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

from archspec.fsio import write_file
from archspec.text import printable
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
    """An aligned table for the terminal (numbers right-aligned); cell names come from
    spec text, so their control and bidi characters are escaped."""
    head, body = _display(t)
    body = [[printable(c) for c in r] for r in body]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(head)]
    numeric = {i for i, h in enumerate(head) if h in ("depth", "params", "macs") or
               (body and all(_is_number(r[i]) for r in body))}

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    rule = "─" * (sum(widths) + 2 * (len(widths) - 1))
    ok = sum(1 for r in t.records() if r["status"] == "ok")
    lines = [printable(f"{t.grid} ({t.spec})"), rule, fmt(head), rule, *(fmt(r) for r in body),
             rule,
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
    esc = [[md_cell(c) for c in r] for r in body]
    right = {"depth", "params", "macs"}
    spec = md_cell(t.spec).replace("`", "'")
    lines = [f"# {md_cell(t.grid)}", "", f"Template: `{spec}`", "",
             "| " + " | ".join(head) + " |",
             "|" + "|".join("---:" if h in right else "---" for h in head) + "|",
             *("| " + " | ".join(r) + " |" for r in esc)]
    return "\n".join(lines) + "\n"


def md_cell(text: str) -> str:
    """A markdown table cell: backslashes and pipes escaped, line breaks as ``<br>``
    (a newline in a cell name ended the row), controls escaped."""
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")
    return printable(text)


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def csv_cell(v: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: a string starting with ``=``, ``+``,
    ``-``, ``@``, tab or CR gets a leading ``'`` (OWASP's CSV-injection rule), unless it
    is a plain number (``-0.5`` stays numeric); control characters are escaped (a
    ``cat results.csv`` must not drive the terminal)."""
    if not isinstance(v, str):
        return v
    if v[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.fullmatch(v):
        v = "'" + v
    return printable(v)


def to_csv(t: ResultsTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([csv_cell(c) for c in t.columns])
    for r in t.rows:
        w.writerow([csv_cell("x".join(map(str, v)) if isinstance(v, list) and t.columns[j] ==
                             "output_shape" else _csv_value(v)) for j, v in enumerate(r)])
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


#: Axis labels for the columns a grid (and training) writes; others are labelled by name.
LABELS = {"params": "parameters", "macs": "MACs per image", "depth": "depth (layers)",
          "test_acc": "test accuracy", "best_test_acc": "best test accuracy",
          "train_acc": "train accuracy", "test_loss": "test loss", "train_loss": "train loss",
          "images_per_s": "images / s", "train_s": "training time (s)",
          "epochs_done": "epochs trained"}
_COUNTS = ("params", "macs")


def plot_series(t: ResultsTable, x: str, y: str
                ) -> tuple[list[str] | None, str, list[tuple[str, list[tuple[float, float, str]]]]]:
    """What :func:`plot` draws: (x categories or None when ``x`` is numeric, legend title,
    [(series label, [(x, y, cell), …]), …]), valid cells with a ``y`` value only.

    When ``x`` is a varied parameter, cells are grouped into one series per value of the
    other varied parameters (not the budget-solved one, which follows from them), if that
    puts at least two cells together; a non-numeric ``x`` (block types, layer lists)
    becomes categories in grid order.
    """
    for c in (x, y):
        if c not in t.columns:
            raise KeyError(f"no column '{c}' to plot; columns: {', '.join(t.columns)}")
    recs = [r for r in t.records() if r["status"] == "ok" and r[x] is not None
            and _num(r[y]) is not None]
    cats: list[str] | None = None
    if not all(_num(r[x]) is not None for r in recs):
        cats = []
        for r in recs:
            if _label(r[x]) not in cats:
                cats.append(_label(r[x]))

    def xpos(v: Any) -> float:
        return float(cats.index(_label(v))) if cats is not None else _num(v)  # type: ignore

    solved = t.param_columns[-1:] if "budget_target" in t.columns else ()
    others = [c for c in t.param_columns if c != x and c not in solved] \
        if x in t.param_columns else []
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        groups.setdefault(", ".join(f"{c}={_label(r[c])}" for c in others), []).append(r)
    if not others or len(groups) > 12 or all(len(g) < 2 for g in groups.values()):
        groups, others = {"": recs}, []
    series = []
    for label, rows in groups.items():
        pts = [(xpos(r[x]), _num(r[y]), str(r["cell"])) for r in rows]
        series.append((label, sorted(pts, key=lambda p: p[0]) if cats is None else pts))
    return cats, ", ".join(others), series  # type: ignore[return-value]


def plot(t: ResultsTable, path: str, x: str | None = None, y: str | None = None) -> str:
    """Plot ``y`` against ``x`` (default: the grid's ``plot:``, else params vs MACs).

    Series and categories as :func:`plot_series` makes them, with a legend. Parameter
    and MAC counts get engineering units and, over a wide range, log axes; accuracies
    are shown in %. Cells are labelled by name when there are few and no axis names
    them. matplotlib is imported here, on first use, with the Agg backend.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter, MaxNLocator, PercentFormatter

    x = x or t.plot[0]
    y = y or t.plot[1]
    cats, legend, series = plot_series(t, x, y)
    fig, ax = plt.subplots(figsize=(9 if len(series) > 4 else 7, 5), dpi=110)
    for label, pts in series:
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        if label:
            ax.plot(xs, ys, marker="o", ms=5, lw=1.3, label=label)
        else:
            ax.plot(xs, ys, marker="o", ms=5, lw=0, color="#3465a4")
            if len(pts) <= 40 and x not in t.param_columns:
                for a, b, cell in pts:
                    ax.annotate(cell, (a, b), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")
    if legend:
        outside = len(series) > 4        # many lines: beside the axes, not over the points
        ax.legend(fontsize=8, title=legend, title_fontsize=8,
                  **({"loc": "upper left", "bbox_to_anchor": (1.02, 1)} if outside else {}))
    if cats is None and all(float(p[0]).is_integer() for _, s in series for p in s) \
            and x not in _COUNTS:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if cats is not None:
        wide = len(cats) > 6
        ax.set_xticks(range(len(cats)), cats, rotation=30 if wide else 0,
                      ha="right" if wide else "center", fontsize=8)
        ax.set_xlim(-0.5, len(cats) - 0.5)
    for c, axis, vals in ((x, ax.xaxis, [p[0] for _, s in series for p in s]),
                          (y, ax.yaxis, [p[1] for _, s in series for p in s])):
        if c in _COUNTS:
            pos = [v for v in vals if v]
            if pos and min(pos) > 0 and max(pos) / min(pos) > 20:
                (ax.set_xscale if axis is ax.xaxis else ax.set_yscale)("log")
            axis.set_major_formatter(EngFormatter(sep=" "))
        elif c.endswith("_acc"):
            axis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.set_xlabel(LABELS.get(x, x))
    ax.set_ylabel(LABELS.get(y, y))
    ax.set_title(t.grid if (x, y) == ("params", "macs") else
                 f"{t.grid}: {LABELS.get(y, y)} by {LABELS.get(x, x)}")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=os.path.splitext(path)[1][1:] or "png")
    plt.close(fig)
    write_file(path, buf.getvalue())
    return path


def _label(v: Any) -> str:
    """A value as a legend or tick label: ``B(3,3)``, ``[2, 2, 2, 2]``, ``10``."""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


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
        write_file(p, FORMATS[f](t))
        paths.append(p)
    if with_plot and all(c in t.columns for c in t.plot):   # a metric column comes with training
        paths.append(plot(t, os.path.join(out_dir, "plot.png")))
    return paths
