"""``archspec check SPEC…``: parse, expand and shape-check specs; report every error."""
from __future__ import annotations

import argparse
import sys

from archspec.errors import SpecError, format_error
from archspec.text import printable

NAME = "check"
HELP = "check that specs parse and every tensor shape lines up"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from archspec.cli import add_set_argument, add_strict_argument
    p.add_argument("specs", nargs="+", metavar="SPEC", help="spec files (YAML)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    add_set_argument(p)
    add_strict_argument(p)


def run(args: argparse.Namespace) -> int:
    from archspec.cli import load, report_warnings
    from archspec.shapes import human, summarize
    failed = 0
    for path in args.specs:
        try:
            g = load(path, args.overrides)
            report_warnings(g, args.strict)
        except SpecError as e:
            failed += 1
            for err in e.errors:
                print(format_error(err), file=sys.stderr)
            continue
        if not args.quiet:
            s = summarize(g, depth=0)
            frozen = "" if s.params_trainable in (None, s.params) else \
                f" ({s.params_trainable:,} trainable)"
            print(f"{printable(path)}: ok ({s.ops} ops, {s.params:,} params{frozen}, "
                  f"{human(s.macs, 'MACs')})")
    return 2 if failed else 0
