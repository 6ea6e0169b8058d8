"""Stage 2: the networkx IR — attributes, hierarchical names, scopes, edges, check_graph."""
from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

import archspec
from archspec.errors import Location, SpecError
from archspec.graph import NODE_ATTRS
from archspec.shapes import check_graph

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wrn() -> nx.DiGraph:
    return archspec.compile_graph(archspec.load_spec("specs/wrn-28-10.yaml"))


def test_every_node_has_the_documented_attributes(wrn: nx.DiGraph) -> None:
    for n, d in wrn.nodes(data=True):
        assert set(d) == set(NODE_ATTRS), n
        assert isinstance(d["loc"], Location) and d["loc"].line >= 1
        assert isinstance(d["inputs"], tuple) and isinstance(d["scope"], tuple)
        assert all(isinstance(x, int) and x > 0 for x in d["shape"])
    doc = (ROOT / "docs" / "ir.md").read_text(encoding="utf-8")
    for attr in NODE_ATTRS:
        assert f"`{attr}`" in doc, attr
        assert f"``{attr}``" in archspec.graph.__doc__, attr


def test_hierarchical_names_and_scopes(wrn: nx.DiGraph) -> None:
    d = wrn.nodes["layer2.0.conv1"]
    assert d["op"] == "conv" and d["shape"] == (320, 16, 16)
    assert d["args"]["stride"] == (2, 2) and d["args"]["kernel"] == (3, 3)
    assert d["scope"] == ("layer2", "layer2.0")
    assert wrn.nodes["layer2.3.conv2"]["args"]["stride"] == (1, 1)
    assert "layer2.0.shortcut" in wrn and "layer2.1.shortcut" not in wrn  # when: shape changes
    assert "layer1.0.dropout" in wrn
    scopes = wrn.graph["scopes"]
    assert scopes["layer2"]["kind"] == "repeat" and scopes["layer2"]["label"] == "B(3,3) ×4"
    assert scopes["layer2.0"]["kind"] == "block" and scopes["layer2.0"]["label"] == "B(3,3)"
    assert scopes["layer2.0"]["args"] == {"M": [3, 3], "out": 320, "dropout": 0.3, "stride": 2,
                                          "shortcut": "input"}
    assert scopes["layer2.1"]["args"]["stride"] == 1
    assert wrn.nodes["conv1"]["scope"] == ()


def test_block_label_reads_let_values(compile_text) -> None:
    g = compile_text("""
        input: {shape: [8, 4, 4]}
        blocks:
          half:
            params: {scale: 1.0}
            let: {n: "max(1, round(in_channels * scale))"}
            label: "half({n})"
            layers: [{op: conv, out: n, kernel: 1}]
        layers:
          - a: {block: half, scale: 0.5}
        """)
    assert g.graph["scopes"]["a"]["label"] == "half(4)"


def test_locations_point_at_the_spec(wrn: nx.DiGraph) -> None:
    text = (ROOT / "specs/wrn.yaml").read_text(encoding="utf-8").splitlines()
    loc = wrn.nodes["fc"]["loc"]
    assert loc.path == "specs/wrn.yaml" and text[loc.line - 1][loc.col - 1:].startswith("fc:")
    stage = wrn.graph["scopes"]["layer3"]["loc"]
    assert '"layer{g + 1}"' in text[stage.line - 1]
    assert wrn.nodes["layer3.0.conv1"]["loc"].path.endswith("stdlib.yaml")


def test_edges_in_input_order(wrn: nx.DiGraph) -> None:
    for n, d in wrn.nodes(data=True):
        preds = sorted(wrn.in_edges(n, data="index"), key=lambda e: e[2])
        assert tuple(u for u, _, _ in preds) == d["inputs"], n
    assert wrn.nodes["layer2.0.add"]["inputs"] == ("layer2.0.conv2", "layer2.0.shortcut")
    assert wrn.nodes["layer2.1.add"]["inputs"] == ("layer2.1.conv2", "layer2.0.add")
    assert nx.is_directed_acyclic_graph(wrn)


def test_graph_attributes(wrn: nx.DiGraph) -> None:
    g = wrn.graph
    assert g["name"] == "wrn-28-10" and g["path"] == "specs/wrn-28-10.yaml"
    assert g["init"] == "wrn" and g["input"] == "input"
    assert g["outputs"] == [{"name": "out", "node": "fc", "loss_weight": 1.0, "train_only": False}]
    assert g["params"]["k"] == 10 and g["params"]["n"] == 4


def test_check_graph_cross_checks_the_compiler(wrn: nx.DiGraph) -> None:
    check_graph(wrn)
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        check_graph(archspec.compile_graph(archspec.load_spec(spec)))


def test_check_graph_catches_tampering(wrn: nx.DiGraph) -> None:
    g = wrn.copy()
    g.nodes["layer2.0.conv1"]["params"] += 1
    with pytest.raises(SpecError, match="layer2.0.conv1: stored shape/params/MACs"):
        check_graph(g)
    g = wrn.copy()
    g.nodes["layer2.0.conv2"]["args"] = {**g.nodes["layer2.0.conv2"]["args"], "out": 321}
    with pytest.raises(SpecError) as info:
        check_graph(g)
    assert "layer2.0.add: add needs equal shapes" in str(info.value)
    g = wrn.copy()
    g.add_edge("fc", "conv1", index=1)
    with pytest.raises(SpecError, match="the graph has a cycle"):
        check_graph(g)


def test_seq_names_are_positional(compile_text) -> None:
    g = compile_text("""
        input: {shape: [3, 8, 8]}
        layers:
          - stem:
              seq:
                - {op: conv, out: 4, kernel: 3, padding: 1}
                - {op: batchnorm}
                - act: {op: relu}
          - head:
              repeat: 2
              seq: [{op: relu}]
    """)
    assert ["stem.0", "stem.1", "stem.act", "head.0.0", "head.1.0"] == \
        [n for n in g if n != "input"]
    assert g.graph["scopes"]["stem"]["kind"] == "seq"


def test_dag_wiring_train_only_heads_and_outputs(compile_text) -> None:
    g = compile_text("""
        input: {shape: [3, 8, 8]}
        layers:
          - a: {op: conv, out: 4, kernel: 3, padding: 1}
          - b: {op: conv, out: 4, kernel: 1, from: input}
          - cat: {op: concat, from: [a, b], with: a}
          - aux:
              from: cat
              train_only: true
              seq:
                - {op: flatten}
                - {op: linear, out: 2}
          - pool: {op: adaptive_avgpool, size: 1}
          - flat: {op: flatten}
          - fc: {op: linear, out: 10}
        outputs:
          - main: {from: fc}
          - aux: {from: aux, loss_weight: 0.3}
    """)
    assert g.nodes["cat"]["inputs"] == ("a", "b", "a") and g.nodes["cat"]["shape"] == (12, 8, 8)
    assert g.nodes["pool"]["inputs"] == ("cat",)         # a train-only head is a side branch
    assert g.nodes["aux.1"]["train_only"] and not g.nodes["fc"]["train_only"]
    assert g.graph["outputs"][1] == {"name": "aux", "node": "aux.1", "loss_weight": 0.3,
                                     "train_only": True}


def test_a_left_out_head_takes_its_outputs_along(compile_text) -> None:
    text = """
        params: {aux: true}
        input: {shape: [3, 8, 8]}
        layers:
          - trunk: {op: conv, out: 4, kernel: 3, padding: 1}
          - aux: {op: conv, out: 2, kernel: 1, train_only: true, when: aux}
          - pool: {op: adaptive_avgpool, size: 1}
          - flat: {op: flatten}
          - fc: {op: linear, out: 10}
        outputs:
          - main: {from: fc}
          - aux: {from: aux, loss_weight: 0.3}
    """
    assert [o["name"] for o in compile_text(text).graph["outputs"]] == ["main", "aux"]
    g = compile_text(text.replace("aux: true}", "aux: false}"))
    assert "aux" not in g and g.graph["outputs"] == [
        {"name": "main", "node": "fc", "loss_weight": 1.0, "train_only": False}]


def test_for_when_first_and_interpolated_names(compile_text) -> None:
    g = compile_text("""
        params: {widths: [4, 8]}
        input: {shape: [3, 8, 8]}
        layers:
          - for: i
            in: range(len(widths))
            layers:
              - "conv{i + 1}": {op: conv, out: "widths[i]", kernel: 3, padding: 1}
              - "drop{i + 1}": {op: dropout, when: i > 0}
          - stage: {block: basic, planes: 8, repeat: 2, first: {stride: 2}}
    """)
    assert {"conv1", "conv2", "drop2"} <= set(g) and "drop1" not in g
    assert g.nodes["conv2"]["inputs"] == ("conv1",)
    assert g.nodes["stage.0.conv1"]["args"]["stride"] == (2, 2)
    assert g.nodes["stage.1.conv1"]["args"]["stride"] == (1, 1)
    assert "stage.0.downsample.0" in g and "stage.1.downsample.0" not in g


@pytest.mark.parametrize("block, d, k, params", [
    ("B(3,3)", 40, 4, 8_949_210),
    ("B(3,3)", 16, 8, 10_961_370),
])
def test_wrn_counts(block: str, d: int, k: int, params: int) -> None:
    g = archspec.compile_graph(archspec.load_spec("specs/wrn.yaml", {"d": d, "k": k,
                                                                     "block": block}))
    assert sum(x["params"] for _, x in g.nodes(data=True)) == params


def test_graph_errors_are_collected(compile_text) -> None:
    with pytest.raises(SpecError) as info:
        compile_text("""
            input: {shape: [3, 8, 8]}
            layers:
              - a: {op: conv, out: 4, kernel: 9}
              - b: {op: add, from: [input, nothere]}
              - c: {op: relu, from: d}
              - d: {op: relu, from: input}
              - e: {op: relu, from: a}
        """)
    msgs = [(e.loc.line, e.message) for e in info.value.errors]
    assert [line for line, _ in msgs] == [3, 4, 5]     # e reads the failed a: not reported
    assert "drops below 1" in msgs[0][1] and "undefined input 'nothere'" in msgs[1][1]
    assert "would make a cycle" in msgs[2][1]


def test_block_errors_name_the_instance(compile_text) -> None:
    with pytest.raises(SpecError) as info:
        compile_text("""
            input: {shape: [64, 8, 8]}
            layers:
              - s: {block: basic, planes: 64, groups: 2}
        """)
    e = info.value
    assert e.message.startswith("s: BasicBlock only supports groups=1") and e.loc.line == 3


# ------------------------------------------- when/else, unused ops, loop errors (issue 15)
def test_else_names_what_a_left_out_join_stands_for(compile_text) -> None:
    text = """
        params: {res: false}
        input: {shape: [8, 8, 8]}
        layers:
          - conv: {op: conv, out: 8, kernel: 3, padding: 1}
          - sum: {op: add, from: [input, conv], when: res, else: conv}
          - out: {op: relu, from: sum}
    """
    g = compile_text(text)
    assert "sum" not in g and g.nodes["out"]["inputs"] == ("conv",)
    assert g.graph["warnings"] == []         # conv is used: through `else`
    g = compile_text(text, {"res": True})
    assert g.nodes["sum"]["inputs"] == ("input", "conv") and g.nodes["out"]["inputs"] == ("sum",)


def test_a_left_out_join_without_else_is_an_error_at_its_line(compile_text) -> None:
    with pytest.raises(SpecError) as e:
        compile_text("""
            input: {shape: [8, 8, 8]}
            layers:
              - conv: {op: conv, out: 8, kernel: 3, padding: 1}
              - cat: {op: concat, from: [input, conv], when: false}
        """)
    (err,) = e.value.errors
    assert err.loc.line == 4 and "layer 'cat' (concat of 2 inputs) is left out" in err.message
    assert "else: conv" in err.hint


def test_an_unused_op_is_a_located_warning_with_its_size(compile_text) -> None:
    g = compile_text("""
        input: {shape: [4, 8, 8]}
        blocks:
          dead_branch:
            layers:
              - a: {op: conv, out: 4, kernel: 1, bias: false}
              - b: {op: relu}
              - {op: relu, from: input}
        layers:
          - stage: {block: dead_branch, repeat: 3}
    """)
    (w,) = g.graph["warnings"]
    assert w.severity == "warning" and w.loc.line == 6
    assert w.message == ("the output of 'stage.0.b' (and 2 more instances of this line) reaches "
                         "no output of the network: 6 ops (48 params, 3,072 MACs) computed for "
                         "nothing, still built and counted")
    # still built and counted: the totals include them
    assert sum(d["params"] for _, d in g.nodes(data=True)) == 48


def test_a_train_only_output_keeps_its_head_alive(compile_text) -> None:
    g = compile_text("""
        input: {shape: [4, 8, 8]}
        layers:
          - conv: {op: conv, out: 4, kernel: 1}
          - aux: {op: conv, out: 2, kernel: 1, train_only: true}
          - main: {op: relu, from: conv}
        outputs:
          - main: {from: main}
          - aux: {from: aux, loss_weight: 0.3}
    """)
    assert g.graph["warnings"] == []


def test_shipped_specs_have_no_warnings() -> None:
    specs = sorted(ROOT.glob("specs/*.yaml")) + sorted(ROOT.glob("examples/specs/*.yaml"))
    assert len(specs) >= 25
    for p in specs:
        g = archspec.compile_graph(archspec.load_spec(p))
        assert g.graph["warnings"] == [], (p.name, [str(w) for w in g.graph["warnings"]])


def test_a_repeated_error_in_a_loop_is_reported_once(compile_text) -> None:
    with pytest.raises(SpecError) as e:
        compile_text("""
            input: {shape: [8, 8, 8]}
            layers:
              - for: i
                in: range(4)
                layers:
                  - "c{i}": {op: conv, out: 8, kernel: 1, stride: 0}
                  - for: j
                    in: [0, 1]
                    layers:
                      - "x{i}_{j}": {op: relu, from: nothing}
        """)
    msgs = [x.message for x in e.value.errors]
    assert len(msgs) == 2, msgs
    assert msgs[0].endswith("(in iterations i = 0, 1, 2, 3; shown for i = 0)"), msgs
    assert msgs[1] == ("undefined input 'nothing' (in iterations j = 0, 1) "
                       "(in iterations i = 0, 1, 2, 3)"), msgs


def test_else_on_a_single_input_seq_and_in_a_loop(compile_text) -> None:
    g = compile_text("""
        input: {shape: [4, 8, 8]}
        layers:
          - stem: {op: conv, out: 4, kernel: 1}
          - for: i
            in: range(3)
            layers:
              - "s{i}":
                  when: i != 1
                  else: stem
                  seq:
                    - {op: relu}
              - "j{i}": {op: add, from: ["s{i}", stem], when: i == 2, else: "s{i}"}
    """)
    assert "s1.0" not in g and g.nodes["s2.0"]["inputs"] == ("stem",)
    assert g.nodes["j2"]["inputs"] == ("s2.0", "stem")
    assert g.graph["warnings"][0].message.startswith("the output of 's0.0' reaches no output")
