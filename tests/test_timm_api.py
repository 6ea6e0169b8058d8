"""timm's model API on every built classifier (issue 14, deliverable 2): the spec's
``roles:`` mark the stem, stages, head and classifier, and the built module has
``forward_features``, ``forward_head``, ``reset_classifier``, ``num_classes``,
``num_features``, ``feature_info`` and ``features_only`` / ``out_indices``, each
checked against torchvision's own modules."""
from __future__ import annotations

import copy
import glob
from pathlib import Path
import pickle

import pytest
import torch
import torch.nn as nn
import torchvision

import archspec
from archspec import build_module
from archspec.errors import SpecError
from archspec.shapes import check_graph
from archspec.torch_backend import feature_extractor
from tests.references.randomise import randomise_reference


def _x(size: int = 64) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def r50() -> tuple[nn.Module, nn.Module, list[torch.Tensor]]:
    """resnet50 from the spec with torchvision's (randomised) weights, both in eval mode,
    and torchvision's stem and stage outputs on :func:`_x`."""
    torch.manual_seed(0)
    ref = randomise_reference(torchvision.models.resnet50()).eval()
    ours = build_module("specs/resnet50.yaml").eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    with torch.no_grad():
        return ours, ref, _ref_features(ref, _x())


def _ref_features(ref: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """torchvision's stem output and layer1 … layer4 outputs."""
    x = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
    out = [x]
    for stage in (ref.layer1, ref.layer2, ref.layer3, ref.layer4):
        x = stage(x)
        out.append(x)
    return out


def test_resnet50_features_head_and_pre_logits_equal_torchvision(r50) -> None:
    ours, ref, feats = r50
    x, want = _x(), feats[-1]
    with torch.no_grad():
        f = ours.forward_features(x)
        pre = ours.forward_head(f, pre_logits=True)
        logits = ours.forward_head(f)
        full = ours(x)
    assert f.shape == (2, 2048, 2, 2) and torch.equal(f, want)
    assert torch.equal(pre, torch.flatten(ref.avgpool(want), 1)) and pre.shape == (2, 2048)
    assert torch.equal(logits, ref.fc(pre)) and torch.equal(full, logits)
    assert (ours.num_features, ours.num_classes) == (2048, 1000)
    assert isinstance(ours.get_classifier(), nn.Linear) and ours.get_classifier() is ours.fc


def test_resnet50_feature_info_is_static(r50) -> None:
    info = r50[0].feature_info
    assert [f["num_chs"] for f in info] == [64, 256, 512, 1024, 2048]
    assert [f["reduction"] for f in info] == [4, 4, 8, 16, 32]
    assert [f["module"] for f in info] == ["maxpool", "layer1", "layer2", "layer3", "layer4"]
    g = archspec.compile_graph(archspec.load_spec("specs/resnet50.yaml"))   # no torch forward
    assert [f["num_chs"] for f in g.graph["roles"]["features"]] == [64, 256, 512, 1024, 2048]


def test_reset_classifier_keeps_the_state_dict_key() -> None:
    m = build_module("specs/resnet18.yaml").eval()
    m.reset_classifier(10)
    assert isinstance(m.fc, nn.Linear) and (m.fc.in_features, m.fc.out_features) == (512, 10)
    assert m.num_classes == 10 and m.num_features == 512
    assert [k for k in m.state_dict() if k.startswith("fc")] == ["fc.weight", "fc.bias"]
    with torch.no_grad():
        assert m(_x()).shape == (2, 10)
        m.reset_classifier(0)
        pooled = m(_x())
        assert isinstance(m.fc, nn.Identity) and pooled.shape == (2, 512)
        assert torch.equal(pooled, m.forward_head(m.forward_features(_x()), pre_logits=True))
    assert m.num_classes == 0 and not [k for k in m.state_dict() if k.startswith("fc")]
    with pytest.raises(ValueError, match="integer >= 0"):
        m.reset_classifier(-1)


def test_reset_classifier_inside_a_sequential() -> None:
    m = build_module("specs/efficientnet_b0.yaml").eval()
    m.reset_classifier(7)
    assert isinstance(m.classifier[1], nn.Linear) and m.classifier[1].in_features == 1280
    assert "classifier.1.weight" in m.state_dict()
    with torch.no_grad():
        f = m.forward_features(_x(32))
        assert f.shape == (2, 1280, 1, 1)
        assert m.forward_head(f, pre_logits=True).shape == (2, 1280)
        out = m(_x(32))
        assert torch.equal(out, m.forward_head(f)) and out.shape == (2, 7)


def test_features_only_resnet50_equals_torchvision_stages(r50) -> None:
    ours, ref, want = r50   # what build_module(..., features_only=True) does after building
    fm = feature_extractor(copy.deepcopy(ours), out_indices=(1, 2, 3)).eval()
    keys = set(fm.state_dict())
    assert not any(k.startswith(("fc.", "layer4.")) for k in keys)
    assert keys == {k for k in ref.state_dict() if not k.startswith(("fc.", "layer4."))}
    with torch.no_grad():
        feats = fm(_x())
    assert [tuple(f.shape) for f in feats] == [(2, 256, 16, 16), (2, 512, 8, 8), (2, 1024, 4, 4)]
    assert all(torch.equal(a, b) for a, b in zip(feats, want[1:4]))
    info = fm.feature_info
    assert info.channels() == [256, 512, 1024] and info.reduction() == [4, 8, 16]
    assert info.module_name() == ["layer1", "layer2", "layer3"] and len(info) == 5
    assert info.out_indices == (1, 2, 3) and info[0]["module"] == "maxpool"
    again = pickle.loads(pickle.dumps(fm))
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(again(_x()), feats))


@pytest.mark.parametrize("spec, chs, red, nf", [
    ("efficientnet_b0", [32, 16, 24, 40, 80, 112, 192, 320], [2, 2, 4, 8, 16, 16, 32, 32], 1280),
    ("convnext_tiny", [96, 96, 192, 384, 768], [4, 4, 8, 16, 32], 768),
])
def test_features_only_shapes_match_feature_info(spec: str, chs: list, red: list,
                                                 nf: int) -> None:
    g = archspec.compile_graph(archspec.load_spec(f"specs/{spec}.yaml"))
    assert [f["num_chs"] for f in g.graph["roles"]["features"]] == chs
    assert [f["reduction"] for f in g.graph["roles"]["features"]] == red
    assert g.graph["roles"]["num_features"] == nf
    fm = build_module(g, features_only=True, out_indices=(-3, -2, -1)).eval()
    with torch.no_grad():
        feats = fm(_x())
    assert fm.feature_info.channels() == chs[-3:]
    for f, c, r in zip(feats, chs[-3:], red[-3:]):
        assert f.shape == (2, c, 64 // r, 64 // r)
    assert not any(k.startswith("classifier") for k in fm.state_dict())


def test_features_only_drops_aux_heads_and_later_stages() -> None:
    fm = build_module("specs/googlenet.yaml", features_only=True, out_indices=2)
    assert fm.feature_info.module_name() == ["inception4e", "inception5b"]
    assert not any(k.startswith(("aux", "fc")) for k in fm.state_dict())
    with torch.no_grad():
        out = fm.train()(_x(32))     # train mode too: only the features
    assert [o.shape[1] for o in out] == [832, 1024]
    with pytest.raises(ValueError, match="features_only model"):
        fm.forward_head(out[-1])


def test_every_shipped_classifier_marks_its_roles() -> None:
    for path in sorted(glob.glob("specs/*.yaml")):
        g = archspec.compile_graph(archspec.load_spec(path))
        r = g.graph["roles"]
        assert r is not None and r["head"], path
        if Path(path).stem.startswith("squeezenet"):   # its classifier is a 1×1 conv
            assert r["classifier"] is None and r["stages"], path
        else:
            assert r["num_classes"] == g.nodes[r["classifier"]]["shape"][0], path
        check_graph(g)


def test_check_graph_rederives_the_roles() -> None:
    g = archspec.compile_graph(archspec.load_spec("specs/resnet18.yaml"))
    g.graph["roles"] = {**g.graph["roles"], "num_features": 7}
    with pytest.raises(SpecError, match="num_features"):
        check_graph(g)


def test_forward_features_compiles_without_graph_breaks() -> None:
    import torch._dynamo as dynamo
    m = build_module("specs/cifar10-basiccnn.yaml").eval()
    x = torch.randn(2, 3, 32, 32)
    explain = dynamo.explain(m.forward_features)(x)
    assert explain.graph_break_count == 0 and explain.graph_count == 1
    dynamo.reset()


def test_deepcopy_keeps_the_timm_forwards() -> None:
    m = build_module("specs/cifar10-convbnnet.yaml").eval()
    c = copy.deepcopy(m)
    with torch.no_grad():
        assert torch.equal(c.forward_features(_x(32)), m.forward_features(_x(32)))
        assert torch.equal(c.forward_head(c.forward_features(_x(32))), m(_x(32)))


# ------------------------------------------------------------------ bad input
def test_no_roles_is_one_clear_error(spec_file) -> None:
    path = spec_file("""
        input: {shape: [3, 8, 8]}
        layers:
          - conv: {op: conv, out: 4, kernel: 3}
          - pool: {op: adaptive_avgpool, size: 1}
          - flatten: {op: flatten}
          - fc: {op: linear, out: 2}
    """)
    m = build_module(path)
    with pytest.raises(ValueError, match=r"marks no roles \(it has no 'roles:' section\)"):
        m.forward_features(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="reset_classifier needs .* a classifier"):
        m.reset_classifier(3)
    with pytest.raises(ValueError, match="features_only needs .* stages"):
        build_module(path, features_only=True)
    assert m.num_classes is None and m.feature_info == []


def test_stages_without_head_name_what_is_marked(spec_file) -> None:
    path = spec_file("""
        input: {shape: [3, 8, 8]}
        layers:
          - conv: {op: conv, out: 4, kernel: 3}
          - pool: {op: adaptive_avgpool, size: 1}
          - flatten: {op: flatten}
          - fc: {op: linear, out: 2}
        roles: {stem: conv, stages: [pool]}
    """)
    m = build_module(path)
    with pytest.raises(ValueError, match="needs the spec's roles to mark a head, but spec "
                       r"'s' \(.*\) marks only stem, stages"):
        m.forward_features(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="head"):
        m.forward_head(torch.randn(1, 4, 1, 1), pre_logits=True)


def test_out_indices_beyond_the_stages_names_them() -> None:
    with pytest.raises(ValueError, match=r"5 is not one of the 5 features of spec 'resnet18' "
                       r"\(0 maxpool, 1 layer1, 2 layer2, 3 layer3, 4 layer4\)"):
        build_module("specs/resnet18.yaml", features_only=True, out_indices=(1, 5))
    with pytest.raises(ValueError, match="not one of"):
        build_module("specs/resnet18.yaml", features_only=True, out_indices=(-6,))


def test_bad_role_names_are_located(compile_text) -> None:
    with pytest.raises(SpecError) as e:
        compile_text("""
            input: {shape: [3, 8, 8]}
            layers:
              - conv: {op: conv, out: 4, kernel: 3}
              - pool: {op: adaptive_avgpool, size: 1}
              - flatten: {op: flatten}
              - fc: {op: linear, out: 2}
            roles: {stages: [cnov], head: [pool, flatten, fc], classifier: conv}
        """)
    text = str(e.value)
    assert "roles: stage names undefined layer 'cnov'" in text and "did you mean 'conv'" in text


def test_the_docs_example_runs() -> None:
    """The ``>>>`` example of docs/torch-backend.md's timm section, as a doctest."""
    import doctest
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "docs" / "torch-backend.md").read_text(
        encoding="utf-8")
    block = text.split("## timm's model API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    torch.manual_seed(0)
    test = doctest.DocTestParser().get_doctest(block, {}, "torch-backend.md", None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_roles_merge_key_by_key_under_extends(spec_file) -> None:
    """A spec extending resnet18 changes one role and keeps the others: a stem tapped
    at its ReLU is timm's ResNet feature 0 (``act1``, reduction 2)."""
    from pathlib import Path
    base = Path(__file__).resolve().parent.parent / "specs" / "resnet18.yaml"
    path = spec_file(f"""
        extends: {base}
        name: r18-act1
        roles: {{stem: [conv1, bn1, relu]}}
    """)
    r = archspec.compile_graph(archspec.load_spec(path)).graph["roles"]
    assert r["stem"] == ("conv1", "bn1", "relu") and r["classifier"] == "fc"
    assert [(f["module"], f["num_chs"], f["reduction"]) for f in r["features"][:2]] == \
        [("relu", 64, 2), ("layer1", 64, 4)]
    fm = build_module(path, features_only=True, out_indices=(0, 1)).eval()
    with torch.no_grad():
        act1, l1 = fm(_x())
    assert act1.shape == (2, 64, 32, 32) and float(act1.min()) >= 0.0   # the ReLU's output
    assert l1.shape == (2, 64, 16, 16)


def test_a_tapped_tensor_is_never_overwritten_in_place(spec_file) -> None:
    """Tapping the stem at bn1 keeps the ReLU after it out of place: the feature is bn1's
    output (negatives included), not the ReLU's."""
    from pathlib import Path
    base = Path(__file__).resolve().parent.parent / "specs" / "resnet18.yaml"
    path = spec_file(f"""
        extends: {base}
        roles: {{stem: [conv1, bn1]}}
    """, name="bn1.yaml")
    m = randomise_reference(build_module(path)).eval()
    assert not m.relu.inplace
    fm = feature_extractor(copy.deepcopy(m), out_indices=(0,))
    with torch.no_grad():
        (bn1,) = fm(_x())
        want = m.bn1(m.conv1(_x()))
    assert torch.equal(bn1, want) and float(bn1.min()) < 0
