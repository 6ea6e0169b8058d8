"""Spec text made safe for where it goes: a terminal, a Python comment or literal.

A spec is data, and any of its strings (a name, a description, a file name) may hold
ANSI escapes (``\\x1b[2J`` clears the screen), bidirectional overrides (``\\u202e``
shows text reversed), newlines (which end a comment in generated source) or quotes
(which end a docstring). These helpers are the one place that neutralises them; the
CSV and markdown rules of results tables live in :mod:`archspec.grid.table`.

>>> printable("ok\\x1b[2J\\u202efake")
'ok\\\\x1b[2J\\\\u202efake'
>>> py_comment("a.yaml\\nimport os")
'a.yaml\\\\nimport os'
"""
from __future__ import annotations

import ast
import re
import unicodedata
from typing import Any

#: Bidirectional controls and invisible separators that reorder or hide text
#: (the "Trojan source" characters) and Unicode line breaks.
_BIDI = frozenset("\u061c\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b\u202c"
                  "\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff")


def _unsafe(c: str, keep: str) -> bool:
    if c in keep:
        return False
    return c in _BIDI or unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")


_PLAIN = re.compile(r"[A-Za-z0-9_.-]*")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(c: str) -> str:
    if c in _SHORT:
        return _SHORT[c]
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def printable(text: str, keep: str = "") -> str:
    """``text`` with control, format and bidi characters written as ``\\xNN``/``\\uNNNN``
    (``keep`` lists the ones to let through, e.g. ``"\\n"`` for multi-line output)."""
    if text.isprintable() and text.isascii():
        return text
    return "".join(_escape(c) if _unsafe(c, keep) else c for c in text)


def py_comment(text: str) -> str:
    """Text for a ``# ...`` comment of generated source: nothing in it can end the line."""
    return printable(text)


def py_docstring(text: str, indent: str = "") -> str:
    """A triple-quoted literal whose value is exactly ``text`` (quotes, backslashes,
    newlines and controls escaped); falls back to ``repr`` if that cannot be shown."""
    body = re.sub(r'"(?="|$)', r'\\"', printable(text.replace("\\", "\\\\"), keep="\n"))
    body = body.replace("\n", "\n" + indent) if indent else body
    lit = f'"""{body}"""'
    try:
        same = ast.literal_eval(lit) == text.replace("\n", "\n" + indent)
    except (SyntaxError, ValueError):
        same = False
    return lit if same else repr(text)


def str_literal(text: str) -> str:
    """A Python string literal of ``text``: ``"conv1"`` for a plain name (as torch.fx
    writes them), ``repr`` for anything else."""
    return f'"{text}"' if _PLAIN.fullmatch(text) else repr(text)


class SafeStream:
    """A text stream (stdout, stderr) that escapes what :func:`printable` escapes in
    everything written through it, keeping newlines and tabs, and a carriage return
    only as the first character of a write (how progress lines redraw themselves).
    The CLI installs it, so no spec text printed anywhere can drive the terminal."""

    def __init__(self, raw: Any):
        self._raw = raw

    def write(self, text: str) -> int:
        head = "\r" if text.startswith("\r") else ""
        self._raw.write(head + printable(text[len(head):], keep="\n\t"))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


__all__ = ["SafeStream", "printable", "py_comment", "py_docstring", "str_literal"]
