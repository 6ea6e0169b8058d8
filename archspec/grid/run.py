"""Evaluate grid cells: build each cell's spec, solve its budget, shape-check it, count it.

A cell that fails is a result, not an exception: its error is kept with the cell's
location in the grid file and the grid goes on. Large grids run on a process pool
(every core by default); nothing here imports torch.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import networkx as nx

from archspec.errors import Location, SpecError, SpecErrors
from archspec.fsio import safe_name
from archspec.graph import compile_graph
from archspec.grid.load import condition, load_grid, render_name, template, template_name
from archspec.grid.model import Cell, Grid
from archspec.ops import OPS
from archspec.shapes import summarize
from archspec.spec.loader import eval_text, spec_from_yaml
from archspec.spec.model import Spec

#: Below this many cells a pool costs more to start than it saves.
MIN_PARALLEL_CELLS = 16
#: Init roles of the ops that count towards ``depth`` (weighted layers on the longest
#: path), read from each op's definition when counted, so ops registered later count too.
WEIGHTED_ROLES = ("conv", "linear")


@dataclass(frozen=True)
class CellError:
    """A picklable, located error of one cell (SpecError does not survive pickling)."""

    message: str
    loc: Location
    hint: str | None = None

    def to_spec_error(self) -> SpecError:
        return SpecError(self.message, self.loc, self.hint)


@dataclass(frozen=True)
class CellResult:
    """What a cell evaluated to; ``errors`` is empty for a valid cell."""

    index: int
    name: str
    values: tuple[tuple[str, Any], ...]      # axis values, then the solved budget parameter
    loc: Location
    params: int | None = None
    macs: int | None = None
    depth: int | None = None                 # conv/linear layers on the longest path
    output_shape: tuple | None = None        # the first (non-training-only) output, per sample
    budget_target: int | None = None
    errors: tuple[CellError, ...] = ()
    diagram: str | None = None               # path of the rendered diagram, with --render
    render_error: str | None = None          # a diagram that failed does not make a cell invalid

    @property
    def ok(self) -> bool:
        return not self.errors


# ----------------------------------------------------------------- one cell
def cell_overrides(grid: Grid, cell: Cell, extra: Mapping[str, Any] | None = None
                   ) -> dict[str, Any]:
    return {**dict(grid.fixed), **dict(cell.values), **dict(extra or {})}


def cell_spec(grid: Grid, cell: Cell, extra: Mapping[str, Any] | None = None) -> Spec:
    """The cell's spec: the template with the grid's fixed and axis values applied."""
    root, sources = template(grid.spec_path, grid.spec_loc)
    return spec_from_yaml(root, grid.spec_path, sources, cell_overrides(grid, cell, extra))


def weighted_depth(g: nx.DiGraph) -> int:
    """Conv and linear layers on the longest input→output path (ResNet-50 → 50).

    Shortcut projections sit on a parallel, shorter path, so they do not count,
    which is how the ResNet paper counts depth; training-only heads are left out.
    """
    best: dict[str, int] = {}
    weighted = {name for name, op in OPS.items() if op.init in WEIGHTED_ROLES}
    # the compiler inserts every node after its inputs (the IR's contract): that order is
    # topological, and ``inputs`` lists the predecessors (networkx's sort cost a fifth)
    for n, d in g.nodes(data=True):
        if d.get("train_only"):
            continue
        ins = d["inputs"]
        best[n] = (d["op"] in weighted) + (best.get(ins[0], 0) if len(ins) == 1 else max(
            (best[p] for p in ins if p in best), default=0))
    return max(best.values(), default=0)


def _measure(spec: Spec) -> tuple[nx.DiGraph, int, int, tuple | None]:
    g = compile_graph(spec)
    s = summarize(g, depth=0)
    outs = [o for o in s.outputs if not o["train_only"]] or list(s.outputs)
    return g, s.params, s.macs, (tuple(outs[0]["shape"]) if outs else None)


def _wrap(cell_name: str, e: SpecError, at: Location) -> tuple[CellError, ...]:
    """Report a template error at the cell's place in the grid, naming where it arose."""
    return tuple(CellError(f"cell '{cell_name}': {x.message} (at {x.loc})", at, x.hint)
                 for x in e.errors)


def _fmt(n: int) -> str:
    from archspec.shapes import human
    return human(n)


def solve_budget(grid: Grid, cell: Cell) -> tuple[Any, Spec, nx.DiGraph, int, int, tuple | None]:
    """Pick the budget parameter's allowed value whose parameter count meets the target.

    Allowed values are those listed that pass ``budget.where`` and give a valid
    network (a depth that is not 6n+4 for this block is simply not allowed).
    Ties go to the value listed first. Raises a SpecError at ``budget.target``.
    """
    b = grid.budget
    assert b is not None
    env = {**_defaults(grid), **dict(grid.fixed), **dict(cell.values)}
    tried: list[tuple[Any, Spec, nx.DiGraph, int, int, tuple | None]] = []
    first_err: SpecError | None = None
    for v in b.values:
        if b.where is not None and not condition(b.where, {**env, b.param: v},
                                                 "'budget.where'"):
            continue
        try:
            spec = cell_spec(grid, cell, {b.param: v})
            g, params, macs, shape = _measure(spec)
        except SpecError as e:
            first_err = first_err or e
            continue
        tried.append((v, spec, g, params, macs, shape))
    if not tried:
        hint = f"e.g. {first_err.errors[0].line()}" if first_err else \
            "'budget.where' rejects every value"
        raise SpecError(f"budget: no allowed value of '{b.param}' gives a valid network",
                        b.target_loc, hint)
    pool = tried
    if b.mode == "at_most":
        pool = [t for t in tried if t[3] <= b.target]
    elif b.mode == "at_least":
        pool = [t for t in tried if t[3] >= b.target]
    if not pool:
        near = min(tried, key=lambda t: abs(t[3] - b.target))
        word = "at most" if b.mode == "at_most" else "at least"
        raise SpecError(f"budget: no allowed value of '{b.param}' keeps the parameter count "
                        f"{word} {_fmt(b.target)}", b.target_loc,
                        f"the closest is {b.param} = {near[0]} with {near[3]:,} parameters")
    best = min(pool, key=lambda t: abs(t[3] - b.target))
    if b.tolerance is not None and abs(best[3] - b.target) > b.tolerance * b.target:
        raise SpecError(f"budget: no allowed value of '{b.param}' comes within "
                        f"±{b.tolerance:.0%} of {_fmt(b.target)} parameters", b.target_loc,
                        f"the closest is {b.param} = {best[0]} with {best[3]:,} parameters "
                        f"({best[3] / b.target - 1:+.1%})")
    return best


def _defaults(grid: Grid) -> dict[str, Any]:
    from archspec.grid.load import template_params
    root, _ = template(grid.spec_path, grid.spec_loc)
    return {p.name: p.default for p in template_params(root).values()}


def final_name(grid: Grid, cell: Cell, solved: Any) -> str:
    """The cell's name once the budget is solved (unchanged when it does not depend on it)."""
    if cell.name_static or grid.budget is None:
        return cell.name
    root, _ = template(grid.spec_path, grid.spec_loc)
    env = {**_defaults(grid), **dict(grid.fixed), **dict(cell.values), grid.budget.param: solved}
    return render_name(grid.cell_name, env, cell.values, dict(grid.param_types),
                       template_name(root, grid.spec_path), (grid.budget.param, solved))


def cell_and_spec(grid: Grid, cell: Cell) -> tuple[str, tuple[tuple[str, Any], ...], Spec,
                                                     nx.DiGraph | None, tuple | None]:
    """Name, values, spec and (when the budget compiled it) graph and measures of a cell."""
    if grid.budget is None:
        return cell.name, cell.values, cell_spec(grid, cell), None, None
    v, spec, g, params, macs, shape = solve_budget(grid, cell)
    return (final_name(grid, cell, v), cell.values + ((grid.budget.param, v),), spec, g,
            (params, macs, shape))


def evaluate_cell(grid: Grid, cell: Cell, render_dir: str | None = None) -> CellResult:
    """Shape-check and count one cell; its errors come back in the result, located."""
    target = grid.budget.target if grid.budget else None
    try:
        name, values, spec, g, measured = cell_and_spec(grid, cell)
    except SpecError as e:
        at_target = grid.budget is not None and e.loc == grid.budget.target_loc
        errs = tuple(CellError(f"cell '{cell.name}': {x.message}", x.loc, x.hint)
                     for x in e.errors) if at_target else _wrap(cell.name, e, cell.loc)
        return CellResult(cell.index, cell.name, cell.values, cell.loc, budget_target=target,
                          errors=errs)
    try:
        if g is None:
            g, params, macs, shape = _measure(spec)
        else:
            params, macs, shape = measured  # type: ignore[misc]
    except SpecError as e:
        return CellResult(cell.index, name, values, cell.loc, budget_target=target,
                          errors=_wrap(name, e, cell.loc))
    diagram = render_error = None
    if render_dir:
        try:
            diagram = _render(g, name, render_dir)
        except SpecError as e:
            render_error = f"cell '{name}': diagram not drawn: {e.line()}"
    return CellResult(cell.index, name, values, cell.loc, params, macs, weighted_depth(g),
                      shape, target, (), diagram, render_error)


def _render(g: nx.DiGraph, name: str, out_dir: str) -> str | None:
    try:
        from archspec.render import render_graph  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = os.path.join(out_dir, safe_name(name, "cell") + ".svg")
    render_graph(g, path, fmt="svg")
    return path


# ------------------------------------------------------------------ the grid
_WORKER: dict[str, Any] = {}


def _init_worker(grid: Grid, render_dir: str | None) -> None:
    _WORKER["grid"], _WORKER["render_dir"] = grid, render_dir


def _run_chunk(indices: list[int]) -> list[CellResult]:
    grid: Grid = _WORKER["grid"]
    return [evaluate_cell(grid, grid.cells[i], _WORKER["render_dir"]) for i in indices]


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run_grid(grid: Grid, *, jobs: int | None = None, render_dir: str | None = None,
             progress: Callable[[int, int], None] | None = None) -> list[CellResult]:
    """Evaluate every cell (on ``jobs`` processes, all cores by default), in grid order."""
    cells = grid.cells
    jobs = default_jobs() if jobs is None else max(1, jobs)
    if render_dir:
        os.makedirs(render_dir, exist_ok=True)
    results: list[CellResult] = []
    if jobs == 1 or len(cells) < MIN_PARALLEL_CELLS:
        for c in cells:
            results.append(evaluate_cell(grid, c, render_dir))
            if progress:
                progress(len(results), len(cells))
    else:
        size = max(1, min(64, len(cells) // (jobs * 8)))
        chunks = [list(range(i, min(i + size, len(cells)))) for i in range(0, len(cells), size)]
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                 initargs=(grid, render_dir)) as pool:
            pending = {pool.submit(_run_chunk, ch) for ch in chunks}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    results.extend(f.result())
                if progress:
                    progress(len(results), len(cells))
        results.sort(key=lambda r: r.index)
    return _check_final_names(grid, results)


def _check_final_names(grid: Grid, results: list[CellResult]) -> list[CellResult]:
    """Names that depend on the solved value are only known now: a clash invalidates the later cell."""
    if all(c.name_static for c in grid.cells):
        return results
    seen: dict[str, int] = {}
    out = []
    for r in results:
        if r.name in seen:
            at = grid.cell_name.loc if grid.cell_name is not None else r.loc
            r = CellResult(r.index, r.name, r.values, r.loc, budget_target=r.budget_target,
                           errors=(CellError(f"cells {seen[r.name] + 1} and {r.index + 1} are "
                                             f"both named '{r.name}'", at,
                                             "name every varied axis in 'cell_name'"),))
        else:
            seen[r.name] = r.index
        out.append(r)
    return out


def expand_grid(path: str | os.PathLike, overrides: list[str] | None = None, *,
                max_cells: int | None = None, skip_invalid: bool = False
                ) -> Iterator[tuple[str, Spec]]:
    """Yield ``(cell name, Spec)`` for every cell of a grid file, in grid order.

    Budgets are solved on the way (so the spec carries the chosen value). A cell
    whose spec is invalid raises its located SpecError, or is skipped with
    ``skip_invalid=True``. Shapes are not checked here: ``compile_graph(spec)`` does.

    >>> [name for name, spec in expand_grid("specs/grids/wrn-deepening.yaml")]
    ['wrn-40-2-l1', 'wrn-40-2-l2', 'wrn-40-2-l3', 'wrn-40-2-l4']
    """
    grid = load_grid(path, overrides=overrides, max_cells=max_cells)
    for cell in grid.cells:
        try:
            name, _, spec, _, _ = cell_and_spec(grid, cell)
        except SpecError as e:
            if skip_invalid:
                continue
            at_target = grid.budget is not None and e.loc == grid.budget.target_loc
            errs = [x.to_spec_error() for x in (
                tuple(CellError(f"cell '{cell.name}': {x.message}", x.loc, x.hint)
                      for x in e.errors) if at_target else _wrap(cell.name, e, cell.loc))]
            raise SpecErrors(errs) from None
        yield name, spec
