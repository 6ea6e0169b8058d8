"""archspec: YAML specs for CNN architectures, compiled to shape-checked graphs and torch modules.

>>> import archspec
>>> spec = archspec.load_spec("specs/wrn-28-10.yaml", overrides={"k": 8})
>>> graph = archspec.compile_graph(spec)
>>> graph.graph["name"], graph.nodes["fc"]["shape"]
('wrn-28-10', (10,))

The front end (``load_spec``, ``compile_graph``, ``summarize``) never imports
torch; ``build_module`` does, on first use. Every name here loads on first use.
"""
from __future__ import annotations

from typing import Any

from archspec.errors import Location, SpecError, SpecErrors

__version__ = "0.1.0"

__all__ = ["load_spec", "compile_graph", "summarize", "build_module", "expand_grid",
           "register_op", "unregister_op", "Field", "OpError",
           "SpecError", "SpecErrors", "Location", "__version__"]

#: Public names and the module that defines each. They load on first use, so that
#: ``archspec --version`` and ``--help`` import neither networkx nor torch, and
#: ``load_spec`` alone never pays for the graph stage.
_LAZY = {
    "load_spec": "archspec.spec",
    "compile_graph": "archspec.graph",
    "summarize": "archspec.shapes",
    "build_module": "archspec.torch_backend",   # torch
    "expand_grid": "archspec.grid",
    "register_op": "archspec.plugins",     # ops from Python (docs/plugins.md)
    "unregister_op": "archspec.plugins",
    "Field": "archspec.ops",
    "OpError": "archspec.ops",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value   # later lookups skip this function
        return value
    raise AttributeError(f"module 'archspec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
