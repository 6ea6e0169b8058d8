"""Stage 5: architecture diagrams, drawn with graphviz's ``dot``.

:func:`to_dot` turns the graph IR into a :class:`graphviz.Digraph` (DOT text, no
external program); :func:`render_graph` lays it out with the real ``dot`` program
and writes SVG, PNG or PDF atomically (or the DOT text itself, which needs no
``dot``). Only the attributes documented in :mod:`archspec.graph` are read.

What the picture shows:

* every scope (a block instance ``layer2.0``, a repeat ``layer2``, a seq) is a
  nested cluster labelled with its name and block; ``depth`` collapses every
  scope deeper than N name levels (the convention of ``archspec summary
  --depth``) into one node that says what it is:
  ``B(3,3) ×4, 16→160`` and its params and MACs;
* a node shows its op and key arguments (``conv 3×3 /2, 160→320``) and its
  local name; an edge shows the per-sample shape that flows along it;
* op kinds are told apart by the Okabe–Ito palette (safe for colour-blind
  readers); the residual shortcut into an ``add`` is a bold blue edge that does
  not pull the main path out of line; training-only heads are dashed;
* the graph label holds the title (spec name, params, MACs) and a legend of the
  kinds present.

Nothing here imports torch.
"""
from archspec.render.dot import (DIRECTIONS, FORMATS, _check_args, check_expand,
                                 shortcut_edges, to_dot)
from archspec.render.labels import op_label
from archspec.render.output import (DOT_INSTALL_HINT, check_writable, dot_available,
                                    folder_problem, format_for, layout, render_bytes,
                                    render_graph, safe_name, write_atomic)
from archspec.render.palette import (BLOCK_KIND, DIFF_STYLES, KINDS, OKABE_ITO,
                                     SHORTCUT_COLOUR, Kind, kind_of)

__all__ = ["BLOCK_KIND", "DIFF_STYLES", "DIRECTIONS", "DOT_INSTALL_HINT", "FORMATS", "KINDS",
           "OKABE_ITO", "SHORTCUT_COLOUR", "Kind", "check_expand", "check_writable",
           "dot_available", "folder_problem", "format_for", "kind_of", "layout", "op_label",
           "render_bytes", "render_graph", "safe_name", "shortcut_edges", "to_dot",
           "write_atomic"]
