"""Atomic writes: a file or a directory appears complete or not at all.

Every command that writes (build, render, diff, grid, train, eval) goes through
these two functions, so a failure or a kill at any instant leaves either the old
content or the new one, never half a file. Temporaries live beside the target (the
final ``rename`` must not cross file systems) and are hidden (``.name.tmp-…``).

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> write_file(os.path.join(d, "a.txt"), "one")
>>> with new_dir(os.path.join(d, "run")) as tmp:
...     write_file(os.path.join(tmp, "b.txt"), b"two")
>>> sorted(os.listdir(d)), open(os.path.join(d, "run", "b.txt")).read()
(['a.txt', 'run'], 'two')
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator


def umask() -> int:
    """The process's umask (``os.umask`` can only be read by setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_file(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (str as UTF-8) to ``path`` through a synced temporary and ``os.replace``.

    The file gets the usual ``0o666 & ~umask`` mode, not mkstemp's private 0600:
    results, weights and diagrams are meant to be shared.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def stale_dir_parts(path: str) -> tuple[list[str], str]:
    """(the temporaries :func:`new_dir` leaves beside ``path`` when killed, its aside name)."""
    parent = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(os.path.abspath(path))
    tmps = [os.path.join(parent, d) for d in sorted(os.listdir(parent))
            if d.startswith(f".{base}.tmp-")] if os.path.isdir(parent) else []
    return tmps, os.path.join(parent, f".{base}.old")


@contextmanager
def new_dir(path: str | os.PathLike) -> Iterator[str]:
    """Yield an empty temporary directory beside ``path``; on success it becomes ``path``.

    The previous ``path`` (if any) is renamed aside, the new one renamed in, then the old
    one removed: a kill between the two renames leaves both complete directories, and a
    reader can finish the swap (``train.checkpoint.recover``). On an exception the
    temporary is removed and ``path`` is untouched. Temporaries a killed writer left
    are removed first.
    """
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    stale, old = stale_dir_parts(path)
    for leftover in stale:
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    try:
        os.chmod(tmp, 0o777 & ~umask())          # mkdtemp makes it private
        yield tmp
        if os.path.lexists(path):
            if os.path.lexists(old):
                shutil.rmtree(old)
            os.rename(path, old)
        try:
            os.rename(tmp, path)
        except BaseException:
            if os.path.lexists(old) and not os.path.lexists(path):
                os.rename(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["umask", "write_file", "new_dir", "stale_dir_parts"]
