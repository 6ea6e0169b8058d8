"""One error type for every user mistake, carrying a 1-based source location.

Stages raise :class:`SpecError` (or :class:`SpecErrors` when they collect several
independent mistakes); only the CLI formats them, lark-style: one line
``path:line:col: error: message``, then the offending source line with a caret.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from archspec.text import printable


@dataclass(frozen=True)
class Location:
    """A 1-based position in a source file (``line`` and ``col`` are 0 when unknown)."""

    path: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.path
        return f"{self.path}:{self.line}:{self.col}"

    def shifted(self, cols: int) -> "Location":
        """The same line, ``cols`` columns further right (for positions inside a scalar)."""
        return Location(self.path, self.line, self.col + cols)


class SpecError(Exception):
    """A user error located in a spec, a grid, a recipe or on the command line."""

    #: The word after the location in :meth:`line` (``error``; ``warning`` for a warning).
    severity = "error"

    def __init__(self, message: str, loc: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.loc = loc or Location("<unknown>")
        self.hint = hint

    @property
    def errors(self) -> list["SpecError"]:
        return [self]

    def line(self) -> str:
        """The one-line form: ``path:line:col: error: message; hint``, with control and
        bidi characters escaped (a spec's text must not drive the terminal)."""
        text = f"{self.loc}: {self.severity}: {_clip(self.message)}"
        if self.hint:
            text += f"; {_clip(self.hint)}"
        return printable(text)

    def __str__(self) -> str:
        return self.line()


class SpecWarning(SpecError):
    """A located problem that does not stop a build (an op whose output is never used).

    The graph stage records warnings in ``g.graph["warnings"]`` (never raises them); the
    CLI prints them as ``path:line:col: warning: message`` on stderr, exit 0, and with
    ``--strict`` turns each into the error of :meth:`as_error` (exit 2). It is a
    SpecError only so that one formatter, :func:`format_error`, serves both."""

    severity = "warning"

    def as_error(self) -> SpecError:
        """The same message and location as an error (for ``--strict``)."""
        return SpecError(self.message, self.loc, self.hint)


#: Longest message or hint shown: a value quoted in full (a 100,000-item list) is no help.
MAX_MESSAGE = 400


def _clip(text: str) -> str:
    if len(text) <= MAX_MESSAGE:
        return text
    half = MAX_MESSAGE // 2
    return f"{text[:half]} … {text[-half:]}"


class SpecErrors(SpecError):
    """Several independent errors found in one pass, reported together in source order."""

    def __init__(self, errors: Iterable[SpecError]):
        flat: list[SpecError] = []
        for e in errors:
            flat.extend(e.errors)
        flat.sort(key=lambda e: (e.loc.path, e.loc.line, e.loc.col))
        self._errors = flat
        first = flat[0]
        super().__init__(first.message, first.loc, first.hint)

    @property
    def errors(self) -> list[SpecError]:
        return list(self._errors)

    def __str__(self) -> str:
        return "\n".join(e.line() for e in self._errors)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A ``did you mean 'x'?`` hint for a misspelt name, or None.

    >>> did_you_mean("kernal", ["kernel", "stride"])
    "did you mean 'kernel'?"
    """
    from difflib import get_close_matches   # only on the error path: keeps `check` quick
    match = get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


#: Longest source excerpt shown under an error.
MAX_SHOWN = 120

#: Texts of the files the loaders parsed, by path: the only lines an error may show.
_SOURCES: dict[str, str] = {}


def register_source(path: str, text: str) -> None:
    """Let :func:`format_error` show lines of ``path``: called by the loaders for a file
    they read as a spec, grid or recipe. Nothing else is ever shown, and no file is ever
    opened to show it: ``extends: /etc/shadow`` must not print the file's lines."""
    _SOURCES[path] = text


def _source_line(text: str, line: int) -> str | None:
    """Line ``line`` (1-based) of ``text``, found without splitting the whole text."""
    start = 0
    for _ in range(line - 1):
        start = text.find("\n", start) + 1
        if start == 0:
            return None
    end = text.find("\n", start)
    src = text[start:end if end >= 0 else len(text)]
    if not src and start >= len(text):
        return None
    return src.rstrip("\r")


def format_error(err: SpecError, sources: dict[str, str] | None = None) -> str:
    """Render an error as its line plus the source line and a caret, when the source is
    one the loaders registered (or is in ``sources``)."""
    out = [err.line()]
    loc = err.loc
    text = (sources or {}).get(loc.path, _SOURCES.get(loc.path))
    src = _source_line(text, loc.line) if text is not None and loc.line > 0 else None
    if src is not None:
        col = max(loc.col - 1, 0)
        if len(src) > MAX_SHOWN:  # show a window around the caret, not a 9 MB line
            start = max(0, min(col - MAX_SHOWN // 2, len(src) - MAX_SHOWN))
            src = src[start:start + MAX_SHOWN]
            col -= start
        src = src.expandtabs(1)
        # escaped, and the caret under the same character of the escaped line
        out.append(f"    {printable(src)}")
        out.append("    " + " " * len(printable(src[:col])) + "^")
    return "\n".join(out)
