"""The Wide ResNet as its authors wrote it, for the B(3,3) block.

Written (not copied) from reading Zagoruyko & Komodakis's own code,
https://github.com/szagoruyko/wide-residual-networks: ``pytorch/resnet.py``, whose
functional ``block(x, ...)`` computes ``o1 = relu(bn0(x))``, ``y = conv0(o1)``,
``o2 = relu(bn1(y))``, ``z = conv1(o2)`` and returns ``z + convdim(o1)`` where the block
has a 1×1 ``convdim`` (its input and output widths differ), else ``z + x``; and
``models/wide-resnet.lua``, whose ``wide_basic`` puts the first BN-ReLU before the
ConcatTable (so both the convs and the 1×1 shortcut read it) exactly when
``nInputPlane ~= nOutputPlane``. The projection shortcut therefore reads the
pre-activated input, where pystyle.info's port (``wrn_pystyle.py``) reads the raw one.

Like the authors', it is functional over a flat dict of tensors keyed their way
(``group1.block0.convdim``, ``group1.block0.bn0.running_var``, …); :func:`from_archspec`
maps an archspec ``specs/wrn.yaml`` state_dict onto those keys, one to one.
"""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F

Tensors = dict[str, torch.Tensor]


def _bn(x: torch.Tensor, t: Tensors, base: str) -> torch.Tensor:
    """Eval-mode batch norm over the running statistics stored under ``base``."""
    return F.batch_norm(x, t[base + ".running_mean"], t[base + ".running_var"],
                        t[base + ".weight"], t[base + ".bias"], training=False)


def _block(x: torch.Tensor, t: Tensors, base: str, stride: int) -> torch.Tensor:
    """One wide basic block; the 1×1 projection reads relu(bn0(x)), the authors' way."""
    o1 = F.relu(_bn(x, t, base + ".bn0"))
    y = F.conv2d(o1, t[base + ".conv0"], stride=stride, padding=1)
    z = F.conv2d(F.relu(_bn(y, t, base + ".bn1")), t[base + ".conv1"], padding=1)
    if base + ".convdim" in t:
        return z + F.conv2d(o1, t[base + ".convdim"], stride=stride)
    return z + x


def wrn_forward(x: torch.Tensor, t: Tensors, depth: int) -> torch.Tensor:
    """WRN-depth-k's eval forward over the authors' tensors (k is in their shapes)."""
    n = (depth - 4) // 6
    o = F.conv2d(x, t["conv0"], padding=1)
    for g, stride in enumerate((1, 2, 2)):
        for i in range(n):
            o = _block(o, t, f"group{g}.block{i}", stride if i == 0 else 1)
    o = F.relu(_bn(o, t, "bn"))
    o = F.adaptive_avg_pool2d(o, 1).flatten(1)     # their avg_pool2d(o, 8) at 32×32
    return F.linear(o, t["fc.weight"], t["fc.bias"])


_RENAME = (  # archspec's (pystyle.info's) names → the authors' names, within a block
    (r"^layer(\d)\.(\d+)\.bn1\.", "group{g}.block{i}.bn0."),
    (r"^layer(\d)\.(\d+)\.conv1\.weight$", "group{g}.block{i}.conv0"),
    (r"^layer(\d)\.(\d+)\.bn2\.", "group{g}.block{i}.bn1."),
    (r"^layer(\d)\.(\d+)\.conv2\.weight$", "group{g}.block{i}.conv1"),
    (r"^layer(\d)\.(\d+)\.shortcut\.weight$", "group{g}.block{i}.convdim"),
)


def _authors_key(key: str) -> str | None:
    """The authors' name for one archspec state_dict key (None: a BN's batch counter,
    which their stats do not keep)."""
    if key.endswith("num_batches_tracked"):
        return None
    if key == "conv1.weight":
        return "conv0"
    for pattern, new in _RENAME:
        m = re.match(pattern, key)
        if m:
            head = new.format(g=int(m.group(1)) - 1, i=m.group(2))
            return head + key[m.end():] if new.endswith(".") else head
    if key.split(".")[0] in ("bn", "fc"):
        return key
    raise KeyError(f"no authors' name for {key!r}")


def from_archspec(state: Tensors) -> Tensors:
    """An archspec wrn.yaml state_dict as the authors' flat tensor dict (every key
    but the batch counters mapped, none twice)."""
    out: Tensors = {}
    for k, v in state.items():
        new = _authors_key(k)
        if new is not None:
            assert new not in out, new
            out[new] = v
    return out


def authors_shapes(depth: int, width: int, num_classes: int = 10) -> dict[str, tuple]:
    """The shape of every tensor the authors' ``resnet(depth, width, num_classes)``
    creates (parameters and BN statistics), from their gen_block_params' rule: a
    ``convdim`` only where a block's input and output widths differ."""
    n = (depth - 4) // 6
    widths = [16 * width, 32 * width, 64 * width]
    shapes: dict[str, tuple] = {"conv0": (16, 3, 3, 3)}
    ni = 16
    for g, no in enumerate(widths):
        for i in range(n):
            b, cin = f"group{g}.block{i}", ni if i == 0 else no
            shapes[f"{b}.conv0"], shapes[f"{b}.conv1"] = (no, cin, 3, 3), (no, no, 3, 3)
            for bn, c in (("bn0", cin), ("bn1", no)):
                for s in ("weight", "bias", "running_mean", "running_var"):
                    shapes[f"{b}.{bn}.{s}"] = (c,)
            if cin != no:
                shapes[f"{b}.convdim"] = (no, cin, 1, 1)
        ni = no
    for s in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"bn.{s}"] = (widths[2],)
    shapes["fc.weight"], shapes["fc.bias"] = (num_classes, widths[2]), (num_classes,)
    return shapes
