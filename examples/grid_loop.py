"""Your own training loop over the cells of an ablation grid.

`archspec grid GRID --train` trains every cell with a recipe; when you would rather
keep your own script, `archspec.expand_grid` gives you each cell as a spec and
`archspec.build_module` turns it into an ordinary `torch.nn.Module`. This script
trains each cell for a few steps on one fixed batch of random images (a stand-in
for your data loader) and prints the training loss of the first and the last step,
next to the cell's parameters (torch's count, checked against the static summary's)
and MACs.

    python examples/grid_loop.py                                   # the 6 cells, 10 steps each
    python examples/grid_loop.py --set width=8 --set in_size=16 --steps 5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import archspec

HERE = Path(__file__).resolve().parent


def train_cell(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
               steps: int, lr: float) -> list[float]:
    """SGD steps on one batch; returns the training loss of each step."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grid", nargs="?", default=str(HERE / "grids" / "cifar-resnet-blocks.yaml"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a fixed override for every cell, e.g. width=8")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    rows = []
    for name, spec in archspec.expand_grid(args.grid, args.set):   # a bad grid raises here
        if not rows:
            print(f"{'cell':<14}{'params':>10}{'MACs':>11}{'loss first':>11}{'last':>8}")
        summary = archspec.summarize(archspec.compile_graph(spec))   # no torch needed here
        model = archspec.build_module(spec)
        n_params = sum(p.numel() for p in model.parameters())
        if n_params != summary.params:
            raise RuntimeError(f"{name}: torch has {n_params} parameters, "
                               f"the static summary {summary.params}")
        g = torch.Generator().manual_seed(1)          # the same batch for every cell
        images = torch.randn(args.batch, *summary.input_shape, generator=g)
        labels = torch.randint(0, summary.outputs[0]["shape"][0], (args.batch,), generator=g)
        losses = train_cell(model, images, labels, args.steps, args.lr)
        print(f"{name:<14}{n_params:>10,}{summary.macs / 1e6:>9.2f} M{losses[0]:>11.3f}"
              f"{losses[-1]:>8.3f}")
        rows.append({"cell": name, "params": n_params, "macs": summary.macs, "losses": losses})
    return rows


if __name__ == "__main__":
    try:
        main()
    except archspec.SpecError as e:          # a bad grid or --set: one located line, exit 2
        print(e, file=sys.stderr)
        sys.exit(2)
