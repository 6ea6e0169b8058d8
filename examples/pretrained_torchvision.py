"""torchvision weights in a spec-built ResNet, then a variant for fine-tuning.

`specs/resnet18.yaml` builds a module with torchvision's parameter names and shapes,
so torchvision's `state_dict` loads with `strict=True` and both give the same
outputs. This machine cannot download, so the reference uses random weights; with
network access, pass `weights=ResNet18_Weights.IMAGENET1K_V1` (or "DEFAULT") to
load the pretrained ImageNet ones, and nothing else changes.

Then a one-parameter edit, `num_classes=10`, gives a CIFAR-10 head: every weight
but the new `fc` loads from the same state_dict, the usual transfer-learning start.

    python examples/pretrained_torchvision.py              # 224×224 inputs
    python examples/pretrained_torchvision.py --size 64    # quicker
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision

import archspec

SPEC = Path(__file__).resolve().parent.parent / "specs" / "resnet18.yaml"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224, help="input height and width")
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args(argv)
    torch.manual_seed(0)

    # The reference. With a network: torchvision.models.resnet18(weights="DEFAULT").
    ref = torchvision.models.resnet18(weights=None).eval()
    state = ref.state_dict()

    # The same network from its spec; in_size only sets the input the shapes are checked at.
    model = archspec.build_module(SPEC, {"in_size": args.size}).eval()
    model.load_state_dict(state, strict=True)       # same names, same shapes: no key left over
    x = torch.randn(args.batch, 3, args.size, args.size)
    with torch.no_grad():
        diff = (model(x) - ref(x)).abs().max().item()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"resnet18: {n_params:,} parameters, {len(state)} state_dict entries loaded strictly")
    print(f"max |spec - torchvision| over {args.batch} images of {args.size}×{args.size}: "
          f"{diff:.3g}")

    # Fine-tuning: a 10-class head; everything but fc comes from the ImageNet weights.
    cifar = archspec.build_module(SPEC, {"num_classes": 10, "in_size": args.size})
    body = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = cifar.load_state_dict(body, strict=False)
    print(f"num_classes=10: loaded {len(body)} entries; new, to train: {', '.join(missing)}; "
          f"unused: {len(unexpected)}")
    with torch.no_grad():
        out = cifar.eval()(x)
    print(f"fine-tuning output: {tuple(out.shape)}")
    return {"params": n_params, "max_abs_diff": diff, "loaded": len(state),
            "missing": list(missing), "unexpected": list(unexpected),
            "finetune_shape": tuple(out.shape)}


if __name__ == "__main__":
    main()
