"""The init notation (by op kind, block and layer, the named schemes written in it) and
``trainable``: against hand-written torch, drawn in the same order (exact)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import archspec
from archspec.errors import SpecError
from archspec.ops import OPS
from archspec.torch_backend import build_module, init_weights

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]

HEAD = """\
archspec: 1
name: t
input: {shape: [3, 8, 8]}
"""


def _graph(tmp_path, text: str):
    p = tmp_path / "t.yaml"
    p.write_text(HEAD + text)
    return archspec.compile_graph(archspec.load_spec(str(p)))


def _built(tmp_path, text: str, seed: int = 0) -> nn.Module:
    g = _graph(tmp_path, text)
    torch.manual_seed(seed)
    return build_module(g)


def _same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    assert [k for k in sa if not torch.equal(sa[k], sb[k])] == []


def test_layer_normal_std_and_exact_against_torch(tmp_path) -> None:
    """A per-layer normal std 0.001 on a big layer gives that std, and the seeded build
    is bit for bit torch's own modules initialised the same way in the same order."""
    m = _built(tmp_path, """\
layers:
  - flat: {op: flatten}
  - fc1: {op: linear, out: 512, init: {weight: {normal: {std: 0.001}}, bias: zeros}}
  - fc2: {op: linear, out: 10, init: {weight: {trunc_normal: {std: "1 / sqrt(fan_in)"}}}}
""")
    w = m.fc1.weight
    assert abs(w.std().item() / 0.001 - 1) < 0.01 and abs(w.mean().item()) < 1e-4
    torch.manual_seed(0)
    ref = nn.Sequential()
    ref.add_module("flat", nn.Flatten())
    ref.add_module("fc1", nn.Linear(192, 512))
    ref.add_module("fc2", nn.Linear(512, 10))
    nn.init.normal_(ref.fc1.weight, std=0.001)
    nn.init.zeros_(ref.fc1.bias)
    nn.init.trunc_normal_(ref.fc2.weight, std=1 / math.sqrt(512))
    _same_state(m, ref)


VGG = """\
init:                                       # torchvision's VGG, written out
  conv: {weight: {kaiming_normal: {mode: fan_out, nonlinearity: relu}}, bias: zeros}
  batchnorm: {weight: ones, bias: zeros}
  linear: {weight: {normal: {mean: 0, std: 0.01}}, bias: zeros}
layers:
  - features:
      seq:
        - {op: conv, out: 16, kernel: 3, padding: 1}
        - {op: batchnorm}
        - {op: relu}
        - {op: maxpool, kernel: 2, stride: 2}
  - flatten: {op: flatten}
  - classifier:
      seq:
        - {op: linear, out: 64}
        - {op: relu}
        - {op: linear, out: 10}
"""


def _vgg_reference() -> nn.Module:
    class Vgg(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16),
                                          nn.ReLU(), nn.MaxPool2d(2, 2))
            self.flatten = nn.Flatten()
            self.classifier = nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))
            for m in self.modules():            # torchvision's vgg.py loop
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.constant_(m.bias, 0)
    torch.manual_seed(0)
    return Vgg()


def test_vgg_classifier_init_by_op_kind_and_named(tmp_path) -> None:
    """VGG's init (normal 0.01, bias 0) by op kind equals torchvision's loop, and the
    named scheme torchvision_vgg (a library definition in the same notation) equals it."""
    ref = _vgg_reference()
    _same_state(_built(tmp_path, VGG), ref)
    named = VGG.split("layers:", 1)[1]
    _same_state(_built(tmp_path, "init: torchvision_vgg\nlayers:" + named), ref)
    assert torch.count_nonzero(ref.classifier[2].bias) == 0


def test_resnet18_zero_init_residual_is_torchvisions(tmp_path) -> None:
    """torchvision_resnet plus a spec-level layer rule zeroing each block's last BN is
    torchvision's resnet18(zero_init_residual=True), bit for bit."""
    import torchvision
    g = archspec.compile_graph(archspec.load_spec("specs/resnet18.yaml"))
    text = tmp_path / "r.yaml"
    text.write_text(f"archspec: 1\nextends: {ROOT / 'specs' / 'resnet18.yaml'}\nname: r\n"
                    "init:\n  scheme: torchvision_resnet\n"
                    "  layers: {\"layer*.bn2\": {weight: zeros}}\n")
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(zero_init_residual=True)
    torch.manual_seed(0)
    ours = build_module(str(text))
    _same_state(ours, ref)
    assert g.nodes["layer1.0.bn2"]["init"] == (("weight", "ones", ()), ("bias", "zeros", ()))


def test_block_init_applies_to_its_layers_and_a_layer_wins(tmp_path) -> None:
    g = _graph(tmp_path, """\
init: {conv: {weight: {normal: {std: 0.5}}}}
blocks:
  unit:
    params: {w: {type: int}}
    init: {conv: {bias: {constant: {value: "w / 100.0"}}}}
    layers:
      - a: {op: conv, out: w, kernel: 1}
      - b: {op: conv, out: w, kernel: 1, init: {weight: ones}}
layers:
  - u: {block: unit, w: 4, init: {weight: {uniform: {a: -1, b: 1}}}}
  - c: {op: conv, out: 4, kernel: 1}
""")
    assert g.nodes["u.a"]["init"] == (("weight", "uniform", (("a", -1.0), ("b", 1.0))),
                                      ("bias", "constant", (("value", 0.04),)))
    assert g.nodes["u.b"]["init"][0] == ("weight", "ones", ())
    assert g.nodes["c"]["init"] == (("weight", "normal", (("std", 0.5),)),)
    m = build_module(g)
    assert torch.all(m.u.b.weight == 1) and torch.allclose(m.u.a.bias, torch.full((4,), 0.04))


def test_named_schemes_by_type_on_a_torchvision_model() -> None:
    """init_weights(module, name) runs a library scheme on any module by its type: on
    torchvision's resnet18 it draws exactly what torchvision's own loop draws."""
    import torchvision
    torch.manual_seed(0)
    a = torchvision.models.resnet18()
    torch.manual_seed(1)
    init_weights(a, "torchvision_resnet")
    torch.manual_seed(0)
    b = torchvision.models.resnet18()
    torch.manual_seed(1)
    for m in b.modules():                      # torchvision's resnet.py loop
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    _same_state(a, b)


def test_every_learning_op_declares_its_tensors() -> None:
    """OpDef.tensors sizes add up to the op's params on every node of the zoo specs."""
    for stem in ("resnet50", "convnext_tiny", "googlenet", "mobilenet_v3_small"):
        g = archspec.compile_graph(archspec.load_spec(f"specs/{stem}.yaml"))
        for n, d in g.nodes(data=True):
            op = OPS.get(d["op"])
            if op is None:
                continue
            ins = [g.nodes[i]["shape"] for i in d["inputs"]]
            t = op.tensors(d["args"], ins) if op.tensors else ()
            assert sum(math.prod(s) for _, s in t) == d["params"], n


# ------------------------------------------------------------------- trainable
def test_trainable_false_freezes_and_is_reported(tmp_path) -> None:
    g = _graph(tmp_path, """\
layers:
  - stem: {seq: [{op: conv, out: 4, kernel: 3}, {op: batchnorm}], trainable: false}
  - relu: {op: relu}
  - flat: {op: flatten}
  - fc: {op: linear, out: 2}
""")
    assert g.nodes["stem.0"]["trainable"] is False and g.nodes["fc"]["trainable"] is True
    s = archspec.summarize(g)
    assert s.params_trainable == s.params - (3 * 9 * 4 + 4 + 8)
    m = build_module(g)
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    assert frozen == {"stem.0.weight", "stem.0.bias", "stem.1.weight", "stem.1.bias"}
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    m(torch.randn(4, 3, 8, 8)).sum().backward()
    opt.step()
    for n, p in m.named_parameters():
        assert torch.equal(p, before[n]) == (n in frozen), n


@pytest.mark.parametrize("text,message", [
    ("layers:\n  - r: {op: relu, trainable: false}\n",
     "'trainable' on a relu, which has no parameters"),
    ("layers:\n  - c: {op: conv, out: 4, kernel: 1, bias: false, init: {bias: zeros}}\n",
     "init of 'bias', but this conv has no 'bias' (its tensors: weight)"),
    ("layers:\n  - c: {op: conv, out: 4, kernel: 1, init: {weight: {normal: {std: -1}}}}\n",
     "'std' must not be negative"),
    ("init: {conv: {weight: {normal: {std: \"0 - s\"}}}}\nparams: {s: 1}\n"
     "layers:\n  - c: {op: conv, out: 4, kernel: 1}\n", "c.weight: init 'normal': 'std' must"),
    ("init: torchvision_resnt\nlayers:\n  - c: {op: conv, out: 4, kernel: 1}\n",
     "unknown init scheme 'torchvision_resnt'"),
    ("layers:\n  - b: {op: batchnorm, init: {weight: {kaiming_normal: {}}}}\n",
     "needs a tensor of 2 or more dims"),
])
def test_bad_init_and_trainable_are_located(tmp_path, text: str, message: str) -> None:
    with pytest.raises(SpecError) as e:
        _graph(tmp_path, text)
    assert message in str(e.value), str(e.value)
    assert all(x.loc.line > 3 for x in e.value.errors)      # in the layers, not the head


def test_check_graph_validates_init_and_trainable(tmp_path) -> None:
    """check_graph re-validates the IR's init plans and trainable flags."""
    from archspec.shapes import check_graph
    g = _graph(tmp_path, "layers:\n  - c: {op: conv, out: 4, kernel: 1, bias: false,"
                         " init: {weight: {normal: {std: 0.1}}}}\n")
    check_graph(g)
    g.nodes["c"]["init"] = (("bias", "zeros", ()),)
    with pytest.raises(SpecError, match="init plan for"):
        check_graph(g)
    g.nodes["c"]["init"] = (("weight", "normal", (("std", -1.0),)),)
    with pytest.raises(SpecError, match="must not be negative"):
        check_graph(g)
    g.nodes["c"]["init"], g.nodes["c"]["trainable"] = (), "no"
    with pytest.raises(SpecError, match="must be a bool"):
        check_graph(g)
