"""Standalone PyTorch source from the graph IR: a ``model.py`` that needs only torch.

The file reads like hand-written PyTorch: one class per block definition (the
classes of the built module tree, :func:`archspec.torch_backend.tree_plans`), each
with an ``__init__`` that builds its submodules and a ``forward`` that runs them top
to bottom, and a root class named after the spec. Instances of one block that are
built with different values (the first block of a stage: stride 2, more input
channels, a downsample) share the class: a value that differs between instances is
an ``__init__`` parameter, named after the block's spec parameter (or the block's
``in_channels`` / ``out_channels``) it equals in every instance, a submodule that
differs in kind is passed in built, and one that some instances lack is
``nn.Identity()`` there (allowed only when their forward is the class's forward
with that submodule skipped). Alike instances in a row become one loop,
``*[Block(...) for _ in range(n)]``. Each forward is torch.fx's own code for the
scope's fx graph (:func:`archspec.torch_backend.region_graph`), its lines ending in
the spec location relative to the spec's folder. The module tree and state_dict
keys equal :func:`archspec.build_module`'s, so a build's weights (and torchvision's
for a reference spec) load strictly; the file never imports archspec.
"""
from __future__ import annotations

import functools
import inspect
import os
import keyword
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import networkx as nx
import torch
import torch.fx as fx

from archspec.errors import SpecError
from archspec.ops import OPS
from archspec.fxsource import method_source
from archspec.text import py_comment, py_docstring, str_literal
from archspec.torch_backend import (ModuleDef, ParamDef, TreePlan, _order, _root_graph,
                                    kept_tensors, module_access, module_defs, param_defs,
                                    region_graph, resolve, to_graph, tree_plans)

_SCOPE_SRC = '''
class Scope(nn.Module):
    """A container for the modules of one spec scope (a block instance, a repeat, a seq)."""

    def __init__(self, label=""):
        super().__init__()
        self._label = label

    def extra_repr(self):
        return self._label

    def __getitem__(self, key):
        return self._modules[str(key)]
'''


def class_name(spec_name: str) -> str:
    """``wrn-28-10`` → ``Wrn2810``: a Python class name for the network."""
    parts = re.split(r"[^0-9A-Za-z]+", spec_name)
    name = "".join(p[:1].upper() + p[1:] for p in parts if p)
    return name if name and name[0].isalpha() else f"Net{name}"


def _ident(s: str) -> bool:
    return s.isidentifier() and not keyword.iskeyword(s)


def _assign(parent: str, name: str, value: str, param: bool = False) -> str:
    """``self.a.b = value``, or ``add_module`` / ``register_parameter`` (``param``) for a
    name that is no identifier (``0``)."""
    target = module_access(parent)
    if _ident(name):
        return f"{target}.{name} = {value}"
    how = "register_parameter" if param else "add_module"
    return f"{target}.{how}({str_literal(name)}, {value})"


def _pasted_source(defs: dict[str, ModuleDef], taken: set[str]) -> str:
    """The source of the objects the ops' lowerings ask standalone code to carry (the
    Shake-Shake function and module, an op class registered from Python), each once, in
    the order the ops name them. Two with one name (or one named like the file's own
    classes, ``taken``) would overwrite each other: a located error instead."""
    where: dict[str, Any] = {}
    for d in defs.values():
        for p in d.paste:
            where.setdefault(p, d.loc)
    out = []
    short: dict[str, str] = {}
    for p in where:
        name = p.rpartition(".")[2]
        if name in taken or short.setdefault(name, p) != p:
            raise SpecError(f"standalone code would define {name} twice ({p} and "
                            f"{short.get(name, 'the generated file')})", where[p],
                            "give the op's module class another name")
        try:
            out.append(textwrap.dedent(inspect.getsource(resolve(p))))   # a nested class too
        except (OSError, TypeError, ImportError, AttributeError) as e:
            raise SpecError(f"cannot copy the source of {p} into standalone code: {e}",
                            where[p], "define the op's module class in a .py file, or "
                            "register it by dotted path so the generated file imports it"
                            ) from None
    return "\n\n".join(out)


def _imports(defs: dict[str, ModuleDef]) -> list[str]:
    """``import torch`` and the other modules a module class comes from
    (``torchvision.ops``, or a plugin's ``my_package.layers``)."""
    mods = {d.cls.rpartition(".")[0] for d in defs.values() if d.cls not in d.paste}
    return ["import torch"] + [f"import {m}" for m in sorted(mods)
                               if m.split(".")[0] != "torch"]


def _indent(src: str, n: int = 4) -> str:
    pad = " " * n
    return "\n".join(pad + line if line.strip() else "" for line in src.splitlines())


# ------------------------------------------------------------ constructor values
@dataclass(frozen=True)
class Call:
    """A constructor call in generated source: ``callee`` (``""`` a tuple, ``"[]"`` a
    list), positional ``args`` and ``kwargs`` (literals, :class:`Call`, :class:`Name`,
    :class:`Repeat`); ``argnames`` name the positional ones (parameter-name hints) and
    ``defaults`` the keyword values the callee defaults to (left out when equal)."""

    callee: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    argnames: tuple[str, ...] = field(default=(), compare=False)
    defaults: tuple[tuple[str, Any], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Name:
    """A parameter of the enclosing ``__init__``."""

    name: str


@dataclass(frozen=True)
class Repeat:
    """``*[item for _ in range(n)]``: ``n`` alike instances in a row."""

    item: Any
    n: int


def _canon(v: Any) -> Any:
    """A hashable, type-strict key of a value (``True`` is not ``1``, ``2`` not ``2.0``)."""
    if isinstance(v, Call):
        return ("call", v.callee, tuple(map(_canon, v.args)),
                tuple((k, _canon(x)) for k, x in v.kwargs))
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, *map(_canon, v))
    if isinstance(v, Repeat):
        return ("rep", _canon(v.item), v.n)
    if isinstance(v, Name):
        return ("name", v.name)
    return (type(v).__name__, repr(v))


_WIDTH = 99


def _inline(v: Any) -> str:
    """``v`` as source on one line."""
    if isinstance(v, Name):
        return v.name
    if isinstance(v, Repeat):
        return f"*[{_inline(v.item)} for _ in range({v.n})]"
    if isinstance(v, Call):
        return _open(v) + ", ".join(_parts(v, _inline)) + _close(v)
    return repr(v)


def _parts(c: Call, fmt: Callable[[Any], str]) -> list[str]:
    defaults = dict(c.defaults)
    kept = [(k, x) for k, x in c.kwargs
            if not (k in defaults and _canon(defaults[k]) == _canon(x))]
    out = [fmt(a) for a in c.args] + [f"{k}={fmt(x)}" for k, x in kept]
    if c.callee == "" and len(out) == 1:
        out[0] += ","
    return out


def _open(c: Call) -> str:
    return {"": "(", "[]": "["}.get(c.callee, c.callee + "(")


def _close(c: Call) -> str:
    return "]" if c.callee == "[]" else ")"


def _fmt(v: Any, indent: int, col: int) -> str:
    """``v`` as source starting at column ``col`` of a line indented ``indent``: one line
    when it fits, else a call's arguments packed on the lines below (an argument too
    long for a line broken the same way)."""
    flat = _inline(v)
    if col + len(flat) <= _WIDTH:
        return flat
    if isinstance(v, Repeat):
        return "*[" + _fmt(v.item, indent, col + 2) + f" for _ in range({v.n})]"
    if not isinstance(v, Call) or not (v.args or v.kwargs):
        return flat
    pad = indent + 4
    lines: list[str] = []
    packs = False            # the last line holds plain values (a call gets a line of its own)
    for key, x in _labelled(v):
        text = key + _fmt(x, pad, pad + len(key)) + ","
        plain = "\n" not in text and not (isinstance(x, Repeat) or
                                          isinstance(x, Call) and x.callee != "")
        if packs and plain and len(lines[-1]) + 1 + len(text) <= _WIDTH:
            lines[-1] += " " + text
        else:
            lines.append(" " * pad + text)
        packs = plain
    if v.callee != "" or len(lines) > 1 or lines[0].count(",") > 1:
        lines[-1] = lines[-1][:-1] if lines[-1].endswith(",") and v.callee != "" else lines[-1]
    return _open(v) + "\n" + "\n".join(lines) + "\n" + " " * indent + _close(v)


def _labelled(c: Call) -> list[tuple[str, Any]]:
    """A call's arguments as (``key=`` or ``""``, value), defaults left out."""
    defaults = dict(c.defaults)
    return [("", a) for a in c.args] + [
        (f"{k}=", x) for k, x in c.kwargs
        if not (k in defaults and _canon(defaults[k]) == _canon(x))]


# ------------------------------------------------------------ one class's parameters
RESERVED = frozenset({"self", "nn", "torch", "torchvision", "super", "range", "OrderedDict",
                      "Scope", "Model", "x", "_"})


def _py_name(hint: str, taken: set[str]) -> str:
    """An identifier from a spec name (``conv1.out_channels`` → ``conv1_out_channels``),
    never a keyword, builtin used here or name already taken."""
    name = re.sub(r"\W", "_", hint).strip("_") or "arg"
    if name[0].isdigit():
        name = "m_" + name
    if keyword.iskeyword(name) or name in RESERVED:
        name += "_"
    base, k = name, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


class _Params:
    """The ``__init__`` parameters of one class, found while unifying its instances:
    values that differ are holes (one per distinct vector of values), named after the
    first candidate (a block parameter, ``in_channels``, ``out_channels``) equal in
    every instance; submodules that differ in kind are passed in built."""

    def __init__(self, candidates: list[tuple[str, list[Any]]], module_names: set[str]):
        self.cands = [(n, tuple(map(_canon, vec))) for n, vec in candidates]
        self.taken: set[str] = set(module_names)    # a parameter never shadows a class
        self.by_vec: dict[tuple, str] = {}
        self.values: dict[str, list[Any]] = {}
        self.modules: dict[str, bool] = {}      # module parameter → optional (default None)

    def hint(self, where: str, arg: str) -> str:
        """A name for a hole at argument ``arg`` of submodule ``where``: the argument's
        own name (``padding``) unless it is a candidate's, which would mislead
        (``conv3_in_channels`` is not the block's ``in_channels``)."""
        return f"{where}_{arg}" if any(arg == n for n, _ in self.cands) else arg

    def hole(self, vals: list[Any], hint: str) -> Name:
        key = tuple(map(_canon, vals))
        if key not in self.by_vec:
            cand = next((n for n, vec in self.cands if vec == key and n not in self.taken), None)
            name = _py_name(cand or hint, self.taken)
            self.by_vec[key] = name
            self.values[name] = list(vals)
        return Name(self.by_vec[key])

    def module(self, vals: list[Any], hint: str) -> Name:
        name = _py_name(hint, self.taken)
        self.values[name] = list(vals)
        self.modules[name] = any(v is None for v in vals)
        return Name(name)

    def signature(self) -> list[str]:
        """Holes first (candidates in their order, then the others), then the modules
        passed in (required, then optional)."""
        rank = {n: i for i, (n, _) in enumerate(self.cands)}
        rank["in_channels"] = -1
        holes = sorted((n for n in self.values if n not in self.modules),
                       key=lambda n: rank.get(n, len(rank)))
        req = [n for n, opt in self.modules.items() if not opt]
        opt = [f"{n}=None" for n, o in self.modules.items() if o]
        return holes + req + opt

    def call(self, cls: str, i: int) -> Call:
        """The constructor call of instance ``i``."""
        holes = [n for n in self.signature() if n.split("=")[0] not in self.modules]
        kw = tuple((n, self.values[n][i]) for n in self.modules if self.values[n][i] is not None)
        return Call(cls, tuple(self.values[n][i] for n in holes), kw, tuple(holes))


def _unify(vals: list[Any], hint: str, params: _Params) -> Any:
    """One expression for the values the instances have at one place: the value where
    all are equal, a call of the same callee with unified arguments, a hole for
    differing literals, else a module passed in (None: instances without it)."""
    keys = [_canon(v) for v in vals]
    if all(k == keys[0] for k in keys):
        return vals[0]
    first = vals[0]
    if any(v is None for v in vals):
        return params.module(vals, hint)
    if all(isinstance(v, tuple) and len(v) == len(first) for v in vals):
        return Call("", tuple(_unify([v[j] for v in vals], hint, params)
                              for j in range(len(first))))
    if all(isinstance(v, Call) for v in vals) and _same_shape(vals):
        names = first.argnames or tuple(f"{hint}_{j}" for j in range(len(first.args)))
        args = tuple(_unify([v.args[j] for v in vals], names[j] if j < len(names) else hint,
                            params) for j in range(len(first.args)))
        kwargs = tuple((k, _unify([v.kwargs[j][1] for v in vals], params.hint(hint, k),
                                  params)) for j, (k, _) in enumerate(first.kwargs))
        return Call(first.callee, args, kwargs, first.argnames, first.defaults)
    if not any(isinstance(v, (Call, Repeat)) for v in vals):
        return params.hole(vals, hint)
    return params.module(vals, hint)


def _same_shape(vals: list[Call]) -> bool:
    f = vals[0]
    return all(v.callee == f.callee and len(v.args) == len(f.args) and
               [k for k, _ in v.kwargs] == [k for k, _ in f.kwargs] and
               not any(isinstance(a, Repeat) for a in v.args) for v in vals)


# ------------------------------------------------------------ fx → a method's source
def _method_source(graph: fx.Graph, locs: dict[str, str], name: str,
                   note: Callable[[str], str] = lambda s: s) -> str:
    """fx's source of ``graph`` as method ``name``, each op's line ending in its spec
    location (``note`` shortens it), without fx's early frees, indented for a class body."""
    src, _ = method_source(graph, locs, name, note, keep_frees=False)
    return _indent(src.strip("\n").rstrip())


def _own_line(loc: str) -> str:
    """A class's comment: the op's line in the block definition, without the use site
    (``stdlib.yaml:78:9``; every instance of the class shares it)."""
    return loc.split(" via ")[0]


def _key(graph: fx.Graph, skip: set[str]) -> tuple:
    """What the forward of ``graph`` computes, with the ``skip`` nodes (one-input
    module calls) replaced by their input: equal keys, the same forward."""
    alias: dict[str, str] = {}

    def arg(a: Any) -> Any:
        if isinstance(a, fx.Node):
            return ("node", alias.get(a.name, a.name))
        if isinstance(a, (list, tuple)):
            return (type(a).__name__, *map(arg, a))
        if isinstance(a, dict):
            return ("dict", *((k, arg(v)) for k, v in a.items()))
        return (type(a).__name__, repr(a))
    out = []
    for n in graph.nodes:
        if n.name in skip:
            src = n.args[0].name
            alias[n.name] = alias.get(src, src)
            continue
        out.append((n.name, n.op, n.target if isinstance(n.target, str) else id(n.target),
                    arg(n.args), arg(n.kwargs)))
    return tuple(out)


# ------------------------------------------------------------ the module tree
def _tree_items(g: nx.DiGraph, plans: Mapping[str, TreePlan],
                leaves: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """Per module scope (``""``: the root), its items in graph order as (path relative
    to it, IR node or child module scope): the leaf modules and parameters it holds
    outside child module scopes, and those child scopes."""
    items: dict[str, list[tuple[str, str]]] = {"": []}
    seen: set[str] = set()
    for nid, d in g.nodes(data=True):
        if nid == g.graph["input"] or d["op"] == "input":
            continue
        parts, owner = nid.split("."), ""
        for k in range(1, len(parts)):
            pre = ".".join(parts[:k])
            if pre in plans:
                if pre not in seen:
                    seen.add(pre)
                    items.setdefault(owner, []).append((_rel(owner, pre), pre))
                items.setdefault(pre, [])
                owner = pre
        if nid in leaves:
            items.setdefault(owner, []).append((_rel(owner, nid), nid))
    return items


def _rel(path: str, nid: str) -> str:
    return nid[len(path) + 1:] if path else nid


def _leaf_call(leaf: ModuleDef | ParamDef) -> Call:
    """A leaf module's constructor call (arguments equal to the class's defaults are
    left out when written), or a bare parameter's ``nn.Parameter(torch.full(...))``."""
    if isinstance(leaf, ParamDef):
        return Call("nn.Parameter", (Call("torch.full", (leaf.shape, leaf.init)),))
    if leaf.cls in leaf.paste:
        name = leaf.cls.rpartition(".")[2]
    elif leaf.cls.startswith("torch.nn."):
        name = "nn." + leaf.cls[len("torch.nn."):]
    else:
        name = leaf.cls
    return Call(name, (), leaf.kwargs, (), _defaults(leaf.cls, leaf.kwargs))


def _defaults(cls: str, kwargs: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
    """The keyword arguments a leaf's call may leave out: those equal to the class's
    default, and tuples of the default (``stride=(1, 1)`` for ``stride=1``) when the
    module built without them has the very same attributes (checked on the meta device)."""
    try:
        return _droppable(cls, kwargs)
    except TypeError:          # an unhashable argument: keep every argument
        return ()


@functools.lru_cache(maxsize=4096)
def _droppable(cls: str, kwargs: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
    try:
        klass = resolve(cls)
        sig = inspect.signature(klass)
    except (TypeError, ValueError, ImportError, AttributeError):
        return ()
    same, tuples = [], []
    for k, v in kwargs:
        p = sig.parameters.get(k)
        if p is None or p.default is inspect.Parameter.empty:
            continue
        if _canon(v) == _canon(p.default):
            same.append((k, v))
        elif isinstance(v, tuple) and v and all(_canon(e) == _canon(p.default) for e in v):
            tuples.append((k, v))
    if tuples and _attrs(klass, dict(kwargs)) == _attrs(klass, {
            k: v for k, v in kwargs if k not in dict(tuples)}):
        same += tuples
    return tuple(same)


def _attrs(klass: type, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The public attributes of ``klass(**kwargs)`` built on the meta device (None: it
    cannot be built so)."""
    try:
        with torch.device("meta"):
            m = klass(**kwargs)
    except Exception:  # noqa: BLE001 - then the arguments are all kept
        return None
    return {k: v for k, v in vars(m).items() if not k.startswith("_") and k != "training"}


def _repeats(values: list[Any]) -> tuple[Any, ...]:
    """Alike values in a row (two or more) become one :class:`Repeat`."""
    out: list[Any] = []
    for v in values:
        last = out[-1] if out else None
        if isinstance(last, Repeat) and _canon(last.item) == _canon(v):
            out[-1] = Repeat(v, last.n + 1)
        elif last is not None and not isinstance(last, Repeat) and _canon(last) == _canon(v):
            out[-1] = Repeat(v, 2)
        else:
            out.append(v)
    return tuple(out)


class _Emitter:
    """Writes the classes of one spec's module tree, children before their parents."""

    def __init__(self, g: nx.DiGraph, taken: set[str]):
        self.g, self.order = g, _order(g)
        self.plans = tree_plans(g, self.order)
        self.defs = module_defs(g, kept_tensors(g, self.plans))
        self.leaves: dict[str, ModuleDef | ParamDef] = {**self.defs, **param_defs(g)}
        self.items = _tree_items(g, self.plans, self.leaves)
        self.calls: dict[str, Call] = {}
        self.classes: list[str] = []
        self.taken = taken
        self.uses_scope = self.uses_ordered = False

    def value(self, target: str) -> Call:
        """The constructor call of a leaf or a module scope."""
        if target in self.leaves and target not in self.plans:
            return _leaf_call(self.leaves[target])
        p = self.plans[target]
        if p.kind != "sequential":
            if target not in self.calls:
                self.make_classes(self.class_key(p))
            return self.calls[target]
        kids = [(rel, self.value(t)) for rel, t in self.items.get(target, [])]
        if [rel for rel, _ in kids] == [str(k) for k in range(len(kids))]:
            return Call("nn.Sequential", _repeats([v for _, v in kids]))
        self.uses_ordered = True
        if all(_ident(rel) for rel, _ in kids):
            return Call("nn.Sequential", (Call("OrderedDict", (), tuple(kids)),))
        pairs = tuple(Call("", (rel, v)) for rel, v in kids)
        return Call("nn.Sequential", (Call("OrderedDict", (Call("[]", pairs),)),))

    def class_key(self, p: TreePlan) -> str:
        return p.cls_name if p.kind == "block" else class_name(p.path.rpartition(".")[2])

    def make_classes(self, key: str) -> None:
        """The class(es) of every instance of one block definition: instances whose
        forwards agree (up to submodules some lack) share one class."""
        insts = [q for q, p in self.plans.items() if p.kind != "sequential"
                 and self.class_key(p) == key]
        graphs = {q: region_graph(self.g, self.plans, q, self.plans[q].input,
                                  [self.plans[q].output], self.order) for q in insts}
        values = {q: {rel: self.value(t) for rel, t in self.items.get(q, [])} for q in insts}
        groups: list[list[str]] = []
        for q in sorted(insts, key=lambda q: -_calls(graphs[q][0])):
            grp = next((gr for gr in groups if _fits(graphs[gr[0]][0], values[gr[0]],
                                                     graphs[q][0], values[q])), None)
            if grp is None:
                groups.append([q])
            else:
                grp.append(q)
        index = {q: k for k, q in enumerate(insts)}
        groups.sort(key=lambda gr: min(index[q] for q in gr))
        for k, grp in enumerate(groups):
            name = _py_name(key if k == 0 else f"{key}_v{k + 1}", self.taken)
            self.write_class(name, grp[0], sorted(grp, key=index.__getitem__), graphs, values)

    def candidates(self, insts: list[str]) -> list[tuple[str, list[Any]]]:
        """Names an ``__init__`` parameter may take: the block's spec parameters (in the
        spec's order), then its input and output channels."""
        scopes = self.g.graph["scopes"]
        args = [scopes[q].get("args", {}) for q in insts]
        out = [(k, [a[k] for a in args]) for k in args[0] if all(k in a for a in args)]
        for word, end in (("in_channels", "input"), ("out_channels", "output")):
            shapes = [self.g.nodes[getattr(self.plans[q], end)]["shape"] for q in insts]
            if all(shapes):
                out.append((word, [int(s[0]) for s in shapes]))
        return out

    def write_class(self, name: str, master: str, insts: list[str],
                    graphs: Mapping[str, tuple[fx.Graph, dict[str, str]]],
                    values: Mapping[str, Mapping[str, Any]]) -> None:
        """One class serving ``insts``, its forward ``master``'s; records each instance's
        constructor call."""
        params = _Params(self.candidates(insts), self.taken)
        graph, locs = graphs[master]
        called = {n.target for n in graph.nodes if n.op == "call_module"}
        targets = dict(self.items.get(master, []))
        body: list[str] = []
        made: set[str] = set()
        for rel in values[master]:
            expr = _unify([values[q].get(rel) for q in insts], self.hint(rel, insts), params)
            body += self.assign(rel, expr, made, params.modules, rel in called,
                                isinstance(self.leaves.get(targets[rel]), ParamDef))
        for i, q in enumerate(insts):
            self.calls[q] = params.call(name, i)
        scope = self.g.graph["scopes"][master]
        what = f"Block ``{scope['block']}``" if scope.get("block") else f"Seq ``{master}``"
        doc = f"{what} of the spec ({len(insts)} instance{'s' * (len(insts) > 1)})."
        self.classes.append("\n".join([
            f"class {name}(nn.Module):", "    " + py_docstring(doc, "    "), "",
            f"    def __init__({', '.join(['self', *params.signature()])}):",
            "        super().__init__()", *body, "",
            _method_source(graph, dict(locs), "forward", _own_line)]))

    def hint(self, rel: str, insts: list[str]) -> str:
        """A parameter-name hint for submodule ``rel``: its name, or for a position
        (``2``) the diagram kind its op has in every instance (``activation``)."""
        last = rel.rpartition(".")[2]
        if _ident(last):
            return rel
        kinds = {getattr(OPS.get(self.g.nodes[t]["op"]), "kind", None)
                 for q in insts for r, t in self.items.get(q, []) if r == rel and t in self.g}
        return kinds.pop() if len(kinds) == 1 and None not in kinds else rel

    def assign(self, rel: str, expr: Any, made: set[str], modules: Mapping[str, bool],
               called: bool, param: bool) -> list[str]:
        """``self.<rel> = expr`` (with the containers above it), an optional submodule
        passed in as ``nn.Identity()`` where it is missing."""
        parts = rel.split(".")
        out = []
        for k in range(1, len(parts)):
            pre = ".".join(parts[:k])
            if pre not in made:
                made.add(pre)
                self.uses_scope = True
                out.append("        " + _assign(".".join(parts[:k - 1]), parts[k - 1],
                                                "Scope()"))
        parent, last = ".".join(parts[:-1]), parts[-1]
        if isinstance(expr, Name) and modules.get(expr.name):
            n = expr.name
            if called:
                return out + ["        " + _assign(parent, last, f"{n} if {n} is not None "
                                                   "else nn.Identity()")]
            return out + [f"        if {n} is not None:",
                          "            " + _assign(parent, last, n, param)]
        text = _fmt(expr, 8, 16 + len(rel))
        return out + ["        " + _assign(parent, last, text, param)]

    def root_body(self) -> list[str]:
        """The root ``__init__``'s statements (writing every class on the way)."""
        made: set[str] = set()
        out: list[str] = []
        for rel, t in self.items[""]:
            out += self.assign(rel, self.value(t), made, {}, True,
                               isinstance(self.leaves.get(t), ParamDef))
        return out


def _calls(graph: fx.Graph) -> int:
    return sum(n.op == "call_module" for n in graph.nodes)


def _fits(gm: fx.Graph, im: Mapping[str, Any], gi: fx.Graph, ii: Mapping[str, Any]) -> bool:
    """True when the class written for master ``gm`` serves instance ``gi``: the
    instance has no submodule the master lacks, and its forward is the master's with
    the one-input calls of the submodules it lacks skipped (there ``nn.Identity()``)."""
    if not set(ii) <= set(im):
        return False
    missing = set(im) - set(ii)
    skip = {n.name for n in gm.nodes if n.op == "call_module" and n.target in missing
            and len(n.args) == 1 and not n.kwargs}
    if missing - {n.target for n in gm.nodes if n.name in skip}:
        return False
    return _key(gm, skip) == _key(gi, set())


def generate(spec: Any, overrides: Any = None) -> str:
    """The standalone source of a spec (path, Spec or graph IR).

    Every string from the spec or a path reaches the source as a literal
    (:func:`~archspec.text.py_docstring`, ``repr``) or an escaped comment, and every
    identifier is made from a validated spec name (:func:`_py_name`), so running the
    file never runs text written in the spec.
    """
    g: nx.DiGraph = to_graph(spec, overrides)
    name = g.graph["name"]
    cls = class_name(name)
    taken = {cls, *RESERVED}
    em = _Emitter(g, taken)
    pasted = _pasted_source(em.defs, set(taken))
    taken |= {p.rpartition(".")[2] for d in em.defs.values() for p in d.paste}
    init = em.root_body()
    outs = g.graph["outputs"]
    train_only = [o["name"] for o in outs if o["train_only"]]
    where = os.path.basename(str(g.graph.get("path", "?")))
    head = (f"{name}: generated by archspec from {where}.\n\n"
            "Standalone PyTorch (no archspec import): one class per block of the spec, each\n"
            "forward line ending in the spec location it came from. Initial weights are in\n"
            "the build's weights.safetensors.\n")
    lines = [py_docstring(head), *_imports(em.defs), "import torch.nn as nn"]
    if em.uses_ordered:
        lines.insert(1, "from collections import OrderedDict")
    lines += ["", ""]
    if em.uses_scope:
        lines += [_SCOPE_SRC.strip("\n"), "", ""]
    if pasted:
        lines += [pasted, "", ""]
    for src in em.classes:
        lines += [src, "", ""]
    lines += [f"class {cls}(nn.Module):",
              "    " + py_docstring(g.graph.get("description") or name, indent="    "), "",
              f"    spec_name = {name!r}",
              f"    output_names = {tuple(o['name'] for o in outs)!r}",
              f"    loss_weights = {({o['name']: float(o['loss_weight']) for o in outs})!r}",
              f"    train_only = frozenset({train_only!r})", "",
              "    def __init__(self):", "        super().__init__()", *init, ""]
    lines += _root_forwards(g, em, train_only)
    lines += ["", "", f"Model = {cls}", ""]
    return "\n".join(lines)


def _root_forwards(g: nx.DiGraph, em: _Emitter, train_only: list[str]) -> list[str]:
    """The root's forward; with training-only heads, an eval and a train forward."""
    if not train_only:
        return [_method_source(*_root_graph(g, em.plans, em.order, train=False), "forward")]
    return ["    def forward(self, x):",
            "        # training-only heads " + py_comment(", ".join(train_only)) +
            " run in train() mode only",
            "        if self.training:",
            "            return self.forward_train(x)",
            "        return self.forward_eval(x)", "",
            _method_source(*_root_graph(g, em.plans, em.order, train=False), "forward_eval"),
            "",
            _method_source(*_root_graph(g, em.plans, em.order, train=True), "forward_train")]
