"""archspec.render and ``archspec render``: real ``dot`` runs, SVG counts, golden DOT, bad input.

Regenerate the golden DOT files after an intended change with
``ARCHSPEC_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_render.py``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import archspec
from archspec.errors import SpecError
from archspec.render import (op_label, render_graph, shortcut_edges, to_dot)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
SVG = "{http://www.w3.org/2000/svg}"
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz 'dot' is not installed")


def graph(path: str, overrides: dict | None = None):
    return archspec.compile_graph(archspec.load_spec(str(ROOT / path), overrides))


@pytest.fixture(scope="module")
def wrn16():
    """WRN-16-1: 2 blocks per group, 57 ops, projection shortcuts in layer2.0 and layer3.0."""
    return graph("specs/wrn.yaml", {"d": 16, "k": 1})


def svg_counts(path: str | Path) -> dict[str, list[str]]:
    """Titles of the clusters, nodes and edges that dot drew, by class."""
    root = ET.parse(path).getroot()
    out: dict[str, list[str]] = {"cluster": [], "node": [], "edge": []}
    for g in root.iter(f"{SVG}g"):
        cls = g.get("class")
        if cls in out:
            out[cls].append(g.find(f"{SVG}title").text)
    return out


def svg_text(path: str | Path) -> str:
    """Every text element of an SVG, one per line (entities decoded)."""
    root = ET.parse(path).getroot()
    return "\n".join(t.text or "" for t in root.iter(f"{SVG}text"))


def cli(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archspec", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})})


# ------------------------------------------------------------- SVG counts
@needs_dot
@pytest.mark.parametrize("depth, clusters, nodes, edges", [
    (0, 0, 3, 2),      # input → wrn → output
    (1, 0, 11, 10),    # input, conv1, layer1..3, bn, relu, avgpool, flatten, fc, output
    (2, 3, 14, 13),    # layer1..3 clusters around 6 collapsed blocks
    (None, 9, 58, 63),  # 57 ops + output; 62 IR edges + fc → output; 3 stages × (1 + 2 blocks)
])
def test_svg_counts_wrn16(tmp_path, wrn16, depth, clusters, nodes, edges):
    out = render_graph(wrn16, tmp_path / "g.svg", depth=depth)
    assert out == str(tmp_path / "g.svg")
    c = svg_counts(out)
    assert (len(c["cluster"]), len(c["node"]), len(c["edge"])) == (clusters, nodes, edges)


@needs_dot
def test_svg_counts_expand_one_block(tmp_path, wrn16):
    """--depth 2 --expand layer2.0: one block's 9 ops in its cluster, the others collapsed."""
    c = svg_counts(render_graph(wrn16, tmp_path / "g.svg", depth=2, expand=["layer2.0"]))
    assert (len(c["cluster"]), len(c["node"]), len(c["edge"])) == (4, 22, 22)
    assert "cluster_layer2.0" in c["cluster"] and "layer2.1" in c["node"]
    assert "layer2.0.shortcut" in c["node"]


@needs_dot
def test_svg_cluster_names_full(tmp_path, wrn16):
    c = svg_counts(render_graph(wrn16, tmp_path / "g.svg"))
    assert sorted(c["cluster"]) == sorted(
        f"cluster_layer{i}" + s for i in (1, 2, 3) for s in ("", ".0", ".1"))
    assert "layer2.0.shortcut" in c["node"] and "__output_out" in c["node"]


@needs_dot
def test_collapsed_node_says_what_it_is(tmp_path):
    g = graph("specs/wrn-28-10.yaml")
    text = svg_text(render_graph(g, tmp_path / "g.svg", depth=1))
    assert "B(3,3) ×4, 16→160" in text
    assert "B(3,3) ×4, 160→320" in text
    assert "wrn-28-10 — 36.48 M params, 5.24 GMACs per sample" in text
    c = svg_counts(tmp_path / "g.svg")
    assert {"layer1", "layer2", "layer3"} <= set(c["node"])


# ------------------------------------------------------------- labels, styles
def test_op_labels():
    conv = {"out": 320, "kernel": (3, 3), "stride": (2, 2), "padding": (1, 1),
            "dilation": (1, 1), "groups": 1, "bias": False}
    assert op_label("conv", conv, (160, 32, 32), (320, 16, 16)) == "conv 3×3 /2, 160→320"
    assert op_label("conv", {**conv, "groups": 32, "stride": (1, 1), "kernel": (1, 7)},
                    (64, 8, 8), None) == "conv 1×7 g32, 64→320"
    assert op_label("linear", {"out": 10, "bias": True}, (640,), (10,)) == "linear 640→10"
    assert op_label("maxpool", {"kernel": (3, 3), "stride": None, "padding": (0, 0),
                                "ceil_mode": False, "dilation": (1, 1)},
                    (64, 8, 8), None) == "maxpool 3×3 /3"
    assert op_label("dropout", {"p": 0.3}, None, None) == "dropout 0.3"


def test_shortcut_edges_wrn16(wrn16):
    skips = shortcut_edges(wrn16)
    # identity shortcuts: block input straight into the add
    assert ("conv1", "layer1.0.add") in skips
    assert ("layer1.0.add", "layer1.1.add") in skips
    # projection shortcuts: the fork → 1×1 conv → add
    assert ("layer1.1.add", "layer2.0.shortcut") in skips
    assert ("layer2.0.shortcut", "layer2.0.add") in skips
    # the main path is not a shortcut
    assert ("layer1.0.conv2", "layer1.0.add") not in skips
    assert ("layer1.1.add", "layer2.0.bn1") not in skips
    assert len(skips) == 8   # 4 identity + 2 × 2 projection


def test_shortcut_and_train_only_styles():
    g = graph("tests/golden/tiny.yaml")
    src = to_dot(g).source
    shortcut = re.search(r'"res\.shortcut" -> "res\.add" \[([^\]]*)\]', src).group(1)
    assert 'color="#0072B2"' in shortcut and "weight=0" in shortcut
    for n in ("aux.0", "aux.1", "aux.2"):
        line = next(x for x in src.splitlines() if x.strip().startswith(f'"{n}" ['))
        assert "dashed" in line
    assert 'subgraph cluster_aux {' in src and "rounded,dashed" in src
    assert "training only, loss ×0.3" in src


def test_direction_lr():
    g = graph("tests/golden/tiny.yaml")
    assert "rankdir=LR" in to_dot(g, direction="LR").source


@pytest.mark.parametrize("depth", [None, 1])
def test_golden_dot(depth):
    """The DOT text for a small spec is stable (labels, colours, clusters, edges)."""
    g = graph("tests/golden/tiny.yaml")
    g.graph["path"] = "tests/golden/tiny.yaml"
    src = to_dot(g, depth=depth).source
    path = GOLDEN / ("tiny.dot" if depth is None else f"tiny-depth{depth}.dot")
    if os.environ.get("ARCHSPEC_UPDATE_GOLDEN"):
        path.write_text(src, encoding="utf-8")
    assert src == path.read_text(encoding="utf-8")


# ------------------------------------------------------------- larger graphs
@needs_dot
def test_googlenet_branches_side_by_side(tmp_path):
    if not (ROOT / "specs/googlenet-paper.yaml").exists():
        pytest.skip("specs/googlenet-paper.yaml not written yet")
    g = graph("specs/googlenet-paper.yaml")
    out = render_graph(g, tmp_path / "g.svg")
    root = ET.parse(out).getroot()
    boxes = {}
    for el in root.iter(f"{SVG}g"):
        if el.get("class") != "cluster":
            continue
        title = el.find(f"{SVG}title").text
        shape = el.find(f"{SVG}path")
        if shape is None:
            shape = el.find(f"{SVG}polygon")
        nums = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?",
                                              shape.get("d") or shape.get("points"))]
        xs, ys = nums[0::2], nums[1::2]
        boxes[title] = (min(xs), max(xs), min(ys), max(ys))
    branches = sorted(t for t in boxes if re.fullmatch(r"cluster_inception3a\.branch\d", t))
    assert len(branches) == 4
    spans = [boxes[b] for b in branches]
    # side by side: left to right in branch order, sharing a vertical band
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(3))
    assert max(s[2] for s in spans) < min(s[3] for s in spans)
    # the auxiliary heads are drawn dashed
    text = svg_text(out)
    assert text.count("training only, loss ×0.3") == 2


@needs_dot
def test_resnet152_full_depth_renders_quickly(tmp_path):
    if not (ROOT / "specs/resnet152.yaml").exists():
        pytest.skip("specs/resnet152.yaml not written yet")
    g = graph("specs/resnet152.yaml")
    assert g.number_of_nodes() > 500
    t0 = time.perf_counter()
    out = render_graph(g, tmp_path / "r152.svg")
    elapsed = time.perf_counter() - t0
    assert len(svg_counts(out)["node"]) == g.number_of_nodes() + 1
    assert elapsed < 30, f"ResNet-152 took {elapsed:.1f} s"


# ------------------------------------------------------------- API errors
def test_api_bad_arguments(tmp_path, wrn16):
    with pytest.raises(SpecError, match="unknown format 'jpg'"):
        render_graph(wrn16, tmp_path / "g.jpg", fmt="jpg")
    with pytest.raises(SpecError, match="--depth must be 0 or more"):
        render_graph(wrn16, tmp_path / "g.svg", depth=-1)
    with pytest.raises(SpecError, match="unknown direction"):
        render_graph(wrn16, tmp_path / "g.svg", direction="BT")
    with pytest.raises(SpecError, match="does not exist"):
        render_graph(wrn16, tmp_path / "no" / "g.svg")
    assert list(tmp_path.iterdir()) == []


def test_render_dot_format_without_layout(tmp_path, wrn16):
    out = render_graph(wrn16, tmp_path / "g.dot", fmt="dot", depth=1)
    assert Path(out).read_text().startswith("digraph wrn {")
    assert [p.name for p in tmp_path.iterdir()] == ["g.dot"]


# ------------------------------------------------------------- CLI
@needs_dot
@pytest.mark.parametrize("fmt, magic", [("svg", b"<?xml"), ("png", b"\x89PNG"),
                                        ("pdf", b"%PDF"), ("dot", b"digraph")])
def test_cli_formats(tmp_path, fmt, magic):
    out = tmp_path / f"tiny.{fmt}"
    r = cli("render", "tests/golden/tiny.yaml", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().startswith(magic)
    assert r.stderr.strip() == f"wrote {out}"


@needs_dot
def test_cli_default_output_and_set(tmp_path):
    r = cli("render", str(ROOT / "specs/wrn.yaml"), "--set", "d=16", "--set", "k=1",
            "--depth", "1", "--direction", "LR", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = svg_text(tmp_path / "wrn.svg")
    assert "wrn — 175.07 k params, 26.66 MMACs per sample" in text


def test_cli_stdout_dot():
    r = cli("render", "tests/golden/tiny.yaml", "--format", "dot", "-o", "-")
    assert r.returncode == 0 and r.stdout.startswith("digraph tiny {")


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.mark.parametrize("args, message", [
    (["--format", "jpg"], "--format: error: unknown format 'jpg'; choose one of svg, png, pdf, dot"),
    (["--depth", "-1"], "--depth: error: --depth must be 0 or more, got -1"),
    (["--direction", "BT"], "--direction: error: unknown direction 'BT'"),
])
def test_cli_bad_arguments(tmp_path, args, message):
    out = tmp_path / "g.svg"
    line = one_line_error(cli("render", "tests/golden/tiny.yaml", "-o", str(out), *args))
    assert line.startswith(message)
    assert list(tmp_path.iterdir()) == []


def test_cli_format_and_file_name_disagree(tmp_path):
    line = one_line_error(cli("render", "tests/golden/tiny.yaml", "-o", str(tmp_path / "g.jpg")))
    assert "unknown format 'jpg' (from the output file" in line
    line = one_line_error(cli("render", "tests/golden/tiny.yaml", "-o", str(tmp_path / "g.svg"),
                              "--format", "png"))
    assert line.startswith("--format: error: --format png does not match the output file")
    assert list(tmp_path.iterdir()) == []


def test_cli_unknown_expand(tmp_path):
    line = one_line_error(cli("render", "tests/golden/tiny.yaml", "--depth", "1", "--expand",
                              "ress", "-o", str(tmp_path / "g.svg")))
    assert line == ("--expand: error: no block or scope named 'ress'; did you mean 'res'?")
    assert list(tmp_path.iterdir()) == []


def test_cli_unwritable_output(tmp_path):
    missing = tmp_path / "no" / "such" / "g.svg"
    line = one_line_error(cli("render", "tests/golden/tiny.yaml", "-o", str(missing)))
    assert line.startswith(f"{missing}: error: cannot write '{missing}': folder")
    line = one_line_error(cli("render", "tests/golden/tiny.yaml", "-o", str(tmp_path)))
    assert "it is a directory" in line
    assert list(tmp_path.iterdir()) == []


def test_cli_output_under_a_file(tmp_path):
    """``-o /etc/passwd/x.svg``: a file where a folder should be is named, nothing written."""
    f = tmp_path / "f"
    f.write_text("keep")
    for cmd in (["render", "tests/golden/tiny.yaml"],
                ["diff", "tests/golden/tiny.yaml"]):
        line = one_line_error(cli(*cmd, "-o", str(f / "sub" / "g.svg")))
        assert line.endswith(f"'{f}' is a file, not a folder; "
                             "choose an output path in an existing folder")
    assert f.read_text() == "keep" and [p.name for p in tmp_path.iterdir()] == ["f"]


def test_cli_unwritable_folder(tmp_path):
    """A folder that cannot be written (read-only for a user; /proc for root, whom
    permissions do not stop): one line before any layout."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
    elif os.path.isdir("/proc/self"):
        folder = Path("/proc")
    else:
        pytest.skip("no folder that root cannot write")
    line = one_line_error(cli("render", "tests/golden/tiny.yaml", "-o", str(folder / "g.svg")))
    assert f"cannot write '{folder / 'g.svg'}': folder '{folder}' is not writable" in line


def test_cli_bad_spec_and_set(tmp_path):
    line = one_line_error(cli("render", "tests/golden/tiny.yaml", "--set", "nope=1",
                              "-o", str(tmp_path / "g.svg")))
    assert "error:" in line
    assert list(tmp_path.iterdir()) == []


def test_cli_dot_missing(tmp_path):
    """No dot on PATH: a clear line saying how to install it; --format dot still works;
    an existing output file is left as it was."""
    empty = tmp_path / "bin"
    empty.mkdir()
    out = tmp_path / "g.svg"
    out.write_text("old")
    env = {"PATH": str(empty)}
    line = one_line_error(cli("render", "tests/golden/tiny.yaml", "-o", str(out), env=env))
    assert "'dot' program is not installed" in line and "apt-get install graphviz" in line
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "g.svg"]
    r = cli("render", "tests/golden/tiny.yaml", "--format", "dot", "-o",
            str(tmp_path / "g.dot"), env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "g.dot").read_text().startswith("digraph tiny {")


def test_render_does_not_import_torch():
    code = ("import sys, archspec, archspec.render, archspec.diff, archspec.commands.render, "
            "archspec.commands.diff; "
            "g = archspec.compile_graph(archspec.load_spec('tests/golden/tiny.yaml')); "
            "archspec.render.to_dot(g, 1).source; "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip() == "False", r.stderr
