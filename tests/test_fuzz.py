"""Differential fuzz: random specs built from the op registry, archspec against torch.

Hypothesis draws small networks layer by layer (every op of :data:`archspec.ops.OPS`:
convs with random kernel, stride, padding, dilation and groups, pools in ceil mode,
negative pads, joins of branches by add, concat, shake and mul, ...). While it draws, an
independent reference runs each layer in eager torch (modules made here from torch's
own constructors and defaults, never from archspec's backend), so the next layer's
arguments can aim at the shape it really gets, including the edges where a layer
stops fitting. The first layer torch refuses ends the spec.

Then, for the spec as YAML text:

* torch ran it: archspec must accept it, and its static shape and parameter count of
  every layer (also as :func:`~archspec.shapes.check_graph` re-infers them), the
  summary's total, the built module's state_dict (keys and shapes), the shape of every
  module output seen by forward hooks, and the output values (with the reference's
  weights loaded strictly, float64, eval mode) must equal torch's; so must the output
  of the standalone source ``archspec emit`` writes; and a training step's backward
  through the built module must run;
* torch refused it: archspec must refuse it too, with every error located on the line
  of the layer that torch refused.

Where archspec is stricter than torch on purpose, the reference refuses as well
(:class:`Refused`, listed in ``DESIGN``): ``add`` and ``shake`` need equal shapes
(torch broadcasts, and an in-place ``add_`` cannot); ``permute`` keeps the batch first;
``slice`` takes no negative bounds (torch.narrow counts them from the end);
``pad`` and ``dropout2d`` need a (C, H, W) input
(torch pads the batch axis of a flat tensor, and only warns on 2-D dropout2d); no
tensor may be empty (torch lets a pad crop to 0, a conv have 0 channels); ``flatten``
and ``mean`` never take in the batch (dim 0), and ``mean`` leaves a per-sample dim;
image ops take (C, H, W) only and batchnorm / groupnorm also a flat input, never a
(C, L) one (torch reads an (N, C, L) or (N, F) tensor as one unbatched image).

Beside the fuzz, every small conv and pool window and every small pad of one axis is
compared with torch exhaustively (``test_*_exhaustively``): the size rules alone, in
seconds.

The default run is small and reproducible (derandomized, no example database). A long
run, e.g. 20,000 specs with their counts written to a JSON file::

    ARCHSPEC_FUZZ_EXAMPLES=20000 ARCHSPEC_FUZZ_REPORT=fuzz.json \\
        nice -n 10 python -m pytest -q -s tests/test_fuzz.py

``ARCHSPEC_FUZZ_SEED=N`` draws another (still reproducible) sequence instead of the
derandomized one. The counts (specs tried, accepted, refused by reason) are printed
(``-s``) and recorded as the test's user properties.
"""
from __future__ import annotations

import collections
import json
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

torch = pytest.importorskip("torch")
hypothesis = pytest.importorskip("hypothesis")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision.ops  # noqa: E402
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import archspec  # noqa: E402
from archspec.codegen import generate  # noqa: E402
from archspec.errors import SpecError  # noqa: E402
from archspec.ops import OPS  # noqa: E402
from archspec.shapes import check_graph  # noqa: E402

torch.set_num_threads(1)

EXAMPLES = int(os.environ.get("ARCHSPEC_FUZZ_EXAMPLES", "600"))
SEED = os.environ.get("ARCHSPEC_FUZZ_SEED")
REPORT = os.environ.get("ARCHSPEC_FUZZ_REPORT")
BATCH = 2
FIRST_LAYER_LINE = 5      # the YAML below: archspec, name, input, layers, then one per line

#: archspec's deliberate refusals of what torch would run (see the module docstring)
DESIGN = ("add needs equal shapes", "shake needs equal shapes",
          "pad needs (C, H, W)", "dropout2d needs (C, H, W)", "empty tensor",
          "mul needs inputs of one rank", "drop_path needs p below 1",
          "flatten keeps the batch", "rank-2 input", "image op on a flat input", "mean keeps the batch",
          "mean keeps a per-sample dim",
          "permute keeps the batch first", "slice needs non-negative bounds")

#: ops whose inputs archspec takes as per-sample (C, H, W) or flat (F) only: torch reads
#: an (N, C, L) tensor as one unbatched image (Conv2d, pools) or runs BatchNorm1d on it,
#: so a (C, L) input (from flatten's start / end) is refused by design ("rank-2 input")
_NO_RANK2 = ("conv", "conv_transpose", "upsample", "maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool",
             "batchnorm", "groupnorm", "channel_shuffle", "pad", "dropout2d")
#: ops that take (C, H, W) only: on an (N, F) tensor torch may read (H, W) unbatched
#: (AdaptiveAvgPool2d(1) turns (2, 1) into (1, 1)), archspec refuses the flat input
_IMAGE_ONLY = ("conv", "conv_transpose", "upsample", "maxpool", "avgpool",
               "adaptive_avgpool", "adaptive_maxpool", "channel_shuffle")


class Refused(Exception):
    """The reference refuses a layer that torch would run, where archspec does by design."""


# ------------------------------------------------------------------ the network
@dataclass
class Layer:
    name: str
    op: str
    args: dict[str, Any]
    inputs: tuple[str, ...]


@dataclass
class Net:
    """A drawn spec and the reference's result: per-layer shapes, params, state, output."""

    input_shape: tuple[int, ...]
    layers: list[Layer] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    x: Any = None
    y: Any = None
    failed: str | None = None       # the layer torch refused
    reason: str = ""

    def yaml(self) -> str:
        out = ["archspec: 1", "name: fuzz", f"input: {{shape: {list(self.input_shape)}}}",
               "layers:"]
        prev = "input"
        for lay in self.layers:
            items = [f"op: {lay.op}"] + [f"{k}: {_yaml_value(v)}" for k, v in lay.args.items()]
            if lay.inputs != (prev,):
                items.append(f"from: {_yaml_value(list(lay.inputs))}")
            out.append(f"  - {lay.name}: {{{', '.join(items)}}}")
            prev = lay.name
        return "\n".join(out) + "\n"

    def line_of(self, name: str) -> int:
        return FIRST_LAYER_LINE + [lay.name for lay in self.layers].index(name)

    def __repr__(self) -> str:   # what hypothesis prints for a falsifying example
        verdict = f"torch refuses {self.failed}: {self.reason}" if self.failed else "torch runs it"
        return f"# {verdict}\n{self.yaml()}"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:   # hypothesis's printer
        p.text(repr(self))


def _yaml_value(v: Any) -> str:
    """A flow-style YAML value; floats always with a point (YAML 1.1 reads 1e-05 as text)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6f}".rstrip("0")
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml_value(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)


# ------------------------------------------------------------- the torch reference
def _kw(a: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The given spec arguments under torch's keyword names; torch's defaults fill the rest."""
    return {names[k]: tuple(v) if isinstance(v, list) else v for k, v in a.items()}


_POOL = {"kernel": "kernel_size", "stride": "stride", "padding": "padding",
         "dilation": "dilation", "ceil_mode": "ceil_mode",
         "count_include_pad": "count_include_pad"}
_ACT = {"relu": nn.ReLU, "relu6": nn.ReLU6, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU,
        "gelu": nn.GELU, "silu": nn.SiLU, "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid,
        "softplus": nn.Softplus, "mish": nn.Mish, "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh, "identity": nn.Identity, "dropout": nn.Dropout,
        "dropout2d": nn.Dropout2d}
_ACT_ARGS = {"negative_slope": "negative_slope", "alpha": "alpha", "p": "p", "beta": "beta",
             "threshold": "threshold"}


def _module(op: str, a: dict[str, Any], x: Any) -> nn.Module | None:
    """The torch module of one layer, made from the actual input tensor ``x``."""
    if op == "conv":
        return nn.Conv2d(x.shape[1], **_kw(a, {"out": "out_channels", "kernel": "kernel_size",
                                                "stride": "stride", "padding": "padding",
                                                "dilation": "dilation", "groups": "groups",
                                                "bias": "bias"}))
    if op == "batchnorm":
        cls = nn.BatchNorm2d if x.dim() == 4 else nn.BatchNorm1d
        return cls(x.shape[1], **a)
    if op == "groupnorm":
        return nn.GroupNorm(a["groups"], x.shape[1], **_kw({k: v for k, v in a.items()
                                                            if k != "groups"},
                                                           {"eps": "eps", "affine": "affine"}))
    if op == "channel_shuffle":
        return nn.ChannelShuffle(a["groups"])
    if op == "conv_transpose":
        return nn.ConvTranspose2d(x.shape[1], **_kw(a, {
            "out": "out_channels", "kernel": "kernel_size", "stride": "stride",
            "padding": "padding", "output_padding": "output_padding", "dilation": "dilation",
            "groups": "groups", "bias": "bias"}))
    if op == "upsample":
        kw = _kw(a, {"scale": "scale_factor", "size": "size", "mode": "mode",
                     "align_corners": "align_corners"})
        return nn.Upsample(**kw)
    if op == "prelu":
        return nn.PReLU(x.shape[1] if a.get("per_channel") else 1, a.get("init", 0.25))
    if op == "layernorm":     # torchvision's ConvNeXt norm over channels, or torch's over the last axis
        kw = _kw({k: v for k, v in a.items() if k != "over"},
                 {"eps": "eps", "affine": "elementwise_affine"})
        if a.get("over", "channels") == "channels":
            return torchvision.models.convnext.LayerNorm2d(x.shape[1], **kw)
        return nn.LayerNorm(x.shape[-1], **kw)
    if op == "drop_path":
        if a["p"] == 1.0:
            raise Refused("drop_path needs p below 1")
        return torchvision.ops.StochasticDepth(a["p"], a.get("mode", "row"))
    if op == "permute":
        if sorted(a["dims"]) == list(range(x.dim())) and a["dims"][0] != 0:
            raise Refused("permute keeps the batch first")
        return torchvision.ops.Permute(list(a["dims"]))
    if op == "maxpool":
        return nn.MaxPool2d(**_kw(a, _POOL))
    if op == "avgpool":
        return nn.AvgPool2d(**_kw(a, _POOL))
    if op in ("adaptive_avgpool", "adaptive_maxpool"):
        cls = nn.AdaptiveAvgPool2d if op == "adaptive_avgpool" else nn.AdaptiveMaxPool2d
        return cls(**_kw(a, {"size": "output_size"}))
    if op in _ACT:
        if op == "dropout2d" and x.dim() != 4:
            raise Refused("dropout2d needs (C, H, W)")
        return _ACT[op](**_kw(a, _ACT_ARGS))
    if op == "linear":    # over the last axis, of any rank
        return nn.Linear(x.shape[-1], **_kw(a, {"out": "out_features", "bias": "bias"}))
    if op == "pad":
        if x.dim() != 4:
            raise Refused("pad needs (C, H, W)")
        p = a["padding"]
        return nn.ZeroPad2d(tuple(p) if isinstance(p, list) else p)
    return None


def _functional(op: str, a: dict[str, Any], xs: list[Any]) -> Any:
    """The layers that are torch functions, not modules."""
    if op == "flatten":
        start = a.get("start", 1)
        if start in (0, -xs[0].dim()):
            raise Refused("flatten keeps the batch")
        return torch.flatten(xs[0], start, a.get("end", -1))
    if op in ("softmax", "log_softmax"):
        fn = F.softmax if op == "softmax" else F.log_softmax
        return fn(xs[0], dim=a.get("dim", -1))   # archspec's default; torch's implicit dim is deprecated
    if op == "concat":
        return torch.cat(xs, 1)
    if op == "slice":     # torch.narrow refuses a stop beyond the channels or below start
        start, stop = a.get("start", 0), a.get("stop", xs[0].shape[1])
        if start < 0 or stop < 0:
            raise Refused("slice needs non-negative bounds")
        return torch.narrow(xs[0], 1, start, stop - start)
    if op in ("add", "shake"):
        if any(x.shape != xs[0].shape for x in xs):
            raise Refused(f"{op} needs equal shapes")
        return sum(xs[1:], xs[0]) if op == "add" else 0.5 * (xs[0] + xs[1])
    if op == "mean":
        dims = a["dims"] if isinstance(a["dims"], list) else [a["dims"]]
        if any(d % xs[0].dim() == 0 for d in dims if -xs[0].dim() <= d < xs[0].dim()):
            raise Refused("mean keeps the batch")
        y = torch.mean(xs[0], dim=dims, keepdim=a.get("keepdim", False))
        if y.dim() < 2:
            raise Refused("mean keeps a per-sample dim")
        return y
    if op == "mul":
        if any(x.dim() != xs[0].dim() for x in xs):
            raise Refused("mul needs inputs of one rank")
        y = xs[0]
        for x in xs[1:]:
            y = torch.mul(y, x)
        return y
    raise AssertionError(f"the fuzz has no reference for op {op!r}")


def _randomise(m: nn.Module, gen: Any) -> None:
    """Non-trivial BatchNorm statistics, so a mis-wired eps or momentum shows in the output."""
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        with torch.no_grad():
            c = m.num_features
            if m.affine:
                m.weight.copy_(torch.rand(c, generator=gen, dtype=torch.float64) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.1)
            if m.track_running_stats:
                m.running_mean.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen, dtype=torch.float64) + 0.5)
    if isinstance(m, nn.LayerNorm) and m.elementwise_affine:
        with torch.no_grad():
            m.weight.copy_(torch.rand(m.weight.shape, generator=gen, dtype=torch.float64) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=gen, dtype=torch.float64) * 0.1)
    if isinstance(m, nn.GroupNorm) and m.affine:
        with torch.no_grad():
            c = m.num_channels
            m.weight.copy_(torch.rand(c, generator=gen, dtype=torch.float64) + 0.5)
            m.bias.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.1)


class Reference:
    """Runs a network in eager torch one layer at a time, as the layers are drawn."""

    def __init__(self, net: Net, seed: int):
        self.net = net
        self.gen = torch.Generator().manual_seed(seed)
        net.x = torch.randn(BATCH, *net.input_shape, generator=self.gen, dtype=torch.float64)
        self.env: dict[str, Any] = {"input": net.x}

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.env[name].shape[1:])

    def add(self, lay: Layer) -> bool:
        """Append and run ``lay``; False (and the net is finished) when torch refuses it."""
        net = self.net
        net.layers.append(lay)
        xs = [self.env[i] for i in lay.inputs]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y = self._run(lay, xs)
            if y.numel() == 0:
                raise Refused("empty tensor")
        except Exception as e:   # noqa: BLE001 - any refusal by torch is an outcome here
            assert not isinstance(e, Refused) or str(e) in DESIGN, f"undocumented: {e}"
            net.failed, net.reason = lay.name, f"{type(e).__name__}: {str(e).splitlines()[0]}"
            return False
        self.env[lay.name] = net.y = y
        net.shapes[lay.name] = tuple(y.shape[1:])
        return True

    def _run(self, lay: Layer, xs: list[Any]) -> Any:
        if lay.op in _NO_RANK2 and xs[0].dim() == 3:
            raise Refused("rank-2 input")
        if lay.op in _IMAGE_ONLY and xs[0].dim() == 2:
            raise Refused("image op on a flat input")
        if lay.op == "scale":
            return self._scale(lay, xs[0])
        mod = _module(lay.op, lay.args, xs[0])
        if mod is None:
            return _functional(lay.op, lay.args, xs)
        mod = mod.double().eval()
        _randomise(mod, self.gen)
        with torch.no_grad():
            y = mod(*xs)
        self.net.params[lay.name] = sum(p.numel() for p in mod.parameters())
        self.net.state.update({f"{lay.name}.{k}": v for k, v in mod.state_dict().items()})
        return y


    def _scale(self, lay: Layer, x: Any) -> Any:
        """ConvNeXt's layer_scale, as torchvision's CNBlock: a bare parameter of shape
        (C, 1, 1) (or (F,) on a flat input) times the input, random (not its init), and
        named as the layer itself in the state_dict."""
        shape = (x.shape[1], 1, 1) if x.dim() == 4 else (x.shape[1],)
        p = torch.rand(shape, generator=self.gen, dtype=torch.float64) + 0.5
        self.net.params[lay.name] = p.numel()
        self.net.state[lay.name] = p
        return p * x


# ------------------------------------------------------------------ the strategy
_IMAGE_OPS = (("conv",) * 8 + ("maxpool", "avgpool") * 3 + ("pad",) * 3 + ("batchnorm",) * 2
              + ("groupnorm",) * 2 + ("channel_shuffle",) * 2 + ("drop_path", "adaptive_avgpool", "adaptive_maxpool") * 2 + ("flatten", "softmax", "log_softmax") + ("mean", "prelu", "upsample", "conv_transpose") * 2
              + ("scale",) + ("layernorm",) * 2 + ("permute",) * 2 + ("linear",) * 2 + ("slice",) * 2
              + tuple(_ACT))
_FLAT_OPS = ("linear",) * 4 + ("batchnorm", "groupnorm", "drop_path", "softmax", "log_softmax", "flatten", "mean", "prelu", "scale", "layernorm", "permute", "slice") + tuple(
    op for op in _ACT if op != "dropout2d")
_FLOATS = {"negative_slope": (0.01, 0.2, 0.5, 0.0, -0.2), "alpha": (0.5, 1.0, 1.5, 0.0, -0.5),
           "p": (0.0, 0.1, 0.5, 1.0, 1.5), "eps": (1e-05, 0.001, 0.01),
           "momentum": (0.1, 0.01, 0.5), "beta": (1.0, 0.5, 2.0),
           "threshold": (20.0, 1.0, 0.0)}


class Drawer:
    """Draws the layers of one network, each aimed at the shape torch gives its input."""

    def __init__(self, draw: Callable, net: Net, ref: Reference):
        self.draw, self.net, self.ref = draw, net, ref

    def int(self, lo: int, hi: int, wild: tuple[int, ...] = ()) -> int:
        """An int in [lo, hi]; one time in 50 one of ``wild`` (an out-of-range value)."""
        if wild and self.maybe(50):
            return self.draw(st.sampled_from(wild))
        return self.draw(st.integers(lo, max(lo, hi)))

    def maybe(self, chance: int = 2) -> bool:
        """True one time in ``chance``: the top value, as hypothesis favours the bottom one."""
        return self.draw(st.integers(1, chance)) == chance

    def hw(self, shape: tuple[int, ...]) -> tuple[int, int]:
        return (shape[1], shape[2]) if len(shape) == 3 else (1, 1)

    def axes(self, fn: Callable[[int, int], Any], shape: tuple[int, ...]) -> Any:
        """``fn(size, axis)`` for height and width: one int when both agree (square), or a pair."""
        h, w = self.hw(shape)
        if self.maybe():
            return fn(min(h, w), 0)
        return [fn(h, 0), fn(w, 1)]

    def conv(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """Groups from the divisors of the channels (or not); dilation, padding and kernel
        drawn per axis so that the dilated kernel spans up to one more than the padded input."""
        c, a = shape[0], {}
        r = self.int(0, 9)
        groups = (self.draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
                  if r >= 7 else self.int(1, 4, (0,)) if r == 6 else 1)
        a["out"] = groups * self.int(1, 3) if r >= 7 and groups > 1 else self.int(1, 8, (0,))
        dil = self.axes(lambda n, i: self.int(1, 3, (0,)), shape) if self.maybe(4) else 1
        r = self.int(0, 19)
        pad: Any = "same" if r >= 18 else "valid" if r == 17 else 0
        if r < 8:
            pad = self.axes(lambda n, i: self.int(0, 3, (-1,)), shape)
        pads, dils = (pad if isinstance(pad, list) else [pad] * 2), (dil if isinstance(dil, list) else [dil] * 2)

        def kernel(n: int, i: int) -> int:
            p = pads[i] if isinstance(pads[i], int) else 2
            return self.int(1, min(7, (n + 2 * max(p, 0)) // max(dils[i], 1) + 1), (0,))
        a["kernel"] = self.axes(kernel, shape)
        if pad != 0:
            a["padding"] = pad
        if (pad != "same" or self.maybe(5)) and self.maybe():
            a["stride"] = self.axes(lambda n, i: self.int(1, 3, (0,)), shape)
        if dil != 1:
            a["dilation"] = dil
        if groups != 1:
            a["groups"] = groups
        if self.maybe():
            a["bias"] = self.draw(st.booleans())
        return a

    def conv_transpose(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """Small kernels and strides; padding up to the kernel (sometimes past it, an
        empty output); output_padding up to the stride (at it, refused unless dilated)."""
        c = shape[0]
        groups = (self.draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
                  if self.maybe(4) else 1)
        a: dict[str, Any] = {"out": groups * self.int(1, 3, (0,)),
                             "kernel": self.axes(lambda n, i: self.int(1, 4, (0,)), shape)}
        if groups > 1 or self.maybe(10):
            a["groups"] = groups if not self.maybe(10) else self.int(2, 4)
        stride = self.int(1, 3, (0,))
        if stride != 1:
            a["stride"] = stride
        if self.maybe():
            a["padding"] = self.int(0, 3, (-1,))
        if self.maybe(3):
            a["output_padding"] = self.int(0, max(stride, 1))
        if self.maybe(4):
            a["dilation"] = self.int(1, 2, (0,))
        if self.maybe():
            a["bias"] = self.draw(st.booleans())
        return a

    def pool(self, op: str, shape: tuple[int, ...]) -> dict[str, Any]:
        """Kernel up to two more than the input, padding at most half of it (one time in
        ten one more), stride often left to default to the kernel, ceil_mode often."""
        def window(n: int, i: int) -> tuple[int, int]:
            k = self.int(1, min(5, n + 2), (0,))
            return k, self.int(0, k // 2 + (1 if self.maybe(10) else 0), (-1,))
        kp = self.axes(window, shape)
        a: dict[str, Any] = {"kernel": [x[0] for x in kp] if isinstance(kp, list) else kp[0]}
        if self.maybe():
            a["padding"] = [x[1] for x in kp] if isinstance(kp, list) else kp[1]
        if self.maybe():
            a["stride"] = self.axes(lambda n, i: self.int(1, 3, (0,)), shape)
        if op == "maxpool" and self.maybe(4):
            a["dilation"] = self.axes(lambda n, i: self.int(1, 2, (0,)), shape)
        if self.maybe():
            a["ceil_mode"] = not self.maybe(4)
        if op == "avgpool" and self.maybe():
            a["count_include_pad"] = self.draw(st.booleans())
        return a

    def args(self, op: str, shape: tuple[int, ...]) -> dict[str, Any]:
        """The arguments of one ``op`` reading ``shape``; optional fields only sometimes."""
        if op == "conv":
            return self.conv(shape)
        if op in ("maxpool", "avgpool"):
            return self.pool(op, shape)
        if op == "pad":
            if self.maybe():
                return {"padding": self.int(-2, 2)}
            return {"padding": [self.int(-3, 3) for _ in range(4)]}
        if op in ("adaptive_avgpool", "adaptive_maxpool"):
            return {"size": self.axes(lambda n, i: self.int(1, 4, (0,)), shape)}
        if op == "linear":
            a: dict[str, Any] = {"out": self.int(1, 8, (0,))}
            if self.maybe():
                a["bias"] = self.draw(st.booleans())
            return a
        if op in ("softmax", "log_softmax"):
            return {"dim": self.int(-4, 3)} if self.maybe() else {}
        if op == "mean":
            r = len(shape) + 1     # distinct per-sample dims, some from the end; rarely wild
            dims = self.draw(st.permutations(range(1, r)))[:self.int(1, max(1, r - 2))]
            dims = [d - r if self.maybe(3) else d for d in dims]
            if self.maybe(10):
                dims.append(self.draw(st.sampled_from((0, -r, r, -r - 1, dims[0]))))
            a = {"dims": dims[0] if len(dims) == 1 and self.maybe() else dims}
            if r == 2 or self.maybe():
                a["keepdim"] = not self.maybe(4) if r == 2 else self.draw(st.booleans())
            return a
        if op == "flatten":
            if not self.maybe(3):
                return {}
            r = len(shape) + 1
            return {k: self.int(-r, r - 1, (r, -r - 1)) for k in ("start", "end")
                    if self.maybe()}
        if op == "batchnorm":
            a = {k: self.draw(st.sampled_from(_FLOATS[k])) for k in ("eps", "momentum")
                 if self.maybe()}
            a.update({k: self.draw(st.booleans()) for k in ("affine", "track_running_stats")
                      if self.maybe()})
            return a
        if op in ("groupnorm", "channel_shuffle"):
            c = shape[0]
            a = {"groups": self.draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
                 if not self.maybe(8) else self.int(1, c + 2, (0,))}
            if op == "channel_shuffle":
                return a
            if self.maybe():
                a["eps"] = self.draw(st.sampled_from(_FLOATS["eps"]))
            if self.maybe():
                a["affine"] = self.draw(st.booleans())
            return a
        if op == "drop_path":
            a = {"p": self.draw(st.sampled_from(_FLOATS["p"]))}
            if self.maybe():
                a["mode"] = self.draw(st.sampled_from(("row", "batch")))
            return a
        if op == "conv_transpose":
            return self.conv_transpose(shape)
        if op == "upsample":
            a = {"mode": self.draw(st.sampled_from(("nearest", "bilinear")))} \
                if self.maybe() else {}
            r = self.int(0, 19)
            if r < 12 or r == 19:       # scale; with size too one time in 20; neither rarely
                a["scale"] = self.draw(st.sampled_from((2, 0.5, 1.5, [2, 1], [0.7, 3], 0.25)))
            if r >= 12:
                a["size"] = self.axes(lambda n, i: self.int(1, 2 * n + 1, (0,)), shape)
            if r == 18:
                a.pop("size")
            if self.maybe(2 if a.get("mode") == "bilinear" else 15):   # nearest: refused
                a["align_corners"] = self.draw(st.booleans())
            return a
        if op == "prelu":
            a = {"per_channel": self.draw(st.booleans())} if self.maybe() else {}
            if self.maybe():
                a["init"] = self.draw(st.sampled_from((0.25, 0.1, -0.5, 0.0)))
            return a
        if op == "layernorm":
            a = {"over": self.draw(st.sampled_from(("channels", "last")))} if not \
                self.maybe(4) else {}
            if self.maybe():
                a["eps"] = self.draw(st.sampled_from(_FLOATS["eps"]))
            if self.maybe():
                a["affine"] = self.draw(st.booleans())
            return a
        if op == "permute":     # the batch first, mostly; now and then a wrong list
            rest = list(range(1, len(shape) + 1))
            dims = [0] + self.draw(st.permutations(rest))
            if self.maybe(10):
                dims = self.draw(st.sampled_from((dims[::-1], dims[:-1], dims + [0],
                                                  [0] + [d + 1 for d in rest])))
            return {"dims": dims}
        if op == "slice":       # within the channels mostly, now and then past them or empty
            c = shape[0]
            start = self.int(0, c - 1, (-1, c))
            a = {"start": start} if start or self.maybe() else {}
            if self.maybe(3):
                a["stop"] = self.int(start + 1, c, (start, c + 1, -1))
            return a
        if op == "scale":
            return {"init": self.draw(st.sampled_from((1e-6, 1.0, -0.5)))}
        if op == "softplus":
            return {k: self.draw(st.sampled_from(_FLOATS[k])) for k in ("beta", "threshold")
                    if self.maybe()}
        keys = {"leaky_relu": "negative_slope", "elu": "alpha", "dropout": "p", "dropout2d": "p"}
        if op in keys and self.maybe():
            return {keys[op]: self.draw(st.sampled_from(_FLOATS[keys[op]]))}
        return {}

    def name(self) -> str:
        return f"l{len(self.net.layers)}"

    def layer(self, src: str) -> bool:
        """One op reading ``src``: image ops on images, flat ones on flat inputs, mostly."""
        shape = self.ref.shape(src)
        menu = _IMAGE_OPS if (len(shape) == 3) != self.maybe(20) else _FLAT_OPS
        op = self.draw(st.sampled_from(menu))
        return self.ref.add(Layer(self.name(), op, self.args(op, shape), (src,)))

    def keeper(self, src: str) -> bool:
        """A branch layer that keeps its input's shape most of the time (for add and shake)."""
        shape = self.ref.shape(src)
        r = self.int(0, 9)
        if r < 2:
            return self.layer(src)
        if r < 4 or len(shape) == 1 and r < 7:
            op = self.draw(st.sampled_from(("batchnorm", "relu", "tanh", "identity")))
            return self.ref.add(Layer(self.name(), op, self.args(op, shape), (src,)))
        out = self.int(1, 8) if self.maybe(4) else shape[0]
        if len(shape) == 1:
            return self.ref.add(Layer(self.name(), "linear", {"out": out}, (src,)))
        if r == 9:
            a = {"kernel": 3, "stride": 1, "padding": 1}
            return self.ref.add(Layer(self.name(), "maxpool", a, (src,)))
        k, d = self.draw(st.sampled_from((1, 3, 5))), self.int(1, 2)
        a = {"out": out, "kernel": k, "padding": d * (k // 2)} | ({"dilation": d} if d > 1 else {})
        return self.ref.add(Layer(self.name(), "conv", a, (src,)))

    def join(self, cur: str) -> tuple[bool, str]:
        """A branch from an earlier layer (0-2 layers), joined with ``cur`` by add, concat,
        shake or mul (its branch sometimes pooled to (C, 1, 1), a gate): chosen to fit the
        two shapes, mostly."""
        earlier = ["input"] + [lay.name for lay in self.net.layers]
        end = src = self.draw(st.sampled_from(earlier))
        for _ in range(self.int(0, 2)):
            if not self.keeper(end):
                return False, ""
            end = self.net.layers[-1].name
        if len(self.ref.shape(end)) == 3 and self.maybe(6):   # an SE-style gate for mul
            if not self.ref.add(Layer(self.name(), "adaptive_avgpool", {"size": 1}, (end,))):
                return False, ""
            end = self.net.layers[-1].name
        a, b = self.ref.shape(cur), self.ref.shape(end)
        if a == b or self.maybe(6):
            op = self.draw(st.sampled_from(("add", "concat", "shake", "mul")))
        elif len(a) == len(b) and a[0] == b[0] and b[1:] == (1, 1) and not self.maybe(5):
            op = "mul"
        elif len(a) == len(b) and a[1:] == b[1:] and not self.maybe(5):
            op = "concat"
        else:
            op = self.draw(st.sampled_from(("add", "concat", "shake", "mul")))
        inputs = [cur, end]
        if op != "shake" and self.maybe(5):
            inputs.append(self.draw(st.sampled_from(earlier)))
        name = self.name()
        return self.ref.add(Layer(name, op, {}, tuple(inputs))), name

    def head(self, cur: str) -> None:
        """A classifier head, sometimes: global pool, flatten and linear."""
        ops: list[tuple[str, dict[str, Any]]] = [("linear", {"out": self.int(1, 10)})]
        if len(self.ref.shape(cur)) == 3:
            ops.insert(0, ("flatten", {}))
            if self.maybe():
                ops.insert(0, ("adaptive_avgpool", {"size": 1}))
        for op, a in ops:
            if not self.ref.add(Layer(self.name(), op, a, (cur,))):
                return
            cur = self.net.layers[-1].name


@st.composite
def nets(draw: Callable) -> Net:
    """A random network of 1-8 steps (a layer, or a branch and its join), then maybe a head."""
    if draw(st.integers(0, 9)) == 9:
        shape: tuple[int, ...] = (draw(st.integers(1, 48)),)
    else:
        big = 40 if draw(st.integers(1, 8)) == 8 else 12
        shape = (draw(st.integers(1, 6)), draw(st.integers(1, big)), draw(st.integers(1, big)))
    net = Net(shape)
    d = Drawer(draw, net, Reference(net, draw(st.integers(0, 2**31 - 1))))
    cur = "input"
    for _ in range(draw(st.integers(1, 8))):
        if d.maybe(4):
            ok, cur = d.join(cur)
        else:
            ok = d.layer(cur)
            cur = net.layers[-1].name
        if not ok:
            return net
    if d.maybe():
        d.head(cur)
    return net


# ------------------------------------------------------------------- the property
COUNTS: collections.Counter = collections.Counter()


def compile_text(text: str) -> Any:
    """archspec's answer for a spec text: its graph, or the SpecError it refuses it with."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fuzz.yaml")
        Path(path).write_text(text, encoding="utf-8")
        try:
            return archspec.compile_graph(archspec.load_spec(path)), path
        except SpecError as e:
            return e, path


def check_refused(net: Net, err: SpecError, path: str) -> None:
    """torch refused the last layer: archspec refuses it, located on that layer's line."""
    where = {(e.loc.path, e.loc.line) for e in err.errors}
    assert where == {(path, net.line_of(net.failed))}, \
        f"archspec's errors are not all on {net.failed}'s line:\n{err}\n{net!r}"
    kind = net.reason if net.reason.startswith("Refused") else \
        re.sub(r"-?\d+", "N", net.reason)[:70]      # torch's messages, sizes left out
    COUNTS[f"refused: {kind}"] += 1
    event(f"refused: {kind}")


def check_accepted(net: Net, g: Any) -> None:
    """torch ran it: every static shape and count equals torch's, and so does the module."""
    for lay in net.layers:
        node = g.nodes[lay.name]
        assert node["shape"] == net.shapes[lay.name], (lay.name, node["shape"], net)
        assert node["params"] == net.params.get(lay.name, 0), (lay.name, node["params"], net)
    check_graph(g)     # the stand-alone re-inference agrees with the compiler
    summary = archspec.summarize(g)
    assert summary.params == sum(net.params.values())
    assert summary.outputs[0]["shape"] == net.shapes[net.layers[-1].name]
    module = archspec.build_module(g).double().eval()
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in net.state.items()}, net
    module.load_state_dict(net.state, strict=True)
    seen: dict[str, tuple[int, ...]] = {}
    for name, mod in module.named_modules():
        if name in g.nodes:
            mod.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.shape))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = module(net.x)
    assert all(tuple(s) == (BATCH, *g.nodes[n]["shape"]) for n, s in seen.items()), seen
    assert y.shape == net.y.shape and torch.allclose(y, net.y, rtol=1e-9, atol=1e-9,
                                                     equal_nan=True), net
    check_trains(module, net)
    check_generated(g, net)
    COUNTS["accepted"] += 1
    COUNTS.update(f"op {lay.op}" for lay in net.layers)
    event("accepted")


def check_generated(g: Any, net: Net) -> None:
    """``archspec emit``'s standalone source builds the same module: the reference's
    weights load strictly and give the same output."""
    ns: dict[str, Any] = {"__name__": "generated"}
    exec(compile(generate(g), "<generated>", "exec"), ns)   # noqa: S102 - archspec's own output
    model = ns["Model"]().double().eval()
    model.load_state_dict(net.state, strict=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = model(net.x)
    assert torch.allclose(y, net.y, rtol=1e-9, atol=1e-9, equal_nan=True), net


def check_trains(module: Any, net: Net) -> None:
    """One training step's forward and backward runs, as it does in torch: an in-place
    activation must not break autograd (torch refuses in-place leaky_relu or elu
    backward with a negative slope)."""
    module.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = module(net.x.clone().requires_grad_(True))
        y.sum().backward()


def check_net(net: Net) -> None:
    """The property: archspec accepts iff torch runs it, and then agrees on every number."""
    COUNTS["specs"] += 1
    got, path = compile_text(net.yaml())
    if net.failed is None:
        assert not isinstance(got, SpecError), f"archspec refuses what torch runs:\n{got}\n{net!r}"
        check_accepted(net, got)
    else:
        assert isinstance(got, SpecError), f"archspec accepts what torch refuses:\n{net!r}"
        check_refused(net, got, path)


def _settings() -> Callable:
    kw: dict[str, Any] = dict(max_examples=EXAMPLES, deadline=None, database=None,
                              suppress_health_check=list(HealthCheck), print_blob=True)
    if SEED is None:
        kw["derandomize"] = True
    return settings(**kw)


def test_fuzz_archspec_against_torch(record_property: Callable) -> None:
    """Run the property, then report the counts and check that both verdicts and every op
    of the registry were exercised (an op added to OPS without a reference here fails)."""
    COUNTS.clear()
    prop = _settings()(given(nets())(check_net))
    if SEED is not None:
        prop = hypothesis.seed(int(SEED))(prop)
    prop()
    counts = dict(sorted(COUNTS.items()))
    for k, v in counts.items():
        record_property(k, v)
    print(f"\nfuzz: {counts['specs']} specs, {counts.get('accepted', 0)} accepted, "
          f"{counts['specs'] - counts.get('accepted', 0)} refused; disagreements: 0")
    print(json.dumps(counts, indent=1))
    if REPORT:
        Path(REPORT).write_text(json.dumps(counts, indent=1) + "\n", encoding="utf-8")
    assert counts.get("accepted", 0) >= 0.3 * counts["specs"], counts
    assert counts["specs"] - counts.get("accepted", 0) >= 0.1 * counts["specs"], counts
    missing = sorted(op for op in OPS if f"op {op}" not in counts)
    assert not missing, f"ops never in an accepted spec: {missing}"


# ----------------------------------------------------- exhaustive small-range rules
def _archspec_size(op: str, n: int, **args: Any) -> tuple[int, ...] | None:
    from archspec.ops import OpError, normalise_args
    d = OPS[op]
    try:
        return d.infer(normalise_args(d, args), [(1, n, n)])[1:]
    except OpError:
        return None


def _torch_size(make: Callable[[], nn.Module], n: int) -> tuple[int, ...] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = make()(torch.zeros(1, 1, n, n))
    except (RuntimeError, ValueError):
        return None
    return tuple(y.shape[2:]) if y.numel() else None    # archspec refuses empty tensors


def test_window_sizes_equal_torch_exhaustively() -> None:
    """Every small conv and pool window (size, kernel, stride, padding, dilation, ceil
    mode): archspec's size is torch's, and archspec refuses exactly what torch refuses."""
    grid = [(n, k, s, p) for n in range(1, 10) for k in range(1, 6) for s in range(1, 4)
            for p in range(4)]
    for (n, k, s, p), d, ceil in ((g, d, c) for g in grid for d in (1, 2, 3) for c in (0, 1)):
        kw = dict(kernel=k, stride=s, padding=p)
        assert _archspec_size("maxpool", n, **kw, dilation=d, ceil_mode=bool(ceil)) == \
            _torch_size(lambda: nn.MaxPool2d(k, s, p, d, ceil_mode=bool(ceil)), n), (n, kw, d, ceil)
        if d == 1:
            assert _archspec_size("avgpool", n, **kw, ceil_mode=bool(ceil)) == \
                _torch_size(lambda: nn.AvgPool2d(k, s, p, ceil_mode=bool(ceil)), n), (n, kw, ceil)
        if not ceil:
            assert _archspec_size("conv", n, out=1, **kw, dilation=d) == \
                _torch_size(lambda: nn.Conv2d(1, 1, k, s, p, d), n), (n, kw, d)


def test_pad_sizes_equal_torch_exhaustively() -> None:
    """Every small pad or crop of one axis: archspec's size is torch's, refusals alike."""
    for n in range(1, 5):
        for top in range(-5, 3):
            for bottom in range(-5, 3):
                pad = [0, 0, top, bottom]
                got = _archspec_size("pad", n, padding=pad)
                want = _torch_size(lambda: nn.ZeroPad2d(tuple(pad)), n)
                assert got == want, (n, pad, got, want)
