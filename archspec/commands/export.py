"""``archspec export SPEC --onnx FILE | --torch-export FILE``: a portable model file.

The batch dimension is dynamic; the weights are the spec's initial ones (load
trained weights into the module first through the Python API for anything else).
The file is written to a temporary name in its directory and renamed into place.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile

NAME = "export"
HELP = "export the model as ONNX or as a torch.export program (.pt2)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from archspec.cli import add_set_argument
    p.add_argument("spec", metavar="SPEC", help="spec file (YAML)")
    fmt = p.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--onnx", metavar="FILE", help="write an ONNX model")
    fmt.add_argument("--torch-export", metavar="FILE", dest="torch_export",
                     help="write a torch.export ExportedProgram (torch.export.save)")
    p.add_argument("--batch", type=int, default=2, metavar="N",
                   help="batch size of the example input used for tracing (default 2)")
    add_set_argument(p)


def run(args: argparse.Namespace) -> int:
    import torch

    from archspec.cli import load
    from archspec.errors import Location, SpecError
    from archspec.torch_backend import build_module, check_activation_memory

    target = args.onnx or args.torch_export
    flag = "--onnx" if args.onnx else "--torch-export"
    if args.batch < 2:
        raise SpecError(f"--batch must be at least 2 (a dynamic batch needs it), got {args.batch}",
                        Location("--batch"))
    folder = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(target):
        raise SpecError(f"cannot write '{target}': it is a directory", Location(flag),
                        f"give a file name, e.g. {flag} model.{'onnx' if args.onnx else 'pt2'}")
    from archspec.render import folder_problem
    folder_problem(target, folder, Location(flag))
    if args.onnx:
        try:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as e:
            raise SpecError(f"ONNX export needs the '{e.name}' package", Location(flag),
                            "pip install 'archspec[torch]' (onnx, onnxscript)") from None
    g = load(args.spec, args.overrides)
    check_activation_memory(g, args.batch)
    module = build_module(g).eval()
    x = torch.randn(args.batch, *g.nodes[g.graph["input"]]["shape"])
    dyn = {"x": {0: torch.export.Dim("batch", min=1)}}
    # export into a temp dir under the final name (ONNX may add a '<name>.data' file that
    # the model refers to by name), then move the files into place, the model last
    try:
        tmpdir = tempfile.mkdtemp(prefix=".export-", dir=folder)
    except OSError as e:
        raise SpecError(f"cannot write '{target}': {e.strerror or e}", Location(flag)) from None
    # torch.export.save warns about a name not ending in .pt2: save under one, rename after
    tmp = os.path.join(tmpdir, os.path.basename(target) if args.onnx else "program.pt2")
    try:
        if args.onnx:
            big = sum(p.numel() for p in module.parameters()) * 4 > 1_800_000_000
            torch.onnx.export(module, (x,), tmp, dynamo=True, dynamic_shapes=dyn, verbose=False,
                              external_data=big, input_names=["x"], output_names=[
                                  n for n in module.output_names if n not in module.train_only])
        else:
            ep = torch.export.export(module, (x,), dynamic_shapes=dyn)
            torch.export.save(ep, tmp)
            os.replace(tmp, os.path.join(tmpdir, os.path.basename(target)))
        for name in sorted(os.listdir(tmpdir), key=lambda n: n == os.path.basename(target)):
            os.replace(os.path.join(tmpdir, name), os.path.join(folder, name))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    print(f"{g.graph['name']}: wrote {target}")
    return 0
