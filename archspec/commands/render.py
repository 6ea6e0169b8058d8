"""``archspec render SPEC``: an architecture diagram (SVG, PNG, PDF or DOT) via graphviz."""
from __future__ import annotations

import argparse
import os
import sys

NAME = "render"
HELP = "draw the architecture as a diagram (svg, png, pdf or dot) with graphviz"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from archspec.cli import add_set_argument
    p.add_argument("spec", metavar="SPEC", help="spec file (YAML)")
    p.add_argument("-o", "--output", metavar="FILE", default=None,
                   help="output file ('-' for stdout; default: <spec name>.<format>)")
    p.add_argument("--format", default=None, metavar="FORMAT",
                   help="svg, png, pdf or dot (default: from -o's extension, else svg); "
                        "dot needs no Graphviz")
    p.add_argument("--depth", type=int, default=None, metavar="N",
                   help="collapse blocks deeper than N name levels into one box "
                        "(0 = the whole network, 1 = top-level layers; default: expand all)")
    p.add_argument("--expand", action="append", default=[], metavar="SCOPE",
                   help="draw this block in full whatever --depth, e.g. --expand layer2.0 "
                        "(repeatable)")
    p.add_argument("--direction", default="TB", metavar="TB|LR",
                   help="TB (top to bottom, default) or LR (left to right)")
    add_set_argument(p)


def output_path(spec_path: str, name: str, output: str | None, fmt: str | None) -> tuple[str, str]:
    """(path, format) from the -o and --format arguments."""
    from archspec.fsio import safe_name
    from archspec.render import format_for
    if output is None:
        fmt = format_for("", fmt) if fmt is not None else "svg"
        stem = safe_name(name or os.path.splitext(os.path.basename(spec_path))[0], "graph")
        return f"{stem}.{fmt}", fmt
    return output, format_for(output if output != "-" else "", fmt)


def emit(dg: object, output: str, fmt: str) -> str:
    """Lay out and write (or print, for '-') a diagram; returns where it went."""
    from archspec.render import check_writable, render_bytes, write_atomic
    if output == "-":
        data = render_bytes(dg, fmt)
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return "-"
    check_writable(output)
    return write_atomic(output, render_bytes(dg, fmt))


def run(args: argparse.Namespace) -> int:
    from archspec.cli import load
    from archspec.render import _check_args, to_dot
    _check_args(args.format, args.depth, args.direction)
    if args.output is not None and args.output != "-":
        from archspec.render import check_writable
        check_writable(args.output)
    from archspec.render import dot_available, format_for, layout
    early = format_for(args.output if args.output not in (None, "-") else "", args.format)
    if early != "dot" and not dot_available():
        layout("", early)    # raises the how-to-install error before compiling the spec
    g = load(args.spec, args.overrides)
    path, fmt = output_path(args.spec, g.graph.get("name", ""), args.output, args.format)
    where = emit(to_dot(g, args.depth, args.direction, expand=args.expand), path, fmt)
    if where != "-":
        from archspec.text import printable
        print(f"wrote {printable(where)}", file=sys.stderr)
    return 0
