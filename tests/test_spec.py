"""Stage 1: located YAML and the loader (parameters, lets, checks, extends, include, --set)."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

import archspec
from archspec.errors import (Location, SpecError, SpecErrors, did_you_mean, format_error,
                             register_source)
from archspec.spec.loader import load_spec, parse_override, stdlib_blocks
from archspec.spec.model import REQUIRED, Item, Spec
from archspec.spec.yamlsrc import MAX_NODES, YMap, YScalar, YSeq, parse_yaml, plain

WRN = "specs/wrn.yaml"


def error_of(fn, *args, **kw) -> SpecError:
    with pytest.raises(SpecError) as info:
        fn(*args, **kw)
    return info.value


# ------------------------------------------------------------------ located YAML
def test_every_value_is_located() -> None:
    root = parse_yaml("a:\n  b: [1, 'x']\n  c: {d: true}\n", "f.yaml")
    assert isinstance(root, YMap) and root.key_loc("a") == Location("f.yaml", 1, 1)
    b = root.get("a").get("b")
    assert isinstance(b, YSeq) and b.loc == Location("f.yaml", 2, 6)
    x = b.items[1]
    assert isinstance(x, YScalar) and x.value == "x" and x.quoted and x.loc.col == 10
    assert x.expr_loc(0).col == 11      # inside the quotes
    assert plain(root) == {"a": {"b": [1, "x"], "c": {"d": True}}}


@pytest.mark.parametrize("text, message", [
    ("a: !!python/object/apply:os.system ['true']", "YAML tag '!!python/object/apply:os.system'"),
    ("a: !!python/name:os.system", "YAML tag '!!python/name:os.system'"),
    ("a: !custom 1", "YAML tag '!custom'"),
    ("a: 1\na: 2", "duplicate key 'a'"),
    ("b: &x {c: 1}\na: {<<: *x}", "merge keys"),
    ("? [1]\n: 2", "mapping keys must be plain names"),
    ("a: [1", "malformed YAML"),
    ("a: 1\n---\nb: 2", "expected a single document"),
    ("", "the file is empty"),
    ("a: " + "[" * 3000 + "]" * 3000, "nests more than 100 lists and mappings deep"),
    ("layers: &a [{op: relu}, *a]", "this value contains itself through a YAML alias"),
])
def test_yaml_refusals(text: str, message: str) -> None:
    e = error_of(parse_yaml, text, "f.yaml")
    assert message in e.message
    assert e.loc.path == "f.yaml" and e.loc.line >= 1


DEEP = {   # text -> where the 101st level starts
    "flow": ("a: " + "[" * 3000 + "]" * 3000, (1, 103)),
    "just past": ("a: " + "[" * 100 + "]" * 100, (1, 103)),
    "block": ("".join(" " * i + "- \n" for i in range(0, 2400, 2)), (101, 201)),
    "mapping": ("".join(" " * i + "k:\n" for i in range(0, 400, 2)) + " " * 400 + "v", (101, 201)),
}


@pytest.mark.parametrize("loader", ["CSafeLoader", "SafeLoader"])
@pytest.mark.parametrize("case", DEEP)
def test_nesting_limit_is_archspecs_own(monkeypatch: pytest.MonkeyPatch, loader: str,
                                        case: str) -> None:
    """The limit, its message and its location come from archspec, not from PyYAML.

    libyaml refuses 1,000 levels since PyYAML 6.0.4 and never did before; pure-Python
    PyYAML runs out of stack. Both loaders give archspec's error at the 101st level.
    """
    import yaml
    from archspec.spec import yamlsrc
    if not hasattr(yaml, loader):
        pytest.skip(f"this PyYAML has no {loader}")
    monkeypatch.setattr(yamlsrc, "_Loader", getattr(yaml, loader))
    text, (line, col) = DEEP[case]
    e = error_of(parse_yaml, text, "f.yaml")
    assert e.message == "the document nests more than 100 lists and mappings deep"
    assert (e.loc.line, e.loc.col) == (line, col)
    parse_yaml("a: " + "[" * 99 + "]" * 99, "f.yaml")     # 100 levels: allowed


def test_nesting_error_wins_over_a_yaml_libraries_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loader that refuses deep documents itself (as libyaml 0.2.5 in PyYAML 6.0.4
    does, with 'exceeded maximum nesting depth') never decides the message."""
    import yaml
    from archspec.spec import yamlsrc

    class Strict(yaml.SafeLoader):
        def compose_document(self):  # type: ignore[no-untyped-def]
            raise yaml.MarkedYAMLError("while parsing", self.get_mark(),
                                       "exceeded maximum nesting depth", self.get_mark())
    monkeypatch.setattr(yamlsrc, "_Loader", Strict)
    e = error_of(parse_yaml, DEEP["flow"][0], "f.yaml")
    assert "nests more than 100" in e.message and (e.loc.line, e.loc.col) == (1, 103)
    e = error_of(parse_yaml, "a: [1, 2]", "f.yaml")   # not deep: the loader's own error
    assert "exceeded maximum nesting depth" in e.message


def test_alias_bomb_is_measured_not_expanded() -> None:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i, n in enumerate("bcdefghijklmnop"):
        prev = "abcdefghijklmnop"[i]
        lines.append(f"{n}: &{n} [" + ", ".join([f"*{prev}"] * 10) + "]")
    e = error_of(parse_yaml, "\n".join(lines), "bomb.yaml")   # 10**16 values if expanded
    assert f"more than the {MAX_NODES:,} allowed" in e.message
    assert e.loc.line == 6   # the first anchor past the limit: 10**6 values


def test_small_aliases_are_fine() -> None:
    root = parse_yaml("a: &x [1, 2]\nb: *x\n", "f.yaml")
    assert plain(root) == {"a": [1, 2], "b": [1, 2]}


# ---------------------------------------------------------------------- errors
def test_error_line_and_caret(tmp_path: Path) -> None:
    p = tmp_path / "x.yaml"
    p.write_text("a: 1\nbb: oops\n", encoding="utf-8")
    e = SpecError("bad value", Location(str(p), 2, 5), "try again")
    # format_error never opens a file itself: only a text a loader registered is shown
    assert format_error(e) == f"{p}:2:5: error: bad value; try again"
    register_source(str(p), p.read_text(encoding="utf-8"))
    assert format_error(e).splitlines() == [f"{p}:2:5: error: bad value; try again",
                                            "    bb: oops", "        ^"]
    assert format_error(SpecError("m", Location("--set k=1"))) == "--set k=1: error: m"


def test_errors_sort_and_flatten() -> None:
    a = SpecError("a", Location("f", 3, 1))
    b = SpecError("b", Location("f", 1, 2))
    both = SpecErrors([a, SpecErrors([b])])
    assert [e.message for e in both.errors] == ["b", "a"]
    assert str(both).splitlines() == ["f:1:2: error: b", "f:3:1: error: a"]


def test_did_you_mean() -> None:
    assert did_you_mean("relu6x", ["relu6", "relu"]) == "did you mean 'relu6'?"
    assert did_you_mean("zzz", ["relu"]) is None


# ----------------------------------------------------------------------- loader
def test_wrn_loads_into_frozen_dataclasses() -> None:
    spec = load_spec(WRN)
    assert isinstance(spec, Spec) and spec.name == "wrn"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "x"  # type: ignore[misc]
    values = spec.values
    assert values["d"] == 28 and values["k"] == 10 and values["n"] == 4
    assert str(values["block"]) == "B(3,3)" and values["M"] == [3, 3]
    assert values["widths"] == [160, 320, 640]
    params = {p.name: p for p in spec.params}
    assert params["count"].choices == ("convs", "blocks")
    assert params["dropout"].type == "float" and params["block"].type == "block"
    assert params["k"].doc.startswith("widening factor")
    assert spec.init == "wrn" and spec.input_name == "input"


def test_no_raw_dicts_leave_the_loader() -> None:
    spec = load_spec(WRN)

    def walk(v: object) -> None:
        assert not isinstance(v, dict), v
        if dataclasses.is_dataclass(v):
            for f in dataclasses.fields(v):
                if f.name not in ("key_locs",):
                    walk(getattr(v, f.name))
        elif isinstance(v, (tuple, list)):
            for x in v:
                walk(x)
    for item in spec.items:
        walk(item)
    for _, b in spec.blocks:
        walk(b.items)


def test_extends_overrides_parameters() -> None:
    spec = load_spec("specs/wrn-28-10.yaml")
    assert spec.name == "wrn-28-10" and spec.values["k"] == 10
    assert dict(spec.sources).keys() == {"specs/wrn-28-10.yaml", "specs/wrn.yaml"}


@pytest.mark.parametrize("overrides", [{"d": 40, "k": 4}, ["d=40", "k=4"]])
def test_overrides(overrides: object) -> None:
    spec = load_spec(WRN, overrides)
    assert spec.values["n"] == 6 and spec.values["widths"] == [64, 128, 256]
    assert dict(spec.overrides) == {"d": 40, "k": 4}


def test_override_values_are_typed() -> None:
    spec = load_spec(WRN, ["dropout=0", "block=B(1,3,1)", "d=22"])
    assert spec.values["dropout"] == 0.0 and isinstance(spec.values["dropout"], float)
    assert spec.values["M"] == [1, 3, 1]
    assert parse_override("M=[3, 3]")[:2] == ("M", [3, 3])
    assert parse_override("name=a=b")[:2] == ("name", "a=b")


@pytest.mark.parametrize("override, message", [
    ("kk=3", "unknown parameter 'kk'"),
    ("k=x", "parameter 'k' must be an integer, got 'x'"),
    ("k=2.5", "parameter 'k' must be an integer, got 2.5"),
    ("count=blockz", "must be one of convs, blocks"),
    ("k", "is not of the form key=value"),
])
def test_bad_overrides(override: str, message: str) -> None:
    e = error_of(load_spec, WRN, [override])
    assert message in e.message and e.loc.path == f"--set {override}" and e.loc.line == 0


def test_check_message_reads_like_the_paper() -> None:
    e = error_of(load_spec, WRN, {"d": 27})
    assert [x.message for x in e.errors] == ["depth should be 6n+4, got 27"]
    assert e.loc.path == WRN and "try d = 22 or 28" in e.hint
    e = error_of(load_spec, WRN, {"d": 27, "count": "blocks"})
    assert e.message == "depth should be 6n+4, got 27"


def test_paper_counting_of_depth() -> None:
    # Table 2 of the WRN paper counts d = 6n + 4 whatever the block length
    spec = load_spec(WRN, {"block": "B(1,3,1)", "count": "blocks", "d": 16})
    assert spec.values["n"] == 2
    e = error_of(load_spec, WRN, {"block": "B(1,3,1)", "d": 16})
    assert e.message == "depth should be 9n+4, got 16"


def test_default_check_hint_shows_the_values(spec_file) -> None:
    p = spec_file("""
        params: {w: 3}
        checks:
          - check: w % 2 == 0
        input: {shape: [3, 8, 8]}
        layers: [{op: relu}]
    """)
    e = error_of(load_spec, p)
    assert e.message == "check failed: w % 2 == 0" and e.hint == "with w = 3"
    assert (e.loc.line, e.loc.col) == (3, 12)


def test_include_and_tables(spec_file) -> None:
    spec_file("""
        blocks:
          twice:
            params: {w: int}
            layers:
              - {op: conv, out: w, kernel: 3, padding: 1}
              - {op: conv, out: w, kernel: 3, padding: 1}
    """, "lib.yaml")
    p = spec_file("""
        include: lib.yaml
        tables:
          widths:
            columns: [w]
            headers: ["#width"]
            rows: {small: [8], big: [32]}
        input: {shape: [3, 8, 8]}
        layers:
          - a: {block: twice, row: widths.small}
          - b: {block: twice, row: widths.big}
    """)
    spec = load_spec(p)
    assert spec.block("twice").params[0].default is REQUIRED
    t = spec.table("widths")
    assert t.columns == ("w",) and t.headers == ("#width",) and [r for r, _, _ in t.rows] == \
        ["small", "big"]
    g = archspec.compile_graph(spec)
    assert g.nodes["b.conv_1"]["shape"] == (32, 8, 8)


def test_several_loader_errors_are_all_reported(spec_file) -> None:
    p = spec_file("""
        params: {k: 1}
        input: {shape: [3, 8, 8]}
        init: kaimin
        layers:
          - {op: relu, kernel: 3}
          - {op: reluu}
          - x: {bloc: B}
        outputs:
          - out: {from: x, weight: 1}
    """)
    e = error_of(load_spec, p)
    assert [(x.loc.line, x.message.split(" '")[0]) for x in e.errors] == [
        (3, "unknown init scheme"), (5, "unknown argument"), (6, "unknown op"),
        (7, "a layer needs one of"), (9, "unknown key")]
    assert "did you mean 'block'?" in e.errors[3].hint


@pytest.mark.parametrize("text, message", [
    ("params: {2x: 1}\ninput: {shape: [3]}\nlayers: []", "parameter '2x' is not a valid name"),
    ("params: {input: 1}\ninput: {shape: [3]}\nlayers: []", "'input' is reserved"),
    ("params: {w: {type: int}}\ninput: {shape: [3]}\nlayers: []", "parameter 'w' needs a default"),
    ("params: {w: {default: 1, type: integer}}\ninput: {shape: [3]}\nlayers: []",
     "unknown parameter type 'integer'"),
    ("layers: []", "the spec has no 'input'"),
    ("input: {shape: [3, 8]}\nlayers: []", "input shape must be [C, H, W] or [features]"),
    ("archspec: 2\ninput: {shape: [3]}\nlayers: []", "unsupported spec version 2"),
    ("input: {shape: [3]}", "the spec has no 'layers'"),
    ("input: {shape: [3]}\nlayers: [relu]", "a layer must be a mapping, got the string 'relu'"),
    ("input: {shape: [3]}\nlayers: [{op: relu, block: B}]", "cannot have both 'op:' and 'block:'"),
    ("input: {shape: [3]}\nlayers: [{op: relu, repeat: 2}]", "'repeat' applies to blocks"),
    ("input: {shape: [3]}\nlayers: [{for: i, in: [1]}]", "a for loop needs 'in:' and 'layers:'"),
    ("input: {shape: [3]}\nlayers: [{op: relu, train_only: 1}]", "'train_only' must be true"),
    ("input: {shape: [3]}\nlayers: [{op: relu}]\noutputs: [{o: {from: x, loss_weight: -1}}]",
     "'loss_weight' must be a non-negative number"),
    ("extends: self.yaml", "'extends' forms a cycle"),
    ("include: nothere.yaml\ninput: {shape: [3]}\nlayers: []", "no such spec file"),
])
def test_loader_refusals(spec_file, text: str, message: str) -> None:
    p = spec_file(text, "self.yaml")
    e = error_of(load_spec, p)
    assert any(message in x.message for x in e.errors), [x.message for x in e.errors]
    assert all(x.loc.line >= 1 for x in e.errors)


def test_stdlib_blocks() -> None:
    blocks = stdlib_blocks()
    assert {"B", "basic", "bottleneck"} <= set(blocks)
    b = blocks["B"]
    assert b.varargs == "M" and [p.name for p in b.params][:2] == ["M", "out"]
    assert blocks["bottleneck"].doc.startswith("ResNet Bottleneck")


def test_items_are_typed() -> None:
    spec = load_spec(WRN)
    kinds = [i.kind for i in spec.items]
    assert kinds == ["op", "for", "op", "op", "op", "op", "op"]
    loop = spec.items[1]
    assert isinstance(loop, Item) and loop.loop_var == "g" and loop.seq[0].kind == "block"
    assert loop.seq[0].key_loc("dropout").line == loop.seq[0].loc.line


# ------------------------------------------------------------------- the docs
DOC = Path(__file__).resolve().parent.parent / "docs" / "spec-language.md"


def doc_examples() -> list[tuple[int, str]]:
    """The ```yaml blocks of docs/spec-language.md that are whole specs (have layers)."""
    out, lines = [], DOC.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```yaml":
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            text = "\n".join(lines[i + 1:j]) + "\n"
            if "layers:" in text or "extends:" in text:
                out.append((i + 2, text))
            i = j
        i += 1
    return out


def test_doc_examples(tmp_path: Path) -> None:
    """Every complete example of the language reference compiles, or fails as it says."""
    import shutil
    examples = doc_examples()
    assert len(examples) >= 15
    specs = tmp_path / "specs"
    shutil.copytree(DOC.parent.parent / "specs", specs)
    work = tmp_path / "docs"
    work.mkdir()
    for line, text in examples:
        first = text.splitlines()[0]
        name = first[len("# file: "):] if first.startswith("# file: ") else f"line{line}.yaml"
        p = work / name
        p.write_text(text, encoding="utf-8")
        if first.startswith("# error: "):
            e = error_of(lambda: archspec.compile_graph(load_spec(p)))
            assert first[len("# error: "):] in str(e), (line, str(e))
        else:
            try:
                g = archspec.compile_graph(load_spec(p))
            except SpecError as e:
                raise AssertionError(f"docs/spec-language.md:{line}: {e}") from None
            check_doc_claims(g, text, line)


def check_doc_claims(g, text: str, line: int) -> None:
    """An example's ``# names:`` (the layers it builds, in order) and ``# shape:`` (its
    output's) header lines, so the behaviour the prose states is what the compiler does."""
    for head in text.splitlines():
        if not head.startswith("#"):
            break
        if head.startswith("# names: "):
            built = [n for n in g.nodes if g.nodes[n]["op"] != "input"]
            assert built == head[len("# names: "):].split(), (line, built)
        if head.startswith("# shape: "):
            last = [n for n in g.nodes][-1]
            want = tuple(int(v) for v in head[len("# shape: "):].split(","))
            assert tuple(g.nodes[last]["shape"]) == want, (line, g.nodes[last]["shape"])


def test_doc_first_spec_figures(tmp_path: Path) -> None:
    from archspec.shapes import human, summarize
    _, text = doc_examples()[0]
    p = tmp_path / "first.yaml"
    p.write_text(text, encoding="utf-8")
    s = summarize(archspec.compile_graph(load_spec(p)))
    line = f"first.yaml: ok ({s.ops} ops, {s.params:,} params, {human(s.macs, 'MACs')})"
    assert line in DOC.read_text(encoding="utf-8")


def test_doc_op_table_is_generated_from_ops() -> None:
    from archspec.ops import DOC_BEGIN, DOC_END, OPS, op_table_markdown
    text = DOC.read_text(encoding="utf-8")
    table = text.split(DOC_BEGIN, 1)[1].split(DOC_END, 1)[0].strip()
    assert table == op_table_markdown(), \
        "regenerate: " + DOC_BEGIN.split("generated by ", 1)[1].rstrip(" ->")
    for name, op in OPS.items():
        assert f"| `{name}` |" in table
        for f in op.fields:
            assert f"`{f.name}` (" in table.split(f"| `{name}` |", 1)[1].split("\n", 1)[0]


def test_doc_lists_every_key_of_the_language() -> None:
    from archspec.spec.loader import BLOCK_KEYS, KIND_KEYS, META_KEYS, PARAM_TYPES, TOP_KEYS
    text = DOC.read_text(encoding="utf-8")
    for key in TOP_KEYS + BLOCK_KEYS + META_KEYS + KIND_KEYS + PARAM_TYPES:
        assert f"`{key}" in text, key


def test_partial_load_keeps_checking_the_rest(spec_file) -> None:
    p = spec_file("""
        input: {shape: [3, 8, 8]}
        layers:
          - a: {op: conv, out: 4, kernel: 3, padding: 1}
          - b: {op: rleu}
          - c: {op: relu, from: b}
          - join: {op: add, from: [a, input]}
    """)
    e = error_of(load_spec, p)                       # the API default: stop at the loader
    assert [x.message for x in e.errors] == ["unknown op 'rleu'"]
    spec = load_spec(p, partial=True)
    assert [i.kind for i in spec.items] == ["op", "failed", "op", "op"]
    assert spec.items[1].name.value == "b" and len(spec.errors) == 1
    e = error_of(archspec.compile_graph, spec)
    assert [x.loc.line for x in e.errors] == [4, 6]
    assert e.errors[1].message.startswith("join: add needs equal shapes")


def test_extends_keeps_parameter_declarations(spec_file) -> None:
    spec_file("""
        params:
          k: {default: 10, type: int, doc: widening factor}
          act: {default: relu, choices: [relu, gelu], doc: activation}
        input: {shape: [3, 8, 8]}
        layers: [{op: conv, out: k, kernel: 3}]
    """, "base.yaml")
    p = spec_file("""
        extends: base.yaml
        params:
          k: 4
          act: {default: gelu}
    """, "child.yaml")
    params = {x.name: x for x in load_spec(p).params}
    assert (params["k"].default, params["k"].type, params["k"].doc) == (4, "int", "widening factor")
    assert params["act"].default == "gelu" and params["act"].choices == ("relu", "gelu")
    bad = spec_file("extends: base.yaml\nparams: {k: 2.5, act: silu}\n", "bad.yaml")
    e = error_of(load_spec, bad)
    assert e.message == "parameter 'k' must be an integer, got 2.5"
    assert (e.loc.path, e.loc.line) == (str(bad), 2)
    e = error_of(load_spec, spec_file("extends: base.yaml\nparams: {act: silu}\n", "c.yaml"))
    assert e.message == "parameter 'act' must be one of relu, gelu, got 'silu'"


# ------------------------------------------------------------------ the README
README = DOC.parent.parent / "README.md"


def _fenced(text: str, lang: str) -> list[str]:
    """The bodies of the ```lang blocks of a markdown text."""
    out, block = [], None
    for line in text.splitlines():
        if block is None and line.strip() == f"```{lang}":
            block = []
        elif block is not None and line.strip() == "```":
            out.append("\n".join(block) + "\n")
            block = None
        elif block is not None:
            block.append(line)
    return out


def test_readme_abridged_wrn_is_specs_wrn(tmp_path: Path) -> None:
    """The README's abridged wrn.yaml builds the same network and fails d = 27 the same way."""
    from archspec.shapes import summarize
    text = next(b for b in _fenced(README.read_text(encoding="utf-8"), "yaml")
                if b.startswith("# specs/wrn.yaml (abridged"))
    p = tmp_path / "wrn.yaml"
    p.write_text(text, encoding="utf-8")
    real = Path(WRN).read_text(encoding="utf-8").splitlines()
    for line in text.splitlines():   # the checks and layers are quoted, not paraphrased
        if line.lstrip().startswith(("- check:", "message:", "hint:", "- \"layer", "first:")):
            assert line in real, line
    for overrides in (None, {"d": 40, "k": 4}, {"block": "B(1,3,1)", "d": 22}, {"l": 4, "d": 16}):
        a, b = (archspec.compile_graph(load_spec(x, overrides)) for x in (p, WRN))
        assert list(a.nodes) == list(b.nodes)
        sa, sb = summarize(a), summarize(b)
        assert (sa.params, sa.macs) == (sb.params, sb.macs)
    ea, eb = (error_of(load_spec, x, {"d": 27}) for x in (p, WRN))
    assert (ea.message, ea.hint) == (eb.message, eb.hint)


def _transcripts(text: str) -> list[tuple[list[str], str]]:
    """``$ archspec …`` commands of the ```sh blocks that show their output, with it."""
    import shlex
    out = []
    for block in _fenced(text, "sh"):
        cmd, lines = None, []
        for line in block.splitlines() + ["$ end"]:
            if line.startswith("$ "):
                if cmd is not None and lines:
                    out.append((cmd, "\n".join(lines) + "\n"))
                cmd, lines = shlex.split(line[2:])[1:], []
            elif cmd is not None:
                lines.append(line)
    return out


def test_readme_transcripts_are_real_output(capsys) -> None:
    """Every ``$ archspec check|summary`` in the README prints exactly what the README shows."""
    from archspec.cli import main
    runs = _transcripts(README.read_text(encoding="utf-8"))
    assert len(runs) >= 2
    for args, expected in runs:
        assert args[0] in ("check", "summary"), args   # the front end: no torch here
        main(args)
        got = capsys.readouterr()
        assert got.out + got.err == expected, " ".join(args)


@pytest.mark.parametrize("name", ["ir.md", "spec-language.md", "summary-json.md"])
def test_docs_python_examples_run(name: str) -> None:
    """The ``>>>`` examples of the front end's docs (the README's run as a doctest file)."""
    import doctest
    for block in _fenced((DOC.parent / name).read_text(encoding="utf-8"), "python"):
        if ">>> " not in block:
            continue
        test = doctest.DocTestParser().get_doctest(block, {}, name, name, 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test)
        assert runner.summarize(verbose=False).failed == 0, name


def test_doc_check_transcript_is_real_output(tmp_path: Path, capsys) -> None:
    """The spec-language page's `s.yaml` error, with its caret, is what check prints."""
    from archspec.cli import main
    text = DOC.read_text(encoding="utf-8")
    example = next(t for _, t in doc_examples() if "hint: \"try d =" in t)
    shown = text.split(example, 1)[1].split("```\n", 2)[2].split("```", 1)[0]
    (tmp_path / "s.yaml").write_text(example, encoding="utf-8")
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert main(["check", "s.yaml"]) == 2
    finally:
        os.chdir(cwd)
    assert capsys.readouterr().err == shown


# -------------------------------------------------------------- fuzzed input
def _fuzz_inputs(tmp: Path) -> list[tuple[str, list[str]]]:
    """(path, --set values) pairs that are all user errors of some kind."""
    files = {
        "empty.yaml": b"",
        "binary.yaml": bytes(range(256)) * 4,
        "latin1.yaml": "input: [3, 32, 32]\nlayers: [{op: flatten}]\n# caf\xe9\n".encode("latin-1"),
        "nul.yaml": b"input: [3, 32, 32]\x00\n",
        "list.yaml": b"- a\n- b\n",
        "scalar.yaml": b"42\n",
        "deep.yaml": b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n",
        "huge_int.yaml": b"params: {d: " + b"9" * 5000 + b"}\ninput: [3, d, d]\n"
                         b"layers: [{op: flatten}]\n",
        "huge_size.yaml": b"input: [3, 32, 32]\nlayers:\n"
                          b"  - {op: conv, kernel: 1, out: \"(10**64)**4\"}\n",
        "huge_input.yaml": b"input: [3, \"2**70\", 8]\nlayers: [{op: flatten}]\n",
        "mul_chain.yaml": ("input: [3, 32, 32]\nlayers:\n  - {op: conv, kernel: 1, out: \""
                           + "*".join(["10**60"] * 80) + "\"}\n").encode(),
        "str_bomb.yaml": b"input: [3, 32, 32]\nlayers:\n  - {op: conv, kernel: 1, "
                         b"out: \"len(str([[1]*100000]*100000))\"}\n",
        "nan.yaml": b"input: [3, 32, 32]\nlayers:\n  - {op: batchnorm, eps: .nan}\n",
        "unicode.yaml": "name: r\u00e9seau\ninput: [3, 32, 32]\nlayers:\n"
                        "  - \u00fc: {op: c\u00f6nv}\n".encode(),
        "two_docs.yaml": b"a: 1\n---\nb: 2\n",
    }
    out = []
    for name, data in files.items():
        (tmp / name).write_bytes(data)
        out.append((str(tmp / name), []))
    (tmp / "a_directory").mkdir()
    out += [(str(tmp / "a_directory"), []), (str(tmp / "does_not_exist.yaml"), [])]
    for value in ["d", "=3", "d=", "d=[", "d={a: 1}", "d=1e400", "d=" + "9" * 5000, "k=1.5",
                  "k=!!python/object/apply:os.system [true]", "dropout=.nan", "dropout=.inf",
                  "block=B(", "block=nosuch", "block=B()", "block=basic", "l=-1", "l=10**9",
                  "count=\udcff", "zz=1"]:
        out.append((WRN, ["--set", value]))
    return out


def test_cli_never_tracebacks_on_bad_input(tmp_path: Path, capsys) -> None:
    """Bad files and --set garbage are each one located error and exit 2, never a traceback."""
    from archspec.cli import main
    for path, extra in _fuzz_inputs(tmp_path):
        for cmd in (["check"], ["summary", "--format", "json"]):
            rc = main([*cmd, path, *extra])   # an exception here fails the test
            got = capsys.readouterr()
            assert rc == 2, (path, extra, got.out[-300:])
            first = got.err.splitlines()[0]
            assert ": error: " in first and len(first) < 1200, (path, extra, first[:300])


def test_choice_field_takes_its_words_literally(compile_text) -> None:
    """A ``choice`` field (drop_path's mode) reads ``batch`` as the word, not a name; a
    word it does not list is an error at that field."""
    from archspec.errors import SpecError
    head = "archspec: 1\nname: s\ninput: {shape: [4, 6, 6]}\nlayers:\n"
    g = compile_text(head + "  - d: {op: drop_path, p: 0.2, mode: batch}\n")
    assert g.nodes["d"]["args"]["mode"] == "batch"
    with pytest.raises(SpecError) as info:
        compile_text(head + "  - d: {op: drop_path, p: 0.2, mode: col}\n")
    # an unlisted bare word that names nothing is told the words, not "undefined name"
    assert "'mode' must be one of row, batch, got 'col'" in str(info.value)
    env_head = "archspec: 1\nname: s\nparams: {m: {default: batch}}\ninput: {shape: [4, 6, 6]}\nlayers:\n"
    g = compile_text(env_head + "  - d: {op: drop_path, p: 0.2, mode: m}\n")
    assert g.nodes["d"]["args"]["mode"] == "batch"   # a name in scope is still read as one
    assert ":5:" in str(info.value)


def test_block_choice_words_and_keyword_named_layers(compile_text) -> None:
    """A block parameter's string choice is read as a word; a layer may be named
    ``block`` when its body is a layer (torchvision's MBConv.block)."""
    g = compile_text("""
        input: {shape: [8, 8, 8]}
        blocks:
          unit:
            params:
              act: {default: relu, choices: [relu, silu]}
            layers:
              - block:
                  seq:
                    - {op: conv, out: 8, kernel: 1}
                    - {op: relu, when: act == 'relu'}
                    - {op: silu, when: act == 'silu'}
              - {op: add, from: [block, input]}
        layers:
          - u: {block: unit, act: silu}
          - v: {block: unit}
    """)
    assert g.nodes["u.block.1"]["op"] == "silu"
    assert g.nodes["v.block.1"]["op"] == "relu"
    assert list(g.nodes["u.add"]["inputs"]) == ["u.block.1", "input"]


# ------------------------------------------------------ values: YAML 1.2 scalars, words
def test_yaml_12_core_scalars() -> None:
    """1e-6, 1E6 and .5 are numbers, 010 is ten, and only true/false are booleans."""
    doc = "a: [1e-6, 1E6, .5, -2.5e+3, 010, 0x1F, 0o17, yes, no, on, off, True, false, 1:30]"
    assert plain(parse_yaml(doc, "f.yaml"))["a"] == [
        1e-6, 1e6, 0.5, -2500.0, 10, 31, 15, "yes", "no", "on", "off", True, False, "1:30"]


def test_numbers_are_numbers_everywhere(compile_text) -> None:
    g = compile_text("""
        archspec: 1
        params: {eps: 1e-6, w: 1E1}
        let: {half: "w * .5"}
        input: {shape: [3, 8, 8]}
        blocks:
          CB:
            params: {out: int}
            layers:
              - conv: {op: conv, out: out, kernel: 3}
              - bn: {op: batchnorm, eps: eps, momentum: 1e-2}
        layers:
          - c: {block: CB, out: "int(half)"}
        """)
    bn = g.nodes["c.bn"]
    assert bn["args"]["eps"] == 1e-6 and bn["args"]["momentum"] == 0.01
    assert g.nodes["c.conv"]["shape"][0] == 5


def test_override_reads_yaml_12() -> None:
    assert parse_override("eps=1e-6")[1] == 1e-6
    assert parse_override("pre=no")[1] == "no"


def test_recipe_set_reads_yaml_12_like_set() -> None:
    """--recipe-set went through PyYAML's 1.1 reader: 5e-4 was a string, `no` was False."""
    from archspec.train.recipe import load_recipe
    r = load_recipe("wrn", ["optimizer.weight_decay=5e-4", "optimizer.lr=1E-1"])
    assert (r.optimizer.weight_decay, r.optimizer.lr) == (5e-4, 0.1)
    with pytest.raises(SpecError) as e:
        load_recipe("wrn", ["optimizer.nesterov=no"])
    assert str(e.value) == ("--recipe-set optimizer.nesterov=no: error: "
                            "'optimizer.nesterov' must be true or false, got 'no'")


def test_plain_words_for_string_and_bool(compile_text) -> None:
    """A str-typed block parameter takes a bare word; a name in scope is still a name."""
    text = """
        archspec: 1
        params: {mine: relu}
        input: {shape: [3, 8, 8]}
        blocks:
          A:
            params: {act: {default: relu, type: str}, pre: {default: true, type: bool}}
            layers:
              - r: {op: relu, when: "act == 'relu'"}
              - s: {op: sigmoid, when: "act == 'hs'"}
        layers:
          - a: {block: A, act: hs}
          - b: {block: A, act: mine}
        """
    g = compile_text(text)
    assert "a.s" in g and "a.r" not in g and "b.r" in g
    e = error_of(compile_text, text.replace("act: mine}", "act: mine, pre: \"no\"}"))
    assert e.errors[0].message == "parameter 'pre' must be true or false, got 'no'"


# ----------------------------------------------------------------- user functions
FUNCS = """
    archspec: 1
    params: {width_mult: 0.75}
    functions:
      make_divisible:
        args: [v, divisor=8, min_value=null]
        let:
          m: "divisor if min_value is None else min_value"
          n: "max(m, int(v + divisor / 2.0) // divisor * divisor)"
        body: "n + divisor if n < 0.9 * v else n"
      fact: {args: [n], body: "1 if n < 2 else n * fact(n - 1)"}
    let: {stem: "make_divisible(16 * width_mult)", f5: "fact(5)"}
    input: {shape: [3, 8, 8]}
    blocks:
      CB:
        params: {out: int}
        layers:
          - conv: {op: conv, out: "make_divisible(out * width_mult, min_value=16)", kernel: 1}
    layers:
      - stem: {op: conv, out: stem, kernel: 3}
      - b: {block: CB, out: "f5 // 3"}
      - c: {op: conv, out: "make_divisible(3)", kernel: 1}
    """


def test_functions_in_let_blocks_and_layers(compile_text) -> None:
    g = compile_text(FUNCS)
    assert [g.nodes[n]["shape"][0] for n in ("stem", "b.conv", "c")] == [16, 32, 8]


@pytest.mark.parametrize("old, new, message", [
    ("fact: {args: [n]", "min: {args: [n]", "function 'min' shadows the built-in function min()"),
    ("fact: {args: [n]", "width_mult: {args: [n]",
     "function 'width_mult' has the name of a parameter or let value"),
    ("args: [n]", "args: [k=1, n]", "function 'fact': argument 'n' without a default follows"),
    ("args: [n]", "args: [n, n]", "function 'fact': argument 'n' is given twice"),
    ("args: [n]", "args: [\"n-1\"]", "function 'fact': argument 'n-1' is not 'name' or"),
    ("divisor=8", "divisor=width_mult", "undefined name 'width_mult'"),
    ('body: "1 if', 'bodi: "1 if', "unknown key 'bodi' in function 'fact'"),
    ("fact(5)", "fact(5, 6)", "fact() takes 1 argument(s), got 2"),
])
def test_function_errors(compile_text, old: str, new: str, message: str) -> None:
    e = error_of(compile_text, FUNCS.replace(old, new, 1))
    assert e.errors[0].message.startswith(message), e.errors[0].message


def test_repeat_index_and_count_and_spec_let_in_blocks(compile_text) -> None:
    g = compile_text("""
        archspec: 1
        params: {index: 5}
        let: {base: "index * 2"}
        input: {shape: [3, 8, 8]}
        blocks:
          DP:
            params: {p: float, w: int}
            layers:
              - conv: {op: conv, out: "w + base - 10", kernel: 1}
              - drop: {op: dropout, p: p}
        layers:
          - s: {block: DP, repeat: 3, p: "0.2 * index / (count - 1)", w: base}
          - t: {block: "DP(p=0.1 * index, w=4 + index)", repeat: 2}
          - u: {seq: [{c: {op: conv, out: "8 * (index + count)", kernel: 1}}], repeat: 2}
          - v: {op: conv, out: index, kernel: 1}
        """)
    assert [g.nodes[f"s.{j}.drop"]["args"]["p"] for j in range(3)] == [0.0, 0.1, 0.2]
    assert [g.nodes[f"t.{j}.conv"]["shape"][0] for j in range(2)] == [4, 5]
    assert [g.nodes[f"u.{j}.c"]["shape"][0] for j in range(2)] == [16, 24]
    assert g.nodes["v"]["shape"][0] == 5 and g.nodes["s.0.conv"]["shape"][0] == 10


def test_loss_weight_is_an_expression(spec_file) -> None:
    text = """
        params: {aux: 0.25}
        functions: {half: {args: [x], body: "x / 2.0"}}
        input: {shape: [8]}
        layers:
          - fc: {op: linear, out: 10}
        outputs:
          - logits: {from: fc, loss_weight: "half(1.0 - aux)"}
        """
    assert load_spec(spec_file(text)).outputs[0].loss_weight == 0.375
    e = error_of(load_spec, spec_file(text.replace("half(1.0 - aux)", "1 - aux_w")))
    assert e.errors[0].message == "undefined name 'aux_w'"
    assert (e.errors[0].loc.line, e.errors[0].loc.col) == (7, 42)


def test_loop_over_table_rows_and_columns(compile_text) -> None:
    text = """
        input: {shape: [8, 16, 16]}
        tables:
          stages:
            columns: [out, stride]
            rows: {a: [16, 1], b: [32, 2], c: [64, 2]}
        blocks:
          cb:
            params: {out: int, stride: int}
            layers:
              - conv: {op: conv, out: out, kernel: 3, stride: stride, padding: 1}
        layers:
          - f: {seq: [{for: r, in: rows(stages), layers: [{block: cb, row: "stages.{r}"}]}]}
          - for: c
            in: columns(stages)
            layers: [{"id_{c}": {op: identity}}]
        """
    g = compile_text(text)
    assert [g.nodes[f"f.{j}.conv"]["shape"] for j in range(3)] == [
        (16, 16, 16), (32, 8, 8), (64, 4, 4)]
    assert "id_out" in g and "id_stride" in g
    e = error_of(compile_text, text.replace("rows(stages)", "rows(3)"))
    assert e.errors[0].message == "rows(): rows() takes a table, got int 3"
    e = error_of(compile_text, text.replace('"stages.{r}"', '"stages.{r}x"'))
    # one error for the loop's three iterations (their messages differ: shown for the first)
    assert e.errors[0].message == ("table 'stages' has no row 'ax' (in iterations r = 'a', "
                                   "'b', 'c'; shown for r = 'a')")


def test_a_misspelt_name_in_a_bool_field_is_still_a_name(compile_text) -> None:
    text = """
        params: {use_bias: false, n: 2}
        input: {shape: [3, 8, 8]}
        layers:
          - conv: {op: conv, out: 8, kernel: 3, bias: use_bais}
        """
    e = error_of(compile_text, text)
    assert e.errors[0].message == "undefined name 'use_bais'"
    assert "did you mean 'use_bias'" in e.errors[0].hint
    e = error_of(compile_text, text.replace("use_bais", "no"))    # close to n, still a word
    assert e.errors[0].message == "conv: 'bias' must be true or false, got 'no'"
