"""Stage 2: expand a spec into a networkx graph of primitive ops (the IR).

The IR is the contract between stages: every later stage (shapes, torch,
codegen, render, grid) reads only the attributes documented here and, at more
length, in docs/ir.md (keep the two in step; tests/test_graph.py checks both).
Nodes are inserted in spec order, each after its inputs.

Nodes (id = hierarchical name, the torch module path, e.g. ``layer2.0.conv1``):

=============  ===============================================================
``op``         primitive op name from :data:`archspec.ops.OPS`, or ``"input"``
``args``       dict of the op's arguments, typed and defaulted
               (kernel/stride/padding as ``(h, w)`` pairs)
``inputs``     tuple of input node ids, in argument order (edges repeat them,
               with an ``index`` attribute; ``inputs`` is authoritative)
``scope``      tuple of enclosing scope paths, outermost first
               (``("layer2", "layer2.0")``); see ``graph.graph["scopes"]``
``loc``        :class:`~archspec.errors.Location` of the layer in the spec
``shape``      output shape per sample, batch left symbolic: ``(C, H, W)`` or
               ``(F,)``
``params``     trainable parameter count
``macs``       multiply-accumulates per sample (conv and linear)
``train_only`` True for nodes of heads that run only in training
``init``       the node's init plan: ``((tensor, scheme, ((arg, value), …)), …)``
               for each learnt tensor a rule selects (``spec.init``), in the
               op's tensor order; ``()`` keeps torch's defaults
``trainable``  False where ``trainable: false`` freezes the node's parameters
=============  ===============================================================

Graph attributes (``graph.graph``): ``name``, ``path``, ``description``,
``init`` (weight-init scheme), ``input`` (id of the input node), ``outputs``
(list of dicts: ``name``, ``node``, ``loss_weight``, ``train_only``), ``scopes``
(dict path → dict with ``kind`` = block | seq | repeat | container, ``label``
such as ``B(3,3)``, ``block`` name, ``args``, ``loc``, ``train_only``) and
``params`` (the spec's resolved parameters and ``let`` values), ``warnings`` (a
list of located :class:`~archspec.errors.SpecWarning`: ops whose output reaches no
output; the CLI prints them, ``--strict`` makes them errors) and ``roles`` (None, or
the spec's stem, stages, head and classifier with their tensors and timm's
``feature_info``; see :mod:`archspec.roles`).
"""
from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from functools import lru_cache
from itertools import islice
from typing import Any

import networkx as nx

from archspec.errors import Location, SpecError, SpecErrors, SpecWarning, did_you_mean
from archspec.ops import MAX_INT, OPS, OpError, normalise_args, shape_str
from archspec.roles import resolve_roles
from archspec.spec import expr as ex
from archspec.spec.loader import (MAX_LABEL_CHARS, REQUIRED, check_length, check_type,
                                  eval_node, evaluate_env, interpolate, parse_block_value)
from archspec.spec.model import BlockDef, Item, Spec
from archspec.spec import init as sp_init
from archspec.spec.names import check_layer_name
from archspec.spec.yamlsrc import YMap, YNode, YScalar, YSeq

MAX_DEPTH = 64          # nesting of block instances
MAX_NODES = 50_000      # primitive ops in one graph (ResNet-152 has 515)
#: Layers expanded (ops, blocks, seqs, loops, left out or not) before the expansion stops:
#: a block that uses another twice, nested 30 deep, is 2**30 steps with few or no ops, so
#: the op limit alone would not stop it. ResNet-152 takes 570 steps.
MAX_STEPS = 100_000

NODE_ATTRS = ("op", "args", "inputs", "scope", "loc", "shape", "params", "macs", "train_only",
              "init", "trainable")



def _is_word(value: Any, words: tuple[str, ...], env: dict) -> bool:
    """Whether a field that takes words (``mode: row``, ``padding: same``) got a word.

    A listed word always is; so is any other bare identifier that names nothing in scope,
    so that ``mode: rows`` is told the words it may use rather than "undefined name"."""
    if not words or not isinstance(value, str):
        return False
    return value in words or (value.isidentifier() and value not in env)

@dataclass
class _Scope:
    prefix: str                      # "" at the root, "layer2.0" inside a block
    names: dict[str, str | None]     # local name -> node id (None: failed)
    parent: "_Scope | None" = None
    sequential: bool = False         # unnamed items get positional names, as in nn.Sequential
    counter: int = 0
    used: set[str] = field(default_factory=set)
    train_only: bool = False
    blocks: tuple[str, ...] = ()     # block names being expanded (recursion guard)
    declared: dict[str, Location] = field(default_factory=dict)  # literal names, for cycles
    left_out_heads: set[str] = field(default_factory=set)  # train_only layers whose when is false
    init: tuple = ()                 # init rule sets in force here, outermost first (spec.init)
    trainable: bool = True           # what `trainable:` says here (innermost wins)

    def full(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def lookup(self, name: str) -> tuple[bool, str | None]:
        s: _Scope | None = self
        while s is not None:
            if name in s.names:
                return True, s.names[name]
            s = s.parent
        return False, None

    def declared_at(self, name: str) -> Location | None:
        s: _Scope | None = self
        while s is not None:
            if name in s.declared:
                return s.declared[name]
            s = s.parent
        return None

    def visible(self) -> list[str]:
        out: list[str] = []
        s: _Scope | None = self
        while s is not None:
            out.extend(s.names)
            s = s.parent
        return out


def _arg_value(param: Any, node: YNode, env: dict) -> Any:
    """A block argument's value: one of the parameter's listed string choices, written
    bare, is that word (``act: hardswish``), as an op's choice field reads it; anything
    else is an expression."""
    words = [c for c in getattr(param, "choices", ()) if isinstance(c, str)]
    if isinstance(node, YScalar) and isinstance(node.value, str) and node.value in words:
        return node.value
    if isinstance(node, YScalar) and getattr(param, "type", None) in ("str", "bool") and \
            _is_bare_word(node.value, env):
        return node.value    # `act: hs` is the word; `bias: no` is told "true or false"
    return eval_node(node, env)


_NORMALISED: dict[tuple, tuple[Any, dict[str, Any]]] = {}


def _normalised(op: Any, given: dict[str, Any]) -> dict[str, Any]:
    """``normalise_args(op, given)``, remembered for hashable arguments: every instance of
    a block gives its ops the same few argument sets. Keys carry each value's type, so
    ``1``, ``1.0`` and ``True`` stay apart; a failure is never remembered."""
    try:
        key = (op.name, tuple((k, type(v), v) for k, v in given.items()))
        hit = _NORMALISED.get(key)
    except TypeError:        # a list argument: not hashable
        return normalise_args(op, given)
    if hit is None or hit[0] is not op:     # an op registered again under its name
        hit = (op, normalise_args(op, given))
        if len(_NORMALISED) < 65536:
            _NORMALISED[key] = hit
    return dict(hit[1])


def _repeat_env(env: dict, j: int, n: int) -> dict:
    """The scope of a repeat's ``j``-th of ``n`` copies: ``index`` and ``count`` are bound
    (they shadow outer names), so stochastic depth reads ``0.2 * index / (count - 1)``."""
    return {**env, "index": j, "count": n}


#: Words YAML 1.1 read as booleans: always words here, never a misspelt name.
_YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n"}


def _is_bare_word(value: Any, env: dict) -> bool:
    """Whether ``value`` is a plain word that names nothing: a string or boolean field or
    parameter takes it as the text itself (``act: hs``; ``bias: "no"`` then fails as
    "must be true or false") rather than "undefined name". A word close to a name in
    scope (``use_bais`` for ``use_bias``) stays a name, so its typo is told as one."""
    if not (isinstance(value, str) and value.isidentifier() and value not in env and
            value not in ex.CONSTANTS):
        return False
    return value.lower() in _YAML11_BOOLS or did_you_mean(value, env) is None


def _declare(items: tuple[Item, ...], declared: dict[str, Location]) -> None:
    """Record the literal layer names of a scope, so a forward reference reads as a cycle."""
    for item in items:
        if item.kind == "for":
            _declare(item.seq, declared)
        elif item.name is not None and isinstance(item.name.value, str) and \
                "{" not in item.name.value:
            declared.setdefault(item.name.value, item.name.loc)


class _Builder:
    def __init__(self, spec: Spec):
        self.spec = spec
        self.g = nx.DiGraph()
        self.errors: list[SpecError] = []
        self.scopes: dict[str, dict[str, Any]] = {}
        self.first_loc: dict[str, Location] = {}
        self.blocks = dict(spec.blocks)
        self.user_files = {path for path, _ in spec.sources}
        self.sites: list[Location] = []   # use sites, in the user's files, of open blocks
        self._relocated: set[tuple[Location, Location]] = set()
        self.too_big = False    # past MAX_NODES or MAX_STEPS: stop expanding
        self.steps = 0          # expand_item calls, against MAX_STEPS
        self._enclosing: dict[str, tuple[str, ...]] = {}   # parent path -> scope paths
        self._added: list[str] = []     # node ids in insertion order (a block's share: a slice)
        self._memo = _shared_memo(self.blocks, spec.tables)   # identical block instances
        self._reads: dict[tuple, tuple] = {}     # (block, names) -> env values it may read
        self._absolute = False          # a full hierarchical name was read (see refs)
        self._last_key: tuple = (None, None)    # the last instance's (context, memo key)
        self.env0 = {**{n: ex.TableRef(n, tuple(r for r, _, _ in t.rows), t.columns)
                        for n, t in spec.tables}, **dict(spec.functions), **dict(spec.env)}
        self._env_keys = frozenset(self.env0)

    # ------------------------------------------------------------ errors
    def error(self, e: SpecError) -> None:
        """Collect errors; one inside a standard block is reported where the user uses it."""
        for x in e.errors:
            if x.loc.path in self.user_files or not self.sites:
                self.errors.append(x)
                continue
            site = self.sites[-1]
            if (site, x.loc) in self._relocated:   # the same line of the block, again
                continue
            self._relocated.add((site, x.loc))
            where = os.path.basename(x.loc.path)
            self.errors.append(SpecError(f"{x.message} (inside the block, at {where}:"
                                         f"{x.loc.line}:{x.loc.col})", site, x.hint))

    # ------------------------------------------------------------- nodes
    def add_node(self, nid: str, op: str, args: dict, inputs: list[str], scope: _Scope,
                 loc: Location, shape: tuple | None, params: int = 0, macs: int = 0,
                 train_only: bool = False, init: tuple = (), trainable: bool = True) -> None:
        train_only = train_only or scope.train_only
        if nid in self.g:
            raise SpecError(f"duplicate layer name '{nid}'", loc,
                            "this layer is expanded more than once (in a for loop): put the "
                            "loop variable in its name, e.g. \"conv{i}\""
                            if self.first_loc[nid] == loc else
                            f"it was first defined at line {self.first_loc[nid].line}")
        if self.g.number_of_nodes() >= MAX_NODES:
            self.too_big = True
            raise SpecError(f"the network has more than {MAX_NODES:,} ops", loc,
                            "check the repeat counts")
        self.first_loc[nid] = loc
        self._added.append(nid)
        scopes = self.enclosing(nid, loc, train_only)
        self.g.add_node(nid, op=op, args=args, inputs=tuple(inputs), scope=scopes, loc=loc,
                        shape=shape, params=params, macs=macs, train_only=train_only,
                        init=init, trainable=trainable)
        for i, src in enumerate(inputs):
            if not self.g.has_edge(src, nid):   # add(x, x): one edge, `inputs` has both
                self.g.add_edge(src, nid, index=i)

    def enclosing(self, nid: str, loc: Location, train_only: bool) -> tuple[str, ...]:
        """The scope paths around ``nid``, outermost first; each path's tuple is built once
        from its parent's (re-joining every prefix made a node d scopes deep cost d²)."""
        parent = nid.rpartition(".")[0]
        if not parent:
            return ()
        scopes = self._enclosing.get(parent)
        if scopes is None:
            scopes = self.enclosing(parent, loc, train_only) + (parent,)
            self.scopes.setdefault(parent, {"kind": "container",
                                            "label": parent.rsplit(".", 1)[-1], "block": None,
                                            "args": {}, "loc": loc, "train_only": train_only})
            self._enclosing[parent] = scopes
        return scopes

    def node_name(self, item: Item, scope: _Scope, env: dict, default: str) -> str:
        if item.name is not None:
            name = interpolate(item.name, env)
            check_layer_name(name, item.name.loc)
            if name in ("input", self.spec.input_name) and not scope.prefix:
                raise SpecError(f"'{name}' is the network input's name", item.name.loc,
                                "choose another layer name")
        elif scope.sequential:
            name = str(scope.counter)
        else:
            name = default
            k = 1
            while name in scope.used:
                name = f"{default}_{k}"
                k += 1
        scope.used.add(name)
        scope.counter += 1
        return name

    # ------------------------------------------------------------ inputs
    def refs(self, node: YNode, scope: _Scope, env: dict, item: Item | None = None
             ) -> list[str | None]:
        items = node.items if isinstance(node, YSeq) else (node,)
        out: list[str | None] = []
        for n in items:
            if not (isinstance(n, YScalar) and isinstance(n.value, str)):
                raise SpecError(f"an input reference must be a layer name, got {n.value!r}"
                                if isinstance(n, YScalar) else "an input reference must be a "
                                "layer name", n.loc, "write from: conv1 or from: [a, b]")
            name = interpolate(n, env)
            found, nid = scope.lookup(name)
            if not found:
                if name in self.g and not name.startswith("input"):
                    self._absolute = True   # depends on where the block is: never replayed
                    out.append(name)   # a full hierarchical name
                    continue
                later = scope.declared_at(name)
                if later is not None:
                    hint = ("a layer reads only the layers above it in its block (or 'input'): "
                            "reorder the layers")
                    if item is not None and item.name is not None and item.name.loc == later:
                        raise SpecError(f"layer '{name}' reads its own output: that is a cycle",
                                        n.loc, hint)
                    raise SpecError(f"'{name}' is defined below this layer (line {later.line}); "
                                    "reading it would make a cycle", n.loc, hint)
                raise SpecError(f"undefined input '{name}'", n.loc,
                                did_you_mean(name, scope.visible()) or
                                "inputs name earlier layers of the same block, or 'input'")
            out.append(nid)
        return out

    def inputs_of(self, item: Item, scope: _Scope, env: dict, cursor: str | None
                  ) -> list[str | None]:
        ins = self.refs(item.source, scope, env, item) if item.source is not None else [cursor]
        if item.extra is not None:
            ins += self.refs(item.extra, scope, env, item)
        return ins

    # -------------------------------------------------------- expansion
    def expand(self, items: tuple[Item, ...], scope: _Scope, env: dict, cursor: str | None
               ) -> str | None:
        _declare(items, scope.declared)
        for item in items:
            if self.too_big:
                return None
            try:
                cursor = self.expand_item(item, scope, env, cursor)
            except SpecError as e:
                self.error(e)
                cursor = None
                if item.name is not None:   # later readers of a failed layer stay quiet
                    try:
                        scope.names.setdefault(interpolate(item.name, env), None)
                    except SpecError:
                        pass
        return cursor

    def least_steps(self, items: tuple[Item, ...], memo: dict[str, tuple[int, int, tuple]]
                    ) -> tuple[int, int, tuple[str, ...]]:
        """(lower bounds on the expansion steps and the ops of ``items``, the block chain
        that makes most of them). Only what is certain counts: blocks named literally,
        literal repeat counts, nothing under 'when' or a loop; each block is measured once
        (memo), so an exponential nesting is found in time linear in the spec."""
        steps, ops, chain, most = 0, 0, (), -1
        for item in items:
            steps += 1
            if item.when is not None or item.kind in ("for", "failed"):
                continue
            if item.kind == "op":
                ops += 1
                continue
            n = _literal_int(item.repeat)
            if item.kind == "seq":
                inner, inner_ops, sub = self.least_steps(item.seq, memo)
            else:
                name = _literal_block(item.block)
                if name not in self.blocks:
                    continue
                if name not in memo:
                    memo[name] = (0, 0, ())          # a block that uses itself: reported later
                    inner, inner_ops, sub = self.least_steps(self.blocks[name].items, memo)
                    memo[name] = (inner, inner_ops, (name,) + sub)
                inner, inner_ops, sub = memo[name]
            steps, ops = steps + n * inner, ops + n * inner_ops
            if n * inner > most:
                most, chain = n * inner, sub
        return steps, ops, chain

    def check_budget(self, items: tuple[Item, ...]) -> None:
        """Refuse, before expanding, a network certain to have more than MAX_NODES ops or
        to take more than MAX_STEPS steps, at the top-level layer that makes it so."""
        memo: dict[str, tuple[int, int, tuple]] = {}
        for item in items:
            steps, ops, chain = self.least_steps((item,), memo)
            if ops > MAX_NODES and len(chain) < 2:     # one block repeated: too many ops
                raise SpecError(f"the network has more than {MAX_NODES:,} ops", item.loc,
                                "check the repeat counts")
            if steps > MAX_STEPS and chain:             # blocks in blocks: name them
                shown = " → ".join(chain[:3]) + (" → …" if len(chain) > 3 else "")
                count = f"{steps:,}" if steps < 10 ** 15 else "more than 10¹⁵"
                raise SpecError(f"expanding block '{chain[0]}' ({shown}) takes at least "
                                f"{count} steps, more than the {MAX_STEPS:,} allowed", item.loc,
                                "a block that uses other blocks several times, nested, grows "
                                "exponentially; check the nesting and the repeat counts")

    def count_step(self, item: Item, scope: _Scope) -> None:
        """Charge one expansion step; past :data:`MAX_STEPS`, a located error that names
        the blocks being expanded, outermost first, at the outermost one's use."""
        self.steps += 1
        if self.steps <= MAX_STEPS:
            return
        self.too_big = True
        chain = " → ".join(scope.blocks[:3]) + (" → …" if len(scope.blocks) > 3 else "")
        at = self.sites[0] if self.sites else item.loc
        what = f"block '{scope.blocks[0]}' ({chain})" if scope.blocks else "the network"
        raise SpecError(f"expanding {what} takes more than {MAX_STEPS:,} steps", at,
                        "a block that uses other blocks several times, nested, grows "
                        "exponentially; check the nesting and the repeat counts")

    def expand_item(self, item: Item, scope: _Scope, env: dict, cursor: str | None
                    ) -> str | None:
        self.count_step(item, scope)
        if item.kind == "failed":   # already reported by the loader: stay quiet after it
            if item.name is not None:
                scope.names.setdefault(interpolate(item.name, env), None)
            return None
        if item.kind == "for":
            values = eval_node(item.loop_in, env)
            if not isinstance(values, (list, tuple)):
                raise SpecError(f"'in' of a for loop must be a list, got {values!r}",
                                item.loop_in.loc, "for example in: range(3)")
            start, tagged = len(self.errors), []
            for v in values:
                if self.too_big:
                    break
                before = len(self.errors)
                cursor = self.expand(item.seq, scope, {**env, item.loop_var: v}, cursor)
                tagged.extend((v, e) for e in self.errors[before:])
            del self.errors[start:]
            self.errors.extend(merge_iterations(item.loop_var, tagged))
            return cursor
        if item.when is not None:
            cond = eval_node(item.when, env)
            if not isinstance(cond, bool):
                raise SpecError(f"'when' must be true or false, got {cond!r}", item.when.loc,
                                "write a condition, such as when: stride != 1")
            if not cond:
                return self.left_out(item, scope, env, cursor)
        ins = self.inputs_of(item, scope, env, cursor)
        if item.kind == "op":
            out = self.expand_op(item, scope, env, ins)
        elif item.kind == "block":
            out = self.expand_block_item(item, scope, env, ins)
        else:
            out = self.expand_seq(item, scope, env, ins)
        return cursor if item.train_only else out

    def left_out(self, item: Item, scope: _Scope, env: dict, cursor: str | None
                 ) -> str | None:
        """What a layer that ``when`` leaves out stands for: the layer its ``else:`` names,
        or its one input. A layer of several inputs (``add``, ``concat``, ...) has no one
        input to stand for: taking the first silently dropped a MobileNetV2 block's conv
        branch, so without ``else:`` it is an error."""
        ins = self.inputs_of(item, scope, env, cursor)
        if item.otherwise is not None:
            try:
                stands = self.refs(item.otherwise, scope, env, item)
            except SpecError as e:
                raise SpecError(f"'else': {e.message}", e.loc, e.hint) from None
            if len(stands) != 1:
                raise SpecError(f"'else' must name one layer, got {len(stands)}",
                                item.otherwise.loc, "for example else: conv")
            target = stands[0]
        elif len(ins) > 1 or (item.kind == "op" and OPS[item.op].min_inputs > 1):
            label = interpolate(item.name, env) if item.name is not None else item.op or item.kind
            written = [n.value for n in (item.source.items if isinstance(item.source, YSeq)
                                         else (item.source,)) if isinstance(n, YScalar)] \
                if item.source is not None else []
            example = next((w for w in reversed(written) if w != "input"), "conv")
            raise SpecError(f"layer '{label}' ({item.op or item.kind} of {len(ins)} inputs) is "
                            "left out by 'when' and does not say what it stands for",
                            item.loc, f"add 'else: <layer>', the layer it stands for when left "
                            f"out (for example else: {example}); only a layer of one input "
                            "stands for its input")
        else:
            target = ins[0]
        if item.name is not None:
            name = interpolate(item.name, env)
            scope.names[name] = target
            if item.train_only:     # an output reading it is left out too
                scope.left_out_heads.add(name)
        return target if not item.train_only else cursor

    def _shape_of(self, nid: str | None) -> tuple | None:
        return None if nid is None else self.g.nodes[nid]["shape"]

    def expand_op(self, item: Item, scope: _Scope, env: dict, ins: list[str | None]) -> str | None:
        op = OPS[item.op]
        name = self.node_name(item, scope, env, item.op)
        nid = scope.full(name)
        given: dict[str, Any] = {}
        field_locs: dict[str, Location] = {}
        for k, node in item.args:
            f = op.field(k)
            field_locs[k] = node.loc
            words = (("same", "valid") if f.type == "padding" else f.choices) if f else ()
            if isinstance(node, YScalar) and (_is_word(node.value, words, env) or (
                    f is not None and f.type in ("bool", "str") and
                    _is_bare_word(node.value, env))):
                given[k] = node.value        # a word, not a name: coerce names the choices
            else:
                given[k] = eval_node(node, env)
        try:
            args = _normalised(op, given)
        except OpError as e:
            f = op.field(e.field or "")
            raise SpecError(f"{nid}: {e.message}", field_locs.get(e.field or "", item.loc),
                            e.hint or (f"{f.name}: {f.doc}" if f is not None and f.doc else None)
                            ) from None
        n = len(ins)
        if n < op.min_inputs or (op.max_inputs is not None and n > op.max_inputs):
            want = (f"{op.min_inputs}" if op.max_inputs == op.min_inputs else
                    f"at least {op.min_inputs}" if op.max_inputs is None else
                    f"{op.min_inputs} to {op.max_inputs}")
            raise SpecError(f"{nid}: {item.op} takes {want} input{'' if want == '1' else 's'}, "
                            f"got {n}", item.source.loc if item.source is not None else item.loc,
                            "list the inputs with from: [a, b]" if op.min_inputs > 1 else
                            "read one layer (from: name); join several with add or concat first")
        scope.names[name] = None
        if any(i is None for i in ins):
            return None    # an earlier error: do not cascade
        shapes = [self._shape_of(i) for i in ins]
        if any(s is None for s in shapes):
            return None
        try:
            shape = op.infer(args, shapes)
            params = op.params(args, shapes, shape)   # an op from Python may fail here too
            macs = op.macs(args, shapes, shape)
        except OpError as e:
            detail = ", ".join(f"{i} {shape_str(s)}" for i, s in zip(ins, shapes))
            raise SpecError(f"{nid}: {e.message} (input: {detail})",
                            field_locs.get(e.field or "", item.loc), e.hint) from None
        init, trainable = self.roles(op, item, scope, env, nid, args, shapes, params)
        self.add_node(nid, item.op, args, ins, scope, item.loc, shape, params, macs,
                      item.train_only, init, trainable)
        scope.names[name] = nid
        return nid

    # ------------------------------------------------- init and trainable (spec.init)
    def roles(self, op: Any, item: Item, scope: _Scope, env: dict, nid: str, args: dict,
              shapes: list, params: int) -> tuple[tuple, bool]:
        """An op node's init plan (the rules in force, its own last) and whether it
        trains; ``trainable`` on an op that learns nothing is an error at the key."""
        tensors = op.tensors(args, shapes) if op.tensors is not None else ()
        if item.init:
            sp_init.check_own(item.init, op, tensors, nid)
        chain = scope.init + ((item.init, env),) if item.init else scope.init
        plan = sp_init.plan(op, tensors, chain, nid) if tensors and chain else ()
        if item.trainable is not None and params == 0:
            raise SpecError(f"{nid}: 'trainable' on a {op.name}, which has no parameters",
                            item.key_loc("trainable"), "trainable: false freezes the learnt "
                            "tensors of a conv, linear, norm or block; remove it here")
        return plan, self.trainable(item, scope, env, nid)

    def trainable(self, item: Item, scope: _Scope, env: dict, where: str) -> bool:
        """``trainable:`` of a layer (true or false, or an expression giving one), else
        the enclosing scope's."""
        if item.trainable is None:
            return scope.trainable
        v = item.trainable.value if isinstance(item.trainable, YScalar) and \
            isinstance(item.trainable.value, bool) else eval_node(item.trainable, env)
        if not isinstance(v, bool):
            raise SpecError(f"{where}: 'trainable' must be true or false, got {v!r}",
                            item.trainable.loc, "trainable: false freezes the parameters")
        return v

    def inner_roles(self, inner: _Scope, outer: _Scope, item: Item, env: dict, path: str,
                    own: tuple = (), own_env: dict | None = None) -> None:
        """A block's or seq's scope: the outer rules, the layer's ``init:`` (evaluated
        where it is written), then a block definition's own; ``trainable`` inherited
        unless the layer says."""
        inner.init = outer.init + (((item.init, env),) if item.init else ()) + \
            (((own, own_env),) if own else ())
        inner.trainable = self.trainable(item, outer, env, path)

    def resolve_block(self, item: Item, env: dict) -> tuple[ex.BlockRef, BlockDef]:
        node = item.block
        if isinstance(node, YScalar) and isinstance(node.value, ex.BlockRef):
            ref = node.value
        elif not (isinstance(node, YScalar) and isinstance(node.value, str)):
            raise SpecError("'block' must be a block reference such as B(3,3)", node.loc,
                            "a block reference is a string (block: basic, block: B(3,3)); a "
                            "layer named 'block' needs a layer as its value, with op:, block:, "
                            "seq: or for: (block: {seq: [...]})")
        else:
            text = node.value.strip()
            val = env.get(text) if text.isidentifier() and text not in self.blocks else None
            if isinstance(val, ex.BlockRef):
                ref = val
            elif isinstance(val, str):
                ref = parse_block_value(val, node.loc, env)
            else:
                ref = parse_block_value(text, node.expr_loc(0), env)
        bdef = self.blocks.get(ref.name)
        if bdef is None:
            raise SpecError(f"undefined block '{ref.name}'", node.loc,
                            did_you_mean(ref.name, self.blocks) or
                            "blocks: " + ", ".join(sorted(self.blocks)))
        return ref, bdef

    def bind(self, ref: ex.BlockRef, bdef: BlockDef, item: Item, env: dict,
             extra: tuple = ()) -> dict[str, Any]:
        params = {p.name: p for p in bdef.params}
        order = [p.name for p in bdef.params if p.name != bdef.varargs]
        args: dict[str, Any] = {}
        if bdef.varargs:
            args[bdef.varargs] = list(ref.args)
        else:
            if len(ref.args) > len(order):
                raise SpecError(f"block '{bdef.name}' takes {len(order)} positional argument(s), "
                                f"got {len(ref.args)}", item.block.loc)
            args.update(zip(order, ref.args))
        for k, v in ref.kwargs:
            if k not in params:
                raise SpecError(f"block '{bdef.name}' has no parameter '{k}'", item.block.loc,
                                did_you_mean(k, params))
            args[k] = v
        if item.row is not None:
            tname, rname, rloc = item.row
            if "{" in tname + rname:    # row: "bneck.{r}" in a loop over rows(bneck)
                rname = interpolate(YScalar(rname, rloc.shifted(len(tname) + 1)), env)
                tname = interpolate(YScalar(tname, rloc), env)
            table = self.spec.table(tname)
            if table is None:
                raise SpecError(f"undefined table '{tname}'", rloc,
                                did_you_mean(tname, [t for t, _ in self.spec.tables]))
            found = table.row(rname)
            if found is None:
                raise SpecError(f"table '{tname}' has no row '{rname}'", rloc,
                                did_you_mean(rname, [r for r, _, _ in table.rows]) or
                                "rows: " + ", ".join(r for r, _, _ in table.rows))
            vals, _ = found
            for col, vnode in zip(table.columns, vals):
                if col not in params:
                    raise SpecError(f"table column '{col}' is not a parameter of block "
                                    f"'{bdef.name}'", table.loc, did_you_mean(col, params))
                args[col] = eval_node(vnode, env)
        arg_locs: dict[str, Location] = {}
        for k, node in item.args:
            arg_locs[k] = node.loc
            if k not in params:
                raise SpecError(f"block '{bdef.name}' has no parameter '{k}'", item.key_loc(k),
                                did_you_mean(k, params) or
                                "parameters: " + ", ".join(params))
            args[k] = _arg_value(params[k], node, env)
        for k, node in extra:
            arg_locs[k] = node.loc
            if k not in params:
                raise SpecError(f"block '{bdef.name}' has no parameter '{k}' (in 'first:')",
                                node.loc, did_you_mean(k, params) or
                                "parameters: " + ", ".join(params))
            args[k] = _arg_value(params[k], node, env)
        for p in bdef.params:
            if p.name not in args:
                if p.default is REQUIRED:
                    raise SpecError(f"block '{bdef.name}' is missing required parameter "
                                    f"'{p.name}'", item.loc, p.doc or None)
                args[p.name] = p.default
            elif p.type != "any" and args[p.name] is not None:
                args[p.name] = check_type(args[p.name], p.type, p.name,
                                          arg_locs.get(p.name, item.block.loc))
        return args

    def expand_block_item(self, item: Item, scope: _Scope, env: dict, ins: list[str | None]
                          ) -> str | None:
        # a repeated reference may read `index`/`count`: resolved again per copy below
        ref, bdef = self.resolve_block(item, env if item.repeat is None else
                                       _repeat_env(env, 0, 1))
        default = bdef.name if bdef.name.islower() else "block"
        name = self.node_name(item, scope, env, default)
        path = scope.full(name)
        scope.names[name] = None
        if len(ins) != 1:
            raise SpecError(f"a block takes one input, got {len(ins)}", item.loc)
        if item.repeat is not None:
            n = eval_node(item.repeat, env)
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise SpecError(f"{path}: repeat must be a positive integer, got {n!r}",
                                item.repeat.loc, "a stage needs at least one block")
            self.scopes[path] = {"kind": "repeat", "label": f"{ref} ×{n}", "block": bdef.name,
                                 "args": {}, "loc": item.loc, "train_only": scope.train_only,
                                 "repeat": n}
            cur = ins[0]
            steady = None if _reads_index(item) else ()  # copies 2, 3, ... bind as copy 1
            for j in range(n):
                if self.too_big:
                    break
                if steady:
                    ref, bdef, args = steady[0], steady[1], dict(steady[2])
                else:
                    jenv = _repeat_env(env, j, n)
                    ref, bdef = self.resolve_block(item, jenv)   # "B(p=0.1 * index)"
                    args = self.bind(ref, bdef, item, jenv, item.first if j == 0 else ())
                    if j == 1 and steady is not None:
                        steady = (ref, bdef, dict(args))
                if j == 0:
                    self.scopes[path]["args"] = args
                    self.scopes[path]["label"] = f"{ref} ×{n}"
                cur = self.instantiate(bdef, ref, args, f"{path}.{j}", cur, scope, item,
                                       same_args=bool(steady) and j >= 2, site_env=jenv)
            out = cur
        else:
            args = self.bind(ref, bdef, item, env)
            out = self.instantiate(bdef, ref, args, path, ins[0], scope, item, site_env=env)
        scope.names[name] = out
        return out

    def instantiate(self, bdef: BlockDef, ref: ex.BlockRef, args: dict, path: str,
                    inp: str | None, parent: _Scope, item: Item, same_args: bool = False,
                    site_env: dict | None = None) -> str | None:
        """Expand one instance of ``bdef`` at ``path`` reading ``inp`` (replayed when an
        identical one was expanded before). ``same_args``: the arguments are a copy of the
        previous instance's (a repeat's later copies), so its key is reused when the
        input shape is the same too. ``site_env``: the scope the layer's own ``init:`` and
        ``trainable:`` are evaluated in (its use site: a repeat's index is in it)."""
        if bdef.name in parent.blocks:
            raise SpecError(f"block '{bdef.name}' uses itself", item.loc,
                            "blocks cannot be recursive")
        if len(parent.blocks) >= MAX_DEPTH:
            raise SpecError(f"blocks nest more than {MAX_DEPTH} deep", item.loc)
        train_only = parent.train_only or item.train_only
        shape = self._shape_of(inp)
        label = str(ref) if (ref.args or ref.kwargs) else bdef.name
        self.scopes[path] = {"kind": "block", "label": label, "block": bdef.name, "args": args,
                             "loc": item.loc, "train_only": train_only,
                             "ref_args": tuple(ref.args)}
        if inp is None or shape is None:
            return None
        roles = _roles_key(parent, item, bdef)
        ctx = (id(bdef), shape, train_only, parent.blocks, roles)
        if same_args and self._last_key[0] == ctx:
            key = self._last_key[1]
        elif roles is None:     # init or trainable read this instance's scope: expand it
            key = None
        else:
            key = _memo_key(bdef, args, shape, train_only, parent.blocks + roles,
                            self.env_read(bdef, args), self._env_keys)
        stamp = self._memo.get(key) if key is not None else None
        if stamp is not None and stamp.bdef is bdef and self.replay(stamp, path, inp):
            self._last_key = (ctx, key)
            return _unrel(stamp.out, path, inp)
        marks = (len(self._added), len(self.scopes), len(self.errors), self.steps,
                 self._absolute)
        self._absolute = False
        try:
            out = self.expand_instance(bdef, args, path, inp, shape, train_only, parent, item,
                                       site_env)
            if key is not None:
                self.record(key, bdef, path, inp, out, marks)
        finally:
            self._absolute = self._absolute or marks[4]
        self._last_key = (ctx, key)     # after the instance's own inner blocks set theirs
        return out

    def expand_instance(self, bdef: BlockDef, args: dict, path: str, inp: str,
                        shape: tuple, train_only: bool, parent: _Scope, item: Item,
                        site_env: dict | None = None) -> str | None:
        """Evaluate a block's lets and checks for this instance and expand its layers."""
        base = {**self.env0, **args, "in_channels": shape[0], "in_shape": list(shape)}
        try:
            env = evaluate_env((), bdef.lets, bdef.checks, base)
        except SpecError as e:
            user = dict(self.spec.sources)
            raise SpecErrors(SpecError(f"{path}: {x.message}", x.loc if x.loc.path in user
                                       else item.loc, x.hint) for x in e.errors) from None
        if bdef.label is not None:      # after let, so a label can show derived values
            self.scopes[path]["label"] = check_length(
                interpolate(bdef.label, env), MAX_LABEL_CHARS, bdef.label.loc,
                f"{path}: the block's label")
        inner = _Scope(path, {"input": inp}, None, False, 0, set(), train_only,
                       parent.blocks + (bdef.name,))
        self.inner_roles(inner, parent, item, site_env if site_env is not None else base, path,
                         bdef.init, env)
        user_site = item.loc.path in self.user_files
        if user_site:
            self.sites.append(item.loc)
        try:
            return self.expand(bdef.items, inner, env, inp)
        finally:
            if user_site:
                self.sites.pop()

    def env_read(self, bdef: BlockDef, args: dict) -> tuple:
        """The spec-level values (parameters, lets, tables, functions) an instance of
        ``bdef`` may read: every name in any expression of the block, of the blocks it
        names, of the blocks the values it reads name, and of the tables; so that an
        instance is remembered across compiles whose specs differ only elsewhere (a grid's
        cells). Over-approximate by design: a name that is not read only costs a miss."""
        extra = frozenset().union(*(_value_names(v) for v in args.values()
                                    if type(v) not in (int, float, bool) and v is not None))
        key = (id(bdef), extra)
        hit = self._reads.get(key)
        if hit is None:
            todo = set(_block_reads(bdef, self.spec.tables)) | extra
            seen: set[str] = set()
            while todo:
                n = todo.pop()
                if n in seen:
                    continue
                seen.add(n)
                if n in self.blocks:
                    todo |= _block_reads(self.blocks[n], self.spec.tables)
                if n in self.env0:
                    todo |= _value_names(self.env0[n])
            hit = tuple((n, _frozen(self.env0[n])) for n in sorted(seen) if n in self.env0)
            self._reads[key] = hit
        return hit

    def record(self, key: tuple, bdef: BlockDef, path: str, inp: str, out: str | None,
               marks: tuple) -> None:
        """Remember what expanding this instance added, relative to ``path``, when it can be
        replayed for an identical one: no errors, no full hierarchical name read, nothing
        added outside ``path``. Identical means the key of :func:`_memo_key`: the same
        block, arguments, input shape, train_only, enclosing blocks and spec values it may
        read; nothing else reaches a block's body (its scope holds only its arguments, its
        lets and the spec's parameters, lets, tables and functions)."""
        n0, s0, e0, steps0, _ = marks
        if len(self.errors) != e0 or self.too_big or self._absolute:
            return
        pre = path + "."
        new_scopes = list(islice(reversed(self.scopes), len(self.scopes) - s0))[::-1]
        if any(not p.startswith(pre) for p in new_scopes) or \
                (out is not None and out != inp and not out.startswith(pre)):
            return
        nodes = []
        for nid in self._added[n0:]:
            d = self.g.nodes[nid]
            ins = tuple("" if i == inp else i[len(pre):] for i in d["inputs"])
            if any(i != "" and not d["inputs"][k].startswith(pre) for k, i in enumerate(ins)):
                return
            firsts = tuple((k, i) for k, i in enumerate(ins) if i not in ins[:k])
            nodes.append((nid[len(pre):], dict(d), ins, firsts,     # every attribute
                          nid.rpartition(".")[0][len(pre):]))
        label = self.scopes[path]["label"] if bdef.label is not None else None
        self._memo[key] = _Stamp(bdef, label, tuple(nodes), tuple(
            (p[len(pre):], dict(self.scopes[p])) for p in new_scopes),
            None if out is None else "" if out == inp else out[len(pre):],
            self.steps - steps0)

    def replay(self, stamp: "_Stamp", path: str, inp: str) -> bool:
        """Add a remembered instance's nodes and scopes under ``path`` (what expanding it
        again would add), or False, changing nothing, where the expansion must run again
        to report an error at its place: a name taken, too many ops or steps."""
        pre = path + "."
        # no node lies under ``path`` unless one has it as an enclosing path (cheap to ask)
        if self.steps + stamp.steps > MAX_STEPS or \
                self.g.number_of_nodes() + len(stamp.nodes) > MAX_NODES or \
                (path in self._enclosing and any(pre + n[0] in self.g for n in stamp.nodes)) or \
                any(pre + p in self.scopes for p, _ in stamp.scopes):
            return False
        self.steps += stamp.steps
        if stamp.label is not None:
            self.scopes[path]["label"] = stamp.label
        for p, entry in stamp.scopes:
            self.scopes[pre + p] = {**entry, "args": dict(entry["args"])}
        nodes, edges, scopes = [], [], {}
        for rel, attrs, ins, firsts, parent in stamp.nodes:
            nid = pre + rel
            loc, train_only = attrs["loc"], attrs["train_only"]
            scope = scopes.get(parent)
            if scope is None:
                scope = scopes[parent] = self.enclosing(nid, loc, train_only)
            # every attribute add_node wrote, in its order; dicts (args) copied, and the
            # two that name nodes rewritten for this path
            d = {k: dict(v) if type(v) is dict else v for k, v in attrs.items()}
            d["inputs"] = tuple([pre + i if i else inp for i in ins])
            d["scope"] = scope
            self.first_loc[nid] = loc
            nodes.append((nid, d))
            for k, i in firsts:     # add(x, x): one edge, from the first use, as add_node
                edges.append((pre + i if i else inp, nid, {"index": k}))
        ids = [n for n, _ in nodes]
        self._added.extend(ids)
        self.g.add_nodes_from(ids)      # bare ids, then the attributes: networkx takes
        gn = self.g.nodes               # (id, dict) pairs by a raised TypeError per node
        for nid, d in nodes:
            gn[nid].update(d)
        self.g.add_edges_from(edges)
        return True

    def expand_seq(self, item: Item, scope: _Scope, env: dict, ins: list[str | None]
                   ) -> str | None:
        name = self.node_name(item, scope, env, "seq")
        path = scope.full(name)
        scope.names[name] = None
        if len(ins) != 1:
            raise SpecError(f"a seq takes one input, got {len(ins)}", item.loc)
        train_only = scope.train_only or item.train_only
        n = 1
        if item.repeat is not None:
            n = eval_node(item.repeat, env)
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise SpecError(f"{path}: repeat must be a positive integer, got {n!r}",
                                item.repeat.loc)
        self.scopes[path] = {"kind": "seq", "label": name, "block": None, "args": {},
                             "loc": item.loc, "train_only": train_only}
        cur = ins[0]
        for j in range(n):
            if self.too_big:
                break
            p = f"{path}.{j}" if item.repeat is not None else path
            inner = _Scope(p, {"input": cur}, scope, True, 0, set(), train_only, scope.blocks)
            self.inner_roles(inner, scope, item, env, p)
            cur = self.expand(item.seq, inner, _repeat_env(env, j, n) if item.repeat is not None
                              else env, cur)
        scope.names[name] = cur
        return cur

    # ------------------------------------------------------------- root
    def build(self) -> nx.DiGraph:
        spec = self.spec
        env = dict(self.env0)
        shape = []
        for n in spec.input_shape:
            try:
                v = eval_node(n, env)
            except SpecError as e:
                self.error(e)
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                self.error(SpecError(f"input sizes must be positive integers, got {v!r}", n.loc,
                                     "the input shape is [C, H, W] (or [F]) of one sample"))
            elif v > MAX_INT:
                self.error(SpecError(f"input size is too large: {v.bit_length()} bits, more than "
                                     "the 2**63 - 1 torch's sizes allow", n.loc))
            shape.append(v)
        root = _Scope("", {}, None, init=((spec.init_rules, self.env0),) if spec.init_rules
                      else ())
        in_id = spec.input_name
        if not self.errors:
            self.add_node(in_id, "input", {}, [], root, spec.input_loc, tuple(shape))
            root.names["input"] = in_id
            root.names[in_id] = in_id
            try:
                self.check_budget(spec.items)
                last = self.expand(spec.items, root, env, in_id)
            except SpecError as e:
                self.error(e)
                last = None
        else:
            last = None
        outputs = []
        if not spec.outputs:
            if last is not None:
                outputs.append({"name": "out", "node": last, "loss_weight": 1.0,
                                "train_only": False})
        for o in spec.outputs:
            found, nid = root.lookup(o.source)
            if not found and o.source in self.g:
                found, nid = True, o.source
            if not found:
                self.error(SpecError(f"output '{o.name}' reads undefined layer '{o.source}'",
                                     o.loc, did_you_mean(o.source, list(root.names) + list(self.g))
                                     or "an output reads a top-level layer's name or a full "
                                     "hierarchical name such as layer3.0.conv1"))
                continue
            if nid is None or o.source in root.left_out_heads:
                continue
            outputs.append({"name": o.name, "node": nid, "loss_weight": o.loss_weight,
                            "train_only": bool(self.g.nodes[nid]["train_only"])})
        if not self.errors and not spec.errors and not any(not o["train_only"]
                                                           for o in outputs):
            self.error(SpecError("the network has no output that runs in evaluation",
                                 spec.input_loc))
        if not self.errors and not spec.errors:   # a misspelt init layer name: an error
            for e in sp_init.unmatched(spec.init_rules, self.g):
                self.error(e)
        roles = None
        if not self.errors and not spec.errors:   # names checked against the finished graph
            try:
                self.g.graph.update(input=in_id, outputs=outputs, scopes=self.scopes)
                roles = resolve_roles(self.g, spec.roles)
            except SpecError as e:
                self.error(e)
        if self.errors or spec.errors:
            seen, uniq = set(), []
            for e in list(spec.errors) + self.errors:
                key = (e.loc, e.message)
                if key not in seen:
                    seen.add(key)
                    uniq.append(e)
            raise SpecErrors(uniq)
        self.g.graph.update(name=spec.name, path=spec.path, description=spec.description,
                            init=spec.init, input=in_id, outputs=outputs, scopes=self.scopes,
                            params={k: v for k, v in spec.env}, roles=roles)
        self.g.graph["warnings"] = dead_op_warnings(self.g)
        return nx.freeze(self.g)     # later stages read the IR; none may add or remove a node


@dataclass(frozen=True)
class _Stamp:
    """One expanded block instance, relative to its path: ``nodes`` are (relative id,
    every attribute (inputs and scope rewritten on replay), inputs ("" for the block's
    input), (argument index, input) of each distinct input: its edge, relative parent
    path), ``scopes`` (relative path, entry) in the order they were made, ``out`` the
    relative id of what the instance returns ("" its input, None nothing)."""

    bdef: BlockDef
    label: str | None
    nodes: tuple[tuple, ...]
    scopes: tuple[tuple[str, dict], ...]
    out: str | None
    steps: int


def _unrel(rel: str | None, path: str, inp: str) -> str | None:
    return None if rel is None else inp if rel == "" else f"{path}.{rel}"


def _frozen(v: Any) -> Any:
    """A hashable stand-in for an argument value that tells apart every value the block
    could see differently (``1``, ``1.0`` and ``True`` too); TypeError for a value of a
    kind it does not know, so that instance is simply not remembered."""
    t = type(v)
    if t is float:
        return (t, repr(v))      # -0.0 == 0.0, yet "{p}" writes them apart
    if t in (int, str, bool) or v is None:
        return (t, v)
    if t is list or t is tuple:
        return (t, tuple(_frozen(x) for x in v))
    if t is dict:
        return (t, tuple((k, _frozen(x)) for k, x in v.items()))
    if t is ex.BlockRef:
        return (t, v.name, _frozen(v.args), tuple((k, _frozen(x)) for k, x in v.kwargs))
    if t is ex.TableRef:
        return (t, v.name, v.rows, v.columns)
    if t is ex.UserFunction:
        return (t, id(v), v)     # the function itself kept in the key: its id is not reused
    raise TypeError(f"no key for {t.__name__}")


def _roles_key(parent: _Scope, item: Item, bdef: BlockDef) -> tuple | None:
    """What a block instance's init plans and trainable flags depend on beyond its
    arguments, or None when that is its own scope: the rule sets in force (by identity:
    parsed once per spec text) and ``trainable`` around it. Rules with expressions or
    layer-name patterns, and a ``trainable:`` that is an expression, are evaluated per
    instance, so such an instance is never replayed."""
    chain = [rules for rules, _ in parent.init] + [item.init, bdef.init]
    if not all(sp_init.replayable(rules) for rules in chain if rules):
        return None
    own = None
    if item.trainable is not None:
        if not (isinstance(item.trainable, YScalar) and isinstance(item.trainable.value, bool)):
            return None
        own = item.trainable.value
    return (parent.trainable, own) + tuple(id(rules) for rules in chain if rules)


def _memo_key(bdef: BlockDef, args: dict, shape: tuple, train_only: bool,
              blocks: tuple[str, ...], reads: tuple, env_keys: frozenset) -> tuple | None:
    """What a block instance's expansion depends on, or None when it cannot be keyed: the
    block, its arguments, input shape, train_only, the blocks around it, the spec values
    it may read and the names in scope (a bare word is a word only where it names
    nothing, so the set of names matters, not only the values read)."""
    try:
        return (id(bdef), _frozen(args), shape, train_only, blocks, reads, env_keys)
    except TypeError:
        return None


#: Remembered block instances, shared by the compiles of specs with the very same blocks,
#: tables and ops (a grid's cells: their template's blocks are parsed once): see
#: :func:`_shared_memo`. Bounded; a compile of other specs starts it afresh.
_SHARED: dict[str, Any] = {"names": None, "objects": (), "memo": {}}
_SHARED_MAX = 4096


def clear_caches() -> None:
    """Forget remembered block instances and the loader's parses: the next load and
    compile run cold, as in a fresh process (benchmarks; a long-lived caller's memory)."""
    from archspec.spec.loader import clear_caches as clear_loader
    _SHARED.update(names=None, objects=(), memo={}, reads={})
    clear_loader()


def _shared_memo(blocks: dict[str, BlockDef], tables: tuple) -> dict[tuple, _Stamp]:
    """The memo for a compile with these blocks and tables and the ops now registered:
    the same dict as the last compile's when every one of them is the same object."""
    names = (tuple(blocks), tuple(n for n, _ in tables), tuple(OPS))
    objects = (*blocks.values(), *(t for _, t in tables), *OPS.values())
    old = _SHARED["objects"]
    if _SHARED["names"] != names or len(old) != len(objects) or \
            any(a is not b for a, b in zip(old, objects)) or len(_SHARED["memo"]) > _SHARED_MAX:
        _SHARED.update(names=names, objects=objects, memo={}, reads={})
    return _SHARED["memo"]


def _reads_index(item: Item) -> bool:
    """Whether a repeated block's reference, arguments, row, ``init:`` or ``trainable:``
    mention ``index`` or ``count`` (only then can its copies after the first bind differently: ``first:``
    applies to copy 0 alone)."""
    texts: list[str] = []
    _strings((item.block, item.args, item.row, item.init, item.trainable), texts)
    return any(_text_names(t) & {"index", "count"} for t in texts)


def _block_reads(bdef: BlockDef, tables: tuple) -> frozenset[str]:
    """Every name written in ``bdef`` (and in the spec's tables), once per block and
    tables (both alive in the shared memo's objects, so their ids are not reused)."""
    reads = _SHARED.setdefault("reads", {})
    key = (id(bdef), tuple(id(t) for _, t in tables))
    hit = reads.get(key)
    if hit is None or hit[0] is not bdef:
        texts: list[str] = []
        _strings((bdef, tables), texts)
        hit = (bdef, tables, frozenset().union(*map(_text_names, texts)))
        reads[key] = hit
    return hit[2]


_SKIP = (Location,)


def _strings(x: Any, out: list[str]) -> None:
    """Every string in a parsed block (its items, lets, checks, label, params, nested
    layers, whatever fields an Item grows), for :func:`_block_reads`."""
    if isinstance(x, str):
        out.append(x)
    elif isinstance(x, YScalar):
        if isinstance(x.value, str):
            out.append(x.value)
    elif isinstance(x, YSeq):
        _strings(x.items, out)
    elif isinstance(x, YMap):
        _strings(x.entries, out)
    elif isinstance(x, (tuple, list)):
        for y in x:
            _strings(y, out)
    elif is_dataclass(x) and not isinstance(x, (type,) + _SKIP):
        for f in fields(x):
            _strings(getattr(x, f.name), out)


@lru_cache(maxsize=16384)
def _text_names(text: str) -> frozenset[str]:
    """Every name an expression or a ``{hole}`` of ``text`` mentions, built-in function
    names included (a let may shadow one); the text itself when it is a bare word."""
    out: set[str] = {text} if text.isidentifier() else set()
    for part in [text] + _HOLE.findall(text):
        try:
            tree = ex.parse(part)
        except ex.ExprError:
            continue
        out.update(n.id for n in ast.walk(tree) if isinstance(n, ast.Name))
    return frozenset(out)


_HOLE = re.compile(r"\{([^{}]*)\}")


def _value_names(v: Any) -> frozenset[str]:
    """Names a value leads to: a block reference's block (and its arguments' names), a
    string's expression (a block-typed parameter like "B(3, w)" is parsed where used)."""
    if isinstance(v, ex.BlockRef):
        return frozenset({v.name}).union(*map(_value_names, v.args),
                                         *(_value_names(x) for _, x in v.kwargs))
    if isinstance(v, str):
        return _text_names(v)
    if isinstance(v, (list, tuple)):
        return frozenset().union(*map(_value_names, v))
    if isinstance(v, dict):
        return frozenset().union(*map(_value_names, v.values()))
    return frozenset()


def merge_iterations(var: str, tagged: list[tuple[Any, SpecError]]) -> list[SpecError]:
    """The errors of a loop's iterations, one per source location: a bad line inside
    ``for: i, in: range(16)`` is one error listing the iterations (``in iterations
    i = 0, 1, 2 … 15``), not sixteen. When the iterations' messages differ (they name
    ``conv40``, ``conv41``...), the first is shown and says which iteration it is."""
    groups: dict[Location, list[tuple[Any, SpecError]]] = {}
    for v, e in tagged:
        groups.setdefault(e.loc, []).append((v, e))
    out = []
    for loc, hits in groups.items():
        if len(hits) == 1:
            out.append(hits[0][1])
            continue
        values = list(dict.fromkeys(repr(v) for v, _ in hits))
        shown = ", ".join(values) if len(values) <= 5 else \
            f"{', '.join(values[:3])} … {values[-1]}"
        first = hits[0][1]
        same = all(e.message == first.message for _, e in hits)
        note = f"in iterations {var} = {shown}" + ("" if same else f"; shown for {var} = "
                                                     f"{values[0]}")
        out.append(SpecError(f"{first.message} ({note})", loc, first.hint))
    return out


def dead_op_warnings(g: nx.DiGraph) -> list[SpecWarning]:
    """Warnings for ops whose output reaches no output of the network (train-only outputs
    count as outputs). Such an op still has its modules, parameters and MACs in the build
    and in every count, so a dropped branch is easy to miss: each warning says how much it
    holds. One warning per spec line, at the last op of each unused chain (its sink), with
    the ops that feed only it; instances of the same line (a block used 16 times) merge."""
    live: set[str] = {g.graph["input"]} | {o["node"] for o in g.graph["outputs"]}
    # every node comes after its inputs (the IR's order): one backward pass finds what the
    # outputs read, where an ancestors search per output cost a twentieth of a compile
    nodes = list(g.nodes(data="inputs"))
    for n, ins in reversed(nodes):
        if n in live:
            live.update(ins)
    dead = [n for n, _ in nodes if n not in live]
    if not dead:
        return []
    claimed: set[str] = set()
    by_loc: dict[Location, list[tuple[str, int, int, int]]] = {}
    for n in dead:
        if g.out_degree(n):
            continue     # a sink's ancestors are reported with it
        region = [m for m in nx.ancestors(g, n) if m not in live and m not in claimed] + [n]
        claimed.update(region)
        params = sum(g.nodes[m]["params"] for m in region)
        macs = sum(g.nodes[m]["macs"] for m in region)
        by_loc.setdefault(g.nodes[n]["loc"], []).append((n, len(region), params, macs))
    out = []
    for loc, sinks in by_loc.items():
        first = sinks[0][0]
        more = f" (and {len(sinks) - 1} more instance{'s' if len(sinks) > 2 else ''} of this "\
               "line)" if len(sinks) > 1 else ""
        ops, params, macs = (sum(x[i] for x in sinks) for i in (1, 2, 3))
        out.append(SpecWarning(
            f"the output of '{first}'{more} reaches no output of the network: {ops} op"
            f"{'s' if ops != 1 else ''} ({params:,} params, {macs:,} MACs) computed for "
            "nothing, still built and counted", loc,
            "read it from a later layer (from:), list it under 'outputs:', or remove it; "
            "a layer left out by 'when' stands for its input or its 'else:'"))
    return out


def _literal_int(node: YNode | None) -> int:
    """A repeat count written as a number (1 when absent or an expression)."""
    if isinstance(node, YScalar) and isinstance(node.value, int) and \
            not isinstance(node.value, bool) and node.value > 0:
        return node.value
    return 1


def _literal_block(node: YNode | None) -> str | None:
    """The block a ``block:`` names literally (``B1``, ``B(3,3)``), or None."""
    if not (isinstance(node, YScalar) and isinstance(node.value, str)):
        return None
    name = node.value.split("(", 1)[0].strip()
    return name if name.isidentifier() else None


def compile_graph(spec: Spec) -> nx.DiGraph:
    """Expand a loaded spec into the IR graph, with every node's shape inferred.

    Raises :class:`~archspec.errors.SpecErrors` with every independent error found.

    >>> import archspec
    >>> g = archspec.compile_graph(archspec.load_spec("specs/wrn-28-10.yaml"))
    >>> g.nodes["layer2.0.conv1"]["shape"]
    (320, 16, 16)
    """
    ex.reset_work()
    return _Builder(spec).build()
