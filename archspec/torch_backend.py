"""Stage 4: the graph IR → an exact ``torch.nn.Module`` tree with straight-line forward code.

The module tree mirrors the IR's node names (``layer2.0.conv1``), so ``state_dict()``
keys equal those of the hand-written references and pretrained weights load
unchanged. Every scope with one tensor entering and one leaving is a module with its
own forward (:func:`tree_plans`): a block instance is an instance of its block's class
(``Bottleneck``, one class per block definition), a stage whose items chain is an
``nn.Sequential``, so ``m.layer3(x)``, hooks on blocks and swapping a stage work.
Each forward is a torch.fx ``Graph`` over the scope's own ops and child modules,
turned into Python source (one line per op, each ending in a ``# spec:line:col``
comment) and compiled once per distinct source: no interpreter loop, readable
(``module.code`` holds them all), traceable by torch.compile / torch.export.

Training-only heads (GoogLeNet's aux classifiers) get a second generated forward
used only in ``train()`` mode, which returns every output in the spec's
``outputs`` order; ``eval()`` never computes them.
"""
from __future__ import annotations

import functools
import importlib
import keyword
import linecache
import math
import os
import re
import stat
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import networkx as nx
import torch
import torch.fx as fx
import torch.nn as nn

from archspec.errors import Location, SpecError
from archspec.fxsource import method_source
from archspec.ops import (INIT_FNS, OPS, OpDef, OpError, TorchCall, TorchModule, TorchParameter,
                          torch_init_kwargs)
from archspec.text import py_comment, str_literal

def resolve(path: str) -> Any:
    """The object a dotted path in an op's lowering names (``torch.nn.Conv2d``): the
    registry holds names, not objects, so the front end never imports torch. A class
    given to :func:`archspec.register_op` as an object resolves to that object."""
    from archspec.plugins import registered_object
    obj = registered_object(path)
    if obj is not None:
        return obj
    mod, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(mod), attr)


@dataclass(frozen=True)
class ModuleDef:
    """One leaf module: ``cls`` (the dotted path of its class) and its keyword args.

    ``paste`` names the objects standalone source must carry for it (see
    :class:`archspec.ops.TorchModule`).
    """

    node: str
    cls: str
    kwargs: tuple[tuple[str, Any], ...]
    loc: Location
    paste: tuple[str, ...] = ()

    def make(self) -> nn.Module:
        """The module; a class that cannot be imported or refuses its arguments (an op
        registered from Python) is a located error, not a traceback."""
        try:
            return resolve(self.cls)(**dict(self.kwargs))
        except MemoryError:
            raise
        except Exception as e:   # noqa: BLE001 - reported at the spec line of the layer
            text = str(e).splitlines()[0][:300] if str(e) else ""
            raise SpecError(f"{self.node}: building {self.cls} failed: {type(e).__name__}"
                            + (f": {text}" if text else ""), self.loc,
                            "the op's torch module (its Python registration) refused these "
                            "arguments") from None


@dataclass(frozen=True)
class ParamDef:
    """One bare learnt tensor (a :class:`~archspec.ops.TorchParameter` op): registered
    on the node's parent scope under the node's last name, so its state_dict key is the
    node's path (torchvision's ``features.1.0.layer_scale``)."""

    node: str
    shape: tuple[int, ...]
    init: float
    loc: Location

    def make(self) -> nn.Parameter:
        return nn.Parameter(torch.full(self.shape, self.init))

    def source(self) -> str:
        """The construction in standalone source (which imports torch and ``torch.nn as nn``)."""
        return f"nn.Parameter(torch.full({self.shape!r}, {self.init!r}))"


def param_defs(g: nx.DiGraph) -> dict[str, ParamDef]:
    """The bare parameter of every IR node lowered to a :class:`TorchParameter`."""
    defs: dict[str, ParamDef] = {}
    for nid, d in g.nodes(data=True):
        if nid == g.graph["input"] or d["op"] == "input":
            continue
        low = _opdef(g, nid).lower
        if isinstance(low, TorchParameter):
            ins = [g.nodes[i]["shape"] for i in d["inputs"]]
            defs[nid] = ParamDef(nid, tuple(low.shape(d["args"], ins)),
                                 float(low.init(d["args"])), d["loc"])
    return defs


def _inplace(g: nx.DiGraph, nid: str, outputs: set[str]) -> bool:
    """True when ``nid`` may overwrite its first input: the input is a fresh tensor used
    once, or the output of a ``passes_fresh`` op (which may hand on its own input) whose
    input is, in turn, free to overwrite."""
    src = g.nodes[nid]["inputs"][0]
    if g.nodes[nid]["inputs"].count(src) != 1:
        return False
    while True:
        producer = OPS.get(g.nodes[src]["op"])
        if producer is None or g.out_degree(src) != 1 or src in outputs:
            return False
        if producer.fresh_output:
            return True
        if not producer.passes_fresh or not g.nodes[src]["inputs"]:
            return False
        src = g.nodes[src]["inputs"][0]


def _runs_inplace(g: nx.DiGraph, nid: str, outputs: set[str]) -> bool:
    """The op's own rule (it may, with these arguments) and the graph's (its input is free)."""
    d = g.nodes[nid]
    rule = OPS[d["op"]].inplace
    return rule is not None and rule(d["args"]) and _inplace(g, nid, outputs)


def _opdef(g: nx.DiGraph, nid: str) -> OpDef:
    d = g.nodes[nid]
    op = OPS.get(d["op"])
    if op is None or op.lower is None:
        raise SpecError(f"op '{d['op']}' has no torch implementation", d["loc"],
                        "the torch backend supports the ops of archspec.ops.OPS")
    return op


def module_defs(g: nx.DiGraph, keep: set[str] | None = None) -> dict[str, ModuleDef]:
    """The leaf module of every IR node that becomes one (functional ops get none).
    ``keep``: tensors never overwritten in place beside the network's outputs (the
    tensors entering and leaving the module tree's scopes, :func:`kept_tensors`)."""
    outputs = {o["node"] for o in g.graph["outputs"]} | (keep or set())
    inp = g.graph["input"]
    defs: dict[str, ModuleDef] = {}
    for nid, d in g.nodes(data=True):
        if nid == inp or d["op"] == "input":
            continue
        low = _opdef(g, nid).lower
        if not isinstance(low, TorchModule):
            continue
        ins = [g.nodes[i]["shape"] for i in d["inputs"]]
        try:
            kw = dict(low.kwargs(d["args"], ins))
        except OpError as e:     # an op registered from Python (archspec.plugins)
            raise SpecError(f"{nid}: {e.message}", d["loc"], e.hint) from None
        if _runs_inplace(g, nid, outputs):
            kw["inplace"] = True
        defs[nid] = ModuleDef(nid, low.class_for(ins, d["args"]), tuple(kw.items()), d["loc"],
                              low.paste)
    return defs


def _order(g: nx.DiGraph) -> list[str]:
    index = {n: i for i, n in enumerate(g.nodes)}
    return list(nx.lexicographical_topological_sort(g, key=index.__getitem__))


def node_where(g: nx.DiGraph, nid: str) -> str:
    """Where a node comes from: its spec line and, for an op defined in another file
    (a library block), the use site that instantiated it: ``stdlib.yaml:26:13 via wrn.yaml:41:9``."""
    d = g.nodes[nid]
    base = spec_dir(g)
    text = loc_text(d["loc"], base)
    scopes = g.graph.get("scopes", {})
    for scope in reversed(d["scope"]):
        sl = scopes.get(scope, {}).get("loc")
        if sl is not None and sl.path != d["loc"].path:
            return f"{text} via {loc_text(sl, base)}"
    return text


def _call(graph: fx.Graph, low: TorchCall, args: list[fx.Node], a: Mapping[str, Any],
          ins: list[Any], name: str, inplace: bool, locs: dict[str, str], loc: str) -> fx.Node:
    """The fx node(s) of a functional op; a fold writes one node per pair of inputs."""
    fn, kwargs = resolve(low.fn), dict(low.kwargs(dict(a), ins))
    if low.inputs == "list":
        return graph.create_node("call_function", fn, (list(args), *low.args), kwargs, name=name)
    if low.inputs == "each":
        return graph.create_node("call_function", fn, (*args, *low.args), kwargs, name=name)
    if inplace and low.inplace_method:
        n = graph.create_node("call_method", low.inplace_method, (args[0], args[1], *low.args),
                              kwargs, name=name)
    else:
        n = graph.create_node("call_function", fn, (args[0], args[1], *low.args), kwargs,
                              name=name)
    for extra in args[2:]:
        locs[n.name] = loc
        n = graph.create_node("call_function", fn, (n, extra, *low.args), kwargs, name=name)
    return n


def loc_text(loc: Location, base: str | None = None) -> str:
    """``path:line:col`` with the path relative to ``base`` (the spec's own folder,
    :func:`spec_dir`; the working directory when None) if inside it, else the file's
    name alone: generated code never carries a path of the machine it was built on."""
    if loc.path.startswith("<"):
        return str(loc)
    cwd = os.getcwd()
    return str(Location(_shown_path(loc.path, base or cwd, cwd), loc.line, loc.col))


def spec_dir(g: nx.DiGraph) -> str:
    """The folder of the spec a graph was compiled from (the working directory when it
    has no file), absolute: the base of every location :func:`loc_text` writes."""
    path = g.graph.get("path")
    if not isinstance(path, str) or path.startswith("<"):
        return os.getcwd()
    return _abs_dir(path, os.getcwd())


@functools.lru_cache(maxsize=256)
def _abs_dir(path: str, cwd: str) -> str:
    return os.path.dirname(os.path.join(cwd, path))


@functools.lru_cache(maxsize=4096)
def _shown_path(path: str, base: str, cwd: str) -> str:
    """``path`` (relative to ``cwd`` unless absolute) relative to ``base`` when inside
    it, else its file name (cached: every op of a block asks)."""
    rel = os.path.relpath(os.path.join(cwd, path), base)
    return os.path.basename(path) if rel.startswith("..") or os.path.isabs(rel) else rel


def module_access(path: str, base: str = "self") -> str:
    """Python expression for submodule ``path``: ``getattr`` for digits and keywords."""
    expr = base
    for part in path.split(".") if path else []:
        ok = part.isidentifier() and not keyword.iskeyword(part)
        expr = f"{expr}.{part}" if ok else f"getattr({expr}, {str_literal(part)})"
    return expr


def forward_source(graph: fx.Graph, locs: Mapping[str, str], name: str = "forward"
                   ) -> tuple[str, dict[str, Any]]:
    """Python source of ``graph`` as method ``name``, each op line ending in its spec
    location (fx's own code generation: :mod:`archspec.fxsource`), and its globals."""
    src, glb = method_source(graph, locs, name)
    return src.strip("\n") + "\n", glb


_COUNTER = [0]


def _compile(src: str, globals_: dict[str, Any], name: str, label: str) -> Callable:
    """Exec generated source under a linecache name, so tracebacks show its lines."""
    _COUNTER[0] += 1
    key = f"<archspec {label} #{_COUNTER[0]}>"
    linecache.cache[key] = (len(src), None, src.splitlines(True), key)
    ns = dict(globals_)
    exec(compile(src, key, "exec"), ns)  # noqa: S102 - our own generated code, not the spec's
    return ns[name]


class _Labelled(nn.Module):
    """A spec scope's container: its label in the module's repr, and children by name."""

    def __init__(self, label: str = ""):
        super().__init__()
        self._label = label

    def extra_repr(self) -> str:
        return self._label

    def __getitem__(self, key: int | str) -> nn.Module:
        """``layer1[0]`` as on an ``nn.Sequential`` (repeat scopes name their children 0, 1, ...)."""
        return self._modules[str(key)]


class Scope(_Labelled):
    """A container for the modules of a spec scope that is no module of its own (see
    :func:`tree_plans`): several tensors enter or leave it, so its ops run in the
    enclosing module's forward."""

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(
            f"scope '{self._label}' has no forward of its own: several tensors enter or "
            "leave it, so its ops run in the enclosing module's forward (call that one)")


# ------------------------------------------------------------------ module tree
@dataclass(frozen=True)
class TreePlan:
    """How one spec scope becomes a module with its own forward: ``kind`` is ``block``
    (a class per block definition, named ``cls_name``), ``sequential`` (an
    ``nn.Sequential``: its items chain one into the next, as torchvision's stages do) or
    ``seq`` (a :class:`Seq` with a generated forward); ``input`` and ``output`` are the
    one IR node entering it and the one leaving it."""

    path: str
    kind: str
    cls_name: str
    input: str
    output: str


def _boundaries(g: nx.DiGraph) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per scope, the IR nodes entering it (read inside, made outside) and leaving it
    (made inside, read outside or a network output, train-only ones included)."""
    ins: dict[str, set[str]] = {}
    outs: dict[str, set[str]] = {}
    for v, d in g.nodes(data=True):
        sv = set(d["scope"])
        for u in set(d["inputs"]):
            su = g.nodes[u]["scope"]
            for s in d["scope"]:
                if s not in su:
                    ins.setdefault(s, set()).add(u)
            for s in su:
                if s not in sv:
                    outs.setdefault(s, set()).add(u)
    for o in g.graph["outputs"]:
        for s in g.nodes[o["node"]]["scope"]:
            outs.setdefault(s, set()).add(o["node"])
    return ins, outs


def tree_plans(g: nx.DiGraph, order: list[str] | None = None) -> dict[str, TreePlan]:
    """The scopes that become modules with a forward: those with exactly one tensor
    entering and one leaving (over the train graph, so aux heads count). A scope with
    several (a block whose middle tensor an aux head also reads, a scope with no input)
    has no single ``forward(x)`` to give it: its ops are inlined into the nearest
    enclosing module's forward and it stays a :class:`Scope` container, so its
    state_dict keys do not move."""
    ins, outs = _boundaries(g)
    plans: dict[str, TreePlan] = {}
    for path, s in g.graph.get("scopes", {}).items():
        i, o = ins.get(path, set()), outs.get(path, set())
        if len(i) == 1 and len(o) == 1:
            kind = "block" if s.get("kind") == "block" and s.get("block") else "seq"
            name = block_class_name(s["block"], s.get("ref_args", ())) if kind == "block" \
                else "Seq"
            plans[path] = TreePlan(path, kind, name, next(iter(i)), next(iter(o)))
    index = {n: k for k, n in enumerate(order or _order(g))}
    for path, p in list(plans.items()):
        if p.kind == "seq" and _chains(g, plans, path, index):
            plans[path] = TreePlan(path, "sequential", "Sequential", p.input, p.output)
    return plans


def block_class_name(block: str, args: tuple = ()) -> str:
    """``bottleneck`` → ``Bottleneck``, ``basic_block`` → ``BasicBlock``; a block called
    with positional arguments adds them, ``B(3,3)`` → ``B_3_3``."""
    camel = "".join(p[:1].upper() + p[1:] for p in block.split("_") if p) or "Block"
    for a in args:
        flat = a if isinstance(a, (list, tuple)) else [a]
        camel += "".join("_" + re.sub(r"\W", "_", str(v)) for v in flat)
    return camel if camel.isidentifier() and not keyword.iskeyword(camel) else f"B_{camel}"


def _items(g: nx.DiGraph, plans: Mapping[str, TreePlan], path: str, order: Mapping[str, int]
           ) -> list[tuple[str, bool, str, tuple[str, ...]]]:
    """The direct items of scope ``path`` in graph order: (name, whether it is a node,
    output node, inputs), a direct node or a child module scope; empty when a child
    scope is no module."""
    depth = len(path.split(".")) if path else 0
    first: dict[str, tuple[int, str, bool, str, tuple[str, ...]]] = {}
    for nid, d in g.nodes(data=True):
        if d["op"] == "input" or (path and path not in d["scope"]):
            continue
        if len(d["scope"]) == depth:
            first.setdefault(nid, (order[nid], nid[len(path) + 1:] if path else nid, True, nid,
                                      d["inputs"]))
            continue
        child = d["scope"][depth]
        p = plans.get(child)
        if p is None:
            return []
        if child not in first or order[nid] < first[child][0]:
            first[child] = (order[nid], child[len(path) + 1:] if path else child, False,
                            p.output, (p.input,))
    return [item[1:] for item in sorted(first.values())]


def _chains(g: nx.DiGraph, plans: Mapping[str, TreePlan], path: str,
            order: Mapping[str, int]) -> bool:
    """True when scope ``path`` is an ``nn.Sequential``: its items are leaf modules and
    child module scopes, each reading only the one before (the first the scope's input)
    and the last giving its output, with no name an ``nn.Sequential`` attribute and
    every digit name its position (``seq[1]`` indexes by position)."""
    items = _items(g, plans, path, order)
    cur = plans[path].input
    for k, (name, is_node, out, inputs) in enumerate(items):
        if is_node and not isinstance(_opdef(g, out).lower, TorchModule):
            return False
        if tuple(inputs) != (cur,) or hasattr(nn.Sequential, name) or \
                (name.isdigit() and name != str(k)):
            return False
        cur = out
    return bool(items) and cur == plans[path].output


def kept_tensors(g: nx.DiGraph, plans: Mapping[str, TreePlan]) -> set[str]:
    """The tensors no op overwrites in place: the network's outputs and every tensor
    entering or leaving a scope module, which a hook on that module may hold (a forward
    hook would see it change, a full backward hook refuses it)."""
    keep = {o["node"] for o in g.graph["outputs"]} | role_tensors(g)
    for p in plans.values():
        keep |= {p.input, p.output}
    return keep


def _rel(path: str, nid: str) -> str:
    return nid[len(path) + 1:] if path else nid


def _owner(g: nx.DiGraph, plans: Mapping[str, TreePlan], path: str, nid: str) -> str | None:
    """The outermost module scope below ``path`` holding ``nid`` (None: ``path`` runs it)."""
    scopes = g.nodes[nid]["scope"]
    start = scopes.index(path) + 1 if path else 0
    for s in scopes[start:]:
        if s in plans:
            return s
    return None


def _needed(g: nx.DiGraph, path: str, outputs: list[str]) -> set[str]:
    """The nodes inside ``path`` (all, for the root) that its outputs need."""
    need: set[str] = set()
    todo = list(outputs)
    while todo:
        n = todo.pop()
        if n in need or (path and path not in g.nodes[n]["scope"]):
            continue
        need.add(n)
        todo.extend(g.nodes[n]["inputs"])
    return need


def region_graph(g: nx.DiGraph, plans: Mapping[str, TreePlan], path: str, inp: str,
                 outputs: list[str], order: list[str], keep: set[str] | None = None
                 ) -> tuple[fx.Graph, dict[str, str]]:
    """The forward of scope ``path`` (``""``: the root) as an fx Graph over its own ops
    and its child module scopes (``call_module``, placed where the child's output is
    made); targets and node names are relative to the scope, so every instance of a
    block writes the same code. Returns the graph and its nodes' spec locations.
    ``keep``: :func:`kept_tensors` (given by a caller making many regions of one graph)."""
    need = _needed(g, path, outputs)
    out_nodes = kept_tensors(g, plans) if keep is None else keep
    graph, locs = fx.Graph(), {}
    env: dict[str, fx.Node] = {inp: graph.placeholder("x")}
    for nid in order:
        if nid not in need or nid in env:
            continue
        owner = _owner(g, plans, path, nid)
        if owner is not None:
            if nid == plans[owner].output:
                rel = _rel(path, owner)
                env[nid] = graph.create_node("call_module", rel, (env[plans[owner].input],),
                                             {}, name=re.sub(r"\W", "_", rel))
                locs[env[nid].name] = loc_text(g.graph["scopes"][owner]["loc"],
                                                       spec_dir(g))
            continue
        env[nid] = _op_node(g, nid, _rel(path, nid), env, out_nodes, graph, locs)
    results = [env[o] for o in outputs]
    graph.output(results[0] if len(results) == 1 else tuple(results))
    return graph, locs


def _op_node(g: nx.DiGraph, nid: str, rel: str, env: Mapping[str, fx.Node],
             out_nodes: set[str], graph: fx.Graph, locs: dict[str, str]) -> fx.Node:
    """The fx node of one IR op, its module or parameter reached at ``rel``."""
    d = g.nodes[nid]
    a, loc = d["args"], node_where(g, nid)
    args = [env[i] for i in d["inputs"]]
    name = re.sub(r"\W", "_", rel)
    low = _opdef(g, nid).lower
    if isinstance(low, TorchCall):
        n = _call(graph, low, args, a, [g.nodes[i]["shape"] for i in d["inputs"]], name,
                  _runs_inplace(g, nid, out_nodes), locs, loc)
    elif isinstance(low, TorchParameter):
        p = graph.create_node("get_attr", rel, name=f"{name}_param")
        n = graph.create_node("call_function", resolve(low.fn), (p, *args), {}, name=name)
    else:
        n = graph.create_node("call_module", rel, tuple(args), {}, name=name)
    locs[n.name] = loc
    return n


_FN_CACHE: dict[tuple, tuple[Callable, dict[str, Any]]] = {}


def _cached_compile(src: str, globals_: dict[str, Any], name: str, label: str) -> Callable:
    """:func:`_compile`, once per distinct source and globals: every instance of a block
    (and every rebuild after unpickling) shares one function."""
    key = (src, name, tuple(sorted((k, id(v)) for k, v in globals_.items())))
    hit = _FN_CACHE.get(key)
    if hit is not None and all(hit[1].get(k) is v for k, v in globals_.items()):
        return hit[0]                     # (the ids are of the very objects still held)
    if len(_FN_CACHE) > 4096:
        _FN_CACHE.clear()
    fn = _compile(src, globals_, name, label)
    _FN_CACHE[key] = (fn, dict(globals_))
    return fn


def _portable(globals_: Mapping[str, Any]) -> dict[str, Any]:
    """Generated code's globals in a picklable form: modules by name."""
    return {k: ("module", v.__name__) if isinstance(v, type(os)) else ("object", v)
            for k, v in globals_.items()}


def _restored(globals_: Mapping[str, Any]) -> dict[str, Any]:
    return {k: importlib.import_module(v) if kind == "module" else v
            for k, (kind, v) in globals_.items()}


class TreeModule(nn.Module):
    """A spec scope with its own forward: generated from the scope's fx graph
    (:func:`region_graph`) and kept as source, so the module pickles and deep-copies
    (the function is recompiled, once per distinct source)."""

    def _set_forward(self, src: str, globals_: dict[str, Any], label: str) -> None:
        self._share_forward(src, _portable(globals_),
                            _cached_compile(src, globals_, "forward", label))

    def _share_forward(self, src: str, portable: dict[str, Any], fn: Callable) -> None:
        """Run ``fn`` (compiled from ``src``; ``portable``: its globals for pickling) as
        this module's forward: set once per distinct source for all instances of a block
        (plain attributes, so straight into ``__dict__``, past ``Module.__setattr__``)."""
        self.__dict__.update(_arch_src=src, _arch_glb=portable, _arch_fn=fn)

    def forward(self, x: torch.Tensor) -> Any:
        return self._arch_fn(self, x)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arch_fn"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if self.__dict__.get("_arch_src"):
            self._arch_fn = _cached_compile(self._arch_src, _restored(self._arch_glb),
                                            "forward", type(self).__name__)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # block classes are made at build time: rebuilt by name, not looked up by path
        return (_new_tree_module, (type(self).__name__, type(self) is Seq), self.__getstate__())


class Seq(_Labelled, TreeModule):
    """A named seq (or repeat) that is not a plain chain: a generated forward, children
    by name as on a :class:`Scope` (``features[1]``)."""


_BLOCK_CLASSES: dict[str, type] = {}


def block_class(name: str) -> type:
    """The module class of block definition ``name`` (one per name, reused by every
    instance and every build)."""
    cls = _BLOCK_CLASSES.get(name)
    if cls is None:
        cls = _BLOCK_CLASSES[name] = type(name, (TreeModule,), {
            "__module__": __name__,
            "__doc__": f"Block ``{name}`` of a spec; forward generated from its IR."})
    return cls


def _new_tree_module(name: str, is_seq: bool) -> nn.Module:
    cls = Seq if is_seq else block_class(name)
    return cls.__new__(cls)


def _container(plans: Mapping[str, TreePlan], labels: Mapping[str, str], path: str
               ) -> nn.Module:
    """The module made for scope ``path``: its plan's class, else a :class:`Scope`."""
    p = plans.get(path)
    if p is None:
        return Scope(labels.get(path, ""))
    if p.kind == "sequential":
        return nn.Sequential()
    if p.kind == "seq":
        return Seq(labels.get(path, ""))
    return block_class(p.cls_name)()


def head_kind(g: nx.DiGraph, node: str) -> str:
    """``log_probs`` / ``probs`` when the head ends in (log_)softmax, else ``logits``."""
    op = OPS.get(g.nodes[node]["op"])
    return op.head if op is not None else "logits"


def _attach(root: nn.Module, path: str, mod: nn.Module | nn.Parameter | None,
            make: Callable[[str], nn.Module], loc: Location) -> None:
    """Put a leaf module (or a bare parameter; None: nothing) at ``path``, making the
    scope modules above it (``make(prefix)``) where they do not exist yet."""
    parent, prefix = root, ""
    parts = path.split(".")
    for part in parts[:-1]:
        prefix = f"{prefix}.{part}" if prefix else part
        child = parent._modules.get(part)
        if child is None:
            _check_name(parent, part, prefix, loc)
            child = make(prefix)
            parent.add_module(part, child)
        parent = child
    if mod is None:
        return
    _check_name(parent, parts[-1], path, loc)
    if isinstance(mod, nn.Parameter):
        parent.register_parameter(parts[-1], mod)
    else:
        parent.add_module(parts[-1], mod)


def _check_name(parent: nn.Module, part: str, path: str, loc: Location) -> None:
    if part in parent._modules or hasattr(parent, part):
        raise SpecError(f"layer name '{path}' clashes with the torch module attribute "
                        f"'{part}'", loc, "rename the layer")


# ------------------------------------------------------------------ timm model API
# forward_features / forward_head / reset_classifier / feature_info / features_only,
# generated from the spec's roles (g.graph["roles"], archspec.roles) like the forwards
# above: fx graphs over a span of the IR, so no spec has Python of its own.
def role_tensors(g: nx.DiGraph) -> set[str]:
    """The tensors the timm API hands out (each feature map, the head's input): never
    overwritten in place, so a returned feature is the value the network computed."""
    roles = g.graph.get("roles") or {}
    keep = {f["node"] for f in roles.get("features", ())}
    return keep | ({roles["head_input"]} if roles.get("head_input") else set())


def _opened(g: nx.DiGraph, plans: Mapping[str, TreePlan], cuts: set[str]
            ) -> dict[str, TreePlan]:
    """``plans`` less the module scopes a span must reach into: those holding a tensor
    where it starts or ends (a stage inside ``features``, the classifier's input inside
    ``classifier``) other than their own output. Their ops run inline instead."""
    return {p: v for p, v in plans.items()
            if not any(p in g.nodes[c]["scope"] and c != v.output for c in cuts)}


def _span_needed(g: nx.DiGraph, inp: str, outputs: list[str]) -> set[str]:
    """The nodes ``outputs`` need, walking back no further than ``inp``."""
    need: set[str] = set()
    todo = list(outputs)
    while todo:
        n = todo.pop()
        if n in need:
            continue
        need.add(n)
        if n != inp:
            todo.extend(g.nodes[n]["inputs"])
    return need


def span_graph(g: nx.DiGraph, plans: Mapping[str, TreePlan], inp: str, outputs: list[str],
               order: list[str], as_list: bool = False) -> tuple[fx.Graph, dict[str, str]]:
    """A root-level forward from tensor ``inp`` to ``outputs`` (a list of them with
    ``as_list``), as :func:`region_graph` writes the root's: module scopes are
    ``call_module`` except those the span cuts into (:func:`_opened`)."""
    cuts = {inp, *outputs}
    spans = _opened(g, plans, cuts)
    need = _span_needed(g, inp, outputs)
    keep = kept_tensors(g, plans) | cuts
    graph, locs = fx.Graph(), {}
    env: dict[str, fx.Node] = {inp: graph.placeholder("x")}
    for nid in order:
        if nid not in need or nid in env:
            continue
        owner = _owner(g, spans, "", nid)
        if owner is not None:
            if nid == spans[owner].output:
                env[nid] = graph.create_node("call_module", owner, (env[spans[owner].input],),
                                             {}, name=re.sub(r"\W", "_", owner))
                locs[env[nid].name] = loc_text(g.graph["scopes"][owner]["loc"])
            continue
        env[nid] = _op_node(g, nid, nid, env, keep, graph, locs)
    results = [env[o] for o in outputs]
    graph.output(results if as_list else results[0])
    return graph, locs


class _Generated:
    """One generated method kept as source (picklable, deep-copyable: the function is
    recompiled once per distinct source, :func:`_cached_compile`)."""

    def __init__(self, src: str, globals_: Mapping[str, Any], name: str, label: str):
        self.src, self.name, self.label = src, name, label
        self.globals = _portable(globals_)
        self.fn = _cached_compile(src, dict(globals_), name, label)

    def __call__(self, module: nn.Module, x: torch.Tensor) -> Any:
        return self.fn(module, x)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "fn"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.fn = _cached_compile(self.src, _restored(self.globals), self.name, self.label)


def _generate(g: nx.DiGraph, plans: Mapping[str, TreePlan], order: list[str], name: str,
              inp: str, outputs: list[str], as_list: bool = False) -> _Generated:
    src, glb = forward_source(*span_graph(g, plans, inp, outputs, order, as_list), name=name)
    return _Generated(src, glb, name, f"{g.graph['name']} {name}")


def _api_error(g: nx.DiGraph, call: str, needs: str) -> ValueError:
    """The one error of a timm call on a spec whose roles lack what it needs."""
    from archspec.roles import marked_words
    return ValueError(f"{call} needs the spec's roles to mark {needs}, but spec "
                      f"'{g.graph['name']}' ({g.graph.get('path', '?')}) marks "
                      f"{marked_words(g.graph.get('roles'))}; add e.g. 'roles: {{stem: [conv1], "
                      "stages: [layer1, layer2], head: [avgpool, flatten, fc], classifier: "
                      "fc}' to the spec (docs/torch-backend.md, timm's model API)")


class TimmApi(nn.Module):
    """timm's model API on a built spec (ArchModule's base): which layers are the stem,
    stages, head and classifier comes from the spec's ``roles:``. ``forward_features``
    runs every layer before the head, ``forward_head`` the head (``pre_logits``: up to
    the classifier's input), ``reset_classifier`` swaps the classifier, and
    ``feature_info`` / ``num_features`` / ``num_classes`` come from the static shapes."""

    def _timm_setup(self, g: nx.DiGraph, plans: Mapping[str, TreePlan], order: list[str]
                    ) -> None:
        """Generate the head and features forwards once, at build time (so torch.compile
        traces plain calls)."""
        roles = g.graph.get("roles") or {}
        self._timm: dict[str, _Generated] = {}
        self._timm_num_classes = roles.get("num_classes")
        inp, head_in = g.graph["input"], roles.get("head_input")
        if head_in is None:
            return
        outs = [o["node"] for o in g.graph["outputs"] if not o["train_only"]]
        self._timm["features"] = _generate(g, plans, order, "forward_features", inp, [head_in])
        self._timm["head"] = _generate(g, plans, order, "forward_head", head_in, outs)
        cls = roles.get("classifier")
        if cls is not None:
            pre = g.nodes[cls]["inputs"][0]
            self._timm["pre_logits"] = _generate(g, plans, order, "forward_pre_logits",
                                                 head_in, [pre])

    def _roles(self, call: str, key: str, needs: str) -> dict[str, Any]:
        roles = self.graph_ir.graph.get("roles") or {}
        if not roles.get(key):
            raise _api_error(self.graph_ir, call, needs)
        return roles

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The stem, the stages and any layer before the head: the feature map the head
        reads (timm's ``forward_features``)."""
        fn = self._timm.get("features")
        if fn is None:
            raise _api_error(self.graph_ir, "forward_features", "a head")
        return fn(self, x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> Any:
        """The head on ``forward_features``' output; ``pre_logits`` stops before the
        classifier (the pooled ``(N, num_features)`` vector)."""
        fn = self._timm.get("pre_logits" if pre_logits else "head")
        if fn is None:
            raise _api_error(self.graph_ir, f"forward_head(pre_logits={pre_logits})",
                             "a head and a classifier" if pre_logits else "a head")
        return fn(self, x)

    def get_classifier(self) -> nn.Module:
        """The classifier module (timm's ``get_classifier``)."""
        roles = self._roles("get_classifier", "classifier", "a classifier")
        return self.get_submodule(roles["classifier"])

    def reset_classifier(self, num_classes: int, global_pool: Any = None) -> None:
        """Replace the classifier by a fresh ``nn.Linear(num_features, num_classes)``
        (torch's default init, the old one's device and dtype), or ``nn.Identity`` for
        0, at the same path, so its state_dict keys stay (``fc.weight``). The pooling is
        the spec's: ``global_pool`` must be None."""
        roles = self._roles("reset_classifier", "classifier", "a classifier")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"reset_classifier: num_classes must be an integer >= 0, got "
                             f"{num_classes!r}")
        if global_pool is not None:
            raise ValueError(f"reset_classifier: global_pool={global_pool!r} is not supported: "
                             "the pooling is the spec's head (change it in the spec)")
        path = roles["classifier"]
        old = next(self.get_submodule(path).parameters(), None)
        new: nn.Module = nn.Identity() if num_classes == 0 else nn.Linear(
            roles["num_features"], num_classes,
            device=old.device if old is not None else None,
            dtype=old.dtype if old is not None else None)
        parent, _, leaf = path.rpartition(".")
        setattr(self.get_submodule(parent) if parent else self, leaf, new)
        self._timm_num_classes = num_classes

    @property
    def num_classes(self) -> int | None:
        """Classes of the classifier (after :meth:`reset_classifier`, its new count)."""
        return self.__dict__.get("_timm_num_classes")

    @property
    def num_features(self) -> int | None:
        """Width entering the classifier: what ``forward_head(pre_logits=True)`` returns."""
        return (self.graph_ir.graph.get("roles") or {}).get("num_features")

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """timm's per-feature dicts (``num_chs``, ``reduction``, ``module``, ``index``):
        the stem's output when the spec marks a stem (index 0, as timm's ResNets), then
        every stage's, from the static shapes."""
        roles = self.graph_ir.graph.get("roles") or {}
        return [{k: v for k, v in f.items() if k != "node"} for f in roles.get("features", ())]


def _out_indices(g: nx.DiGraph, out_indices: Any) -> tuple[int, ...]:
    """``out_indices`` as sorted non-negative indices into the features (an int n: the
    last n, as timm's; negatives count from the end); a bad one names every feature."""
    feats = (g.graph.get("roles") or {}).get("features", ())
    if not (g.graph.get("roles") or {}).get("stages"):
        raise _api_error(g, "features_only", "stages")
    n = len(feats)
    if out_indices is None:
        return tuple(range(n))
    if isinstance(out_indices, int) and not isinstance(out_indices, bool):
        out_indices = tuple(range(n - out_indices, n)) if 0 < out_indices <= n else (n,)
    names = ", ".join(f"{f['index']} {f['module']}" for f in feats)
    picked = []
    for i in out_indices:
        if isinstance(i, bool) or not isinstance(i, int) or not -n <= i < n:
            raise ValueError(f"out_indices {tuple(out_indices)!r}: {i!r} is not one of the "
                             f"{n} features of spec '{g.graph['name']}' ({names}); use indices "
                             f"0 to {n - 1} (or -{n} to -1)")
        picked.append(i % n)
    if not picked:
        raise ValueError(f"out_indices is empty; the features are {names}")
    return tuple(sorted(set(picked)))


def _prune(root: nn.Module, g: nx.DiGraph, keep: set[str]) -> None:
    """Remove every module, and every bare parameter of the spec, that no kept IR node
    lies in or under (a features_only model holds no head, as timm's)."""
    prefixes = {".".join(n.split(".")[:k]) for n in keep for k in range(1, n.count(".") + 2)}

    def walk(mod: nn.Module, path: str) -> None:
        for name in list(mod._modules):
            sub = f"{path}.{name}" if path else name
            if sub in prefixes:
                walk(mod._modules[name], sub)
            else:
                delattr(mod, name)
        for name in list(mod._parameters):
            sub = f"{path}.{name}" if path else name
            if sub in g and sub not in prefixes:
                delattr(mod, name)
    walk(root, "")


def feature_extractor(module: "ArchModule", out_indices: Any = None) -> "ArchFeatures":
    """``module`` turned into its feature extractor (timm's ``features_only``): forward
    returns the chosen features (:attr:`feature_info`, a :class:`FeatureInfo`), and the
    layers none of them needs (the head, training-only heads, later stages) are removed."""
    from archspec.roles import FeatureInfo
    g = module.graph_ir
    picked = _out_indices(g, out_indices)
    feats = g.graph["roles"]["features"]
    taps = [feats[i]["node"] for i in picked]
    _prune(module, g, _span_needed(g, g.graph["input"], taps))
    order = _order(g)
    gen = _generate(g, tree_plans(g, order), order, "forward_features_only",
                    g.graph["input"], taps, as_list=True)
    module.__class__ = ArchFeatures
    module._timm = {"features_only": gen}
    module._timm_feature_info = FeatureInfo(
        [{k: v for k, v in f.items() if k != "node"} for f in feats], picked)
    module.code = gen.src
    return module


class ArchModule(TimmApi):
    """A network built from a spec's graph IR; see the module docstring.

    Attributes: ``output_names``, ``loss_weights``, ``train_only``, ``head_kinds``,
    ``graph_ir`` (the networkx IR), ``spec_name``, ``code`` (generated source).
    """

    def __init__(self, g: nx.DiGraph):
        super().__init__()
        outs = g.graph["outputs"]
        self.graph_ir = g
        self.spec_name: str = g.graph["name"]
        self.output_names: tuple[str, ...] = tuple(o["name"] for o in outs)
        self.loss_weights: dict[str, float] = {o["name"]: float(o["loss_weight"]) for o in outs}
        self.train_only: frozenset[str] = frozenset(o["name"] for o in outs if o["train_only"])
        self.head_kinds: dict[str, str] = {o["name"]: head_kind(g, o["node"]) for o in outs}
        labels = {p: s.get("label", "") for p, s in g.graph["scopes"].items()}
        order = _order(g)
        plans = tree_plans(g, order)
        leaves: dict[str, ModuleDef | ParamDef] = {**module_defs(g, kept_tensors(g, plans)),
                                                   **param_defs(g)}
        make = functools.partial(_container, plans, labels)
        for nid, d in g.nodes(data=True):     # graph order, as the standalone source
            if nid == g.graph["input"] or d["op"] == "input":
                continue
            leaf = leaves.get(nid)
            _attach(self, nid, leaf.make() if leaf is not None else None, make,
                    leaf.loc if leaf is not None else d["loc"])
        self._root_forwards(plans, order)
        self.code += _set_tree_forwards(self, g, plans, order)
        self._timm_setup(g, plans, order)

    def _root_forwards(self, plans: Mapping[str, TreePlan], order: list[str]) -> None:
        """The root's eval forward and, with train-only outputs, its train forward: each
        over the top-level ops and module scopes (:func:`region_graph`)."""
        g = self.graph_ir
        src, glb = forward_source(*_root_graph(g, plans, order, train=False),
                                  name="forward_eval")
        self._forward_eval = _compile(src, glb, "forward_eval", f"{self.spec_name} eval")
        self.code = src
        self._forward_train: Callable | None = None
        if self.train_only:
            tsrc, tglb = forward_source(*_root_graph(g, plans, order, train=True),
                                        name="forward_train")
            self._forward_train = _compile(tsrc, tglb, "forward_train",
                                           f"{self.spec_name} train")
            self.code += "\n" + tsrc

    def forward(self, x: torch.Tensor) -> Any:
        if self.training and self._forward_train is not None:
            return self._forward_train(self, x)
        return self._forward_eval(self, x)

    def __getstate__(self) -> dict[str, Any]:
        # Generated functions are not picklable: drop them and rebuild from the IR.
        state = dict(self.__dict__)
        state["_forward_eval"] = state["_forward_train"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        code = self.code
        self._root_forwards(tree_plans(self.graph_ir), _order(self.graph_ir))
        self.code = code


class ArchFeatures(ArchModule):
    """``build_module(spec, features_only=True, out_indices=...)``: a built spec whose
    forward returns the list of the chosen stage feature maps (timm's features_only,
    :func:`features_only`); ``feature_info`` is a :class:`~archspec.roles.FeatureInfo`."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._timm["features_only"](self, x)

    @property
    def feature_info(self) -> Any:   # the chosen features, with timm's accessors
        return self._timm_feature_info

    def _no_head(self, call: str) -> ValueError:
        return ValueError(f"{call}: this is a features_only model of spec '{self.spec_name}' "
                          "(its forward returns the stage features and it holds no head); "
                          "build it without features_only for the classifier")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise self._no_head("forward_features")

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> Any:
        raise self._no_head("forward_head")

    def reset_classifier(self, num_classes: int, global_pool: Any = None) -> None:
        raise self._no_head("reset_classifier")


def _root_graph(g: nx.DiGraph, plans: Mapping[str, TreePlan], order: list[str], train: bool
                ) -> tuple[fx.Graph, dict[str, str]]:
    """The root forward: the evaluation outputs, or (``train``) every output in spec order."""
    outs = [o["node"] for o in g.graph["outputs"] if train or not o["train_only"]]
    return region_graph(g, plans, "", g.graph["input"], outs, order)


def _set_tree_forwards(root: nn.Module, g: nx.DiGraph, plans: Mapping[str, TreePlan],
                       order: list[str]) -> str:
    """Give every scope module of ``root`` its generated forward; returns their sources
    (each distinct one once, headed by the scopes that run it) for ``root.code``."""
    users: dict[str, list[str]] = {}
    sources: dict[tuple, tuple[str, dict[str, Any], Callable]] = {}
    keep = kept_tensors(g, plans)
    made: dict[tuple, tuple] = {}        # region key → graph key: fx runs once per block
    for path, p in plans.items():
        mod = root.get_submodule(path)
        if not isinstance(mod, TreeModule):
            continue
        rkey = _region_key(g, plans, path, p.input, p.output, order, keep)
        key = made.get(rkey)
        if key is None:
            graph, locs = region_graph(g, plans, path, p.input, [p.output], order, keep)
            key = made[rkey] = _graph_key(graph, locs)
            if key not in sources:
                src, glb = forward_source(graph, locs)
                sources[key] = (src, _portable(glb), _cached_compile(
                    src, glb, "forward", f"{g.graph['name']} {p.cls_name}"))
        src, portable, fn = sources[key]
        mod._share_forward(src, portable, fn)
        users.setdefault(src, []).append(f"{path} ({p.cls_name})")
    return "".join(f"\n# {', '.join(u)}\n{src}" for src, u in users.items())


def _region_key(g: nx.DiGraph, plans: Mapping[str, TreePlan], path: str, inp: str,
                out: str, order: list[str], keep: set[str]) -> tuple:
    """Everything :func:`region_graph` reads to write scope ``path``'s forward, relative
    to the scope: per op in order its name, lowering, inputs, in-place choice and spec
    location, and for a functional op its arguments and input shapes (a module's
    arguments are its constructor's, not the forward's). Equal keys, equal fx graphs, so
    the instances of a block build theirs once."""
    need = _needed(g, path, [out])
    ref: dict[str, Any] = {inp: "x"}
    key: list[tuple] = []
    for nid in order:
        if nid not in need or nid in ref:
            continue
        owner = _owner(g, plans, path, nid)
        if owner is not None:
            if nid == plans[owner].output:
                ref[nid] = ("mod", _rel(path, owner))
                key.append((ref[nid], ref[plans[owner].input],
                            g.graph["scopes"][owner]["loc"]))
            continue
        d = g.nodes[nid]
        low = _opdef(g, nid).lower
        ref[nid] = _rel(path, nid)
        ins = tuple(ref[i] for i in d["inputs"])
        call = (repr(sorted(d["args"].items())), tuple(g.nodes[i]["shape"] for i in
                d["inputs"])) if isinstance(low, TorchCall) else ()
        key.append((ref[nid], id(low), ins, call, _runs_inplace(g, nid, keep),
                    node_where(g, nid)))
    return tuple(key), ref[out]


def _graph_key(graph: fx.Graph, locs: Mapping[str, str]) -> tuple:
    """What the source fx writes for ``graph`` depends on (each node's name, opcode,
    target and arguments) with the comments: equal keys, equal source, so the instances
    of a block that differ only in their modules' arguments are written once."""
    def arg(a: Any) -> Any:
        if isinstance(a, fx.Node):
            return ("node", a.name)
        if isinstance(a, (list, tuple)):
            return (type(a).__name__, *map(arg, a))
        if isinstance(a, dict):
            return ("dict", *((k, arg(v)) for k, v in a.items()))
        return (type(a).__name__, repr(a))
    return tuple((n.name, n.op, n.target if isinstance(n.target, str) else id(n.target),
                  arg(n.args), arg(n.kwargs), locs.get(n.name)) for n in graph.nodes)


# ------------------------------------------------------------------ memory guard
def _read_number(path: str) -> int | None:
    """An integer from a small kernel file (``max`` or a missing file: None)."""
    try:
        with open(path, "rb") as f:
            text = f.read(64).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_dirs() -> list[tuple[str, str, str]]:
    """(dir, limit file, usage file) of this process's memory cgroup, v2 and v1, own path
    (from /proc/self/cgroup) and the mount's root."""
    v2, v1 = "/sys/fs/cgroup", "/sys/fs/cgroup/memory"
    out = [(v2, "memory.max", "memory.current"),
           (v1, "memory.limit_in_bytes", "memory.usage_in_bytes")]
    try:
        with open("/proc/self/cgroup", "rb") as f:
            lines = f.read(1 << 16).decode("utf-8", "replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, ctrl, path = (line.split(":", 2) + ["", ""])[:3]
        if path.strip("/") and (ctrl == "" or "memory" in ctrl.split(",")):
            base, lim, use = (v2, "memory.max", "memory.current") if ctrl == "" else \
                (v1, "memory.limit_in_bytes", "memory.usage_in_bytes")
            out.insert(0, (os.path.join(base, path.strip("/")), lim, use))
    return out


def memory_limits() -> list[tuple[int, str]]:
    """Every bound on the memory this process may still take, in bytes, with its source:
    MemAvailable (or physical memory), the address-space limit (RLIMIT_AS, ``ulimit -v``,
    less what the process already maps) and the memory cgroup's limit less its usage."""
    out: list[tuple[int, str]] = []
    meminfo = None
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f.read(1 << 16).decode("ascii", "replace").splitlines():
                if line.startswith("MemAvailable:"):
                    meminfo = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if meminfo is None:
        try:
            meminfo = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            meminfo = 1 << 62
    out.append((meminfo, "MemAvailable"))
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError):
        soft = -1
    if soft not in (-1, getattr(resource, "RLIM_INFINITY", -1)) and soft >= 0:
        out.append((max(soft - _mapped_bytes(), 0), "the address-space limit (ulimit -v)"))
    for folder, lim, use in _cgroup_dirs():
        limit = _read_number(os.path.join(folder, lim))
        if limit is not None and limit < 1 << 60:
            used = _read_number(os.path.join(folder, use)) or 0
            out.append((max(limit - used, 0), f"the memory cgroup's limit ({folder})"))
    return out


def _mapped_bytes() -> int:
    """The address space this process already maps (VmSize), 0 when unknown."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f.read(1 << 16).decode("ascii", "replace").splitlines():
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def available_memory() -> int:
    """Bytes this process can still allocate: the smallest of :func:`memory_limits`."""
    return min(n for n, _ in memory_limits())


def _memory_word() -> str:
    """'N GB of memory available' with what bounds it when that is not the machine's RAM."""
    have, source = min(memory_limits())
    return f"{_gb(have)} of memory available" + \
        ("" if source == "MemAvailable" else f" under {source}")


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def check_memory(g: nx.DiGraph, bytes_per_param: int = 4) -> None:
    """Refuse, before allocating, a model whose weights exceed the machine's memory."""
    params = sum(int(d["params"]) for _, d in g.nodes(data=True))
    need = params * bytes_per_param
    have = available_memory()
    if need > have:
        big = max(g.nodes, key=lambda n: int(g.nodes[n]["params"]))
        loc = g.nodes[big]["loc"]
        for scope in reversed(g.nodes[big]["scope"]):     # a library block's op: its use site
            sl = g.graph.get("scopes", {}).get(scope, {}).get("loc")
            if sl is not None and sl.path != loc.path:
                loc = sl
                break
        raise SpecError(f"the model has {params:,} parameters: {_gb(need)} of float32 weights, "
                        f"more than the {_memory_word()} (the largest layer, "
                        f"{big}, has {int(g.nodes[big]['params']):,})", loc,
                        "reduce the width or depth (--set ...)")


def check_activation_memory(g: nx.DiGraph, batch: int, what: str = "--batch") -> None:
    """Refuse a forward pass that cannot fit: the largest op's inputs and output alone, at
    ``batch`` samples, exceed the memory left beside the weights (no OOM kill midway)."""
    import math

    def numel(n: str) -> int:
        return math.prod(g.nodes[n]["shape"])

    def live(n: str) -> int:
        return numel(n) + sum(numel(i) for i in set(g.nodes[n]["inputs"]))
    big = max(g.nodes, key=live)
    need = (live(big) * batch + sum(int(d["params"]) for _, d in g.nodes(data=True))) * 4
    have = available_memory()
    if need > have:
        raise SpecError(f"a forward pass at batch {batch} needs at least {_gb(need)} "
                        f"(weights, and {big}'s input and output of {live(big):,} floats per "
                        f"sample), more than the {_memory_word()}",
                        Location(what) if batch > 2 else g.nodes[g.graph["input"]]["loc"],
                        "use a smaller batch or input size")


# --------------------------------------------------------------------- init
# Every node's init plan is resolved by the front end (archspec.spec.init: rules by op
# kind, block and layer, the named schemes written in that notation); here it is only
# run, generically: torch.nn.init's function of each scheme on each planned tensor.
def _tensor_key(nid: str, op: OpDef, tensor: str) -> str:
    """The state_dict key of a node's learnt tensor: ``nid.weight`` on a module, the
    node's own path for a bare parameter (a TorchParameter op has one tensor)."""
    return nid if isinstance(op.lower, TorchParameter) else f"{nid}.{tensor}"


def _run_init(t: torch.Tensor, scheme: str, args: tuple[tuple[str, Any], ...]) -> None:
    """One tensor drawn as a spec's scheme says (torch.nn.init's own function)."""
    fn = INIT_FNS[scheme]
    resolve(fn.fn)(t, **torch_init_kwargs(fn, dict(args)))


def _node_tensors(g: nx.DiGraph, key: str) -> dict[str, tuple[str, Any]]:
    """state_dict key → (node, value of the node's ``key`` attribute's entry): the init
    plan's ``(scheme, args)`` per tensor, or the node id for ``trainable``."""
    out: dict[str, tuple[str, Any]] = {}
    for n, d in g.nodes(data=True):
        op = OPS.get(d["op"])
        if op is None:
            continue
        if key == "init":
            for tensor, scheme, args in d.get("init", ()):
                out[_tensor_key(n, op, tensor)] = (n, (scheme, args))
        elif not d.get("trainable", True) and op.tensors is not None:
            for tensor, _ in op.tensors(d["args"], [g.nodes[i]["shape"] for i in d["inputs"]]):
                out[_tensor_key(n, op, tensor)] = (n, None)
    return out


def apply_init(module: nn.Module, g: nx.DiGraph) -> None:
    """Initialise ``module`` (built from ``g``) by its nodes' init plans, in module
    registration order and each module's own tensors in order (weight, then bias), as
    torchvision's ``for m in self.modules()`` draws; then freeze ``trainable: false``."""
    plans = _node_tensors(g, "init")
    with torch.no_grad():
        for mname, m in module.named_modules():
            for pname, p in m.named_parameters(recurse=False):
                hit = plans.get(f"{mname}.{pname}" if mname else pname)
                if hit is not None:
                    _run_init(p, *hit[1])
    frozen = _node_tensors(g, "trainable")
    for name, p in module.named_parameters():
        if name in frozen:
            p.requires_grad_(False)


def _role_classes() -> dict[type, tuple[OpDef, ...]]:
    """Module class → the registry's ops that become it; by type, so the named schemes
    also apply to hand-written references (torchvision's models)."""
    out: dict[type, tuple[OpDef, ...]] = {}
    for op in OPS.values():
        if op.tensors is not None and isinstance(op.lower, TorchModule):
            for c in op.lower.classes:
                cls = resolve(c)
                out[cls] = out.get(cls, ()) + (op,)
    return out


def init_weights(module: nn.Module, scheme: str) -> None:
    """Initialise any ``module`` in place with a named scheme (init_schemes.yaml), each
    submodule by its type's op (nn.Conv2d a conv, nn.BatchNorm2d a norm), in module
    order: what the spec's ``init: <scheme>`` gives a built module, for references.
    Layer and block rules exist only in specs: use :func:`build_module` for those."""
    from archspec.spec.init import named_scheme, plan
    rules = named_scheme(scheme, Location("<init>"))
    if not rules:
        return
    roles = _role_classes()
    with torch.no_grad():
        for name, m in module.named_modules():
            op = next(iter(roles.get(type(m), ())), None)
            if op is None:
                continue
            tensors = tuple((n, tuple(p.shape)) for n, p in m.named_parameters(recurse=False))
            for tensor, sch, args in plan(op, tensors, ((rules, {}),), name or "module"):
                _run_init(getattr(m, tensor), sch, args)


# -------------------------------------------------------------------- entry
def to_graph(spec: Any, overrides: Any = None) -> nx.DiGraph:
    """A path, a loaded Spec or a compiled graph → the graph IR."""
    if isinstance(spec, nx.DiGraph):
        if overrides:
            raise SpecError("overrides need a spec, not a compiled graph",
                            Location(spec.graph.get("path", "<graph>")))
        return spec
    from archspec.graph import compile_graph
    if isinstance(spec, (str, os.PathLike)):
        return _checked_graph(os.fspath(spec), overrides)
    if overrides:
        raise SpecError("overrides need a spec path; a loaded Spec is already resolved",
                        Location(getattr(spec, "path", "<spec>")))
    return compile_graph(spec)


# ------------------------------------------------------- checked graphs, in-process
# The front end (load, expand, shape-check) costs as much as building the modules of a
# small network; a process building one spec again (a seed sweep, a grid, the tests)
# reuses the graph it checked, while every file it read still holds the same text.
_GRAPHS: dict[tuple, tuple[nx.DiGraph, tuple[tuple[str, str], ...]]] = {}
_GRAPHS_MAX = 32


def _overrides_key(overrides: Any) -> tuple | None:
    """A hashable form of ``--set`` overrides (a mapping or strings); None: uncacheable."""
    if not overrides:
        return ()
    try:
        if isinstance(overrides, Mapping):
            return ("map", tuple((str(k), repr(v)) for k, v in overrides.items()))
        return ("list", tuple(overrides)) if all(isinstance(o, str) for o in overrides) \
            else None
    except TypeError:
        return None


def _sources_unchanged(sources: tuple[tuple[str, str], ...]) -> bool:
    """True while every file the spec was read from still holds the text it had."""
    for path, text in sources:
        data = text.encode("utf-8")
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
                return False                     # (never opens what is no longer a file)
            with open(path, "rb") as fh:
                if fh.read(len(data) + 1) != data:
                    return False
        except OSError:
            return False
    return True


def _checked_graph(path: str, overrides: Any) -> nx.DiGraph:
    """The compiled graph of the spec at ``path`` with ``overrides``: from the front end,
    or a copy of the one made for the same files, overrides, working directory and op
    registry (a changed file, a newly registered op, another ``--set`` reads afresh)."""
    from archspec.errors import register_source
    from archspec.graph import compile_graph
    from archspec.library import resolve as resolve_spec
    from archspec.spec import load_spec
    if overrides is not None and not isinstance(overrides, Mapping):
        overrides = list(overrides)              # an iterator: read once, for key and load
    okey = _overrides_key(overrides)
    real = resolve_spec(path, "spec")
    key = None if okey is None else \
        (real, os.getcwd(), okey, tuple((k, id(d)) for k, d in OPS.items()))
    hit = _GRAPHS.get(key) if key is not None else None
    if hit is not None and _sources_unchanged(hit[1]):
        for src_path, text in hit[1]:             # error carets, as a fresh load gives
            register_source(src_path, text)
        return nx.freeze(hit[0].copy())
    spec = load_spec(path, overrides or None)
    g = compile_graph(spec)
    if key is not None:
        if len(_GRAPHS) >= _GRAPHS_MAX:
            _GRAPHS.pop(next(iter(_GRAPHS)))
        _GRAPHS[key] = (g.copy(), tuple(spec.sources))
    return g


def build_module(spec: Any, overrides: Any = None, *, features_only: bool = False,
                 out_indices: Any = None) -> ArchModule:
    """Build the torch module of a spec (path, Spec or graph IR) and apply its ``init``.
    ``features_only``: the backbone alone, its forward returning the stage features
    ``out_indices`` picks (timm's; :func:`feature_extractor`)."""
    g = to_graph(spec, overrides)
    if features_only:
        _out_indices(g, out_indices)     # a bad index fails before anything is built
    check_memory(g)
    module = ArchModule(g)
    apply_init(module, g)
    return feature_extractor(module, out_indices) if features_only else module
