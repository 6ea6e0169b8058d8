"""Accuracy and loss of saved weights on a data set's test split (``archspec eval``).

Weights come from a run (``best/`` first), a checkpoint directory, a safetensors
file or a torch ``state_dict`` (torchvision's downloads load into specs that mirror
torchvision's module names). The normalisation a run trained with is stored in its
checkpoints and reused; for foreign weights it comes from the recipe's ``data``
section (per-channel statistics of the training split unless fixed values are given).
"""
from __future__ import annotations

import json
import os
from typing import Any

import torch

from archspec.errors import Location, SpecError
from archspec.train.checkpoint import load_weights_into, read_weights
from archspec.train.data import Batches, Normalizer, Splits, load_data
from archspec.train.distributed import resolve_device
from archspec.train.heads import Objective, heads_of
from archspec.train.loop import AMP, check_fit, load_network
from archspec.train.recipe import Augment, Recipe


def evaluate_weights(spec: str, weights: str, *, overrides: Any = (), data: str | None = None,
                     data_dir: str | None = None, recipe: Recipe | None = None,
                     batch_size: int = 256, device: str = "auto", amp: str = "off",
                     split: str = "test", subset: int = 0, download: bool = True
                     ) -> dict[str, Any]:
    """``{"accuracy", "loss", "images", "data", "weights"}`` of ``weights`` loaded into ``spec``."""
    _, g = load_network(spec, list(overrides))
    tensors, meta = read_weights(weights)
    data_name = data or _meta(meta, "data") or (recipe.data.name if recipe else "cifar10")
    if data_dir is None:             # a run's weights: its own data set, where it was read
        found = _run_info(weights)
        run_dir = found[1].get("data_dir") if found else None
        if isinstance(run_dir, str) and os.path.isdir(run_dir) and (
                found[1].get("data") == data_name):  # type: ignore[index]
            data_dir = run_dir
    splits = load_data(data_name, data_dir, download)
    chosen = splits.test if split == "test" else splits.train
    chosen = chosen.subset(subset or None)
    check_fit(g, Splits(splits.name, splits.root, splits.train, chosen))
    norm_meta = _meta(meta, "normalize")
    r = recipe or Recipe()
    norm = Normalizer.from_meta(norm_meta) if norm_meta else Normalizer.from_data(r.data,
                                                                                  splits.train)
    dev = resolve_device(device)
    from archspec.torch_backend import build_module
    model = build_module(g)
    try:
        load_weights_into(model, tensors, weights)
    except SpecError as e:
        trained = _run_settings(weights)
        if not trained:
            raise
        raise SpecError(e.message, e.loc, f"the run trained {trained}") from None
    model = model.to(dev).eval()
    objective = Objective(heads_of(g, model))
    batches = Batches(chosen, batch_size, train=False, augment=Augment(), norm=norm, device=dev)
    amp_dtype = AMP.get(amp)
    loss = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.int64, device=dev)
    try:
        with torch.no_grad():
            for x, y in batches.epoch_iter(0):
                with torch.autocast(dev.type, dtype=amp_dtype or torch.float32,
                                    enabled=amp_dtype is not None):
                    out = model(x)
                l_, c = objective.eval_loss(out, y)
                loss += l_.double()
                correct += c
    except torch.OutOfMemoryError:
        raise SpecError(f"CUDA out of memory at batch size {batch_size}",
                        Location("--batch-size"), f"try --batch-size {max(1, batch_size // 2)}"
                        ) from None
    n = len(chosen)
    return {"accuracy": float(correct) / max(1, n), "loss": float(loss) / max(1, n), "images": n,
            "data": data_name, "split": split, "weights": weights}


def _run_info(weights: str) -> tuple[str, dict[str, Any]] | None:
    """(run directory, its run.json) when ``weights`` is a run, or a checkpoint or file in one."""
    w = os.path.normpath(weights)
    for d in (w, os.path.dirname(w), os.path.dirname(os.path.dirname(w))):
        p = os.path.join(d, "run.json")
        if os.path.isfile(p):
            try:
                with open(p, encoding="utf-8") as fh:
                    info = json.load(fh)
            except (OSError, ValueError):
                return None
            return (d, info) if isinstance(info, dict) else None
    return None


def _run_settings(weights: str) -> str | None:
    """``spec 'wrn' with --set d=10 --set k=1`` for weights inside a run directory."""
    found = _run_info(weights)
    if found is None:
        return None
    d, info = found
    try:
        sets = " ".join(f"--set {k}={v}" for k, v in info.get("overrides", []))
    except (TypeError, ValueError):
        return None
    return f"spec '{info.get('spec_name')}'" + (f" with {sets}" if sets else "") + \
        f" (a copy is in {os.path.join(d, str(info.get('spec')))})"


def _meta(meta: dict[str, str], key: str) -> Any:
    v = meta.get(key)
    if v is None:
        return None
    try:
        return json.loads(v)
    except ValueError:
        return v
