"""Every registered op, end to end: static shapes and parameters equal torch's, the
standalone source computes the same, and the renderer draws it.

The cases come from :data:`archspec.ops.OPS` itself, so a new op is covered without
editing this file: its required arguments are filled from their field types, and it
is tried on a (C, H, W) and a flat input (each one its shape rule accepts). Each op
reads its inputs from fresh layers (a conv or a linear), so ops that may run in place
do, and backward runs through them.
"""
from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import torch

import archspec
from archspec.codegen import generate
from archspec.ops import OPS, OpDef, OpError, TorchCall, TorchModule, normalise_args
from archspec.render import to_dot
from archspec.torch_backend import build_module

torch.set_num_threads(1)

#: A value for a required field of each type: small, and valid on a 4×6×6 input.
_SAMPLE: dict[str, Any] = {"int": 1, "pos_int": 4, "pair": 2, "pair0": 1, "opt_pair": 2,
                           "padding": 1, "pad4": [1, 0, 2, -1], "float": 0.5, "prob": 0.25,
                           "bool": True, "dim": 1, "dims": [2, 3], "scale": 2,
                           "ints": [0, 2, 3, 1]}
_INPUTS = {3: (4, 6, 6), 1: (12,)}


def _candidates(op: OpDef) -> list[dict[str, Any]]:
    """The required fields filled in; then also one optional field without a default
    (upsample needs one of ``scale`` and ``size``), each in turn."""
    base = {f.name: _SAMPLE[f.type] for f in op.fields if f.required}
    return [base] + [base | {f.name: _SAMPLE[f.type]} for f in op.fields
                     if not f.required and f.default is None and f.type in _SAMPLE]


def _args_for(op: OpDef, rank: int) -> dict[str, Any] | None:
    """The first candidate arguments the op's shape rule accepts on this rank's input."""
    for args in _candidates(op):
        try:
            op.infer(normalise_args(op, args), [_INPUTS[rank]] * op.min_inputs)
        except OpError:
            continue
        return args
    return None


def _args(op: OpDef, rank: int = 3) -> dict[str, Any]:
    return _args_for(op, rank) or _candidates(op)[0]


def _accepts(op: OpDef, rank: int) -> bool:
    return _args_for(op, rank) is not None


def _arities(op: OpDef) -> list[int]:
    """The fewest inputs, and one more for a variadic op (its fold or list of three)."""
    more = op.max_inputs is None or op.max_inputs > op.min_inputs
    return [op.min_inputs] + ([op.min_inputs + 1] if more and op.min_inputs > 1 else [])


CASES = [pytest.param((name, rank, n), id=f"{name}-rank{rank}-in{n}")
         for name, op in OPS.items() for rank in (3, 1) if _accepts(op, rank)
         for n in _arities(op)]


def test_every_op_has_a_case() -> None:
    covered = {c.values[0][0] for c in CASES}
    assert covered == set(OPS), f"no input shape fits {sorted(set(OPS) - covered)}"


def _spec_text(name: str, rank: int, n: int) -> str:
    """A minimal spec: input, one fresh layer per operand, then the op under test."""
    op = OPS[name]
    fresh = "{op: conv, out: 4, kernel: 1, from: input}" if rank == 3 else \
        "{op: linear, out: 12, from: input}"
    shape = list(_INPUTS[rank])
    operands = [f"p{i}" for i in range(n)]
    args = "".join(f", {k}: {v}" for k, v in _args(op, rank).items())
    lines = ["archspec: 1", f"name: every-{name}", f"input: {{shape: {shape}}}", "layers:"]
    lines += [f"  - {p}: {fresh}" for p in operands]
    lines.append(f"  - under_test: {{op: {name}, from: [{', '.join(operands)}]{args}}}")
    lines += ["outputs:", "  - out: {from: under_test}"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def case(request, tmp_path) -> tuple[Any, Any, torch.Tensor]:
    name, rank, n = request.param
    path = tmp_path / f"{name}.yaml"
    path.write_text(_spec_text(name, rank, n), encoding="utf-8")
    g = archspec.compile_graph(archspec.load_spec(str(path)))
    torch.manual_seed(0)
    return g, build_module(g), torch.randn(2, *_INPUTS[rank])


@pytest.mark.parametrize("case", CASES, indirect=True)
def test_static_shape_and_params_equal_torch(case) -> None:
    g, model, x = case
    node = g.nodes["under_test"]
    own = sum(p.numel() for k, p in model.named_parameters()     # a module's, or a bare one
              if k == "under_test" or k.startswith("under_test."))
    assert node["params"] == own
    assert archspec.summarize(g).params == sum(p.numel() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert tuple(model(x).shape) == (2, *node["shape"])
    model.train()
    y = model(x)
    assert tuple(y.shape) == (2, *node["shape"])
    y.float().sum().backward()       # through the in-place form where the op takes it


@pytest.mark.parametrize("case", CASES, indirect=True)
def test_inplace_rule_is_applied(case) -> None:
    """An op whose rule allows it overwrites its fresh operand, by kwarg or method."""
    g, model, _ = case
    d = g.nodes["under_test"]
    op = OPS[d["op"]]
    want = op.inplace is not None and op.inplace(d["args"])
    own = dict(model.named_modules()).get("under_test")
    if isinstance(op.lower, TorchModule):
        assert bool(getattr(own, "inplace", False)) == want
    elif isinstance(op.lower, TorchCall) and op.lower.inplace_method:
        assert (f".{op.lower.inplace_method}(" in model.code) == want


@pytest.mark.parametrize("case", CASES, indirect=True)
def test_generated_source_gives_equal_outputs(case) -> None:
    g, model, x = case
    src = generate(g)
    assert "archspec" not in {line.split()[1].split(".")[0] for line in src.splitlines()
                              if line.startswith(("import ", "from "))}
    ns: dict = {"__name__": "generated"}
    exec(compile(src, "<generated>", "exec"), ns)   # noqa: S102 - our generated test source
    standalone = ns["Model"]()
    standalone.load_state_dict(model.state_dict(), strict=True)
    model.eval()
    standalone.eval()
    with torch.no_grad():
        assert torch.allclose(standalone(x), model(x), atol=1e-6)


@pytest.mark.parametrize("case", CASES, indirect=True)
def test_renderer_draws_it(case) -> None:
    g, _, _ = case
    d = g.nodes["under_test"]
    op = OPS[d["op"]]
    ins = [g.nodes[i]["shape"] for i in d["inputs"]]
    label = op.text(d["args"], ins[0], d["shape"])
    dot = to_dot(g).source
    assert '"under_test"' in dot or "under_test" in dot
    assert label.replace("&", "&amp;").replace(">", "&gt;") in dot
    if shutil.which("dot"):
        svg = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True,
                             timeout=60, check=True).stdout
        assert "under_test" in svg


@pytest.mark.parametrize("case", CASES, indirect=True)
def test_static_macs_are_half_of_torchs_flop_counter(case) -> None:
    """The MAC convention (archspec.ops' docstring): static MACs, per node and in total,
    are exactly half of what torch.utils.flop_counter.FlopCounterMode counts for the
    built network (2 FLOPs per multiply-accumulate of conv, conv_transpose, mm / addmm /
    bmm; 0 for every other op), the convention of torchvision's published GFLOPS. The
    operands' fresh layers (a conv or a linear) are counted too; ``macs_doc`` says 0
    exactly for the ops that count 0."""
    from torch.utils.flop_counter import FlopCounterMode
    g, model, x = case
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    flops = counter.get_total_flops()
    per_sample, rest = divmod(flops, 2 * x.shape[0])
    assert rest == 0, flops
    assert archspec.summarize(g).macs == per_sample
    node = g.nodes["under_test"]
    others = sum(d["macs"] for n, d in g.nodes(data=True) if n != "under_test")
    assert node["macs"] == per_sample - others
    own = sum(p.numel() for n, p in model.named_parameters()      # a module's, or a bare
              if n == "under_test" or n.startswith("under_test."))  # parameter (scale)
    assert node["params"] == own
    assert (OPS[node["op"]].macs_doc == "0") == (node["macs"] == 0), OPS[node["op"]].macs_doc
