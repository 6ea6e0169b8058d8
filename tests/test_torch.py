"""The torch backend is exact: state_dicts load strictly and outputs match the references.

References: the blog posts' hand-written models (tests/references/, transcribed; see
docs/sources.md) and torchvision's builders. Big models are compared at small inputs
(64×64) in eval mode, batch 1-2, one thread; parameter counts of large configurations
use the meta device.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn

import archspec
from archspec.errors import SpecError
from archspec.torch_backend import build_module, init_weights
from archspec.torch_ops import shake
from references.cifar10_blog import NETS as CIFAR10_NETS
from references.wrn_pystyle import WRN_TABLE, WideResNet
from zoo_builders import zoo_marks

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
ALL_SPECS = sorted(p.name for p in (ROOT / "specs").glob("*.yaml"))


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def randomise_bn(m: nn.Module, seed: int = 0) -> None:
    """Give BatchNorm non-trivial statistics so a mis-wired BN cannot go unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                c = mod.num_features
                mod.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                mod.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                mod.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                mod.running_var.copy_(torch.rand(c, generator=gen) + 0.5)


def assert_same_outputs(ours: nn.Module, ref: nn.Module, x: torch.Tensor,
                        tol: float = 1e-5) -> None:
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval(), ref.eval()
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert a.shape == b.shape
    scale = max(1.0, b.abs().max().item())
    assert (a - b).abs().max().item() <= tol * scale


# ------------------------------------------------------- pystyle.info's WRN
@pytest.mark.parametrize("d,k,millions", WRN_TABLE)
def test_wrn_table_param_counts_and_keys(d: int, k: int, millions: float) -> None:
    with torch.device("meta"):
        ours = build_module("specs/wrn.yaml", [f"d={d}", f"k={k}"])
        ref = WideResNet(d, k)
    assert n_params(ours) == n_params(ref)
    assert round(n_params(ref) / 1e6, 1) == millions          # the post's printed table
    assert {k_: v.shape for k_, v in ours.state_dict().items()} == \
        {k_: v.shape for k_, v in ref.state_dict().items()}


@pytest.mark.parametrize("d,k", [(16, 8), (40, 1)])
def test_wrn_pystyle_outputs(d: int, k: int) -> None:
    torch.manual_seed(0)
    ref = WideResNet(d, k)
    randomise_bn(ref)
    ours = build_module("specs/wrn.yaml", [f"d={d}", f"k={k}"])
    assert_same_outputs(ours, ref, torch.randn(2, 3, 32, 32))


# ------------------------------------------------- the CIFAR-10 post's nets
@pytest.mark.parametrize("name", sorted(CIFAR10_NETS))
def test_cifar10_blog_nets(name: str) -> None:
    torch.manual_seed(0)
    ref = CIFAR10_NETS[name]()
    randomise_bn(ref)
    ours = build_module(f"specs/{name}.yaml")
    assert n_params(ours) == n_params(ref)
    assert_same_outputs(ours, ref, torch.randn(2, 3, 32, 32))


# ---------------------------------------------------------------- torchvision
TV = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
      "wide_resnet50_2"]


def _ours_empty(path: str) -> nn.Module:
    """Our module without its (slow, irrelevant here) init: weights come from the reference."""
    with torch.device("meta"):
        m = build_module(path)
    return m.to_empty(device="cpu")


@pytest.mark.parametrize("name", TV)
def test_torchvision_resnets(name: str) -> None:
    import torchvision
    torch.manual_seed(0)
    ref = getattr(torchvision.models, name)()
    randomise_bn(ref)
    ours = _ours_empty(f"specs/{name}.yaml")
    assert n_params(ours) == n_params(ref)
    assert_same_outputs(ours, ref, torch.randn(1, 3, 64, 64))


def test_torchvision_googlenet() -> None:
    import torchvision
    torch.manual_seed(0)
    ref = torchvision.models.googlenet(aux_logits=True, transform_input=False,
                                       init_weights=True)
    randomise_bn(ref)
    ours = _ours_empty("specs/googlenet.yaml")
    assert n_params(ours) == n_params(ref) == 13_004_888
    x = torch.randn(2, 3, 96, 96)
    assert_same_outputs(ours, ref, x)
    assert ours.output_names == ("logits", "aux2", "aux1")
    assert ours.train_only == {"aux2", "aux1"}
    assert ours.loss_weights == {"logits": 1.0, "aux2": 0.3, "aux1": 0.3}
    ours.train(), ref.train()
    torch.manual_seed(1)
    outs = ours(x)
    assert isinstance(outs, tuple) and len(outs) == 3
    assert all(o.shape == (2, 1000) for o in outs)
    torch.manual_seed(1)
    ref_outs = ref(x)
    # same ops in the same order: even the dropout draws coincide (torchvision's order)
    for a, b in zip(outs, ref_outs):
        assert (a - b).abs().max().item() <= 1e-5 * max(1.0, b.abs().max().item())


def test_torchvision_googlenet_without_aux_heads() -> None:
    """aux_logits=false is torchvision's GoogLeNet(aux_logits=False): no aux modules,
    one output, in training too."""
    import torchvision
    torch.manual_seed(0)
    ref = torchvision.models.googlenet(aux_logits=False, transform_input=False,
                                       init_weights=True)
    randomise_bn(ref)
    with torch.device("meta"):
        ours = build_module("specs/googlenet.yaml", ["aux_logits=false"])
    ours = ours.to_empty(device="cpu")
    assert n_params(ours) == n_params(ref) == 6_624_904
    assert not any(k.startswith("aux") for k in ours.state_dict())
    assert_same_outputs(ours, ref, torch.randn(2, 3, 96, 96))
    assert ours.output_names == ("logits",) and ours.train_only == set()
    ours.train(), ref.train()
    x = torch.randn(2, 3, 96, 96)
    torch.manual_seed(1)
    a = ours(x)
    torch.manual_seed(1)
    b = ref(x)          # torchvision returns GoogLeNetOutputs(logits, None, None) in training
    b = b.logits if hasattr(b, "logits") else b
    assert isinstance(a, torch.Tensor) and a.shape == (2, 1000)
    assert (a - b).abs().max().item() <= 1e-5 * max(1.0, b.abs().max().item())


def test_googlenet_eval_skips_train_only_heads() -> None:
    with torch.device("meta"):
        m = build_module("specs/googlenet-paper.yaml")
    assert "aux1" not in m.code.split("def forward_train")[0]
    assert "aux1" in m.code.split("def forward_train")[1]


# ------------------------------------------- static shapes and params, every spec
WRN_VARIANTS = [("wrn.yaml", o) for o in (["block=B(1,3,1)", "d=22"], ["block=B(3,1,3)", "d=22"],
                                            ["l=3", "d=22"], ["count=blocks", "block=B(3,3,3)"],
                                            ["dropout=0"])]


@pytest.mark.parametrize("spec,over", [pytest.param(s, None, marks=zoo_marks(s[:-5]))
                                       for s in ALL_SPECS] + WRN_VARIANTS)
def test_static_shapes_match_torch(spec: str, over) -> None:
    g = archspec.compile_graph(archspec.load_spec(f"specs/{spec}", over))
    with torch.device("meta"):
        m = build_module(g)
        seen: dict[str, tuple] = {}
        hooks = [mod.register_forward_hook(
            lambda mod, i, o, name=name: seen.__setitem__(name, tuple(o.shape[1:])))
            for name, mod in m.named_modules() if name in g]
        x = torch.empty(2, *g.nodes[g.graph["input"]]["shape"])
        for train in (False, True):
            m.train(train)
            m(x)
    for h in hooks:
        h.remove()
    assert seen, spec
    for name, shape in seen.items():
        assert shape == g.nodes[name]["shape"], name
    assert n_params(m) == sum(d["params"] for _, d in g.nodes(data=True))
    for name, mod in m.named_modules():
        if name in g:
            assert sum(p.numel() for p in mod.parameters()) == g.nodes[name]["params"], name


# ------------------------------------------------------------------ attributes
def test_attributes_and_located_code() -> None:
    m = build_module("specs/cifar10-convbnnet.yaml")
    assert m.output_names == ("out",) or len(m.output_names) == 1
    assert m.head_kinds == {m.output_names[0]: "log_probs"}
    assert m.spec_name == "cifar10-convbnnet"
    # locations are relative to the spec's folder, never a path of the machine
    assert "# cifar10-convbnnet.yaml:" in m.code and "specs/" not in m.code
    assert m.graph_ir.graph["name"] == "cifar10-convbnnet"
    wrn = build_module("specs/wrn.yaml", ["d=10", "k=1"])
    # an op of a library block names the block's line and the spec line that used it
    assert "# stdlib.yaml:26:13 via wrn.yaml:" in wrn.code and "/" not in wrn.code.replace(
        "//", "")
    assert wrn.head_kinds == {wrn.output_names[0]: "logits"}


def test_runtime_error_traceback_names_spec_line() -> None:
    m = build_module("specs/cifar10-basiccnn.yaml").eval()
    with pytest.raises(RuntimeError) as e:
        m(torch.randn(1, 3, 31, 31))
    import traceback
    text = "".join(traceback.format_exception(e.value))
    assert "# cifar10-basiccnn.yaml:" in text          # the spec line, relative to its folder


def test_layer_name_clashing_with_module_attribute(spec_file) -> None:
    p = spec_file("""
        archspec: 1
        name: clash
        input: {shape: [3, 8, 8]}
        layers:
          - forward: {op: conv, out: 4, kernel: 3}
    """)
    with pytest.raises(SpecError) as e:
        build_module(p)
    assert "clashes" in e.value.message and e.value.loc.line == 5


def test_refuses_model_larger_than_memory() -> None:
    with pytest.raises(SpecError) as e:
        build_module("specs/wrn.yaml", ["k=4000"])
    assert "parameters" in e.value.message and "GB" in e.value.message
    assert "(the largest layer, layer3.0.conv2, has 589,824,000,000)" in e.value.message
    assert e.value.loc.path.endswith("wrn.yaml")
    line = Path(e.value.loc.path).read_text().splitlines()[e.value.loc.line - 1]
    assert '"layer{g + 1}": {block:' in line            # the stages' line, not the block library


def test_build_refuses_a_forward_larger_than_memory(spec_file, tmp_path: Path, capsys) -> None:
    """Small weights, huge activations: refused at the input line before any allocation,
    not an OOM kill in the dummy forward; a huge --batch is refused at --batch."""
    from archspec.cli import main
    p = spec_file("""
        archspec: 1
        name: huge
        input: {shape: [3, 40000, 40000]}
        layers:
          - c: {op: conv, out: 64, kernel: 3, padding: 1}
        """)
    out = tmp_path / "b"
    assert main(["build", str(p), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{p}:3:16: error: a forward pass at batch 2 needs at least 857.6 GB" in err
    assert main(["export", str(p), "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "857.6 GB" in capsys.readouterr().err
    assert main(["build", "specs/cifar10-basicnet.yaml", "--batch", "10000000000",
                 "-o", str(out)]) == 2
    assert capsys.readouterr().err.startswith("--batch: error: a forward pass at batch")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["s.yaml"]


def test_pickle_roundtrip() -> None:
    import copy
    import pickle
    m = build_module("specs/cifar10-basicnet.yaml").eval()
    x = torch.randn(2, 3, 32, 32)
    for m2 in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert torch.equal(m2(x), m(x))


# -------------------------------------------------------------------- init
def test_init_schemes() -> None:
    torch.manual_seed(0)
    wrn = build_module("specs/wrn.yaml", ["d=10", "k=4"])
    w = wrn.layer3[0].conv1.weight
    fan_in = w.shape[1] * 9
    assert abs(w.std().item() / (2 / fan_in) ** 0.5 - 1) < 0.05
    assert torch.count_nonzero(wrn.fc.bias) == 0

    rn = _ours_empty("specs/resnet18.yaml")
    init_weights(rn, "torchvision_resnet")
    assert torch.all(rn.layer1[0].bn1.weight == 1) and torch.all(rn.layer1[0].bn1.bias == 0)
    w = rn.layer4[0].conv1.weight
    assert abs(w.std().item() / (2 / (w.shape[0] * 9)) ** 0.5 - 1) < 0.05   # fan_out

    torch.manual_seed(0)
    gn = build_module("specs/googlenet-paper.yaml")     # its output layers' zero biases: layer rules
    assert torch.count_nonzero(gn.fc.bias) == 0
    assert torch.all(gn.aux1.fc1.bias == 0.2) and torch.count_nonzero(gn.aux1.fc2.bias) == 0
    w = gn.conv1.conv.weight
    bound = (3 / w[0].numel()) ** 0.5
    assert w.abs().max().item() <= bound and w.abs().max().item() > 0.9 * bound

    tg = _ours_empty("specs/googlenet.yaml")
    init_weights(tg, "torchvision_googlenet")
    # torchvision's a=-2, b=2 are absolute bounds, so at std 0.01 nothing is truncated
    assert abs(tg.fc.weight.std().item() - 0.01) < 0.001


# -------------------------------------------------------------------- shake
def test_shake_forward_backward() -> None:
    torch.manual_seed(0)
    a = torch.randn(4, 2, 3, 3, requires_grad=True)
    b = torch.randn(4, 2, 3, 3, requires_grad=True)
    assert torch.allclose(shake(a, b, False), 0.5 * (a + b))
    out = shake(a, b, True)
    alpha = ((out - b) / (a - b)).detach()                # per-sample convex weight
    assert torch.allclose(alpha, alpha[:, :1, :1, :1].expand_as(alpha), atol=1e-4)
    assert ((alpha >= 0) & (alpha <= 1)).all()
    out.sum().backward()
    assert torch.allclose(a.grad + b.grad, torch.ones_like(a))
    beta = a.grad[:, 0, 0, 0]
    assert not torch.allclose(beta, alpha[:, 0, 0, 0])     # independent draws


def test_shake_spec_builds_and_trains(spec_file) -> None:
    p = spec_file("""
        archspec: 1
        name: shake-tiny
        input: {shape: [3, 8, 8]}
        layers:
          - conv1: {op: conv, out: 4, kernel: 3, padding: 1}
          - a: {op: conv, out: 4, kernel: 3, padding: 1}
          - b: {op: conv, from: conv1, out: 4, kernel: 3, padding: 1}
          - merge: {op: shake, from: [a, b]}
          - pool: {op: adaptive_avgpool, size: 1}
          - flatten: {op: flatten}
          - fc: {op: linear, out: 3}
    """)
    m = build_module(p)
    x = torch.randn(2, 3, 8, 8)
    m.train()
    m(x).sum().backward()
    assert m.a.weight.grad is not None and m.b.weight.grad is not None
    m.eval()
    assert torch.equal(m(x), m(x))


def test_negative_slope_activations_are_not_in_place(spec_file) -> None:
    """torch cannot run backward through in-place leaky_relu / elu with a negative slope
    ("In-place leakyReLu backward calculation is triggered with a negative slope"): found
    by tests/test_fuzz.py; the zero and positive slopes stay in place."""
    p = spec_file("""
        input: {shape: [2, 4, 4]}
        layers:
          - c1: {op: conv, out: 2, kernel: 1}
          - neg: {op: leaky_relu, negative_slope: -0.2}
          - c2: {op: conv, out: 2, kernel: 1}
          - elu: {op: elu, alpha: -0.5}
          - c3: {op: conv, out: 2, kernel: 1}
          - zero: {op: leaky_relu, negative_slope: 0.0}
          - c4: {op: conv, out: 2, kernel: 1}
          - pos: {op: elu}
    """)
    m = build_module(p)
    assert [m.neg.inplace, m.elu.inplace, m.zero.inplace, m.pos.inplace] == \
        [False, False, True, True]
    m.train()
    x = torch.randn(2, 2, 4, 4, requires_grad=True)
    m(x).sum().backward()
    assert m.c1.weight.grad is not None and x.grad is not None


# ---------------------------------------------------------------- ecosystem
def test_torch_compile_fullgraph_no_graph_breaks() -> None:
    import torch._dynamo as dynamo
    m = build_module("specs/cifar10-resnet.yaml").eval()
    x = torch.randn(2, 3, 32, 32)
    explain = dynamo.explain(m)(x)
    assert explain.graph_break_count == 0 and explain.graph_count == 1
    dynamo.reset()
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        assert torch.allclose(compiled(x), m(x), atol=1e-5)
    g = build_module("specs/googlenet.yaml").train()
    explain = dynamo.explain(g)(torch.randn(2, 3, 64, 64))
    assert explain.graph_break_count == 0
    dynamo.reset()


def test_torch_export_and_channels_last_and_autocast() -> None:
    m = build_module("specs/cifar10-resnet.yaml").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = m(x)
    ep = torch.export.export(m, (x,))
    assert torch.allclose(ep.module()(x), want, atol=1e-5)

    cl = build_module("specs/cifar10-resnet.yaml").eval()
    cl.load_state_dict(m.state_dict())
    cl = cl.to(memory_format=torch.channels_last)
    with torch.no_grad():
        got = cl(x.to(memory_format=torch.channels_last))
    assert torch.allclose(got, want, atol=1e-4)

    for dtype in (torch.bfloat16, torch.float16):
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
            low = m(x)
        assert low.dtype == dtype
        assert (low.float() - want).abs().max().item() < 0.1 * max(1.0, want.abs().max().item())


def test_onnx_export(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    import onnx
    m = build_module("specs/cifar10-basiccnn.yaml").eval()
    out = tmp_path / "m.onnx"
    torch.onnx.export(m, (torch.randn(1, 3, 32, 32),), str(out), dynamo=True)
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert len(model.graph.initializer) >= 10


def _tree18() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """resnet18 from the spec (a module tree: Sequential stages of Basic blocks, each with
    its own generated forward) in eval mode, a small input and its eager output."""
    torch.manual_seed(0)
    m = build_module("specs/resnet18.yaml").eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return m, x, m(x)


@pytest.mark.slow
def test_torch_compile_fullgraph_on_the_module_tree() -> None:
    """Issue 14: torch.compile(fullgraph=True) of the tree (a graph break raises), equal
    to eager, forward and backward (GoogLeNet's train forward: the test above)."""
    m, x, want = _tree18()
    torch._dynamo.reset()
    compiled = torch.compile(m, fullgraph=True, backend="eager")
    with torch.no_grad():
        assert torch.allclose(compiled(x), want, atol=1e-5)
    m.train()
    compiled(x).sum().backward()
    assert m.layer3[1].conv1.weight.grad is not None
    torch._dynamo.reset()


def test_torch_export_of_the_module_tree_equals_eager() -> None:
    m, x, want = _tree18()
    ep = torch.export.export(m, (x,))
    assert torch.allclose(ep.module()(x), want, atol=1e-5)
    assert [k for k in ep.state_dict if k.startswith("layer3.1.")][:2] == \
        ["layer3.1.conv1.weight", "layer3.1.bn1.weight"]


@pytest.mark.slow
def test_onnx_export_of_the_module_tree(tmp_path: Path) -> None:
    """ONNX (the dynamo exporter) of the tree: checked by onnx.checker and, with no
    onnxruntime here, run by onnx's reference evaluator against the eager output."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx.reference import ReferenceEvaluator
    m, x, want = _tree18()
    out = tmp_path / "tree.onnx"
    torch.onnx.export(m, (x,), str(out), dynamo=True)
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    (got,) = ReferenceEvaluator(model).run(None, {model.graph.input[0].name: x.numpy()})
    assert got.shape == (2, 1000)
    assert torch.allclose(torch.from_numpy(got), want, atol=1e-4)


# ------------------------------------------------------------------- commands
def test_build_command_writes_directory(tmp_path: Path, capsys) -> None:
    from safetensors.torch import load_file

    from archspec.cli import main
    out = tmp_path / "b"
    assert main(["build", "specs/cifar10-convbnnet.yaml", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "params" in text and "(2, 10)" in text
    names = {p.name for p in out.iterdir()}
    assert {"model.py", "weights.safetensors", "summary.json"} <= names
    assert [p.name for p in tmp_path.iterdir()] == ["b"]          # no temp dirs left
    from archspec import render
    if render.dot_available():
        assert "graph.svg" in names
    built = build_module("specs/cifar10-convbnnet.yaml")
    ns: dict = {}
    exec(compile((out / "model.py").read_text(), "model.py", "exec"), ns)
    model = ns["Model"]()
    model.load_state_dict(load_file(str(out / "weights.safetensors")), strict=True)
    assert set(model.state_dict()) == set(built.state_dict())
    # rebuilding replaces the directory whole
    assert main(["build", "specs/cifar10-convbnnet.yaml", "-o", str(out), "--set",
                 "num_classes=3"]) == 0
    assert '"output_shapes": {' in (out / "summary.json").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_build_failures_leave_nothing(tmp_path: Path, capsys) -> None:
    from archspec.cli import main
    out = tmp_path / "big"
    assert main(["build", "specs/wrn.yaml", "--set", "k=4000", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "GB" in err and "Traceback" not in err
    assert main(["build", "specs/wrn.yaml", "--set", "nope=1", "-o", str(out)]) == 2
    assert list(tmp_path.iterdir()) == []


def test_build_refuses_one_value_per_channel_for_batch_statistics(spec_file, tmp_path: Path,
                                                                 capsys) -> None:
    """A batchnorm without running statistics normalises over the batch even in eval mode:
    --batch 1 on a flat input was torch's ValueError traceback midway through the build."""
    from archspec.cli import main
    p = spec_file("""
        input: {shape: [4]}
        layers:
          - bn: {op: batchnorm, track_running_stats: false}
          - fc: {op: linear, out: 2}
    """)
    out = tmp_path / "b"
    assert main(["build", str(p), "--batch", "1", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{p}:3:5: error: bn: a batchnorm without running statistics "
                          "normalises over the batch, and --batch 1 gives it 1 value per "
                          "channel (input (N, 4)); use --batch 2 or more")
    assert not out.exists()
    assert main(["build", str(p), "--batch", "2", "-o", str(out)]) == 0


def test_build_and_export_refuse_unwritable_paths(tmp_path: Path, capsys) -> None:
    """A file where the build directory, or a folder on the way, should be: one line
    before any work, the file untouched; export to a directory likewise."""
    from archspec.cli import main
    f = tmp_path / "f"
    f.write_text("keep")
    assert main(["build", "specs/cifar10-basicnet.yaml", "-o", str(f)]) == 2
    assert "it is a file, not a directory" in capsys.readouterr().err
    assert main(["build", "specs/cifar10-basicnet.yaml", "-o", str(f / "b")]) == 2
    err = capsys.readouterr().err
    assert f"'{f}' is a file, not a folder" in err and "Traceback" not in err
    assert main(["export", "specs/cifar10-basicnet.yaml", "--onnx", str(f / "m.onnx")]) == 2
    assert f"'{f}' is a file, not a folder" in capsys.readouterr().err
    assert main(["export", "specs/cifar10-basicnet.yaml", "--torch-export", str(tmp_path)]) == 2
    assert "it is a directory" in capsys.readouterr().err
    assert f.read_text() == "keep" and [p.name for p in tmp_path.iterdir()] == ["f"]


def test_build_never_replaces_a_directory_of_other_files(tmp_path: Path, capsys,
                                                         monkeypatch) -> None:
    """A build replaces its directory whole, so one holding the user's files is refused;
    an earlier build's directory (even '-o .' inside it) is replaced."""
    from archspec.cli import main
    spec = str(Path("specs/cifar10-basicnet.yaml").resolve())
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep")
    assert main(["build", spec, "-o", str(d)]) == 2
    assert "holds files that are not from a build (notes.txt)" in capsys.readouterr().err
    assert [p.name for p in d.iterdir()] == ["notes.txt"]
    (d / "notes.txt").unlink()
    assert main(["build", spec, "-o", str(d)]) == 0          # empty: fine
    monkeypatch.chdir(d)
    assert main(["build", spec, "-o", ".", "--set", "num_classes=3"]) == 0
    import json
    assert json.loads((d / "summary.json").read_text())["output_shapes"]["out"] == ["N", 3]
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]


def test_emit_and_export_commands(tmp_path: Path, capsys) -> None:
    from archspec.cli import main
    assert main(["emit", "specs/cifar10-basicnet.yaml", "--python"]) == 0
    assert "class Cifar10Basicnet(nn.Module)" in capsys.readouterr().out
    pt2 = tmp_path / "m.pt2"
    assert main(["export", "specs/cifar10-basicnet.yaml", "--torch-export", str(pt2)]) == 0
    ep = torch.export.load(str(pt2))
    assert ep.module()(torch.randn(3, 3, 32, 32)).shape == (3, 10)     # dynamic batch
    assert main(["export", "specs/cifar10-basicnet.yaml", "--torch-export",
                 str(tmp_path / "no" / "m.pt2")]) == 2


def test_build_keeps_initial_batchnorm_statistics(tmp_path: Path, capsys) -> None:
    from safetensors.torch import load_file

    from archspec.cli import main
    out = tmp_path / "g"
    assert main(["build", "specs/googlenet.yaml", "-o", str(out), "--batch", "1"]) == 0
    assert "aux1 (1, 1000)" in capsys.readouterr().out
    w = load_file(str(out / "weights.safetensors"))
    assert torch.all(w["conv1.bn.running_mean"] == 0) and torch.all(w["conv1.bn.running_var"] == 1)
    assert int(w["conv1.bn.num_batches_tracked"]) == 0


def test_export_onnx_command(tmp_path: Path, capsys) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from archspec.cli import main
    out = tmp_path / "m.onnx"
    assert main(["export", "specs/cifar10-basiccnn.yaml", "--onnx", str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith("m.onnx")      # no exporter chatter
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param      # dynamic batch
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize("make,path,size", [
    (lambda: WideResNet(16, 2), "specs/wrn.yaml:d=16,k=2", 32),
    ("resnet18", "specs/resnet18.yaml", 32),
])
def test_train_mode_outputs_and_gradients_equal(make, path: str, size: int) -> None:
    """In-place ops keep autograd exact: same loss, same gradients (dropout draws included)."""
    import torchvision
    torch.manual_seed(0)
    ref = getattr(torchvision.models, make)() if isinstance(make, str) else make()
    spec, _, over = path.partition(":")
    ours = build_module(spec, over.split(",") if over else None)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.train(), ref.train()
    x = torch.randn(2, 3, size, size)
    losses = []
    for m in (ours, ref):
        torch.manual_seed(1)
        loss = m(x).square().mean()
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    grads = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert torch.allclose(p.grad, grads[name].grad, rtol=1e-4, atol=1e-6), name


def test_two_evaluation_outputs_return_a_tuple(spec_file) -> None:
    p = spec_file("""
        archspec: 1
        name: two-heads
        input: {shape: [3, 8, 8]}
        layers:
          - conv: {op: conv, out: 4, kernel: 3}
          - flatten: {op: flatten}
          - fc: {op: linear, out: 5}
          - probs: {op: softmax, from: fc}
        outputs:
          - logits: {from: fc}
          - probs: {from: probs, loss_weight: 0}
    """)
    m = build_module(p).eval()
    logits, probs = m(torch.randn(2, 3, 8, 8))
    assert torch.allclose(probs, logits.softmax(-1))
    assert m.head_kinds == {"logits": "logits", "probs": "probs"}
    assert m.train_only == frozenset() and m.train()(torch.randn(2, 3, 8, 8))[1].shape == (2, 5)


def test_interrupted_build_keeps_the_previous_directory(tmp_path: Path, monkeypatch) -> None:
    from archspec.commands import build as build_cmd
    out = tmp_path / "b"
    out.mkdir()
    (out / "model.py").write_text("previous build")

    def boom(graph, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_cmd, "_render", boom)
    with pytest.raises(KeyboardInterrupt):
        build_cmd.write_build(str(out), {"model.py": b"new", "weights.safetensors": b"x"},
                              graph=object())
    assert [p.name for p in tmp_path.iterdir()] == ["b"]
    assert [p.name for p in out.iterdir()] == ["model.py"]
    assert (out / "model.py").read_text() == "previous build"


def test_add_after_drop_path_runs_in_place_and_keeps_gradients(spec_file) -> None:
    """torchvision's ``result = stochastic_depth(result); result += input``: a tensor a
    drop_path (or dropout) hands on is free when its own input is, so the add runs in
    place; when that input is read elsewhere it does not, and gradients stay exact."""
    p = spec_file("""
        input: {shape: [4, 6, 6]}
        layers:
          - conv: {op: conv, out: 4, kernel: 3, padding: 1}
          - dp: {op: drop_path, p: 0.3}
          - sum: {op: add, from: [dp, input]}
          - conv2: {op: conv, out: 4, kernel: 1}
          - dp2: {op: dropout, p: 0.3}
          - sum2: {op: add, from: [dp2, conv2]}
          - flat: {op: flatten}
    """)
    m = build_module(p)
    code = m.code.split("def forward_train")[0]
    assert "dp.add_(" in code and "sum2 = dp2 +" in code, code
    ref = build_module(p)
    ref.load_state_dict(m.state_dict())
    x = torch.randn(3, 4, 6, 6)
    m.train(), ref.train()
    torch.manual_seed(0)
    m(x).square().sum().backward()
    torch.manual_seed(0)
    # the same computation, out of place: (drop_path(conv(x)) + x) etc., by hand
    import torchvision
    c = ref.conv(x)
    s = torchvision.ops.stochastic_depth(c, 0.3, "row", True) + x
    c2 = ref.conv2(s)
    s2 = torch.nn.functional.dropout(c2, 0.3, True) + c2
    s2.flatten(1).square().sum().backward()
    for (name, a), b in zip(m.named_parameters(), ref.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-6), name
