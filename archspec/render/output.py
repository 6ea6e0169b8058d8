"""Laying out with Graphviz's ``dot`` and writing files atomically; output-path checks."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Any, Iterable

import networkx as nx

from archspec.errors import Location, SpecError
from archspec.fsio import safe_name, write_file
from archspec.render.dot import FORMATS, _check_args, to_dot

DOT_INSTALL_HINT = ("install Graphviz: 'apt-get install graphviz' (Debian/Ubuntu), "
                    "'brew install graphviz' (macOS) or 'conda install graphviz'; "
                    "'--format dot' writes the DOT text without it")


def dot_available() -> bool:
    """Whether Graphviz's ``dot`` program is on the PATH."""
    return shutil.which("dot") is not None


def layout(source: str, fmt: str) -> bytes:
    """Run ``dot -T<fmt>`` on DOT text; ``SpecError`` when dot is missing or fails."""
    if not dot_available():
        raise SpecError(f"Graphviz's 'dot' program is not installed (needed for --format {fmt})",
                        Location("dot", 0, 0), DOT_INSTALL_HINT)
    try:
        proc = subprocess.run(["dot", f"-T{fmt}"], input=source.encode("utf-8"),
                              capture_output=True, check=False)
    except OSError as e:
        raise SpecError(f"cannot run Graphviz's 'dot': {e.strerror or e}",
                        Location("dot", 0, 0), DOT_INSTALL_HINT) from None
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SpecError(f"dot failed: {msg[-1] if msg else 'exit ' + str(proc.returncode)}",
                        Location("dot", 0, 0))
    return proc.stdout


def format_for(path: str | os.PathLike, fmt: str | None) -> str:
    """The format asked for, or the one ``path``'s extension names (svg by default)."""
    ext = os.path.splitext(str(path))[1].lstrip(".").lower()
    ext = "dot" if ext == "gv" else ext
    if fmt is not None:
        _check_args(fmt, None, "TB")
        if ext in FORMATS and ext != fmt:
            raise SpecError(f"--format {fmt} does not match the output file '{path}'",
                            Location("--format", 0, 0),
                            f"name the file .{fmt}, or leave --format out")
        return fmt
    if ext in FORMATS:
        return ext
    if ext:
        raise SpecError(f"unknown format '{ext}' (from the output file '{path}')",
                        Location(str(path), 0, 0),
                        "name the file .svg, .png, .pdf or .dot, or give --format")
    return "svg"


def write_atomic(path: str | os.PathLike, data: bytes) -> str:
    """Write ``data`` to ``path`` through a temporary file in the same directory."""
    path = os.fspath(path)
    check_writable(path)
    try:
        write_file(path, data)
    except OSError as e:
        raise SpecError(f"cannot write '{path}': {e.strerror or e}", Location(path, 0, 0)) from None
    return path


def folder_problem(path: str, folder: str, loc: Location, create: bool = False) -> None:
    """SpecError when ``folder`` (where ``path`` goes) is not a usable directory: a file
    in the way (``-o /etc/passwd/x.svg``), missing (unless ``create``), or read-only."""
    up = folder
    while not os.path.lexists(up) and os.path.dirname(up) != up:
        up = os.path.dirname(up)
    if os.path.lexists(up) and not os.path.isdir(up):
        raise SpecError(f"cannot write '{path}': '{up}' is a file, not a folder", loc,
                        "choose an output path in an existing folder")
    if up != folder and not create:
        raise SpecError(f"cannot write '{path}': folder '{os.path.dirname(path) or '.'}' "
                        "does not exist", loc, "create it first")
    try:        # a real probe: os.access says yes to root on a read-only file system
        os.rmdir(tempfile.mkdtemp(prefix=".archspec-probe-", dir=up))
    except OSError as e:
        raise SpecError(f"cannot write '{path}': folder '{up}' is not writable "
                        f"({e.strerror or e})", loc, "choose another output path") from None


def check_writable(path: str | os.PathLike) -> None:
    """Fail early (before a long layout) when ``path`` cannot be written."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    loc = Location(path, 0, 0)
    if os.path.isdir(path):
        raise SpecError(f"cannot write '{path}': it is a directory", loc,
                        "give a file name, e.g. -o model.svg")
    folder_problem(path, folder, loc)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise SpecError(f"cannot write '{path}': permission denied", loc)


def render_bytes(dg: Any, fmt: str) -> bytes:
    """DOT text (``fmt='dot'``) or the laid-out picture, as bytes."""
    source = dg.source
    if fmt == "dot":
        return source.encode("utf-8")
    problem = getattr(dg, "layout_problem", None)   # set by to_dot: too wide for dot
    if problem is not None:
        raise problem
    return layout(source, fmt)


def render_graph(graph: nx.DiGraph, path: str | os.PathLike, fmt: str = "svg",
                 depth: int | None = None, direction: str = "TB", *,
                 expand: Iterable[str] = ()) -> str:
    """Draw ``graph`` into ``path`` (svg, png, pdf or dot); atomic; returns the path.

    >>> import archspec, tempfile, os
    >>> g = archspec.compile_graph(archspec.load_spec("specs/wrn.yaml", {"d": 16, "k": 1}))
    >>> out = render_graph(g, os.path.join(tempfile.mkdtemp(), "g.dot"), fmt="dot", depth=1)
    >>> open(out).read().startswith("digraph")
    True
    """
    _check_args(fmt, depth, direction)
    check_writable(path)
    data = render_bytes(to_dot(graph, depth, direction, expand=expand), fmt)
    return write_atomic(path, data)

