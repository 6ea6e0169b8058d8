"""The spec's roles on the IR: stem, stages, head and classifier as nodes and static shapes.

:func:`resolve_roles` turns the names of a spec's ``roles:`` (:mod:`archspec.spec.roles`)
into ``g.graph["roles"]`` (docs/ir.md): the tensor each stage hands on, the one the head
reads, the classifier's widths and timm's ``feature_info``, all from the static shapes,
so the torch backend builds ``forward_features`` / ``forward_head`` / ``features_only``
generically and no forward pass is needed to describe a backbone. Never imports torch.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import networkx as nx

from archspec.errors import Location, SpecError, SpecErrors, did_you_mean
from archspec.ops import OPS
from archspec.spec.roles import ROLE_KEYS, RoleName, Roles


def _members(g: nx.DiGraph, name: str) -> list[str]:
    """The IR nodes a role name stands for: an op, or every op of a scope."""
    if name in g and g.nodes[name]["op"] != "input":
        return [name]
    if name in g.graph.get("scopes", {}):
        return [n for n, d in g.nodes(data=True) if name in d["scope"]]
    return []


def _leaving(g: nx.DiGraph, nodes: set[str]) -> list[str]:
    """The tensors made inside ``nodes`` that evaluation reads outside them (or outputs)."""
    outs = {o["node"] for o in g.graph["outputs"] if not o["train_only"]}
    leave = []
    for n in nodes:
        readers = [v for v in g.successors(n) if v not in nodes and not g.nodes[v]["train_only"]]
        if readers or n in outs:
            leave.append(n)
    return sorted(leave, key=list(g.nodes).index)


def _entering(g: nx.DiGraph, nodes: set[str]) -> list[str]:
    """The tensors made outside ``nodes`` that they read."""
    ins = {i for n in nodes for i in g.nodes[n]["inputs"] if i not in nodes}
    return sorted(ins, key=list(g.nodes).index)


def _choices(g: nx.DiGraph) -> list[str]:
    return [n for n in g.nodes if g.nodes[n]["op"] != "input"] + list(g.graph.get("scopes", {}))


def _resolve(g: nx.DiGraph, role: str, rn: RoleName) -> set[str]:
    nodes = _members(g, rn.name)
    if not nodes:
        raise SpecError(f"roles: {role} names undefined layer '{rn.name}'", rn.loc,
                        did_you_mean(rn.name, _choices(g)) or
                        "name a layer or a block, seq or repeat by its full name "
                        "(layer1, features.3, layer3.0.conv1)")
    if all(g.nodes[n]["train_only"] for n in nodes):
        raise SpecError(f"roles: {role} names '{rn.name}', a training-only head", rn.loc,
                        "roles name the layers that run in evaluation")
    return set(nodes)


def _tap(g: nx.DiGraph, role: str, rn: RoleName, nodes: set[str]) -> str:
    """The one tensor a stem or stage hands on (a feature map, C×H×W)."""
    leave = _leaving(g, nodes)
    if len(leave) != 1:
        raise SpecError(f"roles: {role} '{rn.name}' has {len(leave)} tensors leaving it"
                        + (f" ({', '.join(leave[:4])})" if leave else ""), rn.loc,
                        "a stem or stage is a layer or scope whose one output the rest reads")
    if len(g.nodes[leave[0]]["shape"]) != 3:
        raise SpecError(f"roles: {role} '{rn.name}' outputs {g.nodes[leave[0]]['shape']}, "
                        "not a feature map (C, H, W)", rn.loc,
                        "stages are the convolutional part, before pooling and flattening")
    return leave[0]


def _feature(g: nx.DiGraph, rn: RoleName, node: str, index: int,
             wide: dict[str, tuple] | None) -> dict[str, Any]:
    """timm's feature_info entry: channels, reduction (the stride from the input: how
    much the map's height grows per input row, from the shapes at two input sizes, so
    valid convolutions' borders do not count) and the module's name."""
    c, h, _ = g.nodes[node]["shape"]
    in_h = g.nodes[g.graph["input"]]["shape"][1]
    reduction = max(1, round(in_h / h))
    if wide and node in wide and wide[node][1] > h:
        reduction = max(1, round(in_h / (wide[node][1] - h)))
    return {"num_chs": int(c), "reduction": reduction, "module": rn.name, "index": index,
            "node": node}


def _wide_shapes(g: nx.DiGraph, upto: Iterable[str]) -> dict[str, tuple] | None:
    """Every shape ``upto``'s nodes need, inferred again for an input twice as high and
    wide (None when an op refuses that size: reductions then come from one size)."""
    inp = g.graph["input"]
    shape = g.nodes[inp]["shape"]
    if len(shape) != 3:
        return None
    upto = list(upto)
    if not upto:
        return None
    need = set(upto) | nx.ancestors(g, upto[-1])   # the taps run in order: the last needs all
    wide: dict[str, tuple] = {inp: (shape[0], 2 * shape[1], 2 * shape[2])}
    for n in g.nodes:            # spec order is a topological order
        if n == inp or n not in need:
            continue
        d = g.nodes[n]
        try:
            wide[n] = tuple(OPS[d["op"]].infer(d["args"], [wide[i] for i in d["inputs"]]))
        except Exception:        # noqa: BLE001 - any refusal: fall back to one size
            return None
    return wide


def _in_order(g: nx.DiGraph, taps: Sequence[tuple[RoleName, str]], role: str) -> None:
    """Each tap feeds the next (the stem the first stage, each stage the one after)."""
    for (a, na), (b, nb) in zip(taps, taps[1:]):
        if na == nb or not nx.has_path(g, na, nb):
            raise SpecError(f"roles: '{b.name}' does not read from '{a.name}' (the {role} are "
                            "listed in the order the network runs them)", b.loc,
                            "list the stem's layers and then the stages in spec order")


def _head(g: nx.DiGraph, roles: Roles) -> tuple[set[str], str]:
    """The head's nodes and the one tensor it reads (forward_features' output)."""
    nodes: set[str] = set()
    for rn in roles.head:
        nodes |= _resolve(g, "head", rn)
    nodes = {n for n in nodes if not g.nodes[n]["train_only"]}
    ins = _entering(g, nodes)
    if len(ins) != 1:
        raise SpecError(f"roles: the head reads {len(ins)} tensors from outside it"
                        + (f" ({', '.join(ins[:4])})" if ins else ""), roles.head[0].loc,
                        "the head is the layers after the features, reading one tensor "
                        "(e.g. head: [avgpool, flatten, fc])")
    for o in g.graph["outputs"]:
        if not o["train_only"] and o["node"] not in nodes:
            raise SpecError(f"roles: output '{o['name']}' ({o['node']}) is not in the head",
                            roles.head[-1].loc, "the head ends in the network's outputs: "
                            "list every layer after the features")
    return nodes, ins[0]


def _classifier(g: nx.DiGraph, rn: RoleName, head: set[str]) -> tuple[str, int, int]:
    """The classifier's node, its input width (num_features) and its classes."""
    nodes = _resolve(g, "classifier", rn)
    if len(nodes) != 1:
        raise SpecError(f"roles: classifier '{rn.name}' is a scope of {len(nodes)} layers",
                        rn.loc, "name the final linear layer itself (classifier.1, fc)")
    (node,) = nodes
    d = g.nodes[node]
    op = OPS.get(d["op"])
    ins = [g.nodes[i]["shape"] for i in d["inputs"]]
    if op is None or op.init != "linear" or len(ins) != 1 or len(ins[0]) != 1:
        raise SpecError(f"roles: classifier '{rn.name}' is op '{d['op']}' on {ins}, not a "
                        "linear layer on flat features", rn.loc,
                        "reset_classifier replaces it by an nn.Linear: name the last "
                        "linear layer")
    if node not in head:
        raise SpecError(f"roles: classifier '{rn.name}' is not in the head", rn.loc,
                        "add it (or the scope holding it) to 'head'")
    return node, int(ins[0][0]), int(d["shape"][0])


def resolve_roles(g: nx.DiGraph, roles: Roles | None) -> dict[str, Any] | None:
    """``g.graph["roles"]`` for a compiled graph (None without ``roles:``); every
    problem is a located :class:`SpecError` (several as :class:`SpecErrors`)."""
    if roles is None:
        return None
    errors: list[SpecError] = []
    taps: list[tuple[RoleName, str]] = []        # the stem's (its last layer), the stages'
    for k, rn in enumerate(roles.stem + roles.stages):
        role = "stem" if k < len(roles.stem) else "stage"
        try:
            nodes = _resolve(g, role, rn)
            if role == "stage" or k == len(roles.stem) - 1:
                taps.append((rn, _tap(g, role, rn, nodes)))
        except SpecError as e:
            errors.append(e)
    stage_taps = [t for t in taps if t[0] in roles.stages]
    out: dict[str, Any] = {k: tuple(r.name for r in getattr(roles, k)) for k in ROLE_KEYS[:3]}
    out.update(classifier=None, head_input=None, num_features=None, num_classes=None,
               loc=roles.loc)
    try:
        _in_order(g, taps, "stem and stages")
        if roles.head:
            head, out["head_input"] = _head(g, roles)
            if stage_taps and out["head_input"] != stage_taps[-1][1] and \
                    not nx.has_path(g, stage_taps[-1][1], out["head_input"]):
                raise SpecError(f"roles: the head does not read from the last stage "
                                f"'{stage_taps[-1][0].name}'", roles.head[0].loc,
                                "the head follows the stages")
            if roles.classifier is not None:
                out["classifier"], out["num_features"], out["num_classes"] = \
                    _classifier(g, roles.classifier, head)
        elif roles.classifier is not None:
            raise SpecError("roles: a classifier needs a head", roles.classifier.loc,
                            "list the head's layers: head: [avgpool, flatten, fc]")
    except SpecError as e:
        errors.append(e)
    if errors:
        raise SpecErrors(errors)
    wide = _wide_shapes(g, [n for _, n in taps])
    out["features"] = tuple(_feature(g, rn, n, i, wide) for i, (rn, n) in enumerate(taps))
    return out


def check_roles(g: nx.DiGraph) -> None:
    """Re-derive ``g.graph["roles"]`` from its names (check_graph's cross-check)."""
    stored = g.graph.get("roles")
    if stored is None:
        return
    loc = stored.get("loc") or Location("<graph>")

    def names(key: str) -> tuple[RoleName, ...]:
        return tuple(RoleName(n, loc) for n in stored.get(key) or ())
    cls = stored.get("classifier")
    again = resolve_roles(g, Roles(names("stem"), names("stages"), names("head"),
                                   RoleName(cls, loc) if cls else None, loc))
    for key, value in again.items():
        if stored.get(key) != value:
            raise SpecError(f"roles: stored {key} {stored.get(key)!r} differs from the "
                            f"derived {value!r}", loc)


def marked_words(roles: dict[str, Any] | None) -> str:
    """What a graph's roles mark, for the torch API's errors: ``stem, stages and head``
    or ``no roles``."""
    if not roles:
        return "no roles (it has no 'roles:' section)"
    words = [k for k in ROLE_KEYS if roles.get(k)]
    if not words:
        return "no roles (its 'roles:' section is empty)"
    return "only " + ", ".join(words) if len(words) < len(ROLE_KEYS) else ", ".join(words)


class FeatureInfo:
    """timm's ``FeatureInfo`` for a ``features_only`` model: every feature's dict
    (``num_chs``, ``reduction``, ``module``, ``index``) and the chosen ``out_indices``.
    ``channels()``, ``reduction()`` and ``module_name()`` give the chosen features'
    values (or those at ``idx``, an index or a list of them); indexing and ``len``
    reach every feature, as timm's do."""

    def __init__(self, info: Iterable[dict[str, Any]], out_indices: Sequence[int]):
        self.info = [dict(d) for d in info]
        self.out_indices = tuple(out_indices)

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, (list, tuple)):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def get_dicts(self, keys: Sequence[str] | None = None,
                  idx: int | Sequence[int] | None = None) -> Any:
        pick = (lambda d: dict(d)) if keys is None else (lambda d: {k: d[k] for k in keys})
        if idx is None:
            return [pick(self.info[i]) for i in self.out_indices]
        if isinstance(idx, (list, tuple)):
            return [pick(self.info[i]) for i in idx]
        return pick(self.info[idx])

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("module", idx)

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)

    def __repr__(self) -> str:
        return f"FeatureInfo({self.get_dicts()!r}, out_indices={self.out_indices})"
