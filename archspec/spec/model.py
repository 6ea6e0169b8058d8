"""The spec as frozen dataclasses: what the loader hands to the graph stage.

Values that depend on parameters stay unevaluated as located YAML nodes
(:class:`~archspec.spec.yamlsrc.YNode`); the graph stage evaluates them in the
scope of each block instance. Everything else is checked and typed here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archspec.errors import Location
from archspec.spec.yamlsrc import YNode


@dataclass(frozen=True)
class ParamDef:
    """A hyperparameter of a spec or a block."""

    name: str
    default: Any            # the value after overrides; ``REQUIRED`` for required block params
    type: str               # int | float | bool | str | list | block | any
    doc: str = ""           # one line shown by `archspec summary` and the docs
    choices: tuple = ()     # allowed values, when closed
    loc: Location = field(default_factory=lambda: Location("<builtin>"))


REQUIRED = object()  # sentinel default of a required block parameter


@dataclass(frozen=True)
class Check:
    """A condition on parameters that reads like the paper: "depth should be 6n+4"."""

    expr: YNode
    message: str
    loc: Location
    hint: str = ""          # shown after the message; may interpolate "{expr}" like it


@dataclass(frozen=True)
class Let:
    """A derived value, evaluated in order after the parameters (``n: (d - 4) / 6``)."""

    name: str
    expr: YNode
    loc: Location


@dataclass(frozen=True)
class InitRule:
    """One rule of the init notation: ``target`` (an op name, an init role such as
    ``conv``, or None for any op) has its ``tensor`` (``weight``, ``bias``) drawn by
    ``scheme`` (a key of :data:`archspec.ops.INIT_FNS`) with ``args`` (located values:
    numbers, words or expressions, evaluated per node in the graph stage)."""

    target: str | None
    tensor: str
    scheme: str
    args: tuple[tuple[str, YNode], ...]
    loc: Location
    layer: str | None = None        # a spec-level rule for the layers matching this pattern


@dataclass(frozen=True)
class Item:
    """One entry of a ``layers`` list.

    Exactly one of ``op`` (a primitive), ``block`` (a block reference), ``seq`` (an
    inline sub-scope, like ``nn.Sequential``) or ``loop`` (a ``for`` loop) is set.
    """

    kind: str                       # op | block | seq | for | failed (did not parse)
    loc: Location
    name: YNode | None = None       # may interpolate "{expr}"; dots make nested scopes
    op: str | None = None
    block: YNode | None = None      # block reference: "B(3,3)", a name, or a parameter
    args: tuple[tuple[str, YNode], ...] = ()   # op fields or block arguments
    seq: tuple["Item", ...] = ()
    loop_var: str | None = None
    loop_in: YNode | None = None
    source: YNode | None = None     # `from`: primary input(s)
    extra: YNode | None = None      # `with`: inputs appended after the primary one
    when: YNode | None = None
    otherwise: YNode | None = None  # `else`: the layer it stands for when `when` is false
    repeat: YNode | None = None
    first: tuple[tuple[str, YNode], ...] = ()  # argument overrides for repeat index 0
    row: tuple[str, str, Location] | None = None  # (table, row) supplying block arguments
    train_only: bool = False
    key_locs: tuple[tuple[str, Location], ...] = ()  # where each key of the layer is written
    init: tuple[InitRule, ...] = ()  # `init:` of this layer (an op's tensors, a block's ops)
    trainable: YNode | None = None   # `trainable:`, an expression giving true or false

    def key_loc(self, key: str) -> Location:
        """Where ``key`` is written in this layer (the layer's location if it is not)."""
        return dict(self.key_locs).get(key, self.loc)


@dataclass(frozen=True)
class BlockDef:
    """A named, parameterised block: a scope of layers with its own parameters."""

    name: str
    params: tuple[ParamDef, ...]
    items: tuple[Item, ...]
    loc: Location
    varargs: str | None = None      # positional arguments collect into this list, as in B(3,3)
    lets: tuple[Let, ...] = ()
    checks: tuple[Check, ...] = ()
    label: YNode | None = None      # display label, e.g. "B({M})"; defaults to the reference
    doc: str = ""
    init: tuple[InitRule, ...] = ()  # the definition's `init:`, for its layers


@dataclass(frozen=True)
class Table:
    """A table of block arguments, one row per module (e.g. GoogLeNet's Inception table)."""

    name: str
    columns: tuple[str, ...]
    headers: tuple[str, ...]
    rows: tuple[tuple[str, tuple[YNode, ...], Location], ...]
    loc: Location

    def row(self, key: str) -> tuple[tuple[YNode, ...], Location] | None:
        for k, vals, loc in self.rows:
            if k == key:
                return vals, loc
        return None


@dataclass(frozen=True)
class Output:
    """A named output of the network; training-only heads carry a loss weight."""

    name: str
    source: str
    loss_weight: float
    loc: Location


@dataclass(frozen=True)
class Spec:
    """A loaded, validated spec with its parameters resolved (overrides applied)."""

    name: str
    path: str
    description: str
    params: tuple[ParamDef, ...]
    lets: tuple[Let, ...]
    checks: tuple[Check, ...]
    input_name: str
    input_shape: tuple[YNode, ...]
    input_loc: Location
    init: str
    blocks: tuple[tuple[str, BlockDef], ...]
    tables: tuple[tuple[str, Table], ...]
    items: tuple[Item, ...]
    outputs: tuple[Output, ...]
    env: tuple[tuple[str, Any], ...]       # parameters and lets, evaluated
    sources: tuple[tuple[str, str], ...]    # every file read: path -> text (for error carets)
    overrides: tuple[tuple[str, Any], ...] = ()
    errors: tuple = ()    # layers that did not parse, when loaded with partial=True
    functions: tuple = ()  # (name, expr.UserFunction): the spec's `functions:`, in scope everywhere
    roles: Any = None      # archspec.spec.roles.Roles: the stem, stages, head and classifier
    init_rules: tuple[InitRule, ...] = ()   # the spec's `init:` as rules (a named scheme's too)

    def block(self, name: str) -> BlockDef | None:
        for n, b in self.blocks:
            if n == name:
                return b
        return None

    def table(self, name: str) -> Table | None:
        for n, t in self.tables:
            if n == name:
                return t
        return None

    @property
    def values(self) -> dict[str, Any]:
        """Parameters and derived values, as a fresh dict."""
        return dict(self.env)

    @property
    def param_values(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}
