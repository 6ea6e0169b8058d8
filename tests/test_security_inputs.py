"""Hostile inputs: files that are not specs, work that does not end, limits a file lifts.

Every case runs the real CLI in a subprocess with a timeout (and, where the attack is
memory, an address-space cap): exit 2, one located ``path:line:col: error:`` line, no
traceback, nothing of /etc/shadow or the environment in the output, nothing written.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archspec.errors import Location, SpecError, format_error, register_source
from archspec.fsio import read_text

ROOT = Path(__file__).resolve().parent.parent
SECRET = "archspec-planted-secret-41c7"
TAIL = "input: {shape: [3]}\nlayers: [{op: relu}]\n"


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), ARCHSPEC_TEST_SECRET=SECRET)
    return subprocess.run([sys.executable, "-m", "archspec", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_cap_memory)


def refused(r: subprocess.CompletedProcess, where: str, message: str) -> str:
    """Assert the one-located-line refusal; returns the error line."""
    assert r.returncode == 2, r.stderr
    out = r.stdout + r.stderr
    assert "Traceback" not in out and SECRET not in out
    heads = [ln for ln in r.stderr.splitlines() if ": error: " in ln]
    assert len(heads) == 1, r.stderr
    assert heads[0].startswith(f"{where}: error: "), heads[0]
    assert message in heads[0], heads[0]
    return heads[0]


def write(p: Path, text: str) -> Path:
    p.write_text(text, encoding="utf-8")
    return p


# ----------------------------------------------------------------- reading files
@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "/dev/stdin",
                                    "/proc/self/environ", "/etc/shadow"])
def test_extends_of_a_system_file_is_refused_by_name(tmp_path: Path, target: str) -> None:
    write(tmp_path / "s.yaml", f"extends: {target}\n{TAIL}")
    t0 = time.monotonic()
    r = cli("check", "s.yaml", cwd=tmp_path)
    refused(r, "s.yaml:1:10", f"'extends' must name a .yaml spec file, got '{target}'")
    assert time.monotonic() - t0 < 30
    assert "root:" not in r.stderr


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "/proc/self/environ",
                                    "/etc/shadow"])
def test_a_yaml_named_link_to_a_system_file_is_never_read(tmp_path: Path, target: str) -> None:
    """A link named .yaml is judged by what it leads to: refused by name through
    'extends', and by the reader (resolved path, device) on the command line."""
    (tmp_path / "lib.yaml").symlink_to(target)
    write(tmp_path / "s.yaml", f"extends: lib.yaml\n{TAIL}")
    refused(cli("check", "s.yaml", cwd=tmp_path), "s.yaml:1:10",
            "'extends' must name a .yaml spec file, got 'lib.yaml' (a link to a file that is not)")
    if target != "/etc/shadow":
        refused(cli("check", "lib.yaml", cwd=tmp_path, timeout=30), "lib.yaml",
                "is a system file under /proc, /sys or /dev")


def test_a_fifo_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "lib.yaml")
    write(tmp_path / "s.yaml", f"extends: lib.yaml\n{TAIL}")
    r = cli("check", "s.yaml", cwd=tmp_path, timeout=30)
    refused(r, "s.yaml:1:10", "'lib.yaml' is not a regular file (a device, a fifo or a socket)")
    r = cli("check", "lib.yaml", cwd=tmp_path, timeout=30)
    refused(r, "lib.yaml", "is not a regular file")


def test_spec_on_the_command_line_from_dev_and_proc(tmp_path: Path) -> None:
    for path in ("/dev/zero", "/proc/self/environ"):
        r = cli("check", path, cwd=tmp_path, timeout=30)
        refused(r, path, "is a system file under /proc, /sys or /dev")
    r = cli("grid", "/dev/zero", cwd=tmp_path, timeout=30)
    refused(r, "/dev/zero", "not a grid file")


def test_nul_in_an_extends_path(tmp_path: Path) -> None:
    write(tmp_path / "s.yaml", f'extends: "a\\0.yaml"\n{TAIL}')
    refused(cli("check", "s.yaml", cwd=tmp_path), "s.yaml:1:10",
            "the 'extends' path contains a NUL byte")


def test_a_file_over_the_size_limit_is_cut_off_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(2 << 30)             # 2 GB, sparse: reading it whole would take seconds
    write(tmp_path / "s.yaml", f"extends: big.yaml\n{TAIL}")
    t0 = time.monotonic()
    refused(cli("check", "s.yaml", cwd=tmp_path), "s.yaml:1:10",
            "is larger than the 4,194,304 bytes allowed")
    refused(cli("check", "big.yaml", cwd=tmp_path), "big.yaml:1:1", "larger than")
    assert time.monotonic() - t0 < 30


def test_reader_checks_the_size_while_reading(tmp_path: Path) -> None:
    p = write(tmp_path / "a.yaml", "x" * 101)
    with pytest.raises(SpecError) as e:
        read_text(str(p), 100)
    assert "larger than the 100 bytes" in e.value.message
    assert read_text(str(p), 101) == "x" * 101
    with pytest.raises(SpecError) as e:
        read_text(str(tmp_path), 100)
    assert "is a directory" in e.value.message


def test_error_context_never_opens_a_file(tmp_path: Path) -> None:
    """format_error shows only registered texts: a location in /etc/passwd shows nothing."""
    e = SpecError("m", Location("/etc/passwd", 1, 1))
    assert format_error(e) == "/etc/passwd:1:1: error: m"
    register_source(str(tmp_path / "r.yaml"), "a: 1\n" + "b" * 10_000_000 + "\n")
    shown = format_error(SpecError("m", Location(str(tmp_path / "r.yaml"), 2, 5_000_000)))
    assert max(len(line) for line in shown.splitlines()[1:]) <= 130


def test_include_cycle_is_named_include(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", f"include: [b.yaml]\n{TAIL}")
    write(tmp_path / "b.yaml", "include: [a.yaml]\nblocks: {}\n")
    refused(cli("check", "a.yaml", cwd=tmp_path), "b.yaml:1:11",
            "'include' forms a cycle through 'a.yaml'")


# ----------------------------------------------------------------- bounded work
def _bomb(levels: int, op: str, uses: str = "[{{block: B{n}}}, {{block: B{n}}}]") -> str:
    lines = ["params: {two: 2}", "input: {shape: [1, 4, 4]}", "blocks:"]
    for i in range(levels):
        body = uses.format(n=i + 1) if i < levels - 1 else f"[{op}]"
        lines += [f"  B{i}:", f"    layers: {body}"]
    return "\n".join(lines + ["layers:", "  - {block: B0}"]) + "\n"


@pytest.mark.parametrize("op", ["{op: relu}", "{op: relu, when: false}"])
def test_exponential_block_is_measured_before_expansion(tmp_path: Path, op: str) -> None:
    """2**30 block instances, named literally: measured (each block once) and refused
    before anything expands, at the outermost block's use."""
    write(tmp_path / "s.yaml", _bomb(30, op))
    t0 = time.monotonic()
    r = cli("check", "s.yaml", cwd=tmp_path, timeout=120)
    refused(r, "s.yaml:65:5", "expanding block 'B0' (B0 → B1 → B2 → …) takes at least "
            "1,610,612,735 steps, more than the 100,000 allowed" if "when" in op else
            "expanding block 'B0' (B0 → B1 → B2 → …) takes at least")
    assert time.monotonic() - t0 < 30     # a hang guard; the time is measured in bench/


def test_exponential_block_through_expressions_stops_at_the_budget(tmp_path: Path) -> None:
    """Repeat counts that are expressions are not known before expansion: the step budget
    stops it while expanding (the op-free form never reaches the op limit at all)."""
    write(tmp_path / "s.yaml", _bomb(30, "{op: relu, when: false}",
                                     "[{{block: B{n}, repeat: two}}]"))
    r = cli("check", "s.yaml", cwd=tmp_path, timeout=120)
    refused(r, "s.yaml:65:5", "expanding block 'B0' (B0 → B1 → B2 → …) takes more than "
            "100,000 steps")


def test_too_many_let_entries_are_counted(tmp_path: Path) -> None:
    lets = "".join(f"  v{i}: {i}\n" for i in range(200_000))
    write(tmp_path / "s.yaml", f"let:\n{lets}{TAIL}")
    r = cli("check", "s.yaml", cwd=tmp_path)
    line = refused(r, "s.yaml:2:3", "this mapping has 200,000 entries (400,001 values in all), "
                   "more than the 200,000 values a document may hold")
    assert "alias" not in line


def test_grid_cannot_raise_the_cell_limit(tmp_path: Path) -> None:
    axes = ", ".join(str(i) for i in range(1, 102))
    write(tmp_path / "g.yaml", f"spec: {ROOT / 'specs' / 'wrn.yaml'}\nmax_cells: 10000000000000\n"
          f"axes:\n  k: [{axes}]\n  d: [{', '.join(str(10 + 6 * i) for i in range(100))}]\n")
    r = cli("grid", "g.yaml", "-o", "out", cwd=tmp_path)
    refused(r, "g.yaml:2:1", "the grid has 10,100 cells, more than the limit of 10,000")
    assert "can only lower the limit" in r.stderr
    r = cli("grid", "g.yaml", "--max-cells", "100", cwd=tmp_path)
    refused(r, "g.yaml:2:1", "more than the limit of 100")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.yaml"]


def test_check_must_be_a_boolean(tmp_path: Path) -> None:
    write(tmp_path / "s.yaml", f'checks:\n  - check: "[1, 2]"\n{TAIL}')
    refused(cli("check", "s.yaml", cwd=tmp_path), "s.yaml:2:12",
            "a check must be true or false, got list [1, 2]")


def test_huge_label_is_refused_at_its_line(tmp_path: Path) -> None:
    write(tmp_path / "s.yaml", "blocks:\n  Big:\n    params: {n: int}\n"
          "    label: \"{'x' * n}\"\n    layers: [{op: relu}]\n"
          "input: {shape: [3]}\nlayers:\n  - {block: Big, n: 100000}\n")
    r = cli("render", "s.yaml", "--format", "dot", "-o", "g.dot", cwd=tmp_path)
    refused(r, "s.yaml:4:12", "the block's label is 100,000 characters long")
    assert not (tmp_path / "g.dot").exists()


def test_too_wide_a_diagram_is_refused_before_dot(tmp_path: Path) -> None:
    n = 1500
    write(tmp_path / "s.yaml", "input: {shape: [1, 2, 2]}\nlayers:\n  - for: i\n"
          f"    in: range({n})\n    layers:\n      - \"r{{i}}\": {{op: relu, from: input}}\n"
          f"  - cat: {{op: concat, from: [{', '.join(f'r{i}' for i in range(n))}]}}\n")
    t0 = time.monotonic()
    r = cli("render", "s.yaml", "-o", "g.svg", cwd=tmp_path)
    refused(r, "s.yaml:6:9", "the diagram puts 1,500 boxes side by side")
    assert time.monotonic() - t0 < 60 and not (tmp_path / "g.svg").exists()
    assert cli("render", "s.yaml", "--format", "dot", "-o", "g.dot", cwd=tmp_path).returncode == 0


def test_memory_guard_respects_rlimit_as() -> None:
    """The forward-pass guard reads the address-space limit, not only MemAvailable."""
    code = ("import resource; from archspec.torch_backend import memory_limits, "
            "available_memory; soft = 6 << 30; resource.setrlimit(resource.RLIMIT_AS, "
            "(soft, soft)); lim = memory_limits(); print(available_memory() < soft, "
            "any('ulimit -v' in s for _, s in lim))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.stdout.split() == ["True", "True"], r.stderr
