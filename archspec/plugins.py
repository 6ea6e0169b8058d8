"""Ops from Python: :func:`register_op` and the ``archspec.ops`` entry-point group.

A spec only *names* an op (``{op: cbam, reduction: 16}``); it never imports or runs
anything. The Python that defines an op runs in the user's own script
(``archspec.register_op(...)`` before ``load_spec``) or in an installed package that
declares an entry point in the group ``archspec.ops``::

    # pyproject.toml of the package
    [project.entry-points."archspec.ops"]
    cbam = "my_package.archspec_ops:register"   # a callable, or a module that registers

Entry points load once, on the first :func:`archspec.load_spec` (so every command of
the CLI sees them), sorted by name. A plugin that fails to import or raises does not stop
the tool: it is reported in one warning line on stderr naming the entry point and its
distribution, and a spec that then uses an unknown op gets that failure as the hint of
its located error. ``ARCHSPEC_NO_PLUGINS=1`` turns entry points off (for hostile specs,
or a hermetic test run); ops registered from the running script still work.

A registered op is an ordinary :class:`~archspec.ops.OpDef` in :data:`~archspec.ops.OPS`,
so every backend handles it with no special case. Its Python is untrusted in one sense:
a shape rule, count or module-argument function that raises, or returns the wrong kind
of value, becomes a located ``path:line:col: error: ... op 'cbam' shape rule failed: ...``
at the spec line that uses the op (an :class:`~archspec.ops.OpError`), never a traceback.
Registration errors (a bad name, a clash, an unknown field type) are the developer's own
Python and raise ``ValueError`` / ``TypeError`` at once.

This module never imports torch: a module named by dotted path is resolved only by the
torch backend, and a class object given here is one the caller has already imported.
"""
from __future__ import annotations

import operator
import os
import re
import sys
from types import ModuleType
from typing import Any, Callable, Iterable, Mapping

from archspec.ops import (BUILTIN_OPS, MAX_INT, OPS, Field, OpDef, OpError, Shape, TorchModule,
                          _TYPE_DOC, coerce)
from archspec.spec.loader import KIND_KEYS, META_KEYS
from archspec.spec.names import MAX_NAME_CHARS, MODULE_ATTRS, NAME_RE

GROUP = "archspec.ops"
#: Environment variable that, set to anything but ``0`` or empty, disables entry points.
NO_PLUGINS_ENV = "ARCHSPEC_NO_PLUGINS"
#: The diagram legend kinds (archspec.render.palette); any other kind draws as "other".
KINDS = ("conv", "linear", "norm", "activation", "pool", "merge", "regularise", "reshape",
         "other")
_PATH_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
#: Layer keys the spec loader reads itself: a field of one of these names could not be given.
_LAYER_KEYS = KIND_KEYS + META_KEYS

#: Objects behind the dotted paths of registered class objects and pasted helpers, so
#: the torch backend resolves ``__main__.CBAM`` (or a class defined in a function).
_OBJECTS: dict[str, Any] = {}
#: Registered (not built-in) op names and the module of the code that registered each.
_REGISTERED: dict[str, str] = {}
_state = {"loaded": False}
#: One line per entry point that failed to load: ``'name' (dist 1.0): error``.
FAILURES: list[str] = []

ShapeRule = Callable[[dict, list[Shape]], Any]
Count = Callable[[dict, list[Shape], Shape], Any]


# ------------------------------------------------------------------ registration
def register_op(name: str, *, infer: ShapeRule | None = None,
                fields: Iterable[Field | Mapping[str, Any]] = (), doc: str = "",
                params: Count | None = None, macs: Count | None = None,
                module: type | str | None = None,
                module_kwargs: Callable[[dict, list[Shape]], Mapping[str, Any]] | None = None,
                paste: Iterable[Any] = (), min_inputs: int = 1, max_inputs: int | None = 1,
                kind: str = "other",
                label: Callable[[dict, Shape | None, Shape | None], str] | None = None,
                replace: bool = False) -> Any:
    """Add an op to the registry, so specs can write ``{op: name, ...}``.

    ``infer(args, input_shapes) -> shape``: per-sample shapes (batch left out), ``args``
    the normalised field values; raise :class:`~archspec.ops.OpError` for a bad
    argument or input (``field=`` points the error at that argument). ``params`` and
    ``macs`` are ``(args, input_shapes, output_shape) -> int`` (default 0).
    ``module`` is the torch lowering: an ``nn.Module`` class, or its dotted path
    (imported only when a module is built), constructed with
    ``module_kwargs(args, input_shapes)`` (default: the field values by name). In
    standalone source (``archspec emit``) a class object is pasted with
    ``inspect.getsource`` (so it may use only ``torch``, ``nn`` and the objects listed in
    ``paste``); a dotted path is imported. Registering a name again raises unless
    ``replace=True``; a built-in op can never be replaced.

    Without ``infer`` it returns a decorator for the shape rule. Returns the shape rule
    (so it also decorates) after registering the :class:`~archspec.ops.OpDef`.
    """
    if infer is None:
        return lambda fn: register_op(
            name, infer=fn, fields=fields, doc=doc, params=params, macs=macs, module=module,
            module_kwargs=module_kwargs, paste=paste, min_inputs=min_inputs,
            max_inputs=max_inputs, kind=kind, label=label, replace=replace)
    _check_op_name(name, replace)
    fs = tuple(_field(f, name) for f in fields)
    _check_callables(name, infer=infer, params=params, macs=macs, module_kwargs=module_kwargs,
                     label=label)
    _check_arity(name, min_inputs, max_inputs)
    if kind not in KINDS:
        raise ValueError(f"op '{name}': unknown kind {kind!r}; one of {', '.join(KINDS)}")
    op = OpDef(name, fs, _guard_infer(name, infer), doc or _first_line(infer.__doc__),
               min_inputs=min_inputs, max_inputs=max_inputs,
               params=_guard_count(name, "parameter count", params),
               macs=_guard_count(name, "MAC count", macs),
               lower=_lowering(name, fs, module, module_kwargs, paste), kind=kind,
               label=_guard_label(name, label))
    OPS[name] = op
    _REGISTERED[name] = getattr(infer, "__module__", "?")
    return infer


def unregister_op(name: str) -> None:
    """Remove an op added by :func:`register_op` (tests clean up with it)."""
    if name in BUILTIN_OPS:
        raise ValueError(f"'{name}' is a built-in op and cannot be removed")
    if name not in _REGISTERED:
        raise KeyError(f"no registered op '{name}'")
    del _REGISTERED[name]
    del OPS[name]


def registered_ops() -> tuple[str, ...]:
    """The names of the ops added from Python, in registration order."""
    return tuple(_REGISTERED)


def registered_object(path: str) -> Any:
    """The class or helper a registered op named by this dotted path, or None."""
    return _OBJECTS.get(path)


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0]


def _check_op_name(name: Any, replace: bool) -> None:
    """The rules of layer names (archspec.spec.names): an op's name is also the default
    name of its layer, a torch submodule attribute and a line of generated source."""
    if not isinstance(name, str):
        raise TypeError(f"an op name must be a string, got {name!r}")
    if not NAME_RE.fullmatch(name) or len(name) > MAX_NAME_CHARS:
        raise ValueError(f"op name {name!r} is not valid: use ASCII letters, digits and '_', "
                         f"not starting with a digit, at most {MAX_NAME_CHARS} characters")
    if name in MODULE_ATTRS or name.startswith("__"):
        raise ValueError(f"op name {name!r} clashes with the torch module attribute of that "
                         "name (a layer named after the op could not be a submodule)")
    if name in BUILTIN_OPS:
        raise ValueError(f"op '{name}' is a built-in op; choose another name")
    if name in OPS and not replace:
        raise ValueError(f"op '{name}' is already registered (by {_REGISTERED.get(name, '?')}); "
                         "pass replace=True to replace it")


def _field(f: Field | Mapping[str, Any], op: str) -> Field:
    """A :class:`Field` from a Field or a dict, its type known and its default valid."""
    if isinstance(f, Mapping):
        try:
            f = Field(**{**f, "choices": tuple(f.get("choices", ()))})
        except TypeError as e:
            raise TypeError(f"op '{op}': bad field {dict(f)!r}: {e}") from None
    if not isinstance(f, Field):
        raise TypeError(f"op '{op}': a field must be an archspec.Field or a dict, got {f!r}")
    if not isinstance(f.name, str) or not NAME_RE.fullmatch(f.name) or f.name in _LAYER_KEYS:
        raise ValueError(f"op '{op}': field name {f.name!r} is not valid (an identifier, not "
                         f"one of the layer keys {', '.join(_LAYER_KEYS)})")
    if f.type not in _TYPE_DOC:
        raise ValueError(f"op '{op}': field '{f.name}' has unknown type {f.type!r}; one of "
                         f"{', '.join(_TYPE_DOC)}")
    if f.type == "choice" and not (f.choices and all(isinstance(c, str) for c in f.choices)):
        raise ValueError(f"op '{op}': choice field '{f.name}' needs choices=(words...)")
    if not f.required and f.default is not None:
        try:
            coerce(f, f.default)
        except OpError as e:
            raise ValueError(f"op '{op}': default of field '{f.name}': {e.message}") from None
    return f


def _check_callables(op: str, **fns: Any) -> None:
    for what, fn in fns.items():
        if fn is not None and not callable(fn):
            raise TypeError(f"op '{op}': {what} must be callable, got {fn!r}")


def _check_arity(op: str, lo: Any, hi: Any) -> None:
    if not (isinstance(lo, int) and lo >= 1):
        raise ValueError(f"op '{op}': min_inputs must be an integer >= 1, got {lo!r}")
    if hi is not None and not (isinstance(hi, int) and hi >= lo):
        raise ValueError(f"op '{op}': max_inputs must be None or an integer >= min_inputs, "
                         f"got {hi!r}")


def _dotted(obj: Any, op: str) -> str:
    """The dotted path standing for an object (its object kept for the backend)."""
    if isinstance(obj, str):
        if not _PATH_RE.fullmatch(obj):
            raise ValueError(f"op '{op}': {obj!r} is not a dotted path such as "
                             "'my_package.layers.CBAM'")
        return obj
    if not callable(obj) or not hasattr(obj, "__qualname__"):
        raise TypeError(f"op '{op}': expected a class, function or dotted path, got {obj!r}")
    path = f"{obj.__module__}.{obj.__qualname__}"
    _OBJECTS[path] = obj
    return path


def _lowering(op: str, fields: tuple[Field, ...], module: Any,
              module_kwargs: Callable[[dict, list[Shape]], Mapping[str, Any]] | None,
              paste: Iterable[Any]) -> TorchModule | None:
    """The generic :class:`TorchModule` lowering; a class object is pasted into
    standalone source, after the helpers it names."""
    if module is None:
        return None
    torch = sys.modules.get("torch")     # already imported if the caller holds a class
    if isinstance(module, type) and torch is not None and not issubclass(module,
                                                                        torch.nn.Module):
        raise TypeError(f"op '{op}': module {module!r} is not a torch.nn.Module subclass")
    if not isinstance(module, (str, type)):
        raise TypeError(f"op '{op}': module must be an nn.Module class or a dotted path, "
                        f"got {module!r}")
    cls = _dotted(module, op)
    pasted = tuple(_dotted(p, op) for p in paste) + (() if isinstance(module, str) else (cls,))
    names = [f.name for f in fields]
    kw = module_kwargs or (lambda a, ins: {n: a[n] for n in names})
    return TorchModule(cls, _guard_kwargs(op, kw), paste=tuple(dict.fromkeys(pasted)))


# -------------------------------------------------------- guards on the user's Python
_BUG_HINT = "the op's Python registration has a bug (not the spec); fix it in {where}"


def _hint(fn: Any) -> str:
    return _BUG_HINT.format(where=getattr(fn, "__module__", None) or "its module")


def _failed(op: str, what: str, e: BaseException) -> str:
    return f"op '{op}' {what} failed: {_failed_text(e)}"


def _guard_infer(op: str, fn: ShapeRule) -> Callable[[dict, list[Shape]], Shape]:
    """The shape rule, with its exceptions and non-shape results made OpErrors."""
    def infer(a: dict, shapes: list[Shape]) -> Shape:
        try:
            out = fn(dict(a), [tuple(s) for s in shapes])
        except OpError:
            raise
        except Exception as e:   # noqa: BLE001 - any bug in user code becomes a located error
            raise OpError(_failed(op, "shape rule", e), hint=_hint(fn)) from None
        if isinstance(out, (tuple, list)) and out:
            dims = [_as_int(x) for x in out]
            if all(x is not None and 1 <= x <= MAX_INT for x in dims):
                return tuple(dims)   # type: ignore[arg-type]
        raise OpError(f"op '{op}' shape rule failed: it returned {_short(out)}, not a shape "
                      "(a tuple of positive integers, the batch left out)", hint=_hint(fn))
    return infer


def _as_int(v: Any) -> int | None:
    """An integer (also numpy's, through ``__index__``), never a bool or a float."""
    if isinstance(v, bool):
        return None
    try:
        return operator.index(v)
    except TypeError:
        return None


def _short(v: Any) -> str:
    try:
        text = repr(v)
    except Exception:   # noqa: BLE001 - a broken __repr__ must not hide the report
        text = f"a {type(v).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


def _guard_count(op: str, what: str, fn: Count | None) -> Callable[[dict, list[Shape], Shape], int]:
    """A parameter or MAC count that must be a non-negative int (0 without ``fn``)."""
    if fn is None:
        return lambda a, i, o: 0

    def count(a: dict, ins: list[Shape], out: Shape) -> int:
        try:
            n = fn(dict(a), [tuple(s) for s in ins], tuple(out))
        except OpError:
            raise
        except Exception as e:   # noqa: BLE001
            raise OpError(_failed(op, what, e), hint=_hint(fn)) from None
        count = _as_int(n)
        if count is not None and 0 <= count <= MAX_INT:
            return count
        raise OpError(f"op '{op}' {what} failed: it returned {_short(n)}, not an integer "
                      ">= 0", hint=_hint(fn))
    return count


def _guard_kwargs(op: str, fn: Callable[[dict, list[Shape]], Mapping[str, Any]]
                  ) -> Callable[[dict, list[Shape]], dict[str, Any]]:
    """Constructor keyword arguments that must be a mapping of identifier keys."""
    def kwargs(a: dict, ins: list[Shape]) -> dict[str, Any]:
        try:
            kw = dict(fn(dict(a), [tuple(s) for s in ins]))
        except OpError:
            raise
        except Exception as e:   # noqa: BLE001
            raise OpError(_failed(op, "module arguments", e), hint=_hint(fn)) from None
        bad = [k for k in kw if not (isinstance(k, str) and k.isidentifier())]
        if bad:
            raise OpError(f"op '{op}' module arguments failed: key {bad[0]!r} is not a "
                          "keyword name", hint=_hint(fn))
        return kw
    return kwargs


def _guard_label(op: str, fn: Callable[..., str] | None) -> Callable[..., str] | None:
    """A diagram label that falls back to the op's name if it fails: a picture is no
    place to stop for a bug."""
    if fn is None:
        return None

    def label(a: dict, i: Shape | None, o: Shape | None) -> str:
        try:
            text = fn(dict(a), i, o)
        except Exception:   # noqa: BLE001
            return op
        return text if isinstance(text, str) else op
    return label


# ------------------------------------------------------------------ entry points
def plugins_enabled() -> bool:
    """False when ``ARCHSPEC_NO_PLUGINS`` is set (to anything but empty or 0)."""
    return os.environ.get(NO_PLUGINS_ENV, "") in ("", "0")


def load_plugins() -> None:
    """Run every ``archspec.ops`` entry point once (sorted by name); see the module
    docstring for how failures are reported."""
    if _state["loaded"]:
        return
    _state["loaded"] = True
    if not plugins_enabled():
        return
    from importlib.metadata import entry_points   # not paid when plugins are off
    try:
        eps = sorted(entry_points(group=GROUP), key=lambda e: e.name)
    except Exception as e:   # noqa: BLE001 - a broken installed METADATA file
        _warn(f"archspec: warning: cannot list the {GROUP} entry points: {e}")
        return
    for ep in eps:
        _load_one(ep)


def _load_one(ep: Any) -> None:
    """Run one entry point (an importlib.metadata.EntryPoint); warn if it fails."""
    dist = getattr(ep, "dist", None)
    where = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
    try:
        obj = ep.load()
        if callable(obj) and not isinstance(obj, ModuleType):
            obj()
    except Exception as e:   # noqa: BLE001 - one bad plugin must not stop the tool
        line = f"'{ep.name}' = {ep.value} (from {where}): {_failed_text(e)}"
        FAILURES.append(line)
        _warn(f"archspec: warning: plugin {line}; its ops are not available")


def _failed_text(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return type(e).__name__ + (f": {text[:300]}" if text else "")


def _warn(line: str) -> None:
    print(line, file=sys.stderr)


def unknown_op_hint() -> str | None:
    """For an unknown op's error: the plugins that failed (one of them may define it)."""
    if not FAILURES:
        return None
    return "a plugin failed to load and may have defined it: " + "; ".join(FAILURES)


__all__ = ["FAILURES", "GROUP", "KINDS", "NO_PLUGINS_ENV", "load_plugins", "plugins_enabled",
           "register_op", "registered_object", "registered_ops", "unknown_op_hint",
           "unregister_op"]
