"""Ops from Python: ``archspec.register_op``, the ``archspec.ops`` entry points, and the
CBAM example (examples/cbam.py).

Every test here removes the ops it registers (the autouse fixture), because
tests/test_every_op.py and tests/test_fuzz.py loop over the registry and need a
reference for every op in it.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest
import torch
import torch.nn as nn

import archspec
from archspec.codegen import generate
from archspec.errors import SpecError
from archspec.ops import BUILTIN_OPS, OPS, op_table_markdown
from archspec.plugins import registered_ops, unregister_op
from archspec.render import to_dot

ROOT = Path(__file__).resolve().parent.parent
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    before = set(registered_ops())
    yield
    for name in set(registered_ops()) - before:
        unregister_op(name)
    assert set(OPS) == BUILTIN_OPS | before


@pytest.fixture
def cbam() -> ModuleType:
    """examples/cbam.py imported as a real module (inspect.getsource needs it in
    sys.modules), its op registered."""
    spec = importlib.util.spec_from_file_location("example_cbam", ROOT / "examples" / "cbam.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["example_cbam"] = mod
    try:
        spec.loader.exec_module(mod)
        mod.register()
        yield mod
    finally:
        del sys.modules["example_cbam"]


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return p


def _conv_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Conv MACs as torch runs them (forward hooks): out elements × in/groups × kh·kw."""
    total = 0

    def hook(m: nn.Conv2d, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out[0].numel() * (m.in_channels // m.groups) * kh * kw

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return total


CBAM_SPEC = """
archspec: 1
name: one-cbam
input: {shape: [8, 6, 5]}
layers:
  - c: {op: conv, out: 32, kernel: 3, padding: 1}
  - att: {op: cbam, reduction: 4}
  - add: {op: add, from: [att, c]}
"""


def test_cbam_counts_shape_and_standalone_equal_torch(cbam, tmp_path) -> None:
    g = archspec.compile_graph(archspec.load_spec(_write(tmp_path, CBAM_SPEC)))
    node = g.nodes["att"]
    assert node["shape"] == (32, 6, 5)
    model = archspec.build_module(g)
    att = model.get_submodule("att")
    assert isinstance(att, cbam.CBAM)
    assert node["params"] == sum(p.numel() for p in att.parameters()) == \
        2 * 32 * 8 + 8 + 32 + 2 * 49 + 1
    x = torch.randn(2, 8, 6, 5)
    assert node["macs"] == _conv_macs(att, model.get_submodule("c")(x))
    model.eval()
    with torch.no_grad():
        y = model(x)
    assert tuple(y.shape) == (2, 32, 6, 5)
    src = generate(g)
    assert "class CBAM(nn.Module)" in src and "import example_cbam" not in src
    ns: dict = {"__name__": "generated"}
    exec(compile(src, "<generated>", "exec"), ns)   # noqa: S102 - our generated test source
    standalone = ns["Model"]().eval()
    standalone.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(standalone(x), y, atol=1e-6)
    assert "cbam r4, 7×7" in to_dot(g).source
    assert "`cbam`" not in op_table_markdown()     # the docs table lists built-ins only


def test_cbam_example_script(cbam, tmp_path, capsys) -> None:
    out_py = tmp_path / "model.py"
    got = cbam.main(["--set", "n=1", "--set", "in_size=16", "--emit", str(out_py)])
    # ResNet-8 by hand: stem 432 + 32, blocks 4,672 (16), 13,952 + 576 projection (32),
    # 55,552 + 2,176 projection (64), fc 650; plus three CBAMs of 2C²/16 + C/16 + C + 99
    resnet8 = 432 + 32 + 4_672 + 13_952 + 576 + 55_552 + 2_176 + 650
    assert got["params"] == got["torch_params"] == resnet8 + 148 + 261 + 679
    assert got["cbam"] == 3 and got["out"] == (2, 10)
    assert "cbam-resnet: " in capsys.readouterr().out
    code = ("import sys, torch; sys.path.insert(0, sys.argv[1]); import model; "
            "y = model.Model()(torch.randn(1, 3, 16, 16)); "
            "assert 'archspec' not in sys.modules; print(tuple(y.shape))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(1, 10)"


def test_decorator_form_with_dotted_module(tmp_path) -> None:
    @archspec.register_op("unshuffle", fields=[{"name": "factor", "type": "pos_int"}],
                          module="torch.nn.PixelUnshuffle", kind="reshape",
                          module_kwargs=lambda a, ins: {"downscale_factor": a["factor"]})
    def unshuffle(a, ins):
        """space-to-depth"""
        c, h, w = ins[0]
        f = a["factor"]
        if h % f or w % f:
            raise archspec.OpError(f"size {h}×{w} is not divisible by factor {f}", "factor")
        return (c * f * f, h // f, w // f)

    assert callable(unshuffle) and OPS["unshuffle"].doc == "space-to-depth"
    p = _write(tmp_path, """
        archspec: 1
        input: {shape: [3, 8, 8]}
        layers:
          - u: {op: unshuffle, factor: 2}
        """)
    g = archspec.compile_graph(archspec.load_spec(p))
    model = archspec.build_module(g)
    assert tuple(model(torch.randn(1, 3, 8, 8)).shape) == (1, *g.nodes["u"]["shape"]) == \
        (1, 12, 4, 4)
    assert "nn.PixelUnshuffle(downscale_factor=2)" in generate(g)
    bad = _write(tmp_path, p.read_text().replace("factor: 2", "factor: 3"), "bad.yaml")
    with pytest.raises(SpecError) as e:
        archspec.compile_graph(archspec.load_spec(bad))
    assert (e.value.loc.line, e.value.loc.col) == (4, 32)   # the factor
    assert "not divisible by factor 3" in e.value.message


def test_register_by_path_imports_no_torch(tmp_path) -> None:
    p = _write(tmp_path, """
        archspec: 1
        input: {shape: [3, 8, 8]}
        layers:
          - s: {op: shuffle_me}
        """)
    code = ("import sys, archspec; archspec.register_op('shuffle_me', infer=lambda a, i: i[0], "
            "module='torch.nn.Identity'); g = archspec.compile_graph(archspec.load_spec("
            "sys.argv[1])); print(g.nodes['s']['shape'], 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(p)], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["(3,", "8,", "8)", "False"]


def _ok(a, ins):
    return ins[0]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(name="1x"), ValueError, "not valid"),
    (dict(name="forward"), ValueError, "torch module attribute"),
    (dict(name="__x"), ValueError, "torch module attribute"),
    (dict(name="conv"), ValueError, "built-in op"),
    (dict(name=3), TypeError, "must be a string"),
    (dict(infer="not callable"), TypeError, "infer must be callable"),
    (dict(fields=[{"name": "k", "type": "tensor"}]), ValueError, "unknown type 'tensor'"),
    (dict(fields=[{"name": "from", "type": "int"}]), ValueError, "field name 'from'"),
    (dict(fields=[{"name": "k", "type": "pos_int", "default": 0}]), ValueError,
     "default of field 'k'"),
    (dict(fields=[{"name": "k", "type": "int", "bogus": 1}]), TypeError, "bad field"),
    (dict(fields=["k"]), TypeError, "archspec.Field or a dict"),
    (dict(kind="attention"), ValueError, "unknown kind"),
    (dict(module=42), TypeError, "nn.Module class or a dotted path"),
    (dict(module=dict), TypeError, "not a torch.nn.Module subclass"),
    (dict(module="no dots"), ValueError, "not a dotted path"),
    (dict(min_inputs=0), ValueError, "min_inputs"),
    (dict(max_inputs=0, min_inputs=2), ValueError, "max_inputs"),
])
def test_registration_errors(kwargs, error, match) -> None:
    kw = {"name": "myop", "infer": _ok, **kwargs}
    with pytest.raises(error, match=match):
        archspec.register_op(kw.pop("name"), **kw)
    assert "myop" not in OPS


def test_registering_twice_needs_replace() -> None:
    archspec.register_op("twice", infer=_ok, doc="first")
    with pytest.raises(ValueError, match="already registered.*replace=True"):
        archspec.register_op("twice", infer=_ok)
    archspec.register_op("twice", infer=_ok, doc="second", replace=True)
    assert OPS["twice"].doc == "second"
    with pytest.raises(ValueError, match="built-in"):
        unregister_op("conv")


class _Refuses(nn.Module):
    def __init__(self, channels):
        super().__init__()
        raise RuntimeError(f"no {channels} channels today")


@pytest.mark.parametrize("kwargs, message", [
    (dict(infer=lambda a, i: 1 / 0), "op 'flaky' shape rule failed: ZeroDivisionError"),
    (dict(infer=lambda a, i: "oops"), "op 'flaky' shape rule failed: it returned 'oops', "
                                      "not a shape"),
    (dict(infer=lambda a, i: (4, 0, 2)), "it returned (4, 0, 2), not a shape"),
    (dict(infer=_ok, params=lambda a, i, o: 1.5), "op 'flaky' parameter count failed: it "
                                                  "returned 1.5, not an integer"),
    (dict(infer=_ok, macs=lambda a, i, o: [][1]), "op 'flaky' MAC count failed: IndexError"),
])
def test_bad_python_is_located(kwargs, message, tmp_path) -> None:
    archspec.register_op("flaky", **kwargs)
    p = _write(tmp_path, """
        archspec: 1
        input: {shape: [4, 6, 6]}
        layers:
          - c: {op: conv, out: 4, kernel: 1}
          - f: {op: flaky}
        """)
    with pytest.raises(SpecError) as e:
        archspec.compile_graph(archspec.load_spec(p))
    assert (e.value.loc.line, e.value.loc.col) == (5, 5)   # the layer
    assert message in e.value.message and e.value.message.startswith("f: ")
    assert "bug" in e.value.hint


def test_module_that_fails_to_build_is_located(tmp_path) -> None:
    archspec.register_op("refuses", infer=_ok, module=_Refuses,
                         module_kwargs=lambda a, ins: {"channels": ins[0][0]})
    archspec.register_op("badkw", infer=_ok, module=_Refuses,
                         module_kwargs=lambda a, ins: {"channels": ins[9]})
    for op, want in (("refuses", "_Refuses failed: "
                                 "RuntimeError: no 4 channels today"),
                     ("badkw", "op 'badkw' module arguments failed: IndexError")):
        p = _write(tmp_path, f"""
            archspec: 1
            input: {{shape: [4, 6, 6]}}
            layers:
              - r: {{op: {op}}}
            """)
        with pytest.raises(SpecError) as e:
            archspec.build_module(str(p))
        assert (e.value.loc.line, e.value.loc.col) == (4, 5), e.value
        assert want in e.value.message, e.value.message


def test_standalone_needs_source(tmp_path) -> None:
    made = type("Made", (nn.Identity,), {})          # no source file to paste from
    archspec.register_op("made", infer=_ok, module=made,
                         module_kwargs=lambda a, ins: {})
    p = _write(tmp_path, """
        archspec: 1
        input: {shape: [4, 6, 6]}
        layers:
          - m: {op: made}
        """)
    g = archspec.compile_graph(archspec.load_spec(p))
    assert tuple(archspec.build_module(g)(torch.randn(1, 4, 6, 6)).shape) == (1, 4, 6, 6)
    with pytest.raises(SpecError, match="cannot copy the source of .*Made"):
        generate(g)


# ------------------------------------------------------------------ entry points
PLUGIN = '''
import archspec


def register():
    archspec.register_op("scaled", fields=[archspec.Field("by", "pos_int", 2)],
                         infer=lambda a, ins: (ins[0][0] * a["by"],) + ins[0][1:] / 0,
                         module="torch.nn.Identity", doc="a plugin whose shape rule is wrong")
    archspec.register_op("fine", infer=lambda a, ins: ins[0], module="torch.nn.Identity")


def broken():
    raise ImportError("needs a package that is not installed")
'''


def _plugin_dir(tmp_path: Path) -> Path:
    """A fake installed distribution: importlib.metadata finds its dist-info on sys.path."""
    site = tmp_path / "site"
    info = site / "demo_plugin-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo_plugin\nVersion: 0.1\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text(
        "[archspec.ops]\ndemo = demo_plugin:register\nbroken = demo_plugin:broken\n",
        encoding="utf-8")
    (site / "demo_plugin.py").write_text(PLUGIN, encoding="utf-8")
    return site


def _cli(tmp_path: Path, *args: str, plugins: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ARCHSPEC_NO_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(_plugin_dir(tmp_path)), str(ROOT)])
    if not plugins:
        env["ARCHSPEC_NO_PLUGINS"] = "1"
    return subprocess.run([sys.executable, "-m", "archspec", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_entry_point_plugin_through_the_cli(tmp_path) -> None:
    _write(tmp_path, """
        archspec: 1
        input: {shape: [4, 6, 6]}
        layers:
          - ok: {op: fine}
          - s: {op: scaled, by: 3}
        """)
    r = _cli(tmp_path, "check", "s.yaml")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == ("archspec: warning: plugin 'broken' = demo_plugin:broken (from "
                        "demo_plugin 0.1): ImportError: needs a package that is not installed; "
                        "its ops are not available")
    assert lines[1].startswith("s.yaml:5:5: error: s: op 'scaled' shape rule failed: TypeError")
    assert sum("warning" in line for line in lines) == 1        # loaded once


def test_failed_plugin_is_the_hint_and_plugins_can_be_off(tmp_path) -> None:
    _write(tmp_path, """
        archspec: 1
        input: {shape: [4, 6, 6]}
        layers:
          - x: {op: from_broken}
        """)
    r = _cli(tmp_path, "check", "s.yaml")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "s.yaml:4:13: error: unknown op 'from_broken'" in r.stderr
    assert "a plugin failed to load and may have defined it: 'broken'" in r.stderr
    _write(tmp_path, """
        archspec: 1
        input: {shape: [4, 6, 6]}
        layers:
          - x: {op: fine}
        """)
    assert _cli(tmp_path, "check", "s.yaml").stdout.startswith("s.yaml: ok (1 ops")
    off = _cli(tmp_path, "check", "s.yaml", plugins=False)
    assert off.returncode == 2 and "warning" not in off.stderr
    assert "unknown op 'fine'" in off.stderr


def test_docs_example_runs(tmp_path, monkeypatch, capsys) -> None:
    """docs/plugins.md's register_op example, as written there."""
    import re
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    files = dict((n, body) for n, body in
                 re.findall(r"```(?:python|yaml)\n# file: (\S+)\n(.*?)```", text, re.S))
    assert set(files) == {"s2d.py", "s2d.yaml"}
    for name, body in files.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    exec(compile(files["s2d.py"], "s2d.py", "exec"), {"__name__": "s2d"})   # noqa: S102
    assert capsys.readouterr().out.strip() == "(48, 8, 8) 784"
    assert "prints `(48, 8, 8) 784`" in text
    (tmp_path / "s2d.yaml").write_text(files["s2d.yaml"].replace("factor: 4", "factor: 5"))
    with pytest.raises(SpecError) as e:
        archspec.compile_graph(archspec.load_spec("s2d.yaml"))
    assert f"`{e.value.loc.path}:{e.value.loc.line}:{e.value.loc.col}: error: " \
           f"{e.value.message.split(' must')[0]}" in text
    model = archspec.build_module(str(_write(tmp_path, files["s2d.yaml"], "ok.yaml")))
    assert tuple(model(torch.randn(1, 3, 32, 32)).shape) == (1, 16, 8, 8)
    assert sum(p.numel() for p in model.parameters()) == 784


def test_pasted_classes_must_not_clash(tmp_path) -> None:
    scope_like = type("Scope", (nn.Identity,), {"__module__": __name__})
    archspec.register_op("three", infer=_ok, module=scope_like, module_kwargs=lambda a, i: {})
    p = _write(tmp_path, """
        archspec: 1
        input: {shape: [4, 6, 6]}
        layers:
          - t: {op: three}
        """)
    with pytest.raises(SpecError, match="would define Scope twice") as e:
        generate(archspec.compile_graph(archspec.load_spec(p)))
    assert e.value.loc.line == 4


def test_numpy_style_integers_are_shapes(tmp_path) -> None:
    class Index:
        def __init__(self, v: int) -> None:
            self.v = v

        def __index__(self) -> int:
            return self.v

    archspec.register_op("idx", infer=lambda a, ins: [Index(x) for x in ins[0]],
                         params=lambda a, i, o: Index(7))
    p = _write(tmp_path, """
        archspec: 1
        input: {shape: [4, 6, 6]}
        layers:
          - i: {op: idx}
        """)
    g = archspec.compile_graph(archspec.load_spec(p))
    assert g.nodes["i"]["shape"] == (4, 6, 6) and g.nodes["i"]["params"] == 7


def test_class_defined_in_a_function_is_pasted(tmp_path) -> None:
    class Halve(nn.Module):
        def forward(self, x):
            return x * 0.5

    archspec.register_op("halve", infer=_ok, module=Halve, module_kwargs=lambda a, i: {})
    p = _write(tmp_path, """
        archspec: 1
        input: {shape: [4, 6, 6]}
        layers:
          - h: {op: halve}
        """)
    src = generate(archspec.compile_graph(archspec.load_spec(p)))
    assert "\nclass Halve(nn.Module):" in src
    ns: dict = {"__name__": "generated"}
    exec(compile(src, "<generated>", "exec"), ns)   # noqa: S102 - our generated test source
    x = torch.randn(1, 4, 6, 6)
    assert torch.equal(ns["Model"]()(x), x * 0.5)
