"""Shared fixtures: write a spec from text and load or compile it (torch-free)."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Hermetic runs: no op from an installed package's archspec.ops entry point (the suite
# loops over the registry); tests/test_register_op.py turns them on for its subprocesses.
os.environ.setdefault("ARCHSPEC_NO_PLUGINS", "1")


@pytest.fixture(autouse=True, scope="session")
def _repo_root_cwd() -> None:
    """Doctests and tests name specs relative to the repository root."""
    os.chdir(ROOT)


@pytest.fixture
def spec_file(tmp_path: Path) -> Callable[..., Path]:
    """``spec_file(text, name="s.yaml")``: a dedented spec written under tmp_path."""
    def write(text: str, name: str = "s.yaml") -> Path:
        p = tmp_path / name
        p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return p
    return write


@pytest.fixture
def compile_text(spec_file: Callable[..., Path]) -> Callable[..., object]:
    """``compile_text(text, overrides=None)``: the IR graph of a spec given as text."""
    import archspec

    def run(text: str, overrides: object = None, name: str = "s.yaml"):
        return archspec.compile_graph(archspec.load_spec(spec_file(text, name), overrides))
    return run


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (or set ARCHSPEC_SLOW=1)")
    parser.addoption("--zoo-all", action="store_true", default=False,
                     help="check every torchvision builder, not one per family "
                          "(or set ARCHSPEC_ZOO_ALL=1)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: minutes of subprocesses; skipped unless --runslow "
                            "or ARCHSPEC_SLOW=1")
    config.addinivalue_line("markers", "zoo_all: a torchvision builder beyond its family's "
                            "first; skipped unless --zoo-all or ARCHSPEC_ZOO_ALL=1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the slow tests and the zoo's full run by default, so the default suite stays
    within minutes."""
    if not (config.getoption("--zoo-all") or os.environ.get("ARCHSPEC_ZOO_ALL") == "1"):
        zoo = pytest.mark.skip(reason="the zoo's full run: --zoo-all or ARCHSPEC_ZOO_ALL=1")
        for item in items:
            if "zoo_all" in item.keywords:
                item.add_marker(zoo)
    if config.getoption("--runslow") or os.environ.get("ARCHSPEC_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow or ARCHSPEC_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
