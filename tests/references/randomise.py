"""Non-trivial random values for a reference's statistics, affines and biases.

torchvision's default init leaves BatchNorm at weight 1, bias 0, mean 0, var 1 and every
bias at 0; with kaiming conv weights EfficientNet-B0's eval output is then about 1e-14,
so a spec that drops its SE gates or a residual still "matches" at atol 1e-4. Before a
reference is compared with a spec-built network, ``randomise_reference`` gives each of
those tensors values that make every layer count. Shared by tests/test_zoo.py and
tests/test_zoo_layout.py.
"""
from __future__ import annotations

import torch
import torch.nn as nn

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear, *_NORMS)


def _fill_norm(mod: nn.Module, gen: torch.Generator) -> None:
    """Scale in [0.5, 1.5), shift ~N(0, 0.2²); running mean ~N(0, 0.2²), var in [0.5, 1.5)."""
    if getattr(mod, "weight", None) is not None:
        mod.weight.copy_(torch.rand(mod.weight.shape, generator=gen) + 0.5)
    if getattr(mod, "bias", None) is not None:
        mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen) * 0.2)
    if getattr(mod, "running_mean", None) is not None:
        mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=gen) * 0.2)
        mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=gen) + 0.5)


def randomise_reference(m: nn.Module, seed: int = 0) -> nn.Module:
    """Give every norm's statistics and affine, every bias, and every bare Parameter
    (a layer scale: one a conv, linear or norm does not own as its weight) random values
    drawn from ``seed``; conv and linear weights keep theirs. Returns ``m``."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, _NORMS):
                _fill_norm(mod, gen)
                continue
            for name, p in mod.named_parameters(recurse=False):
                if name == "bias":
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
                elif not (name == "weight" and isinstance(mod, _WEIGHTED)):
                    p.copy_(torch.rand(p.shape, generator=gen) + 0.5)   # layer scale
    return m
