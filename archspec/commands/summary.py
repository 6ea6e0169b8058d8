"""``archspec summary SPEC``: a torchinfo-like table, or the stable JSON form."""
from __future__ import annotations

import argparse

NAME = "summary"
HELP = "print shapes, parameters and MACs per layer (table or JSON)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from archspec.cli import add_set_argument, add_strict_argument
    p.add_argument("spec", metavar="SPEC", help="spec file (YAML)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--depth", type=int, default=None,
                   help="collapse blocks deeper than N name levels (1 = top-level layers)")
    add_set_argument(p)
    add_strict_argument(p)


def run(args: argparse.Namespace) -> int:
    from archspec.cli import load, report_warnings
    from archspec.shapes import summarize, to_json, to_table
    g = load(args.spec, args.overrides)
    report_warnings(g, args.strict)
    s = summarize(g, depth=args.depth)
    print(to_json(s) if args.format == "json" else to_table(s))
    return 0
