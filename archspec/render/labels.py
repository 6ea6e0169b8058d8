"""Text of the diagrams: op labels (``conv 3×3 /2, 160→320``), HTML node labels, legend."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from archspec.ops import OPS, label_channels
from archspec.render.palette import BLOCK_KIND, DIFF_STYLES, SHORTCUT_COLOUR, Kind
from archspec.text import printable

def _shape(s: tuple | None) -> str:
    return "?" if s is None else "×".join(str(x) for x in s)


_channels = label_channels


def op_label(op: str, args: Mapping[str, Any], in_shape: tuple | None,
             out_shape: tuple | None) -> str:
    """The op and its key arguments: ``conv 3×3 /2, 160→320``, ``linear 640→10``; each
    op's definition (:attr:`archspec.ops.OpDef.label`) writes its own."""
    d = OPS.get(op)
    return op if d is None else d.text(dict(args), in_shape, out_shape)


def _esc(text: str) -> str:
    """HTML-label text: markup escaped, and control and bidi characters written as
    ``\\xNN`` (an ESC from a spec name made dot fail: not well-formed XML)."""
    return (printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _html(main: str, sub: str | None = None, bold: bool = False, note: str | None = None,
          align: str = "CENTER") -> str:
    """An HTML label, one table row per line: dot sizes each row from its own font, so
    lines of mixed sizes do not overlap (``<BR/>`` spacing is too tight for that)."""
    rows = [f"<B>{_esc(main)}</B>" if bold else _esc(main)]
    if note:
        rows.append(f'<FONT POINT-SIZE="9">{_esc(note)}</FONT>')
    if sub:
        rows.append(f'<FONT POINT-SIZE="9" COLOR="#444444">{_esc(sub)}</FONT>')
    if len(rows) == 1:
        return f"<{rows[0]}>"
    td = "<TD>" if align == "CENTER" else f'<TD ALIGN="{align}">'
    cells = "".join(f"<TR>{td}{r}</TD></TR>" for r in rows)
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">{cells}</TABLE>>'


def _human(n: float, unit: str = "") -> str:
    from archspec.shapes import human
    return human(n, unit)


def _legend(kinds: Iterable[Kind], shortcut: bool, train_only: bool,
            diff: bool) -> list[str]:
    cells = []
    if diff:
        for status in ("added", "removed", "changed", "same"):
            border, fill, _, text = DIFF_STYLES[status]
            cells.append(f'<TD BGCOLOR="{fill}" COLOR="{border}" BORDER="1">'
                         f'<FONT POINT-SIZE="10">{_esc(text)}</FONT></TD>')
    else:
        for k in kinds:
            fill = "#F2F2F2" if k is BLOCK_KIND else k.fill
            cells.append(f'<TD BGCOLOR="{fill}" COLOR="{k.colour}" BORDER="1">'
                         f'<FONT POINT-SIZE="10">{_esc(k.name)}</FONT></TD>')
    if shortcut:
        cells.append(f'<TD BORDER="0"><FONT POINT-SIZE="10" COLOR="{SHORTCUT_COLOUR}">'
                     '━━ shortcut</FONT></TD>')
    if train_only:
        cells.append('<TD BORDER="0"><FONT POINT-SIZE="10">- - - training only</FONT></TD>')
    return cells
