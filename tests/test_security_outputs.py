"""Issue 12, the outputs side: generated source, written paths, terminal text, CSV and
markdown cells, layer names and run state, each attacked through the real CLI.

Every command runs as ``python -m archspec`` in a fresh working directory; a refused
spec must give exit 2 and exactly its located error line(s) on stderr, no traceback,
and write nothing; an accepted one must write only under the working directory and
print no raw control or bidi character.
"""
from __future__ import annotations

import ast
import csv
import io
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archspec.fsio import STALE_NO_PID_S, new_dir, safe_name, sweep, write_file
from archspec.grid.table import csv_cell, md_cell
from archspec.spec.names import MODULE_ATTRS
from archspec.text import printable, py_docstring

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "hostile"
#: the classes this file owns in the shared corpus (other files belong to other tests)
MINE = ("codegen-", "name-", "ansi-")
CORPUS = sorted(p for p in HOSTILE.glob("*.yaml") if p.name.startswith(MINE))
ALL_COMMANDS = ("check", "summary", "build", "emit", "render")
#: where the corpus's path-like names would have written outside the working directory
OUTSIDE = (Path("/tmp/archspec-escaped"), Path("/tmp/archspec-abs"))
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def archspec(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "archspec", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def expectation(path: Path) -> tuple[str, tuple[str, ...]]:
    """(``ok`` or ``LINE:COL: MESSAGE``, commands) from the file's first two lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    expect = lines[0].removeprefix("# expect: ")
    cmds = lines[1].removeprefix("# commands: ").split() \
        if len(lines) > 1 and lines[1].startswith("# commands: ") else ALL_COMMANDS
    return expect, tuple(cmds)


def files_under(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def test_corpus_is_there_and_well_formed() -> None:
    assert len(CORPUS) >= 10
    for p in CORPUS:
        expect, cmds = expectation(p)
        assert expect == "ok" or re.fullmatch(r"\d+:\d+: .+", expect), p.name
        assert set(cmds) <= set(ALL_COMMANDS), p.name


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_hostile_spec(path: Path, tmp_path: Path) -> None:
    expect, cmds = expectation(path)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(path, work / "spec.yaml")
    outside = {p: p.exists() for p in OUTSIDE}
    sources: list[str] = []
    for cmd in cmds:
        before = files_under(work)
        args = [cmd, "spec.yaml"] + (["--format", "dot"] if cmd == "render" else [])
        r = archspec(work, *args)
        assert "Traceback" not in r.stderr + r.stdout, (cmd, r.stderr)
        assert not RAW.search(r.stderr + r.stdout), (cmd, r.stderr, r.stdout)
        if expect != "ok":
            line, col, message = re.fullmatch(r"(\d+):(\d+): (.*)", expect).groups()
            heads = [x for x in r.stderr.splitlines() if ": error: " in x]
            assert r.returncode == 2 and r.stdout == "", (cmd, r.stderr)
            assert len(heads) == 1, (cmd, r.stderr)
            assert heads[0].startswith(f"spec.yaml:{line}:{col}: error: "), (cmd, heads)
            assert message in heads[0], (cmd, heads)
            assert files_under(work) == before, cmd           # nothing written
            continue
        assert r.returncode == 0, (cmd, r.stderr)
        new = files_under(work) - before
        assert all(f == "build" or f.startswith("build/") or f.endswith(".dot") for f in new), new
        if cmd == "emit":
            sources.append(r.stdout)
        if cmd == "build":
            built = [d for d in (work / "build").iterdir()]
            assert len(built) == 1 and built[0].name == safe_name(built[0].name)
            sources.append((built[0] / "model.py").read_text())
    if sources:          # emit prints what build writes: run it once
        assert all(s == sources[0] for s in sources)
        _run_generated(sources[0], work)
    assert {p: p.exists() for p in OUTSIDE} == outside      # nothing outside the cwd
    assert not list(work.rglob("PWNED*"))


def _run_generated(source: str, cwd: Path) -> None:
    """The generated file parses, runs, builds its model, and runs nothing else."""
    ast.parse(source)
    (cwd / "model_gen.py").write_text(source)
    check = ("import model_gen as m, torch; net = m.Model(); "
             "print(net(torch.zeros(1, 3, 8, 8)).shape[0])")
    r = subprocess.run([sys.executable, "-c", check], cwd=cwd, capture_output=True, text=True,
                       timeout=120)
    (cwd / "model_gen.py").unlink()
    shutil.rmtree(cwd / "__pycache__", ignore_errors=True)
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
    assert not list(cwd.rglob("PWNED*"))


def test_generated_docstrings_hold_the_text_exactly(tmp_path: Path) -> None:
    """Name and description come back from the generated module unchanged."""
    torch = pytest.importorskip("torch")
    from archspec.codegen import generate
    name, desc = "n\"\"\"\\'x", 'd """ q" \\\n\tline two \x1b[2J \u202e end\\'
    spec = tmp_path / "s.yaml"
    spec.write_text("archspec: 1\nname: " + _yaml_str(name) + "\ndescription: " +
                    _yaml_str(desc) + "\ninput: {shape: [3, 4, 4]}\n"
                    "layers:\n  - fc: {op: flatten}\n")
    ns: dict = {}
    exec(compile(generate(str(spec)), "model.py", "exec"), ns)   # noqa: S102 - the test
    assert ns["__doc__"].startswith(f"{name}: generated by archspec from ")
    assert ns["Model"].__doc__ == desc.replace("\n", "\n    ")
    assert ns["Model"].spec_name == name
    assert ns["Model"]()(torch.zeros(1, 3, 4, 4)).shape == (1, 48)


def _yaml_str(text: str) -> str:
    """A double-quoted YAML scalar of ``text``."""
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    out = out.replace("\t", "\\t").replace("\x1b", "\\e").replace("\u202e", "\\u202e")
    return f'"{out}"'


@pytest.mark.parametrize("text", ['"""', 'ends with a quote"', "ends with a backslash\\",
                                  '""""', "a\rb\x00c\u2028d", "\\x41 stays backslash-x41",
                                  "\"\"\"; import os; os.system('x') #"])
def test_py_docstring_is_one_literal_of_the_text(text: str) -> None:
    lit = py_docstring(text)
    tree = ast.parse(lit)
    assert len(tree.body) == 1 and isinstance(tree.body[0].value, ast.Constant)
    assert ast.literal_eval(lit) == text


def test_spec_file_name_reaches_no_code(tmp_path: Path) -> None:
    """A newline in a spec's file name ended the '# spec:line:col' comments (and the
    module docstring held it raw): emit and build run nothing from it."""
    name = "x\"\"\"\nopen('PWNED', 'w').close()\n#.yaml"
    (tmp_path / name).write_text("archspec: 1\nname: fname\ninput: {shape: [3, 8, 8]}\n"
                                 "layers:\n  - conv1: {op: conv, out: 4, kernel: 3}\n")
    r = archspec(tmp_path, "emit", name)
    assert r.returncode == 0, r.stderr
    assert "  # x\"\"\"\\nopen('PWNED', 'w').close()\\n#.yaml:5:5" in r.stdout
    _run_generated(r.stdout, tmp_path)
    r = archspec(tmp_path, "build", name, "-o", "out")
    assert r.returncode == 0, r.stderr
    _run_generated((tmp_path / "out" / "model.py").read_text(), tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_error_lines_escape_terminal_controls(tmp_path: Path) -> None:
    """stderr is exactly the located line, the source line and the caret, all escaped,
    with the caret under the escaped column."""
    (tmp_path / "s.yaml").write_text('archspec: 1\ninput: {shape: [3, 8, 8]}\nlayers:\n'
                                     '  - bad: {op: "\\e[2J"}\n'
                                     '  - "\u202e": {op: "x\u202e"}\n', encoding="utf-8")
    r = archspec(tmp_path, "check", "s.yaml")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "s.yaml:4:15: error: unknown op '\\x1b[2J'; see docs/spec-language.md for the list "
        "of ops",
        '      - bad: {op: "\\e[2J"}',
        "                  ^",
        "s.yaml:5:15: error: unknown op 'x\\u202e'; see docs/spec-language.md for the list "
        "of ops",
        '      - "\\u202e": {op: "x\\u202e"}',
        "    " + " " * 19 + "^"]
    # a raw ESC is refused by the YAML reader, and shown escaped there too
    (tmp_path / "s.yaml").write_text('archspec: 1\nname: "\x1b[2J"\n')
    r = archspec(tmp_path, "check", "s.yaml")
    assert r.returncode == 2 and r.stderr.splitlines()[1:] == ['    name: "\\x1b[2J"',
                                                               "           ^"], r.stderr


def test_printed_names_are_escaped(tmp_path: Path) -> None:
    """A spec name that clears the screen, moves the cursor and prints a fake line."""
    (tmp_path / "s.yaml").write_text('archspec: 1\nname: "n\\e[2J\\rfake\\nok\\u202e"\n'
                                     'input: {shape: [3, 8, 8]}\n'
                                     'layers:\n  - conv1: {op: conv, out: 4, kernel: 3}\n')
    r = archspec(tmp_path, "summary", "s.yaml")
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "n\\x1b[2J\\rfake\\nok\\u202e"
    r = archspec(tmp_path, "build", "s.yaml")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("n\\x1b[2J\\rfake\\nok\\u202e: 112 params")
    assert os.listdir(tmp_path / "build") == ["n_2J_fake_ok"]
    assert not RAW.search(r.stdout + r.stderr)


@pytest.mark.parametrize("name, want", [("../../..", "out"), ("/etc/passwd", "etc_passwd"),
                                        ("..", "out"), (".hidden", "hidden"),
                                        ("-rf", "rf"), ("wrn-28-10", "wrn-28-10"),
                                        ("a/../../b", "a_.._.._b"), ("", "out"),
                                        ("x" * 300, "x" * 120), ("ｃｏｎｖ", "out")])
def test_one_file_name_rule(name: str, want: str) -> None:
    assert safe_name(name) == want
    assert "/" not in safe_name(name) and not safe_name(name).startswith(".")


def test_build_name_stays_under_build(tmp_path: Path) -> None:
    work = tmp_path / "deep" / "er"
    work.mkdir(parents=True)
    (work / "s.yaml").write_text("archspec: 1\nname: ../../..\ninput: {shape: [3, 8, 8]}\n"
                                 "layers:\n  - conv1: {op: conv, out: 4, kernel: 3}\n")
    r = archspec(work, "build", "s.yaml")
    assert r.returncode == 0, r.stderr
    assert sorted(files_under(tmp_path)) == sorted(
        ["deep", "deep/er", "deep/er/s.yaml", "deep/er/build", "deep/er/build/model"] +
        [f"deep/er/build/model/{f}" for f in ("model.py", "weights.safetensors",
                                              "summary.json", "graph.svg")])


@pytest.mark.parametrize("value, want", [("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
                                         ("+1+2", "'+1+2"), ("-2+3", "'-2+3"),
                                         ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\\tx"),
                                         ("\rx", "'\\rx"), ("-0.5", "-0.5"), ("-3", "-3"),
                                         ("+1e-3", "+1e-3"), (-2, -2), (1.5, 1.5),
                                         ("wrn-40-1", "wrn-40-1")])
def test_csv_cells_are_neutralised(value, want) -> None:
    assert csv_cell(value) == want


def test_markdown_cells_cannot_break_rows() -> None:
    assert md_cell("a|b\nc\\|d") == "a\\|b<br>c\\\\\\|d"
    assert md_cell("\x1b[2J") == "\\x1b[2J"


def test_grid_results_are_neutralised(tmp_path: Path) -> None:
    """Cell names from a grid's cell_name template reach results.csv/md and the table."""
    (tmp_path / "s.yaml").write_text("archspec: 1\nname: s\nparams:\n  w: {default: 4}\n"
                                     "input: {shape: [3, 8, 8]}\n"
                                     "layers:\n  - conv1: {op: conv, out: w, kernel: 3}\n")
    (tmp_path / "g.yaml").write_text('spec: s.yaml\naxes:\n  w: [2, 4]\n'
                                     'cell_name: "=HYPERLINK(1)|x\\n\\e[2J{w}"\n')
    r = archspec(tmp_path, "grid", "g.yaml", "-o", "out")
    assert r.returncode == 0, r.stderr
    assert not RAW.search(r.stdout + r.stderr)
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "results.csv").read_text())))
    assert [r[:2] for r in rows] == [["cell", "w"], ["'=HYPERLINK(1)|x\\n\\x1b[2J2", "2"],
                                     ["'=HYPERLINK(1)|x\\n\\x1b[2J4", "4"]]
    md = (tmp_path / "out" / "results.md").read_text().splitlines()
    body = [line for line in md if line.startswith("| =HYPERLINK")]
    assert len(body) == 2 and all("\\|x<br>\\x1b[2J" in line for line in body), md


# ------------------------------------------------------------------ temporaries
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_are_swept_live_ones_kept(tmp_path: Path) -> None:
    dead, live = _dead_pid(), os.getpid()
    stale = [f".wrn.svg.tmp-{dead}-abcd1234", f".metrics.csv.tmp-{dead}-zz_99xyq"]
    legacy_old, legacy_new = ".b1.tmp-k2j4h5g6", ".b2.tmp-q1w2e3r4"
    keep = [f".x.svg.tmp-{live}-abcdefgh", legacy_new, "notes.tmp-12345678", ".a.tmp-b"]
    for n in stale + keep + [legacy_old]:
        (tmp_path / n).write_text("half")
    (tmp_path / f".b3.tmp-{dead}-dir00000").mkdir()
    old = time.time() - STALE_NO_PID_S - 10
    os.utime(tmp_path / legacy_old, (old, old))
    gone = sweep(str(tmp_path))
    assert sorted(gone) == sorted(stale + [legacy_old, f".b3.tmp-{dead}-dir00000"])
    assert sorted(os.listdir(tmp_path)) == sorted(keep)


def test_render_sweeps_what_a_killed_render_left(tmp_path: Path) -> None:
    dead = _dead_pid()
    left = tmp_path / f".s.dot.tmp-{dead}-abcd1234"
    left.write_text("half a diagram")
    (tmp_path / "s.yaml").write_text("archspec: 1\nname: s\ninput: {shape: [3, 8, 8]}\n"
                                     "layers:\n  - conv1: {op: conv, out: 4, kernel: 3}\n")
    r = archspec(tmp_path, "render", "s.yaml", "--format", "dot")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["s.dot", "s.yaml"]


@pytest.mark.parametrize("state", ["between_renames", "before_swap", "legacy_old"])
def test_build_killed_in_its_swap_is_recovered(tmp_path: Path, state: str) -> None:
    """A kill between new_dir's renames leaves a complete directory aside; the next build
    (or any write in the folder) puts it back and leaves no leftover."""
    r = archspec(tmp_path, "build", str(ROOT / "tests" / "golden" / "tiny.yaml"), "-o", "b1")
    assert r.returncode == 0, r.stderr
    files = sorted(os.listdir(tmp_path / "b1"))
    if state == "between_renames":      # old moved aside, new not yet in place
        os.rename(tmp_path / "b1", tmp_path / ".b1.swap-old")
        shutil.copytree(tmp_path / ".b1.swap-old", tmp_path / ".b1.swap-new")
    elif state == "before_swap":        # new finished, old still in place
        shutil.copytree(tmp_path / "b1", tmp_path / ".b1.swap-new")
    else:                               # archspec's earlier swap name
        os.rename(tmp_path / "b1", tmp_path / ".b1.old")
    (tmp_path / f".b1.tmp-{_dead_pid()}-qwertyui").mkdir()
    # the previous or the new output is there to read before anything runs again
    from archspec.fsio import recover_dir
    probe = tmp_path / "probe"
    shutil.copytree(tmp_path, probe, ignore=shutil.ignore_patterns("probe"))
    recover_dir(str(probe / "b1"))
    assert sorted(os.listdir(probe / "b1")) == files
    r = archspec(tmp_path, "build", str(ROOT / "tests" / "golden" / "tiny.yaml"), "-o", "b1")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["b1", "probe"]
    assert sorted(os.listdir(tmp_path / "b1")) == files


def test_new_dir_failure_keeps_the_previous_directory(tmp_path: Path) -> None:
    target = tmp_path / "run"
    with new_dir(str(target)) as d:
        write_file(os.path.join(d, "a"), "one")
    with pytest.raises(RuntimeError):
        with new_dir(str(target)) as d:
            write_file(os.path.join(d, "a"), "two")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == ["run"] and (target / "a").read_text() == "one"


def test_hyphenated_layer_names_work_end_to_end(tmp_path: Path) -> None:
    """RegNet-style ``block1-0`` beside ``block1_0`` (both become ``block1_0`` in fx):
    build, emit and render agree, and model.py loads the build's weights strictly."""
    (tmp_path / "s.yaml").write_text(
        "archspec: 1\nname: hy\ninput: {shape: [3, 8, 8]}\nlayers:\n"
        "  - block1-0:\n      seq:\n        - conv-a: {op: conv, out: 4, kernel: 3, padding: 1}\n"
        "        - {op: relu}\n  - block1_0: {op: conv, out: 4, kernel: 3, padding: 1}\n"
        "  - sum-x: {op: add, from: [block1-0, block1_0]}\n  - flat: {op: flatten}\n"
        "  - fc-out: {op: linear, out: 3}\n")
    assert archspec(tmp_path, "build", "s.yaml", "-o", "b").returncode == 0
    r = archspec(tmp_path, "render", "s.yaml", "--format", "dot", "--expand", "block1-0")
    assert r.returncode == 0 and '"block1-0.conv-a"' in (tmp_path / "hy.dot").read_text()
    check = ("import torch, model as m; from safetensors.torch import load_file; "
             "import archspec; w = load_file('b/weights.safetensors'); "
             "a = m.Model().eval(); a.load_state_dict(w, strict=True); "
             "b = archspec.build_module('s.yaml').eval(); b.load_state_dict(w, strict=True); "
             "x = torch.randn(2, 3, 8, 8); print(torch.equal(a(x), b(x)), sorted(w)[:2])")
    shutil.copy(tmp_path / "b" / "model.py", tmp_path / "model.py")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.stdout.strip() == "True ['block1-0.conv-a.bias', 'block1-0.conv-a.weight']", \
        r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("archspec: 1\ninput: {shape: [3, 8, 8]}\nlayers:\n  - -x: {op: relu}\n")
    r = archspec(tmp_path, "check", "bad.yaml")
    assert r.returncode == 2 and r.stderr.startswith("bad.yaml:4:5: error: layer name '-x' is "
                                                     "not valid")


# ------------------------------------------------------------------ torch side
def test_module_attrs_cover_nn_module() -> None:
    """The front end's static tuple names every attribute a submodule would clash with."""
    nn = pytest.importorskip("torch.nn")
    from archspec.torch_backend import ArchModule, Scope, build_module
    names = set(MODULE_ATTRS)
    public = {n for n in dir(nn.Module()) if not n.startswith("_")}
    assert public <= names, sorted(public - names)
    private = {n for n in dir(nn.Module()) if n.startswith("_") and not n.startswith("__")}
    assert private <= names, sorted(private - names)
    assert {n for n in dir(Scope()) if not n.startswith("__")} <= names
    m = build_module(str(ROOT / "tests" / "golden" / "tiny.yaml"))
    assert isinstance(m, ArchModule)
    own = {n for n in vars(m) if n not in vars(nn.Module())} | \
        {n for n in dir(type(m)) if not n.startswith("__")}
    assert own - set(m._modules) <= names | set(dir(nn.Module())), sorted(own - names)


def test_printable_leaves_plain_text_alone() -> None:
    assert printable("wrn-28-10 × 3→4 Größe") == "wrn-28-10 × 3→4 Größe"
    assert printable("a\u202eb\u2066c\x9bd\x7f") == "a\\u202eb\\u2066c\\x9bd\\x7f"
