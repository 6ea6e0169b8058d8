"""The spec's ``roles:``: which layers are the stem, the stages, the head and the classifier.

The torch backend's timm-style API (``forward_features``, ``forward_head``,
``reset_classifier``, ``features_only``) reads these roles; the loader only parses
and types them here, and the graph stage (:mod:`archspec.roles`) checks the names
against the compiled layers. A value is one name, a list of names, or a name with a
loop, so stages written by a ``for`` loop are named the same way::

    roles:
      stem: [conv1, bn1, relu, maxpool]
      stages: "layer{s + 1} for s in range(4)"
      head: [avgpool, flatten, fc]
      classifier: fc
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from archspec.errors import Location, SpecError, SpecErrors, did_you_mean
from archspec.spec import expr as ex
from archspec.spec.yamlsrc import YMap, YNode, YScalar, YSeq

#: The keys of ``roles:``; ``classifier`` is one name, the others lists of names.
ROLE_KEYS = ("stem", "stages", "head", "classifier")

#: The most names one ``NAME for VAR in EXPR`` entry may produce.
MAX_ROLE_NAMES = 1000

_LOOP = re.compile(r"^(?P<name>(?:[^\s{}]|\{[^{}]*\})+)\s+for\s+(?P<var>[A-Za-z_]\w*)\s+in\s+(?P<expr>\S.*)$")
_HOLE = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class RoleName:
    """One layer name of a role (its ``{expr}`` holes filled) and where it is written."""

    name: str
    loc: Location


@dataclass(frozen=True)
class Roles:
    """A spec's roles; the graph stage resolves each name to IR nodes."""

    stem: tuple[RoleName, ...]
    stages: tuple[RoleName, ...]
    head: tuple[RoleName, ...]
    classifier: RoleName | None
    loc: Location

    def marked(self) -> list[str]:
        """The roles this spec marks, for messages ("marks stem, stages")."""
        return [k for k in ROLE_KEYS if getattr(self, k)]


def _err(msg: str, node: YNode, hint: str | None = None) -> SpecError:
    return SpecError(msg, node.loc, hint)


def _evaluate(text: str, node: YScalar, offset: int, env: Mapping[str, Any]) -> Any:
    """An expression written at column ``offset`` of ``node``, located on error."""
    try:
        return ex.evaluate(ex.parse(text), env)
    except ex.ExprError as e:
        raise SpecError(e.message, node.expr_loc(offset + e.offset), e.hint) from None


def _fill(text: str, node: YScalar, offset: int, env: Mapping[str, Any]) -> str:
    """``text`` with its ``{expr}`` holes filled (``layer{s + 1}`` → ``layer2``)."""
    return _HOLE.sub(lambda m: str(_evaluate(m.group(1), node, offset + m.start(1), env)), text)


def _names(node: YScalar, env: Mapping[str, Any], role: str) -> list[RoleName]:
    """The names one string entry stands for: itself, or one per value of its loop."""
    if not isinstance(node.value, str) or not node.value.strip():
        raise _err(f"roles: '{role}' entries are layer names, got {node.value!r}", node,
                   f"for example {role}: [conv1, bn1] or {role}: \"layer{{s + 1}} for s in "
                   "range(4)\"")
    text = node.value
    m = _LOOP.match(text.strip())
    if m is None:
        return [RoleName(_fill(text, node, 0, env), node.loc)]
    start = text.index(m.group("expr"), text.index(" in ") + 1)
    values = _evaluate(m.group("expr"), node, start, env)
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise SpecError(f"roles: '{role}' loops over {values!r}, which is not a list",
                        node.expr_loc(start), "loop over a list or range(n)")
    values = list(values)
    if len(values) > MAX_ROLE_NAMES:
        raise SpecError(f"roles: '{role}' loops over {len(values):,} values, more than the "
                        f"{MAX_ROLE_NAMES:,} allowed", node.expr_loc(start))
    inner = {**env}
    out = []
    for v in values:
        inner[m.group("var")] = v
        out.append(RoleName(_fill(m.group("name"), node, 0, inner), node.loc))
    return out


def _role_list(node: YNode, env: Mapping[str, Any], role: str) -> tuple[RoleName, ...]:
    """A role's names: a string entry or a list of them, in order."""
    items = node.items if isinstance(node, YSeq) else (node,)
    out: list[RoleName] = []
    for item in items:
        if not isinstance(item, YScalar):
            raise _err(f"roles: '{role}' must be a layer name or a list of names, got a "
                       f"{'mapping' if isinstance(item, YMap) else 'list'}", item,
                       f"for example {role}: [conv1, bn1]")
        out.extend(_names(item, env, role))
    return tuple(out)


def parse_roles(node: YNode | None, env: Mapping[str, Any]) -> Roles | None:
    """The spec's ``roles:`` (None when it has none), names evaluated in ``env`` (the
    spec's parameters, lets and functions): the loop form lets a stage list follow
    the parameters (``range(len(depths))``)."""
    if node is None:
        return None
    if not isinstance(node, YMap):
        raise _err("'roles' must be a mapping", node,
                   "roles: {stem: [conv1], stages: [layer1, layer2], head: [fc], "
                   "classifier: fc}")
    errors: list[SpecError] = []
    found: dict[str, Any] = {}
    for key, value in node.entries:
        if key not in ROLE_KEYS:
            errors.append(SpecError(f"unknown key '{key}' in 'roles'", node.key_loc(key),
                                    did_you_mean(key, ROLE_KEYS) or
                                    "allowed: " + ", ".join(ROLE_KEYS)))
            continue
        try:
            found[key] = _role_list(value, env, key)
        except SpecError as e:
            errors.append(e)
    cls = found.get("classifier", ())
    if len(cls) > 1:
        errors.append(_err(f"roles: 'classifier' is one layer, got {len(cls)}",
                           node.get("classifier"), "name the final linear layer, e.g. "
                           "classifier: fc"))
    if errors:
        raise SpecErrors(errors)
    return Roles(found.get("stem", ()), found.get("stages", ()), found.get("head", ()),
                 cls[0] if cls else None, node.loc)
