"""Training recipes: a paper's optimiser, schedule, batch and augmentation as a YAML file.

A recipe is read through :func:`archspec.spec.yamlsrc.parse_yaml`, so every mistake
points at ``recipe.yaml:line:col``; the result is a frozen :class:`Recipe` that is
written back into the run directory (``recipe.yaml``) and compared field by field on
``--resume``. The learning rate is a pure function of the (fractional) epoch, so
resuming needs no scheduler object, only the epoch and step counters.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterable, Mapping

import yaml

from archspec.errors import Location, SpecError, did_you_mean, register_source
from archspec.fsio import read_text
from archspec.spec.yamlsrc import YMap, YNode, parse_set_value, parse_yaml, plain

MAX_RECIPE_BYTES = 1024 * 1024
DATASETS = ("cifar10", "cifar100", "imagefolder")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "multistep", "cosine")
NORMALIZE = ("per_channel", "mean_image", "none")
PAD_MODES = ("reflect", "zeros")


@dataclass(frozen=True)
class Optimizer:
    """The optimiser and its hyper-parameters (torch.optim names)."""

    name: str = "sgd"                    # sgd | adam | adamw
    lr: float = 0.1                      # base learning rate (before the schedule)
    momentum: float = 0.9                # SGD momentum (ignored by Adam)
    nesterov: bool = False               # SGD Nesterov momentum
    weight_decay: float = 0.0            # L2 penalty (decoupled for adamw)
    betas: tuple[float, float] = (0.9, 0.999)   # Adam's moment decay rates
    eps: float = 1e-8                    # Adam's denominator epsilon
    no_decay_bn_bias: bool = False       # exclude BN weights and biases from weight decay


@dataclass(frozen=True)
class Schedule:
    """The learning-rate schedule, a function of the fractional epoch."""

    name: str = "constant"               # constant | multistep | cosine
    milestones: tuple[int, ...] = ()     # multistep: epochs at which lr is multiplied by gamma
    gamma: float = 0.1                   # multistep: the factor
    min_lr: float = 0.0                  # cosine: the floor
    per_step: bool = False               # update every iteration (cosine in Shake-Shake) or per epoch
    warmup_epochs: float = 0.0           # linear warm-up from 0 over this many epochs


@dataclass(frozen=True)
class Augment:
    """Training-set augmentation, applied to whole uint8 batches (on the GPU when there is one)."""

    flip: bool = False                   # random horizontal flip with probability 0.5
    crop_pad: int = 0                    # random crop of the input size from an image padded by this
    pad_mode: str = "reflect"            # reflect (WRN) | zeros (He et al., fb.resnet.torch)


@dataclass(frozen=True)
class Data:
    """Which data set, and how it is normalised."""

    name: str = "cifar10"                # cifar10 | cifar100 | imagefolder
    normalize: str = "per_channel"       # per_channel mean/std | mean_image (He) | none (just /255)
    mean: tuple[float, ...] | None = None  # fixed per-channel mean (0..1 scale), else computed
    std: tuple[float, ...] | None = None   # fixed per-channel std (0..1 scale), else computed
    workers: int = 0                     # CPU loader worker processes (0: the main process)


@dataclass(frozen=True)
class Recipe:
    """Everything about a training run except the network and the data location."""

    name: str = "default"                # a label for the run directory and tables
    description: str = ""                # where the recipe comes from (paper, section)
    epochs: int = 1                      # passes over the training set
    batch_size: int = 128                # global batch (split across DDP ranks)
    eval_batch_size: int = 0             # test batch; 0 means 2 x batch_size
    optimizer: Optimizer = field(default_factory=Optimizer)   # the optimiser
    schedule: Schedule = field(default_factory=Schedule)      # the lr schedule
    augment: Augment = field(default_factory=Augment)         # training augmentation
    data: Data = field(default_factory=Data)                  # data set and normalisation
    label_smoothing: float = 0.0         # cross-entropy label smoothing on logits heads
    grad_clip: float = 0.0               # clip the global gradient norm (0: off)
    seed: int = 0                        # seeds data order, augmentation, dropout and init
    checkpoint_every_s: float = 600.0    # also checkpoint mid-epoch after this many seconds
    sync_bn: bool = False                # DDP: synchronise BatchNorm statistics across ranks

    def lr_at(self, epoch: float) -> float:
        """The learning rate at fractional epoch ``epoch`` (0-based)."""
        s, base = self.schedule, self.optimizer.lr
        e = epoch if s.per_step else math.floor(epoch + 1e-9)
        if s.warmup_epochs > 0 and epoch < s.warmup_epochs:
            return base * (epoch if s.per_step else e + 1) / s.warmup_epochs
        if s.name == "multistep":
            return base * s.gamma ** sum(1 for m in s.milestones if e >= m)
        if s.name == "cosine":
            t = min(max(e - s.warmup_epochs, 0.0) / max(self.epochs - s.warmup_epochs, 1e-9), 1.0)
            return s.min_lr + 0.5 * (base - s.min_lr) * (1 + math.cos(math.pi * t))
        return base

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``recipe.yaml`` (tuples as lists)."""
        def conv(v: Any) -> Any:
            if isinstance(v, tuple):
                return [conv(x) for x in v]
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            return v
        return conv(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_SECTIONS = {"optimizer": Optimizer, "schedule": Schedule, "augment": Augment, "data": Data}
_CHOICES = {("optimizer", "name"): OPTIMIZERS, ("schedule", "name"): SCHEDULES,
            ("data", "name"): DATASETS, ("data", "normalize"): NORMALIZE,
            ("augment", "pad_mode"): PAD_MODES}


def _typed(value: Any, default: Any, ftype: str, key: str, loc: Location) -> Any:
    """Check ``value`` against the dataclass field's annotated type."""
    def bad(what: str) -> SpecError:
        return SpecError(f"'{key}' must be {what}, got {value!r}", loc)
    if "tuple" in ftype:
        if value is None and "None" in ftype:
            return None
        if not isinstance(value, list):
            raise bad("a list")
        num = "float" in ftype
        out = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (not num and
                                                                          not isinstance(v, int)):
                raise bad("a list of numbers" if num else "a list of integers")
            out.append(float(v) if num else int(v))
        return tuple(out)
    if ftype == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if ftype == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if ftype == "float":
        if isinstance(value, str):   # PyYAML reads 5e-4 as a string (YAML 1.1)
            try:
                value = float(value)
            except ValueError:
                raise bad("a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if ftype == "str":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    return value


def _build(cls: type, node: YMap, where: str, section: str | None) -> Any:
    if not isinstance(node, YMap):
        raise SpecError(f"{where} must be a mapping", node.loc)
    ftypes = {f.name: str(f.type) for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, val in node.items():
        loc = node.key_loc(key)
        if key not in ftypes:
            raise SpecError(f"unknown {where} key '{key}'", loc,
                            did_you_mean(key, ftypes) or "keys: " + ", ".join(ftypes))
        if key in _SECTIONS and section is None:
            kwargs[key] = _build(_SECTIONS[key], val, f"'{key}'", key)
            continue
        v = plain(val)
        kwargs[key] = _typed(v, None, ftypes[key], key, val.loc)
        choices = _CHOICES.get((section or "", key))
        if choices and kwargs[key] not in choices:
            raise SpecError(f"'{key}' must be one of {', '.join(choices)}, got {v!r}", val.loc,
                            did_you_mean(str(v), choices))
    obj = cls(**kwargs)
    return obj


def _validate(r: Recipe, root: YMap) -> None:
    def loc(section: str, key: str) -> Location:
        node = root.get(section)
        if isinstance(node, YMap) and key in node:
            return node.key_loc(key)
        return root.key_loc(section) if section in root else root.loc
    top = lambda k: root.key_loc(k) if k in root else root.loc  # noqa: E731
    if r.epochs < 1:
        raise SpecError(f"'epochs' must be at least 1, got {r.epochs}", top("epochs"))
    if r.batch_size < 1:
        raise SpecError(f"'batch_size' must be at least 1, got {r.batch_size}", top("batch_size"))
    if r.optimizer.lr <= 0:
        raise SpecError(f"'lr' must be positive, got {r.optimizer.lr}", loc("optimizer", "lr"))
    if r.augment.crop_pad < 0:
        raise SpecError("'crop_pad' must be >= 0", loc("augment", "crop_pad"))
    if list(r.schedule.milestones) != sorted(r.schedule.milestones):
        raise SpecError("'milestones' must increase", loc("schedule", "milestones"))
    if (r.data.mean is None) != (r.data.std is None):
        raise SpecError("give both 'mean' and 'std', or neither", loc("data", "mean"))
    if r.data.std is not None and any(s <= 0 for s in r.data.std):
        raise SpecError("'std' values must be positive", loc("data", "std"))
    if not 0 <= r.label_smoothing < 1:
        raise SpecError("'label_smoothing' must be in [0, 1)", top("label_smoothing"))


def recipe_from_node(root: YNode, path: str) -> Recipe:
    """Build a :class:`Recipe` from located YAML (a file, or a grid's ``recipe:`` entry)."""
    if not isinstance(root, YMap):
        raise SpecError("a recipe must be a YAML mapping", root.loc,
                        "start with keys such as 'epochs:', 'batch_size:', 'optimizer:'")
    r = _build(Recipe, root, "recipe", None)
    if "name" not in root:
        r = replace(r, name=os.path.splitext(os.path.basename(path))[0])
    _validate(r, root)
    return r


def resolve_recipe_path(name: str) -> str:
    """A recipe file path, or a shipped recipe's name (``wrn`` → recipes/wrn.yaml)."""
    from archspec.library import resolve
    return resolve(name, "recipe", Location("--recipe"))


def load_recipe(path: str, overrides: Iterable[str] = ()) -> Recipe:
    """Read a recipe file and apply ``section.key=value`` overrides (``optimizer.lr=0.05``)."""
    path = resolve_recipe_path(path)
    text = read_text(path, MAX_RECIPE_BYTES, "recipe")
    if path.endswith((".yaml", ".yml")):   # error context: never the lines of a non-YAML file
        register_source(path, text)
    r = recipe_from_node(parse_yaml(text, path), path)
    return apply_overrides(r, overrides)


def apply_overrides(r: Recipe, overrides: Iterable[str] | Mapping[str, Any]) -> Recipe:
    """``epochs=2``, ``optimizer.lr=0.05``: dotted keys into the recipe, type-checked."""
    items = overrides.items() if isinstance(overrides, Mapping) else \
        [_split(t) for t in overrides]
    for key, value in items:
        loc = Location(f"--recipe-set {key}={value}")
        parts = key.split(".")
        if len(parts) == 1:
            target, name, cls = None, parts[0], Recipe
        elif len(parts) == 2 and parts[0] in _SECTIONS:
            target, name, cls = parts[0], parts[1], _SECTIONS[parts[0]]
        else:
            raise SpecError(f"unknown recipe key '{key}'", loc,
                            "use 'epochs', or 'section.key' with a section among "
                            + ", ".join(_SECTIONS))
        ftypes = {f.name: str(f.type) for f in fields(cls)}
        if name not in ftypes or (target is None and name in _SECTIONS):
            raise SpecError(f"unknown recipe key '{key}'", loc,
                            did_you_mean(name, ftypes) or "keys: " + ", ".join(ftypes))
        v = _typed(value, None, ftypes[name], key, loc)
        choices = _CHOICES.get((target or "", name))
        if choices and v not in choices:
            raise SpecError(f"'{key}' must be one of {', '.join(choices)}, got {v!r}", loc)
        if target is None:
            r = replace(r, **{name: v})
        else:
            r = replace(r, **{target: replace(getattr(r, target), **{name: v})})
    return r


def _split(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise SpecError(f"override '{text}' is not of the form key=value",
                        Location(f"--recipe-set {text}"), "for example optimizer.lr=0.05")
    k, v = text.split("=", 1)
    return k.strip(), parse_set_value(v, "--recipe-set")


def diff_recipes(old: Recipe, new: Recipe) -> list[str]:
    """``optimizer.lr: 0.1 → 0.05`` for every field that differs (for refusing a resume)."""
    out = []
    a, b = old.to_dict(), new.to_dict()
    for k in a:
        if isinstance(a[k], dict):
            for kk in a[k]:
                if a[k][kk] != b[k].get(kk):
                    out.append(f"{k}.{kk}: {a[k][kk]!r} → {b[k].get(kk)!r}")
        elif a[k] != b.get(k):
            out.append(f"{k}: {a[k]!r} → {b.get(k)!r}")
    return out


#: The recipe of a run that names none: the WRN paper's (Zagoruyko & Komodakis 2016).
DEFAULT_RECIPE = "wrn"


def default_recipe() -> Recipe:
    """The shipped WRN recipe. Never a built-in fallback: a run says which recipe it used."""
    from archspec.library import library_dir, not_found
    path = library_dir("recipe") / f"{DEFAULT_RECIPE}.yaml"
    if not path.is_file():
        raise not_found(DEFAULT_RECIPE, "recipe", Location("--recipe"))
    return load_recipe(str(path))


__all__ = ["Recipe", "Optimizer", "Schedule", "Augment", "Data", "load_recipe", "apply_overrides",
           "recipe_from_node", "diff_recipes", "default_recipe", "resolve_recipe_path"]
