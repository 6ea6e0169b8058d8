"""The layout ops of ConvNeXt and ShuffleNetV2 (scale, layernorm, permute, slice, and
linear over the last axis of any tensor): shape rules, counts and refusals, each against
torch where torch has an answer.

Their torch equality at large is the fuzz's (tests/test_fuzz.py) and test_every_op's;
this file pins the rules and the messages.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from archspec.errors import SpecError
from archspec.ops import OPS, OpError, normalise_args, op_counts


infer = op_counts     # (shape, params, MACs) of one op


@pytest.mark.parametrize("op, shapes, args, want", [
    ("scale", [(8, 4, 4)], dict(init=1e-6), ((8, 4, 4), 8, 0)),
    ("scale", [(8,)], dict(init=1.0), ((8,), 8, 0)),
    ("layernorm", [(8, 4, 6)], {}, ((8, 4, 6), 16, 0)),
    ("layernorm", [(8, 4, 6)], dict(over="last"), ((8, 4, 6), 12, 0)),
    ("layernorm", [(8,)], dict(over="last", affine=False), ((8,), 0, 0)),
    ("permute", [(8, 4, 6)], dict(dims=[0, 2, 3, 1]), ((4, 6, 8), 0, 0)),
    ("slice", [(8, 4, 6)], dict(start=0, stop=4), ((4, 4, 6), 0, 0)),
    ("slice", [(8, 4, 6)], dict(start=4), ((4, 4, 6), 0, 0)),
    ("slice", [(8,)], dict(start=2, stop=3), ((1,), 0, 0)),
    # linear over the last axis: params in·out + out, MACs prod(other axes)·in·out
    ("linear", [(12,)], dict(out=5), ((5,), 65, 60)),
    ("linear", [(4, 6, 8)], dict(out=32), ((4, 6, 32), 8 * 32 + 32, 4 * 6 * 8 * 32)),
    ("linear", [(8, 4, 6)], dict(out=3, bias=False), ((8, 4, 3), 18, 8 * 4 * 6 * 3)),
    ("permute", [(4, 6, 8)], dict(dims=[0, 3, 1, 2]), ((8, 4, 6), 0, 0)),
    ("permute", [(8,)], dict(dims=[0, 1]), ((8,), 0, 0)),
])
def test_layout_shape_rules(op: str, shapes: list, args: dict, want: tuple) -> None:
    assert infer(op, shapes, **args) == want


@pytest.mark.parametrize("op, shapes, args, message", [
    ("scale", [(8, 4)], dict(init=1.0), "scale expects (C, H, W) or (features), got (N, 8, 4)"),
    ("permute", [(8, 4, 6)], dict(dims=[0, 2, 3]), "permute dims [0, 2, 3] are not a "
     "permutation of the 4 axes 0..3 of (N, 8, 4, 6)"),
    ("permute", [(8, 4, 6)], dict(dims=[0, 2, 3, 3]), "not a permutation of the 4 axes"),
    ("permute", [(8, 4, 6)], dict(dims=[1, 0, 2, 3]), "permute dims [1, 0, 2, 3] move the "
     "batch axis 0 away from the front"),
    ("slice", [(8, 4, 6)], dict(start=4, stop=9), "slice 4:9 reaches beyond the 8 channels "
     "of (N, 8, 4, 6)"),
    ("slice", [(8, 4, 6)], dict(start=-1), "slice -1:8 reaches beyond the 8 channels"),
    ("slice", [(8, 4, 6)], dict(start=4, stop=4), "slice 4:4 of (N, 8, 4, 6) is empty"),
    ("slice", [(8, 4, 6)], dict(start=8), "slice 8:8 of (N, 8, 4, 6) is empty"),
    ("layernorm", [(8,)], {}, "layernorm over channels expects a (channels, height, width) "
     "input, got (N, 8)"),
])
def test_layout_shape_errors(op: str, shapes: list, args: dict, message: str) -> None:
    with pytest.raises(OpError) as info:
        infer(op, shapes, **args)
    assert message in info.value.message


@pytest.mark.parametrize("op, args, message", [
    ("scale", {}, "scale is missing required argument 'init'"),
    ("scale", dict(init="big"), "'init' must be a number"),
    ("permute", dict(dims=2), "'dims' must be a list of integers, got 2"),
    ("permute", dict(dims=[0, 1.5]), "'dims' must be a list of integers"),
    ("permute", dict(dims=[]), "'dims' must be a list of integers"),
    ("slice", dict(start=1.5), "'start' must be an integer"),
    ("layernorm", dict(over="rows"), "'over' must be one of channels, last, got 'rows'"),
    ("layernorm", dict(eps=-1e-6), "'eps' must not be negative"),
])
def test_layout_argument_errors(op: str, args: dict, message: str) -> None:
    with pytest.raises(OpError) as info:
        normalise_args(OPS[op], args)
    assert message in info.value.message


def _compile(tmp_path: Path, layers: str, shape: str = "[4, 6, 6]"):
    import archspec
    path = tmp_path / "s.yaml"
    path.write_text(f"archspec: 1\nname: s\ninput: {{shape: {shape}}}\nlayers:\n{layers}",
                    encoding="utf-8")
    return archspec.compile_graph(archspec.load_spec(str(path)))


def test_scale_is_a_bare_parameter_named_as_its_node(tmp_path: Path) -> None:
    """ConvNeXt's ``features.1.0.layer_scale``: the node path is the state_dict key, as
    torchvision's CNBlock's own nn.Parameter (no ``.weight``), in build and in emit."""
    import torch

    from archspec.codegen import generate
    from archspec.torch_backend import build_module
    g = _compile(tmp_path, "  - f.1.0.conv: {op: conv, out: 4, kernel: 1}\n"
                 "  - f.1.0.layer_scale: {op: scale, init: 0.000001}\n"
                 "  - f.1.0.in: {op: scale, init: 2.0}\n")
    m = build_module(g)
    sd = m.state_dict()
    assert sorted(sd) == ["f.1.0.conv.bias", "f.1.0.conv.weight", "f.1.0.in",
                          "f.1.0.layer_scale"]
    assert sd["f.1.0.layer_scale"].shape == (4, 1, 1)
    assert torch.equal(sd["f.1.0.layer_scale"], torch.full((4, 1, 1), 1e-6))
    ns: dict = {}
    exec(compile(generate(g), "<generated>", "exec"), ns)   # noqa: S102 - our generated source
    standalone = ns["Model"]()
    with torch.no_grad():
        for p in m.parameters():
            p.uniform_(0.5, 1.5)
    standalone.load_state_dict(m.state_dict(), strict=True)
    x = torch.randn(2, 4, 6, 6)
    want = m.f[1][0].conv(x) * m.state_dict()["f.1.0.layer_scale"] * sd["f.1.0.in"]
    assert torch.allclose(m(x), want) and torch.allclose(standalone(x), want)


def test_layernorm_over_channels_is_torchvisions_layernorm2d(tmp_path: Path) -> None:
    """over: channels is ConvNeXt's LayerNorm2d (eps as given); over: last nn.LayerNorm
    of the last axis; both norm-role modules with their eps and sizes."""
    import torch
    import torchvision

    from archspec.torch_backend import build_module
    g = _compile(tmp_path, "  - a: {op: layernorm, eps: 0.000001}\n"
                 "  - b: {op: layernorm, over: last}\n")
    m = build_module(g)
    assert type(m.a) is torchvision.models.convnext.LayerNorm2d
    assert m.a.normalized_shape == (4,) and m.a.eps == 1e-6
    assert type(m.b) is torch.nn.LayerNorm and m.b.normalized_shape == (6,) and m.b.eps == 1e-5
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        for p in m.parameters():
            p.uniform_(0.5, 1.5)
        ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (4,), m.a.weight, m.a.bias,
                                             1e-6).permute(0, 3, 1, 2)
        ref = torch.nn.functional.layer_norm(ref, (6,), m.b.weight, m.b.bias, 1e-5)
        assert torch.allclose(m(x), ref, atol=1e-6)


def test_linear_on_a_conv_output_acts_on_the_width_as_torch(tmp_path: Path) -> None:
    """A (C, H, W) input is no error (nn.Linear takes it): it mixes the width, and the
    static shape says so; after permute [0, 2, 3, 1] it mixes the channels (ConvNeXt)."""
    import torch

    from archspec.torch_backend import build_module
    g = _compile(tmp_path, "  - w: {op: linear, out: 3}\n"
                 "  - p: {op: permute, dims: [0, 2, 3, 1], from: input}\n"
                 "  - c: {op: linear, out: 16}\n"
                 "  - back: {op: permute, dims: [0, 3, 1, 2]}\n"
                 "outputs:\n  - out: {from: back}\n  - side: {from: w}\n")
    assert g.nodes["w"]["shape"] == (4, 6, 3) and g.nodes["back"]["shape"] == (16, 6, 6)
    assert g.nodes["c"]["params"] == 4 * 16 + 16 and g.nodes["c"]["macs"] == 36 * 4 * 16
    m = build_module(g).eval()
    x = torch.randn(2, 4, 6, 6)
    out, side = m(x)
    want = torch.nn.functional.linear(x.permute(0, 2, 3, 1), m.c.weight, m.c.bias)
    assert torch.allclose(out, want.permute(0, 3, 1, 2), atol=1e-6)
    assert torch.allclose(side, torch.nn.functional.linear(x, m.w.weight, m.w.bias), atol=1e-6)


def test_two_slices_are_shufflenets_chunk(tmp_path: Path) -> None:
    """``x.chunk(2, dim=1)``: slices 0:C/2 and C/2: give torch's two halves."""
    import torch

    from archspec.torch_backend import build_module
    g = _compile(tmp_path, "  - a: {op: slice, stop: 2}\n"
                 "  - b: {op: slice, start: 2, from: input}\n"
                 "  - both: {op: concat, from: [b, a]}\n")
    m = build_module(g)
    x = torch.randn(2, 4, 6, 6)
    a, b = x.chunk(2, dim=1)
    assert torch.equal(m(x), torch.cat([b, a], 1))


def test_a_layer_may_be_named_block(tmp_path: Path) -> None:
    """torchvision's CNBlock holds ``block`` (a Sequential): ``- block: {seq: ...}`` names
    a layer, since a block reference is never a mapping; ``block: name`` still uses one."""
    g = _compile(tmp_path, "  - block:\n      seq:\n        - {op: conv, out: 4, kernel: 1}\n"
                 "  - b: {block: basic, planes: 4}\n")
    assert "block.0" in g.nodes and "b.conv1" in g.nodes
