"""Torch ops that torch itself lacks: the Shake-Shake merge (Gastaldi 2017).

Shake-Shake mixes two residual branches with a per-sample random convex weight
``alpha`` in the forward pass and an *independent* random weight ``beta`` in the
backward pass; evaluation uses 0.5/0.5. The random draws happen outside the
autograd Function, so torch.compile and torch.export trace it without graph
breaks (dynamo supports custom autograd Functions with static methods).

The source of this module is also pasted into standalone generated code
(:mod:`archspec.codegen`), so it imports only torch.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class ShakeFunction(torch.autograd.Function):
    """``alpha·a + (1-alpha)·b`` forward; gradients ``beta·g`` and ``(1-beta)·g`` backward."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor,
                beta: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(beta)
        return alpha * a + (1 - alpha) * b

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (beta,) = ctx.saved_tensors
        return beta * grad, (1 - beta) * grad, None, None


def shake(a: torch.Tensor, b: torch.Tensor, training: bool) -> torch.Tensor:
    """The Shake-Shake merge of two equal-shaped tensors (batch first)."""
    if not training:
        return 0.5 * (a + b)
    shape = (a.shape[0],) + (1,) * (a.dim() - 1)
    alpha = torch.rand(shape, dtype=a.dtype, device=a.device)
    beta = torch.rand(shape, dtype=a.dtype, device=a.device)
    return ShakeFunction.apply(a, b, alpha, beta)


class Shake(nn.Module):
    """Module form of :func:`shake`: reads ``self.training``; holds no state."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return shake(a, b, self.training)
