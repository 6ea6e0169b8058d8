"""Reading user files safely; atomic writes, output names, and the sweeping of what killed
writers left (a file or a directory appears complete or not at all).

:func:`read_text` is the one way archspec reads a file a user names (a spec, an
``extends:``/``include:`` target, a grid, a recipe): only a regular file, never one
under ``/proc``, ``/sys`` or ``/dev``, opened so that a fifo cannot block, and never
more than a size limit read from it, whatever ``stat`` said before the open.

Every command that writes (build, render, diff, grid, train, eval) goes through
this module, so a failure or a kill at any instant leaves either the old content
or the new one, never half a file. Temporaries live beside the target (the final
``rename`` must not cross file systems), are hidden and carry their writer's pid
(``.name.tmp-<pid>-XXXXXXXX``), so the next write into that folder can tell a killed
writer's leftovers (pid gone, or older than :data:`STALE_AFTER_S`) from a live one's
and remove them. Every file or folder name archspec derives from spec text (a spec
or cell name) goes through :func:`safe_name`.

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> write_file(os.path.join(d, "a.txt"), "one")
>>> with new_dir(os.path.join(d, "run")) as tmp:
...     write_file(os.path.join(tmp, "b.txt"), b"two")
>>> sorted(os.listdir(d)), open(os.path.join(d, "run", "b.txt")).read()
(['a.txt', 'run'], 'two')
>>> safe_name("../../etc/x"), safe_name("wrn-d40-k2-B(1,3,1)"), safe_name("..", "graph")
('etc_x', 'wrn-d40-k2-B_1_3_1', 'graph')
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
import time
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

#: A temporary whose writer is alive is left alone this long (pid reuse, other hosts).
STALE_AFTER_S = 3600
#: One without a pid (archspec before pids were recorded) is swept after this long.
STALE_NO_PID_S = 600
#: A finished swap leftover (``.name.swap-new``/``-old``) is put back or removed after this
#: long: a live :func:`new_dir` holds one for microseconds.
SWAP_STALE_S = 60
_TMP = re.compile(r"\.(?P<base>.+)\.tmp-(?:(?P<pid>\d+)-)?[A-Za-z0-9_]{6,}")
_SWAP = re.compile(r"\.(?P<base>.+)\.swap-(?:new|old)")
_swept: set[str] = set()
MAX_NAME = 120


def safe_name(text: str, default: str = "out") -> str:
    """The one file-name rule for names that come from spec text: ASCII letters, digits,
    ``.``, ``_`` and ``-`` (other runs become ``_``), no leading ``.``/``-`` (no hidden
    files, no options, no ``..``), at most :data:`MAX_NAME` characters; ``default``
    when nothing is left."""
    name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9._-]", "_", text))
    name = name.lstrip("._-").rstrip("_")[:MAX_NAME].rstrip("_")
    return name if name.strip(".") else default


def umask() -> int:
    """The process's umask (``os.umask`` can only be read by setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tmp_prefix(path: str) -> str:
    return f".{os.path.basename(path)}.tmp-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:          # someone else's process
        return True
    return True


def is_stale_temp(folder: str, entry: str, now: float | None = None) -> bool:
    """Whether ``entry`` of ``folder`` is a temporary a killed archspec writer left."""
    m = _TMP.fullmatch(entry)
    if m is None:
        return False
    try:
        age = (time.time() if now is None else now) - os.lstat(os.path.join(folder, entry)).st_mtime
    except OSError:
        return False
    if m.group("pid") is None:
        return age > STALE_NO_PID_S
    return not _pid_alive(int(m.group("pid"))) or age > STALE_AFTER_S


def sweep(folder: str) -> list[str]:
    """Remove the stale temporaries in ``folder`` (once per folder and process); returns
    their names. Only names of archspec's own pattern are ever touched."""
    folder = os.path.abspath(folder)
    if folder in _swept:
        return []
    _swept.add(folder)
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    gone = [e for e in entries if is_stale_temp(folder, e)]
    for base in sorted({m.group("base") for m in map(_SWAP.fullmatch, entries) if m}):
        new = swap_names(os.path.join(folder, base))[0]
        try:
            fresh = time.time() - os.lstat(new).st_mtime < SWAP_STALE_S
        except OSError:
            fresh = False
        if not fresh:
            recover_dir(os.path.join(folder, base))
    for e in gone:
        p = os.path.join(folder, e)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                os.unlink(p)
            except OSError:
                pass
    return gone


def write_file(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (str as UTF-8) to ``path`` through a synced temporary and ``os.replace``.

    The file gets the usual ``0o666 & ~umask`` mode, not mkstemp's private 0600:
    results, weights and diagrams are meant to be shared.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    sweep(folder)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), dir=folder)
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


def swap_names(path: str) -> tuple[str, str]:
    """(``.name.swap-new``, ``.name.swap-old``): where :func:`new_dir` puts the finished
    new directory and the previous one during its swap."""
    parent, base = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{base}.swap-new"), os.path.join(parent, f".{base}.swap-old")


def recover_dir(path: str) -> None:
    """Finish or undo a swap a kill interrupted: with ``path`` missing, the finished new
    directory (else the previous one) takes its place; then the leftover is removed."""
    path = os.path.abspath(path)
    new, old = swap_names(path)
    legacy = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.old")
    if not os.path.lexists(path):
        for cand in (new, old, legacy):
            if os.path.isdir(cand):
                os.rename(cand, path)
                break
    for left in (new, old, legacy):     # legacy: the previous build of archspec's own swap
        if os.path.isdir(left) and not os.path.islink(left) and os.path.lexists(path):
            shutil.rmtree(left, ignore_errors=True)


@contextmanager
def new_dir(path: str | os.PathLike) -> Iterator[str]:
    """Yield an empty temporary directory beside ``path``; on success it becomes ``path``.

    The finished temporary is renamed to ``.name.swap-new``, the previous ``path`` (if
    any) to ``.name.swap-old``, the new one into place, then the old one removed: a kill at any
    instant leaves a complete ``path``, or a complete ``.name.swap-new``/``-old``
    that :func:`recover_dir` (run first here, and by readers such as
    ``train.checkpoint``) puts back. On an exception the temporary is removed and
    ``path`` is untouched.
    """
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    sweep(parent)
    recover_dir(path)
    new, old = swap_names(path)
    tmp = tempfile.mkdtemp(prefix=_tmp_prefix(path), dir=parent)
    try:
        os.chmod(tmp, 0o777 & ~umask())          # mkdtemp makes it private
        yield tmp
        os.rename(tmp, new)
        if os.path.lexists(path):
            os.rename(path, old)
        try:
            os.rename(new, path)
        except BaseException:
            if os.path.lexists(old) and not os.path.lexists(path):
                os.rename(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        for left in (tmp, new):
            if os.path.isdir(left):
                shutil.rmtree(left, ignore_errors=True)


__all__ = ["read_bytes", "read_text", "umask", "write_file", "new_dir", "stale_dir_parts"]

__all__ = ["MAX_NAME", "STALE_AFTER_S", "STALE_NO_PID_S", "SWAP_STALE_S", "is_stale_temp",
           "new_dir", "recover_dir", "safe_name", "sweep", "swap_names", "umask", "write_file"]
