"""The init notation: which scheme initialises which learnt tensor, by op kind, block and
layer; and ``trainable``. Torch-free: the graph stage resolves each node's plan here and
stores it in the IR (``init``, ``trainable``); the torch backend only runs it.

A rule set is a mapping, applied in order (later wins, per tensor)::

    init:                                     # the spec's: model-wide
      scheme: torchvision_resnet              # a named scheme first (optional)
      conv: {weight: {kaiming_normal: {mode: fan_out, nonlinearity: relu}}, bias: zeros}
      linear: {weight: {normal: {std: 0.01}}, bias: zeros}
      norm: {weight: ones, bias: zeros}       # an init role (conv, linear, norm) or an op
      bias: zeros                             # a tensor name alone: any op that has one

or a scheme's name (``init: wrn``). Named schemes are rule sets themselves, written in
this notation in ``init_schemes.yaml``. A tensor's scheme is a word (``zeros``, ``ones``)
or ``{name: {arg: value}}`` over :data:`archspec.ops.INIT_FNS`; argument values are
numbers, words (``fan_out``) or expressions over the scope's parameters and ``let`` and
the tensor's op's ``fan_in`` / ``fan_out`` (its weight's, as torch computes them).
"""
from __future__ import annotations

import os
from dataclasses import replace
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any, Mapping

from archspec.errors import Location, SpecError, SpecErrors, did_you_mean
from archspec.ops import INIT_FNS, OPS, OpDef, OpError, init_args, tensor_fans
from archspec.spec import expr as ex
from archspec.spec.model import InitRule
from archspec.spec.yamlsrc import YMap, YNode, YScalar, parse_yaml, plain

SCHEMES_FILE = os.path.join(os.path.dirname(__file__), "init_schemes.yaml")
#: The learnt tensors' names that OpDef.tensors use.
TENSOR_NAMES = ("weight", "bias")


def targets() -> tuple[str, ...]:
    """What an init key may select: an op with learnt tensors, or an init role."""
    ops = [o.name for o in OPS.values() if o.tensors is not None]
    return tuple(ops + sorted({o.init for o in OPS.values() if o.init} - set(ops)))


def _fail(msg: str, at: YNode | Location, hint: str | None = None) -> SpecError:
    return SpecError(msg, at if isinstance(at, Location) else at.loc, hint)


# ------------------------------------------------------------------ parsing
def parse_init(node: YNode, where: str = "'init'") -> tuple[InitRule, ...]:
    """A rule set (mapping) or a scheme name as rules, in application order."""
    if isinstance(node, YScalar):
        if not isinstance(node.value, str):
            raise _fail(f"{where} must be a scheme name or a mapping of rules, got "
                        f"{plain(node)!r}", node, "e.g. init: torchvision_resnet, or "
                        "init: {weight: {normal: {std: 0.01}}, bias: zeros}")
        return named_scheme(node.value, node.loc)
    if not isinstance(node, YMap):
        raise _fail(f"{where} must be a scheme name or a mapping of rules", node)
    rules: list[InitRule] = []
    errors: list[SpecError] = []
    for key, v in node.entries:
        try:
            rules.extend(_entry(key, v, node.key_loc(key)))
        except SpecError as e:
            errors.extend(e.errors)
    if errors:
        raise SpecErrors(errors)
    return tuple(rules)


def _entry(key: str, v: YNode, at: Location) -> list[InitRule]:
    """One key of a rule set: ``scheme``, a tensor name, or a target with its tensors."""
    if key == "scheme":
        if not (isinstance(v, YScalar) and isinstance(v.value, str)):
            raise _fail("'scheme' must name an init scheme", v, "e.g. scheme: torchvision_resnet")
        return list(named_scheme(v.value, v.loc))
    if key in TENSOR_NAMES:
        return [tensor_rule(None, key, v)]
    if key == "layers":
        if not isinstance(v, YMap):
            raise _fail("init 'layers' must map layer names to their tensors' schemes", v,
                        "e.g. layers: {fc: {bias: zeros}, \"aux*.fc2\": {bias: zeros}}")
        return [replace(r, layer=name, loc=v.key_loc(name)) for name, lv in v.entries
                for r in _tensors_of(name, lv)]
    if key in targets():
        return [replace(r, target=key) for r in _tensors_of(key, v)]
    known = ("scheme", "layers") + TENSOR_NAMES + targets()
    raise _fail(f"unknown init target '{key}'", at, did_you_mean(key, known) or
                "an init key is scheme, a tensor (weight, bias), an op (conv, batchnorm, "
                "linear, …) or a role (conv, linear, norm)")


def _tensors_of(key: str, v: YNode) -> list[InitRule]:
    """``{weight: <scheme>, bias: <scheme>}`` under a target or a layer name."""
    if not isinstance(v, YMap):
        raise _fail(f"init of '{key}' must map its tensors to schemes", v,
                    f"e.g. {key}: {{weight: ones, bias: zeros}}")
    out = []
    for t, tv in v.entries:
        if t not in TENSOR_NAMES:
            raise _fail(f"unknown tensor '{t}' in the init of '{key}'", v.key_loc(t),
                        did_you_mean(t, TENSOR_NAMES) or "tensors: " + ", ".join(TENSOR_NAMES))
        out.append(tensor_rule(None, t, tv))
    return out


def tensor_rule(target: str | None, tensor: str, v: YNode) -> InitRule:
    """One tensor's scheme: a word (``zeros``) or ``{scheme: {args}}``; literal
    arguments are checked now (a negative std is refused here), expressions later."""
    if isinstance(v, YScalar) and isinstance(v.value, str):
        name, args, at = v.value, (), v
    elif isinstance(v, YMap) and len(v) == 1:
        name, a = v.entries[0]
        at = YScalar(name, v.key_loc(name))
        if isinstance(a, YScalar) and a.value is None:
            args = ()
        elif isinstance(a, YMap):
            args = tuple(a.entries)
        else:
            raise _fail(f"the arguments of init '{name}' must be a mapping", a,
                        f"e.g. {{{name}: {{std: 0.01}}}}")
    else:
        raise _fail(f"the init of {tensor} must be a scheme: a word or {{scheme: {{args}}}}", v,
                    "e.g. zeros, or {normal: {std: 0.01}}")
    fn = INIT_FNS.get(name)
    if fn is None:
        raise _fail(f"unknown init scheme '{name}'", at, did_you_mean(name, INIT_FNS) or
                    "schemes: " + ", ".join(INIT_FNS))
    for k, n in args:      # names and presence now, for expressions too
        if fn.field(k) is None:
            names = ", ".join(a.name for a in fn.args)
            raise _fail(f"unknown argument '{k}' for init '{name}'", n,
                        f"it takes {names}" if names else f"'{name}' takes no arguments")
    literal = {k: n.value for k, n in args if isinstance(n, YScalar) and _literal(fn, k, n)}
    try:
        init_args(fn, literal, complete=len(literal) == len(args))
    except OpError as e:
        raise _fail(f"init '{name}': {e.message}", dict(args).get(e.field or "", at),
                    e.hint) from None
    return InitRule(target, tensor, name, args, at.loc)


def replayable(rules: tuple[InitRule, ...]) -> bool:
    """Whether these rules give every node the same plan wherever it is: no layer-name
    pattern and only literal arguments (the graph stage then replays a remembered block
    instance instead of expanding it again)."""
    return all(r.layer is None and all(isinstance(n, YScalar) and _literal(INIT_FNS[r.scheme], k, n)
                                       for k, n in r.args) for r in rules)


def _literal(fn: Any, k: str, n: YScalar) -> bool:
    """A value known without a scope: a number, or a word for a choice argument."""
    f = fn.field(k)
    if isinstance(n.value, str):
        return f is not None and f.type == "choice" and n.value.isidentifier()
    return True


@lru_cache(maxsize=1)
def _library() -> dict[str, tuple[InitRule, ...]]:
    """The named schemes, parsed from init_schemes.yaml (written in this notation)."""
    with open(SCHEMES_FILE, encoding="utf-8") as fh:
        root = parse_yaml(fh.read(), SCHEMES_FILE)
    out: dict[str, tuple[InitRule, ...]] = {}
    for name, body in root.get("schemes").entries:
        out[name] = () if isinstance(body, YScalar) and body.value is None else \
            parse_init(body, f"init scheme '{name}'")
    return out


def scheme_names() -> tuple[str, ...]:
    """Every named scheme, in the library's order."""
    return tuple(_library())


def named_scheme(name: str, at: Location) -> tuple[InitRule, ...]:
    """The rules of a named scheme, or a located error with the names it might be."""
    lib = _library()
    if name not in lib:
        raise SpecError(f"unknown init scheme '{name}'", at, did_you_mean(name, lib) or
                        "one of " + ", ".join(lib))
    return lib[name]


# --------------------------------------------------------------- resolving
Chain = tuple[tuple[tuple[InitRule, ...], Mapping[str, Any]], ...]


def _matches(rule: InitRule, op: OpDef, tensor: str, nid: str) -> bool:
    if rule.layer is not None and not fnmatchcase(nid, rule.layer):
        return False
    return rule.tensor == tensor and rule.target in (None, op.name, op.init)


def plan(op: OpDef, tensors: tuple[tuple[str, tuple[int, ...]], ...], chain: Chain,
         where: str) -> tuple[tuple[str, str, tuple[tuple[str, Any], ...]], ...]:
    """Each tensor's winning rule (the last that selects it along ``chain``, outermost
    scope first, the layer's own last), with its arguments evaluated and checked:
    ``(("weight", "normal", (("std", 0.01),)), …)``. A tensor no rule selects keeps
    its torch default and is not listed."""
    by_name = any(r.layer is not None for rules, _ in chain for r in rules)
    key = (op.name, tuple((t, len(sh)) for t, sh in tensors), tuple(id(r) for r, _ in chain))
    hit = None if by_name else _PLANS.get(key)
    if hit is not None and all(a is b for a, (b, _) in zip(hit[0], chain)):
        return hit[1]
    out = []
    literal = True
    fans = tensor_fans(tensors[0][1]) if tensors else None
    for tensor, shape in tensors:
        won = None
        for rules, env in chain:
            for r in rules:
                if _matches(r, op, tensor, where):
                    won = (r, env)
        if won is not None:
            out.append((tensor, won[0].scheme, evaluate_rule(won[0], won[1], fans, shape,
                                                             f"{where}.{tensor}")))
            literal = literal and id(won[0]) in _LITERAL
    if literal and not by_name and len(_PLANS) < 4096:   # the same plan for every such node
        _PLANS[key] = (tuple(r for r, _ in chain), tuple(out))
    return tuple(out)


#: (op, tensor ranks, rule sets) → (the rule sets, the plan), for plans of literal rules.
_PLANS: dict[tuple, tuple[tuple, tuple]] = {}


def evaluate_rule(rule: InitRule, env: Mapping[str, Any], fans: tuple[int, int] | None,
                  shape: tuple[int, ...], what: str) -> tuple[tuple[str, Any], ...]:
    """A rule's arguments for one tensor: words kept, expressions evaluated with
    ``fan_in``/``fan_out`` in scope, then checked as the scheme requires."""
    fn = INIT_FNS[rule.scheme]
    if len(shape) < fn.min_rank:
        raise SpecError(f"{what}: init '{rule.scheme}' needs a tensor of {fn.min_rank} or "
                        f"more dims, and {what} has shape {tuple(shape)}", rule.loc,
                        "fan-based schemes are for conv and linear weights; use ones, "
                        "zeros, constant or normal here")
    hit = _LITERAL.get(id(rule))
    if hit is not None and hit[0] is rule:     # literal arguments: the same for every node
        return hit[1]
    given: dict[str, Any] = {}
    scope: Mapping[str, Any] | None = None
    for k, node in rule.args:
        if isinstance(node, YScalar) and _literal(fn, k, node):
            given[k] = node.value
            continue
        if scope is None:
            scope = {**env, **({"fan_in": fans[0], "fan_out": fans[1]} if fans else {})}
        try:
            given[k] = ex.evaluate(ex.parse(str(node.value)), scope) \
                if isinstance(node, YScalar) and isinstance(node.value, str) else plain(node)
        except ex.ExprError as e:
            hint = e.hint
            if "fan_" in str(node.value) and fans is None:
                hint = f"{what} has no fan_in / fan_out: its op's weight has under 2 dims"
            raise SpecError(f"{what}: {e.message}", node.expr_loc(e.offset)
                            if isinstance(node, YScalar) else node.loc, hint) from None
    try:
        out = tuple(init_args(fn, given).items())
    except OpError as e:
        node = dict(rule.args).get(e.field or "")
        raise SpecError(f"{what}: init '{rule.scheme}': {e.message}",
                        node.loc if node is not None else rule.loc, e.hint) from None
    if scope is None and len(_LITERAL) < 4096:      # no expression was evaluated
        _LITERAL[id(rule)] = (rule, out)
    return out


#: id(rule) → (rule, its checked arguments), for rules whose arguments are all literal.
_LITERAL: dict[int, tuple[InitRule, tuple]] = {}


def check_own(rules: tuple[InitRule, ...], op: OpDef, tensors: tuple, where: str) -> None:
    """A layer's own rule naming a tensor its op lacks (``bias: zeros`` on a conv
    without bias) is an error: it would silently do nothing."""
    names = [t for t, _ in tensors]
    for r in rules:
        if r.target is None and r.tensor not in names:
            has = f"its tensors: {', '.join(names)}" if names else "it learns nothing"
            raise SpecError(f"{where}: init of '{r.tensor}', but this {op.name} has no "
                            f"'{r.tensor}' ({has})",
                            r.loc, "bias: false leaves a conv or linear without a bias"
                            if r.tensor == "bias" else None)


# ------------------------------------------------------------------ layers
def layer_roles(body: YMap, kind: str) -> tuple[tuple[InitRule, ...], YNode | None, set[str]]:
    """A layer's ``init:`` rules, its ``trainable:`` value and the keys they took. An op
    with a field named ``init`` (scale, prelu: the starting value) keeps a scalar
    ``init:`` as that field; a mapping is always the init notation."""
    keys: set[str] = set()
    rules: tuple[InitRule, ...] = ()
    if "init" in body:
        v = body.get("init")
        name = plain(body.get("op")) if kind == "op" else None
        op = OPS.get(name) if isinstance(name, str) else None
        if isinstance(v, YMap) or op is None or op.field("init") is None:
            rules = parse_init(v, "a layer's 'init'")
            keys.add("init")
    trainable = body.get("trainable") if "trainable" in body else None
    if trainable is not None:
        keys.add("trainable")
    return rules, trainable, keys


def unmatched(rules: tuple[InitRule, ...], g: Any) -> list[SpecError]:
    """Spec-level ``layers:`` rules naming a layer (no ``*?[``) that has no such tensor:
    a misspelt name would otherwise leave the layer at its default init, silently. A
    pattern may match nothing (``"aux*.fc2"`` where aux_logits is false)."""
    out = []
    seen: set[tuple[str, str]] = set()
    for r in rules:
        if r.layer is None or (r.layer, r.tensor) in seen or any(c in r.layer for c in "*?["):
            continue
        seen.add((r.layer, r.tensor))
        if not any(fnmatchcase(n, r.layer) and r.tensor in [t for t, *_ in d["init"]]
                   for n, d in g.nodes(data=True)):
            names = [n for n, d in g.nodes(data=True) if d["params"]]
            out.append(SpecError(f"init rule for layer '{r.layer}': no layer of that name has "
                                 f"a {r.tensor}", r.loc,
                                 did_you_mean(r.layer, names) or "a full layer name such as "
                                 "layer1.0.bn2, or a pattern such as \"layer*.bn2\""))
    return out
