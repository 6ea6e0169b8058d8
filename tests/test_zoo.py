"""What is particular to torchvision's MobileNetV2/V3, MNASNet, EfficientNet and RegNet specs.

The measures every zoo spec meets (strict load, equal eval and training outputs, init,
emitted source) are in tests/test_zoo_exact.py, the static counts in
tests/test_zoo_counts.py. Here: that the output check sees the SE gates, and that the
width and depth multipliers and RegNet's stage tables round as torchvision's do, and
that MNASNet's `v1_stem` is the network of torchvision's version-1 checkpoints.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

import archspec
from archspec.torch_backend import build_module

torchvision = pytest.importorskip("torchvision")     # imported at collection, not in a test
from references.randomise import randomise_reference

torch.set_num_threads(1)

# spec stem -> (torchvision builder, its weights enum, input size for the output check)
ZOO = {
    "mobilenet_v3_small": ("mobilenet_v3_small", "MobileNet_V3_Small_Weights", 64),
    "efficientnet_b0": ("efficientnet_b0", "EfficientNet_B0_Weights", 64),
    "regnet_y_400mf": ("regnet_y_400mf", "RegNet_Y_400MF_Weights", 64),
}
TOL = 1e-5          # relative to the output's largest magnitude, float32


def _reference(stem: str) -> nn.Module:
    torch.manual_seed(0)
    return randomise_reference(getattr(torchvision.models, ZOO[stem][0])(), seed=1).eval()


def _ours(stem: str) -> nn.Module:
    """Our module without its init: the weights come from the reference."""
    with torch.device("meta"):
        m = build_module(f"specs/{stem}.yaml")
    return m.to_empty(device="cpu")


def _remove_se(ref: nn.Module) -> nn.Module:
    """The reference with every SqueezeExcitation replaced by the identity."""
    from torchvision.ops.misc import SqueezeExcitation
    m = copy.deepcopy(ref)
    for mod in list(m.modules()):
        for child, sub in list(mod.named_children()):
            if isinstance(sub, SqueezeExcitation):
                setattr(mod, child, nn.Identity())
    return m


@pytest.mark.parametrize("stem", sorted(ZOO))
def test_output_check_sees_the_se_gates(stem: str) -> None:
    """The output comparison of tests/test_zoo_exact.py is sensitive: the reference with
    its SE gates removed differs from it by orders of magnitude more than its tolerance."""
    ref, ours = _reference(stem), _ours(stem)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    size = ZOO[stem][2]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = ours(x), ref(x)
        no_se = _remove_se(ref)(x)
    scale = b.abs().max().item()
    assert (a - b).abs().max().item() <= TOL * scale
    assert (no_se - b).abs().max().item() > 1000 * TOL * scale


#: torchvision's BlockParams.from_init_params arguments of its 15 RegNet builders
REGNETS = {
    "regnet_y_400mf": dict(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8),
    "regnet_y_800mf": dict(depth=14, w_0=56, w_a=38.84, w_m=2.4, group_width=16),
    "regnet_y_1_6gf": dict(depth=27, w_0=48, w_a=20.71, w_m=2.65, group_width=24),
    "regnet_y_3_2gf": dict(depth=21, w_0=80, w_a=42.63, w_m=2.66, group_width=24),
    "regnet_y_8gf": dict(depth=17, w_0=192, w_a=76.82, w_m=2.19, group_width=56),
    "regnet_y_16gf": dict(depth=18, w_0=200, w_a=106.23, w_m=2.48, group_width=112),
    "regnet_y_32gf": dict(depth=20, w_0=232, w_a=115.89, w_m=2.53, group_width=232),
    "regnet_y_128gf": dict(depth=27, w_0=456, w_a=160.83, w_m=2.52, group_width=264),
    "regnet_x_400mf": dict(depth=22, w_0=24, w_a=24.48, w_m=2.54, group_width=16),
    "regnet_x_800mf": dict(depth=16, w_0=56, w_a=35.73, w_m=2.28, group_width=16),
    "regnet_x_1_6gf": dict(depth=18, w_0=80, w_a=34.01, w_m=2.25, group_width=24),
    "regnet_x_3_2gf": dict(depth=25, w_0=88, w_a=26.31, w_m=2.25, group_width=48),
    "regnet_x_8gf": dict(depth=23, w_0=80, w_a=49.56, w_m=2.88, group_width=120),
    "regnet_x_16gf": dict(depth=22, w_0=216, w_a=55.59, w_m=2.1, group_width=128),
    "regnet_x_32gf": dict(depth=23, w_0=320, w_a=69.86, w_m=2.0, group_width=168),
}


@pytest.mark.parametrize("name", sorted(REGNETS))
def test_regnet_stage_table_is_torchvisions_quantised_linear_rule(name: str) -> None:
    """The spec computes, in float64, from the paper's (d, w_0, w_a, w_m, g) the stage
    depths, widths and group widths that torchvision's from_init_params computes in
    float32 (quantisation, runs of equal widths, group-width compatibility): for all 15
    builders, and each builder spec names torchvision's arguments."""
    from torchvision.models.regnet import BlockParams
    bp = BlockParams.from_init_params(**REGNETS[name])
    spec = archspec.load_spec(f"specs/{name}.yaml")
    env = dict(spec.env)
    assert {k: env[k] for k in REGNETS[name]} == REGNETS[name]
    assert env["depths"] == bp.depths
    assert env["widths"] == bp.widths
    assert env["group_widths"] == bp.group_widths
    assert [env["bottleneck_multiplier"]] * len(bp.depths) == bp.bottleneck_multipliers
    assert env["se_ratio"] == (0.0 if name.startswith("regnet_x") else 0.25)


def _static_params(stem: str, overrides: dict) -> int:
    spec = archspec.load_spec(f"specs/{stem}.yaml", overrides)
    return archspec.summarize(archspec.compile_graph(spec)).params


@pytest.mark.parametrize("width", [0.35, 0.5, 0.75, 1.25])
def test_mobilenet_width_multiplier_rounds_as_torchvision(width: float) -> None:
    """The spec's _make_divisible expressions, away from width 1.0 where they matter."""
    with torch.device("meta"):
        ref = torchvision.models.mobilenet_v3_small(width_mult=width)
    assert _static_params("mobilenet_v3_small", {"width_mult": width}) == \
        sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("name,width,depth", [
    ("efficientnet_b1", 1.0, 1.1), ("efficientnet_b2", 1.1, 1.2),
    ("efficientnet_b3", 1.2, 1.4), ("efficientnet_b4", 1.4, 1.8),
    ("efficientnet_b7", 2.0, 3.1)])
def test_efficientnet_multipliers_give_b1_to_b7(name: str, width: float, depth: float) -> None:
    """B1-B7's sizes from B0's table and torchvision's (width, depth) multipliers."""
    with torch.device("meta"):
        ref = getattr(torchvision.models, name)()
    assert _static_params("efficientnet_b0", {"width_mult": width, "depth_mult": depth}) == \
        sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("name,init", [
    ("regnet_y_800mf", dict(depth=14, w_0=56, w_a=38.84, w_m=2.4, group_width=16)),
    ("regnet_x_400mf", dict(depth=22, w_0=24, w_a=24.48, w_m=2.54, group_width=16,
                            se_ratio=0.0))])
def test_regnet_spec_takes_other_generator_params(name: str, init: dict) -> None:
    """Other RegNets are regnet_y_400mf's spec with the paper's parameters --set: the
    generator, not a pasted table, gives their size (RegNetX: no SE)."""
    ref = getattr(torchvision.models, name)()      # its init does not run on meta
    assert _static_params("regnet_y_400mf", init) == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("name", ["efficientnet_b5", "efficientnet_v2_s"])
def test_efficientnet_builder_specs_have_torchvisions_settings(name: str) -> None:
    """specs/efficientnet_b5.yaml (the family with w 1.6, d 2.2, dropout 0.4, BatchNorm
    eps 0.001, momentum 0.01) and efficientnet_v2_s.yaml (V2-S, eps 0.001): the same BN
    settings, dropout, stochastic depth rates (torchvision also builds them, unused, on
    the blocks without a residual) and state_dict keys as torchvision's builder."""
    with torch.device("meta"):
        ref = getattr(torchvision.models, name)()
        ours = build_module(f"specs/{name}.yaml")

    def settings(m: nn.Module) -> list:
        return [(n, type(x).__name__, getattr(x, "eps", None), getattr(x, "momentum", None),
                 getattr(x, "p", None)) for n, x in m.named_modules()
                if isinstance(x, (nn.BatchNorm2d, nn.Dropout))]

    def rates(m: nn.Module) -> set:
        return {(n, x.p, x.mode) for n, x in m.named_modules()
                if isinstance(x, torchvision.ops.StochasticDepth)}
    assert settings(ours) == settings(ref)
    residual = sum(1 for x in ref.modules() if getattr(x, "use_res_connect", False))
    assert len(rates(ours)) == residual and rates(ours) <= rates(ref)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in ref.state_dict().items()}


# ---------------------------------------------- MobileNetV2/V3 and MNASNet multipliers
@pytest.mark.parametrize("stem,builder,over", [
    ("mobilenetv2", "mobilenet_v2", {"width_mult": 0.35}),
    ("mobilenetv2", "mobilenet_v2", {"width_mult": 1.4}),
    ("mobilenetv3", "mobilenet_v3_large", {"width_mult": 0.75}),
    ("mnasnet", "MNASNet", {"alpha": 0.35}),
    ("mnasnet", "MNASNet", {"alpha": 1.7})])
def test_family_multipliers_round_as_torchvision(stem: str, builder: str, over: dict) -> None:
    """Width multipliers away from the builders': MobileNetV2's _make_divisible (its last
    1280 only widened), MobileNetV3-Large's, MNASNet's _round_to_multiple_of."""
    with torch.device("meta"):
        ref = getattr(torchvision.models, builder)(**over)
    assert _static_params(stem, over) == sum(p.numel() for p in ref.parameters())


def test_mnasnet_v1_stem_loads_into_torchvisions_version_1_model() -> None:
    """`v1_stem: true` is the network torchvision patches in when it loads a version-1
    checkpoint at α ≠ 1 (older torchvision's mnasnet0_5): our state_dict, marked
    version 1, loads strictly into torchvision's mnasnet0_5, and the outputs agree."""
    torch.manual_seed(0)
    ours = randomise_reference(build_module("specs/mnasnet0_5.yaml", {"v1_stem": True}),
                               seed=1).eval()
    sd = ours.state_dict()
    assert sd["layers.0.weight"].shape[0] == 32 and sd["layers.6.weight"].shape[0] == 16
    sd._metadata[""] = {**sd._metadata.get("", {}), "version": 1}
    ref = torchvision.models.mnasnet0_5()
    with pytest.warns(UserWarning, match="previous version"):
        ref.load_state_dict(sd, strict=True)
    ref.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got, want = ours(x), ref(x)
    assert (got - want).abs().max().item() <= TOL * want.abs().max().item()


# ----------------------------------------------------------------- Inception v3
# tests/test_zoo_exact.py checks it as every builder (its loss on the logits alone);
# here the aux output and its gradients too, at 299×299 (the aux head needs 17×17).
INCEPTION_SIZE = 299


def _inception_pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    ref = randomise_reference(torchvision.models.get_model("inception_v3"), seed=1)
    with torch.device("meta"):
        ours = build_module("specs/inception_v3.yaml")
    ours = ours.to_empty(device="cpu")
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    scale = want.abs().max().item()
    assert want.std().item() > 0.05 * scale > 0
    assert (got - want).abs().max().item() <= TOL * scale


@pytest.mark.slow
def test_inception_v3_train_outputs_gradients_and_statistics_equal() -> None:
    """Training mode: both outputs (main and aux) equal under one seed (dropout), equal
    gradients of a loss on both, equal BatchNorm statistics (the aux head's included)."""
    ref, ours = _inception_pair()
    ref.train(), ours.train()
    x = torch.randn(2, 3, INCEPTION_SIZE, INCEPTION_SIZE, generator=torch.Generator().manual_seed(3))
    outs = []
    for m in (ours, ref):
        torch.manual_seed(4)
        logits, aux = m(x)
        (logits.square().mean() + 0.3 * aux.square().mean()).backward()
        outs.append((logits.detach(), aux.detach()))
    _close(outs[0][0], outs[1][0])
    _close(outs[0][1], outs[1][1])
    grads = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert torch.allclose(p.grad, grads[name].grad, rtol=1e-3, atol=1e-6), name
    buffers = dict(ref.named_buffers())
    for name, b in ours.named_buffers():
        assert torch.allclose(b.float(), buffers[name].float(), rtol=1e-5, atol=1e-6), name


def test_inception_v3_aux_head_is_training_only() -> None:
    """aux_logits=False drops the head and its output, as torchvision's does; the
    static count is torchvision's either way, and the module builds (its init rules
    name no AuxLogits layer) with torchvision's state_dict keys and shapes."""
    with torch.device("meta"):
        ref = torchvision.models.inception_v3(aux_logits=False, init_weights=False)
        ours = build_module("specs/inception_v3.yaml", {"aux_logits": False})
    assert _static_params("inception_v3", {"aux_logits": False}) == \
        sum(p.numel() for p in ref.parameters())
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in ref.state_dict().items()}


@pytest.mark.parametrize("b,g", [(0.75, 16), (0.5, 24), (0.25, 8)])
def test_regnet_bottleneck_ratio_adjusts_widths_as_torchvision(b: float, g: int) -> None:
    """Away from b = 1 the group-width compatibility step changes the stage widths
    (w·b rounded to a multiple of min(g, w·b), then divided by b): the spec's
    RegNetY-800MF with --set b and g has the parameters of torchvision's RegNet built
    from from_init_params with the same b and g."""
    from functools import partial
    from torchvision.models.regnet import BlockParams, RegNet
    init = dict(REGNETS["regnet_y_800mf"], group_width=g)
    bp = BlockParams.from_init_params(**init, bottleneck_multiplier=b, se_ratio=0.25)
    ref = RegNet(bp, norm_layer=partial(nn.BatchNorm2d, eps=1e-05, momentum=0.1))
    spec = archspec.load_spec("specs/regnet_y_800mf.yaml",
                              {"bottleneck_multiplier": b, "group_width": g})
    assert dict(spec.env)["widths"] == bp.widths
    assert archspec.summarize(archspec.compile_graph(spec)).params == \
        sum(p.numel() for p in ref.parameters())


def test_regnet_group_width_that_fits_no_stage_is_a_check_error() -> None:
    """b = 1.25, g = 8: torchvision's compatibility step gives a first stage of width 57,
    whose bottleneck round(57 × 1.25) = 71 is no multiple of 8, so torchvision fails
    inside a conv ("in_channels must be divisible by groups"); the spec says so at its
    check, in the paper's terms."""
    from torchvision.models.regnet import BlockParams, RegNet
    bp = BlockParams.from_init_params(**dict(REGNETS["regnet_y_800mf"], group_width=8),
                                      bottleneck_multiplier=1.25, se_ratio=0.25)
    with pytest.raises(ValueError, match="divisible by groups"):
        RegNet(bp)
    with pytest.raises(archspec.SpecError, match="no valid group width"):
        archspec.load_spec("specs/regnet_y_800mf.yaml",
                           {"bottleneck_multiplier": 1.25, "group_width": 8})
