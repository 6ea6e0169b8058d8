"""The safe expression evaluator: arithmetic as papers write it, and nothing else."""
from __future__ import annotations

import pytest

from archspec.spec import expr as ex


def ev(text: str, **env: object) -> object:
    return ex.evaluate(ex.parse(text), env)


def fails(text: str, **env: object) -> ex.ExprError:
    with pytest.raises(ex.ExprError) as info:
        ev(text, **env)
    return info.value


@pytest.mark.parametrize("text, env, value", [
    ("(d - 4) / 6", {"d": 28}, 4),
    ("16 * k", {"k": 10}, 160),
    ("(d - 4) // 6", {"d": 27}, 3),
    ("1.0 * 7 / 2", {}, 3.5),
    ("7 / 2.0", {}, 3.5),
    ("2 ** 10", {}, 1024),
    ("-x + +x", {"x": 3}, 0),
    ("7 % 3", {}, 1),
    ("stride if i == 0 else 1", {"stride": 2, "i": 0}, 2),
    ("stride if i == 0 else 1", {"stride": 2, "i": 1}, 1),
    ("0 < x <= 3", {"x": 3}, True),
    ("0 < x < 3", {"x": 3}, False),
    ("a and b or c", {"a": True, "b": False, "c": 5}, 5),
    ("not a", {"a": False}, True),
    ("x in [1, 2]", {"x": 2}, True),
    ("x not in [1, 2]", {"x": 2}, False),
    ("[3] * l", {"l": 3}, [3, 3, 3]),
    ("[16 * k, 32 * k, 64 * k][g]", {"k": 2, "g": 1}, 64),
    ("M[-1]", {"M": [1, 3, 1]}, 1),
    ("M[1:]", {"M": [1, 3, 1]}, [3, 1]),
    ("[*M, 5]", {"M": [1, 3]}, [1, 3, 5]),
    ("range(3)", {}, [0, 1, 2]),
    ("len(M)", {"M": [3, 3]}, 2),
    ("max(1, min(5, 9))", {}, 5),
    ("int(64 * (4 / 64.0)) * 32", {}, 128),
    ("sum([1, 2, 3])", {}, 6),
    ("ceil(2.1) + floor(2.9)", {}, 5),
    ("'blocks' == count", {"count": "blocks"}, True),
    ("true and not false", {}, True),
    ("null", {}, None),
    ("(1, 2)", {}, [1, 2]),
])
def test_values(text: str, env: dict, value: object) -> None:
    assert ev(text, **env) == value


def test_exact_division_keeps_ints() -> None:
    v = ev("(d - 4) / 6", d=40)
    assert v == 6 and isinstance(v, int)


def test_inexact_division_is_an_error_with_a_hint() -> None:
    e = fails("(d - 4) / 6", d=27)
    assert e.message == "23 / 6 does not divide: 23 is not a multiple of 6"
    assert e.offset == 0 and "'//'" in e.hint


def test_undefined_name_points_at_it_and_suggests() -> None:
    e = fails("16 * widht", width=1)
    assert e.message == "undefined name 'widht'"
    assert e.offset == 5
    assert e.hint == "did you mean 'width'?"


@pytest.mark.parametrize("text, message", [
    ("__import__('os').system('true')", "function '__import__('os').system' is not available"),
    ("open('x')", "function 'open' is not available"),
    ("eval('1')", "function 'eval' is not available"),
    ("(lambda: 1)()", "is not available in expressions"),
    ("lambda: 1", "'Lambda' is not allowed"),
    ("{x for x in range(3)}", "'SetComp' is not allowed"),
    ("sum(x for x in range(3))", "'GeneratorExp' is not allowed"),
    ("[y for y in 3]", "a comprehension loops over a list, got int 3"),
    ("[a for a, b in [[1, 2]]]", "a comprehension's loop variable is one name"),
    ("[1 for i in range(1000) for j in range(1000)]", "run more than 10,000 iterations"),
    ("[[1 for i in range(200)] for j in range(200)]", "run more than 10,000 iterations"),
    ("[sum([1 for i in range(100)]) for j in range(100)]", "run more than 10,000 iterations"),
    ("[[0] * 1000 for i in range(1000)]", "is too long"),
    ("{'a': 1}", "'Dict' is not allowed"),
    ("x.__class__", "attribute '.__class__' is not available"),
    ("().__class__.__bases__", "attribute '.__class__' is not available"),
    ("f'{x}'", "'JoinedStr' is not allowed"),
    ("(x := 3)", "'NamedExpr' is not allowed"),
    ("max(1, key=abs)", "keyword arguments are not allowed"),
    ("1 / 0", "division by zero"),
    ("1 // 0", "division by zero"),
    ("1 % 0", "modulo by zero"),
    ("10 ** 100", "exponent 100 is too large"),
    ("[0] * 1000000", "is too long"),
    ("range(10 ** 9)", "is too long"),
    ("((10 ** 64) ** 64) ** 64", "is too large"),
    ("range(10000000)", "is too long"),
    ("[1] * 2.5", "integer number of times"),
    ("M[5]", "index 5 is out of range"),
    ("'a' + 1", "can only concatenate"),
    ("~x", "operator '~' is not allowed"),
    ("1 << 2", "operator 'LShift' is not allowed"),
    ("1 +", "cannot parse expression"),
    ("[*x]", "'*' spreads a list, got int 1"),
    ("max(*x)", "'*' spreads a list, got int 1"),
    ("str([[1] * 100000] * 100000)", "is too long"),      # shared inner lists count in full
    ("[[1] * 1000] * 1000", "list of 1,001,000 items is too long"),
    ("'ab' * 60000", "string of 120,000 characters is too long"),
    ("10 ** 60 * 10 ** 60 * 10 ** 60 * 10 ** 60 * 10 ** 60 * 10 ** 60", "bits, more than the 1024"),
    ("-" * 5000 + "1", "nests too deeply"),
    ("+".join(["1"] * 100000), "nests too deeply"),
])
def test_refused(text: str, message: str) -> None:
    e = fails(text, x=1, M=[1])
    assert message in e.message


def test_parse_error_offset_and_flow_comma_hint() -> None:
    with pytest.raises(ex.ExprError) as info:
        ex.parse("B(3")
    assert "never closed" in info.value.message
    assert "quote it" in info.value.hint


@pytest.mark.parametrize("text, value", [
    ("[2 * w for w in M]", [2, 4, 6]),
    ("[j for j in range(5) if j == 0 or W[j] != W[j - 1]]", [0, 2, 4]),    # runs start
    ("[W[j] for j in range(5) if j % 2 if j > 0]", [1, 2]),
    ("[10 * i + j for i in range(3) for j in range(i)]", [10, 20, 21]),
    ("[[w, k] for w in M for k in range(w) if k == w - 1]", [[1, 0], [2, 1], [3, 2]]),
    ("[x for x in []]", []),
])
def test_list_comprehensions(text: str, value: object) -> None:
    """RegNet's per-block widths and stage runs read as one list each."""
    assert ev(text, M=[1, 2, 3], W=[1, 1, 2, 2, 3]) == value


def test_comprehension_variable_stays_inside() -> None:
    assert ev("[x for x in M] + [x]", M=[1, 2], x=9) == [1, 2, 9]
    assert "undefined name 'j'" in fails("[j for j in M][0] + j", M=[1]).message


def test_names_in() -> None:
    assert ex.names_in("[w * k for w in M if w > n]") == {"k", "M", "n"}
    assert ex.names_in("(d - 4) / per_group + len(M)") == {"d", "per_group", "M"}
    assert ex.names_in("true or null") == set()
    assert ex.names_in("1 +") == set()


def test_block_refs() -> None:
    assert ex.parse_block_ref("basic")[0] == "basic"
    name, args, kwargs = ex.parse_block_ref("B(3, 1, out=16)")
    assert name == "B" and len(args) == 2 and [k for k, _ in kwargs] == ["out"]
    with pytest.raises(ex.ExprError):
        ex.parse_block_ref("3 + 4")
    ref = ex.BlockRef("B", (1, 3, 1), (("out", 16),))
    assert str(ref) == "B(1,3,1,out=16)"
    assert ev("block.args", block=ref) == [1, 3, 1]
    assert ev("block.name", block=ref) == "B"
    assert ref == ex.BlockRef("B", (1, 3, 1), (("out", 16),)) and hash(ref)


def test_evaluation_never_calls_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("eval/exec/compile called")
    for name in ("eval", "exec"):
        monkeypatch.setattr(builtins, name, boom)
    assert ev("(d - 4) / 6 + len([1, 2])", d=28) == 6


@pytest.mark.parametrize("text, message", [
    ("basic(planes=1, planes=2)", "argument 'planes' is given twice"),
    ("basic(**kw)", "'**' is not allowed in a block reference"),
])
def test_block_ref_refused(text: str, message: str) -> None:
    with pytest.raises(ex.ExprError) as info:
        ex.parse_block_ref(text)
    assert message in info.value.message


@pytest.mark.parametrize("text, value", [
    ("log(8, 2)", 3.0), ("exp(0)", 1.0), ("pow(2, 10)", 1024), ("sqrt(16)", 4.0),
    ("round(2.567, 2)", 2.57), ("floor(7.9)", 7), ("ceil(7.1)", 8),
    ("round(log(368 / 24.0) / log(2.52))", 3), ("min(3, 4) + max([1, 5]) + sum([1, 2])", 11),
])
def test_math_functions(text: str, value: object) -> None:
    assert ev(text) == value


@pytest.mark.parametrize("text, offset, message", [
    ("1 + log(0)", 4, "log(): the argument must be positive, got 0"),
    ("log(8, 1)", 0, "log(): the base must be positive and not 1, got 1"),
    ("sqrt(-1)", 0, "sqrt(): the argument must not be negative, got -1"),
    ("exp(1000)", 0, "exp(): the argument must be at most 709 (a float overflows), got 1000"),
    ("pow(2, 1000)", 0, "pow(): exponent 1000 is too large (at most 64)"),
    ("pow(0, -1)", 0, "pow(): 0 to a negative power divides by zero"),
    ("floor(1e308 * 10)", 0, "floor(): inf has no integer value"),
    ("log('a')", 0, "log(): log() takes a number, got string 'a'"),
])
def test_math_domain_errors_are_located(text: str, offset: int, message: str) -> None:
    e = fails(text)
    assert (e.offset, e.message) == (offset, message)


def _fn(name: str, args: tuple, body: str, **lets: str) -> ex.UserFunction:
    from archspec.errors import Location
    f = ex.UserFunction(name, args, tuple((k, ex.parse(v)) for k, v in lets.items()),
                        ex.parse(body), lambda part, off: Location("f.yaml", 1, off + 1))
    f.scope[name] = f
    return f


def test_user_function_binding_and_bounds() -> None:
    from archspec.errors import SpecError
    md = _fn("md", (("v", ex._NO_DEFAULT), ("d", 8), ("lo", None)),
             "n + d if n < 0.9 * v else n", m="d if lo is None else lo",
             n="max(m, int(v + d / 2.0) // d * d)")
    assert ev("md(30)", md=md) == 32 and ev("md(3, lo=16)", md=md) == 16
    assert ev("md(v=60, d=32)", md=md) == 64
    assert "has no argument 'x'" in fails("md(3, x=1)", md=md).message
    assert "missing argument 'v'" in fails("md(d=3)", md=md).message
    loop = _fn("loop", (("n", ex._NO_DEFAULT),), "loop(n + 1)")
    with pytest.raises(SpecError, match="nests more than 32 calls deep"):
        ev("loop(0)", loop=loop)
    fib = _fn("fib", (("n", ex._NO_DEFAULT),), "n if n < 2 else fib(n - 1) + fib(n - 2)")
    assert ev("fib(10)", fib=fib) == 55
    with pytest.raises(SpecError, match="more than 10,000 function calls"):
        ev("fib(25)", fib=fib)
    assert ev("fib(10)", fib=fib) == 55    # the budget is per top-level expression
