"""Ablation grids: a template spec, the parameters to vary, one checked and counted cell each.

``load_grid`` reads and checks a grid file; ``expand_grid`` yields ``(name, Spec)``
for a training loop; ``run_grid`` shape-checks and counts every cell (on all
cores); ``ResultsTable`` tabulates them and takes metric columns later. Nothing
here imports torch; matplotlib is imported only to plot. Format: docs/grids.md.
"""
from __future__ import annotations

from archspec.grid.load import load_grid
from archspec.grid.model import DEFAULT_MAX_CELLS, Axis, Budget, Cell, Grid
from archspec.grid.run import CellError, CellResult, evaluate_cell, expand_grid, run_grid
from archspec.grid.table import ResultsTable, write_results

__all__ = ["load_grid", "expand_grid", "run_grid", "evaluate_cell", "ResultsTable",
           "write_results", "Grid", "Cell", "Axis", "Budget", "CellResult", "CellError",
           "DEFAULT_MAX_CELLS"]
