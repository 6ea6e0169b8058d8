"""Static figures of the zoo against torchvision, without torch.

``tests/golden/torchvision-zoo.json`` (written by ``scripts/torchvision_zoo.py`` from
torchvision 0.29.1) holds, for each of torchvision's 68 CNN builders, the numel of the
built model and each published weight's ``num_params``, input size and GFLOPS. The spec
reachable by the builder's name (``specs/<builder>.yaml``) must give that parameter
count, and MACs within 1% of the GFLOPS at every weight's own input size. This file
never imports torch (the torch-free suite runs it), so all 68 are checked in seconds.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import archspec
from archspec import library

GOLDEN = json.loads((Path(__file__).parent / "golden" / "torchvision-zoo.json").read_text())
BUILDERS = GOLDEN["builders"]
SPECS = Path(__file__).resolve().parent.parent / "specs"


def _summary(builder: str, in_size: int | None = None):
    spec = SPECS / f"{builder}.yaml"
    if not spec.exists():
        pytest.skip(f"no spec for torchvision's {builder} yet")
    overrides = {"in_size": in_size} if in_size is not None else None
    return archspec.summarize(archspec.compile_graph(archspec.load_spec(str(spec), overrides)))


def test_the_golden_table_is_torchvisions_68_cnns() -> None:
    assert GOLDEN["torchvision"] == "0.29.1" and len(BUILDERS) == 68
    # A weight's num_params counts the model it is evaluated as: GoogLeNet's without the
    # two auxiliary heads (13,004,888 built, 6,624,904 in eval), every other as built.
    differ = {n for n, b in BUILDERS.items() for w in b["weights"].values()
              if w["num_params"] != b["params"]}
    assert differ == {"googlenet"}


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_static_params_equal_torchvisions(builder: str) -> None:
    assert _summary(builder).params == BUILDERS[builder]["params"]


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_macs_within_one_percent_of_torchvisions_gflops(builder: str) -> None:
    for name, w in sorted(BUILDERS[builder]["weights"].items()):
        macs = _summary(builder, w["input_size"]).macs
        # the published GFLOPS have 3 decimals: shufflenet_v2_x0_5's 0.040 is 40.48 M MACs
        # rounded, 1.2% off, so the tolerance is 1% or half the last digit, the larger
        assert macs == pytest.approx(w["gflops"] * 1e9, rel=0.01, abs=0.0005e9), \
            (name, w["input_size"])


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_reachable_by_the_builders_name(builder: str) -> None:
    if not (SPECS / f"{builder}.yaml").exists():
        pytest.skip(f"no spec for torchvision's {builder} yet")
    assert library.resolve(builder, "spec") == str(SPECS / f"{builder}.yaml")

