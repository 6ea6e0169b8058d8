"""The ``archspec`` command line: a thin layer over the pipeline stages.

Each command lives in :mod:`archspec.commands` (one module per command, with
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``) and must
import nothing heavy at module level, so ``archspec check`` never imports torch.
Only this module formats errors: one ``path:line:col: error: message`` line each,
the source line with a caret, and exit status 2, never a traceback. Warnings
(``g.graph["warnings"]``) print the same way with ``warning:`` and exit 0; ``--strict``
makes them errors.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import Any, Sequence

from archspec.errors import Location, SpecError, format_error
from archspec.text import SafeStream

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in archspec's one-line form (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise SpecError(message, Location(self.prog, 0, 0), f"see '{self.prog} --help'")


def add_set_argument(p: argparse.ArgumentParser) -> None:
    """The ``--set key=value`` option every spec-reading command takes."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec parameter, e.g. --set k=8 (repeatable)")


def add_strict_argument(p: argparse.ArgumentParser) -> None:
    """The ``--strict`` option of the commands that report warnings (check, summary, build)."""
    p.add_argument("--strict", action="store_true",
                   help="treat warnings (e.g. an op whose output is never used) as errors")


def report_warnings(g: Any, strict: bool) -> None:
    """Print the graph's located warnings on stderr (``path:line:col: warning: ...``, with
    the source line and a caret); with ``strict``, raise them as errors instead (exit 2)."""
    from archspec.errors import SpecErrors
    warnings = g.graph.get("warnings", [])
    if strict and warnings:
        raise SpecErrors(w.as_error() for w in warnings)
    for w in warnings:
        print(format_error(w), file=sys.stderr)


def load(path: str, overrides: Sequence[str] | None = None) -> Any:
    """Load and compile a spec: the graph every command starts from."""
    from archspec.graph import compile_graph
    from archspec.spec import load_spec
    return compile_graph(load_spec(path, overrides or None, partial=True))


def _commands() -> dict[str, Any]:
    import archspec.commands as pkg
    mods = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"archspec.commands.{info.name}")
        mods[mod.NAME] = mod
    return mods


def build_parser() -> argparse.ArgumentParser:
    from archspec import __version__
    parser = _Parser(prog="archspec", description="Compile YAML CNN specs: check shapes, "
                     "count parameters, build torch modules, render, run ablation grids.")
    parser.add_argument("--version", action="version", version=f"archspec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, mod in _commands().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):   # a non-UTF-8 file name must not crash a print
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = saved


def _main(argv: list[str]) -> int:
    """Parse and run one command; every SpecError becomes its located lines, exit 2."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return EXIT_USER_ERROR
        return int(args._run(args) or 0)
    except SpecError as e:
        for err in e.errors:
            print(format_error(err), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("archspec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
