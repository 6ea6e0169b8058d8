"""A new op from Python: CBAM attention, registered with ``archspec.register_op``.

Woo et al., "CBAM: Convolutional Block Attention Module" (ECCV 2018), Section 3:

* channel attention: average- and max-pool the (C, H, W) map to two C-vectors, pass
  both through one shared MLP C → C/r → C (ReLU between), add, sigmoid, and multiply
  the map by the result (one weight per channel);
* spatial attention: the mean and the max across channels give a (2, H, W) map, a
  7×7 conv makes it (1, H, W), sigmoid, and multiply (one weight per position).

The op's shape rule, parameter and MAC counts are plain Python (no torch), so
``archspec summary`` figures are right before anything is built. Parameters (the MLP
as two 1×1 convs with biases, the spatial conv with a bias):
``2·C·C/r + C/r + C + 2·k² + 1``. MACs, by torchvision's convention (convs and linears):
the MLP on two pooled vectors, ``2 · 2·C·C/r``, plus the spatial conv, ``H·W·2·k²``.

This script registers the op, loads ``examples/cbam-resnet.yaml`` (a CIFAR ResNet-20
with CBAM in every block), prints the summary, builds the torch module, runs a
forward pass, checks the static counts against torch's, and writes standalone source
(``--emit model.py``) that runs without archspec (the CBAM class is pasted into it).

    python examples/cbam.py
    python examples/cbam.py --set reduction=4 --emit /tmp/cbam_resnet.py

A package can ship the same op to every user through an entry point instead:
``[project.entry-points."archspec.ops"] cbam = "my_package.cbam:register"``
(see docs/plugins.md).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn as nn

import archspec
from archspec.ops import Shape

HERE = Path(__file__).resolve().parent


class CBAM(nn.Module):
    """CBAM on a (N, C, H, W) tensor: channel attention, then spatial attention."""

    def __init__(self, channels, reduction=16, kernel=7):
        super().__init__()
        hidden = channels // reduction
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(),
                                 nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x):
        avg = self.mlp(x.mean((2, 3), keepdim=True))
        mx = self.mlp(x.amax((2, 3), keepdim=True))
        x = x * torch.sigmoid(avg + mx)
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.spatial(pooled))


def cbam_shape(args: dict, ins: list[Shape]) -> Shape:
    """Refines its input: the output shape is the input's. Bad arguments are OpErrors,
    which archspec reports at the spec line (and argument) that caused them."""
    if len(ins[0]) != 3:
        raise archspec.OpError(f"cbam expects a (C, H, W) input, got {len(ins[0])} dims")
    c, r, k = ins[0][0], args["reduction"], args["kernel"]
    if c % r:
        raise archspec.OpError(f"cbam's channels {c} are not divisible by reduction {r}",
                               "reduction", "choose a reduction dividing the channels")
    if k % 2 == 0:
        raise archspec.OpError(f"cbam's spatial kernel must be odd to keep the size, got {k}",
                               "kernel", "the paper uses 7")
    return ins[0]


def cbam_params(args: dict, ins: list[Shape], out: Shape) -> int:
    c, k = ins[0][0], args["kernel"]
    h = c // args["reduction"]
    return 2 * c * h + h + c + 2 * k * k + 1


def cbam_macs(args: dict, ins: list[Shape], out: Shape) -> int:
    c, hh, ww = ins[0]
    h = c // args["reduction"]
    return 2 * (2 * c * h) + hh * ww * 2 * args["kernel"] ** 2


def register() -> None:
    """Add the ``cbam`` op (an entry point of the ``archspec.ops`` group may name this)."""
    archspec.register_op(
        "cbam", infer=cbam_shape, params=cbam_params, macs=cbam_macs,
        fields=[archspec.Field("reduction", "pos_int", 16, "channel-MLP reduction ratio r; "
                               "divides the channels"),
                archspec.Field("kernel", "pos_int", 7, "spatial attention conv size (odd)")],
        module=CBAM,
        module_kwargs=lambda a, ins: dict(channels=ins[0][0], reduction=a["reduction"],
                                          kernel=a["kernel"]),
        doc="CBAM channel + spatial attention (Woo et al., ECCV 2018)",
        label=lambda a, i, o: f"cbam r{a['reduction']}, {a['kernel']}×{a['kernel']}",
        replace=True)       # main() may run more than once in one process


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", nargs="?", default=str(HERE / "cbam-resnet.yaml"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--emit", metavar="PATH", help="write standalone PyTorch source here")
    args = ap.parse_args(argv)

    register()
    spec = archspec.load_spec(args.spec, args.set)
    graph = archspec.compile_graph(spec)
    summary = archspec.summarize(graph)
    model = archspec.build_module(graph)
    torch_params = sum(p.numel() for p in model.parameters())
    assert torch_params == summary.params, (torch_params, summary.params)
    size = graph.graph["input"]
    x = torch.randn(args.batch, *graph.nodes[size]["shape"])
    model.eval()
    with torch.no_grad():
        y = model(x)
    cbam_nodes = [n for n, d in graph.nodes(data=True) if d["op"] == "cbam"]
    print(f"{graph.graph['name']}: {summary.params:,} parameters (torch: {torch_params:,}), "
          f"{summary.macs / 1e6:.2f} MMACs, {len(cbam_nodes)} cbam layers")
    print(f"forward: {tuple(x.shape)} -> {tuple(y.shape)}")
    if args.emit:
        from archspec.codegen import generate
        Path(args.emit).write_text(generate(graph), encoding="utf-8")
        print(f"standalone source: {args.emit}")
    return {"params": summary.params, "torch_params": torch_params, "macs": summary.macs,
            "cbam": len(cbam_nodes), "out": tuple(y.shape)}


if __name__ == "__main__":
    main()
