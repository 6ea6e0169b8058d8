"""The graph IR as a :class:`graphviz.Digraph`: depth-collapsed view, nested clusters,
residual shortcuts, the title and the legend. Builds DOT text only; no ``dot`` run."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import networkx as nx

from archspec.errors import Location, SpecError
from archspec.ops import OPS
from archspec.render.labels import (_channels, _esc, _html, _human, _legend, _shape,
                                    op_label)
from archspec.render.palette import (_DIFF_MARK, BLOCK_KIND, DIFF_STYLES, FONT,
                                     SHORTCUT_COLOUR, Kind, kind_of)
from archspec.text import printable

FORMATS = ("svg", "png", "pdf", "dot")
DIRECTIONS = ("TB", "LR")
#: Most boxes side by side, and most clusters, that ``dot`` is asked to lay out. Its
#: layout is quadratic in both (measured, bench/bench_scaling.py: 1,000 boxes in one rank
#: take 4 s, 2,500 take 24 s, 10,000 over 5 minutes; 2,500 sibling clusters 30 s and
#: 10,000 over 5 minutes and 8 GB), while a 10,000-op chain takes 4 s.
MAX_RANK_WIDTH = 1000
MAX_CLUSTERS = 1000


@dataclass
class _View:
    """The graph as drawn at one depth: representatives, clusters and merged edges."""

    rep: dict[str, str] = field(default_factory=dict)          # IR node -> drawn node id
    collapsed: dict[str, str] = field(default_factory=dict)    # drawn id -> scope ("" = all)
    members: dict[str, list[str]] = field(default_factory=dict)  # drawn id -> its IR nodes
    clusters: dict[str, tuple[str, ...]] = field(default_factory=dict)  # drawn id -> scopes


def _check_args(fmt: str | None, depth: int | None, direction: str) -> None:
    if fmt is not None and fmt not in FORMATS:
        raise SpecError(f"unknown format '{fmt}'", Location("--format", 0, 0),
                        "choose one of " + ", ".join(FORMATS))
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool)
                              or depth < 0):
        raise SpecError(f"--depth must be 0 or more, got {depth}", Location("--depth", 0, 0),
                        "0 draws the network as one box, 1 its top-level layers; "
                        "leave it out to expand every block")
    if direction not in DIRECTIONS:
        raise SpecError(f"unknown direction '{direction}'", Location("--direction", 0, 0),
                        "choose TB (top to bottom) or LR (left to right)")


def check_expand(g: nx.DiGraph, expand: Iterable[str]) -> tuple[str, ...]:
    """The scopes to draw in full whatever the depth; SpecError for an unknown one."""
    from archspec.errors import did_you_mean
    scopes = g.graph.get("scopes", {})
    out = []
    for path in expand:
        if path not in scopes:
            raise SpecError(f"no block or scope named '{path}'",
                            Location("--expand", 0, 0),
                            did_you_mean(path, scopes) or
                            "scopes: " + ", ".join(list(scopes)[:8]) +
                            (", …" if len(scopes) > 8 else ""))
        out.append(path)
    return tuple(out)


def _make_view(g: nx.DiGraph, depth: int | None, expand: tuple[str, ...] = ()) -> _View:
    v = _View()
    inp = g.graph.get("input")
    ids: dict[str, str] = {}     # scope key -> drawn id
    for n, d in g.nodes(data=True):
        scope = tuple(d.get("scope", ()))
        full = bool(expand) and any(s in expand for s in scope)
        if n == inp or d.get("op") == "input" or depth is None or len(scope) < depth or full:
            v.rep[n] = n
            v.clusters[n] = scope
            continue
        key, clusters = ("", ()) if depth == 0 else (scope[depth - 1], scope[:depth - 1])
        did = ids.get(key)
        if did is None:
            did = key or str(g.graph.get("name") or "network")
            if did in g:
                did = f"__scope_{did}"
            ids[key] = did
            v.collapsed[did] = key
            v.members[did] = []
            v.clusters[did] = clusters
        v.members[did].append(n)
        v.rep[n] = did
    return v


def shortcut_edges(g: nx.DiGraph) -> set[tuple[str, str]]:
    """Edges on the skip path of a residual join (``add``: its definition sets ``shortcut_join``).

    The main input of an ``add`` is the one furthest (in ops) from the network
    input; every other input's edge is a shortcut, and so are the edges back along
    that input's single-file chain (a projection conv, a downsample seq) up to the
    node where it forks off the main path.
    """
    try:
        order = list(nx.topological_sort(g))
    except nx.NetworkXUnfeasible:
        order = None
    dist: dict[str, int] = {}
    if order is not None:
        for n in order:
            preds = list(g.predecessors(n))
            dist[n] = 1 + max((dist[p] for p in preds), default=-1)
    out: set[tuple[str, str]] = set()
    for n, d in g.nodes(data=True):
        op = OPS.get(d.get("op"))
        if op is None or not op.shortcut_join:
            continue
        ins = list(dict.fromkeys(d.get("inputs") or g.predecessors(n)))
        if len(ins) < 2:
            continue
        pos = {x: i for i, x in enumerate(ins)}     # ins.index in the key was quadratic
        main = max(ins, key=lambda i: (dist.get(i, 0), -pos[i])) if dist else ins[0]
        for x in ins:
            if x == main or x not in g:
                continue
            out.add((x, n))
            chain: list[tuple[str, str]] = []
            cur = x
            while g.out_degree(cur) == 1 and g.in_degree(cur) == 1:
                p = next(iter(g.predecessors(cur)))
                chain.append((p, cur))
                if g.out_degree(p) > 1:
                    out.update(chain)
                    break
                cur = p
    return out


def _scope_summary(g: nx.DiGraph, key: str, members: list[str]) -> tuple[str, str, str]:
    """(title, what it is, params · MACs) for a collapsed scope."""
    scopes = g.graph.get("scopes", {})
    info = scopes.get(key, {})
    inside = set(members)
    first_in = next((p for n in members for p in g.predecessors(n) if p not in inside), None)
    outs = [n for n in members if any(s not in inside for s in g.successors(n))]
    last = outs[-1] if outs else members[-1]
    c_in = _channels(g.nodes[first_in].get("shape")) if first_in is not None else "?"
    c_out = _channels(g.nodes[last].get("shape"))
    params = sum(g.nodes[n].get("params", 0) for n in members)
    macs = sum(g.nodes[n].get("macs", 0) for n in members)
    if key == "":
        title = str(g.graph.get("name") or "network")
        what = f"{len(members)} ops, {c_in}→{c_out}"
    else:
        title = key
        label = str(info.get("label") or key.rsplit(".", 1)[-1])
        what = f"{label}, {c_in}→{c_out}" if label != key.rsplit(".", 1)[-1] else \
            f"{len(members)} ops, {c_in}→{c_out}"
    stats = f"{_human(params)} params" + (f" · {_human(macs, 'MACs')}" if macs else "")
    return title, what, stats


def _cluster_label(g: nx.DiGraph, path: str, note: str | None = None) -> str:
    info = g.graph.get("scopes", {}).get(path, {})
    label = str(info.get("label") or "")
    local = path.rsplit(".", 1)[-1]
    if not label or label == local:
        label = ""
    if note:
        label = f"{label} ({note})" if label else note
    return _html(path, None, True, label or None, align="LEFT")


def _title(g: nx.DiGraph, extra: str | None = None) -> str:
    order = [n for n, d in g.nodes(data=True) if d.get("op") != "input"]
    nodes = g.nodes
    params = sum(nodes[n].get("params", 0) for n in order)
    params_eval = sum(nodes[n].get("params", 0) for n in order if not nodes[n].get("train_only"))
    macs = sum(nodes[n].get("macs", 0) for n in order if not nodes[n].get("train_only"))
    text = f"{g.graph.get('name') or 'network'} — {_human(params_eval)} params"
    if params != params_eval:
        text += f" (+{_human(params - params_eval)} in training-only heads)"
    text += f", {_human(macs, 'MACs')} per sample"
    return extra or text


def to_dot(g: nx.DiGraph, depth: int | None = None, direction: str = "TB", *,
           status: Mapping[str, str] | None = None,
           notes: Mapping[str, str] | None = None,
           edge_status: Mapping[tuple[str, str], str] | None = None,
           title: str | None = None,
           scope_notes: Mapping[str, str] | None = None,
           expand: Iterable[str] = ()) -> Any:
    """The diagram as a :class:`graphviz.Digraph` (no ``dot`` needed to build it).

    ``status`` / ``notes`` / ``edge_status`` are for :mod:`archspec.diff`: a node
    status (added, removed, changed, same) replaces the op-kind colours, ``notes``
    adds a line under a node (``scope_notes`` under a scope, e.g. ``was B(3,3)``), and
    removed edges are drawn dashed. ``expand`` names scopes drawn in full whatever
    the depth (``--depth 2 --expand layer2.0``: one block opened among collapsed ones).
    """
    import graphviz
    _check_args(None, depth, direction)
    view = _make_view(g, depth, check_expand(g, expand))
    diff = status is not None
    status = status or {}
    notes = notes or {}
    edge_status = edge_status or {}
    nodes = g.nodes
    dg = graphviz.Digraph(name=printable(str(g.graph.get("name") or "network")))
    dg.attr("graph", rankdir=direction, fontname=FONT, fontsize="11", labelloc="t",
            newrank="true", nodesep="0.25", ranksep="0.3")
    dg.attr("node", shape="box", style="rounded,filled", fontname=FONT, fontsize="11",
            height="0.3", margin="0.08,0.04", penwidth="1")
    dg.attr("edge", fontname=FONT, fontsize="8", fontcolor="#555555", arrowsize="0.6",
            color="#444444")

    # Nodes, grouped by cluster path.
    members: dict[tuple[str, ...], list[tuple[str, dict[str, str]]]] = {}
    kinds_used: list[Kind] = []
    any_train = False
    drawn: set[str] = set()
    inp = g.graph.get("input")
    for n in g.nodes:
        did = view.rep[n]
        if did in drawn:
            continue
        drawn.add(did)
        attrs: dict[str, str] = {}
        if did in view.collapsed:
            key, ms = view.collapsed[did], view.members[did]
            t, what, stats = _scope_summary(g, key, ms)
            train = all(nodes[m].get("train_only") for m in ms)
            st = _merge_status([status.get(m, "same") for m in ms]) if diff else None
            attrs["label"] = _html(t, stats, True, what)
            attrs["shape"] = "box3d" if not diff else "box"
            attrs["style"] = "filled"
            attrs["margin"] = "0.12,0.07"
            if diff:
                border, fill, style, _ = DIFF_STYLES[st]
                attrs.update(color=border, fillcolor=fill, style=style,
                             penwidth="2" if st != "same" else "1")
                note = (scope_notes or {}).get(key)
                attrs["label"] = _html(_DIFF_MARK[st] + t, stats, True,
                                       what + (f" ({note})" if note else ""))
            else:
                attrs.update(color=BLOCK_KIND.colour, fillcolor="#F2F2F2")
                if BLOCK_KIND not in kinds_used:
                    kinds_used.append(BLOCK_KIND)
        else:
            d = nodes[n]
            op = d.get("op")
            train = bool(d.get("train_only"))
            if n == inp or op == "input":
                attrs.update(label=_html(f"input {_shape(d.get('shape'))}"), shape="oval",
                             style="filled", fillcolor="#FFFFFF", color="#000000")
            else:
                preds = list(d.get("inputs") or ())
                in_shape = nodes[preds[0]].get("shape") if preds and preds[0] in nodes else None
                main = op_label(op, d.get("args") or {}, in_shape, d.get("shape"))
                local = n.rsplit(".", 1)[-1]
                local = None if local == op else local
                if diff:
                    st = status.get(n, "same")
                    border, fill, style, _ = DIFF_STYLES[st]
                    attrs.update(label=_html(_DIFF_MARK[st] + main, local, False, notes.get(n)),
                                 color=border, fillcolor=fill, style="rounded," + style,
                                 penwidth="2" if st != "same" else "1")
                else:
                    k = kind_of(op)
                    if k not in kinds_used:
                        kinds_used.append(k)
                    attrs.update(label=_html(main, local, False, notes.get(n)),
                                 fillcolor=k.fill, color=k.colour)
        if train:
            any_train = True
            keep = [s for s in attrs.get("style", "rounded,filled").split(",")
                    if s and s not in ("bold", "dashed")]
            attrs["style"] = ",".join(keep + ["dashed"])
        members.setdefault(view.clusters[did], []).append((did, attrs))

    _emit_clusters(dg, g, members, scope_notes or {})

    # Outputs.
    for o in g.graph.get("outputs", ()):
        src = o.get("node")
        if src not in view.rep:
            continue
        oid = f"__output_{o['name']}"
        text = f"output {o['name']}"
        if o.get("train_only"):
            text += f" (training only, loss ×{o.get('loss_weight', 1.0):g})"
        dg.node(oid, label=_html(text), shape="oval", style="filled" +
                (",dashed" if o.get("train_only") else ""), fillcolor="#FFFFFF",
                color="#000000")
        dg.edge(view.rep[src], oid, label=_shape(nodes[src].get("shape")),
                **({"style": "dashed"} if o.get("train_only") else {}))

    # Edges, merged between drawn nodes.
    skips = shortcut_edges(g)
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for u, w in g.edges:
        a, b = view.rep[u], view.rep[w]
        if a == b:
            continue
        e = merged.setdefault((a, b), {"shapes": [], "skip": True, "train": True,
                                       "status": []})
        sh = _shape(nodes[u].get("shape"))
        if sh not in e["shapes"]:
            e["shapes"].append(sh)
        e["skip"] = e["skip"] and (u, w) in skips
        e["train"] = e["train"] and bool(nodes[w].get("train_only"))
        e["status"].append(edge_status.get((u, w), "same"))
    for (a, b), e in merged.items():
        attrs = {"label": " " + ", ".join(e["shapes"])}
        styles = []
        if e["skip"]:
            attrs.update(color=SHORTCUT_COLOUR, penwidth="1.8", weight="0")
        else:
            attrs["weight"] = "4"
        if e["train"]:
            styles.append("dashed")
        st = _merge_status(e["status"])
        if diff and st in ("added", "removed"):
            attrs["color"] = DIFF_STYLES[st][0]
            attrs["penwidth"] = "2"
            if st == "removed" and "dashed" not in styles:
                styles.append("dashed")
        if styles:
            attrs["style"] = ",".join(styles)
        dg.edge(a, b, **attrs)

    head = "<BR/>".join(_esc(line) for line in _title(g, title).split("\n"))
    cells = _legend(kinds_used, bool(skips) and any(m["skip"] for m in merged.values()),
                    any_train, diff)
    legend = (f'<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="3"><TR>{"".join(cells)}</TR>'
              '</TABLE>')
    dg.attr("graph", label=f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0">'
            f'<TR><TD><B>{head}</B></TD></TR><TR><TD>{legend}</TD></TR></TABLE>>')
    n_clusters = len({path[:i] for path in members for i in range(1, len(path) + 1)})
    # read by render_bytes before it runs dot: what dot cannot lay out is refused, located
    dg.layout_problem = layout_problem(g, dict.fromkeys(view.rep.values()), merged, n_clusters,
                                       view.members)
    return dg


def layout_problem(g: nx.DiGraph, nodes: Iterable[str], edges: Iterable[tuple[str, str]],
                   clusters: int, members: Mapping[str, list[str]]) -> SpecError | None:
    """Why ``dot`` should not lay this diagram out (too many boxes in one rank, or too many
    clusters), as a located error, or None. Ranks are longest paths from the sources over
    the drawn nodes and edges, found in O(nodes + edges) like ``dot``'s first ranking."""
    nodes = list(nodes)
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    indeg = dict.fromkeys(nodes, 0)
    for a, b in edges:
        if a in succ and b in indeg:
            succ[a].append(b)
            indeg[b] += 1
    rank = dict.fromkeys(nodes, 0)
    todo = [n for n in nodes if indeg[n] == 0]
    while todo:
        n = todo.pop()
        for m in succ[n]:
            rank[m] = max(rank[m], rank[n] + 1)
            indeg[m] -= 1
            if indeg[m] == 0:
                todo.append(m)
    per_rank: dict[int, list[str]] = {}
    for n in nodes:
        per_rank.setdefault(rank[n], []).append(n)
    widest = max(per_rank.values(), key=len, default=[])
    hint = ("draw less: --depth N collapses blocks into one box each, or --format dot writes "
            "the DOT text without laying it out")
    if len(widest) > MAX_RANK_WIDTH:
        first = (members.get(widest[0]) or [widest[0]])[0]
        loc = g.nodes[first].get("loc") if first in g else None
        return SpecError(f"the diagram puts {len(widest):,} boxes side by side ({widest[0]} … "
                         f"{widest[-1]}), more than the {MAX_RANK_WIDTH:,} Graphviz lays out "
                         "in reasonable time", loc or Location("render"), hint)
    if clusters > MAX_CLUSTERS:
        return SpecError(f"the diagram has {clusters:,} nested blocks, more than the "
                         f"{MAX_CLUSTERS:,} Graphviz lays out in reasonable time",
                         next((sc["loc"] for sc in g.graph.get("scopes", {}).values()
                               if sc.get("loc") is not None), Location("render")), hint)
    return None


def _merge_status(sts: list[str]) -> str:
    s = set(sts)
    if s == {"added"}:
        return "added"
    if s == {"removed"}:
        return "removed"
    if s <= {"same"}:
        return "same"
    return "changed"


def _emit_clusters(dg: Any, g: nx.DiGraph, members: dict[tuple[str, ...], list],
                   notes: Mapping[str, str]) -> None:
    """Nested ``subgraph cluster_…`` blocks, one per scope that holds drawn nodes."""
    tree: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for path in members:
        for i in range(len(path)):
            tree.setdefault(path[:i], set()).add(path[:i + 1])
    scopes = g.graph.get("scopes", {})
    order = {p: i for i, p in enumerate(scopes)}

    def emit(target: Any, path: tuple[str, ...]) -> None:
        for did, attrs in members.get(path, ()):
            target.node(did, **attrs)
        kids = sorted(tree.get(path, ()), key=lambda p: (order.get(p[-1], len(order)), p))
        for kid in kids:
            name = kid[-1]
            info = scopes.get(name, {})
            with target.subgraph(name=f"cluster_{name}") as c:
                c.attr(label=_cluster_label(g, name, notes.get(name)), labeljust="l", fontsize="10",
                       style="rounded,dashed" if info.get("train_only") else "rounded",
                       color="#888888", fontcolor="#222222", margin="8", penwidth="1")
                emit(c, kid)

    emit(dg, ())
