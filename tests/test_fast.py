"""The front end's caches change no result: a remembered block instance, a cached parse
or a reused template gives the very graph, errors and warnings a fresh expansion gives.

Each cache is checked against the same work done without it, on the shipped specs and
on specs written to catch a stale hit (same text, different names; an edited file)."""
from __future__ import annotations

import os
from pathlib import Path

import networkx as nx
import pytest

import archspec
from archspec import graph as graph_mod
from archspec.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p.name for p in (ROOT / "specs").glob("*.yaml"))


def _fresh(spec, monkeypatch) -> nx.DiGraph:
    """The graph compiled with no block instance remembered."""
    with monkeypatch.context() as m:
        m.setattr(graph_mod, "_memo_key", lambda *a: None)
        return archspec.compile_graph(spec)


def _same(a: nx.DiGraph, b: nx.DiGraph) -> None:
    """Node order and every attribute, edges with their index, scopes in order, warnings."""
    assert list(a.nodes) == list(b.nodes)
    for n in a:
        assert list(a.nodes[n].items()) == list(b.nodes[n].items()), n
    assert list(a.edges(data=True)) == list(b.edges(data=True))
    assert list(a.graph["scopes"].items()) == list(b.graph["scopes"].items())
    assert [str(w) for w in a.graph["warnings"]] == [str(w) for w in b.graph["warnings"]]
    assert {k: v for k, v in a.graph.items() if k not in ("scopes", "warnings")} == \
        {k: v for k, v in b.graph.items() if k not in ("scopes", "warnings")}


@pytest.mark.parametrize("name", SPECS)
def test_remembered_instances_build_the_same_graph(name: str, monkeypatch) -> None:
    spec = archspec.load_spec(ROOT / "specs" / name)
    _same(archspec.compile_graph(spec), _fresh(spec, monkeypatch))


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


BLOCKS = """\
name: t
input: {shape: [4, 8, 8]}
blocks:
  unit:
    params: {w: int, p: {default: 0.0}}
    let: {half: "w // 2"}
    layers:
      - conv: {op: conv, out: w, kernel: 3, padding: 1}
      - "act{half}": {op: relu}
      - drop: {op: dropout, p: p}
      - add: {op: add, from: ["act{half}", input], when: "in_channels == w", else: drop}
layers:
%s
"""


def test_instances_that_differ_are_not_confused(tmp_path: Path, monkeypatch) -> None:
    """Same block and arguments but another input shape, train_only, an int against a
    float against a bool argument: each is expanded for itself."""
    text = BLOCKS % """\
  - a: {block: unit, w: 4, repeat: 3}
  - b: {block: unit, w: 8, repeat: 2}
  - c: {block: unit, w: 8, p: 0.5}
  - d: {block: unit, w: 8, p: 1}
  - head: {block: unit, w: 8, train_only: true, repeat: 2}
  - e: {block: unit, w: 8, repeat: "2", p: "0.1 * index"}"""
    spec = archspec.load_spec(_write(tmp_path, text))
    g = archspec.compile_graph(spec)
    _same(g, _fresh(spec, monkeypatch))
    assert g.nodes["a.0.add"]["op"] == "add"              # 4 channels in: the residual
    assert g.nodes["b.1.add"]["inputs"] == ("b.1.act4", "b.0.drop")
    assert "b.0.add" not in g                              # 4 -> 8: left out, stands for drop
    assert g.nodes["d.drop"]["args"]["p"] == 1.0
    assert g.nodes["head.1.conv"]["train_only"] and not g.nodes["b.1.conv"]["train_only"]
    assert [g.nodes[f"e.{j}.drop"]["args"]["p"] for j in (0, 1)] == [0.0, pytest.approx(0.1)]



def test_instances_under_other_init_or_trainable_are_not_confused(tmp_path: Path,
                                                                  monkeypatch) -> None:
    """Same block, arguments and input, but another `init:` or `trainable:` around it, or
    an init reading the repeat's index: each instance gets its own plan and flag (the
    merge of remembered instances with the init notation once replayed the first one)."""
    text = BLOCKS % """\
  - a: {block: unit, w: 4}
  - b: {block: unit, w: 4, init: {conv: {weight: {normal: {std: 0.5}}}}}
  - c: {block: unit, w: 4, trainable: false}
  - d: {block: unit, w: 4, repeat: 2, init: {conv: {weight: {normal: {std: "0.1 * (index + 1)"}}}}}
  - e: {block: unit, w: 4}"""
    spec = archspec.load_spec(_write(tmp_path, text))
    g = archspec.compile_graph(spec)
    _same(g, _fresh(spec, monkeypatch))
    assert g.nodes["a.conv"]["init"] == g.nodes["e.conv"]["init"] == ()
    assert g.nodes["b.conv"]["init"] == (("weight", "normal", (("std", 0.5),)),)
    assert not g.nodes["c.conv"]["trainable"] and g.nodes["e.conv"]["trainable"]
    assert [dict(g.nodes[f"d.{j}.conv"]["init"][0][2])["std"] for j in (0, 1)] == \
        [pytest.approx(0.1), pytest.approx(0.2)]

def test_a_block_reading_a_full_name_is_expanded_each_time(tmp_path: Path, monkeypatch
                                                           ) -> None:
    """``from: a.0.conv`` inside a block names one place in the network, not a layer of the
    instance: copying the first instance's wiring would be wrong, so it is not copied."""
    text = BLOCKS.replace("      - drop: {op: dropout, p: p}",
                          "      - drop: {op: dropout, p: p, from: stem}") % """\
  - stem: {op: conv, out: 8, kernel: 1}
  - a: {block: unit, w: 8, repeat: 3}"""
    spec = archspec.load_spec(_write(tmp_path, text))
    g = archspec.compile_graph(spec)
    _same(g, _fresh(spec, monkeypatch))
    assert all(g.nodes[f"a.{j}.drop"]["inputs"] == ("stem",) for j in range(3))


def test_errors_inside_repeated_instances_are_unchanged(tmp_path: Path, monkeypatch) -> None:
    """An instance that fails is never remembered: every copy reports as before."""
    text = BLOCKS % """\
  - a: {block: unit, w: 8, repeat: 2}
  - b: {block: unit, w: 8, p: 1.5, repeat: 3}
  - c: {op: linear, out: 0}"""
    spec = archspec.load_spec(_write(tmp_path, text))
    with pytest.raises(SpecError) as fast:
        archspec.compile_graph(spec)
    with pytest.raises(SpecError) as fresh:
        _fresh(spec, monkeypatch)
    assert [str(e) for e in fast.value.errors] == [str(e) for e in fresh.value.errors]


# ------------------------------------------------------------- the loader's caches
NET = """\
name: n
params: {w: %d}
input: {shape: [3, 8, 8]}
include: lib.yaml
layers:
  - a: {block: unit, w: w}
  - b: {op: linear, out: 10, from: a}
"""
LIB = """\
blocks:
  unit:
    params: {w: int}
    layers:
      - conv: {op: conv, out: %s, kernel: 3}
"""


def _edit(path: Path, text: str) -> None:
    """Rewrite a file keeping its size-independent mtime: only the content tells."""
    st = path.stat()
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_an_edited_spec_is_read_again(tmp_path: Path) -> None:
    """The parse is cached by text, not by path or time: an edit between two loads in one
    process (of the spec or of the library it includes) is seen, even with the mtime
    unchanged."""
    spec, lib = _write(tmp_path, NET % 4), _write(tmp_path, LIB % "w", "lib.yaml")
    assert archspec.compile_graph(archspec.load_spec(spec)).nodes["a.conv"]["shape"][0] == 4
    _edit(spec, NET % 6)
    assert archspec.compile_graph(archspec.load_spec(spec)).nodes["a.conv"]["shape"][0] == 6
    _edit(lib, LIB % "2 * w")
    assert archspec.compile_graph(archspec.load_spec(spec)).nodes["a.conv"]["shape"][0] == 12
    _edit(lib, LIB % "2 * w")    # the same text again: the same result, from the cache
    assert archspec.compile_graph(archspec.load_spec(spec)).nodes["a.conv"]["shape"][0] == 12


def test_same_layers_in_two_files_keep_their_own_locations(tmp_path: Path) -> None:
    """Two files with the same text are two parses (locations name the file)."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for d in (a, b):
        _write(d, LIB % "0", "lib.yaml")
        _write(d, NET % 4)
    for d in (a, b):
        with pytest.raises(SpecError) as e:
            archspec.compile_graph(archspec.load_spec(d / "s.yaml"))
        assert [x.loc.path for x in e.value.errors] == [str(d / "lib.yaml")]


def test_a_grid_sees_its_template_edited(tmp_path: Path) -> None:
    """A grid run twice in one process reads an edited template (and include) afresh."""
    from archspec.grid import load_grid, run_grid
    spec, lib = _write(tmp_path, NET % 4), _write(tmp_path, LIB % "w", "lib.yaml")
    grid = _write(tmp_path, "name: g\nspec: s.yaml\naxes:\n  w: [2, 3]\n", "g.yaml")
    params = [r.params for r in run_grid(load_grid(grid), jobs=1)]
    _edit(lib, LIB % "2 * w")
    again = [r.params for r in run_grid(load_grid(grid), jobs=1)]
    assert params != again and all(r is not None for r in params + again)


def test_a_grid_counts_the_same_with_instances_remembered_across_cells(tmp_path: Path,
                                                                       monkeypatch) -> None:
    """Cells share remembered instances when the values their blocks read agree: every
    cell's counts, depth and shape are those of a fresh expansion."""
    from archspec.grid import load_grid, run_grid
    grid = _write(tmp_path, f"""\
name: g
spec: {ROOT / "specs" / "wrn.yaml"}
set: {{count: blocks}}
axes:
  d: [10, 16, 22]
  k: [1, 2]
  block: ["B(3,3)", "B(1,3,1)", "B(3,1)"]
""", "g.yaml")
    fast = run_grid(load_grid(grid), jobs=1)
    with monkeypatch.context() as m:
        m.setattr(graph_mod, "_memo_key", lambda *a: None)
        fresh = run_grid(load_grid(grid), jobs=1)
    assert [(r.name, r.params, r.macs, r.depth, r.output_shape) for r in fast] == \
        [(r.name, r.params, r.macs, r.depth, r.output_shape) for r in fresh]
    assert all(r.ok for r in fast) and len({r.params for r in fast}) == len(fast)


READS = """\
name: r
params: {w: 4, inner: {default: "leaf(1)", type: block}}
let: {c: "2 * w"}
input: {shape: [3, 8, 8]}
blocks:
  leaf:
    params: {s: int}
    layers:
      - conv: {op: conv, out: "c + w * s", kernel: 1}
  outer:
    params: {b: block}
    layers:
      - a: {block: b}
      - conv: {op: conv, out: c, kernel: 1}
layers:
  - x: {block: outer, b: inner, repeat: 2}
"""


@pytest.mark.parametrize("overrides", [["w=5"], ["inner=leaf(2)"], ["w=5", "inner=leaf(3)"]])
def test_a_remembered_instance_follows_the_spec_values_it_reads(tmp_path: Path,
                                                              overrides: list[str]) -> None:
    """Blocks see the spec's let (c) and parameters, directly and through a block passed
    as an argument: compiles that differ in them never share an instance."""
    path = _write(tmp_path, READS)
    base = archspec.compile_graph(archspec.load_spec(path))
    other = archspec.compile_graph(archspec.load_spec(path, overrides))
    w = 5 if "w=5" in overrides else 4
    s = int(overrides[-1][-2]) if overrides[-1].startswith("inner") else 1
    assert base.nodes["x.1.a.conv"]["shape"][0] == 8 + 4
    assert [other.nodes[f"x.{j}.a.conv"]["shape"][0] for j in (0, 1)] == [2 * w + w * s] * 2
    assert other.nodes["x.1.conv"]["shape"][0] == 2 * w


def test_minus_zero_is_not_zero(tmp_path: Path) -> None:
    """-0.0 == 0.0 in Python, but a name interpolating it differs: two instances."""
    text = BLOCKS.replace('"act{half}": {op: relu}', '"act{p}": {op: relu}').replace(
        'from: ["act{half}", input]', 'from: ["act{p}", input]') % """\
  - a: {block: unit, w: 4, p: 0.0}
  - b: {block: unit, w: 4, p: -0.0}"""
    g = archspec.compile_graph(archspec.load_spec(_write(tmp_path, text)))
    assert "a.act0.0" in g and "b.act-0.0" in g
