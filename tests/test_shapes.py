"""Stage 3: op shape rules, parameter and MAC counts, the summary table and its stable JSON."""
from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

import archspec
from archspec.errors import SpecError
from archspec.ops import OPS, OpError, normalise_args, op_counts
from archspec.shapes import Row, check_graph, human, summarize, to_json, to_table

ROOT = Path(__file__).resolve().parent.parent


infer = op_counts     # (shape, params, MACs) of one op


@pytest.mark.parametrize("op, shapes, args, want", [
    ("conv", [(3, 32, 32)], dict(out=16, kernel=3, padding=1, bias=False), ((16, 32, 32), 432, 442_368)),
    ("conv", [(3, 224, 224)], dict(out=64, kernel=7, stride=2, padding=3, bias=False),
     ((64, 112, 112), 9_408, 118_013_952)),
    ("conv", [(64, 8, 8)], dict(out=128, kernel=3, padding="same", groups=32),
     ((128, 8, 8), 128 * 2 * 9 + 128, 8 * 8 * 128 * 2 * 9)),
    ("conv", [(3, 9, 9)], dict(out=4, kernel=3, dilation=2, padding="valid"), ((4, 5, 5), 112, 2700)),
    ("conv", [(3, 8, 6)], dict(out=2, kernel=[3, 1], stride=[2, 1]), ((2, 3, 6), 20, 324)),
    ("batchnorm", [(16, 4, 4)], {}, ((16, 4, 4), 32, 0)),
    ("batchnorm", [(16,)], dict(affine=False), ((16,), 0, 0)),
    ("linear", [(640,)], dict(out=10), ((10,), 6_410, 6_400)),
    ("linear", [(640,)], dict(out=10, bias=False), ((10,), 6_400, 6_400)),
    ("maxpool", [(64, 112, 112)], dict(kernel=3, stride=2, padding=1), ((64, 56, 56), 0, 0)),
    ("maxpool", [(64, 112, 112)], dict(kernel=3, stride=2, ceil_mode=True), ((64, 56, 56), 0, 0)),
    ("maxpool", [(480, 28, 28)], dict(kernel=3, stride=2, ceil_mode=True), ((480, 14, 14), 0, 0)),
    ("maxpool", [(8, 5, 5)], dict(kernel=2, stride=2, ceil_mode=True), ((8, 3, 3), 0, 0)),
    ("avgpool", [(8, 8, 8)], dict(kernel=2), ((8, 4, 4), 0, 0)),
    ("adaptive_avgpool", [(640, 8, 8)], dict(size=1), ((640, 1, 1), 0, 0)),
    ("adaptive_maxpool", [(64, 8, 8)], dict(size=[4, 2]), ((64, 4, 2), 0, 0)),
    ("flatten", [(64, 4, 4)], {}, ((1024,), 0, 0)),
    ("add", [(8, 4, 4), (8, 4, 4), (8, 4, 4)], {}, ((8, 4, 4), 0, 0)),
    ("concat", [(8, 4, 4), (16, 4, 4)], {}, ((24, 4, 4), 0, 0)),
    ("softmax", [(10,)], {}, ((10,), 0, 0)),
    ("dropout2d", [(8, 4, 4)], dict(p=0.1), ((8, 4, 4), 0, 0)),
    ("relu6", [(8,)], {}, ((8,), 0, 0)),
    # ceil_mode by torch's rule: a window wider than the padded input still gives 1 when
    # floor((2 - 3 + 1) / 2) + 1 >= 1 (torch 2.14: (N, 3, 1, 1)); was refused
    ("maxpool", [(3, 2, 2)], dict(kernel=3, stride=2, ceil_mode=True), ((3, 1, 1), 0, 0)),
    ("avgpool", [(3, 2, 2)], dict(kernel=3, stride=2, ceil_mode=True), ((3, 1, 1), 0, 0)),
    ("avgpool", [(3, 2, 2)], dict(kernel=4, stride=4, padding=2, ceil_mode=True), ((3, 1, 1), 0, 0)),
    ("maxpool", [(3, 2, 5)], dict(kernel=3, stride=2, padding=1, dilation=2, ceil_mode=True),
     ((3, 1, 2), 0, 0)),
    # the last window must start inside the input or its left padding: 3 windows, not 4
    ("maxpool", [(3, 6, 6)], dict(kernel=2, stride=2, padding=1, ceil_mode=True), ((3, 4, 4), 0, 0)),
    # negative pads crop; legal in torch while the crops fit in the input
    ("pad", [(3, 1, 5)], dict(padding=[0, 0, -1, 2]), ((3, 2, 5), 0, 0)),
    ("pad", [(3, 1, 5)], dict(padding=[0, 0, -1, 1]), ((3, 1, 5), 0, 0)),
    ("pad", [(3, 4, 5)], dict(padding=[-2, -2, 1, -1]), ((3, 4, 1), 0, 0)),
    ("mul", [(8, 4, 4), (8, 1, 1)], {}, ((8, 4, 4), 0, 0)),
    ("groupnorm", [(8, 4, 4)], dict(groups=4), ((8, 4, 4), 16, 0)),
    ("groupnorm", [(8,)], dict(groups=2, affine=False), ((8,), 0, 0)),
    ("mul", [(8, 1, 1), (8, 4, 4), (1, 4, 1)], {}, ((8, 4, 4), 0, 0)),
])
def test_shape_rules(op: str, shapes: list, args: dict, want: tuple) -> None:
    assert infer(op, shapes, **args) == want


@pytest.mark.parametrize("op, shapes, args, message", [
    ("conv", [(3, 4, 4)], dict(out=8, kernel=5), "kernel 5 is larger than its padded input"),
    ("conv", [(3, 8, 8)], dict(out=4, kernel=3, dilation=4),
     "kernel 3 dilated by 4 (9 wide) is larger than its padded input (height 8 + 2×0 padding = 8)"),
    ("conv", [(6, 4, 4)], dict(out=8, kernel=1, groups=4), "input channels 6 are not divisible"),
    ("conv", [(8, 4, 4)], dict(out=6, kernel=1, groups=4), "output channels 6 are not divisible"),
    ("conv", [(8,)], dict(out=6, kernel=1), "conv expects a (channels, height, width) input"),
    ("conv", [(8, 4, 4)], dict(out=6, kernel=3, stride=2, padding="same"), "padding 'same' needs stride 1"),
    ("maxpool", [(8, 4, 4)], dict(kernel=2, padding=2), "padding 2 is more than half its kernel 2"),
    ("add", [(8, 4, 4), (8, 4, 2)], {}, "add needs equal shapes"),
    ("concat", [(8, 4, 4), (8,)], {}, "concat needs equal shapes except for channels"),
    ("softmax", [(10,)], dict(dim=2), "dim 2 is out of range"),
    ("dropout2d", [(10,)], {}, "dropout2d expects a (channels, height, width) input"),
    # torch: Calculated output size (0x0), even in ceil mode (floor((2 - 3 + 0) / 1) + 1 = 0)
    ("maxpool", [(3, 2, 2)], dict(kernel=3, stride=1, ceil_mode=True),
     "kernel 3 is larger than its padded input (height 2 + 2×0 padding = 2) even in ceil mode"),
    ("avgpool", [(3, 2, 2)], dict(kernel=3, stride=2), "kernel 3 is larger than its padded input"),
    # torch's own check: pad <= kernel // 2, whatever the dilation
    ("maxpool", [(3, 8, 8)], dict(kernel=3, padding=2, dilation=3), "padding 2 is more than half"),
    # torch crops first: narrow(): length must be non-negative, though 1 + 2 - 2 = 1
    ("pad", [(3, 1, 5)], dict(padding=[0, 0, 2, -2]),
     "pad crops more than its input has: 2 from height 1 of (N, 3, 1, 5)"),
    ("pad", [(3, 4, 2)], dict(padding=[-1, -2, 0, 0]), "pad crops more than its input has: 3 "
     "from width 2"),
    ("pad", [(3, 1, 5)], dict(padding=[0, 0, -1, 0]), "pad crops (N, 3, 1, 5) to nothing"),
    ("softplus", [(3, 4, 4)], dict(beta=0.0), "softplus 'beta' must be above 0, got 0"),
    ("mul", [(8, 4, 4), (4, 1, 1)], {}, "mul needs shapes that broadcast, got (N, 8, 4, 4) "
     "and (N, 4, 1, 1)"),
    ("mul", [(8, 4, 4), (8,)], {}, "mul needs inputs of one rank, got (N, 8, 4, 4) and (N, 8)"),
    ("groupnorm", [(6, 4, 4)], dict(groups=4), "groupnorm's channels 6 are not divisible by "
     "groups 4"),
    ("channel_shuffle", [(6, 4, 4)], dict(groups=4), "channel_shuffle's channels 6 are not "
     "divisible by groups 4"),
    ("channel_shuffle", [(6,)], dict(groups=2), "channel_shuffle expects a (channels, height, "
     "width) input"),
    ("drop_path", [(6, 4, 4)], dict(p=1.0), "drop_path's 'p' must be below 1, got 1"),
])
def test_shape_errors(op: str, shapes: list, args: dict, message: str) -> None:
    with pytest.raises(OpError) as info:
        infer(op, shapes, **args)
    assert message in info.value.message


@pytest.mark.parametrize("op, args, message", [
    ("conv", dict(out=8), "missing required argument 'kernel'"),
    ("conv", dict(out=8, kernel=0), "'kernel' must be at least 1"),
    ("conv", dict(out=8, kernel=[1, 2, 3]), "must be an integer or a pair"),
    ("conv", dict(out=8, kernel=3, padding=-1), "'padding' must be at least 0"),
    ("conv", dict(out=8, kernel=3, padding="full"), "must be an integer, a pair [h, w], same or valid, got 'full'"),
    ("conv", dict(out=True, kernel=3), "'out' must be an integer"),
    ("dropout", dict(p=-0.1), "'p' must be a probability"),
    ("batchnorm", dict(eps=-1.0), "'eps' must not be negative"),
    ("batchnorm", dict(momentum="x"), "'momentum' must be a number"),
    ("drop_path", dict(p=0.1, mode="col"), "'mode' must be one of row, batch, got 'col'"),
    ("drop_path", dict(p=1.5), "'p' must be a probability"),
])
def test_argument_errors(op: str, args: dict, message: str) -> None:
    with pytest.raises(OpError) as info:
        normalise_args(OPS[op], args)
    assert message in info.value.message


# ----------------------------------------------------------------------- summary
@pytest.fixture(scope="module")
def wrn() -> nx.DiGraph:
    return archspec.compile_graph(archspec.load_spec("specs/wrn-28-10.yaml"))


def test_summary_totals_and_rows(wrn: nx.DiGraph) -> None:
    s = summarize(wrn)
    assert (s.params, s.params_eval, s.ops) == (36_479_194, 36_479_194, 105)
    assert s.macs == s.macs_train == sum(r.macs for r in s.rows)
    assert s.input_shape == (3, 32, 32) and s.outputs[0]["shape"] == (10,)
    assert [r.name for r in s.rows[:3]] == ["conv1", "layer1.0.bn1", "layer1.0.relu"]
    assert s.rows[0] == Row("conv1", "conv", (16, 32, 32), 432, 442_368, 1, False,
                            "specs/wrn.yaml:38:5", 1)
    assert sum(r.params for r in s.rows) == s.params and len(s.rows) == s.ops


def test_depth_collapses_blocks(wrn: nx.DiGraph) -> None:
    s1 = summarize(wrn, depth=1)
    assert [r.name for r in s1.rows] == ["conv1", "layer1", "layer2", "layer3", "bn", "relu",
                                         "avgpool", "flatten", "fc"]
    layer2 = s1.rows[2]
    assert layer2.op == "B(3,3) ×4" and layer2.shape == (320, 16, 16) and layer2.ops == 33
    assert sum(r.params for r in s1.rows) == s1.params == 36_479_194
    s2 = summarize(wrn, depth=2)
    assert [r.name for r in s2.rows if r.name.startswith("layer2")] == \
        ["layer2.0", "layer2.1", "layer2.2", "layer2.3"]
    assert s2.rows[1].op == "B(3,3)" and s2.rows[1].depth == 2
    assert summarize(wrn, depth=0).rows == ()
    assert summarize(wrn, depth=9).rows == summarize(wrn).rows
    with pytest.raises(SpecError, match="--depth must be 0 or more"):
        summarize(wrn, depth=-1)


def test_train_only_heads_are_counted_apart(compile_text) -> None:
    g = compile_text("""
        input: {shape: [3, 4, 4]}
        layers:
          - flat: {op: flatten}
          - aux: {op: linear, out: 2, train_only: true}
          - fc: {op: linear, out: 10}
        outputs:
          - out: {from: fc}
          - aux: {from: aux, loss_weight: 0.3}
    """)
    s = summarize(g)
    assert (s.params, s.params_eval) == (48 * 2 + 2 + 48 * 10 + 10, 490)
    assert (s.macs, s.macs_train) == (480, 576)
    assert any(line.split()[:3] == ["aux", "linear", "(train)"] for line in to_table(s).splitlines())
    assert "Output aux          (N, 2)  (training only, loss weight 0.3)" in to_table(s)


#: The stable JSON keys (docs/summary-json.md). Adding a key is compatible; renaming or
#: removing one needs SUMMARY_VERSION bumped and the doc updated.
TOP_KEYS = ["archspec_summary", "name", "input_shape", "output_shapes", "outputs", "params",
            "params_eval", "params_trainable", "macs", "macs_train", "ops", "rows"]
ROW_KEYS = ["name", "op", "shape", "params", "macs", "depth", "train_only", "loc", "ops"]
OUTPUT_KEYS = ["name", "node", "shape", "loss_weight", "train_only"]


def test_json_schema_is_stable(wrn: nx.DiGraph) -> None:
    doc = json.loads(to_json(summarize(wrn, depth=1)))
    assert list(doc) == TOP_KEYS
    assert doc["archspec_summary"] == 1
    assert doc["input_shape"] == ["N", 3, 32, 32]
    assert doc["output_shapes"] == {"out": ["N", 10]}
    assert [list(o) for o in doc["outputs"]] == [OUTPUT_KEYS]
    assert all(list(r) == ROW_KEYS for r in doc["rows"])
    assert doc["rows"][2] == {"name": "layer2", "op": "B(3,3) ×4", "shape": ["N", 320, 16, 16],
                              "params": 6_968_000, "macs": 1_782_579_200, "depth": 1,
                              "train_only": False, "loc": "specs/wrn.yaml:42:9", "ops": 33}
    text = (ROOT / "docs" / "summary-json.md").read_text(encoding="utf-8")
    for key in TOP_KEYS + ROW_KEYS + OUTPUT_KEYS:
        assert f"`{key}`" in text, key


def test_table(wrn: nx.DiGraph) -> None:
    t = to_table(summarize(wrn, depth=1)).splitlines()
    assert t[0] == "wrn-28-10"
    assert t[2].split() == ["Layer", "Op", "Output", "shape", "Params", "MACs"]
    assert t[5].split() == ["layer1", "B(3,3)", "×4", "(N,", "160,", "32,", "32)", "1,640,672",
                            "1,677,721,600"]
    assert "Total params:       36,479,194 (36.48 M)" in t
    assert "MACs per sample:    5,243,328,768 (5.24 G)" in t


def test_human() -> None:
    assert human(36_479_194) == "36.48 M" and human(5.24e9, "MACs") == "5.24 GMACs"
    assert human(12) == "12"


def test_check_graph_unknown_op(wrn: nx.DiGraph) -> None:
    g = wrn.copy()
    g.nodes["relu"]["op"] = "rleu"
    with pytest.raises(SpecError, match="relu: unknown op 'rleu'"):
        check_graph(g)


def test_thousand_node_spec_checks(compile_text) -> None:
    g = compile_text("""
        params: {n: 500}
        input: {shape: [8, 16, 16]}
        layers:
          - body:
              repeat: n
              seq:
                - {op: conv, out: 8, kernel: 3, padding: 1, bias: false}
                - {op: relu}
    """)
    assert g.number_of_nodes() == 1001
    assert summarize(g).params == 500 * 8 * 8 * 9
