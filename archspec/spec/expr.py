"""A small, safe expression language for spec values.

Expressions are parsed with :mod:`ast` and evaluated by walking a whitelist of
node types; nothing is ever passed to ``eval``. The language is the arithmetic
a paper writes: ``(d - 4) / 6``, ``16 * k``, ``stride if i == 0 else 1``.

``/`` between integers is *exact* division: ``(d - 4) / 6`` with ``d = 27`` is an
error ("does not divide"), because a network cannot have 3.83 blocks. Use a
float operand (``1.0 / 3``) for real division, or ``//`` to floor.

>>> evaluate(parse("(d - 4) / 6"), {"d": 28})
4
>>> evaluate(parse("[3] * l"), {"l": 3})
[3, 3, 3]
"""
from __future__ import annotations

import ast
import math
import operator
import threading
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Mapping

from archspec.errors import Location, SpecError, did_you_mean


class ExprError(Exception):
    """An evaluation error at character ``offset`` of the expression text."""

    def __init__(self, message: str, offset: int = 0, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.hint = hint


@dataclass(frozen=True)
class BlockRef:
    """A reference to a block definition with bound arguments, e.g. ``B(3,3)``."""

    name: str
    args: tuple = ()
    kwargs: tuple = ()  # tuple of (name, value), hashable

    def __str__(self) -> str:
        parts = [_show(a) for a in self.args] + [f"{k}={_show(v)}" for k, v in self.kwargs]
        return f"{self.name}({','.join(parts)})" if parts else self.name


def _show(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, list):
        return "[" + ",".join(_show(x) for x in v) + "]"
    return str(v)


_MAX_POW = 64
_MAX_SEQ = 100_000
#: Largest integer an expression may produce, in bits (a float's range, ~1e308): beyond it
#: a value only stalls printing and shape arithmetic, and no network needs one.
_MAX_BITS = 1024
#: Longest text ``str()`` may build.
_MAX_TEXT = 1_000_000


def _size(v: Any) -> int:
    """Items in a (nested) list or characters in a string, counted until past :data:`_MAX_SEQ`.

    ``[[1] * 100000] * 100000`` shares one inner list, so it is cheap to build but
    would take 10¹⁰ steps to print or copy: sizes count every item reached.
    """
    total, stack = 0, [v]
    while stack and total <= _MAX_SEQ:
        x = stack.pop()
        if isinstance(x, str):
            total += len(x)
        elif isinstance(x, list):
            total += len(x)
            stack.extend(y for y in x if isinstance(y, (list, str)))
    return total


def _check_size(v: Any) -> Any:
    if isinstance(v, (list, str)):
        n = _size(v)
        if n > _MAX_SEQ:
            what = "string of more than {:,} characters" if isinstance(v, str) else \
                "list of more than {:,} items"
            raise ValueError(what.format(_MAX_SEQ) + " is too long")
    elif _is_int(v) and v.bit_length() > _MAX_BITS:
        raise ValueError(f"the result has {v.bit_length():,} bits, more than the {_MAX_BITS} "
                         "an expression may compute")
    return v


def _str(v: Any) -> str:
    _check_size(v)
    stack, est = [v], 0
    while stack and est <= _MAX_TEXT:   # a list of 100,000 huge ints prints 100 MB
        x = stack.pop()
        if isinstance(x, list):
            est += 2 * len(x) + 2
            stack.extend(x)
        elif _is_int(x):
            est += x.bit_length() * 3 // 10 + 2
        else:
            est += len(str(x)) if isinstance(x, str) else 24
    if est > _MAX_TEXT:
        raise ValueError(f"the text would be longer than {_MAX_TEXT:,} characters")
    return str(v)


def _pow(a: Any, b: Any) -> Any:
    if isinstance(b, (int, float)) and abs(b) > _MAX_POW:
        raise ValueError(f"exponent {b} is too large (at most {_MAX_POW})")
    if _is_int(a) and _is_int(b) and b > 0 and abs(a).bit_length() * b > 4096:
        raise ValueError(f"{a} ** {b} is too large")   # nested powers would never finish
    return a ** b


def _mul(a: Any, b: Any) -> Any:
    if isinstance(a, (list, str)) or isinstance(b, (list, str)):
        n = b if isinstance(a, (list, str)) else a
        seq = a if isinstance(a, (list, str)) else b
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"a list can only be repeated an integer number of times, not {n!r}")
        what = "string of {:,} characters" if isinstance(seq, str) else "list of {:,} items"
        if n * _size(seq) > _MAX_SEQ:
            raise ValueError(what.format(n * _size(seq)) + " is too long")
    return a * b


def _add(a: Any, b: Any) -> Any:
    return _check_size(a + b) if isinstance(a, (list, str)) else a + b


def _truediv(a: Any, b: Any) -> Any:
    if b == 0:
        raise ZeroDivisionError("division by zero")
    if _is_int(a) and _is_int(b):
        if a % b:
            raise _Inexact(f"{a} / {b} does not divide: {a} is not a multiple of {b}")
        return a // b
    return a / b


class _Inexact(ValueError):
    """Exact ``/`` between integers that leaves a remainder."""


def _floordiv(a: Any, b: Any) -> Any:
    if b == 0:
        raise ZeroDivisionError("division by zero")
    return a // b


def _mod(a: Any, b: Any) -> Any:
    if b == 0:
        raise ZeroDivisionError("modulo by zero")
    return a % b


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: _add, ast.Sub: operator.sub, ast.Mult: _mul, ast.Div: _truediv,
    ast.FloorDiv: _floordiv, ast.Mod: _mod, ast.Pow: _pow,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b, ast.Is: lambda a, b: a is b,
    ast.IsNot: lambda a, b: a is not b,
}


def _range(*args: int) -> list[int]:
    r = range(*args)
    if len(r) > _MAX_SEQ:
        raise ValueError(f"range of {len(r):,} items is too long")
    return list(r)


@dataclass(frozen=True)
class TableRef:
    """A spec's table named in an expression (in layers and blocks): ``rows(t)`` and
    ``columns(t)`` list its row and column names, so a loop can walk a table:
    ``for: r, in: rows(bneck)`` with ``row: "bneck.{r}"``."""

    name: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]

    def __str__(self) -> str:
        return f"table {self.name}"


def _table_names(what: str) -> Callable[[Any], list[str]]:
    def names(t: Any) -> list[str]:
        if not isinstance(t, TableRef):
            raise TypeError(f"{what}() takes a table, got {_type_name(t)} {t!r}")
        return list(getattr(t, what))
    return names


def _real(x: Any, fn: str) -> float:
    """``x`` as a number for a math function, or a clear error naming the function."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"{fn}() takes a number, got {_type_name(x)} {x!r}")
    return x


def _log(x: Any, base: Any = None) -> float:
    """Natural log, or log to ``base``: RegNet's width quantisation is log(w / w0) / log(wm)."""
    if _real(x, "log") <= 0:
        raise ValueError(f"the argument must be positive, got {x!r}")
    if base is None:
        return math.log(x)
    if _real(base, "log") <= 0 or base == 1:
        raise ValueError(f"the base must be positive and not 1, got {base!r}")
    return math.log(x, base)


def _exp(x: Any) -> float:
    if _real(x, "exp") > 709:
        raise ValueError(f"the argument must be at most 709 (a float overflows), got {x!r}")
    return math.exp(x)


def _sqrt(x: Any) -> float:
    if _real(x, "sqrt") < 0:
        raise ValueError(f"the argument must not be negative, got {x!r}")
    return math.sqrt(x)


def _rounding(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``round``/``floor``/``ceil`` refusing infinity and NaN with a message, not a crash."""
    def run(x: Any, *rest: Any) -> Any:
        if isinstance(_real(x, name), float) and not math.isfinite(x):
            raise ValueError(f"{x!r} has no integer value")
        return fn(x, *rest)
    return run


def _powfn(a: Any, b: Any) -> Any:
    _real(a, "pow"), _real(b, "pow")
    if a == 0 and b < 0:
        raise ZeroDivisionError("0 to a negative power divides by zero")
    if isinstance(a, float) and a < 0 and not float(b).is_integer():
        raise ValueError(f"a negative number to a fractional power is not real: {a!r} ** {b!r}")
    return _pow(a, b)


#: The functions an expression may call: a closed, side-effect-free set. Math functions
#: check their domain (log(0) is a located error, not a crash) and their range.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min, "max": max, "abs": abs, "len": len, "int": int, "float": float,
    "round": _rounding("round", round), "sum": sum, "range": _range,
    "ceil": _rounding("ceil", math.ceil), "floor": _rounding("floor", math.floor),
    "sqrt": _sqrt, "list": list, "str": _str, "bool": bool,
    "log": _log, "exp": _exp, "pow": _powfn,
    "rows": _table_names("rows"), "columns": _table_names("columns"),
}
CONSTANTS = _CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False,
              "None": None}


@lru_cache(maxsize=8192)
def parse(text: str) -> ast.expression:
    """Parse expression text into an AST, or raise :class:`ExprError` at the bad character."""
    try:
        with warnings.catch_warnings():   # "invalid decimal literal" warnings go to stderr
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip(), mode="eval")
    except (RecursionError, MemoryError):
        raise ExprError("the expression nests too deeply", 0) from None
    except SyntaxError as e:
        hint = ("an expression is arithmetic on numbers and names: + - * / // % **, "
                "comparisons, and/or/not, 'a if c else b', [lists], and calls such as len(M)")
        if "never closed" in str(e.msg):
            hint = ("inside YAML's {...} or [...] a comma ends the value: quote it, "
                    "e.g. block: \"B(3,3)\"")
        raise ExprError(f"cannot parse expression '{text}': {e.msg}",
                        max((e.offset or 1) - 1, 0), hint) from None
    return tree


@lru_cache(maxsize=8192)
def names_in(text: str) -> frozenset[str]:
    """The free names an expression reads (for dependency and typo checks).

    Cached by the text: a block's expressions are the same for every instance of it,
    and walking their trees again per instance cost a fifth of compiling a deep net."""
    try:
        tree = parse(text)
    except ExprError:
        return frozenset()
    bound = {g.target.id for n in ast.walk(tree) if isinstance(n, ast.ListComp)
             for g in n.generators if isinstance(g.target, ast.Name)}   # comprehension variables
    return frozenset({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
                     - set(FUNCTIONS) - set(_CONSTANTS) - bound)


def evaluate(tree: ast.expression, env: Mapping[str, Any]) -> Any:
    """Evaluate a parsed expression in ``env`` (a mapping of names to values)."""
    body = tree.body
    if type(body) is ast.Name and body.id in env:   # `out: out`: most fields name a value
        return env[body.id]
    if type(body) is ast.Constant and type(body.value) in (int, float):
        return body.value
    if _STATE.depth == 0:
        _STATE.calls = 0    # a fresh budget of user-function calls per top-level expression
        _STATE.steps = 0    # and of comprehension iterations
        _STATE.work = 0     # and of list items handled by built-ins
    return _guarded(_Eval(env).run, body)


def _guarded(run: Callable[[ast.AST], Any], node: ast.AST) -> Any:
    """Run the evaluator; an operation it did not foresee on odd values is still a user error."""
    try:
        return run(node)
    except RecursionError:
        raise ExprError("the expression nests too deeply", 0) from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as e:
        raise ExprError(str(e), getattr(node, "col_offset", 0)) from None


def _starred(value: Any, node: ast.AST) -> list:
    """The items of ``*value``: only a list spreads."""
    if not isinstance(value, list):
        raise ExprError(f"'*' spreads a list, got {_type_name(value)} {value!r}",
                        getattr(node, "col_offset", 0), "write *M where M is a list, e.g. [3, 3]")
    return value


def _type_name(v: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string"}.get(type(v), type(v).__name__)


class _Eval:
    def __init__(self, env: Mapping[str, Any]):
        self.env = env

    def fail(self, node: ast.AST, message: str, hint: str | None = None) -> ExprError:
        return ExprError(message, getattr(node, "col_offset", 0), hint)

    def run(self, node: ast.AST) -> Any:
        t = type(node)
        if t is ast.Name and node.id in self.env:    # the commonest node, looked up at once
            return self.env[node.id]
        m = _DISPATCH.get(t)
        if m is not None:
            return m(self, node)
        m = getattr(self, "_" + t.__name__, None)
        if m is None:
            raise self.fail(node, f"'{type(node).__name__}' is not allowed in a spec expression",
                            "expressions may use numbers, names, + - * / // % **, comparisons, "
                            "and/or/not, 'a if c else b', lists and " + ", ".join(sorted(FUNCTIONS)))
        return m(node)

    def _call_user(self, fn: UserFunction, node: ast.Call) -> Any:
        args = self._items(node.args)
        kwargs: dict = {}
        for k in node.keywords:
            if k.arg is None:
                raise self.fail(node, "'**' is not allowed in a function call")
            kwargs[k.arg] = self.run(k.value)
        return _check_size(fn.call(args, kwargs, node))

    def _Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, (int, float, str, bool)) or node.value is None:
            return node.value
        raise self.fail(node, f"constant {node.value!r} is not allowed")

    def _Name(self, node: ast.Name) -> Any:
        if node.id in self.env:
            return self.env[node.id]
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise self.fail(node, f"undefined name '{node.id}'",
                        did_you_mean(node.id, list(self.env)) or
                        "names are parameters, 'let' values, block parameters or loop variables")

    def _BinOp(self, node: ast.BinOp) -> Any:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.fail(node, f"operator '{type(node.op).__name__}' is not allowed")
        a, b = self.run(node.left), self.run(node.right)
        try:
            return _check_size(op(a, b))
        except _Inexact as e:
            raise self.fail(node, str(e), "'/' between integers must be exact; use '//' to "
                            "round down or a float (e.g. 1.0 * a / b) for a fraction") from None
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as e:
            raise self.fail(node, str(e)) from None

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        v = self.run(node.operand)
        try:
            if isinstance(node.op, ast.USub):
                return -v
            if isinstance(node.op, ast.UAdd):
                return +v
            if isinstance(node.op, ast.Not):
                return not v
        except TypeError as e:
            raise self.fail(node, str(e)) from None
        raise self.fail(node, "operator '~' is not allowed")

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        if isinstance(node.op, ast.And):
            v: Any = True
            for x in node.values:
                v = self.run(x)
                if not v:
                    return v
            return v
        v = False
        for x in node.values:
            v = self.run(x)
            if v:
                return v
        return v

    def _Compare(self, node: ast.Compare) -> bool:
        left = self.run(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            right = self.run(right_node)
            try:
                if not _CMPOPS[type(op)](left, right):
                    return False
            except TypeError as e:
                raise self.fail(node, str(e)) from None
            left = right
        return True

    def _items(self, elts: list[ast.expr]) -> list:
        """Evaluated list items or call arguments, ``*xs`` spread in place."""
        out: list = []
        for e in elts:
            if isinstance(e, ast.Starred):
                out.extend(_starred(self.run(e.value), e))
            else:
                out.append(self.run(e))
        return out

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.run(node.body) if self.run(node.test) else self.run(node.orelse)

    def _List(self, node: ast.List) -> list:
        out = self._items(node.elts)
        try:
            return _check_size(out)
        except ValueError as e:
            raise self.fail(node, str(e)) from None

    _Tuple = _List

    def _ListComp(self, node: ast.ListComp) -> list:
        """``[f(j) for j in range(d) if c]``: a list built per item, as RegNet's per-block
        widths are. Loop variables are plain names, seen only inside the brackets; the
        iterations of all comprehensions in a top-level expression, nested ones included,
        are bounded (:data:`MAX_ITERATIONS`), so one cannot multiply another's cost."""
        envs: list[dict] = [dict(self.env)]
        for gen in node.generators:
            if not isinstance(gen.target, ast.Name) or gen.is_async:
                raise self.fail(gen.target, "a comprehension's loop variable is one name",
                                "write [w * 2 for w in widths]")
            grown: list[dict] = []
            for env in envs:
                items = _Eval(env).run(gen.iter)
                if not isinstance(items, list):
                    raise self.fail(gen.iter, f"a comprehension loops over a list, got "
                                    f"{_type_name(items)} {items!r}", "e.g. range(n) or a list")
                for item in items:
                    inner = {**env, gen.target.id: item}
                    if all(_Eval(inner).run(c) for c in gen.ifs):
                        grown.append(inner)
                    _STATE.steps += 1
                    if _STATE.steps > MAX_ITERATIONS:
                        raise self.fail(node, f"the expression's comprehensions run more than "
                                        f"{MAX_ITERATIONS:,} iterations", "loop over fewer items")
            envs = grown
        return self._sized(node, [_Eval(env).run(node.elt) for env in envs])

    def _sized(self, node: ast.AST, out: list) -> list:
        try:
            return _check_size(out)
        except ValueError as e:
            raise self.fail(node, str(e)) from None

    def _Subscript(self, node: ast.Subscript) -> Any:
        seq = self.run(node.value)
        if isinstance(node.slice, ast.Slice):
            parts = [self.run(p) if p is not None else None
                     for p in (node.slice.lower, node.slice.upper, node.slice.step)]
            try:
                return seq[slice(*parts)]
            except (TypeError, ValueError) as e:
                raise self.fail(node, str(e)) from None
        idx = self.run(node.slice)
        try:
            return seq[idx]
        except (IndexError, KeyError):
            raise self.fail(node, f"index {idx!r} is out of range for {seq!r}") from None
        except TypeError as e:
            raise self.fail(node, str(e)) from None

    def _Attribute(self, node: ast.Attribute) -> Any:
        v = self.run(node.value)
        if isinstance(v, BlockRef) and node.attr in ("name", "args"):
            return getattr(v, node.attr) if node.attr == "name" else list(v.args)
        raise self.fail(node, f"attribute '.{node.attr}' is not available here",
                        "only a block reference has attributes (.name, .args)")

    def _Call(self, node: ast.Call) -> Any:
        fn = self.env.get(node.func.id) if isinstance(node.func, ast.Name) else None
        if isinstance(fn, UserFunction):
            return self._call_user(fn, node)
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise self.fail(node, f"function '{name}' is not available in expressions",
                            did_you_mean(name, FUNCTIONS) or
                            "available: " + ", ".join(sorted(FUNCTIONS)))
        args = self._items(node.args)
        if node.keywords:
            raise self.fail(node, "keyword arguments are not allowed in function calls")
        self._charge(node, sum(len(a) for a in args if isinstance(a, (list, str))))
        try:
            out = _check_size(FUNCTIONS[node.func.id](*args))
        except (TypeError, ValueError, ArithmeticError) as e:
            raise self.fail(node, f"{node.func.id}(): {e}") from None
        if isinstance(out, (list, str)):
            self._charge(node, len(out))
        return out

    def _charge(self, node: ast.AST, items: int) -> None:
        """Count the items a built-in reads or makes against the expression's and the
        compile's budgets (:data:`MAX_WORK`): each call is bounded by the sequence limit,
        but a function or comprehension may repeat it thousands of times."""
        _STATE.work += items
        _STATE.total += items
        if _STATE.work > MAX_WORK:
            raise self.fail(node, f"the expression's built-in functions handle more than "
                            f"{MAX_WORK:,} list items", "compute on shorter lists, or fewer times")
        if _STATE.total > MAX_TOTAL_WORK:
            raise self.fail(node, f"the spec's expressions handle more than "
                            f"{MAX_TOTAL_WORK:,} list items in all", "compute on shorter lists")


# ------------------------------------------------------------ user functions
#: Deepest chain of user-function calls (a recursive function must stop before it), and
#: the most calls one top-level expression may make (``f(n-1) + f(n-1)`` doubles them).
MAX_CALL_DEPTH = 32
MAX_CALLS = 10_000
#: The most list-comprehension iterations one top-level expression may run, nested included.
MAX_ITERATIONS = 10_000
#: The most list items built-in functions may read or make: in one top-level expression
#: (``sum(range(100000))`` in a function called 10,000 times), and over one load or
#: compile (:func:`reset_work`), so a spec of many such expressions is bounded too.
MAX_WORK = 1_000_000
MAX_TOTAL_WORK = 5_000_000
_NO_DEFAULT = object()


class _CallState(threading.local):
    depth = 0
    calls = 0
    steps = 0       # list-comprehension iterations
    work = 0        # list items built-ins handled, this expression
    total = 0       # and since reset_work()


def reset_work() -> None:
    """Start the budget of :data:`MAX_TOTAL_WORK` afresh (a load or a compile begins)."""
    _STATE.total = 0


_STATE = _CallState()


@dataclass(frozen=True, eq=False)
class UserFunction:
    """A function a spec defines under ``functions:``: named arguments (with defaults),
    ``let`` bindings evaluated in order, and a body expression. It sees its arguments,
    its lets and the spec's other functions: nothing else, so a call means the same
    wherever it is written. ``at`` locates each expression's text for errors."""

    name: str
    params: tuple[tuple[str, Any], ...]           # (name, default or _NO_DEFAULT)
    lets: tuple[tuple[str, ast.expression], ...]
    body: ast.expression
    at: Callable[[str, int], Location]            # (part, offset) -> location
    scope: dict = field(default_factory=dict, compare=False)   # the spec's functions

    def __repr__(self) -> str:
        return f"<function {self.name}>"

    def bind(self, args: list, kwargs: dict, node: ast.AST) -> dict[str, Any]:
        """Arguments by position then by name, defaults for the rest."""
        names = [n for n, _ in self.params]
        if len(args) > len(names):
            raise ExprError(f"{self.name}() takes {len(names)} argument(s), got {len(args)}",
                            node.col_offset, f"{self.name}({', '.join(names)})")
        out = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise ExprError(f"{self.name}() has no argument '{k}'", node.col_offset,
                                did_you_mean(k, names) or f"{self.name}({', '.join(names)})")
            if k in out:
                raise ExprError(f"{self.name}() got argument '{k}' twice", node.col_offset)
            out[k] = v
        for n, d in self.params:
            if n not in out:
                if d is _NO_DEFAULT:
                    raise ExprError(f"{self.name}() is missing argument '{n}'", node.col_offset,
                                    f"{self.name}({', '.join(names)})")
                out[n] = d
        return out

    def call(self, args: list, kwargs: dict, node: ast.AST) -> Any:
        """Run the body, bounded: too deep or too many calls is an error at the call."""
        bound = self.bind(args, kwargs, node)
        if _STATE.depth >= MAX_CALL_DEPTH:
            raise ExprError(f"function '{self.name}' nests more than {MAX_CALL_DEPTH} calls "
                            "deep", node.col_offset, "a recursive function needs a condition "
                            "that stops it: 'n if n < 2 else f(n - 1)'")
        _STATE.calls += 1
        if _STATE.calls > MAX_CALLS:
            raise ExprError(f"the expression makes more than {MAX_CALLS:,} function calls",
                            node.col_offset, "a function that calls itself twice per step "
                            "grows exponentially")
        _STATE.depth += 1
        try:
            env = {**self.scope, **bound}
            for lname, tree in self.lets:
                env[lname] = self._run(tree, env, lname)
            return self._run(self.body, env, "body")
        finally:
            _STATE.depth -= 1

    def _run(self, tree: ast.expression, env: dict, part: str) -> Any:
        try:
            return evaluate(tree, env)
        except ExprError as e:
            raise SpecError(f"in function '{self.name}': {e.message}", self.at(part, e.offset),
                            e.hint) from None


#: The evaluator's method per node type, looked up once per node instead of by name.
_DISPATCH: dict[type, Callable[[_Eval, Any], Any]] = {
    getattr(ast, name[1:]): fn for name, fn in vars(_Eval).items()
    if name.startswith("_") and name[1:2].isupper() and hasattr(ast, name[1:])}


def parse_block_ref(text: str) -> tuple[str, list[ast.AST], list[tuple[str, ast.AST]]]:
    """Split ``B(3,3)`` or ``bottleneck(groups=32)`` into its name and argument ASTs."""
    tree = parse(text)
    body = tree.body
    if isinstance(body, ast.Name):
        return body.id, [], []
    if isinstance(body, ast.Call) and isinstance(body.func, ast.Name):
        seen: set[str] = set()
        for k in body.keywords:
            if k.arg is None:
                raise ExprError("'**' is not allowed in a block reference", k.value.col_offset - 2,
                                "name the arguments: B(3,3, dropout=0.3)")
            if k.arg in seen:
                raise ExprError(f"argument '{k.arg}' is given twice", k.col_offset)
            seen.add(k.arg)
        return body.func.id, list(body.args), [(k.arg, k.value) for k in body.keywords]
    raise ExprError(f"'{text}' is not a block reference", 0,
                    "write a block name, optionally with arguments, e.g. B(3,3)")


def eval_arg(node: ast.AST, env: Mapping[str, Any]) -> Any:
    """Evaluate one argument AST of a block reference (``*M`` spreads a list)."""
    if isinstance(node, ast.Starred):
        return _starred(_guarded(_Eval(env).run, node.value), node)
    return _guarded(_Eval(env).run, node)


def to_spec_error(e: ExprError, loc: Location) -> SpecError:
    return SpecError(e.message, loc, e.hint)
