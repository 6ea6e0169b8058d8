"""The closed registry of primitive ops: fields, shape rule, parameter and MAC counts.

Every op knows its own complexity without tensors (as in pycls): given its
arguments and input shapes (per sample, batch left symbolic) it returns its output
shape, parameter count and multiply-accumulates. The graph stage uses the shape
rules while it expands a spec (a block's ``when: in_channels != out`` needs them);
the shapes stage totals and reports; the torch backend maps each op to a module.

MACs count convolutions and linear layers (the convention of torchvision's GFLOPS
column); element-wise ops, pooling and normalisation count 0.

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
    type: str       # int | pos_int | pair | pair0 | padding | pad4 | float | prob | bool | dim | opt_pair | choice
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
    """

    cls: str
    kwargs: Callable[[dict, list[Shape]], dict[str, Any]] = _no_kwargs
    by_rank: tuple[tuple[int, str], ...] = ()
    paste: tuple[str, ...] = ()

    def class_for(self, ins: list[Shape]) -> str:
        """The dotted class path for these input shapes."""
        return dict(self.by_rank).get(len(ins[0]) if ins else -1, self.cls)

    @property
    def classes(self) -> tuple[str, ...]:
        """Every class this op can become (init_weights recognises them by type)."""
        return (self.cls, *(c for _, c in self.by_rank))


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
    ``passes_fresh``: its output is either its input itself (dropout and stochastic
    depth in eval, or at p = 0) or a new tensor its backward does not read, so it is
    free to overwrite when its input is (torchvision's ``result += input`` after
    StochasticDepth).
    """

    name: str
    fields: tuple[Field, ...]
    infer: Callable[[dict, list[Shape]], Shape]
    doc: str
    min_inputs: int = 1
    max_inputs: int | None = 1
    params: Callable[[dict, list[Shape], Shape], int] = lambda a, i, o: 0
    macs: Callable[[dict, list[Shape], Shape], int] = lambda a, i, o: 0
    lower: TorchModule | TorchCall | None = None
    inplace: Callable[[dict], bool] | None = None
    fresh_output: bool = False
    init: str | None = None
    kind: str = "other"
    label: Callable[[dict, Shape | None, Shape | None], str] | None = None
    head: str = "logits"
    shortcut_join: bool = False
    passes_fresh: bool = False

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
    if t == "pair":
        return _pair(v, n, 1)
    if t == "pair0":
        return _pair(v, n, 0)
    if t == "opt_pair":
        return None if v is None else _pair(v, n, 1)
    if t == "padding":
        if v in ("same", "valid"):
            return v
        return _pair(v, n, 0)
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
    _one(shapes, 1, "linear")
    return (a["out"],)


def _flatten(a: dict, shapes: list[Shape]) -> Shape:
    return (math.prod(shapes[0]),)


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
          kind="conv", label=_conv_label),
    OpDef("batchnorm", (Field("eps", "float", 1e-5, "added to the variance"),
                        Field("momentum", "float", 0.1, "running-statistics update rate"),
                        Field("affine", "bool", True, "learnt scale and shift (2·C parameters)"),
                        Field("track_running_stats", "bool", True,
                              "keep running mean and variance for evaluation")),
          _batchnorm, "batch normalisation over channels (or features)",
          params=lambda a, i, o: 2 * i[0][0] if a["affine"] else 0,
          lower=TorchModule("torch.nn.BatchNorm2d", _bn_kwargs,
                            by_rank=((1, "torch.nn.BatchNorm1d"),)),
          fresh_output=True, init="norm", kind="norm",
          label=lambda a, i, o: f"batchnorm {label_channels(o)}"),
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
          fresh_output=True, init="norm", kind="norm",
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
          _linear, "fully connected layer",
          params=lambda a, i, o: i[0][0] * a["out"] + (a["out"] if a["bias"] else 0),
          macs=lambda a, i, o: i[0][0] * a["out"],
          lower=TorchModule("torch.nn.Linear", lambda a, ins: dict(
              in_features=ins[0][0], out_features=a["out"], bias=a["bias"])),
          fresh_output=True, init="linear", kind="linear",
          label=lambda a, i, o: f"linear {label_channels(i)}→{a['out']}"),
    OpDef("flatten", (), _flatten, "flattens (C, H, W) to (C·H·W)",
          lower=TorchCall("torch.flatten", args=(1,)), kind="reshape"),
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


def shape_str(s: Shape | None) -> str:
    """``(N, 16, 32, 32)``: a per-sample shape with its symbolic batch."""
    return "?" if s is None else _shape(s)


# ------------------------------------------------------------------ documentation
_TYPE_DOC = {"int": "int", "pos_int": "int ≥ 1", "pair": "int ≥ 1 or [h, w]",
             "pair0": "int ≥ 0 or [h, w]", "opt_pair": "int ≥ 1 or [h, w]",
             "padding": "int ≥ 0, [h, w], same or valid", "pad4": "int or [left, right, top, bottom]",
             "float": "number", "prob": "0 ≤ p ≤ 1",
             "bool": "true/false", "dim": "int", "choice": "word"}
DOC_BEGIN = ("<!-- ops:begin: generated by python -c \"from archspec.ops import write_op_table; "
             "write_op_table('docs/spec-language.md')\" -->")
DOC_END = "<!-- ops:end -->"


def op_table_markdown() -> str:
    """The op reference of docs/spec-language.md, generated from :data:`OPS` so it stays true."""
    out = ["| op | inputs | fields (type, default) | torch | what |",
           "|----|--------|------------------------|-------|------|"]
    for op in OPS.values():
        n = (str(op.min_inputs) if op.max_inputs == op.min_inputs else
             f"{op.min_inputs}+" if op.max_inputs is None else f"{op.min_inputs}–{op.max_inputs}")
        fields = []
        for f in op.fields:
            d = "**required**" if f.required else f"`{_default_doc(f.default)}`"
            kind = " or ".join(f.choices) if f.type == "choice" else _TYPE_DOC[f.type]
            fields.append(f"`{f.name}` ({kind}, {d})" +
                          (f": {f.doc}" if f.doc else ""))
        out.append(f"| `{op.name}` | {n} | {'<br>'.join(fields) or '–'} | `{op.torch}` | "
                   f"{op.doc} |")
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

