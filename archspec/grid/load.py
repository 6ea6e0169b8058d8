"""Read a grid file into a :class:`~archspec.grid.model.Grid`, checking it before any cell runs.

Everything that can be wrong with the grid itself (an unknown parameter, an empty
axis, zipped axes of different lengths, a filter naming nothing, duplicate cell
names, too many cells) is found here, statically, and reported at its line and
column in the grid file. What only a cell can reveal (a depth that is not 6n+4, a
budget no allowed value reaches) is the runner's business, one cell at a time.
"""
from __future__ import annotations

import itertools
import math
import os
import re
from typing import Any, Iterable, Mapping

from archspec.errors import Location, SpecError, SpecErrors, did_you_mean, register_source
from archspec.fsio import read_text
from archspec.grid.model import DEFAULT_MAX_CELLS, PLOT_COLUMNS, Axis, Budget, Cell, Grid
from archspec.spec import expr as ex
from archspec.spec.loader import (YAML_SUFFIXES, _resolve, _target, check_type, eval_text,
                                  interpolate, parse_block_value, parse_override, parse_params)
from archspec.spec.model import ParamDef
from archspec.spec.yamlsrc import YMap, YNode, YScalar, YSeq, parse_yaml, plain

GRID_VERSION = 1
MAX_GRID_BYTES = 1024 * 1024
TOP_KEYS = ("archspec_grid", "name", "description", "spec", "set", "axes", "zip", "where",
            "budget", "cell_name", "max_cells", "plot")
BUDGET_KEYS = ("param", "values", "target", "mode", "tolerance", "where")
BUDGET_MODES = ("nearest", "at_most", "at_least")
_TARGET_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kKMG]?)\s*$")
_SUFFIX = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


# ------------------------------------------------------------------ template
def template(path: str, at: Location | None = None) -> tuple[YMap, dict[str, str]]:
    """The template's resolved YAML (``extends``/``include`` merged), for one cell.

    Cells differ only in overrides, and re-parsing the file for each one would dominate
    a large grid's run time: the loader parses each file once per process by its text
    (and its layers and blocks once per parsed node), so reading the files again for
    each cell costs a read, and an edit between two grids in one process, of the
    template or of a file it includes, is never answered from a stale copy.
    """
    try:
        os.stat(path)
    except OSError:
        raise SpecError(f"no such spec file '{path}'", at or Location(path),
                        "the path is relative to the grid file") from None
    sources: dict[str, str] = {}
    root = _resolve(path, sources, (), None)
    return root, sources


def template_params(root: YMap) -> dict[str, ParamDef]:
    return {p.name: p for p in parse_params(root.get("params"), "the spec")}


def template_name(root: YMap, path: str) -> str:
    node = root.get("name")
    if isinstance(node, YScalar) and isinstance(node.value, str):
        return node.value
    return os.path.splitext(os.path.basename(path))[0]


# ------------------------------------------------------------------- helpers
def _err(msg: str, node: YNode | Location, hint: str | None = None) -> SpecError:
    return SpecError(msg, node if isinstance(node, Location) else node.loc, hint)


def _kind(node: YNode) -> str:
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    return f"{type(node.value).__name__} {node.value!r}"


def _check_keys(m: YMap, allowed: Iterable[str], where: str) -> None:
    allowed = list(allowed)
    errs = [SpecError(f"unknown key '{k}' in {where}", m.key_loc(k),
                      did_you_mean(k, allowed) or "allowed: " + ", ".join(allowed))
            for k in m.keys() if k not in allowed]
    if errs:
        raise SpecErrors(errs)


def _str(node: YNode | None, what: str) -> str:
    if not isinstance(node, YScalar) or not isinstance(node.value, str):
        raise _err(f"{what} must be a string, got {_kind(node)}", node)  # type: ignore[arg-type]
    return node.value


def _unknown_param(name: str, loc: Location, params: Mapping[str, ParamDef], where: str
                   ) -> SpecError:
    return SpecError(f"unknown parameter '{name}' in {where}", loc,
                     did_you_mean(name, params) or "the template's parameters: "
                     + ", ".join(params))


def coerce(value: Any, p: ParamDef, loc: Location) -> Any:
    """Type a grid value as ``--set`` would, but report it at the grid's location."""
    if p.type in ("str", "block") and not isinstance(value, (str, list, dict)):
        value = str(value)
    if p.type == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    value = check_type(value, p.type, p.name, loc)
    if p.choices and value not in p.choices:
        raise SpecError(f"parameter '{p.name}' must be one of "
                        + ", ".join(map(str, p.choices)) + f", got {value!r}", loc)
    if p.type == "block" and isinstance(value, str):
        parse_block_value(value, loc)   # a malformed B(3,,3) is the grid's error, here
    return value


def _values(node: YNode, what: str) -> tuple[tuple[Any, ...], tuple[Location, ...]]:
    """A list of values, or ``{expr: "range(10, 101, 6)"}`` evaluated to one."""
    if isinstance(node, YSeq):
        return tuple(plain(n) for n in node.items), tuple(n.loc for n in node.items)
    if isinstance(node, YMap) and node.keys() == ["expr"]:
        e = node.get("expr")
        if not isinstance(e, YScalar) or not isinstance(e.value, str):
            raise _err("'expr' must be an expression string such as \"range(10, 101, 6)\"", e)
        v = eval_text(e.value, e, {})
        if not isinstance(v, list):
            raise _err(f"'expr' of {what} must give a list, got {v!r}", e)
        return tuple(v), (e.loc,) * len(v)
    raise _err(f"{what} must be a list of values or {{expr: \"range(…)\"}}, got {_kind(node)}",
               node, "for example: k: [1, 2, 4] or d: {expr: \"range(10, 101, 6)\"}")


def parse_target(node: YNode) -> int:
    """``1400000``, ``1.4M``, ``500k``: a parameter count."""
    v = node.value if isinstance(node, YScalar) else None
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
        return int(round(v))
    if isinstance(v, str):
        m = _TARGET_RE.match(v)
        if m:
            return int(round(float(m.group(1)) * _SUFFIX[m.group(2)]))
    raise _err(f"'target' must be a positive parameter count such as 1400000 or 1.4M, "
               f"got {_kind(node)}", node)


def _check_names(node: YScalar, known: Iterable[str], banned: str | None, what: str) -> None:
    text = node.value
    known = set(known)
    try:
        ex.parse(text)
    except ex.ExprError as e:
        raise SpecError(e.message, node.expr_loc(e.offset), e.hint) from None
    for n in sorted(ex.names_in(text)):
        if n == banned:
            raise _err(f"{what} cannot read '{n}': it is chosen by the budget solve, after "
                       "filtering", node, "put conditions on candidates under 'budget: where:'")
        if n not in known:
            raise _err(f"unknown name '{n}' in {what}", node,
                       did_you_mean(n, known) or "filters read the template's parameters")


# ---------------------------------------------------------------------- load
def _cell_limit(root: YMap, ceiling: int | None) -> tuple[int, int | None, Location | None]:
    """(the cell limit, the grid's own 'max_cells' or None, its location when it is the
    limit). The command line's ``--max-cells`` (default :data:`DEFAULT_MAX_CELLS`) is a
    ceiling: a grid file may lower it, never raise it (``max_cells: 10**13`` would lift
    the safety limit from inside the file being checked)."""
    limit = ceiling if ceiling is not None else DEFAULT_MAX_CELLS
    if "max_cells" not in root:
        return limit, None, None
    mn = root.get("max_cells")
    if not (isinstance(mn, YScalar) and isinstance(mn.value, int)
            and not isinstance(mn.value, bool) and mn.value > 0):
        raise _err(f"'max_cells' must be a positive integer, got {_kind(mn)}", mn)
    if mn.value <= limit:
        return mn.value, mn.value, mn.loc
    return limit, mn.value, None


def load_grid(path: str | os.PathLike, *, overrides: Iterable[str] | None = None,
              max_cells: int | None = None) -> Grid:
    """Read and check a grid file; expand its cells (names, values, locations).

    ``overrides`` are ``--set key=value`` strings added to the grid's fixed values;
    ``max_cells`` (the command line's ``--max-cells``) is the most cells allowed; the
    grid's own ``max_cells:`` may only lower it. Raises a located :class:`SpecError`.

    >>> g = load_grid("specs/grids/wrn-table1.yaml")
    >>> len(g.cells), g.cells[0].name
    (10, 'wrn-40-1')
    """
    from archspec.library import resolve
    path = resolve(os.fspath(path), "grid")   # a shipped name ('wrn-table1') or a path
    text = read_text(path, MAX_GRID_BYTES, "grid")
    if path.endswith(YAML_SUFFIXES):
        register_source(path, text)
    try:
        root = parse_yaml(text, path)
    except SpecError as e:
        if e.message != "the file is empty":
            raise
        raise SpecError("the grid file is empty", e.loc,
                        "a grid is a YAML mapping: start with 'spec:' and 'axes:'") from None
    if not isinstance(root, YMap):
        raise _err("a grid must be a YAML mapping, got "
                   + ("a list" if isinstance(root, YSeq) else f"a {type(root.value).__name__}"),
                   root, "start with 'spec:' and 'axes:'")
    _check_keys(root, TOP_KEYS, "the grid")
    if "archspec_grid" in root:
        ver = root.get("archspec_grid")
        if not (isinstance(ver, YScalar) and ver.value == GRID_VERSION):
            raise _err(f"unsupported grid version {plain(ver)!r}", ver,
                       f"this archspec reads 'archspec_grid: {GRID_VERSION}'")
    if "spec" not in root:
        raise _err("the grid has no 'spec'", root, "name the template: spec: ../wrn.yaml")
    spec_node = root.get("spec")
    _str(spec_node, "'spec'")
    spec_path = _target(os.path.dirname(path), spec_node, "spec")
    troot, _ = template(spec_path, spec_node.loc)
    params = template_params(troot)
    name = _str(root.get("name"), "'name'") if "name" in root else \
        os.path.splitext(os.path.basename(path))[0]
    desc = _str(root.get("description"), "'description'") if "description" in root else ""

    # fixed values: the grid's `set:` then the command line's --set
    fixed: dict[str, Any] = {}
    fixed_locs: dict[str, Location] = {}
    if "set" in root:
        sm = root.get("set")
        if not isinstance(sm, YMap):
            raise _err(f"'set' must be a mapping of parameter: value, got {_kind(sm)}", sm)
        for k, v in sm.entries:
            if k not in params:
                raise _unknown_param(k, sm.key_loc(k), params, "'set'")
            fixed[k] = coerce(plain(v), params[k], v.loc)
            fixed_locs[k] = sm.key_loc(k)
    for text_ in overrides or ():
        k, v, loc = parse_override(text_)
        if k not in params:
            raise _unknown_param(k, loc, params, "--set")
        fixed[k] = coerce(v, params[k], loc)
        fixed_locs[k] = loc

    # axes
    if "axes" not in root:
        raise _err("the grid has no 'axes'", root, "vary parameters: axes: {k: [1, 2, 4]}")
    am = root.get("axes")
    if not isinstance(am, YMap) or not am.entries:
        raise _err("'axes' must be a non-empty mapping of parameter: [values]", am)
    axes: list[Axis] = []
    for k, v in am.entries:
        kloc = am.key_loc(k)
        if k not in params:
            raise _unknown_param(k, kloc, params, "'axes'")
        if k in fixed:
            raise SpecError(f"'{k}' is both an axis and a fixed value", kloc,
                            f"it is also set at {fixed_locs[k]}")
        vals, locs = _values(v, f"axis '{k}'")
        if not vals:
            raise _err(f"axis '{k}' is empty", v, "give it at least one value")
        vals = tuple(coerce(x, params[k], lc) for x, lc in zip(vals, locs))
        axes.append(Axis(k, vals, locs, kloc))
    by_axis = {a.name: a for a in axes}

    # zipped groups
    zipped: list[tuple[str, ...]] = []
    if "zip" in root:
        zn = root.get("zip")
        if not isinstance(zn, YSeq) or not zn.items:
            raise _err("'zip' must list axes varied together: zip: [d, k] or zip: [[d, k], …]",
                       zn)
        groups = [zn.items] if all(isinstance(n, YScalar) for n in zn.items) else \
            [g.items if isinstance(g, YSeq) else (g,) for g in zn.items]
        seen: dict[str, Location] = {}
        for g in groups:
            names = []
            for n in g:
                a = _str(n, "an axis name in 'zip'")
                if a not in by_axis:
                    raise _err(f"'zip' names '{a}', which is not an axis", n,
                               did_you_mean(a, by_axis) or "axes: " + ", ".join(by_axis))
                if a in seen:
                    raise _err(f"axis '{a}' is zipped twice", n,
                               f"it is first zipped at {seen[a]}")
                seen[a] = n.loc
                names.append(a)
            first = by_axis[names[0]]
            for a in names[1:]:
                if len(by_axis[a].values) != len(first.values):
                    raise SpecError(f"zipped axes must have equal lengths: '{a}' has "
                                    f"{len(by_axis[a].values)} values, '{first.name}' has "
                                    f"{len(first.values)}", by_axis[a].loc)
            zipped.append(tuple(names))

    # filters
    wheres: list[YScalar] = []
    if "where" in root:
        wn = root.get("where")
        for n in (wn.items if isinstance(wn, YSeq) else (wn,)):
            if not isinstance(n, YScalar) or not isinstance(n.value, str):
                raise _err(f"'where' must be a condition or a list of them, got {_kind(n)}", n)
            wheres.append(n)

    budget = _parse_budget(root.get("budget"), params, by_axis, fixed) if "budget" in root \
        else None
    for w in wheres:
        _check_names(w, params, budget.param if budget else None, "'where'")

    cell_name = None
    if "cell_name" in root:
        cn = root.get("cell_name")
        _str(cn, "'cell_name'")
        cell_name = cn  # type: ignore[assignment]

    limit, asked, limit_loc = _cell_limit(root, max_cells)

    plot = ("params", "macs")
    if "plot" in root:
        pn = root.get("plot")
        if not isinstance(pn, YMap):
            raise _err("'plot' must be a mapping {x: column, y: column}", pn)
        _check_keys(pn, ("x", "y"), "'plot'")
        plot = (_str(pn.get("x"), "'plot.x'") if "x" in pn else "params",
                _str(pn.get("y"), "'plot.y'") if "y" in pn else "macs")
        cols = [a.name for a in axes] + ([budget.param] if budget else []) + list(PLOT_COLUMNS)
        for k, c in zip(("x", "y"), plot):
            if k in pn and c not in cols:
                raise _err(f"'plot.{k}' names '{c}', which is not a column of the results",
                           pn.get(k), did_you_mean(c, cols) or "columns: " + ", ".join(cols))

    # units of the product: a single axis, or a zipped group at its first axis's place
    in_group = {a: g for g in zipped for a in g}
    units: list[tuple[str, ...]] = []
    for a in axes:
        g = in_group.get(a.name, (a.name,))
        if g not in units:
            units.append(g)
    total = math.prod(len(by_axis[u[0]].values) for u in units)
    if total > limit:
        hint = "zip axes, or drop values"
        if asked is not None and asked > limit:
            hint = (f"a grid's 'max_cells: {asked:,}' can only lower the limit; raise it with "
                    f"--max-cells on the command line, or {hint}")
        elif limit_loc is not None:
            hint = f"raise 'max_cells:' (up to {max_cells or DEFAULT_MAX_CELLS:,}), or {hint}"
        else:
            hint = f"raise the limit with --max-cells, or {hint}"
        raise SpecError(f"the grid has {total:,} cells, more than the limit of {limit:,}",
                        root.key_loc("max_cells") if "max_cells" in root
                        else root.key_loc("axes"), hint)

    defaults = {p.name: p.default for p in params.values()}
    base_env = {**defaults, **fixed}
    tname = template_name(troot, spec_path)
    types = {p.name: p.type for p in params.values()}
    cells: list[Cell] = []
    filtered = 0
    first_seen: dict[str, tuple[int, tuple[int, ...]]] = {}
    for combo in itertools.product(*(range(len(by_axis[u[0]].values)) for u in units)):
        idx = {a: i for u, i in zip(units, combo) for a in u}
        values = tuple((a.name, a.values[idx[a.name]]) for a in axes)
        env = {**base_env, **dict(values)}
        if not all(condition(w, env) for w in wheres):
            filtered += 1
            continue
        loc = axes[0].locs[idx[axes[0].name]]
        static = True
        if budget is not None:
            env[budget.param] = budget.values[0]   # a stand-in: see the docs on names
            static = cell_name is not None and budget.param not in ex.names_in(
                _holes(cell_name.value))
        cname = render_name(cell_name, env, values, types, tname, None)
        order = tuple(idx[a.name] for a in axes)
        if cname in first_seen:
            j, other = first_seen[cname]
            diff = next((k for k, (x, y) in enumerate(zip(other, order)) if x != y), 0)
            ax = axes[diff]
            at = cell_name.loc if cell_name is not None else ax.locs[order[diff]]
            raise SpecError(f"cells {j + 1} and {len(cells) + 1} are both named '{cname}'", at,
                            "cell names must be unique: name every varied axis in 'cell_name'"
                            if cell_name is not None else
                            f"axis '{ax.name}' repeats a value")
        first_seen[cname] = (len(cells), order)
        cells.append(Cell(len(cells), cname, values, loc, static))
    if not cells:
        raise _err("every cell is filtered out by 'where'", root.get("where") or root)

    return Grid(path=path, name=name, description=desc, spec_path=spec_path,
                spec_loc=spec_node.loc, fixed=tuple(fixed.items()), axes=tuple(axes),
                zipped=tuple(zipped), where=tuple(wheres), budget=budget, cell_name=cell_name,
                max_cells=limit, plot=plot, cells=tuple(cells), filtered=filtered,
                param_types=tuple((p.name, p.type) for p in params.values()))


def condition(node: YScalar, env: Mapping[str, Any], what: str = "'where'") -> bool:
    """A filter's value, which must be true or false (``k + 1`` is a mistake, not a filter)."""
    v = eval_text(node.value, node, env)
    if not isinstance(v, bool):
        raise _err(f"{what} must be a condition (true or false), got {type(v).__name__} {v!r}",
                   node, "compare something: 'd >= 16', 'block != \"B(3,3)\"', 'k in [1, 2]'")
    return v


def _holes(text: str) -> str:
    """The ``{expr}`` holes of a name template, joined, for a names_in() scan."""
    return " , ".join(re.findall(r"\{([^{}]*)\}", text)) or "0"


def _parse_budget(node: YNode | None, params: Mapping[str, ParamDef], axes: Mapping[str, Axis],
                  fixed: Mapping[str, Any]) -> Budget:
    if not isinstance(node, YMap):
        raise _err("'budget' must be a mapping {param, values, target}", node)  # type: ignore
    _check_keys(node, BUDGET_KEYS, "'budget'")
    for k in ("param", "values", "target"):
        if k not in node:
            raise _err(f"'budget' needs '{k}'", node,
                       "for example budget: {param: d, values: {expr: \"range(10, 101, 6)\"}, "
                       "target: 1.4M}")
    pn = node.get("param")
    p = _str(pn, "'budget.param'")
    if p not in params:
        raise _unknown_param(p, pn.loc, params, "'budget'")
    if p in axes:
        raise _err(f"'{p}' is an axis; the budget chooses it, so it cannot also be varied", pn)
    if p in fixed:
        raise _err(f"'{p}' is a fixed value; the budget chooses it", pn)
    vals, locs = _values(node.get("values"), "'budget.values'")
    if not vals:
        raise _err("'budget.values' is empty", node.get("values"))
    vals = tuple(coerce(x, params[p], lc) for x, lc in zip(vals, locs))
    tn = node.get("target")
    target = parse_target(tn)
    mode = "nearest"
    if "mode" in node:
        mode = _str(node.get("mode"), "'budget.mode'")
        if mode not in BUDGET_MODES:
            raise _err(f"unknown budget mode '{mode}'", node.get("mode"),
                       did_you_mean(mode, BUDGET_MODES) or "one of " + ", ".join(BUDGET_MODES))
    tol = None
    if "tolerance" in node:
        t = node.get("tolerance")
        v = t.value if isinstance(t, YScalar) else None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v:
            raise _err(f"'budget.tolerance' must be a fraction such as 0.1 (±10 %), "
                       f"got {_kind(t)}", t)
        tol = float(v)
    where = None
    if "where" in node:
        w = node.get("where")
        _str(w, "'budget.where'")
        _check_names(w, params, None, "'budget.where'")  # type: ignore[arg-type]
        where = w
    return Budget(p, vals, locs, target, tn.loc, mode, tol, where,  # type: ignore[arg-type]
                  node.loc)


def _part(name: str, v: Any, t: str) -> str:
    if isinstance(v, list):
        return name + "-".join(map(str, v))
    if isinstance(v, bool):
        return f"{name}-{str(v).lower()}"
    if isinstance(v, (int, float)):
        return f"{name}{v:g}" if isinstance(v, float) else f"{name}{v}"
    return str(v) if t == "block" else f"{name}-{v}"


def render_name(template_: YScalar | None, env: Mapping[str, Any],
                values: tuple[tuple[str, Any], ...], types: Mapping[str, str],
                spec_name: str, solved: tuple[str, Any] | None) -> str:
    """A cell's name: the grid's ``cell_name`` template, or spec name plus each varied value."""
    if template_ is not None:
        return interpolate(template_, env)
    parts = [spec_name] + [_part(k, v, types[k]) for k, v in values]
    if solved is not None:
        parts.append(_part(solved[0], solved[1], types[solved[0]]))
    return "-".join(parts)
