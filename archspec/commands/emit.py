"""``archspec emit SPEC --python``: print the standalone PyTorch source of a spec."""
from __future__ import annotations

import argparse

NAME = "emit"
HELP = "print standalone PyTorch source for a spec (no archspec import needed to run it)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from archspec.cli import add_set_argument
    p.add_argument("spec", metavar="SPEC", help="spec file (YAML)")
    p.add_argument("--python", action="store_true", default=True,
                   help="emit Python (PyTorch) source; the only format, and the default")
    add_set_argument(p)


def run(args: argparse.Namespace) -> int:
    from archspec.cli import load
    from archspec.codegen import generate
    print(generate(load(args.spec, args.overrides)), end="")
    return 0
