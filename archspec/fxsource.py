"""Python source of an fx graph as a named method whose lines point to the spec.

Both torch backends write forwards from fx graphs: the built module compiles them (its
``.code`` and tracebacks show spec locations), and ``archspec emit`` prints them in
classes a person reads. Both go through fx's public code generation only:

- :class:`MethodCodeGen`, an ``fx.CodeGen`` that names the method (``forward_eval``);
- ``Graph.on_generate_code`` with :func:`commented_body`, a body transformer that ends
  each node's statement in ``# <spec location>``, found by the ``# COUNTER: i``
  markers fx puts in the body for such transformers;
- :func:`reach_keyword_targets`, a graph rewrite for a submodule whose path has a Python
  keyword (``self.in``, which fx would write as an attribute): it is reached with
  ``self.__getattr__('in')`` instead (fx writes a ``getattr`` call as an attribute,
  keywords too; dynamo cannot guard a ``get_submodule('in')``).

No generated text is edited afterwards, and nothing private of torch is imported.

>>> import torch.fx as fx
>>> g = fx.Graph()
>>> x = g.placeholder("x")
>>> g.output(g.call_module("conv1", (x,)))
output
>>> print(method_source(g, {"conv1": "net.yaml:3:5"}, "forward_eval")[0].strip())
def forward_eval(self, x):
    conv1 = self.conv1(x);  x = None  # net.yaml:3:5
    return conv1
"""
from __future__ import annotations

import keyword
import re
from typing import Any, Callable, Mapping

import torch.fx as fx

from archspec.text import py_comment

_COUNTER = re.compile(r"# COUNTER: (\d+)\n")


class MethodCodeGen(fx.CodeGen):
    """fx's code generation with the method named ``name`` (``forward_eval``...)."""

    def __init__(self, name: str):
        super().__init__()
        self.method = name

    def gen_fn_def(self, free_vars: list[str], maybe_return_annotation: str, **_: Any) -> str:
        if not free_vars or free_vars[0] != "self":
            free_vars.insert(0, "self")
        return f"def {self.method}({', '.join(free_vars)}){maybe_return_annotation}:"


def commented_body(notes: Mapping[int, str], keep_frees: bool
                   ) -> Callable[[list[str]], list[str]]:
    """A body transformer for ``Graph.on_generate_code``: the statement of node ``i``
    ends in ``# notes[i]``. ``keep_frees``: keep fx's ``;  x = None`` (freeing a tensor
    after its last use keeps a compiled forward's peak memory down); otherwise drop it
    (noise in code a person reads). A body without node markers is left as it is."""
    def transform(body: list[str]) -> list[str]:
        out: list[str] = []
        node, seen = None, 0
        for frag in body:
            m = _COUNTER.fullmatch(frag)
            if m:
                node, seen = int(m.group(1)), 0
            elif node is not None and seen == 1 and (frag == "\n" or frag.startswith(";")):
                note = notes.get(node)
                head = frag[:-1] if keep_frees and frag.startswith(";") else ""
                frag = f"{head}  # {note}\n" if note else (frag if keep_frees else "\n")
                node = None
            else:
                seen += 1
            out.append(frag)
        return out
    return transform


def reach_keyword_targets(graph: fx.Graph, locs: dict[str, str]) -> None:
    """Rewrite accesses to a submodule or parameter whose path has a Python keyword
    (fx would write ``self.in``) as ``self.__getattr__('in')`` calls, one per level;
    the spec location moves to the new node."""
    bad = [n for n in graph.nodes if n.op in ("call_module", "get_attr")
           and any(keyword.iskeyword(p) for p in n.target.split("."))]
    if not bad:
        return
    with graph.inserting_before(next(iter(graph.nodes))):
        me = graph.placeholder("self")
    for n in bad:
        with graph.inserting_before(n):
            new = me
            for part in n.target.split("."):
                new = graph.call_method("__getattr__", (new, part))
            if n.op == "call_module":
                new = graph.call_method("__call__", (new, *n.args), dict(n.kwargs))
        if n.name in locs:
            locs[new.name] = locs[n.name]
        n.replace_all_uses_with(new)
        graph.erase_node(n)


def method_source(graph: fx.Graph, locs: Mapping[str, str], name: str,
                  note: Callable[[str], str] = lambda s: s, keep_frees: bool = True
                  ) -> tuple[str, dict[str, Any]]:
    """fx's source of ``graph`` (rewritten in place) as method ``name``, each node's line
    ending in its spec location (``note`` shortens it), and the globals it reads."""
    locs = dict(locs)
    reach_keyword_targets(graph, locs)
    notes = {i: py_comment(note(locs[n.name])) for i, n in enumerate(graph.nodes)
             if n.name in locs}
    graph.set_codegen(MethodCodeGen(name))
    with graph.on_generate_code(lambda _old: commented_body(notes, keep_frees)):
        code = graph.python_code(root_module="self")
    return code.src, dict(code.globals)
