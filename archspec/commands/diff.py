"""``archspec diff SPEC_A [SPEC_B]``: what changes between two variants (report and diagram).

``--set`` applies to both sides, ``--set-a`` / ``--set-b`` to one; leaving out
SPEC_B compares SPEC_A with itself, so an ablation of one parameter reads::

    archspec diff specs/wrn.yaml --set count=blocks --set d=40 --set k=2 \\
        --set-b 'block=B(1,3,1)'
"""
from __future__ import annotations

import argparse
import sys

NAME = "diff"
HELP = "compare two specs or two settings of one spec: changed nodes, per-stage params/MACs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from archspec.cli import add_set_argument
    p.add_argument("spec_a", metavar="SPEC_A", help="the 'before' spec (YAML)")
    p.add_argument("spec_b", metavar="SPEC_B", nargs="?", default=None,
                   help="the 'after' spec (default: SPEC_A again, with --set-b)")
    add_set_argument(p)
    p.add_argument("--set-a", dest="overrides_a", action="append", default=[],
                   metavar="KEY=VALUE", help="override a parameter of A only (repeatable)")
    p.add_argument("--set-b", dest="overrides_b", action="append", default=[],
                   metavar="KEY=VALUE", help="override a parameter of B only (repeatable)")
    p.add_argument("-o", "--output", metavar="FILE", default=None,
                   help="also draw B with the changes highlighted (svg, png, pdf or dot; "
                        "'-' for stdout, then the report goes to stderr)")
    p.add_argument("--format", default=None, metavar="FORMAT",
                   help="diagram format (default: from -o's extension, else svg)")
    p.add_argument("--depth", type=int, default=None, metavar="N",
                   help="collapse blocks deeper than N name levels in the diagram")
    p.add_argument("--expand", action="append", default=[], metavar="SCOPE",
                   help="draw this block in full whatever --depth (repeatable)")
    p.add_argument("--direction", default="TB", metavar="TB|LR", help="diagram direction")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="list at most N grouped rows per section of the report")


def describe(path: str, overrides: list[str]) -> str:
    """``specs/wrn.yaml --set k=8``: how one side was loaded."""
    return " ".join([path] + [f"--set {o}" for o in overrides])


def short_title(args: argparse.Namespace, name_a: object, name_b: object) -> str:
    """``wrn (d=40 k=2): block=B(3,3) → block=B(1,3,1)``: the diagram's title line."""
    if args.spec_b is None or args.spec_b == args.spec_a:
        shared = " ".join(args.overrides)
        head = f"{name_a}" + (f" ({shared})" if shared else "")
        return (f"{head}: {' '.join(args.overrides_a) or 'defaults'} → "
                f"{' '.join(args.overrides_b) or 'defaults'}")
    side_a = " ".join([str(name_a), *args.overrides, *args.overrides_a])
    side_b = " ".join([str(name_b), *args.overrides, *args.overrides_b])
    return f"{side_a} → {side_b}"


def run(args: argparse.Namespace) -> int:
    from archspec.cli import load
    from archspec.diff import diff_dot, diff_graphs, to_text
    from archspec.errors import Location, SpecError
    from archspec.render import _check_args, check_writable, format_for
    if args.limit is not None and args.limit < 1:
        raise SpecError(f"--limit must be 1 or more, got {args.limit}",
                        Location("--limit", 0, 0))
    _check_args(args.format, args.depth, args.direction)
    if args.output is not None:
        if args.output != "-":
            check_writable(args.output)
        fmt = format_for(args.output if args.output != "-" else "", args.format)
    path_b = args.spec_b or args.spec_a
    over_a = list(args.overrides) + list(args.overrides_a)
    over_b = list(args.overrides) + list(args.overrides_b)
    a = load(args.spec_a, over_a)
    b = load(path_b, over_b)
    d = diff_graphs(a, b, describe(args.spec_a, over_a), describe(path_b, over_b))
    report = to_text(d, args.limit)
    print(report, file=sys.stderr if args.output == "-" else sys.stdout)
    if args.output is not None:
        from archspec.commands.render import emit
        where = emit(diff_dot(a, b, d, args.depth, args.direction,
                              short_title(args, a.graph.get("name"), b.graph.get("name")),
                              expand=args.expand),
                     args.output, fmt)
        if where != "-":
            print(f"wrote {where}", file=sys.stderr)
    return 0
