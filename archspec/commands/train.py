"""``archspec train SPEC``: train a spec with a paper's recipe into a run directory."""
from __future__ import annotations

import argparse
import os
import sys

NAME = "train"
HELP = "train a spec on CIFAR-10/100 or an image folder (recipes, checkpoints, resume, DDP)"


def count(minimum: int):  # type: ignore[no-untyped-def]
    """An argparse type: an integer of at least ``minimum`` (a batch of 0 is a usage error)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {v}")
        return v
    parse.__name__ = "count"
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from archspec.cli import add_set_argument
    p.add_argument("spec", metavar="SPEC", nargs="?", help="spec file (optional with --resume)")
    p.add_argument("--recipe", metavar="FILE",
                   help="recipe YAML, or a shipped recipe by name (default: wrn; 'archspec list recipe')")
    p.add_argument("--recipe-set", dest="recipe_overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a recipe field, e.g. optimizer.lr=0.05")
    p.add_argument("--data", choices=("cifar10", "cifar100", "imagefolder"),
                   help="data set (default: the recipe's)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where the data set is (default: $ARCHSPEC_DATA or ./data)")
    p.add_argument("--no-download", action="store_true", help="never download a missing data set")
    p.add_argument("--epochs", type=count(1), metavar="N", help="override the recipe's epochs")
    p.add_argument("--batch-size", type=count(1), metavar="N",
                   help="override the recipe's batch size")
    p.add_argument("--seed", type=int, metavar="N", help="override the recipe's seed")
    add_set_argument(p)
    p.add_argument("-o", "--out", metavar="RUN_DIR", help="run directory (default: runs/…)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--amp", choices=("bf16", "fp16", "off"), default="off",
                   help="mixed precision autocast (default: off)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--train-subset", type=count(0), default=0, metavar="N",
                   help="train on the first N images only (quick checks)")
    p.add_argument("--test-subset", type=count(0), default=0, metavar="N",
                   help="evaluate on the first N test images only")
    p.add_argument("--max-steps", type=count(0), default=0, metavar="N",
                   help="stop resumably after N optimizer steps")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-epoch lines")


def recipe_from_args(args: argparse.Namespace, required: bool) -> object | None:
    """The recipe the flags describe, or None when none was asked for (resume)."""
    from dataclasses import replace

    from archspec.errors import Location, SpecError
    from archspec.train.recipe import apply_overrides, default_recipe, load_recipe
    asked = bool(args.recipe or args.recipe_overrides or args.epochs is not None
                 or args.batch_size is not None or args.seed is not None)
    if not asked and not required:
        return None
    resume = getattr(args, "resume", None)
    if args.recipe:
        r = load_recipe(args.recipe, args.recipe_overrides)
    elif resume and os.path.isfile(os.path.join(resume, "recipe.yaml")):
        # flags given with --resume apply to the run's own recipe, so the refusal names them
        r = load_recipe(os.path.join(resume, "recipe.yaml"), args.recipe_overrides)
    else:
        r = apply_overrides(default_recipe(), args.recipe_overrides)
    for flag, key in (("epochs", "epochs"), ("batch_size", "batch_size")):
        v = getattr(args, flag)
        if v is not None:
            if v < 1:
                raise SpecError(f"--{flag.replace('_', '-')} must be at least 1, got {v}",
                                Location(f"--{flag.replace('_', '-')}"))
            r = replace(r, **{key: v})
    if args.seed is not None:
        r = replace(r, seed=args.seed)
    return r


def run(args: argparse.Namespace) -> int:
    from archspec.train.distributed import env_world, leave_process
    if env_world() <= 1:
        return _run(args)
    # a torchrun worker: report as the CLI would, then leave without interpreter shutdown
    from archspec.errors import SpecError, format_error
    try:
        code = _run(args)
    except SpecError as e:
        for err in e.errors:
            print(format_error(err), file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("archspec: interrupted", file=sys.stderr)
        code = 130
    leave_process(code)
    return code


def _run(args: argparse.Namespace) -> int:
    from archspec.errors import Location, SpecError
    from archspec.train.loop import TrainOptions, train
    if not args.spec and not args.resume:
        raise SpecError("give a SPEC to train, or --resume RUN_DIR", Location("archspec train"))
    if args.resume and args.out:
        raise SpecError("--resume continues a run in place; -o does not apply", Location("-o"))
    recipe = recipe_from_args(args, required=not args.resume)
    opts = TrainOptions(spec=args.spec, overrides=tuple(args.overrides), recipe=recipe,
                        data=args.data, data_dir=args.data_dir, out=args.out, device=args.device,
                        amp=args.amp, channels_last=args.channels_last, compile=args.compile,
                        download=not args.no_download, train_subset=args.train_subset,
                        test_subset=args.test_subset, quiet=args.quiet, max_steps=args.max_steps)
    s = train(opts, resume=args.resume)
    if s.get("status") == "interrupted":
        print(f"archspec: stopped; continue with: archspec train --resume {s['run']}",
              file=sys.stderr)
        return 130
    if not args.quiet and s.get("final_test_acc") is not None:
        print(f"{s['run']}: test accuracy {100 * s['final_test_acc']:.2f}% "
              f"(best {100 * (s['best_test_acc'] or 0):.2f}% at epoch {s['best_epoch']})")
    return 0
