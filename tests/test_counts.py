"""The MAC convention on the arguments that change a count (groups, stride, dilation,
'same' padding, output_padding, bias): static MACs equal half of torch's
FlopCounterMode exactly, and parameters torch's numel. (tests/test_every_op.py checks
every registered op once with sample arguments; this adds the variants.)"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import archspec
from archspec.torch_backend import build_module

torch.set_num_threads(1)
SPECS = Path(__file__).resolve().parents[1] / "specs"

LAYERS = [
    ("[8, 9, 7]", "{op: conv, out: 12, kernel: 3, stride: 2, padding: 1, groups: 4}"),
    ("[8, 9, 7]", "{op: conv, out: 8, kernel: [3, 1], dilation: 2, padding: same, bias: false}"),
    ("[8, 9, 7]", "{op: conv, out: 8, kernel: 3, groups: 8}"),
    ("[8, 5, 6]", "{op: conv_transpose, out: 6, kernel: 3, stride: 2, padding: 1, "
                  "output_padding: 1, groups: 2}"),
    ("[8, 5, 6]", "{op: conv_transpose, out: 4, kernel: [2, 3], dilation: 2, bias: false}"),
    ("[20]", "{op: linear, out: 7, bias: false}"),
    ("[20]", "{op: linear, out: 7}"),
    ("[8, 9, 7]", "{op: upsample, scale: 2, mode: bilinear}"),
    ("[8, 9, 7]", "{op: mean, dims: [2, 3]}"),
    ("[8, 9, 7]", "{op: prelu, per_channel: true}"),
]


@pytest.mark.parametrize("shape, layer", LAYERS)
def test_macs_are_half_of_torchs_flop_counter(compile_text, shape: str, layer: str) -> None:
    g = compile_text(f"archspec: 1\nname: c\ninput: {{shape: {shape}}}\nlayers:\n"
                     f"  - t: {layer}\n")
    model = build_module(g).eval()
    x = torch.randn(3, *g.nodes[g.graph["input"]]["shape"])
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    assert counter.get_total_flops() == 2 * 3 * g.nodes["t"]["macs"]
    assert g.nodes["t"]["params"] == sum(p.numel() for p in model.parameters())
    assert archspec.summarize(g).macs == g.nodes["t"]["macs"]


@pytest.mark.slow
@pytest.mark.parametrize("stem, name", [("resnet18", "resnet18"), ("resnet50", "resnet50"),
                                        ("googlenet", "googlenet")])
def test_torchvision_models_count_as_the_specs(stem: str, name: str) -> None:
    """The convention is torchvision's: FlopCounterMode / 2 on torchvision's own model
    equals the spec's static MACs exactly (resnet18 1,814,073,344; resnet50
    4,089,184,256; GoogLeNet 1,498,376,192), which its weights publish rounded as
    meta["_ops"] (1.814, 4.089, 1.498 GFLOPS; see tests/test_specs.py)."""
    import torchvision
    kw = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    model = getattr(torchvision.models, name)(**kw).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 224, 224))
    g = archspec.compile_graph(archspec.load_spec(str(SPECS / f"{stem}.yaml")))
    assert counter.get_total_flops() == 2 * archspec.summarize(g).macs
