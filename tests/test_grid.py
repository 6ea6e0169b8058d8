"""Ablation grids: the WRN paper's tables reproduced from grid files, the CLI, bad grids.

Torch-free: grids expand and shape-check with the front end only.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archspec.cli import main
from archspec.grid import ResultsTable, load_grid, run_grid
from archspec.grid.table import to_csv

ROOT = Path(__file__).resolve().parent.parent
GRIDS = ROOT / "specs" / "grids"
BAD = ROOT / "tests" / "bad_grids"


@pytest.fixture(autouse=True)
def _root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)   # grid and error paths are relative to the repository root


def _results(name: str) -> dict[str, object]:
    grid = load_grid(f"specs/grids/{name}")
    return {r.name: r for r in run_grid(grid, jobs=1)}


def test_wrn_table1_matches_the_posts_rounded_counts() -> None:
    paper = {(40, 1): 0.6, (40, 2): 2.2, (40, 4): 8.9, (40, 8): 35.7, (28, 10): 36.5,
             (28, 12): 52.5, (22, 8): 17.2, (22, 10): 26.8, (16, 8): 11.0, (16, 10): 17.1}
    res = _results("wrn-table1.yaml")
    assert list(res) == [f"wrn-{d}-{k}" for d, k in paper]
    for (d, k), m in paper.items():
        r = res[f"wrn-{d}-{k}"]
        assert r.ok and dict(r.values) == {"d": d, "k": k}
        assert round(r.params / 1e6, 1) == m, (d, k, r.params)
    assert res["wrn-28-10"].params == 36_479_194
    assert res["wrn-40-2"].params == 2_243_546


TABLE2 = {"B(1,3,1)": (40, 1_429_082), "B(3,1)": (40, 1_211_354), "B(1,3)": (40, 1_297_370),
          "B(3,1,1)": (40, 1_343_066), "B(3,3)": (28, 1_467_610), "B(3,1,3)": (22, 1_145_498)}


@pytest.mark.parametrize("grid", ["wrn-block-types.yaml", "wrn-block-types-explicit.yaml"])
def test_wrn_table2_block_types(grid: str) -> None:
    res = _results(grid)
    assert len(res) == 6
    for block, (d, params) in TABLE2.items():
        r = res[f"wrn-d{d}-k2-{block}"]
        assert r.ok and dict(r.values)["d"] == d and r.params == params


def _picked(tmp_path: Path, target: str) -> dict[str, int]:
    text = (GRIDS / "wrn-block-types.yaml").read_text().replace("1.315M", target)
    text = text.replace("../wrn.yaml", str(ROOT / "specs" / "wrn.yaml"))
    p = tmp_path / "g.yaml"
    p.write_text(text)
    return {dict(r.values)["block"]: dict(r.values)["d"] for r in run_grid(load_grid(p), jobs=1)}


PAPER_DEPTHS = {b: d for b, (d, _) in TABLE2.items()}


def test_budget_at_1_4m_does_not_pick_the_papers_depths(tmp_path: Path) -> None:
    """Documented in docs/grids.md: the paper's depths are not 'nearest to 1.4 M'."""
    assert _picked(tmp_path, "1.4M") == {**PAPER_DEPTHS, "B(3,1)": 46, "B(3,1,3)": 28}


@pytest.mark.parametrize("target,reproduces", [(1_310_138, False), (1_310_139, True),
                                               (1_319_322, True), (1_319_323, False)])
def test_budget_window_that_reproduces_table2(tmp_path: Path, target: int,
                                              reproduces: bool) -> None:
    """The window quoted in docs/grids.md, edges included (ties go to the smaller d)."""
    assert (_picked(tmp_path, str(target)) == PAPER_DEPTHS) is reproduces


def test_wrn_table3_deepening_keeps_the_count() -> None:
    res = _results("wrn-deepening.yaml")
    assert [dict(r.values)["l"] for r in res.values()] == [1, 2, 3, 4]
    assert {r.params for r in res.values()} == {2_243_546}


def test_resnet_family_from_one_template() -> None:
    res = _results("resnet-family.yaml")
    assert {n: (r.params, r.depth) for n, r in res.items()} == {
        "resnet18": (11_689_512, 18), "resnet34": (21_797_672, 34),
        "resnet50": (25_557_032, 50), "resnet101": (44_549_160, 101),
        "resnet152": (60_192_808, 152)}
    assert res["resnet50"].output_shape == (1000,)


def test_expand_grid_yields_named_specs() -> None:
    import archspec
    cells = list(archspec.expand_grid("specs/grids/wrn-block-types.yaml"))
    assert [n for n, _ in cells][:2] == ["wrn-d40-k2-B(1,3,1)", "wrn-d40-k2-B(3,1)"]
    name, spec = cells[4]
    assert name == "wrn-d28-k2-B(3,3)"
    assert spec.param_values["d"] == 28 and spec.param_values["count"] == "blocks"


def test_invalid_cell_is_reported_and_the_grid_goes_on() -> None:
    res = run_grid(load_grid("tests/bad_grids/invalid-cell.yaml"), jobs=1)
    assert [r.ok for r in res] == [True, False, True]
    err = res[1].errors[0]
    assert (err.loc.line, err.loc.col) == (4, 11) and "6n+4" in err.message


def test_parallel_run_matches_serial(tmp_path: Path) -> None:
    p = tmp_path / "g.yaml"
    p.write_text(f"spec: {ROOT / 'specs' / 'wrn.yaml'}\n"
                 "axes:\n  d: [16, 22, 27, 28, 40]\n  k: [1, 2, 4, 8]\n")
    grid = load_grid(p)
    assert len(grid.cells) == 20
    assert run_grid(grid, jobs=2) == run_grid(grid, jobs=1)


def test_filters_and_fixed_values(tmp_path: Path) -> None:
    p = tmp_path / "g.yaml"
    p.write_text(f"spec: {ROOT / 'specs' / 'wrn.yaml'}\nset: {{dropout: 0}}\n"
                 "axes:\n  d: [16, 22, 28]\n  k: [1, 2]\nwhere: d * k <= 44\n")
    grid = load_grid(p)
    assert [c.name for c in grid.cells] == ["wrn-d16-k1", "wrn-d16-k2", "wrn-d22-k1",
                                            "wrn-d22-k2", "wrn-d28-k1"]
    assert grid.filtered == 1 and dict(grid.fixed) == {"dropout": 0.0}


def test_results_table_takes_metric_columns() -> None:
    grid = load_grid("specs/grids/wrn-deepening.yaml")
    table = ResultsTable.from_results(grid, run_grid(grid, jobs=1))
    merged = table.merge({"wrn-40-2-l2": {"top1_err": 5.43, "epochs": 200}})
    assert merged.columns[-2:] == ("top1_err", "epochs")
    rows = list(csv.DictReader(to_csv(merged).splitlines()))
    assert rows[1]["top1_err"] == "5.43" and rows[0]["top1_err"] == ""
    with pytest.raises(KeyError):
        table.merge({"no-such-cell": {"x": 1}})


def test_plot_series_by_axis_and_categories(tmp_path: Path) -> None:
    """A metric against a block-type axis: categories in grid order, one line per k."""
    from archspec.grid.table import plot, plot_series
    p = tmp_path / "g.yaml"
    p.write_text(f"spec: {ROOT / 'specs' / 'wrn.yaml'}\nset: {{d: 16, count: blocks}}\n"
                 "axes:\n  block: ['B(3,3)', 'B(1,3)', 'B(3,1)']\n  k: [1, 2]\n"
                 "plot: {x: block, y: test_acc}\n")
    grid = load_grid(p)
    table = ResultsTable.from_results(grid, run_grid(grid, jobs=1))
    table = table.merge({c.name: {"test_acc": 0.5 + i / 100} for i, c in enumerate(grid.cells)})
    cats, legend, series = plot_series(table, "block", "test_acc")
    assert cats == ["B(3,3)", "B(1,3)", "B(3,1)"] and legend == "k"
    assert series == [("k=1", [(0.0, 0.5, "wrn-B(3,3)-k1"), (1.0, 0.52, "wrn-B(1,3)-k1"),
                               (2.0, 0.54, "wrn-B(3,1)-k1")]),
                      ("k=2", [(0.0, 0.51, "wrn-B(3,3)-k2"), (1.0, 0.53, "wrn-B(1,3)-k2"),
                               (2.0, 0.55, "wrn-B(3,1)-k2")])]
    # numeric axis: sorted by x; params vs MACs: one unlabelled series of every cell
    cats, legend, series = plot_series(table, "k", "params")
    assert cats is None and [lbl for lbl, _ in series] == ["block=B(3,3)", "block=B(1,3)",
                                                           "block=B(3,1)"]
    assert [len(pts) for _, pts in plot_series(table, "params", "macs")[2]] == [6]
    assert (Path(plot(table, str(tmp_path / "a.png")))).read_bytes()[:4] == b"\x89PNG"
    # a training column in `plot:` waits for training: no plot.png before, no error
    from archspec.grid import write_results
    untrained = ResultsTable.from_results(grid, run_grid(grid, jobs=1))
    assert not any(f.endswith(".png") for f in write_results(untrained, str(tmp_path / "o")))


def test_budget_solved_parameter_is_not_a_series() -> None:
    from archspec.grid.table import plot_series
    grid = load_grid("specs/grids/wrn-block-types.yaml")
    table = ResultsTable.from_results(grid, run_grid(grid, jobs=1))
    cats, legend, series = plot_series(table, "block", "params")
    assert legend == "" and len(series) == 1 and len(cats or []) == 6


def test_cli_writes_every_format_without_torch(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = ("import sys\nfrom archspec.cli import main\n"
            f"rc = main(['grid', 'specs/grids/wrn-table1.yaml', '-o', {str(out)!r}, "
            "'--format', 'json'])\n"
            "assert 'torch' not in sys.modules, 'grid imported torch'\nsys.exit(rc)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["grid"] == "wrn-table1" and len(doc["cells"]) == 10
    assert doc["cells"][4]["params"] == 36_479_194
    assert sorted(os.listdir(out)) == ["plot.png", "results.csv", "results.json", "results.md"]
    assert (out / "plot.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader((out / "results.csv").read_text().splitlines()))
    assert rows[0]["cell"] == "wrn-40-1" and rows[0]["params"] == "563930"
    assert "| wrn-28-10 | 28 | 10 | 26 | 36,479,194 |" in (out / "results.md").read_text()


def test_cli_render_draws_one_diagram_per_cell(tmp_path: Path) -> None:
    pytest.importorskip("archspec.render")
    import shutil
    if shutil.which("dot") is None:
        pytest.skip("graphviz 'dot' is not installed")
    assert main(["grid", "-q", "specs/grids/wrn-deepening.yaml", "-o", str(tmp_path),
                 "--render"]) == 0
    assert sorted(os.listdir(tmp_path / "diagrams")) == [f"wrn-40-2-l{i}.svg" for i in range(1, 5)]


def test_cli_table_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grid", "specs/grids/wrn-deepening.yaml"]) == 0
    out = capsys.readouterr().out
    assert "wrn-40-2-l4" in out and "2,243,546" in out and "4 cells, 4 valid" in out


@pytest.mark.parametrize("path", sorted(BAD.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_grid(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), "a bad grid states its expected error on line 1"
    expected = first[len("# expect: "):]
    where, message = expected.split(": ", 1)
    rel = path.relative_to(ROOT).as_posix()
    assert main(["grid", "-q", rel]) == 2
    err = capsys.readouterr().err
    assert f"{rel}:{where}: error: {message}" in err, err
    assert "Traceback" not in err
