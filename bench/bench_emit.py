"""Generated ``model.py`` beside the hand-written reference: lines and classes.

For each spec it writes ``archspec emit``'s source and counts its lines and classes,
then counts the reference's: for resnet50, torchvision's resnet.py whole and the code
resnet50 runs (conv1x1, conv3x3, Bottleneck, ResNet, _resnet, resnet50); for googlenet,
torchvision's googlenet.py whole and the GoogLeNet, BasicConv2d, Inception and
InceptionAux classes; for efficientnet_b0, efficientnet.py and its classes. Prints one
markdown row per spec (the figure of docs/torch-backend.md).

    .venv/bin/python bench/bench_emit.py
    .venv/bin/python bench/bench_emit.py resnet50 --show     # also print the source
"""
from __future__ import annotations

import argparse
import ast
import inspect
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

#: spec stem -> (torchvision module, the objects of it the model runs)
REFS = {
    "resnet50": ("torchvision.models.resnet",
                 ("conv1x1", "conv3x3", "Bottleneck", "ResNet", "_resnet", "resnet50")),
    "googlenet": ("torchvision.models.googlenet",
                              ("GoogLeNet", "BasicConv2d", "Inception", "InceptionAux")),
    "efficientnet_b0": ("torchvision.models.efficientnet",
                        ("MBConv", "EfficientNet", "_efficientnet_conf", "_efficientnet",
                         "efficientnet_b0", "MBConvConfig", "_MBConvConfig")),
}


def _lines(objs: list) -> int:
    return sum(len(inspect.getsource(inspect.unwrap(o)).splitlines()) for o in objs)


def row(stem: str, show: bool) -> str:
    """One markdown row: spec, model.py lines and classes, reference file / used lines."""
    import importlib

    from archspec.codegen import generate
    src = generate(os.path.join(HERE, "..", "specs", f"{stem}.yaml"))
    if show:
        print(src)
    classes = [n.name for n in ast.parse(src).body if isinstance(n, ast.ClassDef)]
    mod, names = REFS[stem]
    ref = importlib.import_module(mod)
    used = _lines([getattr(ref, n) for n in names if hasattr(ref, n)])
    whole = len(inspect.getsource(ref).splitlines())
    return (f"| {stem} | {len(src.splitlines())} | {len(classes)} ({', '.join(classes)}) | "
            f"{mod.rpartition('.')[2]}.py: {whole} | {used} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="*", default=list(REFS))
    ap.add_argument("--show", action="store_true", help="print the generated source too")
    a = ap.parse_args()
    print("| spec | model.py lines | classes | reference file lines | reference lines "
          "the model runs |")
    print("|---|---|---|---|---|")
    for stem in a.specs:
        print(row(stem, a.show))


if __name__ == "__main__":
    main()
