"""Atomic files and checkpoints that survive SIGKILL at any instant.

A checkpoint is a directory (``last/``, ``best/``) holding ``model.safetensors``
(weights and buffers), ``state.pt`` (optimizer, scaler, RNG, epoch/step counters and
metric history; read back with ``weights_only=True``) and ``checkpoint.json``
(written last, with the other files' SHA-256, so a directory without it is
incomplete and one whose hashes disagree is corrupted). It is built in a temporary
sibling and swapped in with two renames; :func:`load_checkpoint` finishes a swap a
kill interrupted, so there is always one complete checkpoint to resume from.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import torch

from archspec.errors import Location, SpecError
from archspec.fsio import new_dir, recover_dir, umask

FORMAT = 1


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_file(path: str) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def state_dict_for_save(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU, contiguous, unshared copies (safetensors refuses shared storage)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(path: str, weights: dict[str, torch.Tensor], state: dict[str, Any] | None,
                    meta: dict[str, Any]) -> None:
    """Write a checkpoint directory atomically (build aside, then swap in)."""
    from safetensors.torch import save_file
    with new_dir(path) as tmp:
        wpath = os.path.join(tmp, "model.safetensors")
        save_file(weights, wpath, metadata={"format": "archspec", **{
            k: json.dumps(v) for k, v in meta.items()}})
        os.chmod(wpath, 0o666 & ~umask())     # safetensors writes 0600; weights are for sharing
        _fsync_file(wpath)
        files = {"model.safetensors": _sha256(wpath)}
        if state is not None:
            spath = os.path.join(tmp, "state.pt")
            with open(spath, "wb") as fh:
                torch.save(state, fh)
                fh.flush()
                os.fsync(fh.fileno())
            files["state.pt"] = _sha256(spath)
        info = {"format": FORMAT, "files": files, **meta}
        with open(os.path.join(tmp, "checkpoint.json"), "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())


def recover(path: str) -> None:
    """Finish a swap that a kill interrupted (``path`` missing, its replacement aside):
    :func:`archspec.fsio.recover_dir` keeps the finished new checkpoint, else the old."""
    recover_dir(path)


def read_meta(path: str) -> dict[str, Any]:
    """``checkpoint.json`` of a checkpoint directory, checked for completeness."""
    recover(path)
    loc = Location(path)
    info_path = os.path.join(path, "checkpoint.json")
    if not os.path.isfile(info_path):
        raise SpecError(f"no checkpoint in {path} (checkpoint.json is missing)", loc,
                        "the run never finished a checkpoint; start it again")
    try:
        with open(info_path, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError) as e:
        raise SpecError(f"corrupted checkpoint {info_path}: {e}", Location(info_path)) from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise SpecError(f"{info_path} is not an archspec checkpoint (format "
                        f"{info.get('format') if isinstance(info, dict) else '?'})",
                        Location(info_path))
    return info


def load_checkpoint(path: str, need_state: bool = True
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, dict[str, Any]]:
    """Weights, training state and meta of a checkpoint directory, verified by hash."""
    from safetensors.torch import load_file
    info = read_meta(path)
    for name, digest in info["files"].items():
        fp = os.path.join(path, name)
        if not os.path.isfile(fp):
            raise SpecError(f"corrupted checkpoint: {name} is missing from {path}", Location(fp))
        if _sha256(fp) != digest:
            raise SpecError(f"corrupted checkpoint: {fp} does not match its recorded SHA-256",
                            Location(fp), "the file was changed or truncated after it was "
                            "written; use best/ or start again")
    try:
        weights = load_file(os.path.join(path, "model.safetensors"))
    except Exception as e:
        raise SpecError(f"corrupted checkpoint weights: {e}",
                        Location(os.path.join(path, "model.safetensors"))) from None
    state = None
    if need_state:
        sp = os.path.join(path, "state.pt")
        if "state.pt" not in info["files"]:
            raise SpecError(f"{path} holds weights only (no training state to resume from)",
                            Location(path))
        try:
            state = torch.load(sp, map_location="cpu", weights_only=True)
        except Exception as e:
            raise SpecError(f"corrupted checkpoint state {sp}: {type(e).__name__}: {e}",
                            Location(sp)) from None
    return weights, state, info


def read_weights(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Weights from a safetensors file, a checkpoint or run directory, or a torch state_dict.

    ``.pt``/``.pth`` files (torchvision's downloads) are read with ``weights_only=True``;
    ``module.`` (DDP) and ``_orig_mod.`` (torch.compile) prefixes are removed.
    """
    loc = Location(path)
    if os.path.isdir(path):
        for sub in ("best", "last"):
            cand = os.path.join(path, sub)
            recover(cand)
            if os.path.isdir(cand):
                path = cand
                break
        if not os.path.isfile(os.path.join(path, "model.safetensors")):
            raise SpecError(f"no weights in {path}", loc,
                            "give a .safetensors file, a checkpoint directory or a run directory")
        w, _, info = load_checkpoint(path, need_state=False)
        return w, {k: json.dumps(v) for k, v in info.items() if k != "files"}
    if not os.path.isfile(path):
        raise SpecError(f"no such weights file '{path}'", loc)
    if path.endswith(".safetensors"):
        from safetensors import safe_open
        from safetensors.torch import load_file
        try:
            with safe_open(path, "pt") as fh:
                meta = fh.metadata() or {}
            return load_file(path), meta
        except Exception as e:
            raise SpecError(f"corrupted safetensors file {path}: {e}", loc) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SpecError(f"cannot read weights {path}: {type(e).__name__}: {str(e)[:200]}", loc,
                        "archspec reads safetensors files and torch state_dicts (weights_only)"
                        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SpecError(f"{path} is not a state_dict of tensors", loc)
    out = {}
    for k, v in obj.items():
        for pre in ("module.", "_orig_mod."):
            while k.startswith(pre):
                k = k[len(pre):]
        out[k] = v
    return out, {}


def load_weights_into(module: torch.nn.Module, weights: dict[str, torch.Tensor], where: str
                      ) -> None:
    """``load_state_dict`` with a located, readable error listing what does not match."""
    own = module.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape (e.g. {'; '.join(shapes[:2])})")
        raise SpecError(f"the weights in {where} do not fit the spec: " + ", ".join(parts),
                        Location(where), "check the spec and its --set values")
    module.load_state_dict(weights, strict=True)
