"""YAML with a location on every value.

PyYAML's composer gives nodes with marks; this module turns them into small
located values (:class:`YMap`, :class:`YSeq`, :class:`YScalar`) and rejects what a
spec must never contain: Python tags, merge keys, duplicate keys, and alias
expansions that blow up. Raw dicts do not leave this module.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator

import yaml

from archspec.errors import Location, SpecError

#: Tags that YAML's core schema resolves on its own; anything else (``!!python/...``,
#: custom ``!tags``) is refused before construction, so no code can ever run.
_SAFE_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}
#: Upper bound on values after alias expansion ("billion laughs" guard).
MAX_NODES = 200_000
#: Deepest nesting of lists and mappings a spec may have. archspec checks it itself, well
#: below libyaml's own limit (1,000 since PyYAML 6.0.4, none before), so the message and
#: its location are archspec's whichever PyYAML is installed. Real specs nest under 20.
MAX_DEPTH = 100


@dataclass(frozen=True)
class YScalar:
    """A scalar: its constructed value, its location, and whether it was quoted."""

    value: Any
    loc: Location
    quoted: bool = False

    def expr_loc(self, offset: int) -> Location:
        """Location of column ``offset`` inside this scalar's text (for expression errors)."""
        return self.loc.shifted(offset + (1 if self.quoted else 0))


@dataclass(frozen=True)
class YSeq:
    items: tuple["YNode", ...]
    loc: Location

    def __iter__(self) -> Iterator["YNode"]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class YMap:
    """An ordered mapping of string keys; ``keys`` keeps each key's own location."""

    entries: tuple[tuple[str, "YNode"], ...]
    loc: Location
    key_locs: dict = field(default_factory=dict, compare=False, hash=False)

    def __contains__(self, key: str) -> bool:
        for k, _ in self.entries:    # a loop, not any(...): the loader asks this a lot
            if k == key:
                return True
        return False

    def get(self, key: str, default: "YNode | None" = None) -> "YNode | None":
        for k, v in self.entries:
            if k == key:
                return v
        return default

    def keys(self) -> list[str]:
        return [k for k, _ in self.entries]

    def items(self) -> tuple[tuple[str, "YNode"], ...]:
        return self.entries

    def key_loc(self, key: str) -> Location:
        return self.key_locs.get(key, self.loc)

    def __len__(self) -> int:
        return len(self.entries)


YNode = YScalar | YSeq | YMap


def plain(node: YNode) -> Any:
    """The node as plain Python values (locations dropped)."""
    if isinstance(node, YScalar):
        return node.value
    if isinstance(node, YSeq):
        return [plain(n) for n in node.items]
    return {k: plain(v) for k, v in node.entries}


def located(value: Any, loc: Location) -> YNode:
    """Wrap a plain Python value (from ``--set`` or a grid) as located nodes."""
    if isinstance(value, dict):
        return YMap(tuple((str(k), located(v, loc)) for k, v in value.items()), loc)
    if isinstance(value, (list, tuple)):
        return YSeq(tuple(located(v, loc) for v in value), loc)
    return YScalar(value, loc)


# ------------------------------------------------------------ YAML 1.2 core scalars
#: YAML 1.2's core schema for plain scalars. PyYAML resolves YAML 1.1, where ``1e-6`` is
#: a string (its floats need a dot and a signed exponent), ``010`` is 8, ``1:30`` is 90
#: and ``yes``/``no``/``on``/``off`` are booleans: ``params: {eps: 1e-6}`` became the text
#: '1e-6', an error far from where it was written. Under 1.2 ``1e-6``, ``1E6`` and ``.5``
#: are numbers, ``010`` is 10, and only ``true``/``false`` are booleans: ``yes``, ``no``,
#: ``on`` and ``off`` are plain words, which a field that wants true or false refuses.
_BOOL_TAG, _INT_TAG, _FLOAT_TAG = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
                                   "tag:yaml.org,2002:float")
_CORE_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_CORE_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_CORE_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                         r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


def _core_resolvers(base: dict) -> dict:
    """PyYAML's implicit resolvers with its 1.1 bool, int and float rules replaced by 1.2's."""
    out = {k: [(t, r) for t, r in v if t not in (_BOOL_TAG, _INT_TAG, _FLOAT_TAG)]
           for k, v in base.items()}
    for tag, rx, first in ((_BOOL_TAG, _CORE_BOOL, "tTfF"),
                           (_INT_TAG, _CORE_INT, "-+0123456789"),
                           (_FLOAT_TAG, _CORE_FLOAT, "-+0123456789.")):
        for ch in first:
            out.setdefault(ch, []).append((tag, rx))
    return out


def core_scalar(tag: str, text: str) -> Any:
    """The value of a scalar resolved as ``tag`` under YAML 1.2's core schema.

    >>> core_scalar(_FLOAT_TAG, "1e-6"), core_scalar(_INT_TAG, "010")
    (1e-06, 10)
    """
    if tag == _BOOL_TAG:
        if not _CORE_BOOL.match(text):
            raise ValueError(f"'{text}' is not true or false")
        return text.lower() == "true"
    if tag == _INT_TAG:
        if not _CORE_INT.match(text):
            raise ValueError(f"'{text}' is not an integer")
        base = 8 if text.startswith("0o") else 16 if text.startswith("0x") else 10
        return int(text[2:] if base != 10 else text, base)
    if not _CORE_FLOAT.match(text) and not _CORE_INT.match(text):
        raise ValueError(f"'{text}' is not a number")
    low = text.lower()
    return float(low.replace(".inf", "inf").replace(".nan", "nan"))


def _core_loader(base: type) -> type:
    """``base`` (a PyYAML loader class) resolving plain scalars by YAML 1.2's core schema."""
    return type("Core" + base.__name__, (base,),
                {"yaml_implicit_resolvers": _core_resolvers(base.yaml_implicit_resolvers)})


try:  # libyaml's parser is several times faster and keeps the same marks
    _Loader: type = _core_loader(yaml.CSafeLoader)  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = None  # set to _DepthLoader below


class _TooDeep(Exception):
    """Raised by :class:`_DepthLoader` at the first value nested past :data:`MAX_DEPTH`."""

    def __init__(self, mark: yaml.Mark):
        super().__init__(mark)
        self.mark = mark


class _DepthLoader(yaml.SafeLoader):
    """PyYAML's pure-Python composer, stopped at :data:`MAX_DEPTH` levels.

    Used only after libyaml has refused a document: pure Python PyYAML has no nesting
    limit of its own, so if the document nests too deeply before its first other error,
    this finds the same value, at the same place, that :class:`_Builder` would.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


if _Loader is None:  # pragma: no cover
    _Loader = _core_loader(_DepthLoader)


def _too_deep(mark: yaml.Mark, path: str) -> SpecError:
    return SpecError(f"the document nests more than {MAX_DEPTH} lists and mappings deep",
                     Location(path, mark.line + 1, mark.column + 1),
                     "a spec nests blocks by name ('block: Name'), not by indentation")


def _depth_error_before(text: str, path: str) -> SpecError | None:
    """The nesting error that comes before libyaml's error in ``text``, if there is one."""
    try:
        yaml.compose(text, Loader=_DepthLoader)
    except _TooDeep as e:
        return _too_deep(e.mark, path)
    except (yaml.YAMLError, RecursionError):
        pass
    return None


def _yaml_hint(problem: str) -> str:
    """A fix for PyYAML's most common complaints, in a spec's terms."""
    if "mapping values are not allowed" in problem:
        return ("a value that contains ': ' must be quoted, and a nested layer needs its own "
                "line or {...}: '- relu: {op: relu}'")
    if "could not find expected ':'" in problem:
        return "every key needs ': ' after it; check the line above for a missing colon"
    if "found undefined alias" in problem:
        return "an alias (*name) must follow its anchor (&name)"
    return "check the indentation and the brackets and quotes near here"


def _check_expansion(root: yaml.Node, path: str) -> None:
    """Refuse a document whose aliases expand to more than :data:`MAX_NODES` values, or
    that simply holds more than that many (200,000 ``let`` entries).

    The composer shares one node per anchor, so sizes are counted once per node
    (memoised): a "billion laughs" document is measured, never expanded. A node is
    shared only through an alias, so the message says aliases only when they are why.
    """
    sizes: dict[int, int] = {}
    refs: dict[int, int] = {}        # parent slots per node: more than one means an alias
    aliased: set[int] = set()        # nodes whose size counts a shared node more than once
    open_: set[int] = set()          # nodes whose children are being measured
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        kids = ([v for kv in node.value for v in kv] if isinstance(node, yaml.MappingNode)
                else list(node.value))
        if not done:
            if id(node) in open_:     # reached again from inside itself: `&a [*a]`
                m = node.start_mark
                raise SpecError("this value contains itself through a YAML alias",
                                Location(path, m.line + 1, m.column + 1),
                                "an alias (*name) may only repeat a value defined before it")
            open_.add(id(node))
            for k in kids:
                refs[id(k)] = refs.get(id(k), 0) + 1
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in sizes)
            continue
        open_.discard(id(node))
        total = 1 + sum(sizes.get(id(k), 0) for k in kids)
        sizes[id(node)] = total
        if any(refs.get(id(k), 0) > 1 or id(k) in aliased for k in kids):
            aliased.add(id(node))
        if total > MAX_NODES:
            raise _too_many(node, total, id(node) in aliased, path)


def _too_many(node: yaml.Node, total: int, aliased: bool, path: str) -> SpecError:
    """The error for a value of ``total`` values: through aliases, or simply too big."""
    loc = Location(path, node.start_mark.line + 1, node.start_mark.column + 1)
    if aliased:
        return SpecError(
            f"this value expands to {total:,} values through YAML aliases, more than the "
            f"{MAX_NODES:,} allowed", loc,
            "anchors and aliases that expand explosively are refused; define a block instead")
    n = len(node.value)
    what = f"mapping has {n:,} entries" if isinstance(node, yaml.MappingNode) else \
        f"list has {n:,} items"
    return SpecError(f"this {what} ({total:,} values in all), more than the {MAX_NODES:,} "
                     "values a document may hold", loc,
                     "a spec describes a network, not data: compute values with "
                     "expressions or loops instead of listing them")


class _Builder:
    def __init__(self, path: str):
        self.path = path
        self.count = 0
        self._constructor = yaml.SafeLoader("")

    def loc(self, node: yaml.Node) -> Location:
        m = node.start_mark
        return Location(self.path, m.line + 1, m.column + 1)

    def build(self, node: yaml.Node, depth: int = 1) -> YNode:
        self.count += 1
        if depth > MAX_DEPTH:
            raise _too_deep(node.start_mark, self.path)
        if self.count > MAX_NODES:
            raise SpecError(
                f"the document expands to more than {MAX_NODES:,} values",
                self.loc(node), "anchors and aliases that expand explosively are refused")
        if node.tag not in _SAFE_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise SpecError(
                f"YAML tag '{tag}' is not allowed in a spec",
                self.loc(node), "a spec is data: use plain values, lists and mappings")
        if isinstance(node, yaml.ScalarNode):
            try:
                value = core_scalar(node.tag, node.value) if node.tag in (
                    _BOOL_TAG, _INT_TAG, _FLOAT_TAG) else \
                    self._constructor.construct_object(node, deep=True)
            except ValueError as e:
                if str(e).startswith("'"):   # an explicit !!int or !!float on other text
                    raise SpecError(f"{e} (YAML 1.2 core schema)", self.loc(node),
                                    "write the number plainly, e.g. 1e-6, 0x1F, 10") from None
                # e.g. an integer of more than 4,300 digits
                raise SpecError(f"the value '{node.value[:20]}…' ({len(node.value):,} "
                                "characters) is not a number archspec can read",
                                self.loc(node), "write a smaller number") from None
            return YScalar(value, self.loc(node), quoted=node.style in ("'", '"'))
        if isinstance(node, yaml.SequenceNode):
            return YSeq(tuple(self.build(n, depth + 1) for n in node.value), self.loc(node))
        entries: list[tuple[str, YNode]] = []
        key_locs: dict[str, Location] = {}
        for knode, vnode in node.value:
            if knode.tag == "tag:yaml.org,2002:merge":
                raise SpecError("YAML merge keys ('<<') are not supported", self.loc(knode),
                                "define a block or use 'extends:' to reuse parts of a spec")
            if not isinstance(knode, yaml.ScalarNode):
                raise SpecError("mapping keys must be plain names", self.loc(knode))
            key = self.build(knode).value
            key = str(key) if not isinstance(key, bool) else str(key).lower()
            if key in key_locs:
                raise SpecError(f"duplicate key '{key}'", self.loc(knode),
                                f"it was first given at line {key_locs[key].line}")
            key_locs[key] = self.loc(knode)
            entries.append((key, self.build(vnode, depth + 1)))
        return YMap(tuple(entries), self.loc(node), key_locs)


def parse_yaml(text: str, path: str) -> YNode:
    """Parse one YAML document into located nodes, or raise a located :class:`SpecError`.

    >>> parse_yaml("a: [1, 2]", "x.yaml").get("a").items[1].loc
    Location(path='x.yaml', line=1, col=8)
    """
    try:
        node = yaml.compose(text, Loader=_Loader)
    except _TooDeep as e:
        raise _too_deep(e.mark, path) from None
    except (yaml.YAMLError, RecursionError) as e:
        # libyaml (since 6.0.4) or Python's stack may give out first on a deep document:
        # whether it nests too deeply before any other error is archspec's to decide.
        deep = _depth_error_before(text, path)
        if deep is not None or isinstance(e, RecursionError):
            raise deep or _too_deep(yaml.Mark(path, 0, 0, 0, None, None), path) from None
        raise _yaml_error(e, text, path) from None
    if node is None:
        raise SpecError("the file is empty", Location(path, 1, 1), "a spec is a YAML mapping")
    _check_expansion(node, path)
    try:
        return _Builder(path).build(node)
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark
        loc = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)
        raise SpecError(f"malformed YAML value: {e.problem}", loc) from None


def _yaml_error(e: yaml.YAMLError, text: str, path: str) -> SpecError:
    """PyYAML's complaint as a located error with a hint in a spec's terms."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        hint = None
        if e.context_mark is not None and (mark is None or mark.index >= len(text)
                                           or "<stream end>" in str(e.problem)):
            # the file ended inside a construct: point at where the construct began
            what = str(e.context).replace("while parsing ", "").removeprefix("a ")
            hint = f"the {what} that starts here is never closed"
            mark = e.context_mark
        loc = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)
        if mark is not None and text[mark.index:mark.index + 1] == "\t":
            hint = "YAML indents with spaces, never tabs"
        elif hint is None:
            hint = _yaml_hint(str(e.problem))
        what = e.problem or e.context
        if e.problem and e.context and not str(e.context).startswith("while"):
            what = f"{e.context}, {e.problem}"   # e.g. "expected a single document ..."
        return SpecError(f"malformed YAML: {what}", loc, hint)
    if isinstance(e, yaml.reader.ReaderError):   # a control character: no mark, only a position
        before = text[:e.position]
        loc = Location(path, before.count("\n") + 1, e.position - (before.rfind("\n") + 1) + 1)
        code = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or "\0")
        return SpecError(f"malformed YAML: character U+{code:04X} is not allowed ({e.reason})",
                         loc, "a spec is a text file; remove the control character")
    # composer errors without marks (e.g. several documents)
    return SpecError(f"malformed YAML: {str(e).splitlines()[0]}", Location(path, 1, 1))


def parse_set_value(raw: str, where: str) -> Any:
    """The value of a command line's ``key=value`` (``--set``, ``--recipe-set``), read as
    a YAML 1.2 scalar or flow list exactly as in a file, so ``1e-6`` is a number and
    ``no`` a word on the command line too; text that is not such a value (malformed
    YAML, a mapping, a huge integer) stays the text it was, for the field to judge.

    >>> parse_set_value("1e-6", "--set"), parse_set_value("no", "--set"), parse_set_value("[1, 2]", "--set")
    (1e-06, 'no', [1, 2])
    """
    if not raw.strip():
        return ""
    try:
        value = plain(parse_yaml(raw, where))
    except (SpecError, ValueError):   # malformed YAML, a huge integer, a lone surrogate
        return raw
    return raw if isinstance(value, dict) else value
