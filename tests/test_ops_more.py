"""The ops of issue 13's second group: flatten's start / end, mean, prelu, upsample and
conv_transpose. Shape rules and counts against torch's own numbers, and every bad
argument refused as an :class:`~archspec.ops.OpError` that the graph stage locates.

(Their torch lowering, standalone source and diagram are covered by test_every_op.py,
their shape rules against random torch layers by test_fuzz.py.)
"""
from __future__ import annotations

import pytest

import archspec
from archspec.errors import SpecError
from archspec.ops import OPS, OpError, normalise_args, op_counts


infer = op_counts     # (shape, params, MACs) of one op


@pytest.mark.parametrize("op, shapes, args, want", [
    ("flatten", [(64, 4, 4)], {}, ((1024,), 0, 0)),
    ("flatten", [(64, 4, 5)], dict(start=2), ((64, 20), 0, 0)),
    ("flatten", [(64, 4, 5)], dict(start=1, end=2), ((256, 5), 0, 0)),
    ("flatten", [(64, 4, 5)], dict(start=-2, end=-1), ((64, 20), 0, 0)),
    ("flatten", [(64, 4, 5)], dict(start=3, end=3), ((64, 4, 5), 0, 0)),
    ("flatten", [(12,)], {}, ((12,), 0, 0)),
    ("mean", [(64, 7, 7)], dict(dims=[2, 3]), ((64,), 0, 0)),
    ("mean", [(64, 7, 7)], dict(dims=[-1, -2], keepdim=True), ((64, 1, 1), 0, 0)),
    ("mean", [(64, 7, 5)], dict(dims=2), ((64, 5), 0, 0)),
    ("mean", [(64, 7, 5)], dict(dims=[1]), ((7, 5), 0, 0)),
    ("mean", [(12,)], dict(dims=1, keepdim=True), ((1,), 0, 0)),
    ("prelu", [(16, 4, 4)], {}, ((16, 4, 4), 1, 0)),
    ("prelu", [(16, 4, 4)], dict(per_channel=True), ((16, 4, 4), 16, 0)),
    ("prelu", [(10,)], dict(per_channel=True, init=0.1), ((10,), 10, 0)),
    ("upsample", [(8, 7, 5)], dict(scale=2), ((8, 14, 10), 0, 0)),
    ("upsample", [(8, 7, 5)], dict(scale=[1.5, 0.5]), ((8, 10, 2), 0, 0)),
    ("upsample", [(8, 7, 5)], dict(size=[3, 9], mode="bilinear", align_corners=True),
     ((8, 3, 9), 0, 0)),
    # U-Net's up-convolution: 2×2 /2 doubles the size; params in·out·k² + out
    ("conv_transpose", [(64, 14, 14)], dict(out=32, kernel=2, stride=2),
     ((32, 28, 28), 64 * 32 * 4 + 32, 14 * 14 * 64 * 32 * 4)),
    ("conv_transpose", [(8, 5, 6)], dict(out=4, kernel=3, stride=2, padding=1,
                                         output_padding=1, bias=False),
     ((4, 10, 12), 8 * 4 * 9, 5 * 6 * 8 * 4 * 9)),
    ("conv_transpose", [(8, 5, 5)], dict(out=6, kernel=[3, 1], dilation=2, groups=2,
                                         output_padding=[1, 0]),
     ((6, 10, 5), 8 * 3 * 3 + 6, 25 * 8 * 3 * 3)),
])
def test_shape_rules(op: str, shapes: list, args: dict, want: tuple) -> None:
    assert infer(op, shapes, **args) == want


@pytest.mark.parametrize("op, shapes, args, message", [
    ("flatten", [(8, 4, 4)], dict(start=0), "flatten 'start' 0 is the batch dimension"),
    ("flatten", [(8, 4, 4)], dict(start=-4), "flatten 'start' -4 is the batch dimension"),
    ("flatten", [(8, 4, 4)], dict(start=4), "'start' 4 is out of range for (N, 8, 4, 4)"),
    ("flatten", [(8, 4, 4)], dict(end=-5), "'end' -5 is out of range for (N, 8, 4, 4)"),
    ("flatten", [(8, 4, 4)], dict(start=3, end=2), "flatten 'end' 2 (dim 2) comes before "
     "'start' 3 (dim 3)"),
    ("mean", [(8, 4, 4)], dict(dims=[0, 2]), "mean over dims [0, 2] includes the batch"),
    ("mean", [(8, 4, 4)], dict(dims=[2, -4]), "includes the batch (dim 0)"),
    ("mean", [(8, 4, 4)], dict(dims=[2, 4]), "'dims' 4 is out of range for (N, 8, 4, 4)"),
    ("mean", [(8, 4, 4)], dict(dims=[2, -2]), "mean dims [2, -2] name a dim twice"),
    ("mean", [(8, 4, 4)], dict(dims=[1, 2, 3]), "leaves no per-sample dim of (N, 8, 4, 4)"),
    ("mean", [(8,)], dict(dims=1), "leaves no per-sample dim of (N, 8)"),
    ("upsample", [(8, 4, 4)], {}, "upsample needs exactly one of 'scale' and 'size', got "
     "neither"),
    ("upsample", [(8, 4, 4)], dict(scale=2, size=8), "got both"),
    ("upsample", [(8, 4, 4)], dict(scale=2, align_corners=False), "'align_corners' needs "
     "mode bilinear, got mode nearest"),
    ("upsample", [(8, 4, 4)], dict(scale=0.2), "upsample by 0.2 makes (N, 8, 4, 4) empty"),
    ("upsample", [(8,)], dict(scale=2), "upsample expects a (channels, height, width) input"),
    ("conv_transpose", [(8, 4, 4)], dict(out=4, kernel=3, stride=2, output_padding=2),
     "'output_padding' 2 must be smaller than the stride 2 or the dilation 1 (height)"),
    ("conv_transpose", [(8, 4, 4)], dict(out=4, kernel=3, output_padding=[0, 1]),
     "(width)"),
    ("conv_transpose", [(8, 1, 1)], dict(out=4, kernel=1, padding=1),
     "conv_transpose output height drops below 1 (-1)"),
    ("conv_transpose", [(6, 4, 4)], dict(out=8, kernel=1, groups=4),
     "conv_transpose input channels 6 are not divisible by groups 4"),
    ("conv_transpose", [(8, 4, 4)], dict(out=6, kernel=1, groups=4),
     "output channels 6 are not divisible"),
    ("conv_transpose", [(8,)], dict(out=6, kernel=1), "conv_transpose expects a (channels"),
])
def test_shape_errors(op: str, shapes: list, args: dict, message: str) -> None:
    with pytest.raises(OpError) as info:
        infer(op, shapes, **args)
    assert message in info.value.message


@pytest.mark.parametrize("op, args, message", [
    ("flatten", dict(start=1.5), "'start' must be an integer"),
    ("mean", {}, "mean is missing required argument 'dims'"),
    ("mean", dict(dims=[]), "'dims' must be a dim or a non-empty list of dims"),
    ("mean", dict(dims=[2, 2.5]), "'dims' must be a dim or a non-empty list of dims"),
    ("mean", dict(dims=[2], keepdim=1), "'keepdim' must be true or false"),
    ("prelu", dict(per_channel="yes"), "'per_channel' must be true or false"),
    ("prelu", dict(init=float("nan")), "'init' must be a finite number"),
    ("upsample", dict(scale=0), "'scale' must be above 0 and finite, got 0"),
    ("upsample", dict(scale=[2, -1]), "'scale' must be above 0"),
    ("upsample", dict(scale=[1, 2, 3]), "'scale' must be a number or a pair"),
    ("upsample", dict(scale=2, mode="bicubic"), "'mode' must be one of nearest, bilinear"),
    ("upsample", dict(size=0), "'size' must be at least 1"),
    ("conv_transpose", dict(out=4), "missing required argument 'kernel'"),
    ("conv_transpose", dict(out=4, kernel=2, output_padding=-1), "'output_padding' must be "
     "at least 0"),
    ("conv_transpose", dict(out=4, kernel=2, padding="same"), "'padding' must be an integer"),
])
def test_argument_errors(op: str, args: dict, message: str) -> None:
    with pytest.raises(OpError) as info:
        normalise_args(OPS[op], args)
    assert message in info.value.message


_HEAD = "archspec: 1\nname: s\ninput: {shape: [4, 6, 6]}\nlayers:\n"


@pytest.mark.parametrize("layer, field, message", [
    ("{op: flatten, start: 0}", "start", "flatten 'start' 0 is the batch dimension"),
    ("{op: flatten, start: 3, end: 1}", "end", "flatten 'end' 1 (dim 1) comes before"),
    ("{op: mean, dims: [0, 2]}", "dims", "includes the batch (dim 0)"),
    ("{op: mean, dims: [2, 5]}", "dims", "'dims' 5 is out of range"),
    ("{op: mean, dims: [3, -1]}", "dims", "name a dim twice"),
    ("{op: mean, dims: []}", "dims", "must be a dim or a non-empty list"),
    ("{op: upsample}", None, "needs exactly one of 'scale' and 'size', got neither"),
    ("{op: upsample, scale: 2, size: 4}", "size", "got both"),
    ("{op: upsample, scale: 2, align_corners: true}", "align_corners", "needs mode bilinear"),
    ("{op: upsample, scale: 0.1}", "scale", "makes (N, 4, 6, 6) empty"),
    ("{op: conv_transpose, out: 2, kernel: 2, output_padding: 1}", "output_padding",
     "must be smaller than the stride 1 or the dilation 1"),
    ("{op: conv_transpose, out: 2, kernel: 1, padding: 4}", "padding", "drops below 1"),
    ("{op: conv_transpose, out: 3, kernel: 1, groups: 2}", "groups", "output channels 3"),
])
def test_errors_are_located(compile_text, layer: str, field: str | None, message: str) -> None:
    """Each bad argument is a SpecError at its field's value (or at the layer when no one
    field is to blame), on the layer's line."""
    line = f"  - t: {layer}"
    col = line.index(f" {field}: ") + len(field) + 4 if field else line.index("t:") + 1
    with pytest.raises(SpecError) as info:
        compile_text(_HEAD + line + "\n")
    text = str(info.value)
    assert f":5:{col}: error: t: " in text and message in text, text


def test_prelu_slopes_start_at_init(compile_text) -> None:
    """The built nn.PReLU holds one slope per channel, each the spec's init."""
    from archspec.torch_backend import build_module
    g = compile_text(_HEAD + "  - t: {op: prelu, per_channel: true, init: 0.1}\n")
    weight = dict(build_module(g).named_parameters())["t.weight"]
    assert weight.shape == (4,) and weight.tolist() == pytest.approx([0.1] * 4)


@pytest.mark.parametrize("args", [dict(scale=2), dict(scale=[1.5, 0.7], mode="bilinear"),
                                  dict(size=[5, 9], mode="bilinear", align_corners=True)])
def test_upsample_equals_torch(compile_text, args: dict) -> None:
    """The static shape is nn.Upsample's, and the built module computes what it does."""
    import torch
    from archspec.torch_backend import build_module
    fields = "".join(f", {k}: {str(v).lower() if isinstance(v, bool) else v}"
                     for k, v in args.items())
    g = compile_text(_HEAD + f"  - t: {{op: upsample{fields}}}\n")
    x = torch.randn(2, 4, 6, 6)
    want = torch.nn.Upsample(**{"scale_factor" if k == "scale" else k: tuple(v)
                                if isinstance(v, list) else v for k, v in args.items()})(x)
    assert want.shape[1:] == g.nodes["t"]["shape"]
    assert torch.equal(build_module(g).eval()(x), want)


def test_conv_transpose_takes_the_conv_init_role(compile_text) -> None:
    """Init schemes treat nn.ConvTranspose2d as a conv (its init role): wrn's MSR init
    zeroes its bias, which torch's default init does not."""
    from archspec.torch_backend import build_module
    head = _HEAD.replace("layers:\n", "init: wrn\nlayers:\n")
    g = compile_text(head + "  - t: {op: conv_transpose, out: 8, kernel: 2, stride: 2}\n")
    params = dict(build_module(g).named_parameters())
    assert params["t.weight"].shape == (4, 8, 2, 2)
    assert not params["t.bias"].any()
