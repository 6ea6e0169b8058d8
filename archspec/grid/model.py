"""The grid as frozen dataclasses: what the grid loader hands to the runner.

A grid names a template spec and the parameter values to vary; every value keeps
the location it was written at, so a bad cell is reported at its line in the grid
file, not at a line of the template it happens to break.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archspec.errors import Location
from archspec.spec.yamlsrc import YScalar

#: Default upper bound on the cells of one grid (``max_cells:`` or ``--max-cells``).
DEFAULT_MAX_CELLS = 10_000

#: The columns ``archspec grid --train`` adds to the results table (plottable once trained).
TRAIN_METRICS = ("test_acc", "best_test_acc", "test_loss", "train_loss", "epochs_done",
                 "images_per_s", "train_s", "run")
#: The columns a grid file's ``plot:`` may name besides its axes and budget parameter.
PLOT_COLUMNS = ("depth", "params", "macs") + TRAIN_METRICS[:-1]


@dataclass(frozen=True)
class Axis:
    """One varied parameter: its values, each with the location it was written at."""

    name: str
    values: tuple[Any, ...]
    locs: tuple[Location, ...]
    loc: Location                  # the axis key


@dataclass(frozen=True)
class Budget:
    """Choose ``param`` per cell among ``values`` so the parameter count meets ``target``."""

    param: str
    values: tuple[Any, ...]
    locs: tuple[Location, ...]
    target: int
    target_loc: Location
    mode: str = "nearest"          # nearest | at_most | at_least
    tolerance: float | None = None  # relative: 0.1 = the chosen count is within ±10 % of target
    where: YScalar | None = None   # condition on a candidate (the cell's params plus the candidate)
    loc: Location = Location("<grid>")


@dataclass(frozen=True)
class Cell:
    """One point of the grid before evaluation: its name and the values it sets."""

    index: int                              # position in the expanded grid (0-based)
    name: str
    values: tuple[tuple[str, Any], ...]     # axis values, in axis order
    loc: Location                           # where the cell is written (its first axis value)
    name_static: bool = True                # False: the name waits for the budget solve

    @property
    def value_dict(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass(frozen=True)
class Grid:
    """A loaded, validated grid file: template, fixed values, axes, filters and cells."""

    path: str
    name: str
    description: str
    spec_path: str
    spec_loc: Location
    fixed: tuple[tuple[str, Any], ...]          # overrides every cell shares
    axes: tuple[Axis, ...]
    zipped: tuple[tuple[str, ...], ...]         # groups of axes varied together
    where: tuple[YScalar, ...]
    budget: Budget | None
    cell_name: YScalar | None                   # template such as "wrn-d{d}-k{k}"
    max_cells: int
    plot: tuple[str, str]                       # (x column, y column)
    cells: tuple[Cell, ...]
    filtered: int                               # cells the ``where`` filters removed
    param_types: tuple[tuple[str, str], ...]    # template parameter -> type

    @property
    def columns(self) -> tuple[str, ...]:
        """The parameter columns of the results table: axes, then the solved parameter."""
        cols = [a.name for a in self.axes]
        if self.budget is not None:
            cols.append(self.budget.param)
        return tuple(cols)
