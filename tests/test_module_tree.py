"""Built modules are module trees (issue 14, deliverable 1): every block instance and
stage with one tensor in and one out is an ``nn.Module`` with its own forward, so stages
can be called, blocks hooked and swapped, as on torchvision's hand-written models."""
from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
import torch
import torch.nn as nn
import torchvision

from archspec import build_module
from archspec.torch_backend import Scope, TreeModule, block_class_name


@pytest.fixture(scope="module")
def pair() -> tuple[nn.Module, nn.Module]:
    """resnet18 from the spec and torchvision's, with the same weights, in eval mode."""
    torch.manual_seed(0)
    ours = build_module("specs/resnet18.yaml").eval()
    ref = torchvision.models.resnet18().eval()
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def _x() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_stage_call_equals_the_intermediate_activation(pair) -> None:
    ours, ref = pair
    seen: dict[str, torch.Tensor] = {}
    h = ref.layer2.register_forward_hook(lambda mod, i, o: seen.__setitem__("l2", o))
    h3 = ours.layer3.register_forward_hook(lambda mod, i, o: seen.__setitem__("l3", o))
    with torch.no_grad():
        out = ours(_x())
        ref(_x())
        a = ours.layer3(seen["l2"].clone())
        b = ref.layer3(seen["l2"].clone())
    h.remove(), h3.remove()
    assert a.shape == (2, 256, 4, 4)
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(seen["l3"], b, atol=1e-5)
    assert out.shape == (2, 1000)


def test_hooks_on_a_block_fire_forward_and_backward(pair) -> None:
    ours, _ = pair
    fwd: list[tuple] = []
    bwd: list[tuple] = []
    block = ours.layer3[1]
    h1 = block.register_forward_hook(lambda m, i, o: fwd.append((i[0].shape, o.shape)))
    h2 = block.register_full_backward_hook(
        lambda m, gi, go: bwd.append((gi[0].shape, go[0].shape)))
    pre = ours.layer2[0].register_forward_pre_hook(lambda m, i: fwd.append(("pre", i[0].shape)))
    x = _x().requires_grad_()
    ours(x).sum().backward()
    h1.remove(), h2.remove(), pre.remove()
    assert fwd == [("pre", (2, 64, 16, 16)), ((2, 256, 4, 4), (2, 256, 4, 4))]
    assert bwd == [((2, 256, 4, 4), (2, 256, 4, 4))]
    assert x.grad is not None and x.grad.shape == x.shape


def test_replacing_a_stage_or_block(pair) -> None:
    ours, _ = pair
    m = copy.deepcopy(ours)
    m.layer4 = nn.Conv2d(256, 512, 1, stride=2)          # the shape layer4 gives: runs
    assert m(_x()).shape == (2, 1000)
    m.layer3[1] = nn.Identity()                          # a block of a stage: runs
    assert m(_x()).shape == (2, 1000)
    m.fc = nn.Linear(512, 7)
    assert m(_x()).shape == (2, 7)
    m.layer4 = nn.Identity()                             # 256 channels reach fc(512, 7)
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied"):
        m(_x())
    m = copy.deepcopy(ours)
    m.layer2[0] = nn.Conv2d(64, 32, 1)                   # layer2.1 expects 128 channels
    with pytest.raises(RuntimeError, match="expected input.* to have 128 channels"):
        m(_x())


def test_one_class_per_block_definition() -> None:
    with torch.device("meta"):
        r50 = build_module("specs/resnet50.yaml")
        again = build_module("specs/resnet101.yaml")
        wrn = build_module("specs/wrn.yaml", ["d=16", "k=1"])
        wrn313 = build_module("specs/wrn.yaml", ["d=22", "k=1", "block=B(3,1,3)"])
        goog = build_module("specs/googlenet.yaml")
    assert type(r50.layer1[0]) is type(r50.layer1[1]) is type(r50.layer4[2])
    assert type(r50.layer1[0]).__name__ == "Bottleneck"
    assert type(again.layer3[22]) is type(r50.layer1[0])
    assert isinstance(r50.layer1, nn.Sequential) and isinstance(r50.layer1[0].downsample,
                                                                nn.Sequential)
    assert type(wrn.layer2[0]).__name__ == "B_3_3" and type(wrn313.layer1[0]).__name__ == "B_3_1_3"
    assert type(goog.inception3a).__name__ == "Inception"
    assert type(goog.inception3a.branch1).__name__ == "BasicConv2d"
    assert isinstance(goog.inception3a.branch2, nn.Sequential)
    assert type(goog.aux1).__name__ == "InceptionAux"
    assert block_class_name("basic_block") == "BasicBlock"
    assert not any(isinstance(m, Scope) for m in r50.modules())


def test_state_dict_keys_and_params_equal_torchvision() -> None:
    with torch.device("meta"):
        ours = build_module("specs/resnet50.yaml")
        ref = torchvision.models.resnet50()
    assert list(ours.state_dict()) == list(ref.state_dict())
    mine = {n: type(m).__name__ for n, m in ours.named_modules()}
    theirs = {n: type(m).__name__ for n, m in ref.named_modules() if n and len(m._modules)}
    assert theirs and all(mine[n] == c for n, c in theirs.items()), theirs
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


def test_create_feature_extractor(pair) -> None:
    from torchvision.models.feature_extraction import create_feature_extractor
    ours, _ = pair
    fx_model = create_feature_extractor(ours, {"layer2": "f", "layer3.1": "g"})
    with torch.no_grad():
        got = fx_model(_x())
        x = _x()
        stem = ours.maxpool(ours.relu(ours.bn1(ours.conv1(x))))
        f = ours.layer2(ours.layer1(stem))
        g = ours.layer3(f)
    assert torch.allclose(got["f"], f, atol=1e-5) and torch.allclose(got["g"], g, atol=1e-5)


def test_pickle_and_deepcopy_keep_every_forward(pair) -> None:
    ours, _ = pair
    x = _x()
    with torch.no_grad():
        want, want3 = ours(x), ours.layer1(ours.maxpool(ours.relu(ours.bn1(ours.conv1(x)))))
        for m in (pickle.loads(pickle.dumps(ours)), copy.deepcopy(ours)):
            assert torch.equal(m(x), want)
        block = pickle.loads(pickle.dumps(ours.layer1))       # a stage on its own
        stem = ours.maxpool(ours.relu(ours.bn1(ours.conv1(x))))
        assert torch.equal(block(stem), want3)
    assert type(copy.deepcopy(ours.layer1[0])) is type(ours.layer1[0])


def test_googlenet_train_forward_calls_aux_heads() -> None:
    with torch.device("meta"):
        m = build_module("specs/googlenet.yaml")
    calls: list[str] = []
    for name in ("aux1", "aux2", "inception4a"):
        m.get_submodule(name).register_forward_hook(lambda mod, i, o, n=name: calls.append(n))
    m.train()
    outs = m(torch.empty(2, 3, 96, 96, device="meta"))
    assert [o.shape for o in outs] == [(2, 1000)] * 3 and calls == ["inception4a", "aux1", "aux2"]
    calls.clear()
    m.eval()
    with torch.no_grad():
        assert m(torch.empty(2, 3, 96, 96, device="meta")).shape == (2, 1000)
    assert calls == ["inception4a"]


def test_a_scope_with_two_tensors_leaving_is_inlined(spec_file) -> None:
    """``sum`` reads ``s.a`` as well as ``s``: ``s`` has no one output, so it stays a
    container and its ops run in the root's forward; calling it says why."""
    p = spec_file("""
        input: {shape: [4, 6, 6]}
        layers:
          - s:
              seq:
                - a: {op: conv, out: 4, kernel: 1}
                - b: {op: relu}
          - t:
              seq:
                - {op: conv, out: 4, kernel: 1}
                - {op: relu}
          - sum: {op: add, from: [s.a, t]}
          - flat: {op: flatten}
    """)
    m = build_module(p)
    assert isinstance(m.s, Scope) and isinstance(m.t, nn.Sequential)
    x = torch.randn(2, 4, 6, 6)
    a = m.s.a(x)
    assert torch.allclose(m(x), (a + m.t(torch.relu(a))).flatten(1), atol=1e-6)
    with pytest.raises(NotImplementedError, match="scope 's' has no forward of its own"):
        m.s(x)


def test_torchinfo_lists_blocks() -> None:
    torchinfo = pytest.importorskip("torchinfo")
    ours = build_module("specs/resnet18.yaml")
    rows = torchinfo.summary(ours, input_size=(1, 3, 64, 64), depth=3, device="cpu",
                             verbose=0).summary_list
    blocks = [r for r in rows if type(r.module).__name__ == "Basic"]
    assert len(blocks) == 8 and all(r.output_size for r in blocks)


def test_tree_modules_are_tree_modules() -> None:
    with torch.device("meta"):
        m = build_module("specs/resnet18.yaml")
    assert isinstance(m.layer1[0], TreeModule) and "def forward(self, x):" in m.code


@pytest.mark.parametrize("spec", ["mobilenet_v3_small", "shake-shake"])
def test_backward_hooks_on_every_scope_module(spec: str) -> None:
    """No op overwrites a tensor entering or leaving a scope module, so full backward
    hooks work on all of them (torchvision's MobileNetV3 refuses them on its blocks:
    ``result += input`` overwrites a block's output)."""
    with torch.device("meta"):
        m = build_module(f"specs/{spec}.yaml")
    hooked = [mod.register_full_backward_hook(lambda *a: None) for mod in m.modules()
              if isinstance(mod, (TreeModule, nn.Sequential))]
    assert len(hooked) > 10
    shape = m.graph_ir.nodes[m.graph_ir.graph["input"]]["shape"]
    x = torch.empty(2, *shape, device="meta", requires_grad=True)
    m.train()(x).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def _summary_rows(model: nn.Module, torchinfo: Any) -> list[tuple]:
    """torchinfo's table rows (depth 3) as (class name, depth-index, output shape, params)."""
    s = torchinfo.summary(model, input_size=(1, 3, 64, 64), depth=3, device="cpu", verbose=0)
    return [(type(r.module).__name__, f"{r.depth}-{r.depth_index}", r.output_size,
             r.num_params, r.trainable_params) for r in s.summary_list]


def test_torchinfo_summary_equals_torchvision_resnet50_row_for_row() -> None:
    """Issue 14's figure: the spec-built resnet50's torchinfo table at depth 3 is
    torchvision's, row for row in layer names (class: depth-index), output shapes and
    parameter counts. Only the root's class differs (ArchModule, not ResNet); the three
    ReLUs of a block are three modules where torchvision calls one three times, which
    torchinfo's default table (no variable names) shows alike."""
    torchinfo = pytest.importorskip("torchinfo")
    torch.manual_seed(0)
    ours = _summary_rows(build_module("specs/resnet50.yaml"), torchinfo)
    ref = _summary_rows(torchvision.models.resnet50(), torchinfo)
    assert len(ours) == len(ref) == 183
    assert ours[0][0] == "ArchModule" and ref[0][0] == "ResNet"
    assert ours[0][1:] == ref[0][1:]
    assert ours[1:] == ref[1:]
    assert all(r[2] for r in ours)                 # no '--' output: every row ran


def _aten_calls(m: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """How often each aten op runs in one train-mode forward+backward (torch's profiler)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = m.train()(x)
        (out[0] if isinstance(out, tuple) else out).sum().backward()
    return {e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::")}


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["resnet50", "googlenet", "wrn-28-10"])
def test_forward_backward_runs_the_references_aten_ops(spec: str) -> None:
    """The fwd+bwd bench's ratios (bench/bench_torch.py) without its noise: the tree runs
    the very aten ops of the reference, each as often (no extra clone, contiguous or
    out-of-place activation anywhere), forward and backward."""
    from references.wrn_pystyle import WideResNet
    refs = {"resnet50": torchvision.models.resnet50,
            "googlenet": lambda: torchvision.models.googlenet(
                aux_logits=True, transform_input=False, init_weights=True),
            "wrn-28-10": lambda: WideResNet(28, 10)}
    x = torch.randn(2, 3, 32, 32) if spec == "wrn-28-10" else torch.randn(2, 3, 64, 64)
    ours, ref = _aten_calls(build_module(f"specs/{spec}.yaml"), x), _aten_calls(refs[spec](), x)
    assert ours == ref and sum(ours.values()) > 1000
