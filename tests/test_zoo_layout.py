"""What is particular to the ConvNeXt-Tiny and ShuffleNetV2 1.0× specs: ConvNeXt's
stochastic depth rates, and both at their full 224×224 size (tests/test_zoo_exact.py
checks every zoo spec at 64×64, once every BatchNorm statistic, norm affine, layer scale
and bias of the reference is random: torchvision's init leaves biases 0, affines 1 and
layer scales 1e-6, under which a wrong wiring could still match).
"""
from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import archspec  # noqa: E402
from archspec.torch_backend import build_module  # noqa: E402
from references.randomise import randomise_reference  # noqa: E402

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"

#: spec stem -> (torchvision builder, its published parameter count)
ZOO = {"shufflenet_v2_x1_0": (torchvision.models.shufflenet_v2_x1_0, 2_278_604),
       "convnext_tiny": (torchvision.models.convnext_tiny, 28_589_128)}


def _pair(stem: str, in_size: int) -> tuple[torch.nn.Module, torch.nn.Module, object]:
    """(reference, archspec's module with the reference's weights, graph IR)."""
    builder, _ = ZOO[stem]
    torch.manual_seed(0)
    ref = builder().eval()
    randomise_reference(ref)
    g = archspec.compile_graph(archspec.load_spec(str(SPECS / f"{stem}.yaml"),
                                                  {"in_size": in_size}))
    ours = build_module(g).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours, g


def _assert_equal_outputs(stem: str, in_size: int) -> None:
    ref, ours, _ = _pair(stem, in_size)
    x = torch.randn(2, 3, in_size, in_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == want.shape == (2, 1000)
    assert want.std() > 0.1      # the randomised reference does not collapse to ~0
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max())), \
        float((got - want).abs().max())


def test_convnext_stochastic_depth_rates_equal_torchvision() -> None:
    """0.1 · index / 17 over the 18 blocks, each block's rate exactly torchvision's."""
    ref = torchvision.models.convnext_tiny()
    want = {n: m.p for n, m in ref.named_modules()
            if isinstance(m, torchvision.ops.StochasticDepth)}
    g = archspec.compile_graph(archspec.load_spec(str(SPECS / "convnext_tiny.yaml")))
    got = {n: m.p for n, m in build_module(g).named_modules()
           if isinstance(m, torchvision.ops.StochasticDepth)}
    assert got == want and len(got) == 18 and max(got.values()) == 0.1


@pytest.mark.parametrize("stem", sorted(ZOO))
def test_eval_outputs_equal_torchvision_at_224(stem: str) -> None:
    """The full size (under 2 s each here, so not marked slow)."""
    _assert_equal_outputs(stem, 224)
