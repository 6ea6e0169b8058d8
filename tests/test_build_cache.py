"""The in-process cache of checked graphs behind ``build_module(path)``: a spec built again
reuses the graph its front end checked only while every file it read is unchanged and
the overrides, working directory and op registry are the same."""
from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
import torch

from archspec import build_module
from archspec.errors import SpecError
from archspec.torch_backend import _GRAPHS, to_graph

SPEC = """
name: tiny
input: {shape: [3, 8, 8]}
params:
  width: {default: 4, doc: channels}
layers:
  - conv: {op: conv, out: width, kernel: 3, padding: 1}
  - relu: {op: relu}
  - pool: {op: maxpool, kernel: 8, stride: 8}
  - flat: {op: flatten}
  - fc: {op: linear, out: 5}
"""


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_a_rebuild_reuses_the_graph_until_a_file_changes(spec_file, monkeypatch) -> None:
    import archspec.spec
    loads: list[str] = []
    real_load = archspec.spec.load_spec
    monkeypatch.setattr(archspec.spec, "load_spec",
                        lambda *a, **k: loads.append(str(a[0])) or real_load(*a, **k))
    p = spec_file(SPEC)
    first = build_module(p)
    n = len(_GRAPHS)
    again = build_module(p)
    assert loads == [str(p)] and len(_GRAPHS) == n and _params(again) == _params(first) == 3 * 4 * 9 + 4 + 4 * 5 + 5
    assert again.graph_ir is not first.graph_ir          # a copy: one build's IR is its own
    p.write_text(p.read_text().replace("default: 4", "default: 6"))
    assert _params(build_module(p)) == 3 * 6 * 9 + 6 + 6 * 5 + 5
    assert loads == [str(p)] * 2


def test_overrides_are_part_of_the_key(spec_file) -> None:
    p = spec_file(SPEC)
    assert _params(build_module(p, {"width": 2})) == 3 * 2 * 9 + 2 + 2 * 5 + 5
    assert _params(build_module(p, ["width=3"])) == 3 * 3 * 9 + 3 + 3 * 5 + 5
    assert _params(build_module(p, iter(["width=3"]))) == 3 * 3 * 9 + 3 + 3 * 5 + 5
    assert _params(build_module(p)) == 3 * 4 * 9 + 4 + 4 * 5 + 5


def test_mutating_a_returned_graph_leaves_the_next_build_alone(spec_file) -> None:
    p = spec_file(SPEC)
    g = to_graph(p)
    with pytest.raises(nx.NetworkXError):     # the IR is handed on frozen
        g.remove_node("fc")
    g.graph["name"] = "changed"
    g.nodes["fc"]["params"] = -1
    g2 = to_graph(p)
    assert "fc" in g2 and g2.graph["name"] == "tiny" and g2.nodes["fc"]["params"] > 0


def test_an_error_is_raised_again_and_never_cached(spec_file) -> None:
    p = spec_file(SPEC.replace("out: 5", "out: -5"))
    for _ in range(2):
        with pytest.raises(SpecError):
            build_module(p)
    p.write_text(SPEC)
    assert _params(build_module(p)) == 3 * 4 * 9 + 4 + 4 * 5 + 5


def test_a_file_replaced_by_one_of_the_same_size_is_read_again(spec_file, tmp_path: Path) -> None:
    p = spec_file(SPEC)
    build_module(p)
    p.write_text(SPEC.replace("out: 5", "out: 7"))          # same length, other text
    assert build_module(p).fc.out_features == 7
