"""The closed registry of primitive ops: fields, shape rule, parameter and MAC counts.

Every op knows its own complexity without tensors (as in pycls): given its
arguments and input shapes (per sample, batch left symbolic) it returns its output
shape, parameter count and multiply-accumulates. The graph stage uses the shape
rules while it expands a spec (a block's ``when: in_channels != out`` needs them);
the shapes stage totals and reports; the torch backend maps each op to a module.

MACs (multiply-accumulates) follow one convention: half of what torch's own
``torch.utils.flop_counter.FlopCounterMode`` counts, which is exactly torchvision's
published GFLOPS (``Weights.meta["_ops"]``) and fvcore's: convolutions (also transposed)
count ``(in/groups)·kh·kw`` per output value, linear and other matmul-like ops (mm, addmm,
bmm) ``in·out`` per row. Every other op counts 0: element-wise ``add``, ``mul`` and
``shake``, activations (``prelu`` too), normalisation (``batchnorm``, ``groupnorm``),
pooling (``maxpool``, ``avgpool``, adaptive pools, ``mean``), ``upsample`` (bilinear
too), ``softmax``, ``dropout``, ``drop_path`` and reshapes, since those counters do not
count them, and figures stay comparable with theirs. tests/test_every_op.py checks
every registered op's static MACs against FlopCounterMode.

>>> OPS["conv"].infer({"out": 16, "kernel": (3, 3), "stride": (1, 1), "padding": (1, 1),
...                    "dilation": (1, 1), "groups": 1, "bias": False}, [(3, 32, 32)])
(16, 32, 32)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

Shape = tuple[int, ...]


class OpError(Exception):
    """A bad argument or shape; ``field`` names the argument to point at, when there is one."""

    def __init__(self, message: str, field: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint


_REQ = object()


@dataclass(frozen=True)
class Field:
    name: str
    type: str       # int | pos_int | pair | pair0 | padding | pad4 | float | prob | bool | dim | opt_pair | choice | dims | scale | ints
    default: Any = _REQ
    doc: str = ""
    choices: tuple[str, ...] = ()   # the words a ``choice`` field accepts

    @property
    def required(self) -> bool:
        return self.default is _REQ


def _no_kwargs(a: dict, ins: list[Shape]) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class TorchModule:
    """An op lowered to a torch module class, named as data (a dotted path), so this
    front-end module never imports torch; the torch backend resolves it.

    ``kwargs`` maps the op's normalised arguments and per-sample input shapes to the
    constructor's keyword arguments (in the order the standalone source writes them).
    ``by_rank`` names another class for inputs of another rank (BatchNorm1d on a flat
    input). ``paste`` lists objects, not torch's, whose source the standalone generator
    copies into the file (Shake-Shake), so generated code still needs only torch.
    ``by_arg`` names another class where an argument has a value: ``(field, value, cls)``
    entries, the first match winning over ``by_rank`` (layernorm's ``over: channels`` is
    torchvision's LayerNorm2d).
    """

    cls: str
    kwargs: Callable[[dict, list[Shape]], dict[str, Any]] = _no_kwargs
    by_rank: tuple[tuple[int, str], ...] = ()
    paste: tuple[str, ...] = ()
    by_arg: tuple[tuple[str, Any, str], ...] = ()

    def class_for(self, ins: list[Shape], args: dict | None = None) -> str:
        """The dotted class path for these input shapes (and arguments)."""
        for name, value, cls in self.by_arg:
            if args is not None and args.get(name) == value:
                return cls
        return dict(self.by_rank).get(len(ins[0]) if ins else -1, self.cls)

    @property
    def classes(self) -> tuple[str, ...]:
        """Every class this op can become (init_weights recognises them by type)."""
        return (self.cls, *(c for _, c in self.by_rank), *(c for _, _, c in self.by_arg))


@dataclass(frozen=True)
class TorchCall:
    """An op lowered to a function call in the forward code (no module, no state).

    ``inputs`` says how the op's inputs are passed: ``each`` as positional arguments,
    ``list`` as one list (``torch.cat``), ``fold`` pairwise left to right (a chain of
    ``+``). ``args`` are extra positional arguments after them; ``inplace_method`` is
    the tensor method used for the first step when the op may overwrite its input.
    """

    fn: str
    inputs: str = "each"
    args: tuple[Any, ...] = ()
    kwargs: Callable[[dict, list[Shape]], dict[str, Any]] = _no_kwargs
    inplace_method: str | None = None


@dataclass(frozen=True)
class TorchParameter:
    """An op lowered to a bare learnt tensor (``nn.Parameter``) multiplied into its input
    by ``fn``, attached at the node's path on its parent scope: a node named
    ``features.1.0.layer_scale`` gives the state_dict key ``features.1.0.layer_scale``,
    as torchvision's CNBlock's own parameter (no submodule ``.weight``).

    ``shape`` maps the op's arguments and input shapes to the parameter's shape (without
    a batch axis; it broadcasts against the batched input), ``init`` its arguments to the
    value every element starts at.
    """

    shape: Callable[[dict, list[Shape]], tuple[int, ...]]
    init: Callable[[dict], float]
    fn: str = "torch.mul"


def _name_label(name: str) -> Callable[[dict, Shape | None, Shape | None], str]:
    return lambda a, i, o: name


@dataclass(frozen=True)
class OpDef:
    """Everything about one op, so that every backend loops over :data:`OPS` with no
    per-op branches: adding an op is one definition here (and a regenerated docs table).

    ``lower`` is the torch lowering. ``inplace`` is the in-place rule: None where the op
    never runs in place, else a predicate of its arguments saying whether torch can run
    backward through the in-place form. ``fresh_output``: its output is a new tensor its
    own backward does not read (never a view), so its only consumer may overwrite it.
    ``init`` is the role init schemes give its parameters (conv, linear, norm or None);
    ``kind`` its diagram legend group; ``label`` its diagram text from arguments and
    input / output shapes (default: the op's name); ``head`` what a network output
    ending in it holds (logits, probs, log_probs); ``shortcut_join``: a residual join,
    whose inputs other than the longest path the diagram draws as shortcuts.
    ``macs_doc`` states its MAC count for the docs table ("0" for the ops the convention
    does not count; see the module docstring). ``batch_stats``: a predicate of its
    arguments saying it normalises over the batch even in eval (a batchnorm without
    running statistics), so a build's dummy batch must give it 2 values per channel.
    ``passes_fresh``: its output is either its input itself (dropout and stochastic
    depth in eval, or at p = 0) or a new tensor its backward does not read, so it is
    free to overwrite when its input is (torchvision's ``result += input`` after
    StochasticDepth). ``tensors``: its learnt tensors by name (``weight``, ``bias``) with
    their shapes, from its arguments and input shapes, in the order its torch module
    registers them: what a spec's ``init:`` and ``trainable:`` address (None: it learns
    nothing; the shapes' sizes sum to ``params``).
    """

    name: str
    fields: tuple[Field, ...]
    infer: Callable[[dict, list[Shape]], Shape]
    doc: str
    min_inputs: int = 1
    max_inputs: int | None = 1
    params: Callable[[dict, list[Shape], Shape], int] = lambda a, i, o: 0
    macs: Callable[[dict, list[Shape], Shape], int] = lambda a, i, o: 0
    lower: TorchModule | TorchCall | TorchParameter | None = None
    inplace: Callable[[dict], bool] | None = None
    fresh_output: bool = False
    init: str | None = None
    kind: str = "other"
    label: Callable[[dict, Shape | None, Shape | None], str] | None = None
    head: str = "logits"
    shortcut_join: bool = False
    macs_doc: str = "0"
    batch_stats: Callable[[dict], bool] | None = None
    passes_fresh: bool = False
    tensors: Callable[[dict, list[Shape]], tuple[tuple[str, Shape], ...]] | None = None

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def text(self, args: dict, in_shape: Shape | None, out_shape: Shape | None) -> str:
        """The diagram label: ``conv 3×3 /2, 160→320``."""
        return (self.label or _name_label(self.name))(args, in_shape, out_shape)

    @property
    def torch(self) -> str:
        """What it becomes in torch, for the docs table: ``nn.Conv2d``, ``torch.cat``."""
        if isinstance(self.lower, TorchModule):
            return " / ".join(_short(c) for c in self.lower.classes)
        if isinstance(self.lower, TorchParameter):
            return f"nn.Parameter, {_short(self.lower.fn)}"
        return _short(self.lower.fn) if self.lower else "–"


def _short(path: str) -> str:
    for long, short in (("torch.nn.functional.", "F."), ("torch.nn.", "nn.")):
        if path.startswith(long):
            return short + path[len(long):]
    return path


# ----------------------------------------------------------------- argument types
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


#: Largest size or count an op accepts: torch's sizes are int64.
MAX_INT = 2**63 - 1


def check_int_range(v: int, name: str) -> None:
    """Refuse an integer beyond int64: torch could not hold it, and totals would not print."""
    if abs(v) > MAX_INT:
        raise OpError(f"'{name}' is too large: {v.bit_length()} bits, more than the 2**63 - 1 "
                      "torch's sizes allow", name)


def _pair(v: Any, name: str, minimum: int) -> tuple[int, int]:
    if _is_int(v):
        v = (v, v)
    if (isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) for x in v)):
        for x in v:
            check_int_range(x, name)
        if min(v) < minimum:
            raise OpError(f"'{name}' must be at least {minimum}, got {_fmt(v)}", name)
        return (int(v[0]), int(v[1]))
    raise OpError(f"'{name}' must be an integer or a pair [h, w], got {v!r}", name)


def _fmt(v: Any) -> str:
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1]:
        return str(v[0])
    return str(list(v)) if isinstance(v, tuple) else str(v)


def coerce(f: Field, v: Any) -> Any:
    """Check and normalise one argument value; raise :class:`OpError` when it is the wrong type."""
    t, n = f.type, f.name
    if t == "bool":
        if isinstance(v, bool):
            return v
        raise OpError(f"'{n}' must be true or false, got {v!r}", n)
    if t in ("int", "pos_int", "dim"):
        if not _is_int(v):
            raise OpError(f"'{n}' must be an integer, got {v!r}", n)
        check_int_range(v, n)
        if t == "pos_int" and v < 1:
            raise OpError(f"'{n}' must be at least 1, got {v}", n)
        return v
    if t in ("float", "prob"):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise OpError(f"'{n}' must be a number, got {v!r}", n)
        if not math.isfinite(v):
            raise OpError(f"'{n}' must be a finite number, got {v}", n)
        if t == "prob" and not 0.0 <= v <= 1.0:
            raise OpError(f"'{n}' must be a probability in [0, 1], got {v}", n)
        if t == "float" and v < 0 and n in ("eps", "momentum"):
            raise OpError(f"'{n}' must not be negative, got {v}", n)
        return float(v)
    if t == "choice":
        if isinstance(v, str) and v in f.choices:
            return v
        raise OpError(f"'{n}' must be one of {', '.join(f.choices)}, got {v!r}", n)
    if t == "ints":   # a list of integers (permute's dims)
        if isinstance(v, (list, tuple)) and v and all(_is_int(x) for x in v):
            for x in v:
                check_int_range(x, n)
            return tuple(int(x) for x in v)
        raise OpError(f"'{n}' must be a list of integers, got {v!r}", n)
    if t == "pair":
        return _pair(v, n, 1)
    if t == "pair0":
        return _pair(v, n, 0)
    if t == "opt_pair":
        return None if v is None else _pair(v, n, 1)
    if t == "padding":
        if v in ("same", "valid"):
            return v
        if isinstance(v, str):
            raise OpError(f"'{n}' must be an integer, a pair [h, w], same or valid, got {v!r}", n)
        return _pair(v, n, 0)
    if t == "scale":   # a positive factor, or one per axis [h, w] (upsample's)
        if v is None:
            return None
        pair = v if isinstance(v, (list, tuple)) else (v, v)
        if len(pair) != 2 or any(isinstance(x, bool) or not isinstance(x, (int, float))
                                 for x in pair):
            raise OpError(f"'{n}' must be a number or a pair [h, w], got {v!r}", n)
        if not all(math.isfinite(x) and x > 0 for x in pair):
            raise OpError(f"'{n}' must be above 0 and finite, got {_fmt(tuple(pair))}", n)
        return (float(pair[0]), float(pair[1]))
    if t == "dims":   # dims of the batched tensor: one, or a list (mean's)
        if _is_int(v):
            v = [v]
        if isinstance(v, (list, tuple)) and v and all(_is_int(x) for x in v):
            for x in v:
                check_int_range(x, n)
            return tuple(int(x) for x in v)
        raise OpError(f"'{n}' must be a dim or a non-empty list of dims, e.g. [2, 3], got {v!r}",
                      n)
    if t == "pad4":   # [left, right, top, bottom]; negative values crop
        if _is_int(v):
            v = (v, v, v, v)
        if isinstance(v, (list, tuple)) and len(v) == 4 and all(_is_int(x) for x in v):
            for x in v:
                check_int_range(x, n)
            return tuple(int(x) for x in v)
        raise OpError(f"'{n}' must be an integer or [left, right, top, bottom], got {v!r}", n)
    raise AssertionError(f"unknown field type {t}")  # registry bug, not user input


# ------------------------------------------------------------------ shape helpers
def _one(shapes: list[Shape], rank: int | None, what: str) -> Shape:
    s = shapes[0]
    if rank is not None and len(s) != rank:
        want = {3: "a (channels, height, width) input", 1: "a flat (features) input"}[rank]
        hint = "insert {op: flatten} before it" if rank == 1 else None
        raise OpError(f"{what} expects {want}, got {_shape(s)}", hint=hint)
    return s


def _shape(s: Shape) -> str:
    return "(N, " + ", ".join(str(x) for x in s) + ")"


def _window(size: int, k: int, s: int, p: int, d: int, ceil: bool, axis: str, what: str) -> int:
    """One output size by torch's rule (ATen's ``pooling_output_shape``, also conv's).

    ``floor((size + 2p - eff [+ s - 1 in ceil mode]) / s) + 1`` with floor division, so a
    ceil-mode pool whose window exceeds its padded input still gives 1 when the numerator
    stays >= 0, as in torch; then the last window must start inside the input or its left
    padding.
    """
    eff = d * (k - 1) + 1
    num = size + 2 * p - eff
    out = (num + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    if out >= 1:
        return out
    # out < 1 only when num < 0: with num >= 0 the first window always fits and starts at 0
    kernel = f"{k} dilated by {d} ({eff} wide)" if d > 1 else str(k)
    mode = " even in ceil mode" if ceil else ""
    raise OpError(f"output {axis} drops below 1: {what} kernel {kernel} is larger than its "
                  f"padded input ({axis} {size} + 2×{p} padding = {size + 2 * p}){mode}",
                  "kernel",
                  "use a smaller kernel or more padding, or remove a downsampling layer before it")


def _spatial(a: dict, s: Shape, what: str, ceil: bool = False) -> tuple[int, int]:
    k, st = a["kernel"], a["stride"] or a["kernel"]
    pad, dil = a["padding"], a.get("dilation", (1, 1))
    if pad == "valid":
        pad = (0, 0)
    if pad == "same":
        if st != (1, 1):
            raise OpError(f"padding 'same' needs stride 1, got stride {_fmt(st)}", "padding",
                          "give the padding as a number for a strided conv")
        return s[1], s[2]
    return (_window(s[1], k[0], st[0], pad[0], dil[0], ceil, "height", what),
            _window(s[2], k[1], st[1], pad[1], dil[1], ceil, "width", what))


# ---------------------------------------------------------------------- the ops
def _conv(a: dict, shapes: list[Shape]) -> Shape:
    s = _one(shapes, 3, "conv")
    c, g = s[0], a["groups"]
    if c % g:
        raise OpError(f"input channels {c} are not divisible by groups {g}", "groups")
    if a["out"] % g:
        raise OpError(f"output channels {a['out']} are not divisible by groups {g}", "groups")
    h, w = _spatial(a, s, "conv")
    return (a["out"], h, w)


def _conv_params(a: dict, i: list[Shape], o: Shape) -> int:
    kh, kw = a["kernel"]
    return a["out"] * (i[0][0] // a["groups"]) * kh * kw + (a["out"] if a["bias"] else 0)


def _conv_macs(a: dict, i: list[Shape], o: Shape) -> int:
    kh, kw = a["kernel"]
    return o[0] * o[1] * o[2] * (i[0][0] // a["groups"]) * kh * kw


def _pool(what: str, ceil_ok: bool = True) -> Callable[[dict, list[Shape]], Shape]:
    def infer(a: dict, shapes: list[Shape]) -> Shape:
        s = _one(shapes, 3, what)
        k = a["kernel"]
        pad = a["padding"]
        if pad[0] * 2 > k[0] or pad[1] * 2 > k[1]:
            raise OpError(f"{what} padding {_fmt(pad)} is more than half its kernel {_fmt(k)}",
                          "padding")
        h, w = _spatial(a, s, what, ceil=a["ceil_mode"])
        return (s[0], h, w)
    return infer


def _adaptive(what: str) -> Callable[[dict, list[Shape]], Shape]:
    def infer(a: dict, shapes: list[Shape]) -> Shape:
        s = _one(shapes, 3, what)
        return (s[0], *a["size"])
    return infer


def _same(what: str, rank: int | None = None) -> Callable[[dict, list[Shape]], Shape]:
    def infer(a: dict, shapes: list[Shape]) -> Shape:
        return _one(shapes, rank, what)
    return infer


def _softplus(a: dict, shapes: list[Shape]) -> Shape:
    if a["beta"] <= 0:
        raise OpError(f"softplus 'beta' must be above 0, got {a['beta']:g} (it divides by "
                      "beta)", "beta")
    return shapes[0]


def _batchnorm(a: dict, shapes: list[Shape]) -> Shape:
    s = shapes[0]
    if len(s) not in (1, 3):
        raise OpError(f"batchnorm expects (C, H, W) or (features), got {_shape(s)}")
    return s


def _groupnorm(a: dict, shapes: list[Shape]) -> Shape:
    s = shapes[0]
    if len(s) not in (1, 3):
        raise OpError(f"groupnorm expects (C, H, W) or (features), got {_shape(s)}")
    if s[0] % a["groups"]:
        raise OpError(f"groupnorm's channels {s[0]} are not divisible by groups {a['groups']}",
                      "groups", "choose groups dividing the channels (32 in the paper, or "
                      "fewer for narrow layers)")
    return s


def _channel_shuffle(a: dict, shapes: list[Shape]) -> Shape:
    s = _one(shapes, 3, "channel_shuffle")
    if s[0] % a["groups"]:
        raise OpError(f"channel_shuffle's channels {s[0]} are not divisible by groups "
                      f"{a['groups']}", "groups",
                      "use the groups of the grouped conv before it, which divide its channels")
    return s


def _drop_path(a: dict, shapes: list[Shape]) -> Shape:
    if a["p"] >= 1.0:
        raise OpError(f"drop_path's 'p' must be below 1, got {a['p']:g}: it would always drop "
                      "the branch", "p", "remove the branch instead")
    return shapes[0]


def _linear(a: dict, shapes: list[Shape]) -> Shape:
    """Over the last axis of any input, as ``nn.Linear``: (F) → (out), and (H, W, C) →
    (H, W, out) after a permute (ConvNeXt's channel MLP). On a (C, H, W) conv output it
    mixes the width: torch allows it, so it is no error (a classifier head wants a
    flatten first; see docs/spec-language.md)."""
    return (*shapes[0][:-1], a["out"])


def _flatten(a: dict, shapes: list[Shape]) -> Shape:
    """torch.flatten's ``start_dim`` / ``end_dim`` on the batched tensor; the batch axis
    (dim 0) stays, since the IR's shapes are per sample."""
    s = shapes[0]
    start, end = _batched_dim(a["start"], s, "start"), _batched_dim(a["end"], s, "end")
    if start == 0:
        raise OpError(f"flatten 'start' {a['start']} is the batch dimension", "start",
                      "start at 1 (the default) to keep the batch apart")
    if end < start:
        raise OpError(f"flatten 'end' {a['end']} (dim {end}) comes before 'start' "
                      f"{a['start']} (dim {start}) of {_shape(s)}", "end",
                      "torch needs start_dim <= end_dim")
    return (*s[:start - 1], math.prod(s[start - 1:end]), *s[end:])


def _add(a: dict, shapes: list[Shape]) -> Shape:
    first = shapes[0]
    for s in shapes[1:]:
        if s != first:
            if len(s) != len(first):
                hint = "flatten both inputs, or neither"
            elif s[0] != first[0]:
                hint = (f"the channels differ ({first[0]} vs {s[0]}): project one input with a "
                        "1×1 conv to the other's channels")
            else:
                hint = ("the height and width differ: give both branches the same total stride, "
                        "or downsample the shortcut")
            raise OpError(f"add needs equal shapes, got {_shape(first)} and {_shape(s)}",
                          hint=hint)
    return first


def _mul(a: dict, shapes: list[Shape]) -> Shape:
    """Broadcast per-sample shapes of one rank: each size equal, or 1 on one side. Ranks
    must agree, since torch aligns the batched tensors from the right and a flat (N, C)
    against (N, C, H, W) would meet the batch with a spatial axis."""
    out = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(out):
            raise OpError(f"mul needs inputs of one rank, got {_shape(out)} and {_shape(s)}",
                          hint="flatten both inputs, or neither; an SE gate of shape "
                          "(N, C, 1, 1) keeps its spatial axes (adaptive_avgpool size 1)")
        if any(x != y and 1 not in (x, y) for x, y in zip(out, s)):
            raise OpError(f"mul needs shapes that broadcast, got {_shape(out)} and {_shape(s)}",
                          hint="each size must be equal, or 1 in one of the inputs, as in "
                          "(C, H, W) × (C, 1, 1)")
        out = tuple(y if x == 1 else x for x, y in zip(out, s))
    return out


def _concat(a: dict, shapes: list[Shape]) -> Shape:
    first = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(first) or s[1:] != first[1:]:
            raise OpError("concat needs equal shapes except for channels, got "
                          + " and ".join(_shape(x) for x in shapes),
                          hint="every branch must keep the same height and width: check their "
                          "kernels, padding and strides")
    return (sum(s[0] for s in shapes), *first[1:])


def _softmax(what: str) -> Callable[[dict, list[Shape]], Shape]:
    def infer(a: dict, shapes: list[Shape]) -> Shape:
        s = shapes[0]
        rank = len(s) + 1
        if not -rank <= a["dim"] < rank:
            raise OpError(f"{what} dim {a['dim']} is out of range for {_shape(s)}", "dim")
        return s
    return infer


def _shake(a: dict, shapes: list[Shape]) -> Shape:
    return _add(a, shapes)


def _zero_pad(a: dict, shapes: list[Shape]) -> Shape:
    s = _one(shapes, 3, "pad")
    left, right, top, bottom = a["padding"]
    h, w = _pad_axis(s, s[1], top, bottom, "height", a), _pad_axis(s, s[2], left, right, "width", a)
    return (s[0], h, w)


def _pad_axis(s: Shape, size: int, before: int, after: int, axis: str, a: dict) -> int:
    """One padded size, refused where torch refuses it or where it would be empty.

    Torch crops the negative sides first (``narrow``), so their crops together must fit
    in the input even when the other side pads it back: ``[0, 0, 2, -2]`` on height 1
    fails in torch although 1 + 2 - 2 = 1. An empty result (torch allows 0) is refused
    like any size below 1.
    """
    crop = max(0, -before) + max(0, -after)
    if crop > size:
        raise OpError(f"pad crops more than its input has: {crop} from {axis} {size} of "
                      f"{_shape(s)} (padding {list(a['padding'])})", "padding",
                      "torch crops the negative sides before it pads the others, so together "
                      "they must leave at least 0")
    out = size + before + after
    if out < 1:
        raise OpError(f"pad crops {_shape(s)} to nothing (padding {list(a['padding'])})",
                      "padding")
    return out


# ------------------------------------------- ops-more group: flatten dims, mean, prelu,
# upsample, conv_transpose (helpers)
def _batched_dim(d: int, s: Shape, name: str) -> int:
    """A dim of the batched tensor (per-sample shape ``s`` plus the batch), as torch
    reads it: -1 is the last; out of range is an error naming the field."""
    rank = len(s) + 1
    if not -rank <= d < rank:
        raise OpError(f"'{name}' {d} is out of range for {_shape(s)}: a dim of the batched "
                      f"tensor lies in [{-rank}, {rank - 1}]", name,
                      "dims count the batch as 0, as in torch: (N, C, H, W) has 1, 2, 3")
    return d % rank


def _flatten_kwargs(a: dict, ins: list[Shape]) -> dict[str, Any]:
    """``torch.flatten(x, start_dim=1)``; end_dim only when it is not the last."""
    return {"start_dim": a["start"]} | ({"end_dim": a["end"]} if a["end"] != -1 else {})


def _flatten_label(a: dict, i: Shape | None, o: Shape | None) -> str:
    start, end = a.get("start", 1), a.get("end", -1)
    return "flatten" if (start, end) == (1, -1) else f"flatten {start}..{end}"


def _mean(a: dict, shapes: list[Shape]) -> Shape:
    """torch.mean over dims of the batched tensor: each in range, none twice, never the
    batch (dim 0), and at least one per-sample dim left (or kept as 1 by keepdim)."""
    s = shapes[0]
    dims = [_batched_dim(d, s, "dims") for d in a["dims"]]
    if 0 in dims:
        raise OpError(f"mean over dims {list(a['dims'])} includes the batch (dim 0)", "dims",
                      "average over per-sample dims only: [2, 3] is the spatial mean of "
                      "(N, C, H, W)")
    if len(set(dims)) < len(dims):
        raise OpError(f"mean dims {list(a['dims'])} name a dim twice (of {_shape(s)})", "dims",
                      "list each dim once, as torch requires")
    if a["keepdim"]:
        return tuple(1 if i + 1 in dims else x for i, x in enumerate(s))
    out = tuple(x for i, x in enumerate(s) if i + 1 not in dims)
    if not out:
        raise OpError(f"mean over dims {list(a['dims'])} leaves no per-sample dim of "
                      f"{_shape(s)}", "dims", "set keepdim: true to keep them as 1s")
    return out


def _prelu_slopes(a: dict, ins: list[Shape]) -> int:
    """PReLU's learnt slopes: one shared, or one per channel (dim 1 of the batched input)."""
    return ins[0][0] if a["per_channel"] else 1


def _upsample(a: dict, shapes: list[Shape]) -> Shape:
    """nn.Upsample's size: ``size`` itself, or each side times ``scale`` truncated (ATen's
    ``compute_output_size``, a double product cast to int); exactly one of them."""
    s = _one(shapes, 3, "upsample")
    scale, size = a["scale"], a["size"]
    if (scale is None) == (size is None):
        raise OpError(f"upsample needs exactly one of 'scale' and 'size', got "
                      f"{'both' if size else 'neither'}", "size" if size else None,
                      "give a factor (scale: 2) or an output size (size: [56, 56])")
    if a["align_corners"] is not None and a["mode"] != "bilinear":
        raise OpError(f"upsample 'align_corners' needs mode bilinear, got mode {a['mode']}",
                      "align_corners", "remove align_corners for nearest, as torch requires")
    if size is not None:
        return (s[0], *size)
    out = (int(s[1] * scale[0]), int(s[2] * scale[1]))
    if min(out) < 1:
        raise OpError(f"upsample by {_fmt(scale)} makes {_shape(s)} empty: "
                      f"{out[0]}×{out[1]}", "scale", "use a larger factor, or give 'size'")
    return (s[0], *out)


def _upsample_kwargs(a: dict, ins: list[Shape]) -> dict[str, Any]:
    """nn.Upsample's arguments, the unset ones left out (align_corners only for bilinear)."""
    kw: dict[str, Any] = {"size": a["size"]} if a["size"] else {"scale_factor": a["scale"]}
    kw["mode"] = a["mode"]
    if a["align_corners"] is not None:
        kw["align_corners"] = a["align_corners"]
    return kw


def _upsample_label(a: dict, i: Shape | None, o: Shape | None) -> str:
    how = f"×{_fmt(a['scale'])}" if a.get("scale") else f"→{label_kernel(a.get('size'))}"
    return f"upsample {how} {a.get('mode', 'nearest')}"


def _conv_transpose(a: dict, shapes: list[Shape]) -> Shape:
    """ConvTranspose2d's size per axis: (size − 1)·stride − 2·padding + dilation·(kernel − 1)
    + output_padding + 1, with torch's checks: groups divide both channel counts, and
    output_padding is smaller than the stride or the dilation."""
    s = _one(shapes, 3, "conv_transpose")
    c, g = s[0], a["groups"]
    if c % g or a["out"] % g:
        which = "input" if c % g else "output"
        raise OpError(f"conv_transpose {which} channels {c if c % g else a['out']} are not "
                      f"divisible by groups {g}", "groups")
    out = []
    for axis, i in (("height", 0), ("width", 1)):
        op, st, d = a["output_padding"][i], a["stride"][i], a["dilation"][i]
        if op >= st and op >= d:
            raise OpError(f"conv_transpose 'output_padding' {_fmt(a['output_padding'])} must "
                          f"be smaller than the stride {_fmt(a['stride'])} or the dilation "
                          f"{_fmt(a['dilation'])} ({axis})", "output_padding",
                          "output_padding picks one of the stride's possible sizes: below it")
        n = ((s[1 + i] - 1) * st - 2 * a["padding"][i] + d * (a["kernel"][i] - 1) + op + 1)
        if n < 1:
            raise OpError(f"conv_transpose output {axis} drops below 1 ({n}): padding "
                          f"{_fmt(a['padding'])} crops more than the kernel adds",
                          "padding", "use less padding or a larger kernel")
        out.append(n)
    return (a["out"], *out)


def _conv_transpose_kwargs(a: dict, ins: list[Shape]) -> dict[str, Any]:
    return dict(in_channels=ins[0][0], out_channels=a["out"], kernel_size=a["kernel"],
                stride=a["stride"], padding=a["padding"], output_padding=a["output_padding"],
                groups=a["groups"], bias=a["bias"], dilation=a["dilation"])


def _conv_transpose_label(a: dict, i: Shape | None, o: Shape | None) -> str:
    return "conv_transpose" + _conv_label(a, i, o)[len("conv"):]
# ------------------------------------------- layout ops (ConvNeXt, ShuffleNetV2)
def _scale_shape(a: dict, shapes: list[Shape]) -> tuple[int, ...]:
    """The learnt tensor's shape: (C, 1, 1) on (C, H, W), broadcasting over height and
    width as ConvNeXt's layer_scale; (F,) on a flat input."""
    s = shapes[0]
    return (s[0], 1, 1) if len(s) == 3 else (s[0],)


def _scale(a: dict, shapes: list[Shape]) -> Shape:
    s = shapes[0]
    if len(s) not in (1, 3):
        raise OpError(f"scale expects (C, H, W) or (features), got {_shape(s)}",
                      hint="scale learns one factor per channel: give it a (C, H, W) input "
                      "(before a permute) or a flat one")
    return s


def _layernorm(a: dict, shapes: list[Shape]) -> Shape:
    s = shapes[0]
    if a["over"] == "channels" and len(s) != 3:
        raise OpError(f"layernorm over channels expects a (channels, height, width) input, got "
                      f"{_shape(s)}", "over", "use over: last to normalise the last axis "
                      "(a flat input's features, or the channels after a permute)")
    return s


def _layernorm_kwargs(a: dict, ins: list[Shape]) -> dict[str, Any]:
    """``normalized_shape`` is the channels (LayerNorm2d) or the last axis (nn.LayerNorm)."""
    size = ins[0][0] if a["over"] == "channels" else ins[0][-1]
    return dict(normalized_shape=size, eps=a["eps"], elementwise_affine=a["affine"])


def _layernorm_size(a: dict, i: list[Shape]) -> int:
    return i[0][0] if a["over"] == "channels" else i[0][-1]


def _permute(a: dict, shapes: list[Shape]) -> Shape:
    """``dims`` orders the batched tensor's axes, as torchvision's ``Permute([0, 2, 3, 1])``
    in ConvNeXt's CNBlock; the batch (0) stays first, so the per-sample shape follows
    ``dims[1:]`` (each less one)."""
    s, dims = shapes[0], a["dims"]
    rank = len(s) + 1
    if sorted(dims) != list(range(rank)):
        raise OpError(f"permute dims {list(dims)} are not a permutation of the {rank} axes "
                      f"0..{rank - 1} of {_shape(s)}", "dims",
                      "list every axis of the batched tensor once, the batch 0 first: "
                      f"[0, 2, 3, 1] moves (N, C, H, W) to (N, H, W, C)")
    if dims[0] != 0:
        raise OpError(f"permute dims {list(dims)} move the batch axis 0 away from the front",
                      "dims", "keep 0 first: the batch stays the leading axis")
    return tuple(s[d - 1] for d in dims[1:])


def _slice_bounds(a: dict, shapes: list[Shape]) -> tuple[int, int]:
    """``start`` and ``stop`` (the channels when not given) of a channel slice."""
    c = shapes[0][0]
    return a["start"], c if a["stop"] is None else a["stop"]


def _slice(a: dict, shapes: list[Shape]) -> Shape:
    """Channels ``start:stop`` (Python's half-open range, both within the channels, the
    result not empty): ShuffleNetV2's ``x.chunk(2, dim=1)`` is two slices."""
    s = shapes[0]
    start, stop = _slice_bounds(a, shapes)
    if start < 0 or stop > s[0]:
        raise OpError(f"slice {start}:{stop} reaches beyond the {s[0]} channels of {_shape(s)}",
                      "start" if start < 0 else "stop",
                      f"give 0 <= start < stop <= {s[0]}; negative indices are not taken")
    if stop <= start:
        raise OpError(f"slice {start}:{stop} of {_shape(s)} is empty", "stop",
                      "give stop above start")
    return (stop - start, *s[1:])


def _narrow_kwargs(a: dict, ins: list[Shape]) -> dict[str, Any]:
    start, stop = _slice_bounds(a, ins)
    return {"dim": 1, "start": start, "length": stop - start}


# ------------------------------------------------------------------ diagram labels
def label_pair(p: Any) -> str:
    """``3`` for a square pair, ``1×7`` otherwise."""
    if isinstance(p, (tuple, list)) and len(p) == 2:
        return str(p[0]) if p[0] == p[1] else f"{p[0]}×{p[1]}"
    return str(p)


def label_kernel(p: Any) -> str:
    """``3×3``: a kernel always shows both sides."""
    if isinstance(p, (tuple, list)) and len(p) == 2:
        return f"{p[0]}×{p[1]}"
    return f"{p}×{p}"


def label_channels(s: Shape | None) -> str:
    return "?" if not s else str(s[0])


def _conv_label(a: dict, i: Shape | None, o: Shape | None) -> str:
    text = f"conv {label_kernel(a['kernel'])}"
    if tuple(a.get("stride", (1, 1))) != (1, 1):
        text += f" /{label_pair(a['stride'])}"
    if tuple(a.get("dilation", (1, 1))) != (1, 1):
        text += f" d{label_pair(a['dilation'])}"
    if a.get("groups", 1) != 1:
        text += f" g{a['groups']}"
    return f"{text}, {label_channels(i)}→{a['out']}"


def _pool_label(name: str) -> Callable[[dict, Shape | None, Shape | None], str]:
    def label(a: dict, i: Shape | None, o: Shape | None) -> str:
        text = f"{name} {label_kernel(a['kernel'])}"
        stride = a.get("stride") or a["kernel"]
        return text + (f" /{label_pair(stride)}" if tuple(stride) != (1, 1) else "")
    return label


def _softmax_label(name: str) -> Callable[[dict, Shape | None, Shape | None], str]:
    return lambda a, i, o: name if a.get("dim", -1) == -1 else f"{name} dim {a['dim']}"


# ----------------------------------------------------------- torch keyword arguments
def _conv_kwargs(a: dict, ins: list[Shape]) -> dict[str, Any]:
    return dict(in_channels=ins[0][0], out_channels=a["out"], kernel_size=a["kernel"],
                stride=a["stride"], padding=a["padding"], dilation=a["dilation"],
                groups=a["groups"], bias=a["bias"])


def _bn_kwargs(a: dict, ins: list[Shape]) -> dict[str, Any]:
    return dict(num_features=ins[0][0], eps=a["eps"], momentum=a["momentum"],
                affine=a["affine"], track_running_stats=a["track_running_stats"])


def _maxpool_kwargs(a: dict, ins: list[Shape]) -> dict[str, Any]:
    return dict(kernel_size=a["kernel"], stride=a["stride"] or a["kernel"],
                padding=a["padding"], dilation=a["dilation"], ceil_mode=a["ceil_mode"])


def _avgpool_kwargs(a: dict, ins: list[Shape]) -> dict[str, Any]:
    return dict(kernel_size=a["kernel"], stride=a["stride"] or a["kernel"],
                padding=a["padding"], ceil_mode=a["ceil_mode"],
                count_include_pad=a["count_include_pad"])


def _args_as(**names: str) -> Callable[[dict, list[Shape]], dict[str, Any]]:
    """Constructor kwargs copied from the op's arguments: ``_args_as(p="p")``."""
    return lambda a, ins: {k: a[v] for k, v in names.items()}


def _always(a: dict) -> bool:
    return True


def _activation(name: str, cls: str, doc: str, fields: tuple[Field, ...] = (),
                inplace: Callable[[dict], bool] | None = None, kind: str = "activation",
                label: Callable[[dict, Shape | None, Shape | None], str] | None = None
                ) -> OpDef:
    """A shape-preserving element-wise op lowered to a ``torch.nn`` class."""
    kw = _args_as(**{f.name: f.name for f in fields})
    return OpDef(name, fields, _same(name), doc, lower=TorchModule(f"torch.nn.{cls}", kw),
                 inplace=inplace, kind=kind, label=label)


_P = lambda: Field("p", "prob", 0.5, "probability of zeroing")  # noqa: E731
_POOL_FIELDS = (Field("kernel", "pair", doc="window size"),
                Field("stride", "opt_pair", None, "defaults to the kernel size"),
                Field("padding", "pair0", 0, "implicit padding on both sides"),
                Field("ceil_mode", "bool", False, "round the output size up (Caffe's rule)"))
_SIZE = (Field("size", "pair", doc="output size, e.g. 1 or [4, 4]"),)

# ---------------------------------------------------- init and training roles (issue 15)
# Which learnt tensors an op has (OpDef.tensors) and the torch.nn.init schemes a spec's
# `init:` may give them (INIT_FNS), as data: the graph stage resolves every node's plan
# (tensor, scheme, arguments) torch-free and the torch backend runs it generically.
TensorShapes = tuple[tuple[str, Shape], ...]


def _weight_bias(weight: Callable[[dict, list[Shape]], Shape], out: Callable[[dict], int]
                 ) -> Callable[[dict, list[Shape]], TensorShapes]:
    """``tensors`` of an op with a weight and an optional bias (``a["bias"]``), in the
    order its torch module registers them (weight first), as torch's reset draws them."""
    def tensors(a: dict, ins: list[Shape]) -> TensorShapes:
        w = (("weight", weight(a, ins)),)
        return w + ((("bias", (out(a),)),) if a.get("bias") else ())
    return tensors


def _affine(size: Callable[[dict, list[Shape]], int]) -> Callable[[dict, list[Shape]],
                                                                     TensorShapes]:
    """``tensors`` of a norm: weight and bias of ``size`` elements when affine, else none."""
    def tensors(a: dict, ins: list[Shape]) -> TensorShapes:
        n = size(a, ins)
        return (("weight", (n,)), ("bias", (n,))) if a["affine"] else ()
    return tensors


def tensor_fans(shape: Shape) -> tuple[int, int] | None:
    """(fan_in, fan_out) of a tensor, as torch.nn.init's _calculate_fan_in_and_fan_out
    (None below 2 dims, where torch has none): fan_in = size(1)·receptive field."""
    if len(shape) < 2:
        return None
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


@dataclass(frozen=True)
class InitFn:
    """One initialisation scheme a spec's ``init:`` names: torch.nn.init's ``fn`` (a
    dotted path, so this module stays torch-free), its arguments as Fields (only the
    given ones are passed, so torch's own defaults hold), ``torch_names`` renaming an
    argument for torch (constant's ``value`` is torch's ``val``), ``min_rank`` the
    fewest tensor dims it accepts (fan-based schemes need 2), and ``check`` a predicate
    over the coerced arguments raising OpError (a negative std)."""

    name: str
    fn: str
    args: tuple[Field, ...]
    doc: str
    min_rank: int = 0
    torch_names: tuple[tuple[str, str], ...] = ()
    check: Callable[[dict], None] = lambda a: None

    def field(self, name: str) -> Field | None:
        return next((f for f in self.args if f.name == name), None)


#: torch.nn.init's nonlinearity names (calculate_gain).
NONLINEARITIES = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                  "conv_transpose2d", "conv_transpose3d", "sigmoid", "tanh", "relu",
                  "leaky_relu", "selu")


def _nonneg(*names: str) -> Callable[[dict], None]:
    def check(a: dict) -> None:
        for n in names:
            if n in a and a[n] < 0:
                raise OpError(f"'{n}' must not be negative, got {a[n]:g}", n,
                              f"{n} is a spread: 0 or more")
    return check


def _ordered(lo: str, hi: str, extra: Callable[[dict], None] = lambda a: None
             ) -> Callable[[dict], None]:
    def check(a: dict) -> None:
        extra(a)
        if lo in a and hi in a and not a[lo] < a[hi]:
            raise OpError(f"'{lo}' must be below '{hi}', got {a[lo]:g} and {a[hi]:g}", hi,
                          f"the bounds are [{lo}, {hi}]")
    return check


def _kaiming_args() -> tuple[Field, ...]:
    return (Field("a", "float", 0.0, "negative slope of the leaky ReLU after it"),
            Field("mode", "choice", "fan_in", "keep the variance of the forward (fan_in) "
                  "or of the backward pass (fan_out)", ("fan_in", "fan_out")),
            Field("nonlinearity", "choice", "leaky_relu", "the gain's nonlinearity",
                  NONLINEARITIES))


_STD = Field("std", "float", 1.0, "standard deviation")
_MEAN = Field("mean", "float", 0.0, "mean")
INIT_FNS: dict[str, InitFn] = {f.name: f for f in [
    InitFn("normal", "torch.nn.init.normal_", (_MEAN, _STD), "N(mean, std²)",
           check=_nonneg("std")),
    InitFn("trunc_normal", "torch.nn.init.trunc_normal_",
           (_MEAN, _STD, Field("a", "float", -2.0, "lower bound (absolute, as torch's)"),
            Field("b", "float", 2.0, "upper bound (absolute)")),
           "N(mean, std²) redrawn outside [a, b]", check=_ordered("a", "b", _nonneg("std"))),
    InitFn("uniform", "torch.nn.init.uniform_", (Field("a", "float", 0.0, "lower bound"),
                                                 Field("b", "float", 1.0, "upper bound")),
           "U(a, b)", check=_ordered("a", "b")),
    InitFn("constant", "torch.nn.init.constant_", (Field("value", "float", doc="the value"),),
           "every element the value", torch_names=(("value", "val"),)),
    InitFn("zeros", "torch.nn.init.zeros_", (), "every element 0"),
    InitFn("ones", "torch.nn.init.ones_", (), "every element 1"),
    InitFn("kaiming_normal", "torch.nn.init.kaiming_normal_", _kaiming_args(),
           "He et al.: N(0, gain²/fan)", min_rank=2),
    InitFn("kaiming_uniform", "torch.nn.init.kaiming_uniform_", _kaiming_args(),
           "He et al.: U(±gain·√(3/fan)); nn.Linear's and nn.Conv2d's own reset is a = √5",
           min_rank=2),
    InitFn("xavier_normal", "torch.nn.init.xavier_normal_",
           (Field("gain", "float", 1.0, "scale"),), "Glorot: N(0, 2·gain²/(fan_in+fan_out))",
           min_rank=2, check=_nonneg("gain")),
    InitFn("xavier_uniform", "torch.nn.init.xavier_uniform_",
           (Field("gain", "float", 1.0, "scale"),), "Glorot: U(±gain·√(6/(fan_in+fan_out)))",
           min_rank=2, check=_nonneg("gain")),
]}


def init_args(fn: InitFn, given: dict[str, Any], complete: bool = True) -> dict[str, Any]:
    """Coerce and check one scheme's given arguments (unknown ones refused), keeping
    only those given: torch's defaults are its own. Raises OpError naming the field.
    ``complete=False`` checks a subset (the literal ones, before expressions are known)."""
    out: dict[str, Any] = {}
    for k, v in given.items():
        f = fn.field(k)
        if f is None:
            names = ", ".join(a.name for a in fn.args)
            raise OpError(f"unknown argument '{k}' for init '{fn.name}'", k,
                          f"it takes {names}" if names else f"'{fn.name}' takes no arguments")
        out[k] = coerce(f, v)
    for f in fn.args:
        if complete and f.required and f.name not in out:
            raise OpError(f"init '{fn.name}' needs '{f.name}'", None,
                          f"{{{fn.name}: {{{f.name}: ...}}}}: {f.doc}")
    fn.check(out)
    return out


def torch_init_kwargs(fn: InitFn, args: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments torch's ``fn`` takes for these (spec-named) arguments."""
    names = dict(fn.torch_names)
    return {names.get(k, k): v for k, v in args.items()}


OPS: dict[str, OpDef] = {op.name: op for op in [
    OpDef("conv", (Field("out", "pos_int", doc="output channels"),
                   Field("kernel", "pair", doc="kernel size, an integer or [h, w]"),
                   Field("stride", "pair", 1, "step of the window"),
                   Field("padding", "padding", 0, "zeros added on each side; 'same' keeps the "
                         "size (stride 1), 'valid' is 0"),
                   Field("dilation", "pair", 1, "spacing between kernel taps"),
                   Field("groups", "pos_int", 1, "grouped convolution (ResNeXt's cardinality); "
                         "divides in and out channels"),
                   Field("bias", "bool", True, "add a learnt bias (false before a batchnorm)")),
          _conv, "2-D convolution", params=_conv_params, macs=_conv_macs,
          lower=TorchModule("torch.nn.Conv2d", _conv_kwargs), fresh_output=True, init="conv",
          tensors=_weight_bias(lambda a, i: (a["out"], i[0][0] // a["groups"], *a["kernel"]),
                               lambda a: a["out"]),
          kind="conv", label=_conv_label, macs_doc="(in/groups)·kh·kw per output value"),
    OpDef("batchnorm", (Field("eps", "float", 1e-5, "added to the variance"),
                        Field("momentum", "float", 0.1, "running-statistics update rate"),
                        Field("affine", "bool", True, "learnt scale and shift (2·C parameters)"),
                        Field("track_running_stats", "bool", True,
                              "keep running mean and variance for evaluation")),
          _batchnorm, "batch normalisation over channels (or features)",
          params=lambda a, i, o: 2 * i[0][0] if a["affine"] else 0,
          lower=TorchModule("torch.nn.BatchNorm2d", _bn_kwargs,
                            by_rank=((1, "torch.nn.BatchNorm1d"),)),
          fresh_output=True, init="norm", kind="norm", tensors=_affine(lambda a, i: i[0][0]),
          label=lambda a, i, o: f"batchnorm {label_channels(o)}",
          batch_stats=lambda a: not a["track_running_stats"]),
    OpDef("groupnorm", (Field("groups", "pos_int", doc="groups the channels are split into; "
                              "divides them"),
                        Field("eps", "float", 1e-5, "added to the variance"),
                        Field("affine", "bool", True, "learnt per-channel scale and shift "
                              "(2·C parameters)")),
          _groupnorm, "group normalisation: each sample's channels normalised in groups",
          params=lambda a, i, o: 2 * i[0][0] if a["affine"] else 0,
          lower=TorchModule("torch.nn.GroupNorm", lambda a, ins: dict(
              num_groups=a["groups"], num_channels=ins[0][0], eps=a["eps"],
              affine=a["affine"])),
          fresh_output=True, init="norm", kind="norm", tensors=_affine(lambda a, i: i[0][0]),
          label=lambda a, i, o: f"groupnorm g{a['groups']}, {label_channels(o)}"),
    _activation("relu", "ReLU", "ReLU", inplace=_always),
    _activation("relu6", "ReLU6", "ReLU6", inplace=_always),
    # torch cannot run backward through in-place leaky_relu / elu with a negative slope
    # or alpha ("In-place leakyReLu backward calculation is triggered with a negative slope")
    _activation("leaky_relu", "LeakyReLU", "leaky ReLU",
                (Field("negative_slope", "float", 0.01, "slope for x < 0"),),
                inplace=lambda a: a["negative_slope"] >= 0,
                label=lambda a, i, o: f"leaky_relu {a.get('negative_slope', 0.01):g}"),
    _activation("elu", "ELU", "ELU", (Field("alpha", "float", 1.0, "saturation value for x < 0"),),
                inplace=lambda a: a["alpha"] >= 0),
    _activation("gelu", "GELU", "GELU"),
    _activation("silu", "SiLU", "SiLU (swish)", inplace=_always),
    _activation("hardswish", "Hardswish", "hard swish", inplace=_always),
    _activation("hardsigmoid", "Hardsigmoid", "hard sigmoid: relu6(x + 3) / 6",
                inplace=_always),
    OpDef("softplus", (Field("beta", "float", 1.0, "sharpness: log(1 + exp(beta·x)) / beta; "
                             "above 0"),
                       Field("threshold", "float", 20.0, "linear above beta·x > threshold")),
          _softplus, "softplus", lower=TorchModule("torch.nn.Softplus",
                                                   _args_as(beta="beta", threshold="threshold")),
          kind="activation",
          label=lambda a, i, o: "softplus" if a.get("beta", 1.0) == 1.0
          else f"softplus β{a['beta']:g}"),
    _activation("mish", "Mish", "Mish: x·tanh(softplus(x))", inplace=_always),
    _activation("sigmoid", "Sigmoid", "sigmoid"),
    _activation("tanh", "Tanh", "tanh"),
    _activation("identity", "Identity", "passes its input through", kind="reshape"),
    OpDef("maxpool", _POOL_FIELDS + (Field("dilation", "pair", 1, "spacing between window taps"),),
          _pool("maxpool"), "2-D max pooling",
          lower=TorchModule("torch.nn.MaxPool2d", _maxpool_kwargs), fresh_output=True,
          kind="pool", label=_pool_label("maxpool")),
    OpDef("avgpool", _POOL_FIELDS + (Field("count_include_pad", "bool", True,
                                           "average over the padding zeros too"),),
          _pool("avgpool"), "2-D average pooling",
          lower=TorchModule("torch.nn.AvgPool2d", _avgpool_kwargs), fresh_output=True,
          kind="pool", label=_pool_label("avgpool")),
    OpDef("adaptive_avgpool", _SIZE, _adaptive("adaptive_avgpool"),
          "adaptive average pooling to a fixed size",
          lower=TorchModule("torch.nn.AdaptiveAvgPool2d", _args_as(output_size="size")),
          fresh_output=True, kind="pool",
          label=lambda a, i, o: f"adaptive_avgpool →{label_kernel(a['size'])}"),
    OpDef("adaptive_maxpool", _SIZE, _adaptive("adaptive_maxpool"),
          "adaptive max pooling to a fixed size",
          lower=TorchModule("torch.nn.AdaptiveMaxPool2d", _args_as(output_size="size")),
          fresh_output=True, kind="pool",
          label=lambda a, i, o: f"adaptive_maxpool →{label_kernel(a['size'])}"),
    OpDef("dropout", (_P(),), _same("dropout"), "element-wise dropout",
          lower=TorchModule("torch.nn.Dropout", _args_as(p="p")), kind="regularise",
          passes_fresh=True, label=lambda a, i, o: f"dropout {a.get('p', 0.5):g}"),
    OpDef("dropout2d", (_P(),), _same("dropout2d", 3), "channel-wise dropout",
          lower=TorchModule("torch.nn.Dropout2d", _args_as(p="p")), kind="regularise",
          passes_fresh=True, label=lambda a, i, o: f"dropout2d {a.get('p', 0.5):g}"),
    OpDef("drop_path", (Field("p", "prob", doc="probability of dropping the branch; below 1"),
                        Field("mode", "choice", "row", "row drops per sample, batch the whole "
                              "batch at once", ("row", "batch"))),
          _drop_path, "stochastic depth on a residual branch (identity in eval), scaled by "
          "1 / (1 - p) in training",
          lower=TorchModule("torchvision.ops.StochasticDepth", _args_as(p="p", mode="mode")),
          kind="regularise", passes_fresh=True,
          label=lambda a, i, o: f"drop_path {a['p']:g}"),
    OpDef("linear", (Field("out", "pos_int", doc="output features"),
                     Field("bias", "bool", True, "add a learnt bias")),
          _linear, "fully connected layer over the last axis (any rank, as nn.Linear)",
          params=lambda a, i, o: i[0][-1] * a["out"] + (a["out"] if a["bias"] else 0),
          macs=lambda a, i, o: math.prod(i[0]) * a["out"],
          lower=TorchModule("torch.nn.Linear", lambda a, ins: dict(
              in_features=ins[0][-1], out_features=a["out"], bias=a["bias"])),
          fresh_output=True, init="linear", kind="linear",
          tensors=_weight_bias(lambda a, i: (a["out"], i[0][-1]), lambda a: a["out"]),
          label=lambda a, i, o: f"linear {i[-1] if i else '?'}→{a['out']}",
          macs_doc="in·out per position"),
    OpDef("flatten", (Field("start", "dim", 1, "first dim of the batched tensor to flatten, as "
                            "torch's start_dim (0, the batch, is refused)"),
                      Field("end", "dim", -1, "last dim flattened, as torch's end_dim")),
          _flatten, "flattens dims start..end of the batched tensor into one: (C, H, W) to "
          "(C·H·W) by default",
          lower=TorchCall("torch.flatten", kwargs=_flatten_kwargs), kind="reshape",
          label=_flatten_label),
    OpDef("add", (), _add, "element-wise sum of its inputs (a residual join)",
          min_inputs=2, max_inputs=None,
          lower=TorchCall("operator.add", "fold", inplace_method="add_"), inplace=_always,
          fresh_output=True, kind="merge", shortcut_join=True),
    OpDef("mul", (), _mul, "element-wise product of its inputs, broadcast as in torch "
          "((C, H, W) × (C, 1, 1) for an SE gate); counts 0 MACs, like add (torchvision's "
          "GFLOPS convention)", min_inputs=2, max_inputs=None,
          lower=TorchCall("torch.mul", "fold"), fresh_output=True, kind="merge"),
    OpDef("concat", (), _concat, "concatenation along channels",
          min_inputs=2, max_inputs=None, lower=TorchCall("torch.cat", "list", args=(1,)),
          fresh_output=True, kind="merge"),
    OpDef("softmax", (Field("dim", "dim", -1, "dimension of the batched tensor, as in "
                            "torch (0 is the batch, -1 the last)"),), _softmax("softmax"),
          "softmax", lower=TorchCall("torch.nn.functional.softmax",
                                     kwargs=lambda a, ins: {"dim": a["dim"]}),
          kind="activation", label=_softmax_label("softmax"), head="probs"),
    OpDef("log_softmax", (Field("dim", "dim", -1, "as for softmax"),), _softmax("log_softmax"),
          "log-softmax", lower=TorchCall("torch.nn.functional.log_softmax",
                                         kwargs=lambda a, ins: {"dim": a["dim"]}),
          kind="activation", label=_softmax_label("log_softmax"), head="log_probs"),
    OpDef("channel_shuffle", (Field("groups", "pos_int", doc="groups the channels are "
                                    "interleaved from (ShuffleNet); divides them"),),
          _channel_shuffle, "channel shuffle: (g, C/g) channels transposed to (C/g, g), as "
          "torchvision's ShuffleNetV2", lower=TorchModule("torch.nn.ChannelShuffle",
                                                           _args_as(groups="groups")),
          kind="reshape", label=lambda a, i, o: f"channel_shuffle g{a['groups']}"),
    OpDef("pad", (Field("padding", "pad4", doc="[left, right, top, bottom]; negative values "
                        "crop, as Torch7's SpatialZeroPadding"),), _zero_pad,
          "zero padding (or cropping) of height and width",
          lower=TorchModule("torch.nn.ZeroPad2d",
                            lambda a, ins: dict(padding=tuple(a["padding"])))),
    OpDef("shake", (), _shake,
          "Shake-Shake merge: random convex weights forward, independent ones backward, "
          "0.5/0.5 in eval", min_inputs=2, max_inputs=2,
          lower=TorchModule("archspec.torch_ops.Shake",
                            paste=("archspec.torch_ops.ShakeFunction", "archspec.torch_ops.shake",
                                   "archspec.torch_ops.Shake")),
          fresh_output=True, kind="regularise"),
    # ---- ops-more group (issue 13): mean, prelu, upsample, conv_transpose
    OpDef("mean", (Field("dims", "dims", doc="dims of the batched tensor averaged over, as "
                         "torch's (0 is the batch, refused): [2, 3] pools (C, H, W) to (C)"),
                   Field("keepdim", "bool", False, "keep the averaged dims as size 1")),
          _mean, "mean over dims, as torch.mean: x.mean([2, 3]) is global average pooling",
          lower=TorchCall("torch.mean", kwargs=lambda a, ins: {"dim": list(a["dims"]),
                                                                 "keepdim": a["keepdim"]}),
          fresh_output=True, kind="pool", label=lambda a, i, o: f"mean {list(a['dims'])}"),
    OpDef("prelu", (Field("per_channel", "bool", False, "one learnt slope per channel (dim 1 "
                          "of the batched input) instead of one shared"),
                    Field("init", "float", 0.25, "initial slope for x < 0, as torch's")),
          _same("prelu"), "parametric ReLU: a learnt slope for x < 0",
          params=lambda a, i, o: _prelu_slopes(a, i),
          lower=TorchModule("torch.nn.PReLU", lambda a, ins: dict(
              num_parameters=_prelu_slopes(a, ins), init=a["init"])),
          kind="activation", tensors=lambda a, i: (("weight", (_prelu_slopes(a, i),)),),
          label=lambda a, i, o: "prelu per channel" if a.get("per_channel") else "prelu"),
    OpDef("upsample", (Field("mode", "choice", "nearest", "interpolation", ("nearest",
                                                                             "bilinear")),
                       Field("scale", "scale", None, "factor per axis, e.g. 2 or [2, 1]; "
                             "exactly one of scale and size"),
                       Field("size", "opt_pair", None, "output size [h, w]"),
                       Field("align_corners", "bool", None, "bilinear only: as torch's")),
          _upsample, "upsampling by a factor or to a size, as nn.Upsample",
          lower=TorchModule("torch.nn.Upsample", _upsample_kwargs), fresh_output=True,
          kind="pool", label=_upsample_label),
    OpDef("conv_transpose", (Field("out", "pos_int", doc="output channels"),
                             Field("kernel", "pair", doc="kernel size, an integer or [h, w]"),
                             Field("stride", "pair", 1, "upsampling step"),
                             Field("padding", "pair0", 0, "dilation·(kernel − 1) − padding "
                                   "zeros added on each side of the input"),
                             Field("output_padding", "pair0", 0, "extra rows / columns on one "
                                   "side of the output; below the stride or the dilation"),
                             Field("dilation", "pair", 1, "spacing between kernel taps"),
                             Field("groups", "pos_int", 1, "grouped; divides in and out "
                                   "channels"),
                             Field("bias", "bool", True, "add a learnt bias")),
          _conv_transpose, "2-D transposed convolution (a learnt upsampling)",
          params=lambda a, i, o: (i[0][0] * (a["out"] // a["groups"]) * a["kernel"][0]
                                  * a["kernel"][1] + (a["out"] if a["bias"] else 0)),
          macs=lambda a, i, o: (math.prod(i[0]) * (a["out"] // a["groups"]) * a["kernel"][0]
                                * a["kernel"][1]),
          lower=TorchModule("torch.nn.ConvTranspose2d", _conv_transpose_kwargs),
          fresh_output=True, init="conv", kind="conv", label=_conv_transpose_label,
          tensors=_weight_bias(lambda a, i: (i[0][0], a["out"] // a["groups"], *a["kernel"]),
                               lambda a: a["out"]),
          macs_doc="(out/groups)·kh·kw per input value"),
    # ---- layout ops (ConvNeXt, ShuffleNetV2): scale, layernorm, permute, slice
    OpDef("scale", (Field("init", "float", doc="the value every factor starts at (ConvNeXt's "
                          "layer_scale: 1e-6)"),),
          _scale, "a learnt per-channel factor multiplied in (ConvNeXt's layer_scale): a bare "
          "parameter named as the node, shape (C, 1, 1) on (C, H, W), (F) on a flat input",
          params=lambda a, i, o: i[0][0],
          lower=TorchParameter(_scale_shape, lambda a: a["init"]), fresh_output=True,
          tensors=lambda a, i: (("weight", _scale_shape(a, i)),),
          kind="other", label=lambda a, i, o: f"scale {label_channels(i)}, init {a['init']:g}"),
    OpDef("layernorm", (Field("over", "choice", "channels", "channels normalises each "
                              "position's channels of (C, H, W) (torchvision's LayerNorm2d), "
                              "last the last axis of any input (nn.LayerNorm)",
                              ("channels", "last")),
                        Field("eps", "float", 1e-5, "added to the variance (torch's default; "
                              "ConvNeXt gives 1e-6)"),
                        Field("affine", "bool", True, "learnt scale and shift (2 parameters "
                              "per normalised element)")),
          _layernorm, "layer normalisation over the channels or the last axis",
          params=lambda a, i, o: 2 * _layernorm_size(a, i) if a["affine"] else 0,
          lower=TorchModule("torch.nn.LayerNorm", _layernorm_kwargs, by_arg=(
              ("over", "channels", "torchvision.models.convnext.LayerNorm2d"),)),
          fresh_output=True, init="norm", kind="norm", tensors=_affine(_layernorm_size),
          label=lambda a, i, o: f"layernorm {a['over']}"),
    OpDef("permute", (Field("dims", "ints", doc="the batched tensor's axes in their new "
                            "order, the batch 0 first: [0, 2, 3, 1] for (C, H, W) → (H, W, C)"),),
          _permute, "reorders the axes (torchvision's Permute, as in ConvNeXt's blocks): a view",
          lower=TorchModule("torchvision.ops.Permute", lambda a, ins: dict(dims=list(a["dims"]))),
          kind="reshape", label=lambda a, i, o: f"permute {list(a['dims'])}"),
    OpDef("slice", (Field("start", "int", 0, "first channel taken"),
                    Field("stop", "int", None, "the channel after the last one taken; null: "
                          "to the end")),
          _slice, "channels start:stop of (C, H, W) or of a flat input (ShuffleNetV2's chunk "
          "is two slices): a view", lower=TorchCall("torch.narrow", kwargs=_narrow_kwargs),
          kind="reshape", label=lambda a, i, o: f"slice {a['start']}:"
          f"{'' if a['stop'] is None else a['stop']}"),
]}


def normalise_args(op: OpDef, given: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and coerce types; raise :class:`OpError` naming the first bad field."""
    out: dict[str, Any] = {}
    for f in op.fields:
        if f.name in given:
            out[f.name] = coerce(f, given[f.name])
        elif f.required:
            raise OpError(f"{op.name} is missing required argument '{f.name}'", None,
                          f"{f.name}: {f.doc}" if f.doc else None)
        else:
            out[f.name] = coerce(f, f.default) if f.default is not None else None
    return out


def op_counts(name: str, shapes: list[Shape], **args: Any) -> tuple[Shape, int, int]:
    """One op's output shape, parameters and MACs for per-sample input ``shapes``, with no
    spec and no torch: what a block's complexity is made of (as pycls' ``complexity``).

    >>> op_counts("conv", [(3, 32, 32)], out=16, kernel=3, padding=1, bias=False)
    ((16, 32, 32), 432, 442368)
    """
    d = OPS[name]
    a = normalise_args(d, args)
    out = d.infer(a, shapes)
    return out, d.params(a, shapes, out), d.macs(a, shapes, out)


def shape_str(s: Shape | None) -> str:
    """``(N, 16, 32, 32)``: a per-sample shape with its symbolic batch."""
    return "?" if s is None else _shape(s)


# ------------------------------------------------------------------ documentation
_TYPE_DOC = {"int": "int", "pos_int": "int ≥ 1", "pair": "int ≥ 1 or [h, w]",
             "pair0": "int ≥ 0 or [h, w]", "opt_pair": "int ≥ 1 or [h, w]",
             "padding": "int ≥ 0, [h, w], same or valid", "pad4": "int or [left, right, top, bottom]",
             "float": "number", "prob": "0 ≤ p ≤ 1",
             "bool": "true/false", "dim": "int", "choice": "word",
             "dims": "int or [int, ...]", "scale": "number > 0 or [h, w]",
             "ints": "[int, ...]"}
DOC_BEGIN = ("<!-- ops:begin: generated by python -c \"from archspec.ops import write_op_table; "
             "write_op_table('docs/spec-language.md')\" -->")
DOC_END = "<!-- ops:end -->"


def op_table_markdown() -> str:
    """The op reference of docs/spec-language.md, generated from :data:`OPS` so it stays true."""
    out = ["| op | inputs | fields (type, default) | torch | MACs | what |",
           "|----|--------|------------------------|-------|------|------|"]
    for op in (o for o in OPS.values() if o.name in BUILTIN_OPS):   # not ops from Python
        n = (str(op.min_inputs) if op.max_inputs == op.min_inputs else
             f"{op.min_inputs}+" if op.max_inputs is None else f"{op.min_inputs}–{op.max_inputs}")
        fields = []
        for f in op.fields:
            d = "**required**" if f.required else f"`{_default_doc(f.default)}`"
            kind = " or ".join(f.choices) if f.type == "choice" else _TYPE_DOC[f.type]
            fields.append(f"`{f.name}` ({kind}, {d})" +
                          (f": {f.doc}" if f.doc else ""))
        out.append(f"| `{op.name}` | {n} | {'<br>'.join(fields) or '–'} | `{op.torch}` | "
                   f"{op.macs_doc} | {op.doc} |")
    return "\n".join(out)


def _default_doc(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def write_op_table(path: str) -> None:
    """Regenerate the op table between the markers of ``path`` (docs/spec-language.md)."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"{head}{DOC_BEGIN}\n{op_table_markdown()}\n{DOC_END}{tail}")


# ------------------------------------------------------------ ops added from Python
#: The ops defined in this file. :func:`archspec.register_op` (archspec.plugins) adds
#: others to :data:`OPS` at run time; the docs table and the fuzz references cover these.
BUILTIN_OPS: frozenset[str] = frozenset(OPS)
