"""Golden numbers for every spec under specs/: exact parameters, MACs and output shapes.

Torch-free: the reference figures are hard-coded here with their sources, so the
suite checks the front end without importing torch (one test proves it never does).

Sources of the figures:
- WRN: the PyTorch port of wide-resnet.lua in pystyle.info's 「Pytorch – Wide ResNet の
  仕組みと実装について解説」 (dropout 0.3; docs/sources.md) as counted by
  issue 2; the WRN paper's Tables 2 and 3 (Zagoruyko & Komodakis 2016), which round them.
- CIFAR-10 networks: the parameter counts printed in the post
  「pytorchで初めてゼロから書くSOTA画像分類器(上)」.
- ResNets and GoogLeNet: torchvision 0.29.1's model builders (``num_params``) and its
  weights metadata ``_ops`` (GFLOPS, i.e. GMACs of convs and linears), read once with
  ``torchvision.models.<Name>_Weights.IMAGENET1K_V1.meta["_ops"]``. The GoogLeNet figure
  of 13,004,888 counts the auxiliary heads (``googlenet(aux_logits=True)``); the weights'
  6,624,904 is the network without them (our ``params_eval``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

import archspec

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"

# spec file stem -> (params, params in eval, MACs per sample in eval, input shape, outputs)
# MACs are exact regression values; the ResNets' and GoogLeNet's are also checked against
# torchvision's published GFLOPS below.
GOLDEN: dict[str, tuple[int, int, int, tuple, dict]] = {
    # Wide ResNet (pystyle.info's port / issue 2)
    "wrn": (36_479_194, 36_479_194, 5_243_328_768, (3, 32, 32), {"out": (10,)}),
    "wrn-28-10": (36_479_194, 36_479_194, 5_243_328_768, (3, 32, 32), {"out": (10,)}),
    # the CIFAR-10 post 「pytorchで初めてゼロから書くSOTA画像分類器(上)」
    "cifar10-verybasicnet": (30_730, 30_730, 30_720, (3, 32, 32), {"out": (10,)}),
    "cifar10-basicnet": (123_330, 123_330, 123_280, (3, 32, 32), {"out": (10,)}),
    "cifar10-basiccnn": (62_958, 62_958, 849_320, (3, 32, 32), {"out": (10,)}),
    "cifar10-convbnnet": (39_650, 39_650, 2_151_200, (3, 32, 32), {"out": (10,)}),
    "cifar10-deepbnnet": (462_570, 462_570, 6_299_200, (3, 32, 32), {"out": (10,)}),
    "cifar10-resnet": (1_965_066, 1_965_066, 24_824_320, (3, 32, 32), {"out": (10,)}),
    # torchvision ResNets (the template defaults to resnet18)
    "resnet": (11_689_512, 11_689_512, 1_814_073_344, (3, 224, 224), {"out": (1000,)}),
    "resnet18": (11_689_512, 11_689_512, 1_814_073_344, (3, 224, 224), {"out": (1000,)}),
    "resnet34": (21_797_672, 21_797_672, 3_663_761_408, (3, 224, 224), {"out": (1000,)}),
    "resnet50": (25_557_032, 25_557_032, 4_089_184_256, (3, 224, 224), {"out": (1000,)}),
    "resnet101": (44_549_160, 44_549_160, 7_801_405_440, (3, 224, 224), {"out": (1000,)}),
    "resnet152": (60_192_808, 60_192_808, 11_513_626_624, (3, 224, 224), {"out": (1000,)}),
    "resnext50_32x4d": (25_028_904, 25_028_904, 4_230_479_872, (3, 224, 224),
                        {"out": (1000,)}),
    "wide_resnet50_2": (68_883_240, 68_883_240, 11_398_021_120, (3, 224, 224),
                        {"out": (1000,)}),
    # GoogLeNet: outputs in torchvision's training order (logits, aux2, aux1)
    "googlenet": (13_004_888, 6_624_904, 1_498_376_192, (3, 224, 224),
                              {"logits": (1000,), "aux2": (1000,), "aux1": (1000,)}),
    # the paper's GoogLeNet (5×5 branch, 3×3/2 maxpool4): 16·Σ n5x5red·n5x5 = 380,928 more
    "googlenet-paper": (13_385_816, 7_005_832, 1_582_671_872, (3, 224, 224),
                  {"logits": (1000,), "aux2": (1000,), "aux1": (1000,)}),
    # Shake-Shake-26 (issue 6): the official Lua definition's counts (the template is 2x32d)
    "shake-shake": (2_923_162, 2_923_162, 426_689_792, (3, 32, 32), {"out": (10,)}),
    "shake-shake-26-2x32d": (2_923_162, 2_923_162, 426_689_792, (3, 32, 32), {"out": (10,)}),
    "shake-shake-26-2x96d": (26_192_922, 26_192_922, 3_776_892_672, (3, 32, 32),
                             {"out": (10,)}),
    # torchvision's ShuffleNetV2 1.0× (layout ops: slice, channel_shuffle)
    "shufflenet_v2_x1_0": (2_278_604, 2_278_604, 144_907_992, (3, 224, 224), {"out": (1000,)}),
    # torchvision's ConvNeXt-Tiny (layout ops: permute, layernorm, linear over channels, scale)
    "convnext_tiny": (28_589_128, 28_589_128, 4_455_531_264, (3, 224, 224), {"out": (1000,)}),
    # torchvision's mobile / efficient nets (tests/test_zoo.py checks them against torch)
    "mobilenet_v3_small": (2_542_856, 2_542_856, 56_510_400, (3, 224, 224), {"out": (1000,)}),
    "efficientnet_b0": (5_288_548, 5_288_548, 385_814_752, (3, 224, 224), {"out": (1000,)}),
    "regnet_y_400mf": (4_344_144, 4_344_144, 401_842_848, (3, 224, 224), {"out": (1000,)}),
    # issue 16, zoo part A: AlexNet, VGG, SqueezeNet, DenseNet (families and builders;
    # tests/test_zoo_counts.py checks the builders against torchvision's own figures)
    "alexnet": (61_100_840, 61_100_840, 714_188_480, (3, 224, 224), {"out": (1000,)}),
    "vgg": (132_863_336, 132_863_336, 7_609_090_048, (3, 224, 224), {"out": (1000,)}),
    "vgg11": (132_863_336, 132_863_336, 7_609_090_048, (3, 224, 224), {"out": (1000,)}),
    "vgg11_bn": (132_868_840, 132_868_840, 7_609_090_048, (3, 224, 224), {"out": (1000,)}),
    "vgg13": (133_047_848, 133_047_848, 11_308_466_176, (3, 224, 224), {"out": (1000,)}),
    "vgg13_bn": (133_053_736, 133_053_736, 11_308_466_176, (3, 224, 224), {"out": (1000,)}),
    "vgg16": (138_357_544, 138_357_544, 15_470_264_320, (3, 224, 224), {"out": (1000,)}),
    "vgg16_bn": (138_365_992, 138_365_992, 15_470_264_320, (3, 224, 224), {"out": (1000,)}),
    "vgg19": (143_667_240, 143_667_240, 19_632_062_464, (3, 224, 224), {"out": (1000,)}),
    "vgg19_bn": (143_678_248, 143_678_248, 19_632_062_464, (3, 224, 224), {"out": (1000,)}),
    "squeezenet": (1_248_424, 1_248_424, 818_924_576, (3, 224, 224), {"out": (1000,)}),
    "squeezenet1_0": (1_248_424, 1_248_424, 818_924_576, (3, 224, 224), {"out": (1000,)}),
    "squeezenet1_1": (1_235_496, 1_235_496, 349_151_936, (3, 224, 224), {"out": (1000,)}),
    "densenet": (7_978_856, 7_978_856, 2_834_161_664, (3, 224, 224), {"out": (1000,)}),
    "densenet121": (7_978_856, 7_978_856, 2_834_161_664, (3, 224, 224), {"out": (1000,)}),
    "densenet161": (28_681_000, 28_681_000, 7_727_907_072, (3, 224, 224), {"out": (1000,)}),
    "densenet169": (14_149_480, 14_149_480, 3_359_843_328, (3, 224, 224), {"out": (1000,)}),
    "densenet201": (20_013_928, 20_013_928, 4_291_365_888, (3, 224, 224), {"out": (1000,)}),
    # zoo (families MobileNetV2/V3, MNASNet, ShuffleNetV2, ConvNeXt, ResNet-101s): the
    # templates default to a builder; every builder's params are torchvision's
    # (tests/test_zoo_counts.py), its MACs regression values within 1% of the GFLOPS
    "mobilenetv2": (3_504_872, 3_504_872, 300_774_272, (3, 224, 224), {"out": (1000,)}),
    "mobilenet_v2": (3_504_872, 3_504_872, 300_774_272, (3, 224, 224), {"out": (1000,)}),
    "mobilenetv3": (5_483_032, 5_483_032, 216_589_760, (3, 224, 224), {"out": (1000,)}),
    "mobilenet_v3_large": (5_483_032, 5_483_032, 216_589_760, (3, 224, 224), {"out": (1000,)}),
    "mnasnet": (4_383_312, 4_383_312, 314_415_872, (3, 224, 224), {"out": (1000,)}),
    "mnasnet0_5": (2_218_512, 2_218_512, 104_455_968, (3, 224, 224), {"out": (1000,)}),
    "mnasnet0_75": (3_170_208, 3_170_208, 215_493_104, (3, 224, 224), {"out": (1000,)}),
    "mnasnet1_0": (4_383_312, 4_383_312, 314_415_872, (3, 224, 224), {"out": (1000,)}),
    "mnasnet1_3": (6_282_256, 6_282_256, 526_362_432, (3, 224, 224), {"out": (1000,)}),
    "shufflenetv2": (2_278_604, 2_278_604, 144_907_992, (3, 224, 224), {"out": (1000,)}),
    "shufflenet_v2_x0_5": (1_366_792, 1_366_792, 40_476_448, (3, 224, 224), {"out": (1000,)}),
    "shufflenet_v2_x1_5": (3_503_624, 3_503_624, 295_759_392, (3, 224, 224), {"out": (1000,)}),
    "shufflenet_v2_x2_0": (7_393_996, 7_393_996, 583_253_464, (3, 224, 224), {"out": (1000,)}),
    "convnext": (28_589_128, 28_589_128, 4_455_531_264, (3, 224, 224), {"out": (1000,)}),
    "convnext_small": (50_223_688, 50_223_688, 8_683_712_256, (3, 224, 224), {"out": (1000,)}),
    "convnext_base": (88_591_464, 88_591_464, 15_354_729_472, (3, 224, 224), {"out": (1000,)}),
    "convnext_large": (197_767_336, 197_767_336, 34_361_433_600, (3, 224, 224),
                      {"out": (1000,)}),
    "resnext101_32x8d": (88_791_336, 88_791_336, 16_414_015_488, (3, 224, 224),
                        {"out": (1000,)}),
    "resnext101_64x4d": (83_455_272, 83_455_272, 15_460_270_080, (3, 224, 224),
                        {"out": (1000,)}),
    "wide_resnet101_2": (126_886_696, 126_886_696, 22_753_050_624, (3, 224, 224),
                        {"out": (1000,)}),
    # issue 16, zoo part C: EfficientNet B0-B7 and V2-S/M/L (family templates at their
    # defaults, B0 and V2-S; each builder at its weights' input size)
    "efficientnet": (5_288_548, 5_288_548, 385_814_752, (3, 224, 224), {"out": (1000,)}),
    "efficientnet_b1": (7_794_184, 7_794_184, 686_802_832, (3, 240, 240), {"out": (1000,)}),
    "efficientnet_b2": (9_109_994, 9_109_994, 1_087_529_456, (3, 288, 288), {"out": (1000,)}),
    "efficientnet_b3": (12_233_232, 12_233_232, 1_827_141_392, (3, 300, 300), {"out": (1000,)}),
    "efficientnet_b4": (19_341_616, 19_341_616, 4_393_771_024, (3, 380, 380), {"out": (1000,)}),
    "efficientnet_b5": (30_389_784, 30_389_784, 10_266_384_752, (3, 456, 456), {"out": (1000,)}),
    "efficientnet_b6": (43_040_704, 43_040_704, 19_067_593_536, (3, 528, 528), {"out": (1000,)}),
    "efficientnet_b7": (66_347_960, 66_347_960, 37_745_884_192, (3, 600, 600), {"out": (1000,)}),
    "efficientnet_v2": (21_458_488, 21_458_488, 8_365_617_152, (3, 384, 384), {"out": (1000,)}),
    "efficientnet_v2_s": (21_458_488, 21_458_488, 8_365_617_152, (3, 384, 384), {"out": (1000,)}),
    "efficientnet_v2_m": (54_139_356, 54_139_356, 24_582_460_384, (3, 480, 480), {"out": (1000,)}),
    "efficientnet_v2_l": (118_515_272, 118_515_272, 56_079_699_008, (3, 480, 480),
                          {"out": (1000,)}),
    # issue 16, zoo part D: RegNet (the family template at its default, RegNetY-400MF)
    # and Inception v3 (train-only aux head: params_eval without it)
    "regnet": (4_344_144, 4_344_144, 401_842_848, (3, 224, 224), {"out": (1000,)}),
    "regnet_x_400mf": (5_495_976, 5_495_976, 413_812_608, (3, 224, 224), {"out": (1000,)}),
    "regnet_x_800mf": (7_259_656, 7_259_656, 799_699_712, (3, 224, 224), {"out": (1000,)}),
    "regnet_x_1_6gf": (9_190_136, 9_190_136, 1_602_849_792, (3, 224, 224), {"out": (1000,)}),
    "regnet_x_3_2gf": (15_296_552, 15_296_552, 3_176_621_952, (3, 224, 224), {"out": (1000,)}),
    "regnet_x_8gf": (39_572_648, 39_572_648, 7_995_132_416, (3, 224, 224), {"out": (1000,)}),
    "regnet_x_16gf": (54_278_536, 54_278_536, 15_940_755_456, (3, 224, 224), {"out": (1000,)}),
    "regnet_x_32gf": (107_811_560, 107_811_560, 31_735_929_792, (3, 224, 224), {"out": (1000,)}),
    "regnet_y_800mf": (6_432_512, 6_432_512, 833_856_256, (3, 224, 224), {"out": (1000,)}),
    "regnet_y_1_6gf": (11_202_430, 11_202_430, 1_612_076_160, (3, 224, 224), {"out": (1000,)}),
    "regnet_y_3_2gf": (19_436_338, 19_436_338, 3_176_482_752, (3, 224, 224), {"out": (1000,)}),
    "regnet_y_8gf": (39_381_472, 39_381_472, 8_473_070_592, (3, 224, 224), {"out": (1000,)}),
    "regnet_y_16gf": (83_590_140, 83_590_140, 15_911_510_272, (3, 224, 224), {"out": (1000,)}),
    "regnet_y_32gf": (145_046_770, 145_046_770, 32_279_552_832, (3, 224, 224), {"out": (1000,)}),
    "regnet_y_128gf": (644_812_894, 644_812_894, 127_517_815_680, (3, 224, 224), {"out": (1000,)}),
    "inception_v3": (27_161_264, 23_834_568, 5_713_216_096, (3, 299, 299),
                     {"logits": (1000,), "aux_logits": (1000,)}),
}

# torchvision.models.<Name>_Weights.IMAGENET1K_V1.meta["_ops"] (GFLOPS), torchvision 0.29.1.
TORCHVISION_GFLOPS = {
    "resnet18": 1.814,
    "resnet34": 3.664,
    "resnet50": 4.089,
    "resnet101": 7.801,
    "resnet152": 11.514,
    "resnext50_32x4d": 4.23,
    "wide_resnet50_2": 11.398,
    "googlenet": 1.498,
    "shufflenet_v2_x1_0": 0.145,
    "convnext_tiny": 4.456,
    "mobilenet_v3_small": 0.057,
    "efficientnet_b0": 0.386,
    "regnet_y_400mf": 0.402,
}

# WRN-d-k, pystyle.info's code (B(3,3), dropout 0.3, 10 classes): issue 2's exact counts.
WRN_DK = {
    (40, 1): 563_930,
    (40, 2): 2_243_546,
    (40, 4): 8_949_210,
    (40, 8): 35_748_314,
    (28, 10): 36_479_194,
    (28, 12): 52_517_850,
    (22, 8): 17_158_106,
    (22, 10): 26_797_914,
    (16, 8): 10_961_370,
    (16, 10): 17_116_634,
}

# The WRN paper's Table 2: block types at k = 2, d counting blocks (d = 6n + 4).
WRN_TABLE2 = {
    ("B(1,3,1)", 40): 1_429_082,
    ("B(3,1)", 40): 1_211_354,
    ("B(1,3)", 40): 1_297_370,
    ("B(3,1,1)", 40): 1_343_066,
    ("B(3,3)", 28): 1_467_610,
    ("B(3,1,3)", 22): 1_145_498,
}


def spec_path(stem: str) -> str:
    return str(SPECS / f"{stem}.yaml")


@lru_cache(maxsize=None)
def summary(stem: str, overrides: tuple[tuple[str, object], ...] = ()):
    spec = archspec.load_spec(spec_path(stem), dict(overrides) or None)
    return archspec.summarize(archspec.compile_graph(spec))


@lru_cache(maxsize=None)
def graph(stem: str, overrides: tuple[tuple[str, object], ...] = ()):
    return archspec.compile_graph(archspec.load_spec(spec_path(stem), dict(overrides) or None))


def cli() -> list[str]:
    """The installed console script, or ``python -m archspec`` where there is none."""
    exe = Path(sys.executable).with_name("archspec")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "archspec"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli() + list(args), cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


# ------------------------------------------------------------------ coverage
def test_every_spec_has_golden_numbers():
    stems = {p.stem for p in SPECS.glob("*.yaml")}
    assert stems == set(GOLDEN), (
        f"specs without golden numbers: {sorted(stems - set(GOLDEN))}; "
        f"golden numbers without a spec: {sorted(set(GOLDEN) - stems)}")


def test_check_passes_on_every_spec():
    files = sorted(str(p.relative_to(ROOT)) for p in SPECS.glob("*.yaml"))
    r = run_cli("check", *files)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout.count(": ok") == len(files)


# --------------------------------------------------------------- the figures
@pytest.mark.parametrize("stem", sorted(GOLDEN))
def test_golden_numbers(stem):
    params, params_eval, macs, in_shape, outputs = GOLDEN[stem]
    s = summary(stem)
    assert s.params == params
    assert s.params_eval == params_eval
    assert s.macs == macs
    assert s.input_shape == in_shape
    assert {o["name"]: tuple(o["shape"]) for o in s.outputs} == outputs
    assert [o["name"] for o in s.outputs] == list(outputs)


@pytest.mark.parametrize("stem", ["wrn-28-10", "resnet50", "googlenet",
                                  "cifar10-resnet"])
def test_golden_numbers_from_cli_json(stem):
    params, params_eval, macs, in_shape, outputs = GOLDEN[stem]
    r = run_cli("summary", f"specs/{stem}.yaml", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["params"] == params
    assert doc["params_eval"] == params_eval
    assert doc["macs"] == macs
    assert doc["input_shape"] == ["N", *in_shape]
    assert doc["output_shapes"] == {k: ["N", *v] for k, v in outputs.items()}
    assert sum(row["params"] for row in doc["rows"]) == params


@pytest.mark.parametrize("stem", sorted(TORCHVISION_GFLOPS))
def test_macs_match_torchvision_gflops(stem):
    macs = summary(stem).macs
    published = TORCHVISION_GFLOPS[stem] * 1e9
    assert abs(macs - published) / published < 0.01, (macs, published)


@pytest.mark.parametrize("dk", sorted(WRN_DK))
def test_wrn_d_k(dk):
    d, k = dk
    assert summary("wrn", (("d", d), ("k", k))).params == WRN_DK[dk]


def test_wrn_d_k_through_cli_set():
    r = run_cli("summary", "specs/wrn.yaml", "--format", "json", "--set", "d=40",
                "--set", "k=4")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["params"] == WRN_DK[(40, 4)]


@pytest.mark.parametrize("block,d", sorted(WRN_TABLE2))
def test_wrn_paper_table2(block, d):
    s = summary("wrn", (("block", block), ("d", d), ("k", 2), ("count", "blocks")))
    assert s.params == WRN_TABLE2[(block, d)]


@pytest.mark.parametrize("l", [1, 2, 3, 4])
def test_wrn_paper_table3(l):
    # WRN-40-2 with B(3,…,3) of l convs: d counts convs, so n = 36 / (3 l) blocks per
    # group and the parameter count stays that of WRN-40-2.
    assert summary("wrn", (("d", 40), ("k", 2), ("l", l))).params == 2_243_546


# ------------------------------------------------------- structure and names
def test_resnet_names_are_torchvision_module_paths():
    g = graph("resnet50")
    for name, params in [("conv1", 9_408), ("bn1", 128), ("layer1.0.conv1", 4_096),
                         ("layer1.0.downsample.0", 16_384), ("layer1.0.downsample.1", 512),
                         ("layer4.2.bn3", 4_096), ("fc", 2_049_000)]:
        assert g.nodes[name]["params"] == params, name
    assert "layer1.1.downsample.0" not in g
    assert g.nodes["layer2.0.conv2"]["args"]["stride"] == (2, 2)   # v1.5: stride on the 3×3
    assert g.nodes["layer2.0.conv1"]["args"]["stride"] == (1, 1)
    g = graph("resnext50_32x4d")
    assert g.nodes["layer1.0.conv2"]["args"]["groups"] == 32
    assert g.nodes["layer1.0.conv2"]["shape"] == (128, 56, 56)
    assert graph("wide_resnet50_2").nodes["layer1.0.conv2"]["shape"] == (128, 56, 56)
    assert graph("resnet18").nodes["layer4.1.bn2"]["shape"] == (512, 7, 7)


def test_googlenet_structure():
    g = graph("googlenet")
    # the shape comments of pystyle.info's GoogLeNet post, (N, C, H, W) after each stage
    for name, shape in [("conv1.relu", (64, 112, 112)), ("maxpool1", (64, 56, 56)),
                        ("conv3.relu", (192, 56, 56)), ("maxpool2", (192, 28, 28)),
                        ("inception3a.concat", (256, 28, 28)), ("inception3b.concat", (480, 28, 28)),
                        ("maxpool3", (480, 14, 14)), ("inception4a.concat", (512, 14, 14)),
                        ("inception4d.concat", (528, 14, 14)), ("inception4e.concat", (832, 14, 14)),
                        ("maxpool4", (832, 7, 7)), ("inception5b.concat", (1024, 7, 7)),
                        ("avgpool", (1024, 1, 1)), ("fc", (1000,)),
                        ("aux1.pool", (512, 4, 4)), ("aux2.pool", (528, 4, 4)),
                        ("aux1.fc1", (1024,))]:
        assert g.nodes[name]["shape"] == shape, name
    for name in ["conv1.conv", "conv1.bn", "inception3a.branch1.conv",
                 "inception3a.branch2.0.conv", "inception3a.branch2.1.conv",
                 "inception3a.branch3.1.bn", "inception3a.branch4.0",
                 "inception3a.branch4.1.conv", "aux1.conv.conv", "aux1.fc1", "aux1.fc2",
                 "aux2.fc2", "dropout", "fc"]:
        assert name in g, name
    assert g.nodes["inception3a.branch4.0"]["op"] == "maxpool"
    assert g.nodes["inception3a.branch4.0"]["args"]["ceil_mode"] is True
    assert g.nodes["conv1.bn"]["args"]["eps"] == 0.001
    assert g.nodes["conv1.conv"]["args"]["bias"] is False
    assert g.nodes["aux1.fc1"]["params"] == 2048 * 1024 + 1024
    assert g.nodes["aux1.dropout"]["args"]["p"] == 0.7
    assert g.nodes["aux1.fc2"]["train_only"] and not g.nodes["fc"]["train_only"]
    assert g.nodes["inception4b.branch1.conv"]["inputs"] == ("inception4a.concat",)
    outs = {o["name"]: o for o in g.graph["outputs"]}
    assert [o["name"] for o in g.graph["outputs"]] == ["logits", "aux2", "aux1"]
    assert outs["aux1"]["loss_weight"] == outs["aux2"]["loss_weight"] == 0.3
    assert outs["logits"]["loss_weight"] == 1.0 and not outs["logits"]["train_only"]
    assert outs["aux1"]["train_only"] and outs["aux2"]["train_only"]


def test_googlenet_table_and_variants():
    spec = archspec.load_spec(spec_path("googlenet-paper"))
    t = spec.table("inception")
    assert t.columns == ("n1x1", "n3x3red", "n3x3", "n5x5red", "n5x5", "pool_proj")
    assert t.headers == ("#1×1", "#3×3 reduce", "#3×3", "#5×5 reduce", "#5×5", "pool proj")
    assert [r for r, _, _ in t.rows] == ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
    paper = archspec.compile_graph(spec)
    tv = graph("googlenet")
    assert paper.nodes["inception3a.branch3.1.conv"]["args"]["kernel"] == (5, 5)
    assert tv.nodes["inception3a.branch3.1.conv"]["args"]["kernel"] == (3, 3)
    assert paper.nodes["maxpool4"]["args"]["kernel"] == (3, 3)
    assert tv.nodes["maxpool4"]["args"]["kernel"] == (2, 2)
    assert paper.nodes["dropout"]["args"]["p"] == 0.4
    assert tv.nodes["dropout"]["args"]["p"] == 0.2
    assert paper.graph["init"] == "pystyle_googlenet"
    assert tv.graph["init"] == "torchvision_googlenet"
    tv_spec = archspec.load_spec(spec_path("googlenet"))
    changed = {k for k, v in tv_spec.param_values.items() if spec.param_values[k] != v}
    assert changed == {"branch3_kernel", "maxpool4_kernel", "dropout"}
    assert sorted(paper.nodes) == sorted(tv.nodes)


def test_cifar10_names_and_forward():
    g = graph("cifar10-deepbnnet")
    # the two ModuleLists interleave: layers.0 → layers2.0 → layers.1 → …
    assert g.nodes["layers2.0.conv"]["inputs"] == ("layers.0.bn",)
    assert g.nodes["layers.1.conv"]["inputs"] == ("layers2.0.bn",)
    assert g.nodes["layers.3.conv"]["args"]["stride"] == (2, 2)
    assert g.nodes["layers2.3.conv"]["args"]["stride"] == (1, 1)
    assert g.nodes["maxpool"]["op"] == "adaptive_maxpool"
    assert g.nodes[g.graph["outputs"][0]["node"]]["op"] == "log_softmax"
    g = graph("cifar10-resnet")
    add = g.nodes["layers2.0.add"]
    assert add["op"] == "add" and set(add["inputs"]) == {"layers.0.bn", "layers2.0.bn"}
    g = graph("cifar10-convbnnet")
    assert [n for n in g if n.endswith(".conv")] == ["layer.0.conv", "layer.1.conv",
                                                     "layer.2.conv"]
    assert g.nodes["layer.0.relu"]["inputs"] == ("layer.0.conv",)   # conv → ReLU → BN
    assert g.nodes["layer.0.bn"]["inputs"] == ("layer.0.relu",)
    assert g.nodes["out"]["op"] == "linear"
    g = graph("cifar10-basiccnn")
    assert {n for n, d in g.nodes(data=True) if d["params"]} == {"conv1", "conv2", "fc1", "fc2",
                                                                  "fc3"}


@pytest.mark.parametrize("stem", ["cifar10-convbnnet", "cifar10-deepbnnet", "cifar10-resnet"])
def test_bnlayer_dropout2d_is_off_as_in_the_post(stem):
    # The CIFAR-10 post builds Dropout2d(0.2) in BnLayer but never calls it: no dropout
    # by default.
    assert not any(d["op"] == "dropout2d" for _, d in graph(stem).nodes(data=True))
    g = graph(stem, (("dropout", 0.2),))
    drops = [n for n, d in g.nodes(data=True) if d["op"] == "dropout2d"]
    assert drops and all(g.nodes[n]["args"]["p"] == 0.2 for n in drops)
    assert summary(stem, (("dropout", 0.2),)).params == GOLDEN[stem][0]


# ------------------------------------------------------------------ no torch
def test_front_end_never_imports_torch():
    code = (
        "import sys, glob\n"
        "import archspec\n"
        "from archspec.shapes import summarize, to_json, to_table\n"
        "for f in sorted(glob.glob('specs/*.yaml')):\n"
        "    s = summarize(archspec.compile_graph(archspec.load_spec(f)))\n"
        "    to_json(s); to_table(s)\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')\n"
        "             or m.startswith('torchvision'))\n"
        "assert not bad, bad\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
