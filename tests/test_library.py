"""The shipped library: names resolve to specs, grids and recipes; the package lists them.

Torch-free. ``scripts/check_wheel.sh`` (run by the README's test command) proves the same
in a venv that holds only the built wheel; these tests pin the rules in the source tree.
"""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from archspec import library
from archspec.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent
#: the shipped specs, counted (the zoo specs of several engineers add to them)
N_SPECS = len(list((ROOT / "specs").glob("*.yaml")))


def archspec(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "archspec", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_every_package_and_data_folder_ships() -> None:
    """pyproject.toml lists packages by hand (to map specs/ and recipes/): none is missed."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    st = meta["tool"]["setuptools"]
    listed = set(st["packages"])
    code = {".".join(p.parent.relative_to(ROOT).parts) for p in ROOT.glob("archspec/**/__init__.py")}
    assert code <= listed, f"not listed in pyproject.toml: {sorted(code - listed)}"
    for folder, pkg in (("specs", "archspec.library.specs"), ("recipes", "archspec.library.recipes")):
        assert st["package-dir"][pkg] == folder
        for sub in (ROOT / folder).rglob("*"):
            if sub.is_dir():
                assert f"{pkg}.{sub.relative_to(ROOT / folder).as_posix().replace('/', '.')}" in listed
    assert all(f.suffix == ".yaml" for f in (ROOT / "specs").rglob("*") if f.is_file())


def test_names_resolve_to_the_shipped_files() -> None:
    assert library.resolve("resnet50", "spec") == str(ROOT / "specs" / "resnet50.yaml")
    assert library.resolve("resnet50.yaml", "spec") == str(ROOT / "specs" / "resnet50.yaml")
    assert library.resolve("wrn-table1", "grid") == str(ROOT / "specs" / "grids" / "wrn-table1.yaml")
    assert library.resolve("wrn", "recipe") == str(ROOT / "recipes" / "wrn.yaml")
    assert library.names("recipe") == ["cifar10-adam", "resnet-cifar", "shake-shake", "wrn"]
    assert len(library.names("spec")) == N_SPECS >= 26


def test_an_existing_path_wins_over_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resnet50").write_text("name: mine\n")
    assert library.resolve("resnet50", "spec") == "resnet50"
    assert library.resolve("specs/none.yaml", "spec") == "specs/none.yaml"   # a path: as given


def test_an_unknown_name_says_where_it_looked_and_what_is_close() -> None:
    with pytest.raises(SpecError) as e:
        library.resolve("resnet5", "spec")
    err = e.value
    assert err.message == (f"no such spec 'resnet5': no file of that name here, and no spec "
                           f"of that name in {ROOT / 'specs'}")
    assert err.hint == f"did you mean 'resnet50'? ('archspec list' shows the {N_SPECS} shipped specs)"
    with pytest.raises(SpecError) as e:
        library.resolve("resnet_cifar", "recipe")
    assert e.value.hint.startswith("did you mean 'resnet-cifar'?")
    assert str(e.value.loc) == "resnet_cifar"


def test_descriptions_are_one_line_each() -> None:
    for kind in library.KINDS:
        for entry in library.entries(kind):
            assert entry.description and "\n" not in entry.description, entry


def test_cli_by_name_from_an_unrelated_folder(tmp_path: Path) -> None:
    r = archspec("summary", "resnet50", "--depth", "0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Total params:       25,557,032" in r.stdout
    r = archspec("check", "wrn-28-10", "resnet18.yaml", cwd=tmp_path)
    assert r.stdout.splitlines() == ["wrn-28-10: ok (105 ops, 36,479,194 params, 5.24 GMACs)",
                                     "resnet18.yaml: ok (69 ops, 11,689,512 params, 1.81 GMACs)"]
    r = archspec("grid", "wrn-deepening", "--format", "csv", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.count("2243546") == 4, r.stdout + r.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_unknown_name_is_one_line(tmp_path: Path) -> None:
    r = archspec("check", "wrn-28-1O", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [
        f"wrn-28-1O: error: no such spec 'wrn-28-1O': no file of that name here, and no spec of "
        f"that name in {ROOT / 'specs'}; did you mean 'wrn-28-10'? ('archspec list' shows the "
        f"{N_SPECS} shipped specs)"]


def test_list_shows_every_shipped_file(tmp_path: Path) -> None:
    r = archspec("list", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"Specs ({N_SPECS}, in {ROOT / 'specs'}):"
    width = max(len(p.stem) for p in (ROOT / "specs").glob("*.yaml")) + 2   # names, aligned
    assert "  " + "resnet50".ljust(width) + "ResNet-50 as torchvision.models.resnet50: " \
           "Bottleneck, [3, 4, 6, 3]" in lines
    n_grids = len(list((ROOT / 'specs' / 'grids').glob('*.yaml')))
    assert f"Grids ({n_grids}, in {ROOT / 'specs' / 'grids'}):" in lines
    assert f"Recipes (4, in {ROOT / 'recipes'}):" in lines
    for kind in library.KINDS:
        for name in library.names(kind):
            assert any(line.startswith(f"  {name} ") for line in lines), name
    r = archspec("list", "recipe", cwd=tmp_path)
    assert r.stdout.splitlines()[0] == f"Recipes (4, in {ROOT / 'recipes'}):"
    assert len(r.stdout.splitlines()) == 5


def test_no_silent_fallback_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without the shipped recipes, the default recipe is an error, not built-in defaults."""
    from archspec.train import recipe
    assert recipe.default_recipe() == recipe.load_recipe(str(ROOT / "recipes" / "wrn.yaml"))
    monkeypatch.setattr(library, "library_root", lambda: tmp_path)
    with pytest.raises(SpecError) as e:
        recipe.default_recipe()
    assert e.value.message.startswith("no such recipe 'wrn'") and str(tmp_path) in e.value.message


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["list"]])
def test_light_start(args: list[str], tmp_path: Path) -> None:
    """--version, --help and list import neither networkx nor torch (-X importtime)."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "archspec", *args],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines()}
    assert "archspec.cli" in imported
    assert not imported & {"networkx", "torch", "yaml" if args != ["list"] else "torch"}
