"""Generated standalone source: no archspec import, same state_dict keys, same outputs."""
from __future__ import annotations

import ast
import re

import pytest
import torch

from archspec.codegen import class_name, generate
from archspec.torch_backend import build_module

torch.set_num_threads(1)


def _load(src: str) -> type:
    ns: dict = {"__name__": "generated"}
    exec(compile(src, "<generated>", "exec"), ns)
    return ns["Model"]


def _imports(src: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    return names


@pytest.mark.parametrize("spec,size,over", [
    ("specs/wrn.yaml", 32, ["d=10", "k=2"]),
    ("specs/cifar10-resnet.yaml", 32, None),
    ("specs/cifar10-basiccnn.yaml", 32, None),
    ("specs/resnext50_32x4d.yaml", 64, None),
    ("specs/googlenet.yaml", 64, None),
    ("specs/shake-shake-26-2x32d.yaml", 32, {"depth": 8}),
])
def test_generated_source_matches_built_module(spec: str, size: int, over) -> None:
    built = build_module(spec, over).eval()
    src = generate(spec, over)
    assert _imports(src) <= {"torch", "collections"}
    assert re.search(r"# [\w.-]+\.yaml:\d+:\d+", src) and "/work" not in src
    model = _load(src)().eval()
    model.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.allclose(model(x), built(x), atol=1e-6)
    if built.train_only:
        model.train()
        assert len(model(x)) == len(built.output_names)


def test_generated_shake_is_inlined(spec_file) -> None:
    p = spec_file("""
        archspec: 1
        name: 3shake
        input: {shape: [3, 8, 8]}
        layers:
          - a: {op: conv, out: 4, kernel: 3, padding: 1}
          - b: {op: conv, from: input, out: 4, kernel: 3, padding: 1}
          - merge: {op: shake, from: [a, b]}
          - flatten: {op: flatten}
    """)
    src = generate(p)
    assert class_name("3shake") == "Net3shake" and "class Net3shake(" in src
    model = _load(src)()
    model.load_state_dict(build_module(p).state_dict(), strict=True)
    model.train()
    model(torch.randn(2, 3, 8, 8)).sum().backward()


def test_keyword_and_digit_layer_names(spec_file) -> None:
    """Names that are Python keywords (reached as self.__getattr__("in")) or digits, in
    both code paths."""
    p = spec_file("""
        archspec: 1
        name: kw
        input: {shape: [3, 8, 8]}
        layers:
          - in: {op: conv, out: 4, kernel: 3}
          - lambda: {op: relu}
          - class.0: {op: conv, out: 4, kernel: 3}
          - 0: {op: flatten}
    """)
    built = build_module(p).eval()
    assert "self.__getattr__('in')" in built.code
    model = _load(generate(p))().eval()
    model.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(model(x), built(x))
