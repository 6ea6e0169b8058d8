"""The run directory: everything needed to read, plot or resume a run.

::

    RUN/
      spec/…            the spec's source files (includes and extends kept beside it)
      run.json          spec path inside spec/, --set values, data set, options, fingerprint
      recipe.yaml       the resolved recipe (every field, defaults included)
      metrics.csv       one row per epoch (also metrics.jsonl)
      last/  best/      checkpoints (model.safetensors, state.pt, checkpoint.json)
      curves.png        loss and accuracy against epochs, and the lr
      summary.json      final (or latest) figures and status

Every file is written through a temporary file and ``os.replace``; the metric
files are rewritten from the checkpoint's history, so after a resume they never
hold epochs the checkpoint does not know.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from typing import Any, Iterable

from archspec.errors import Location, SpecError
from archspec.fsio import write_file

COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "images_per_s",
           "seconds", "elapsed_s")


def graph_fingerprint(g: Any) -> str:
    """A hash of the compiled network: ops, arguments, wiring, shapes and outputs."""
    h = hashlib.sha256()
    for n in sorted(g.nodes):
        a = g.nodes[n]
        h.update(repr((n, a.get("op"), sorted((a.get("args") or {}).items()), a.get("inputs"),
                       a.get("shape"), a.get("train_only"))).encode())
    h.update(repr(g.graph.get("outputs")).encode())
    return h.hexdigest()[:16]


def graph_digest(g: Any) -> dict[str, str]:
    """Per-node descriptions, to say which layers differ when a resume is refused."""
    out = {}
    for n in g.nodes:
        a = g.nodes[n]
        out[n] = f"{a.get('op')} {sorted((a.get('args') or {}).items())} <- {a.get('inputs')}"
    return out


def diff_specs(old_params: dict, new_params: dict, old_nodes: dict | None, new_nodes: dict | None
               ) -> list[str]:
    """``k: 10 → 8``, then layers added, removed or changed."""
    out = []
    # run.json holds the values as JSON (a block type as 'B(3,3)'): compare like with like
    new_params = json.loads(json.dumps(new_params, default=str))
    for k in sorted(set(old_params) | set(new_params)):
        if old_params.get(k) != new_params.get(k):
            out.append(f"{k}: {old_params.get(k)!r} → {new_params.get(k)!r}")
    if not out and old_nodes is not None and new_nodes is not None:
        gone = [n for n in old_nodes if n not in new_nodes]
        new = [n for n in new_nodes if n not in old_nodes]
        changed = [n for n in old_nodes if n in new_nodes and old_nodes[n] != new_nodes[n]]
        if gone:
            out.append(f"layers removed: {', '.join(gone[:4])}")
        if new:
            out.append(f"layers added: {', '.join(new[:4])}")
        if changed:
            out.append(f"layers changed: {', '.join(changed[:4])}")
    return out or ["the network's graph differs"]


def copy_spec_sources(run: str, spec: Any) -> str:
    """Copy every source file of ``spec`` under ``RUN/spec/``; return the main file's path there."""
    paths = [os.path.abspath(p) for p, _ in spec.sources]
    main = os.path.abspath(spec.path)
    base = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else \
        os.path.dirname(main)
    for (p, text), ap in zip(spec.sources, paths):
        write_file(os.path.join(run, "spec", os.path.relpath(ap, base)), text)
    return os.path.join("spec", os.path.relpath(main, base))


def write_json(path: str, obj: Any) -> None:
    write_file(path, json.dumps(obj, indent=1, default=str) + "\n")


def read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise SpecError(f"{path} is missing", Location(path),
                        "is this an archspec run directory?") from None
    except (OSError, ValueError) as e:
        raise SpecError(f"cannot read {path}: {e}", Location(path)) from None


def write_metrics(run: str, history: list[dict[str, Any]]) -> None:
    """metrics.csv and metrics.jsonl from the whole history (rewritten, atomically)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: (f"{row[k]:.6g}" if isinstance(row.get(k), float) else row.get(k))
                    for k in COLUMNS})
    write_file(os.path.join(run, "metrics.csv"), buf.getvalue())
    write_file(os.path.join(run, "metrics.jsonl"),
                      "".join(json.dumps(r) + "\n" for r in history))


def recorded_epochs(run: str) -> int:
    """How many finished epochs ``metrics.jsonl`` of ``run`` records (0 when none)."""
    try:
        with open(os.path.join(run, "metrics.jsonl"), encoding="utf-8") as fh:
            return sum(1 for line in fh if line.strip())
    except OSError:
        return 0


def plot_curves(path: str, history: Iterable[dict[str, Any]], title: str) -> None:
    """``curves.png``: losses, accuracies (best test epoch marked) and the learning rate
    against the epoch; a learning rate that spans a decade or more is drawn on a log axis."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    rows = list(history)
    if not rows:
        return
    ep = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    ax[0].plot(ep, [r["train_loss"] for r in rows], marker=".", label="train")
    ax[0].plot(ep, [r["test_loss"] for r in rows], marker=".", label="test")
    ax[0].set_title("loss")
    ax[1].plot(ep, [100 * r["train_acc"] for r in rows], marker=".", label="train")
    ax[1].plot(ep, [100 * r["test_acc"] for r in rows], marker=".", label="test")
    best = max(rows, key=lambda r: r["test_acc"])
    ax[1].plot([best["epoch"]], [100 * best["test_acc"]], "*", ms=11, color="C3",
               label=f"best test {100 * best['test_acc']:.2f}% (epoch {best['epoch']})")
    ax[1].set_title("accuracy (%)")
    lrs = [r["lr"] for r in rows]
    ax[2].plot(ep, lrs, marker=".", color="C2")
    if min(lrs) > 0 and max(lrs) / min(lrs) >= 10:
        ax[2].set_yscale("log")
    ax[2].set_title("learning rate (the epoch's last step)")
    for a in ax:
        a.set_xlabel("epoch")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.grid(alpha=0.3)
    ax[0].legend(fontsize=8)
    ax[1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    write_file(path, buf.getvalue())


def curves_title(spec_name: str, overrides: Iterable[Any], recipe: str, data: str,
                 world: int = 1) -> str:
    """``wrn d=28 k=10 · recipe wrn · cifar10``: what the curves are of."""
    sets = " ".join(f"{k}={v}" for k, v in overrides)
    return " · ".join(x for x in (f"{spec_name} {sets}".strip(), f"recipe {recipe}", data,
                                  f"{world} processes" if world > 1 else "") if x)
