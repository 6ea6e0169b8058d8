"""The real ``archspec`` process on good and bad specs: exit codes, error lines, carets.

Every file under ``tests/bad_specs/`` starts with one ``# error: LINE:COL: message``
comment per expected error (or ``# error: --set k=v: message`` for a bad override, or
``# error: specs/F.yaml:LINE:COL: message`` for a check of the spec it extends)
and may carry ``# args: ...`` for extra command-line arguments. The test runs
``archspec check`` on it and demands exactly those errors, in that order, each as
one ``path:line:col: error: ...`` line followed by the source line and a caret
under the column, exit status 2 and no traceback.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from archspec.text import printable

ROOT = Path(__file__).resolve().parent.parent
BAD = ROOT / "tests" / "bad_specs"
BAD_SPECS = sorted(BAD.glob("*.yaml"))


def archspec(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archspec", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def expectations(path: Path) -> tuple[list[str], list[str]]:
    errors, args = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# error: "):
            errors.append(line[len("# error: "):])
        elif line.startswith("# args: "):
            args += shlex.split(line[len("# args: "):])
    return errors, args


def test_there_are_bad_specs() -> None:
    assert len(BAD_SPECS) >= 40
    for p in BAD_SPECS:
        assert p.read_text(encoding="utf-8").startswith("# error: "), p.name


@pytest.mark.parametrize("path", BAD_SPECS, ids=[p.stem for p in BAD_SPECS])
def test_bad_spec(path: Path) -> None:
    expected, args = expectations(path)
    rel = path.relative_to(ROOT).as_posix()
    r = archspec("check", rel, *args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    heads = [i for i, line in enumerate(lines) if ": error: " in line]
    assert len(heads) == len(expected), r.stderr
    for i, want in zip(heads, expected):
        got = lines[i]
        if want.startswith("--set "):
            where, message = want.split(": ", 1)
            assert got.startswith(f"{where}: error: "), got
            assert message in got, got
            continue
        # an error located in the spec a bad spec extends names that file first
        where, line, col, message = re.match(r"(?:([\w./-]+\.yaml):)?(\d+):(\d+): (.*)",
                                             want).groups()
        assert got.startswith(f"{where or rel}:{line}:{col}: error: "), got
        assert message in got.split(": error: ", 1)[1], got
        # the offending source line (controls escaped), then a caret under the column
        text = (ROOT / where if where else path).read_text(encoding="utf-8")
        source = text.splitlines()[int(line) - 1].expandtabs(1)
        assert lines[i + 1] == "    " + printable(source), r.stderr
        assert lines[i + 2] == "    " + " " * len(printable(source[:int(col) - 1])) + "^", \
            r.stderr


def test_python_tag_never_executes(tmp_path: Path) -> None:
    import yaml
    spec = tmp_path / "evil.yaml"
    spec.write_text((BAD / "python_tag.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    r = archspec("check", str(spec), cwd=tmp_path)
    assert r.returncode == 2 and "is not allowed in a spec" in r.stderr
    assert not (tmp_path / "ARCHSPEC_PWNED").exists()
    # control: the payload is live, an unsafe loader would have run it
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        yaml.unsafe_load(spec.read_text(encoding="utf-8"))
    finally:
        os.chdir(cwd)
    assert (tmp_path / "ARCHSPEC_PWNED").exists()


def test_unsafe_expression_never_executes(tmp_path: Path) -> None:
    spec = tmp_path / "evil.yaml"
    spec.write_text((BAD / "unsafe_expression.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    r = archspec("check", str(spec), cwd=tmp_path)
    assert r.returncode == 2 and "not available in expressions" in r.stderr
    assert not (tmp_path / "ARCHSPEC_PWNED").exists()


def test_wrn_depth_27_reads_like_the_paper() -> None:
    r = archspec("check", "specs/wrn.yaml", "--set", "d=27")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    head = r.stderr.splitlines()[0]
    assert "error: depth should be 6n+4, got 27" in head
    line = int(head.split(":")[1])
    assert "check:" in (ROOT / "specs/wrn.yaml").read_text(encoding="utf-8").splitlines()[line - 1]


@pytest.mark.parametrize("override, message", [
    ("l=-1", "the deepening factor l must be 0 or more, got -1"),
    ("block=basic", "the WRN needs a B(M) block, got basic"),
    ("block=bottleneck", "the WRN needs a B(M) block, got bottleneck"),
    ("d=4", "depth 4 leaves no block per group"),
])
def test_wrn_misuse_is_one_check_not_an_arithmetic_error(override: str, message: str) -> None:
    r = archspec("check", "specs/wrn-28-10.yaml", "--set", override)
    heads = [line for line in r.stderr.splitlines() if ": error: " in line]
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(heads) == 1 and message in heads[0], r.stderr
    assert heads[0].startswith("specs/wrn.yaml:"), heads[0]
    assert "by zero" not in r.stderr


def test_error_in_an_extended_spec_names_its_plain_path() -> None:
    r = archspec("check", "examples/specs/wrn-16-8-cifar100.yaml", "--set", "d=17")
    assert r.returncode == 2
    assert r.stderr.startswith("specs/wrn.yaml:"), r.stderr


def test_check_ok_and_several_specs() -> None:
    r = archspec("check", "specs/wrn-28-10.yaml", "tests/bad_specs/add_channels.yaml",
                 "tests/bad_specs/unknown_op.yaml")
    assert r.returncode == 2
    assert r.stdout.startswith("specs/wrn-28-10.yaml: ok (105 ops, 36,479,194 params")
    assert r.stderr.count(": error: ") == 2
    assert archspec("check", "-q", "specs/wrn-28-10.yaml").returncode == 0


@pytest.mark.parametrize("args, message", [
    ((), "archspec: error: "),
    (("check",), "archspec check: error: the following arguments are required: SPEC"),
    (("check", "no/such.yaml"), "no/such.yaml: error: no such spec file"),
    (("nosuchcommand",), "invalid choice: 'nosuchcommand'"),
    (("summary", "specs/wrn.yaml", "--depth", "-1"), "--depth: error: --depth must be 0 or more"),
    (("summary", "specs/wrn.yaml", "--format", "xml"), "invalid choice: 'xml'"),
    (("check", "specs/wrn.yaml", "--set", "k"), "--set k: error: override 'k' is not of the form"),
])
def test_usage_errors(args: tuple, message: str) -> None:
    r = archspec(*args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    if args:
        assert message in r.stderr


def test_summary_json_is_stable() -> None:
    r = archspec("summary", "specs/wrn-28-10.yaml", "--format", "json", "--set", "k=8")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["archspec_summary"] == 1
    assert doc["params"] == 23_354_842  # WRN-28-8: the k=8 override took
    assert doc["input_shape"] == ["N", 3, 32, 32]
    assert doc["output_shapes"] == {"out": ["N", 10]}


def test_summary_table_depth() -> None:
    r = archspec("summary", "specs/wrn-28-10.yaml", "--depth", "1")
    assert r.returncode == 0
    assert "layer2   B(3,3) ×4" in r.stdout
    assert "Total params:       36,479,194 (36.48 M)" in r.stdout


def test_check_never_imports_torch() -> None:
    code = ("import sys; from archspec.cli import main; rc = main(['check', '-q', "
            "'specs/wrn-28-10.yaml']); heavy = [m for m in ('torch', 'torchvision', 'matplotlib')"
            " if m in sys.modules]; print(rc, heavy)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.stdout.strip() == "0 []", r.stdout + r.stderr


CORE_TESTS = ["tests/test_expr.py", "tests/test_spec.py", "tests/test_graph.py",
              "tests/test_shapes.py"]


def test_core_suite_is_torch_free() -> None:
    """The front end's own tests run, and pass, without ever importing torch."""
    for name in CORE_TESTS + ["tests/test_cli.py", "tests/conftest.py"]:
        text = (ROOT / name).read_text(encoding="utf-8")
        assert "import torch" not in text.replace('"import torch"', "")
    code = ("import sys, pytest; rc = pytest.main(['-q', '-p', 'no:cacheprovider', *sys.argv[1:]]);"
            " print('RESULT', rc, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, *CORE_TESTS], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.stdout.strip().splitlines()[-1] == "RESULT 0 False", r.stdout[-3000:]


UNUSED = """input: {shape: [8, 16, 16]}
layers:
  - conv: {op: conv, out: 8, kernel: 1, bias: false}
  - branch: {op: conv, out: 8, kernel: 1, bias: false, from: input}
  - {op: relu, from: conv}
"""
UNUSED_WARNING = ("s.yaml:4:5: warning: the output of 'branch' reaches no output of the "
                  "network: 1 op (64 params, 16,384 MACs) computed for nothing, still built "
                  "and counted; read it from a later layer")


@pytest.mark.parametrize("command", [["check"], ["summary", "--format", "json"]])
def test_an_unused_op_is_a_located_warning_and_exit_0(tmp_path: Path, command: list[str]
                                                      ) -> None:
    (tmp_path / "s.yaml").write_text(UNUSED, encoding="utf-8")
    r = archspec(*command, "s.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 3 and lines[0].startswith(UNUSED_WARNING), r.stderr
    assert lines[1] == "      - branch: {op: conv, out: 8, kernel: 1, bias: false, from: input}"
    assert lines[2] == "    " + " " * 4 + "^"
    if command[0] == "check":   # still counted: 64 + 64 params
        assert r.stdout == "s.yaml: ok (3 ops, 128 params, 32.77 kMACs)\n"
    else:
        assert json.loads(r.stdout)["params"] == 128


@pytest.mark.parametrize("command", [["check"], ["summary"]])
def test_strict_makes_warnings_errors(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "s.yaml").write_text(UNUSED, encoding="utf-8")
    r = archspec(*command, "--strict", "s.yaml", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines()[0].startswith(UNUSED_WARNING.replace("warning:", "error:"))
    assert "warning:" not in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow   # two builds, each loading torch: about 10 s
def test_build_warns_and_strict_builds_nothing(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(UNUSED, encoding="utf-8")
    r = archspec("build", "--strict", "s.yaml", "-o", "out", cwd=tmp_path)
    assert r.returncode == 2 and "s.yaml:4:5: error: the output of 'branch'" in r.stderr
    assert not (tmp_path / "out").exists()
    r = archspec("build", "s.yaml", "-o", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith(UNUSED_WARNING) and (tmp_path / "out" / "model.py").exists()
    assert "128 params" in r.stdout


def test_shipped_specs_check_strict() -> None:
    specs = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("specs/*.yaml")) + \
        sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("examples/specs/*.yaml"))
    r = archspec("check", "--strict", "-q", *specs)
    assert r.returncode == 0 and r.stderr == "" and r.stdout == "", r.stderr
