"""Load a YAML spec into a validated, frozen :class:`~archspec.spec.model.Spec`.

The loader resolves ``extends`` (a spec overriding another's parameters) and
``include`` (block and table libraries), checks every key against a closed
vocabulary (with "did you mean"), applies ``--set`` overrides, evaluates the
parameters' ``let`` values and ``checks``, and leaves per-instance expressions
for the graph stage.
"""
from __future__ import annotations

import math
import os
import re
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping

from archspec.errors import Location, SpecError, SpecErrors, did_you_mean, register_source
from archspec.fsio import read_text
from archspec.ops import OPS
from archspec.spec import expr as ex
from archspec.spec.model import (REQUIRED, BlockDef, Check, Item, Let, Output, ParamDef, Spec,
                                 Table)
from archspec.spec.init import layer_roles, parse_init, scheme_names
from archspec.spec.names import MAX_NAME_CHARS, check_name as _check_name
from archspec.spec.roles import parse_roles
from archspec.spec.yamlsrc import YMap, YNode, YScalar, YSeq, located, parse_set_value, parse_yaml, plain

MAX_SPEC_BYTES = 4 * 1024 * 1024
#: Names an ``extends:`` or ``include:`` target must end in: a spec names specs, never
#: arbitrary files (``extends: /etc/shadow`` would print its lines as unknown keys).
YAML_SUFFIXES = (".yaml", ".yml")
STDLIB = os.path.join(os.path.dirname(__file__), "stdlib.yaml")

#: Weight-initialisation schemes a spec may name: rule sets written in the init notation
#: in init_schemes.yaml (archspec.spec.init).
INIT_SCHEMES = scheme_names()

TOP_KEYS = ("archspec", "name", "description", "extends", "include", "params", "let", "checks",
            "functions", "input", "init", "tables", "blocks", "layers", "outputs", "roles")
BLOCK_KEYS = ("doc", "params", "varargs", "let", "checks", "label", "layers", "init")
META_KEYS = ("from", "with", "when", "else", "repeat", "first", "row", "train_only")
KIND_KEYS = ("op", "block", "seq", "for")
PARAM_TYPES = ("int", "float", "bool", "str", "list", "block", "any")
_RESERVED = {"input", "in_channels", "in_shape"}


# -------------------------------------------------------------------- helpers
def _err(msg: str, node: YNode | Location, hint: str | None = None) -> SpecError:
    loc = node if isinstance(node, Location) else node.loc
    return SpecError(msg, loc, hint)


def _expect_map(node: YNode, what: str) -> YMap:
    if not isinstance(node, YMap):
        raise _err(f"{what} must be a mapping, got {_kind(node)}", node,
                   "write 'key: value' lines under it, or {key: value, ...}")
    return node


def _expect_seq(node: YNode, what: str) -> YSeq:
    if not isinstance(node, YSeq):
        raise _err(f"{what} must be a list, got {_kind(node)}", node,
                   "write '- item' lines under it, or [a, b, ...]")
    return node


def _expect_str(node: YNode, what: str) -> str:
    if not isinstance(node, YScalar) or not isinstance(node.value, str):
        raise _err(f"{what} must be a string, got {_kind(node)}", node,
                   "write a name or text; quote it if it looks like a number")
    return node.value


def _kind(node: YNode) -> str:
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    v = node.value
    if v is None:
        return "nothing (null)"
    return f"{type(v).__name__} {v!r}"


def _check_keys(m: YMap, allowed: Iterable[str], where: str) -> list[SpecError]:
    allowed = list(allowed)
    errs = []
    for k in m.keys():
        if k not in allowed:
            errs.append(SpecError(f"unknown key '{k}' in {where}", m.key_loc(k),
                                  did_you_mean(k, allowed) or "allowed: " + ", ".join(allowed)))
    return errs


#: Longest label or text shown in a diagram (names: :data:`names.MAX_NAME_CHARS`):
#: Graphviz refuses a 100,000-character label with an unlocated error.
MAX_LABEL_CHARS = 200
MAX_TEXT_CHARS = 4000      # a description or a doc


def check_length(text: str, limit: int, loc: Location, what: str) -> str:
    """``text`` unchanged, or a located error when it is longer than ``limit`` characters."""
    if len(text) > limit:
        raise SpecError(f"{what} is {len(text):,} characters long, more than the {limit:,} "
                        f"allowed (it starts {text[:20]!r})", loc, "shorten it")
    return text



def eval_node(node: YNode, env: Mapping[str, Any], strings: bool = False) -> Any:
    """Evaluate a located value: strings are expressions unless ``strings`` is set."""
    if isinstance(node, YScalar):
        if isinstance(node.value, str) and not strings:
            return eval_text(node.value, node, env)
        return node.value
    if isinstance(node, YSeq):
        return [eval_node(n, env, strings) for n in node.items]
    return {k: eval_node(v, env, strings) for k, v in node.entries}


def eval_text(text: str, node: YScalar, env: Mapping[str, Any]) -> Any:
    try:
        return ex.evaluate(ex.parse(text), env)
    except ex.ExprError as e:
        raise SpecError(e.message, node.expr_loc(e.offset), e.hint) from None


_INTERP = re.compile(r"\{([^{}]*)\}")


def interpolate(node: YScalar, env: Mapping[str, Any]) -> str:
    """Fill ``{expr}`` holes in a name or a message: ``"conv{i+1}"`` → ``"conv2"``."""
    text = str(node.value)
    if "{" not in text:     # most names have no holes
        return text

    def sub(m: re.Match) -> str:
        try:
            v = ex.evaluate(ex.parse(m.group(1)), env)
        except ex.ExprError as e:
            raise SpecError(e.message, node.expr_loc(m.start(1) + e.offset), e.hint) from None
        return str(v)
    return _INTERP.sub(sub, text)


# ------------------------------------------------------------------ caches
#: Parsed spec files by path and text: a file read again in one process (a grid's cells,
#: a test suite, a library caller) is parsed once; an edited file is another text, so it
#: is never answered with a stale parse. Located nodes are frozen, so sharing is safe.
_PARSES: dict[tuple[str, str], YNode] = {}
_PARSES_MAX, _PARSE_MAX_CHARS = 64, 1 << 20
#: Layers and blocks parsed from a node, by the node itself (kept alive in the entry, so
#: its id is not reused): parsing depends on nothing else but the ops registered.
_PARSED: dict[tuple[str, str, int], tuple[YNode, tuple, Any]] = {}


def clear_caches() -> None:
    """Forget the parsed files and nodes (to measure a cold load, or to free memory)."""
    _PARSES.clear()
    _PARSED.clear()


def _parse_cached(text: str, path: str) -> YNode:
    """:func:`parse_yaml`, once per (path, text) in a process; a failure is not kept."""
    key = (path, text)
    root = _PARSES.get(key)
    if root is None:
        root = parse_yaml(text, path)
        if len(text) <= _PARSE_MAX_CHARS:
            if len(_PARSES) >= _PARSES_MAX:
                _PARSES.pop(next(iter(_PARSES)))
            _PARSES[key] = root
    return root


def _parsed_once(kind: str, name: str, node: YNode,
                 parse: Callable[[list[SpecError]], Any], errors: list[SpecError]) -> Any:
    """``parse(errors)`` for this node, remembered when it gave no error: a grid's cells
    share their template's nodes and differ only in parameters, which parsing never reads.
    The registered ops are part of the key (an op registered again changes what parses)."""
    key = (kind, name, id(node))
    ops = tuple(OPS.values())
    hit = _PARSED.get(key)
    if hit is not None and hit[0] is node and hit[1] == ops:   # same objects: a C loop
        return hit[2]
    mine: list[SpecError] = []
    try:
        value = parse(mine)
    finally:
        errors.extend(mine)
    if mine:
        return value
    if len(_PARSED) >= 4096:
        _PARSED.clear()
    _PARSED[key] = (node, ops, value)
    return value


def _parsed_list(key: str, root: YMap, parse: Callable[[YNode | None, str], list]) -> list:
    """The spec's ``params``/``let``/``checks`` parsed (once per node, see _parsed_once)."""
    node = root.get(key)
    return list(_parsed_once(key, "", node, lambda _: tuple(parse(node, "the spec")), []))


# ----------------------------------------------------------------- file level
def _read(path: str, at: Location | None) -> tuple[str, YMap]:
    """Read and parse one spec file through :func:`archspec.fsio.read_text` (regular files
    only, at most :data:`MAX_SPEC_BYTES`). Its lines become error context only if it is
    named ``.yaml`` or ``.yml``: a file that is not a spec (``archspec check /etc/shadow``)
    never has its lines printed under an error."""
    text = read_text(path, MAX_SPEC_BYTES, "spec", at)
    if path.endswith(YAML_SUFFIXES):
        register_source(path, text)
    root = _parse_cached(text, path)
    if not isinstance(root, YMap):
        raise SpecError(f"a spec must be a YAML mapping, got {_kind_word(root)}", root.loc,
                        "start with keys such as 'name:', 'params:' and 'layers:'")
    return text, root


def _kind_word(node: YNode) -> str:
    """What a node is, without quoting it (it may be a file that is not a spec)."""
    if isinstance(node, YScalar):
        return "nothing (null)" if node.value is None else f"a {type(node.value).__name__}"
    return _kind(node)


def _merge(base: YMap, child: YMap) -> YMap:
    """Child keys win; params, let, blocks and tables merge entry by entry."""
    entries = dict(base.entries)
    key_locs = dict(base.key_locs)
    for k, v in child.entries:
        if k in ("params", "let", "functions", "blocks", "tables", "roles") and \
                isinstance(v, YMap) and \
                isinstance(entries.get(k), YMap):
            merged = dict(entries[k].entries)
            for name, node in v.entries:
                merged[name] = _merge_param(merged[name], node) if k == "params" and \
                    name in merged else node
            kl = dict(entries[k].key_locs)
            kl.update(v.key_locs)
            entries[k] = YMap(tuple(merged.items()), v.loc, kl)
        elif k == "checks" and isinstance(v, YSeq) and isinstance(entries.get(k), YSeq):
            entries[k] = YSeq(entries[k].items + v.items, v.loc)
        else:
            entries[k] = v
        key_locs[k] = child.key_loc(k)
    entries.pop("extends", None)
    return YMap(tuple(entries.items()), child.loc, key_locs)


def _is_long_param(node: YNode) -> bool:
    return isinstance(node, YMap) and any(k in node for k in ("default", "type", "doc"))


def _merge_param(base: YNode, child: YNode) -> YNode:
    """``k: 8`` over ``k: {default: 10, type: int, doc: …}`` keeps the type, doc and choices."""
    if not _is_long_param(base):
        return child
    if _is_long_param(child):
        entries = dict(base.entries)
        entries.update(child.entries)
        return YMap(tuple(entries.items()), child.loc, {**base.key_locs, **child.key_locs})
    entries = dict(base.entries)
    entries["default"] = child
    return YMap(tuple(entries.items()), child.loc, {**base.key_locs, "default": child.loc})


def _join(here: str, name: str) -> str:
    """``here/name`` without ``..`` steps, so messages name ``specs/wrn.yaml``, not
    ``examples/specs/../../specs/wrn.yaml`` (kept as joined where a symlink makes
    the two differ)."""
    joined = os.path.join(here, name)
    short = os.path.normpath(joined)
    return short if os.path.realpath(short) == os.path.realpath(joined) else joined


def _target(here: str, node: YNode, key: str) -> str:
    """The path an ``extends:``/``include:`` entry names, refused unless it names a YAML file."""
    name = _expect_str(node, f"'{key}'")
    if "\0" in name:
        raise _err(f"the '{key}' path contains a NUL byte", node,
                   "a file name cannot contain NUL; check the quoting and escapes")
    path = _join(here, name)
    real = os.path.realpath(path)
    if not name.endswith(YAML_SUFFIXES) or not real.endswith(YAML_SUFFIXES):
        shown = name if len(name) <= 80 else name[:77] + "..."
        via = "" if real.endswith(YAML_SUFFIXES) or not name.endswith(YAML_SUFFIXES) else \
            " (a link to a file that is not)"
        raise _err(f"'{key}' must name a .yaml spec file, got {shown!r}{via}", node,
                   f"{key}: ../wrn.yaml (a path relative to this file, ending in .yaml or .yml)")
    return path


def _resolve(path: str, sources: dict[str, str], chain: tuple[str, ...],
             at: Location | None, check_keys: bool = True, via: str = "extends") -> YMap:
    """Read a spec and merge what it includes and extends into one root mapping.

    With ``check_keys`` false, unknown top-level keys of the spec and of the specs it
    extends are left in the merged root for :func:`spec_from_yaml` to report together
    with every other error (an included file's are still refused here: only its blocks
    and tables are kept). ``via`` is the key that named ``path``, for the cycle message.
    """
    real = os.path.realpath(path)
    if real in chain:
        raise SpecError(f"'{via}' forms a cycle through '{path}'", at or Location(path),
                        "a spec cannot extend or include itself, directly or through others")
    text, root = _read(path, at)
    sources[path] = text
    errs = _check_keys(root, TOP_KEYS, "the spec") if check_keys else []
    if errs:
        raise SpecErrors(errs)
    here = os.path.dirname(path)
    parts: list[YMap] = []
    inc = root.get("include")
    if inc is not None:
        for n in (inc.items if isinstance(inc, YSeq) else (inc,)):
            lib = _resolve(_target(here, n, "include"), sources, chain + (real,), n.loc,
                           via="include")
            parts.append(YMap(tuple((k, v) for k, v in lib.entries if k in ("blocks", "tables",
                                                                         "functions")),
                              lib.loc, lib.key_locs))
    ext = root.get("extends")
    if ext is not None:
        parts.append(_resolve(_target(here, ext, "extends"), sources, chain + (real,), ext.loc,
                              check_keys))
    merged = YMap((), root.loc)
    for part in parts:
        merged = _merge(merged, part)
    rest = YMap(tuple((k, v) for k, v in root.entries if k != "include"), root.loc, root.key_locs)
    return _merge(merged, rest) if parts else rest


# ------------------------------------------------------------------ parameters
def _type_of(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    return "any"


def check_type(value: Any, t: str, name: str, loc: Location) -> Any:
    """Check a parameter value against its type (ints pass as floats; block strings parse)."""
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "list": isinstance(value, list),
        "block": isinstance(value, (str, ex.BlockRef)),
        "any": True,
    }[t]
    if not ok:
        raise SpecError(f"parameter '{name}' must be {_TYPE_WORDS[t]}, got {value!r}", loc,
                        f"'{name}' is declared with type {t}")
    if t == "float":
        if not math.isfinite(value):   # .nan would compare false everywhere and pass unseen
            raise SpecError(f"parameter '{name}' must be a finite number, got {value!r}", loc,
                            f"'{name}' is declared with type {t}")
        return float(value)
    return value


_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false",
               "str": "a string", "list": "a list", "block": "a block reference such as B(3,3)",
               "any": "a value"}


def parse_params(node: YNode | None, where: str, block: bool = False) -> list[ParamDef]:
    if node is None:
        return []
    m = _expect_map(node, f"'params' of {where}")
    out = []
    for name, v in m.entries:
        loc = m.key_loc(name)
        _check_name(name, loc, "parameter")
        if name in _RESERVED:
            raise SpecError(f"'{name}' is reserved and cannot be a parameter name", loc,
                            "inside a block it is set for you from the block's input; "
                            "choose another name")
        doc, choices, t = "", (), None
        if isinstance(v, YMap) and ("default" in v or "type" in v or "doc" in v):
            errs = _check_keys(v, ("default", "type", "doc", "choices"), f"parameter '{name}'")
            if errs:
                raise SpecErrors(errs)
            if "type" in v:
                t = _expect_str(v.get("type"), "'type'")
                if t not in PARAM_TYPES:
                    raise _err(f"unknown parameter type '{t}'", v.get("type"),
                               did_you_mean(t, PARAM_TYPES) or "one of " + ", ".join(PARAM_TYPES))
            if "doc" in v:
                doc = _text(v.get("doc"), "'doc'")
            if "choices" in v:
                choices = tuple(plain(_expect_seq(v.get("choices"), "'choices'")))
            if "default" in v:
                default = plain(v.get("default"))
            elif block:
                default = REQUIRED
            else:
                raise _err(f"parameter '{name}' needs a default", v,
                           "a spec's parameters all have defaults; override them with --set")
        elif isinstance(v, YScalar) and v.value in ("int", "float", "bool", "str", "list",
                                                   "block") and block:
            t, default = v.value, REQUIRED   # `out: int` declares a required block parameter
        else:
            default = plain(v)
        if t is None:
            t = _type_of(default) if default is not REQUIRED else "any"
            if t == "str" and isinstance(default, str) and re.match(r"^[A-Za-z_]\w*\(.*\)$",
                                                                  default):
                t = "block"
        if default is not REQUIRED and default is not None:
            dnode = v.get("default") if isinstance(v, YMap) and "default" in v else v
            default = check_type(default, t, name, dnode.loc)
        out.append(ParamDef(name, default, t, doc, choices, v.loc))
    return out


def parse_override(text: str) -> tuple[str, Any, Location]:
    """Split ``--set key=value``; the value is read as a YAML scalar or list."""
    loc = Location(f"--set {text if len(text) <= 80 else text[:77] + '...'}")
    if "=" not in text:
        raise SpecError(f"override '{text}' is not of the form key=value", loc,
                        "for example --set k=8")
    key, raw = text.split("=", 1)
    key = key.strip()
    return key, parse_set_value(raw, loc.path), loc


def _apply_overrides(params: list[ParamDef], overrides: Mapping[str, Any] | Iterable[str] | None
                     ) -> tuple[list[ParamDef], tuple[tuple[str, Any], ...]]:
    if not overrides:
        return params, ()
    items: list[tuple[str, Any, Location]] = []
    if isinstance(overrides, Mapping):
        items = [(k, v, Location(f"--set {k}={v}")) for k, v in overrides.items()]
    else:
        items = [parse_override(t) for t in overrides]
    by_name = {p.name: i for i, p in enumerate(params)}
    params = list(params)
    applied = []
    for key, value, loc in items:
        if key not in by_name:
            raise SpecError(f"unknown parameter '{key}'", loc,
                            did_you_mean(key, by_name) or
                            "parameters: " + ", ".join(p.name for p in params))
        p = params[by_name[key]]
        if p.type in ("str", "block") and not isinstance(value, str):
            value = str(value) if not isinstance(value, (list, dict)) else value
        if p.type == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        try:
            value = check_type(value, p.type, key, loc)
            if p.type == "block" and isinstance(value, str):
                parse_block_value(value, loc)   # a typo is the --set's, not the default's
        except SpecError as e:
            raise SpecError(e.message, loc, f"'{key}' is declared at {p.loc} with type {p.type}"
                            ) from None
        if p.choices and value not in p.choices:
            raise SpecError(f"parameter '{key}' must be one of "
                            + ", ".join(map(str, p.choices)) + f", got {value!r}", loc,
                            did_you_mean(str(value), map(str, p.choices)))
        params[by_name[key]] = ParamDef(p.name, value, p.type, p.doc, p.choices, p.loc)
        applied.append((key, value))
    return params, tuple(applied)


def parse_lets(node: YNode | None, where: str) -> list[Let]:
    if node is None:
        return []
    m = _expect_map(node, f"'let' of {where}")
    out = []
    for name, v in m.entries:
        _check_name(name, m.key_loc(name), "let value")
        out.append(Let(name, v, m.key_loc(name)))
    return out


def parse_checks(node: YNode | None, where: str) -> list[Check]:
    if node is None:
        return []
    out = []
    for c in _expect_seq(node, f"'checks' of {where}"):
        c = _expect_map(c, "a check")
        errs = _check_keys(c, ("check", "message", "hint"), "a check")
        if errs:
            raise SpecErrors(errs)
        if "check" not in c:
            raise _err("a check needs 'check: <condition>'", c)
        msg = _expect_str(c.get("message"), "'message'") if "message" in c else ""
        hint = _expect_str(c.get("hint"), "'hint'") if "hint" in c else ""
        out.append(Check(c.get("check"), msg, c.get("check").loc, hint))
    return out


def _check_hint(text: Any, env: Mapping[str, Any]) -> str | None:
    """The values a failed check read, so the user sees why it failed."""
    if not isinstance(text, str):
        return None
    shown = [f"{n} = {env[n]!r}" for n in sorted(ex.names_in(text))
             if n in env and len(repr(env[n])) <= 40]
    return ("with " + ", ".join(shown)) if shown else None


def evaluate_env(params: Iterable[ParamDef], lets: Iterable[Let], checks: Iterable[Check],
                 base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate lets in order, then checks; a failing check explains a failing let."""
    lets = list(lets)
    env: dict[str, Any] = dict(base or {})
    for p in params:
        env[p.name] = p.default
        if p.type == "block" and isinstance(p.default, str):
            env[p.name] = parse_block_value(p.default, p.loc)
        if p.choices and p.default not in p.choices:
            raise SpecError(f"parameter '{p.name}' must be one of "
                            + ", ".join(map(str, p.choices)) + f", got {p.default!r}", p.loc,
                            did_you_mean(str(p.default), map(str, p.choices)) or
                            "change the default or add it to 'choices'")
    let_errors: list[SpecError] = []
    failed: set[str] = set()
    for let in lets:
        if failed and ex.names_in(str(let.expr.value) if isinstance(let.expr, YScalar)
                                  else "") & failed:
            failed.add(let.name)
            continue
        try:
            env[let.name] = eval_node(let.expr, env)
        except SpecError as e:
            m = re.match(r"undefined name '(\w+)'", e.message)
            later = [lt for lt in lets if m and lt.name == m.group(1)]
            if later:
                e = SpecError(e.message, e.loc, f"'{later[0].name}' is defined below, at line "
                              f"{later[0].loc.line}: let values are evaluated in order")
            elif not e.hint and isinstance(let.expr, YScalar):
                e = SpecError(e.message, e.loc, _check_hint(let.expr.value, env))
            let_errors.append(e)
            failed.add(let.name)
    check_errors = []
    for c in checks:
        text = c.expr.value if isinstance(c.expr, YScalar) else ""
        try:
            ok = eval_node(c.expr, env)
        except SpecError as e:
            if isinstance(text, str) and ex.names_in(text) & failed:
                continue
            check_errors.append(SpecError(e.message, e.loc, e.hint or _check_hint(text, env)))
            continue
        if not isinstance(ok, bool):    # "[1, 2]" is truthy: a check must say true or false
            shown = repr(ok) if len(repr(ok)) <= 60 else repr(ok)[:57] + "..."
            check_errors.append(SpecError(
                f"a check must be true or false, got {type(ok).__name__} {shown}", c.loc,
                "write a condition, such as check: d % 6 == 4 (a quoted list or number is "
                "not one)"))
            continue
        if not ok:
            msg = interpolate(YScalar(c.message, c.loc), env) if c.message else \
                f"check failed: {text}"
            hint = interpolate(YScalar(c.hint, c.loc), env) if c.hint else \
                _check_hint(text, env)
            check_errors.append(SpecError(msg, c.loc, hint))
    if check_errors:
        raise SpecErrors(check_errors)
    if let_errors:
        raise SpecErrors(let_errors)
    return env


def parse_block_value(text: str, loc: Location, env: Mapping[str, Any] | None = None
                      ) -> ex.BlockRef:
    """Parse ``B(3,3)`` (arguments evaluated in ``env``) into a :class:`BlockRef`."""
    node = YScalar(text, loc)
    try:
        name, args, kwargs = ex.parse_block_ref(text)
        vals: list = []
        for a in args:
            if isinstance(a, ex.ast.Starred):
                vals.extend(ex.eval_arg(a, env or {}))
            else:
                vals.append(ex.eval_arg(a, env or {}))
        kw = tuple((k, ex.eval_arg(v, env or {})) for k, v in kwargs)
    except ex.ExprError as e:
        raise SpecError(e.message, node.expr_loc(e.offset), e.hint) from None
    return ex.BlockRef(name, tuple(vals), kw)


# ---------------------------------------------------------------- functions
_ARG = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:=(.*))?$", re.S)


def _expr_tree(node: YNode, what: str, offset: int = 0, text: str | None = None
               ) -> ex.ast.expression:
    """The parsed expression of a located scalar (a number is an expression too)."""
    if not isinstance(node, YScalar) or isinstance(node.value, bool) or \
            not isinstance(node.value, (str, int, float)):
        raise _err(f"{what} must be an expression, got {_kind(node)}", node,
                   "for example body: \"max(m, int(v + d / 2.0) // d * d)\"")
    try:
        return ex.parse(str(node.value) if text is None else text)
    except ex.ExprError as e:
        raise SpecError(e.message, node.expr_loc(offset + e.offset), e.hint) from None


def _function_args(node: YNode | None, fname: str) -> tuple[tuple[str, Any], ...]:
    """``args: [v, divisor=8, min_value=null]``: names, each with an optional default
    (a constant expression, evaluated once)."""
    out: list[tuple[str, Any]] = []
    for a in (_expect_seq(node, "'args'") if node is not None else ()):
        text = _expect_str(a, "an argument")
        m = _ARG.match(text)
        if m is None:
            raise _err(f"function '{fname}': argument {text!r} is not 'name' or 'name=default'",
                       a, "for example args: [v, divisor=8, min_value=null]")
        name, dtext = m.group(1), m.group(2)
        if any(n == name for n, _ in out):
            raise _err(f"function '{fname}': argument '{name}' is given twice", a)
        if dtext is None:
            if any(d is not ex._NO_DEFAULT for _, d in out):
                raise _err(f"function '{fname}': argument '{name}' without a default follows "
                           "one with a default", a, "put the arguments with defaults last")
            out.append((name, ex._NO_DEFAULT))
            continue
        start = m.start(2)
        tree = _expr_tree(a, "a default", start + len(dtext) - len(dtext.lstrip()), dtext)
        try:
            out.append((name, ex.evaluate(tree, {})))
        except ex.ExprError as e:
            raise SpecError(e.message, a.expr_loc(start + e.offset), e.hint or
                            "a default is a constant: it cannot read parameters") from None
    return tuple(out)


def parse_functions(node: YNode | None, taken: Iterable[str]) -> dict[str, ex.UserFunction]:
    """The spec's ``functions:``; each sees the others (so they may call each other)."""
    if node is None:
        return {}
    m = _expect_map(node, "'functions'")
    taken = set(taken)
    funcs: dict[str, ex.UserFunction] = {}
    for name, body in m.entries:
        loc = m.key_loc(name)
        _check_name(name, loc, "function")
        if name in ex.FUNCTIONS or name in ex.CONSTANTS:
            what = f"the built-in function {name}()" if name in ex.FUNCTIONS else \
                f"the constant {name}"
            raise SpecError(f"function '{name}' shadows {what}", loc,
                            "choose another name; built-ins: " + ", ".join(sorted(ex.FUNCTIONS)))
        if name in taken:
            raise SpecError(f"function '{name}' has the name of a parameter or let value", loc,
                            "rename one of them")
        f = _expect_map(body, f"function '{name}'")
        errs = _check_keys(f, ("args", "let", "body", "doc"), f"function '{name}'")
        if errs:
            raise SpecErrors(errs)
        if "body" not in f:
            raise _err(f"function '{name}' has no 'body'", f,
                       "body: \"<expression>\", e.g. body: \"v if v > 0 else 0\"")
        _text(f.get("doc"), "'doc'")
        lets = parse_lets(f.get("let"), f"function '{name}'")
        nodes = {lt.name: lt.expr for lt in lets}
        nodes["body"] = f.get("body")
        funcs[name] = ex.UserFunction(
            name, _function_args(f.get("args"), name),
            tuple((lt.name, _expr_tree(lt.expr, "a let value")) for lt in lets),
            _expr_tree(f.get("body"), "'body'"),
            lambda part, off, nodes=nodes: nodes[part].expr_loc(off))
    for fn in funcs.values():
        fn.scope.update(funcs)
    return funcs


# ------------------------------------------------------------------- layers
def parse_items(node: YNode | None, where: str, errors: list[SpecError]) -> tuple[Item, ...]:
    if node is None:
        return ()
    seq = _expect_seq(node, f"'layers' of {where}")
    out = []
    for n in seq:
        try:
            out.append(parse_item(n, errors))
        except SpecError as e:
            errors.extend(e.errors)
            out.append(_failed_item(n))
    return tuple(out)


def _is_named(m: YMap) -> bool:
    """Whether a one-key layer mapping is ``name: body``. A key that is a layer keyword
    (``block``, ``op``, …) is still a name when its value is a mapping that is itself a
    layer (has ``op:``, ``block:``, ``seq:`` or ``for:``): torchvision names modules
    ``block`` (MBConv.block), and ``block: {seq: [...]}`` cannot mean a block reference,
    which is a string."""
    if len(m) != 1:
        return False
    key, val = m.entries[0]
    if key not in KIND_KEYS + META_KEYS:
        return True
    return key in KIND_KEYS and isinstance(val, YMap) and any(k in val.keys() for k in KIND_KEYS)


def _failed_item(node: YNode) -> Item:
    """A stand-in for a layer that did not parse, so the rest of the spec is still checked."""
    name = None
    if isinstance(node, YMap) and _is_named(node):
        key = node.keys()[0]
        name = YScalar(key, node.key_loc(key))
    return Item("failed", loc=name.loc if name is not None else node.loc, name=name)


def parse_item(node: YNode, errors: list[SpecError]) -> Item:
    if isinstance(node, YScalar) and isinstance(node.value, str):
        hint = did_you_mean(node.value, OPS) if node.value not in OPS else None
        raise _err(f"a layer must be a mapping, got the string {node.value!r}", node,
                   f"write {{op: {node.value}}}" if node.value in OPS else hint)
    m = _expect_map(node, "a layer")
    name: YNode | None = None
    body = m
    if _is_named(m):
        key, val = m.entries[0]
        if not isinstance(val, YMap):
            raise _err(f"layer '{key}' must be a mapping such as {{op: relu}}, got {_kind(val)}",
                       val if isinstance(val, YScalar) else m, did_you_mean(key, KIND_KEYS))
        name = YScalar(check_length(key, MAX_NAME_CHARS, m.key_loc(key), "the layer name"),
                       m.key_loc(key))
        body = val
    kinds = [k for k in KIND_KEYS if k in body]
    loc = name.loc if name is not None else body.loc
    if not kinds:
        keys = body.keys()
        guess = next((did_you_mean(k, KIND_KEYS) for k in keys if did_you_mean(k, KIND_KEYS)),
                     None)
        raise _err("a layer needs one of 'op:', 'block:', 'seq:' or 'for:'", body,
                   guess or f"found keys: {', '.join(keys)}")
    if len(kinds) > 1:
        raise _err(f"a layer cannot have both '{kinds[0]}:' and '{kinds[1]}:'",
                   body.key_loc(kinds[1]))
    kind = kinds[0]
    meta: dict[str, Any] = {}
    for k in META_KEYS:
        if k in body:
            meta[k] = body.get(k)
    if "train_only" in meta:
        tv = meta["train_only"]
        if not (isinstance(tv, YScalar) and isinstance(tv.value, bool)):
            raise _err(f"'train_only' must be true or false, got {plain(tv)!r}", tv,
                       "write train_only: true for a head that runs only in training")
        meta["train_only"] = tv.value
    if "else" in meta and "when" not in meta and kind != "for":
        raise _err("'else' names what a layer left out by 'when' stands for, and this layer "
                   "has no 'when'", body.key_loc("else"),
                   "add a condition (when: use_res) or remove 'else:'")
    own_init, trainable, role_keys = layer_roles(body, kind)
    rest = [(k, v) for k, v in body.entries if k not in META_KEYS and k != kind and
            k not in role_keys]
    common = dict(loc=loc, name=name, source=meta.get("from"), extra=meta.get("with"),
                  when=meta.get("when"), otherwise=meta.get("else"),
                  train_only=meta.get("train_only", False),
                  key_locs=tuple((k, body.key_loc(k)) for k in body.keys()),
                  init=own_init, trainable=trainable)
    if kind == "op":
        opname = _expect_str(body.get("op"), "'op'")
        op = OPS.get(opname)
        if op is None:
            from archspec.plugins import unknown_op_hint
            raise _err(f"unknown op '{opname}'", body.get("op"),
                       did_you_mean(opname, list(OPS)) or unknown_op_hint() or
                       (f"'{opname}' is a block: write block: {opname}" if opname[:1].isupper()
                        else "see docs/spec-language.md for the list of ops"))
        for k in ("repeat", "first", "row"):
            if k in meta:
                raise _err(f"'{k}' applies to blocks, not to ops", body.key_loc(k),
                           "wrap the op in 'seq:' to repeat it")
        fields = [f.name for f in op.fields]
        for k, v in rest:
            if k not in fields:
                hint = did_you_mean(k, fields + list(META_KEYS))
                raise SpecError(f"unknown argument '{k}' for op '{opname}'", body.key_loc(k),
                                hint or ("it takes " + ", ".join(fields) if fields
                                         else f"'{opname}' takes no arguments"))
        for f in op.fields:
            if f.required and f.name not in dict(rest):
                raise _err(f"op '{opname}' is missing required argument '{f.name}'",
                           body.get("op"), f"{f.name}: {f.doc}" if f.doc else None)
        return Item("op", op=opname, args=tuple(rest), **common)
    if kind == "block":
        row = None
        if "row" in meta:
            rt = meta["row"]
            text = _expect_str(rt, "'row'") if not (isinstance(rt, YScalar) and
                                                   isinstance(rt.value, (int, float))) else ""
            if "." not in text:
                raise _err(f"'row' must be 'table.row', got {plain(rt)!r}", rt,
                           "for example row: inception.3a")
            t, r = text.split(".", 1)
            row = (t, r, rt.loc)
        first = ()
        if "first" in meta:
            first = _expect_map(meta["first"], "'first'").entries
        return Item("block", block=body.get("block"), args=tuple(rest), repeat=meta.get("repeat"),
                    first=tuple(first), row=row, **common)
    if kind == "seq":
        if rest:
            raise SpecError(f"unknown key '{rest[0][0]}' in a seq layer", body.key_loc(rest[0][0]),
                            did_you_mean(rest[0][0], META_KEYS))
        if "first" in meta or "row" in meta:
            raise _err("'first' and 'row' apply to blocks", body)
        return Item("seq", seq=parse_items(body.get("seq"), "seq", errors),
                    repeat=meta.get("repeat"), **common)
    # for loop
    var = _expect_str(body.get("for"), "'for'")
    _check_name(var, body.get("for").loc, "loop variable")
    extra = [k for k, _ in rest if k not in ("in", "layers")]
    if extra:
        raise SpecError(f"unknown key '{extra[0]}' in a for loop", body.key_loc(extra[0]),
                        "a loop has 'for: i', 'in: <list expression>' and 'layers:'")
    if "in" not in body or "layers" not in body:
        raise _err("a for loop needs 'in:' and 'layers:'", body)
    if name is not None:
        raise _err("a for loop cannot be named; name the layers inside it", name)
    if role_keys:
        k = sorted(role_keys)[0]
        raise _err(f"'{k}' does not apply to a for loop", body.key_loc(k),
                   f"give '{k}' to the layers inside it, or wrap them in a seq")
    for k in META_KEYS:
        if k in meta and meta[k] not in (None, False):
            raise _err(f"'{k}' does not apply to a for loop", body.key_loc(k))
    return Item("for", loc=body.loc, loop_var=var, loop_in=body.get("in"),
                seq=parse_items(body.get("layers"), "for", errors))


# ------------------------------------------------------------------- blocks
def parse_block(name: str, node: YNode, errors: list[SpecError]) -> BlockDef:
    m = _expect_map(node, f"block '{name}'")
    errs = _check_keys(m, BLOCK_KEYS, f"block '{name}'")
    if errs:
        raise SpecErrors(errs)
    params = parse_params(m.get("params"), f"block '{name}'", block=True)
    varargs = None
    if "varargs" in m:
        varargs = _expect_str(m.get("varargs"), "'varargs'")
        if varargs not in [p.name for p in params]:
            params.insert(0, ParamDef(varargs, REQUIRED, "list", "", (), m.get("varargs").loc))
    if "layers" not in m:
        raise _err(f"block '{name}' has no 'layers'", m,
                   "a block lists its layers under 'layers:', like a spec")
    return BlockDef(name, tuple(params), parse_items(m.get("layers"), f"block '{name}'", errors),
                    m.loc, varargs, tuple(parse_lets(m.get("let"), f"block '{name}'")),
                    tuple(parse_checks(m.get("checks"), f"block '{name}'")),
                    _label(m.get("label")), _text(m.get("doc"), "'doc'"),
                    parse_init(m.get("init"), f"the init of block '{name}'")
                    if "init" in m else ())


def _label(node: YNode | None) -> YNode | None:
    """A block's ``label:`` template, bounded (its filled-in form is bounded again)."""
    if node is not None:
        check_length(str(plain(node)), MAX_LABEL_CHARS, node.loc, "the block's label")
    return node


def _text(node: YNode | None, what: str) -> str:
    """A description or doc string (bounded), '' when absent."""
    if node is None:
        return ""
    return check_length(_expect_str(node, what), MAX_TEXT_CHARS, node.loc, what)


@lru_cache(maxsize=1)
def _stdlib() -> tuple[tuple[str, BlockDef], ...]:
    with open(STDLIB, encoding="utf-8") as fh:
        root = parse_yaml(fh.read(), STDLIB)
    errors: list[SpecError] = []
    blocks = tuple((k, parse_block(k, v, errors)) for k, v in _expect_map(
        root.get("blocks"), "stdlib").entries)
    if errors:
        raise SpecErrors(errors)
    return blocks


def stdlib_blocks() -> dict[str, BlockDef]:
    """The standard block library: WRN's B(M), ResNet's basic and bottleneck blocks."""
    return dict(_stdlib())


def parse_table(name: str, node: YNode) -> Table:
    m = _expect_map(node, f"table '{name}'")
    errs = _check_keys(m, ("columns", "headers", "rows"), f"table '{name}'")
    if errs:
        raise SpecErrors(errs)
    if "columns" not in m or "rows" not in m:
        raise _err(f"table '{name}' needs 'columns' and 'rows'", m)
    cols = tuple(_expect_str(c, "a column") for c in _expect_seq(m.get("columns"), "'columns'"))
    headers = tuple(str(plain(h)) for h in _expect_seq(m.get("headers"), "'headers'")) \
        if "headers" in m else cols
    rows = []
    rm = _expect_map(m.get("rows"), "'rows'")
    for key, v in rm.entries:
        vals = _expect_seq(v, f"row '{key}'")
        if len(vals) != len(cols):
            raise _err(f"row '{key}' has {len(vals)} values but the table has {len(cols)} "
                       f"columns ({', '.join(cols)})", v, "give one value per column, in order")
        rows.append((key, vals.items, rm.key_loc(key)))
    return Table(name, cols, headers, tuple(rows), m.loc)


def parse_outputs(node: YNode | None, env: Mapping[str, Any] | None = None) -> list[Output]:
    """The spec's outputs; a ``loss_weight`` written as an expression is evaluated in
    ``env`` (the spec's parameters, lets and functions), or left at 1.0 without one."""
    if node is None:
        return []
    out: list[Output] = []
    seq = _expect_seq(node, "'outputs'")
    if not seq.items:
        raise _err("'outputs' is empty", seq, "leave it out for one output, 'out', reading the "
                   "last layer, or list outputs as '- name: {from: layer}'")
    for n in seq:
        m = _expect_map(n, "an output")
        if len(m) != 1 or not isinstance(m.entries[0][1], YMap):
            raise _err("an output is 'name: {from: layer, loss_weight: 1.0}'", m)
        name, body = m.entries[0]
        _check_name(name, m.key_loc(name), "output")
        if any(o.name == name for o in out):
            raise SpecError(f"output '{name}' is given twice", m.key_loc(name),
                            "each output needs its own name")
        errs = _check_keys(body, ("from", "loss_weight"), f"output '{name}'")
        if errs:
            raise SpecErrors(errs)
        src = _expect_str(body.get("from"), "'from'") if "from" in body else None
        if src is None:
            raise _err(f"output '{name}' needs 'from: <layer>'", body)
        wnode = body.get("loss_weight")
        w = plain(wnode) if wnode is not None else 1.0
        if isinstance(wnode, YScalar) and isinstance(w, str):   # loss_weight: "0.3 * aux"
            w = eval_node(wnode, env) if env is not None else 1.0
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w < math.inf:
            raise _err(f"'loss_weight' must be a non-negative number, got {w!r}",
                       body.get("loss_weight"), "for example loss_weight: 0.3")
        out.append(Output(name, src, float(w), m.key_loc(name)))
    return out


# ---------------------------------------------------------------------- API
def load_spec(path: str | os.PathLike, overrides: Mapping[str, Any] | Iterable[str] | None = None,
              *, partial: bool = False) -> Spec:
    """Load and validate a spec file (or a shipped spec by name), applying ``--set`` overrides.

    ``overrides`` is a mapping ``{"k": 8}`` or strings ``["k=8"]``. Raises
    :class:`~archspec.errors.SpecError` with the location of the first problem
    (or :class:`~archspec.errors.SpecErrors` with all of them).

    With ``partial``, layers that do not parse do not stop the load: they become
    ``failed`` items and their errors ride along in ``Spec.errors``, so that
    :func:`~archspec.graph.compile_graph` reports them together with every independent
    error it finds in the rest of the network (it raises whenever ``errors`` is set).
    """
    from archspec.library import resolve
    path = resolve(os.fspath(path), "spec")   # a shipped name ('resnet50') or a path
    ex.reset_work()
    sources: dict[str, str] = {}
    root = _resolve(path, sources, (), None, check_keys=False)
    return spec_from_yaml(root, path, sources, overrides, partial=partial)


def spec_from_yaml(root: YMap, path: str, sources: dict[str, str],
                   overrides: Mapping[str, Any] | Iterable[str] | None = None,
                   partial: bool = False) -> Spec:
    from archspec.plugins import load_plugins
    load_plugins()   # ops from installed packages' entry points, once per process
    errors: list[SpecError] = []
    item_errors: list[SpecError] = []   # layers that did not parse (see load_spec's partial)
    # a misspelt top-level key, version or init stops nothing else from being checked:
    # they ride with the layers' errors so that compile_graph reports them all together.
    # A key that looks like one the layers depend on ('parms') stops here instead, so its
    # absence is not reported again as every name the layers read.
    hard = []
    for e in _check_keys(root, TOP_KEYS, "the spec"):
        cascades = any(f"'{k}'" in (e.hint or "") for k in
                       ("params", "let", "functions", "blocks", "tables", "include", "extends",
                        "layers", "input"))
        (hard if cascades else item_errors).append(e)
    if hard:
        raise SpecErrors(hard + item_errors)
    name = check_length(_expect_str(root.get("name"), "'name'"), MAX_NAME_CHARS,
                        root.get("name").loc, "the spec's name") if "name" in root else \
        os.path.splitext(os.path.basename(path))[0][:MAX_NAME_CHARS]
    desc = _text(root.get("description"), "'description'")
    if "archspec" in root:
        ver = root.get("archspec")
        if not (isinstance(ver, YScalar) and ver.value == 1):
            item_errors.append(_err(f"unsupported spec version {plain(ver)!r}", ver,
                                    "this archspec reads 'archspec: 1'"))
    params = _parsed_list("params", root, parse_params)
    params, applied = _apply_overrides(params, overrides)
    lets = _parsed_list("let", root, parse_lets)
    checks = _parsed_list("checks", root, parse_checks)
    names = [p.name for p in params] + [lt.name for lt in lets]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        d = sorted(dup)[0]
        errors.append(SpecError(f"'{d}' is both a parameter and a let value",
                                next(lt.loc for lt in lets if lt.name == d),
                                "rename one of them: a let value cannot shadow a parameter"))
    # input
    inode = root.get("input")
    if inode is None:
        raise SpecError("the spec has no 'input'", root.loc,
                        "add e.g. 'input: {shape: [3, 32, 32]}'")
    input_name = "input"
    if isinstance(inode, YMap):
        errors.extend(_check_keys(inode, ("shape", "name"), "'input'"))
        if "name" in inode:
            input_name = _expect_str(inode.get("name"), "'input.name'")
            _check_name(input_name, inode.get("name").loc, "input")
        shape_node = inode.get("shape")
        if shape_node is None:
            raise _err("'input' needs 'shape: [C, H, W]'", inode)
    else:
        shape_node = inode
    shape = _expect_seq(shape_node, "'input.shape'").items
    if len(shape) not in (1, 3):
        errors.append(_err(f"input shape must be [C, H, W] or [features], got {len(shape)} "
                           "dimensions", shape_node, "the batch dimension is left out"))
    init, init_rules = "torch", ()
    if "init" in root:   # a scheme's name, or rules by op kind (archspec.spec.init)
        inode = root.get("init")
        named = inode.get("scheme") if isinstance(inode, YMap) else inode
        init = named.value if isinstance(named, YScalar) and isinstance(named.value, str) \
            else "rules"
        try:
            init_rules = parse_init(inode)
        except SpecError as e:
            item_errors.extend(e.errors)
    blocks = dict(stdlib_blocks())
    if "blocks" in root:
        bm = _expect_map(root.get("blocks"), "'blocks'")
        for bname, bnode in bm.entries:
            try:
                _check_name(bname, bm.key_loc(bname), "block")
                blocks[bname] = _parsed_once("block", bname, bnode, lambda errs: parse_block(
                    bname, bnode, errs), item_errors)
            except SpecError as e:
                errors.extend(e.errors)
    tables = {}
    if "tables" in root:
        tm = _expect_map(root.get("tables"), "'tables'")
        for tname, tnode in tm.entries:
            try:
                tables[tname] = _parsed_once("table", tname, tnode,
                                             lambda _: parse_table(tname, tnode), [])
            except SpecError as e:
                errors.extend(e.errors)
    if "layers" not in root:
        errors.append(SpecError("the spec has no 'layers'", root.loc,
                                "list the network's layers under 'layers:'"))
    items = _parsed_once("layers", "", root.get("layers"), lambda errs: parse_items(
        root.get("layers"), "the spec", errs), item_errors)
    if "layers" in root and isinstance(root.get("layers"), YSeq) and not items:
        errors.append(_err("'layers' is empty", root.get("layers"),
                           "a network needs at least one layer, e.g. '- fc: {op: linear, out: 10}'"))
    overridden = dict(applied)
    for p in params:   # a block-typed parameter must name a block that exists
        if p.type != "block" or not isinstance(p.default, (str, ex.BlockRef)):
            continue
        try:
            ref = p.default if isinstance(p.default, ex.BlockRef) else \
                parse_block_value(p.default, p.loc)
        except SpecError:
            continue   # reported with its location by evaluate_env
        if ref.name not in blocks:
            at = Location(f"--set {p.name}={overridden[p.name]}") if p.name in overridden \
                else p.loc
            errors.append(SpecError(f"parameter '{p.name}': undefined block '{ref.name}'", at,
                                    did_you_mean(ref.name, blocks) or
                                    "blocks: " + ", ".join(sorted(blocks))))
    funcs: dict[str, ex.UserFunction] = {}
    try:
        funcs = parse_functions(root.get("functions"), names)
    except SpecError as e:
        errors.extend(e.errors)
    env: dict[str, Any] | None = None
    if not errors:
        try:
            env = evaluate_env(params, lets, checks, funcs)
        except SpecError as e:
            errors.extend(e.errors)
    try:   # after the env, so that a loss_weight may be an expression
        outputs = parse_outputs(root.get("outputs"), env)
    except SpecError as e:
        errors.extend(e.errors)
        outputs = []
    roles = None
    if env is not None:   # names may be written with loops over parameters
        try:
            roles = parse_roles(root.get("roles"), env)
        except SpecError as e:
            errors.extend(e.errors)
    env = {k: v for k, v in (env or {}).items() if k not in funcs}
    if errors or (item_errors and not partial):
        raise SpecErrors(errors + item_errors)
    return Spec(name=name, path=path, description=desc, params=tuple(params), lets=tuple(lets),
                checks=tuple(checks), input_name=input_name, input_shape=tuple(shape),
                input_loc=shape_node.loc, init=init, blocks=tuple(blocks.items()),
                tables=tuple(tables.items()), items=items, outputs=tuple(outputs),
                env=tuple(env.items()), sources=tuple(sources.items()), overrides=applied,
                errors=tuple(item_errors), functions=tuple(funcs.items()), roles=roles,
                init_rules=init_rules)
