"""Write tests/golden/torchvision-zoo.json: torchvision's 68 CNN classification builders
and the figures the zoo's specs must equal, read from torchvision itself.

Why a file: the torch-free suite checks every spec's static parameter count and MACs
against torchvision without importing torch, so the reference figures are recorded once
here, from torchvision 0.29.1 (the lock's), and the file names that version. Run it again
after changing the torchvision pin:

    .venv/bin/python scripts/torchvision_zoo.py

For each builder: ``params`` (the numel of a freshly built model, on the meta device so
nothing is allocated), ``family`` (the torchvision module that defines it) and, for each
of its published weights, the weights' ``num_params``, input size (the crop size of the
weights' own transforms) and ``_ops`` (torchvision's GFLOPS, which count one
multiply-add as one: archspec's MACs).
"""
from __future__ import annotations

import json
import os
import sys

import torch
import torchvision
from torchvision import models

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "tests", "golden", "torchvision-zoo.json")
NOT_CNN = ("vit_", "swin_", "maxvit")     # the 12 transformer builders of the 80


def cnn_builders() -> list[str]:
    """torchvision's classification builders that are convolutional networks, by name."""
    return [n for n in models.list_models(module=models) if not n.startswith(NOT_CNN)]


def builder_figures(name: str) -> dict:
    """One builder's parameter count and its weights' published figures (built on the meta
    device, or on the CPU where the builder itself computes with tensors)."""
    try:
        with torch.device("meta"):
            model = models.get_model(name)
    except NotImplementedError:    # RegNet's builder computes its widths with torch
        model = models.get_model(name)
    entry = {"family": type(model).__module__.rsplit(".", 1)[-1],
             "params": sum(p.numel() for p in model.parameters()), "weights": {}}
    for w in models.get_model_weights(name):
        crop = w.transforms().crop_size
        entry["weights"][w.name] = {"num_params": w.meta["num_params"],
                                    "input_size": int(crop[0]), "gflops": w.meta["_ops"]}
    return entry


def main() -> int:
    names = cnn_builders()
    table = {"torchvision": torchvision.__version__.split("+")[0],
             "builders": {n: builder_figures(n) for n in names}}
    tmp = OUT + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(table, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, OUT)
    print(f"{OUT}: {len(names)} builders of torchvision {table['torchvision']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
