"""The training objective, read from the spec's outputs.

Each output is a head: cross-entropy when it produces logits, NLL when it already
ends in ``log_softmax`` (the CIFAR-10 post's networks, specs/cifar10-*.yaml), NLL of
the log when it ends in ``softmax``. Training-only heads (GoogLeNet's auxiliary
classifiers) add their ``loss_weight`` times their loss in training and are absent
in evaluation, where the module returns the main head alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from archspec.ops import OPS


@dataclass(frozen=True)
class Head:
    """One network output as the loss sees it."""

    name: str            # output name in the spec
    kind: str            # logits | log_probs | probs
    weight: float        # loss weight (1.0 for the main head)
    train_only: bool     # present only in training mode


def head_kind(g: Any, node: str) -> str:
    """logits, or log_probs/probs when the head's last op is (log_)softmax."""
    op = OPS.get(g.nodes[node]["op"])
    return op.head if op is not None else "logits"


def heads_of(g: Any, module: Any = None) -> list[Head]:
    """Heads in spec order; the module's ``head_kinds``/``loss_weights`` win when it has them."""
    kinds = getattr(module, "head_kinds", None) or {}
    weights = getattr(module, "loss_weights", None) or {}
    out = []
    for o in g.graph["outputs"]:
        out.append(Head(o["name"], kinds.get(o["name"], head_kind(g, o["node"])),
                        float(weights.get(o["name"], o.get("loss_weight", 1.0))),
                        bool(o.get("train_only"))))
    return out


def per_sample_loss(out: torch.Tensor, y: torch.Tensor, kind: str, smoothing: float = 0.0,
                    reduction: str = "mean") -> torch.Tensor:
    """The head's loss; labels of -1 (evaluation padding) are ignored."""
    out = out.float()
    if kind == "logits":
        return F.cross_entropy(out, y, ignore_index=-1, label_smoothing=smoothing,
                               reduction=reduction)
    if kind == "probs":
        out = out.clamp_min(1e-12).log()
    return F.nll_loss(out, y, ignore_index=-1, reduction=reduction)


class Objective:
    """Splits the module's output into heads and sums their weighted losses."""

    def __init__(self, heads: Sequence[Head], smoothing: float = 0.0):
        self.heads = list(heads)
        self.main = next(h for h in self.heads if not h.train_only)
        self.smoothing = smoothing

    def split(self, out: Any, training: bool) -> dict[str, torch.Tensor]:
        if isinstance(out, torch.Tensor):
            return {self.main.name: out}
        names = [h.name for h in self.heads] if training and len(out) == len(self.heads) else \
            [h.name for h in self.heads if not h.train_only]
        return dict(zip(names, out))

    def train_loss(self, out: Any, y: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(weighted total to back-propagate, main head's summed loss, main head's correct count)."""
        parts = self.split(out, True)
        total = None
        main_out = parts[self.main.name]
        for h in self.heads:
            if h.name not in parts:
                continue
            loss = per_sample_loss(parts[h.name], y, h.kind,
                                   self.smoothing if h.kind == "logits" else 0.0)
            total = loss * h.weight if total is None else total + loss * h.weight
        with torch.no_grad():
            main_sum = per_sample_loss(main_out.detach(), y, self.main.kind, 0.0, "sum")
            correct = (main_out.detach().argmax(1) == y).sum()
        assert total is not None
        return total, main_sum, correct

    def eval_loss(self, out: Any, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed loss, correct count) of the main head, ignoring -1 labels."""
        main_out = self.split(out, False)[self.main.name]
        loss = per_sample_loss(main_out, y, self.main.kind, 0.0, "sum")
        correct = ((main_out.argmax(1) == y) & (y >= 0)).sum()
        return loss, correct
