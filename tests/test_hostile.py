"""The hostile corpus: every file under ``tests/hostile/`` through the real CLI.

Each file starts with ``# expect: LINE:COL: MESSAGE`` (refused: exit 2, stderr's first
line ``<path>:LINE:COL: error: ...MESSAGE...``, no traceback, nothing written) or
``# expect: ok`` (exit 0, no traceback), and may name its commands on the second line,
``# commands: check summary build``. The default is every command that reads a spec
(``check summary build emit render diff``), or ``grid`` for a grid file (one with a
top-level ``archspec_grid``, ``spec`` or ``axes`` key). Files are globbed when the tests
are collected, so files other engineers add are run too.

Each command runs as its own ``python -m archspec`` process in an empty folder, under
a 4 GiB address-space limit and a 60 s timeout. ``check`` (or ``grid``) runs in the
default suite; the other commands are ``slow`` (``--runslow``): they import torch.
"""
from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "hostile"
FILES = sorted(HOSTILE.glob("*.yaml"))
SPEC_COMMANDS = ("check", "summary", "build", "emit", "render", "diff")
FAST = ("check", "grid")
MEMORY = 4 << 30
EXPECT = re.compile(r"# expect: (?:(ok)|(\d+):(\d+): (.+))$")
GRID_KEY = re.compile(r"^(archspec_grid|spec|axes)\s*:", re.M)


@dataclass(frozen=True)
class Case:
    """A corpus file's expectation: ``line``/``col``/``message``, or ``ok``."""

    path: Path
    ok: bool
    line: int
    col: int
    message: str
    commands: tuple[str, ...]


def parse(path: Path) -> Case:
    """The expectation and commands in a file's first two lines (a malformed one fails)."""
    head = path.read_text(encoding="utf-8", errors="replace").splitlines()[:2] + ["", ""]
    m = EXPECT.match(head[0].rstrip())
    if m is None:
        raise ValueError(f"{path.name}: the first line must be '# expect: ok' or "
                         f"'# expect: LINE:COL: MESSAGE', got {head[0]!r}")
    if head[1].startswith("# commands:"):
        commands = tuple(head[1].split(":", 1)[1].split())
    elif GRID_KEY.search(path.read_text(encoding="utf-8", errors="replace")):
        commands = ("grid",)
    else:
        commands = SPEC_COMMANDS
    unknown = set(commands) - set(SPEC_COMMANDS) - {"grid"}
    if unknown:
        raise ValueError(f"{path.name}: unknown commands {sorted(unknown)}")
    if m.group(1):
        return Case(path, True, 0, 0, "", commands)
    return Case(path, False, int(m.group(2)), int(m.group(3)), m.group(4).strip(), commands)


def argv(command: str, path: str) -> list[str]:
    """The command line of one command; every output goes into the working folder."""
    return {"check": ["check", path], "summary": ["summary", path],
            "build": ["build", path, "-o", "out"], "emit": ["emit", path],
            "render": ["render", path, "-o", "x.svg"], "diff": ["diff", path, path],
            "grid": ["grid", path, "-o", "out", "-j", "1"]}[command]


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.run([sys.executable, "-m", "archspec", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, preexec_fn=_limit)


def check_case(case: Case, command: str, tmp: Path) -> None:
    """Run one command on one file and hold it to the file's expectation."""
    cwd = tmp / "work"
    cwd.mkdir()
    path = str(case.path)
    r = run_cli(argv(command, path), cwd)
    said = f"archspec {' '.join(argv(command, path))}\nexit {r.returncode}\n" \
           f"stdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-2000:]}"
    assert "Traceback" not in r.stdout + r.stderr, said
    if case.ok:
        assert r.returncode == 0, said
        return
    assert r.returncode == 2, said
    first = r.stderr.splitlines()[0] if r.stderr else ""
    assert first.startswith(f"{path}:{case.line}:{case.col}: error: "), said
    assert case.message in first, said
    assert sorted(os.listdir(cwd)) == [], f"{said}\nwrote {sorted(os.listdir(cwd))}"


def _parse_all() -> tuple[list[Case], list[str]]:
    cases, problems = [], []
    for p in FILES:
        try:
            cases.append(parse(p))
        except ValueError as e:     # reported by a test, not as a collection error
            problems.append(str(e))
    return cases, problems


CASES, PROBLEMS = _parse_all()
FAST_RUNS = [(c, cmd) for c in CASES for cmd in c.commands if cmd in FAST]
SLOW_RUNS = [(c, cmd) for c in CASES for cmd in c.commands if cmd not in FAST]


def test_the_corpus_is_there() -> None:
    assert not PROBLEMS, "\n".join(PROBLEMS)
    names = {p.name for p in FILES}
    assert {"shape-pad-negative.yaml", "shape-ceil-mode.yaml"} <= names
    assert any(c.ok for c in CASES) and any(not c.ok for c in CASES)


@pytest.mark.parametrize("case, command", FAST_RUNS,
                         ids=[f"{c.path.stem}-{cmd}" for c, cmd in FAST_RUNS])
def test_hostile_fast(case: Case, command: str, tmp_path: Path) -> None:
    check_case(case, command, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case, command", SLOW_RUNS,
                         ids=[f"{c.path.stem}-{cmd}" for c, cmd in SLOW_RUNS])
def test_hostile_slow(case: Case, command: str, tmp_path: Path) -> None:
    check_case(case, command, tmp_path)
