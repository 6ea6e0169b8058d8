"""examples/: every example spec checks, every example script runs and prints true figures.

The scripts run in-process through their ``main(argv)`` (torch is imported once) with
small sizes; the torch-free ones also run as real processes, to show they stay torch-free
and exit 2 with one located line on a bad value.
"""
from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import archspec

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples"
SPECS = sorted((EX / "specs").glob("*.yaml"))

# Parameter counts, each from an outside source or by hand:
EXPECTED_PARAMS = {
    # He et al.'s ResNet-20 with option A shortcuts has 269,722 parameters; option B's two
    # 1×1 projections add (16·32 + 2·32) + (32·64 + 2·64) = 2,752.
    "cifar-resnet.yaml": 269_722 + 2_752,
    # Zhang et al. (2017), Table 1: "Inception ... 1,649,402" parameters.
    "inception-small.yaml": 1_649_402,
    # WRN-16-8 (10,961,370 for 10 classes) with a 100-way fc: 90 more rows of 512 + 1.
    "wrn-16-8-cifar100.yaml": 10_961_370 + 90 * 513,
}


def run_example(name: str, argv: list[str]):
    """Import examples/<name>.py and call its main(argv)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EX / f"{name}.py")
    assert spec and spec.loader
    mod: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main(argv)


def py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_every_example_is_documented() -> None:
    readme = (EX / "README.md").read_text(encoding="utf-8")
    files = [p for p in EX.rglob("*") if p.is_file() and p.suffix in (".py", ".yaml")]
    assert files
    for p in files:
        assert str(p.relative_to(EX)) in readme, f"examples/README.md does not mention {p.name}"
    assert set(EXPECTED_PARAMS) == {p.name for p in SPECS}


def test_example_specs_check() -> None:
    r = subprocess.run([sys.executable, "-m", "archspec", "check", *map(str, SPECS)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = dict(re.findall(r"([\w.-]+\.yaml): ok \(\d+ ops, ([\d,]+) params", r.stdout))
    assert {k: int(v.replace(",", "")) for k, v in got.items()} == EXPECTED_PARAMS


def test_example_spec_error_is_located() -> None:
    r = subprocess.run([sys.executable, "-m", "archspec", "check",
                        "examples/specs/cifar-resnet.yaml", "--set", "n=0"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = r.stderr.splitlines()[0]
    assert line in (EX / "README.md").read_text(encoding="utf-8")   # as the README shows it
    assert line.startswith("examples/specs/cifar-resnet.yaml:23:12: error: each stage needs")


def test_example_grid() -> None:
    r = subprocess.run([sys.executable, "-m", "archspec", "grid",
                        "examples/grids/cifar-resnet-blocks.yaml", "--format", "json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cells = {c["cell"]: c for c in json.loads(r.stdout)["cells"]}
    assert list(cells) == ["res-n3", "res-n5", "B(3,3)-n3", "B(3,3)-n5",
                           "B(1,3,1)-n3", "B(1,3,1)-n5"]
    assert all(c["status"] == "ok" for c in cells.values())
    # The longest path counts the paper's 6n + 2 layers: ResNet-20 and ResNet-32.
    assert (cells["res-n3"]["depth"], cells["res-n5"]["depth"]) == (20, 32)
    assert cells["res-n3"]["params"] == EXPECTED_PARAMS["cifar-resnet.yaml"]
    # A cell is the template with its axis values set, as load_spec would make it.
    b33 = archspec.summarize(archspec.compile_graph(archspec.load_spec(
        "examples/specs/cifar-resnet.yaml", {"block": "B(3,3)", "n": 5})))
    assert cells["B(3,3)-n5"]["params"] == b33.params


def test_ablation_runs_without_torch() -> None:
    code = ("import runpy, sys; sys.argv = ['ablation.py']; "
            "runpy.run_path('examples/ablation.py', run_name='__main__'); "
            "print('torch imported:', 'torch' in sys.modules)")
    r = py(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().endswith("torch imported: False")
    # docs/grids.md's WRN Table 2 figures at d = 40 (k = 2, count = blocks).
    assert re.search(r"^B\(1,3,1\)\s+1,429,082\s", r.stdout, re.M)
    assert re.search(r"^B\(3,1\)\s+1,211,354\s", r.stdout, re.M)


def test_ablation_values_and_bad_input() -> None:
    rows = run_example("ablation", ["specs/wrn.yaml", "--vary", "k", "1", "2", "4"])
    assert [r["value"] for r in rows] == ["1", "2", "4"]
    # WRN-28-k: the WRN post's table gives 0.37 M, 1.47 M and 5.85 M.
    assert [r["params"] for r in rows] == [369_498, 1_467_610, 5_849_050]
    assert rows[0]["changed"] == rows[0]["added"] == 0
    rows = run_example("ablation", [])
    b31 = next(r for r in rows if r["value"] == "B(3,1)")
    assert (b31["added"], b31["removed"]) == (0, 0) and b31["changed"] == 18  # 3×3 → 3×1 convs
    r = py("import runpy, sys; sys.argv = ['ablation.py', 'specs/wrn.yaml', '--vary', 'd', "
           "'16', '17']; runpy.run_path('examples/ablation.py', run_name='__main__')")
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "specs/wrn.yaml:30:12: error: depth should be 6n+4, got 17; d = 3·l·n + 4 with l = 2 "
        "convs per block; try d = 16 or 22"]


@pytest.fixture
def one_thread():
    """Tiny ops on a shared machine: one intra-op thread is many times faster."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_pretrained_torchvision(one_thread) -> None:
    out = run_example("pretrained_torchvision", ["--size", "32", "--batch", "1"])
    assert out["params"] == 11_689_512 and out["loaded"] == 122
    assert out["max_abs_diff"] == 0.0          # same kernels in the same order
    assert out["missing"] == ["fc.weight", "fc.bias"] and out["unexpected"] == []
    assert out["finetune_shape"] == (1, 10)


def test_grid_loop(one_thread) -> None:
    rows = run_example("grid_loop", ["--set", "width=2", "--set", "in_size=4",
                                     "--steps", "8", "--batch", "4"])
    assert [r["cell"] for r in rows] == ["res-n3", "res-n5", "B(3,3)-n3", "B(3,3)-n5",
                                         "B(1,3,1)-n3", "B(1,3,1)-n5"]
    for r in rows:
        block, n = r["cell"].rsplit("-n", 1)
        s = archspec.summarize(archspec.compile_graph(archspec.load_spec(
            "examples/specs/cifar-resnet.yaml", [f"block={block}", f"n={n}", "width=2",
                                                 "in_size=4"])))
        assert (r["params"], r["macs"]) == (s.params, s.macs)
        assert len(r["losses"]) == 8 and all(math.isfinite(x) for x in r["losses"])
        assert r["losses"][-1] < r["losses"][0], r
    with pytest.raises(archspec.SpecError) as e:     # the script prints it and exits 2
        run_example("grid_loop", ["--set", "widht=2"])
    assert str(e.value) == ("--set widht=2: error: unknown parameter 'widht' in --set; "
                            "did you mean 'width'?")


def test_inception_small_builds(one_thread) -> None:
    import torch
    m = archspec.build_module("examples/specs/inception-small.yaml").eval()
    assert sum(p.numel() for p in m.parameters()) == 1_649_402
    with torch.no_grad():
        assert m(torch.randn(2, 3, 28, 28)).shape == (2, 10)
    # The BNs learn nothing (the paper's count) but still normalise with running statistics.
    assert not list(m.i1.b1.bn.parameters()) and m.i1.b1.bn.running_mean.shape == (32,)
