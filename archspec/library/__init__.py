"""The spec library that ships with archspec: specs, grids and training recipes by name.

A name resolves as timm's ``create_model("resnet50")`` does, but to a YAML file: ``resnet50``
is the shipped ``specs/resnet50.yaml``, ``wrn-table1`` the grid ``specs/grids/wrn-table1.yaml``,
``wrn`` the recipe ``recipes/wrn.yaml``. A path that exists always wins over a name, so a
``resnet50.yaml`` of your own in the working directory is never shadowed.

>>> resolve("resnet50", "spec").endswith("resnet50.yaml")
True
>>> [e.name for e in entries("recipe")][:2]
['cifar10-adam', 'resnet-cifar']

In a source checkout the library is the repository's ``specs/`` and ``recipes/``; an
installed wheel carries the same folders as package data under ``archspec/library/``
(pyproject.toml maps them), so both layouts resolve the same names. This module reads
files only on demand and imports neither networkx nor torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from archspec.errors import Location, SpecError, did_you_mean

#: What each kind of library file is, and the folder (under the library root) that holds it.
KINDS = {"spec": "specs", "grid": "specs/grids", "recipe": "recipes"}


def library_root() -> Path:
    """The folder holding ``specs/`` and ``recipes/``: the wheel's package data, or the checkout."""
    here = Path(__file__).resolve().parent
    return here if (here / "specs").is_dir() else here.parent.parent


def library_dir(kind: str) -> Path:
    """Where the shipped files of ``kind`` ('spec', 'grid' or 'recipe') live."""
    return library_root() / KINDS[kind]


def names(kind: str) -> list[str]:
    """The shipped names of one kind, sorted (``resnet50``, not ``resnet50.yaml``)."""
    d = library_dir(kind)
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.yaml") if p.is_file())


def looks_like_name(text: str) -> bool:
    """A bare name (``resnet50``, ``wrn.yaml``) rather than a path (``specs/x.yaml``)."""
    return bool(text) and os.sep not in text and "/" not in text and text not in (".", "..")


def resolve(name_or_path: str, kind: str, at: Location | None = None) -> str:
    """The file to read for ``name_or_path``: the path itself if it exists, else the shipped one.

    Raises a :class:`SpecError` that names where it looked and the closest shipped names.
    """
    if os.path.exists(name_or_path) or not looks_like_name(name_or_path):
        return name_or_path
    stem = name_or_path[:-5] if name_or_path.endswith(".yaml") else name_or_path
    cand = library_dir(kind) / f"{stem}.yaml"
    if cand.is_file():
        return str(cand)
    raise not_found(name_or_path, kind, at)


def not_found(name: str, kind: str, at: Location | None = None) -> SpecError:
    """'no such spec': neither a file here nor a shipped name, with where it looked."""
    known = names(kind)
    stem = name[:-5] if name.endswith(".yaml") else name
    hint = did_you_mean(stem, known)
    listing = f"'archspec list' shows the {len(known)} shipped {kind}s"
    return SpecError(
        f"no such {kind} '{name}': no file of that name here, and no {kind} of that name "
        f"in {library_dir(kind)}", at or Location(name),
        f"{hint} ({listing})" if hint else listing)


@dataclass(frozen=True)
class Entry:
    """One shipped file: its name, its path, and the line that says what it is."""

    name: str
    path: Path
    description: str


def entries(kind: str) -> list[Entry]:
    """Every shipped file of ``kind`` with a one-line description, for ``archspec list``."""
    d = library_dir(kind)
    return [Entry(n, d / f"{n}.yaml", describe(d / f"{n}.yaml")) for n in names(kind)]


def describe(path: Path) -> str:
    """A file's own ``description:``, else its first comment line: one line, for listings.

    Read as text, not parsed: a listing of twenty files must not cost twenty YAML loads,
    and a file's first comment names it better than a description it inherits.
    """
    comment = ""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("description:"):
                value = line.split(":", 1)[1].strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                    value = value[1:-1]
                return value
            if not comment and line.startswith("#"):
                comment = line.lstrip("#").strip()
    return comment
