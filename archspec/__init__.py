"""archspec: YAML specs for CNN architectures, compiled to shape-checked graphs and torch modules.

>>> import archspec
>>> spec = archspec.load_spec("specs/wrn-28-10.yaml", overrides={"k": 8})
>>> graph = archspec.compile_graph(spec)
>>> graph.graph["name"], graph.nodes["fc"]["shape"]
('wrn-28-10', (10,))

The front end (``load_spec``, ``compile_graph``, ``summarize``) never imports
torch; ``build_module`` does, on first use.
"""
from __future__ import annotations

from typing import Any

from archspec.errors import Location, SpecError, SpecErrors
from archspec.graph import compile_graph
from archspec.shapes import summarize
from archspec.spec import load_spec

__version__ = "0.1.0"

__all__ = ["load_spec", "compile_graph", "summarize", "build_module", "expand_grid",
           "SpecError", "SpecErrors", "Location", "__version__"]


def __getattr__(name: str) -> Any:
    # Backends and tools import torch or matplotlib: load them only when asked for.
    if name == "build_module":
        from archspec.torch_backend import build_module
        return build_module
    if name == "expand_grid":
        from archspec.grid import expand_grid
        return expand_grid
    raise AttributeError(f"module 'archspec' has no attribute {name!r}")
