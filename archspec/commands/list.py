"""``archspec list``: the specs, grids and recipes that ship with archspec, one line each.

Any name listed works where a file path does: ``archspec summary resnet50``,
``archspec grid wrn-table1``, ``archspec train SPEC --recipe wrn``.
"""
from __future__ import annotations

import argparse

NAME = "list"
HELP = "list the shipped specs, grids and recipes (each usable by name)"

_TITLES = {"spec": "Specs", "grid": "Grids", "recipe": "Recipes"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", nargs="?", choices=sorted(_TITLES), metavar="KIND",
                   help="only one kind: spec, grid or recipe")


def run(args: argparse.Namespace) -> int:
    from archspec.library import entries, library_dir
    kinds = [args.kind] if args.kind else list(_TITLES)
    for i, kind in enumerate(kinds):
        found = entries(kind)
        if i:
            print()
        print(f"{_TITLES[kind]} ({len(found)}, in {library_dir(kind)}):")
        width = max((len(e.name) for e in found), default=0)
        for e in found:
            print(f"  {e.name:<{width}}  {_one_line(e.description)}")
    return 0


def _one_line(text: str, limit: int = 96) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
