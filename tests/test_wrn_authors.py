"""B(M)'s ``shortcut: preact``: the WRN as its authors wrote it.

The reference (tests/references/wrn_authors.py) is written from the authors' own
pytorch/resnet.py and wide-resnet.lua: the 1×1 projection reads relu(bn(x)). The spec's
default (``shortcut: input``, pystyle.info's port) reads the raw block input. Same
tensors, same parameter count, different network.
"""
from __future__ import annotations

import pytest
import torch

import archspec
from archspec.torch_backend import build_module
from references.randomise import randomise_reference
from references.wrn_authors import authors_shapes, from_archspec, wrn_forward

torch.set_num_threads(1)


def _wrn(d: int, k: int, shortcut: str) -> torch.nn.Module:
    torch.manual_seed(0)
    m = build_module("specs/wrn.yaml", [f"d={d}", f"k={k}", f"shortcut={shortcut}"])
    return randomise_reference(m, seed=1).eval()


@pytest.mark.parametrize("d,k", [(16, 1), (10, 2)])
def test_preact_shortcut_is_the_authors_wrn(d: int, k: int) -> None:
    ours = _wrn(d, k, "preact")
    theirs = from_archspec(ours.state_dict())
    # strict both ways: every tensor of the authors' resnet(d, k) and nothing else
    assert {n: tuple(t.shape) for n, t in theirs.items()} == authors_shapes(d, k)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = ours(x), wrn_forward(x, theirs, d)
    assert (a - b).abs().max().item() <= 1e-5 * b.abs().max().item()
    # the default variant, same weights: the same count, another network
    raw = build_module("specs/wrn.yaml", [f"d={d}", f"k={k}"]).eval()
    raw.load_state_dict(ours.state_dict(), strict=True)
    assert sum(p.numel() for p in raw.parameters()) == \
        sum(p.numel() for p in ours.parameters())
    with torch.no_grad():
        c = raw(x)
    assert (c - b).abs().max().item() > 100 * 1e-5 * b.abs().max().item()


def test_shortcut_parameter_in_the_ir() -> None:
    """--set shortcut=preact rewires only the projection shortcuts' input; identity
    shortcuts stay the raw input; a bad value is refused at the parameter."""
    def inputs(shortcut: str) -> dict:
        g = archspec.compile_graph(archspec.load_spec(
            "specs/wrn.yaml", {"d": 16, "k": 1, "shortcut": shortcut}))
        return {n: g.nodes[n]["inputs"] for n in g}
    raw, pre = inputs("input"), inputs("preact")
    assert raw["layer2.0.shortcut"] == ("layer1.1.add",)
    assert pre["layer2.0.shortcut"] == ("layer2.0.relu",)
    assert pre["layer3.0.shortcut"] == ("layer3.0.relu",)
    assert {n for n in raw if raw[n] != pre[n]} == {"layer2.0.shortcut", "layer3.0.shortcut"}
    assert pre["layer1.0.add"] == ("layer1.0.conv2", "conv1")      # identity: the raw input
    with pytest.raises(archspec.SpecError, match="shortcut"):
        archspec.load_spec("specs/wrn.yaml", {"shortcut": "relu"})
