"""What changes between two variants of an architecture: a text report and a diagram.

Nodes are matched by name (the hierarchical id of the graph IR, e.g.
``layer2.0.conv1``), so two variants of one spec line up block by block:

* **added** / **removed**: names only in B / only in A;
* **changed**: the same name with a different op, arguments, output shape,
  inputs or training-only flag (each difference spelled out, ``kernel 3×3 → 1×1``);
* **per stage** (top-level name, e.g. ``layer2``): params and MACs, A → B, with
  the delta.

The report groups identical changes of repeated blocks (``layer1.*.conv1 ×6``).
:func:`diff_dot` draws B's graph plus A's removed nodes, coloured by status.
Nothing here imports torch.

>>> import archspec
>>> a = archspec.compile_graph(archspec.load_spec("specs/wrn.yaml", {"d": 16, "k": 1}))
>>> b = archspec.compile_graph(archspec.load_spec("specs/wrn.yaml", {"d": 16, "k": 2}))
>>> d = diff_graphs(a, b)
>>> len(d.added), len(d.removed), d.params_b - d.params_a
(1, 0, 516608)
>>> d.added  # k = 2 widens layer1, so its first block gets a projection shortcut
['layer1.0.shortcut']
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

STATUSES = ("added", "removed", "changed", "same")


@dataclass(frozen=True)
class StageRow:
    """Params and MACs of one top-level stage in A and in B (0 where it is absent)."""

    stage: str
    params_a: int
    params_b: int
    macs_a: int
    macs_b: int
    in_a: bool = True
    in_b: bool = True


@dataclass
class Diff:
    """The differences between graph A and graph B."""

    label_a: str
    label_b: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)
    same: int = 0
    stages: list[StageRow] = field(default_factory=list)
    params_a: int = 0
    params_b: int = 0
    macs_a: int = 0
    macs_b: int = 0
    describe_a: dict[str, str] = field(default_factory=dict)   # removed node -> its op label
    describe_b: dict[str, str] = field(default_factory=dict)   # added node -> its op label
    edges_added: set[tuple[str, str]] = field(default_factory=set)
    edges_removed: set[tuple[str, str]] = field(default_factory=set)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed or self.edges_added
                    or self.edges_removed)

    def status(self, node: str) -> str:
        """added, removed, changed or same."""
        if node in self.changed:
            return "changed"
        if node in self._added:
            return "added"
        if node in self._removed:
            return "removed"
        return "same"

    def __post_init__(self) -> None:
        self._added: set[str] = set()
        self._removed: set[str] = set()

    def _index(self) -> None:
        self._added, self._removed = set(self.added), set(self.removed)


# ------------------------------------------------------------------ values
def _val(key: str, v: Any) -> str:
    if isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int) for x in v):
        if key in ("kernel", "size"):
            return f"{v[0]}×{v[1]}"
        return str(v[0]) if v[0] == v[1] else f"{v[0]}×{v[1]}"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _shape(s: tuple | None) -> str:
    return "?" if s is None else "×".join(str(x) for x in s)


def _local(ref: str, node: str) -> str:
    prefix = node.rsplit(".", 1)[0] + "." if "." in node else ""
    return ref[len(prefix):] if prefix and ref.startswith(prefix) else ref


def _changes(name: str, a: dict, b: dict) -> list[str]:
    out: list[str] = []
    if a["op"] != b["op"]:
        out.append(f"op {a['op']} → {b['op']}")
    else:
        aa, ba = a.get("args") or {}, b.get("args") or {}
        for k in list(aa) + [k for k in ba if k not in aa]:
            if aa.get(k) != ba.get(k):
                out.append(f"{k} {_val(k, aa.get(k, '-'))} → {_val(k, ba.get(k, '-'))}")
    ins_a, ins_b = tuple(a.get("inputs") or ()), tuple(b.get("inputs") or ())
    if ins_a != ins_b:
        if len(ins_a) == len(ins_b):   # only the inputs that moved, so repeats group
            pairs = [(x, y) for x, y in zip(ins_a, ins_b) if x != y]
            ia = ", ".join(_local(x, name) for x, _ in pairs)
            ib = ", ".join(_local(y, name) for _, y in pairs)
            out.append(f"input {ia} → {ib}")
        else:
            ia = ", ".join(_local(i, name) for i in ins_a) or "-"
            ib = ", ".join(_local(i, name) for i in ins_b) or "-"
            out.append(f"inputs {ia} → {ib}")
    if a.get("shape") != b.get("shape"):
        out.append(f"shape {_shape(a.get('shape'))} → {_shape(b.get('shape'))}")
    if bool(a.get("train_only")) != bool(b.get("train_only")):
        out.append("training only " + ("yes → no" if a.get("train_only") else "no → yes"))
    if not out and a.get("params", 0) != b.get("params", 0):   # its input grew (e.g. fc)
        out.append(f"params {a.get('params', 0):,} → {b.get('params', 0):,}")
    return out


def _stage(n: str) -> str:
    return n.split(".", 1)[0]


def _order(g: nx.DiGraph) -> list[str]:
    try:
        return list(nx.topological_sort(g))
    except nx.NetworkXUnfeasible:  # pragma: no cover - the IR is a DAG
        return list(g.nodes)


def _merge_orders(a: list[str], b: list[str]) -> list[str]:
    """B's order, with names only in A inserted after their predecessor in A."""
    out = list(dict.fromkeys(b))
    seen = set(out)
    prev = None
    for s in dict.fromkeys(a):
        if s not in seen:
            pos = out.index(prev) + 1 if prev in seen else 0
            out.insert(pos, s)
            seen.add(s)
        prev = s
    return out


def _describe(g: nx.DiGraph, n: str) -> str:
    from archspec.render import op_label
    d = g.nodes[n]
    ins = d.get("inputs") or ()
    in_shape = g.nodes[ins[0]].get("shape") if ins and ins[0] in g else None
    text = op_label(d["op"], d.get("args") or {}, in_shape, d.get("shape"))
    return text + (" (training only)" if d.get("train_only") else "")


def diff_graphs(a: nx.DiGraph, b: nx.DiGraph, label_a: str | None = None,
                label_b: str | None = None) -> Diff:
    """Match the nodes of A and B by name and compare them and their stages."""
    d = Diff(label_a or str(a.graph.get("name")), label_b or str(b.graph.get("name")))
    oa, ob = _order(a), _order(b)
    for n in ob:
        if n not in a:
            d.added.append(n)
            d.describe_b[n] = _describe(b, n)
        else:
            ch = _changes(n, a.nodes[n], b.nodes[n])
            if ch:
                d.changed[n] = ch
            else:
                d.same += 1
    for n in oa:
        if n not in b:
            d.removed.append(n)
            d.describe_a[n] = _describe(a, n)
    d.edges_added = {e for e in b.edges if not a.has_edge(*e)}
    d.edges_removed = {e for e in a.edges if not b.has_edge(*e)}
    d._index()

    def totals(g: nx.DiGraph, order: list[str]) -> tuple[dict, dict]:
        p: dict[str, int] = {}
        m: dict[str, int] = {}
        for n in order:
            if g.nodes[n]["op"] == "input":
                continue
            s = _stage(n)
            p[s] = p.get(s, 0) + g.nodes[n].get("params", 0)
            m[s] = m.get(s, 0) + g.nodes[n].get("macs", 0)
        return p, m
    pa, ma = totals(a, oa)
    pb, mb = totals(b, ob)
    for s in _merge_orders(list(pa), list(pb)):
        d.stages.append(StageRow(s, pa.get(s, 0), pb.get(s, 0), ma.get(s, 0), mb.get(s, 0),
                                 s in pa, s in pb))
    d.params_a, d.params_b = sum(pa.values()), sum(pb.values())
    d.macs_a = sum(a.nodes[n].get("macs", 0) for n in oa if not a.nodes[n].get("train_only"))
    d.macs_b = sum(b.nodes[n].get("macs", 0) for n in ob if not b.nodes[n].get("train_only"))
    return d


# ------------------------------------------------------------------ report
def _group(names: list[str], text: dict[str, str]) -> list[tuple[str, int, str]]:
    """Group names that differ only in numeric components and share a description."""
    groups: dict[tuple[str, str], list[str]] = {}
    for n in names:
        key = ".".join("*" if p.isdigit() else p for p in n.split("."))
        groups.setdefault((key, text[n]), []).append(n)
    out = []
    for (_, desc), ns in groups.items():
        parts = [n.split(".") for n in ns]
        shown = ".".join(col[0] if len(set(col)) == 1 else "*" for col in zip(*parts))
        out.append((shown, len(ns), desc))
    return out


def _group_by_stage(names: list[str], text: dict[str, str]) -> list[tuple[str, int, str]]:
    """Group names by top-level stage and description (for shape-only changes)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for n in names:
        groups.setdefault((_stage(n), text[n]), []).append(n)
    return [(ns[0] if len(ns) == 1 else f"{stage}.*", len(ns), desc)
            for (stage, desc), ns in groups.items()]


def _delta(a: int, b: int) -> str:
    diff = b - a
    if diff == 0:
        return "0"
    pct = f" ({diff / a * 100:+.1f}%)" if a else ""
    return f"{diff:+,}{pct}"


def to_text(d: Diff, limit: int | None = None) -> str:
    """The report: counts, added/removed/changed nodes, then the per-stage table."""
    from archspec.shapes import human
    out = [f"A: {d.label_a}", f"B: {d.label_b}", ""]
    if d.identical:
        out.append(f"no differences: {d.same} nodes match by name, op, arguments and shape")
    else:
        out.append(f"nodes: {len(d.added)} added, {len(d.removed)} removed, "
                   f"{len(d.changed)} changed, {d.same} unchanged")
    reshaped = [n for n, c in d.changed.items() if len(c) == 1 and c[0].startswith("shape ")]
    shape_only = set(reshaped)
    changed = [n for n in d.changed if n not in shape_only]
    sections = (("added", d.added, {n: d.describe_b[n] for n in d.added}, "+", False),
                ("removed", d.removed, {n: d.describe_a[n] for n in d.removed}, "-", False),
                ("changed", changed, {n: "; ".join(d.changed[n]) for n in changed}, "~", False),
                ("changed in shape only", reshaped, {n: d.changed[n][0] for n in reshaped}, "~",
                 True))
    for title, names, text, mark, by_stage in sections:
        if not names:
            continue
        rows = _group_by_stage(names, text) if by_stage else _group(names, text)
        out += ["", f"{title} ({len(names)}):"]
        width = min(max(len(r[0]) + (len(f" ×{r[1]}") if r[1] > 1 else 0) for r in rows), 40)
        shown = rows if limit is None else rows[:limit]
        for name, count, desc in shown:
            tag = f"{name} ×{count}" if count > 1 else name
            out.append(f"  {mark} {tag.ljust(width)}  {desc}")
        if len(shown) < len(rows):
            out.append(f"  … {len(rows) - len(shown)} more")
    out += ["", "per stage (params, MACs per sample):"]
    head = ("stage", "params A", "params B", "Δ params", "MACs A", "MACs B", "Δ MACs")
    body = []
    for r in d.stages:
        pa = f"{r.params_a:,}" if r.in_a else "-"
        pb = f"{r.params_b:,}" if r.in_b else "-"
        ma = f"{r.macs_a:,}" if r.in_a else "-"
        mb = f"{r.macs_b:,}" if r.in_b else "-"
        body.append((r.stage, pa, pb, _delta(r.params_a, r.params_b), ma, mb,
                     _delta(r.macs_a, r.macs_b)))
    total = ("total", f"{d.params_a:,}", f"{d.params_b:,}", _delta(d.params_a, d.params_b),
             f"{d.macs_a:,}", f"{d.macs_b:,}", _delta(d.macs_a, d.macs_b))
    widths = [max(len(x[i]) for x in [head, total, *body]) for i in range(len(head))]

    def fmt(row: tuple) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()
    rule = "─" * len(fmt(head))
    out += [fmt(head), rule, *(fmt(b) for b in body), rule, fmt(total)]
    out.append(f"params {human(d.params_a)} → {human(d.params_b)}, "
               f"MACs {human(d.macs_a)} → {human(d.macs_b)} per sample (MACs exclude "
               "training-only heads)")
    return "\n".join(out)


# ------------------------------------------------------------------ diagram
def union_graph(a: nx.DiGraph, b: nx.DiGraph, d: Diff) -> nx.DiGraph:
    """B's graph plus A's removed nodes and edges (IR attributes kept)."""
    u = nx.DiGraph()
    u.graph.update(b.graph)
    u.graph["scopes"] = {**a.graph.get("scopes", {}), **b.graph.get("scopes", {})}
    for n, attrs in b.nodes(data=True):
        u.add_node(n, **attrs)
    for n in d.removed:
        u.add_node(n, **a.nodes[n])
    for e in b.edges:
        u.add_edge(*e, **b.edges[e])
    for e in d.edges_removed:
        if e[0] in u and e[1] in u:
            u.add_edge(*e, **a.edges[e])
    return u


def diff_dot(a: nx.DiGraph, b: nx.DiGraph, d: Diff | None = None, depth: int | None = None,
             direction: str = "TB", title: str | None = None,
             expand: tuple[str, ...] | list[str] = ()) -> Any:
    """The diagram of B with A's removed parts, coloured by status (a graphviz.Digraph)."""
    from archspec.render import to_dot
    from archspec.shapes import human
    d = d or diff_graphs(a, b)
    u = union_graph(a, b, d)
    status = {n: d.status(n) for n in u.nodes}
    notes = {n: "; ".join(c[:2]) + (" …" if len(c) > 2 else "") for n, c in d.changed.items()}
    edge_status = {e: "added" for e in d.edges_added}
    edge_status.update({e: "removed" for e in d.edges_removed})
    title = (f"{title or d.label_a + ' → ' + d.label_b}\nparams {human(d.params_a)} → "
             f"{human(d.params_b)}, MACs {human(d.macs_a)} → {human(d.macs_b)} per sample")
    return to_dot(u, depth, direction, status=status, notes=notes, edge_status=edge_status,
                  title=title, scope_notes=scope_notes(a, b), expand=expand)


def _scope_params(g: nx.DiGraph) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, attrs in g.nodes(data=True):
        for s in attrs.get("scope", ()):
            out[s] = out.get(s, 0) + attrs.get("params", 0)
    return out


def scope_notes(a: nx.DiGraph, b: nx.DiGraph) -> dict[str, str]:
    """``was B(3,3), 17.7 k params`` for each scope of both graphs whose block or size changed."""
    from archspec.shapes import human
    sa, sb = a.graph.get("scopes", {}), b.graph.get("scopes", {})
    pa, pb = _scope_params(a), _scope_params(b)
    out: dict[str, str] = {}
    for path in sb:
        if path not in sa:
            continue
        la, lb = sa[path].get("label"), sb[path].get("label")
        parts = []
        if la != lb and la:
            parts.append(f"was {la}")
        if pa.get(path, 0) != pb.get(path, 0):
            parts.append(f"{human(pa.get(path, 0))} → {human(pb.get(path, 0))} params")
        if parts:
            out[path] = ", ".join(parts)
    return out
