"""archspec.diff and ``archspec diff``: report content for B(3,3) vs B(1,3,1) and k=8 vs k=10."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import archspec
from archspec.diff import diff_dot, diff_graphs, to_text

ROOT = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"
HAVE_DOT = shutil.which("dot") is not None
WRN40 = {"count": "blocks", "d": 40, "k": 2}


def graph(path: str, overrides: dict | None = None):
    return archspec.compile_graph(archspec.load_spec(str(ROOT / path), overrides))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archspec", "diff", *args], capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ))


@pytest.fixture(scope="module")
def blocks():
    a = graph("specs/wrn.yaml", {**WRN40, "block": "B(3,3)"})
    b = graph("specs/wrn.yaml", {**WRN40, "block": "B(1,3,1)"})
    return a, b, diff_graphs(a, b, "B(3,3)", "B(1,3,1)")


def test_block_types_nodes(blocks):
    _, _, d = blocks
    # WRN-40-2 has 6 blocks per group; B(1,3,1) adds bn3, relu_2, dropout_1, conv3 to each
    assert len(d.added) == 18 * 4 and not d.removed
    assert {n.rsplit(".", 1)[1] for n in d.added} == {"bn3", "relu_2", "dropout_1", "conv3"}
    assert d.changed["layer2.0.conv1"] == ["kernel 3×3 → 1×1", "padding 1 → 0"]
    assert d.changed["layer2.3.add"] == ["input conv2 → conv3"]
    assert len(d.changed) == 36   # conv1 and add of 18 blocks
    assert "layer2.0.conv2" not in d.changed and "layer2.0.shortcut" not in d.changed


def test_block_types_report(blocks):
    _, _, d = blocks
    text = to_text(d)
    assert "nodes: 72 added, 0 removed, 36 changed, 118 unchanged" in text
    assert "+ layer1.*.conv3 ×6      conv 1×1, 32→32" in text
    assert "~ layer3.*.conv1 ×6  kernel 3×3 → 1×1; padding 1 → 0" in text
    assert "~ layer3.*.add ×6    input conv2 → conv3" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()
            if line.startswith(("layer", "total", "conv1"))}
    assert rows["layer1"][1:4] == ["107,232", "68,704", "-38,528"]
    assert rows["conv1"][1:4] == ["432", "432", "0"]
    assert rows["total"][1:4] == ["2,243,546", "1,429,082", "-814,464"]
    assert d.params_a == archspec.summarize(blocks[0]).params
    assert d.macs_b == archspec.summarize(blocks[1]).macs


def test_widening_factor_report():
    a, b = graph("specs/wrn-28-10.yaml", {"k": 8}), graph("specs/wrn-28-10.yaml")
    d = diff_graphs(a, b)
    assert not d.added and not d.removed
    assert d.changed["layer2.1.conv1"] == ["out 256 → 320", "shape 256×16×16 → 320×16×16"]
    assert d.changed["fc"] == ["params 5,130 → 6,410"]
    assert (d.params_a, d.params_b) == (23_354_842, 36_479_194)
    text = to_text(d)
    assert "~ layer1.*.conv1 ×4  out 128 → 160; shape 128×32×32 → 160×32×32" in text
    assert "changed in shape only (74):" in text
    assert "layer3   17,833,472  27,862,400  +10,028,928 (+56.2%)" in text
    assert "params 23.35 M → 36.48 M" in text


def test_identical():
    g = graph("specs/wrn.yaml", {"d": 16, "k": 1})
    d = diff_graphs(g, g)
    assert d.identical
    assert "no differences: 57 nodes match" in to_text(d)


def test_different_specs_added_and_removed():
    if not (ROOT / "specs/resnet34.yaml").exists():
        pytest.skip("resnet specs not written yet")
    a, b = graph("specs/resnet34.yaml"), graph("specs/resnet18.yaml")
    d = diff_graphs(a, b)
    assert not d.added
    assert "layer1.2.conv1" in d.removed and "layer3.5.conv2" in d.removed
    text = to_text(d)
    assert "removed" in text and "layer3" in text


def test_diagram_highlights(blocks):
    a, b, d = blocks
    src = diff_dot(a, b, d).source
    assert "+ conv 1×1, 32→32" in src          # added
    assert "~ conv 1×1, 32→32" in src          # changed, with its note
    assert "kernel 3×3 → 1×1; padding 1 → 0" in src
    # the removed edge conv2 → add is drawn, dashed
    line = next(x for x in src.splitlines() if '"layer1.0.conv2" -> "layer1.0.add"' in x)
    assert "dashed" in line
    collapsed = diff_dot(a, b, d, depth=2).source
    assert "was B(3,3)" in collapsed


def test_diagram_removed_nodes():
    a = graph("specs/wrn.yaml", {"d": 22, "k": 1})
    b = graph("specs/wrn.yaml", {"d": 16, "k": 1})
    d = diff_graphs(a, b)
    assert d.removed and all(".2." in n for n in d.removed)
    src = diff_dot(a, b, d).source
    line = next(x for x in src.splitlines() if x.lstrip().startswith('"layer1.2.conv1" [label='))
    assert "<TD>− conv 3×3" in line and "dashed" in line


# ------------------------------------------------------------- CLI
def test_cli_same_spec_with_set_b(tmp_path):
    out = tmp_path / "d.svg"
    r = cli("specs/wrn.yaml", "--set", "count=blocks", "--set", "d=40", "--set", "k=2",
            "--set-b", "block=B(1,3,1)", "-o", str(out), "--depth", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("A: specs/wrn.yaml --set count=blocks --set d=40 --set k=2\n"
                               "B: specs/wrn.yaml --set count=blocks --set d=40 --set k=2 "
                               "--set block=B(1,3,1)\n")
    assert "72 added" in r.stdout
    if HAVE_DOT:
        root = ET.parse(out).getroot()
        text = "\n".join(t.text or "" for t in root.iter(f"{SVG}text"))
        assert "wrn (count=blocks d=40 k=2): defaults → block=B(1,3,1)" in text
        assert "~ layer1.0" in text


def test_cli_set_a_and_two_files():
    r = cli("specs/wrn-28-10.yaml", "specs/wrn.yaml", "--set-a", "k=8", "--limit", "2")
    assert r.returncode == 0, r.stderr
    assert "  … " in r.stdout and "more" in r.stdout
    assert "total    23,354,842  36,479,194" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--set-b", "nope=1"], "nope"),
    (["-o", "/no/such/dir/d.svg"], "cannot write '/no/such/dir/d.svg'"),
    (["-o", "d.svg", "--format", "gif"], "unknown format 'gif'"),
    (["-o", "d.svg", "--depth", "-2"], "--depth must be 0 or more"),
    (["--limit", "0"], "--limit must be 1 or more"),
    (["--set-b", "k=8", "--depth", "-1"], "--depth must be 0 or more"),   # even without -o
])
def test_cli_bad_input(args, message):
    r = cli("specs/wrn.yaml", *args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) >= 1 and message in lines[0]
    assert not (ROOT / "d.svg").exists()
