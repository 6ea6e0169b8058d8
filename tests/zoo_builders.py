"""Which torchvision builders the default suite checks, one per family (shared by the
tests that run something per zoo spec: tests/test_zoo_exact.py, the emitted-tree and
static-shape checks over every shipped spec). The others run with ``--zoo-all``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((ROOT / "tests" / "golden" / "torchvision-zoo.json").read_text())["builders"]
#: the default suite's builder of each family (the alphabetically first with a spec where
#: a family is not named)
REPRESENTATIVE = {"resnet": "resnet50", "efficientnet": "efficientnet_b0",
                  "regnet": "regnet_y_400mf", "convnext": "convnext_tiny",
                  "shufflenetv2": "shufflenet_v2_x1_0", "mobilenetv3": "mobilenet_v3_small",
                  "vgg": "vgg16", "squeezenet": "squeezenet1_0", "densenet": "densenet121",
                  "mobilenetv2": "mobilenet_v2", "mnasnet": "mnasnet1_0"}


def with_specs() -> list[str]:
    """torchvision's builders that have a spec of their name, sorted."""
    return sorted(b for b in GOLDEN if (ROOT / "specs" / f"{b}.yaml").exists())


def representatives() -> set[str]:
    have = with_specs()
    out = set()
    for family in sorted({GOLDEN[b]["family"] for b in have}):
        named = REPRESENTATIVE.get(family)
        out.add(named if named in have else min(b for b in have if GOLDEN[b]["family"] == family))
    return out


def zoo_marks(stem: str) -> list:
    """``[pytest.mark.zoo_all]`` for a zoo builder that is not its family's representative."""
    return [pytest.mark.zoo_all] if stem in GOLDEN and stem not in representatives() else []
