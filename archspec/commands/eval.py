"""``archspec eval SPEC --weights FILE``: test accuracy and loss of saved weights."""
from __future__ import annotations

import argparse
import json

NAME = "eval"
HELP = "evaluate saved weights (run, checkpoint, safetensors or torch state_dict) on a data set"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from archspec.cli import add_set_argument
    from archspec.commands.train import count
    p.add_argument("spec", metavar="SPEC", help="spec file (YAML)")
    p.add_argument("--weights", required=True, metavar="FILE",
                   help="run directory, checkpoint directory, .safetensors, or .pt/.pth state_dict")
    p.add_argument("--data", choices=("cifar10", "cifar100", "imagefolder"),
                   help="data set (default: the one the weights were trained on, else cifar10)")
    p.add_argument("--data-dir", metavar="DIR", help="where the data set is")
    p.add_argument("--no-download", action="store_true", help="never download a missing data set")
    p.add_argument("--recipe", metavar="FILE",
                   help="recipe whose data section gives the normalisation of foreign weights")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--subset", type=count(0), default=0, metavar="N", help="first N images only")
    p.add_argument("--batch-size", type=count(1), default=256, metavar="N")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--amp", choices=("bf16", "fp16", "off"), default="off")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_set_argument(p)


def run(args: argparse.Namespace) -> int:
    from archspec.train.evaluate import evaluate_weights
    from archspec.train.recipe import load_recipe
    recipe = load_recipe(args.recipe) if args.recipe else None
    r = evaluate_weights(args.spec, args.weights, overrides=args.overrides, data=args.data,
                         data_dir=args.data_dir, recipe=recipe, batch_size=args.batch_size,
                         device=args.device, amp=args.amp, split=args.split, subset=args.subset,
                         download=not args.no_download)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{r['data']} {r['split']} ({r['images']} images): accuracy "
              f"{100 * r['accuracy']:.2f}%  loss {r['loss']:.4f}")
    return 0
