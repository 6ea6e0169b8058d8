"""Reading user files safely, and atomic writes (a file or a directory appears complete or
not at all).

:func:`read_text` is the one way archspec reads a file a user names (a spec, an
``extends:``/``include:`` target, a grid, a recipe): only a regular file, never one
under ``/proc``, ``/sys`` or ``/dev``, opened so that a fifo cannot block, and never
more than a size limit read from it, whatever ``stat`` said before the open.

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

import errno
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from typing import Iterator

from archspec.errors import Location, SpecError

#: Directories whose files are not data: kernel state (``/proc/self/environ``), devices
#: (``/dev/zero`` never ends, ``/dev/stdin`` blocks) and sysfs. Their files are refused by
#: resolved path and, for bind mounts and links, by the file system the open file is on.
SPECIAL_DIRS = ("/proc", "/sys", "/dev")


def _special_devs() -> set[int]:
    devs = set()
    for d in SPECIAL_DIRS:
        try:
            devs.add(os.stat(d).st_dev)
        except OSError:
            pass
    return devs


def _under_special(real: str) -> bool:
    return any(real == d or real.startswith(d + "/") for d in SPECIAL_DIRS)


def _open_regular(path: str, what: str, loc: Location) -> int:
    """An fd open on ``path`` if it is a regular data file; a located SpecError otherwise."""
    if "\0" in path:
        raise SpecError(f"the {what} path contains a NUL byte", loc,
                        "a file name cannot contain NUL; check how the path was written")
    if not path:
        raise SpecError(f"the {what} path is empty", loc, "name a .yaml file")
    if _under_special(os.path.realpath(path)):
        raise SpecError(f"'{path}' is a system file under /proc, /sys or /dev, not a {what} file",
                        loc, f"a {what} is a YAML file, such as specs/wrn.yaml")
    try:      # O_NONBLOCK: opening a fifo must not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        shipped = what in ("spec", "grid", "recipe")   # archspec.library's kinds
        raise SpecError(f"no such {what} file '{path}'", loc,
                        f"check the path, or name a shipped {what} ('archspec list {what}')"
                        if shipped else "check the path") from None
    except IsADirectoryError:
        raise SpecError(f"'{path}' is a directory, not a {what} file", loc,
                        "name a .yaml file, e.g. specs/wrn.yaml") from None
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SpecError(f"cannot read {what} '{path}': {reason}", loc,
                        f"a {what} is a UTF-8 YAML file, such as specs/wrn.yaml") from None
    st = os.fstat(fd)
    problem = None
    if stat.S_ISDIR(st.st_mode):
        problem = "is a directory"
    elif not stat.S_ISREG(st.st_mode):
        problem = "is not a regular file (a device, a fifo or a socket)"
    elif st.st_dev in _special_devs():
        problem = "is a system file under /proc, /sys or /dev"
    if problem is not None:
        os.close(fd)
        raise SpecError(f"'{path}' {problem}, not a {what} file", loc,
                        f"a {what} is a YAML file, such as specs/wrn.yaml")
    return fd


def read_bytes(path: str | os.PathLike, limit: int, what: str = "spec",
               at: Location | None = None) -> bytes:
    """At most ``limit`` bytes of the regular file ``path``; a located SpecError for
    anything else (missing, a directory, a device, a fifo, procfs, a NUL in the path, or
    bigger than ``limit``). The size is checked on the open file and again while reading,
    so a file that grows or lies about its size (procfs says 0) is still cut off."""
    path = os.fspath(path)
    loc = at or Location(path)
    fd = _open_regular(path, what, loc)
    too_big = SpecError(f"the {what} file '{path}' is larger than the {limit:,} bytes allowed",
                        at or Location(path, 1, 1),
                        f"a {what} is a small text file; this is not one")
    try:
        if os.fstat(fd).st_size > limit:
            raise too_big
        chunks, size = [], 0
        while size <= limit:
            try:
                chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    continue
                raise SpecError(f"cannot read {what} '{path}': {e.strerror or e}", loc) from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise too_big
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike, limit: int, what: str = "spec",
              at: Location | None = None) -> str:
    """:func:`read_bytes`, decoded as UTF-8; a bad byte is reported at its line and column."""
    path = os.fspath(path)
    data = read_bytes(path, limit, what, at)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        col = len(data[line_start:e.start].decode("utf-8", "replace")) + 1
        raise SpecError(f"'{path}' is not UTF-8 text: byte 0x{data[e.start]:02x} cannot be "
                        "decoded", Location(path, data.count(b"\n", 0, e.start) + 1, col),
                        f"a {what} is a UTF-8 YAML file; re-save it as UTF-8") from None


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


__all__ = ["read_bytes", "read_text", "umask", "write_file", "new_dir", "stale_dir_parts"]
