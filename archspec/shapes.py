"""Stage 3: static shapes, parameter and MAC counts, and the summary table.

Everything here reads only the IR attributes documented in :mod:`archspec.graph`
and never imports torch. :func:`check_graph` re-derives every node's shape,
parameters and MACs from its ``op`` and ``args`` alone, so a graph built or edited
by other code is checked the same way the compiler checks a spec.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import networkx as nx

from archspec.errors import Location, SpecError, SpecErrors
from archspec.ops import OPS, OpError, shape_str
from archspec.roles import check_roles
from archspec.text import printable

SUMMARY_VERSION = 1


@dataclass(frozen=True)
class Row:
    """One line of the summary: a primitive op, or a block collapsed by ``--depth``."""

    name: str
    op: str                 # op name, or the block label (e.g. "B(3,3) ×4") when collapsed
    shape: tuple | None     # output shape per sample
    params: int
    macs: int
    depth: int              # number of dotted components in the name
    train_only: bool = False
    loc: str = ""           # spec location, "path:line:col"
    ops: int = 1            # primitive ops this row stands for


@dataclass(frozen=True)
class Summary:
    name: str
    input_shape: tuple
    outputs: tuple[dict, ...]        # name, node, shape, loss_weight, train_only
    params: int                      # all trainable parameters (training-only heads included)
    params_eval: int                 # parameters used in evaluation
    macs: int                        # per-sample MACs in evaluation
    macs_train: int                  # per-sample MACs in training (with training-only heads)
    ops: int
    rows: tuple[Row, ...] = field(default_factory=tuple)
    params_trainable: int | None = None   # params less those frozen by `trainable: false`


def check_graph(g: nx.DiGraph) -> None:
    """Re-infer every node's shape, params and MACs from its op and args; raise on mismatch.

    The compiler already infers shapes while it expands a spec; this is the
    stand-alone pass for graphs from elsewhere (and the cross-check in tests).
    """
    errors: list[SpecError] = []
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        n = cycle[0][0]
        raise SpecError(f"the graph has a cycle through '{n}'", g.nodes[n]["loc"])
    shapes: dict[str, tuple] = {}
    for n in nx.topological_sort(g):
        d = g.nodes[n]
        if d["op"] == "input":
            shapes[n] = d["shape"]
            continue
        op = OPS.get(d.get("op", ""))
        if op is None:
            errors.append(SpecError(f"{n}: unknown op {d.get('op')!r}", d.get("loc") or
                                    Location("<graph>"), "ops: " + ", ".join(OPS)))
            continue
        ins = [shapes.get(i) for i in d["inputs"]]
        if any(s is None for s in ins):
            continue
        try:
            s = op.infer(d["args"], ins)
        except OpError as e:
            errors.append(SpecError(f"{n}: {e.message} (input: "
                                    + ", ".join(shape_str(x) for x in ins) + ")", d["loc"],
                                    e.hint))
            continue
        shapes[n] = s
        errors.extend(_role_errors(n, d, op, ins))
        p, m = op.params(d["args"], ins, s), op.macs(d["args"], ins, s)
        if (s, p, m) != (d["shape"], d["params"], d["macs"]):
            errors.append(SpecError(
                f"{n}: stored shape/params/MACs {d['shape']}/{d['params']}/{d['macs']} differ "
                f"from inferred {s}/{p}/{m}", d["loc"]))
    if errors:
        raise SpecErrors(errors)
    check_roles(g)


def _role_errors(n: str, d: dict, op: Any, ins: list) -> list[SpecError]:
    """A node's ``init`` plan and ``trainable`` flag against its op: each planned tensor
    one the op has (in its order), each scheme known with valid arguments."""
    from archspec.ops import INIT_FNS, init_args
    at = d.get("loc") or Location("<graph>")
    if not isinstance(d.get("trainable", True), bool):
        return [SpecError(f"{n}: 'trainable' must be a bool, got {d['trainable']!r}", at)]
    names = [t for t, _ in op.tensors(d["args"], ins)] if op.tensors is not None else []
    planned = [entry[0] if isinstance(entry, tuple) and entry else entry
               for entry in d.get("init", ())]
    if planned != [t for t in names if t in planned]:
        return [SpecError(f"{n}: init plan for {planned}, but {op.name} has tensors "
                          f"{names} (in that order)", at)]
    for tensor, scheme, args in d.get("init", ()):
        fn = INIT_FNS.get(scheme)
        try:
            if fn is None:
                raise OpError(f"unknown init scheme {scheme!r}")
            init_args(fn, dict(args))
        except OpError as e:
            return [SpecError(f"{n}.{tensor}: {e.message}", at)]
    return []


def summarize(g: nx.DiGraph, depth: int | None = None) -> Summary:
    """Totals and per-node rows; ``depth`` collapses every scope deeper than N levels.

    >>> import archspec
    >>> s = summarize(archspec.compile_graph(archspec.load_spec("specs/wrn-28-10.yaml")))
    >>> s.params
    36479194
    """
    if depth is not None and depth < 0:
        raise SpecError(f"--depth must be 0 or more, got {depth}", _cli_loc("--depth"))
    # the compiler inserts nodes in spec order, after their inputs: a topological order
    # that reads like the spec (networkx's own sort interleaves branches)
    ordered = [(n, d) for n, d in g.nodes(data=True) if d["op"] != "input"]
    order = [n for n, _ in ordered]
    nodes = g.nodes
    params = sum(d["params"] for _, d in ordered)
    trainable = sum(d["params"] for _, d in ordered if d.get("trainable", True))
    params_eval = sum(d["params"] for _, d in ordered if not d["train_only"])
    macs_train = sum(d["macs"] for _, d in ordered)
    macs = sum(d["macs"] for _, d in ordered if not d["train_only"])
    outputs = tuple({"name": o["name"], "node": o["node"], "shape": nodes[o["node"]]["shape"],
                     "loss_weight": o["loss_weight"], "train_only": o["train_only"]}
                    for o in g.graph["outputs"])
    scopes = g.graph.get("scopes", {})
    rows: list[Row] = []
    index: dict[str, int] = {}
    for n, d in ordered if depth != 0 else ():
        parts = n.split(".")
        key = n if depth is None or len(parts) <= depth else ".".join(parts[:depth])
        if key == n and key not in index:
            index[key] = len(rows)
            rows.append(Row(n, d["op"], d["shape"], d["params"], d["macs"], len(parts),
                            d["train_only"], str(d["loc"])))
            continue
        if key in index:
            r = rows[index[key]]
            rows[index[key]] = Row(r.name, r.op, d["shape"], r.params + d["params"],
                                   r.macs + d["macs"], r.depth, r.train_only, r.loc, r.ops + 1)
        else:
            info = scopes.get(key, {})
            index[key] = len(rows)
            rows.append(Row(key, info.get("label", key), d["shape"], d["params"], d["macs"],
                            len(key.split(".")), bool(info.get("train_only", d["train_only"])),
                            str(info.get("loc", d["loc"])), 1))
    return Summary(g.graph["name"], tuple(nodes[g.graph["input"]]["shape"]), outputs, params,
                   params_eval, macs, macs_train, len(order), tuple(rows), trainable)


def _cli_loc(flag: str) -> Location:
    return Location(flag)


def to_json(s: Summary) -> str:
    """The stable JSON form of a summary (documented in docs/summary-json.md)."""
    doc: dict[str, Any] = {
        "archspec_summary": SUMMARY_VERSION,
        "name": s.name,
        "input_shape": ["N", *s.input_shape],
        "output_shapes": {o["name"]: ["N", *o["shape"]] for o in s.outputs},
        "outputs": [{"name": o["name"], "node": o["node"], "shape": ["N", *o["shape"]],
                     "loss_weight": o["loss_weight"], "train_only": o["train_only"]}
                    for o in s.outputs],
        "params": s.params,
        "params_eval": s.params_eval,
        "params_trainable": s.params if s.params_trainable is None else s.params_trainable,
        "macs": s.macs,
        "macs_train": s.macs_train,
        "ops": s.ops,
        "rows": [{**asdict(r), "shape": ["N", *r.shape] if r.shape is not None else None}
                 for r in s.rows],
    }
    return json.dumps(doc, indent=2)


def human(n: float, unit: str = "") -> str:
    """``36.48 M``: a count with an SI suffix."""
    if abs(n) >= 1e21:   # past the SI prefixes a reader knows: 1.23e+24 MACs
        return f"{float(n):.2e} {unit}".rstrip()
    for div, suf in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.2f} {suf}{unit}"
    return f"{n:g} {unit}".rstrip()


def to_table(s: Summary) -> str:
    """A torchinfo-like table: name, op, output shape, params, MACs, then totals."""
    head = ("Layer", "Op", "Output shape", "Params", "MACs")
    body = []
    for r in s.rows:
        name = r.name
        op = r.op + (" (train)" if r.train_only else "")
        body.append((name, op, shape_str(r.shape), f"{r.params:,}" if r.params else "-",
                     f"{r.macs:,}" if r.macs else "-"))
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(head)]
    line = "─" * (sum(widths) + 2 * (len(widths) - 1))

    def fmt(cols: tuple) -> str:
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cols, widths))).rstrip()
    out = [printable(s.name), line, fmt(head), line]     # the spec's name: one line
    out += [fmt(b) for b in body]
    out.append(line)
    out.append(f"Input shape:        {shape_str(s.input_shape)}")
    for o in s.outputs:
        tag = f"  (training only, loss weight {o['loss_weight']:g})" if o["train_only"] else ""
        out.append(f"Output {o['name']!s:<12} {shape_str(o['shape'])}{tag}")
    out.append(f"Total params:       {s.params:,} ({human(s.params)})")
    if s.params_eval != s.params:
        out.append(f"Params in eval:     {s.params_eval:,}")
    if s.params_trainable is not None and s.params_trainable != s.params:
        out.append(f"Trainable params:   {s.params_trainable:,} "
                   f"({s.params - s.params_trainable:,} frozen by trainable: false)")
    out.append(f"MACs per sample:    {s.macs:,} ({human(s.macs)})")
    if s.macs_train != s.macs:
        out.append(f"MACs in training:   {s.macs_train:,}")
    out.append(f"Ops:                {s.ops}")
    return "\n".join(out)
