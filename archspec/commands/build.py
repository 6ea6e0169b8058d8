"""``archspec build SPEC``: compile, build the torch module, check it, write a build directory.

The directory (default ``build/<spec name>/``) holds ``model.py`` (standalone source),
``weights.safetensors`` (the initial weights), ``summary.json`` and ``graph.svg``
(when archspec.render and Graphviz are there). It is written into a temporary
sibling directory and renamed into place, so an interrupted build leaves no
half-written files. An existing directory is replaced only if it holds nothing but
those files (an earlier build), never the user's other files.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

NAME = "build"
HELP = "build the torch module, check its shapes, write model.py, weights, summary (and graph)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from archspec.cli import add_set_argument, add_strict_argument
    p.add_argument("spec", metavar="SPEC", help="spec file (YAML)")
    p.add_argument("-o", "--out", metavar="DIR", default=None,
                   help="build directory (default: build/<spec name>)")
    p.add_argument("--batch", type=int, default=2, metavar="N",
                   help="batch size of the dummy forward pass (default 2)")
    add_set_argument(p)
    add_strict_argument(p)


def check_forward(module, g, batch: int) -> dict[str, tuple[int, ...]]:
    """One dummy forward (eval, then train when there are training-only heads): torch's
    output shapes must equal the front end's static ones."""
    import torch

    from archspec.errors import SpecError
    shape = g.nodes[g.graph["input"]]["shape"]
    got: dict[str, tuple[int, ...]] = {}
    # a train-mode pass updates BatchNorm statistics: keep the initial ones
    saved = {k: v.clone() for k, v in module.named_buffers()}
    try:
        for train in ((False, True) if module.train_only else (False,)):
            module.train(train)
            names = module.output_names if train else \
                tuple(n for n in module.output_names if n not in module.train_only)
            # BatchNorm in training needs two samples per channel
            x = torch.zeros(max(batch, 2) if train else batch, *shape)
            with torch.no_grad():
                out = module(x)
            outs = out if isinstance(out, tuple) else (out,)
            for name, t in zip(names, outs):
                got[name] = (batch, *t.shape[1:]) if t.shape[0] == x.shape[0] else tuple(t.shape)
    finally:
        module.eval()
        with torch.no_grad():
            for k, v in module.named_buffers():
                v.copy_(saved[k])
    for o in g.graph["outputs"]:
        want = (batch, *g.nodes[o["node"]]["shape"])
        if got.get(o["name"]) != want:
            raise SpecError(f"output '{o['name']}': torch computed shape {got.get(o['name'])}, "
                            f"the spec's static shape is {want}", g.nodes[o["node"]]["loc"],
                            "this is an archspec bug; please report it")
    return got


def check_batch_statistics(g, batch: int) -> None:
    """Refuse a dummy batch that leaves an op normalising over the batch (a batchnorm
    without running statistics: ``OpDef.batch_stats``) one value per channel: torch
    normalises it over the batch even in eval mode, and raises
    ("Expected more than 1 value per channel when training") midway through the build."""
    import math

    from archspec.errors import SpecError
    from archspec.ops import OPS, shape_str
    for nid, d in g.nodes(data=True):
        batch_stats = OPS[d["op"]].batch_stats if d["op"] in OPS else None   # not the input
        if batch_stats is None or not batch_stats(d["args"]):
            continue
        shape = g.nodes[d["inputs"][0]]["shape"]
        values = batch * math.prod(shape[1:])
        if values < 2:
            raise SpecError(f"{nid}: a {d['op']} without running statistics normalises over "
                            f"the batch, and --batch {batch} gives it {values} value per channel "
                            f"(input {shape_str(shape)})", d["loc"],
                            "use --batch 2 or more, or track_running_stats: true")


BUILD_FILES = ("model.py", "weights.safetensors", "summary.json", "graph.svg")


def write_build(out_dir: str, files: dict[str, bytes], graph=None) -> None:
    """Write ``files`` (and graph.svg) into a temp dir next to ``out_dir``, then swap it in."""
    from archspec.fsio import new_dir
    with new_dir(out_dir) as tmp:          # '-o .' names the folder, not '.'
        for name, data in files.items():
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        if graph is not None:
            _render(graph, os.path.join(tmp, "graph.svg"))


def _render(graph, path: str) -> None:
    try:
        from archspec import render
    except ImportError:
        return
    if hasattr(render, "dot_available") and not render.dot_available():
        print("archspec build: Graphviz 'dot' not found, no graph.svg", file=sys.stderr)
        return
    from archspec.render.dot import layout_problem
    # what to_dot would find, from the IR alone (every op drawn): a diagram dot would take
    # minutes over is left out before 2 s of DOT text are built for nothing
    scopes = {s for _, d in graph.nodes(data=True) for s in d.get("scope", ())}
    problem = layout_problem(graph, graph.nodes, graph.edges, len(scopes), {})
    dg = render.to_dot(graph) if problem is None else None
    problem = problem or getattr(dg, "layout_problem", None)
    if problem is not None:
        print(f"archspec build: no graph.svg: {problem.message}; run 'archspec render' with "
              "--depth or --format dot", file=sys.stderr)
        return
    render.write_atomic(path, render.render_bytes(dg, "svg"))


def check_out_dir(out_dir: str) -> None:
    """Refuse, before any work, a build directory that cannot be written: a file in its
    place or in its path, or a read-only folder (missing folders are created)."""
    from archspec.errors import Location, SpecError
    from archspec.render import folder_problem
    loc = Location(out_dir)
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise SpecError(f"cannot build into '{out_dir}': it is a file, not a directory", loc,
                        "give a directory with -o (it is created, or replaced if it exists)")
    if os.path.isdir(out_dir):
        # the directory is replaced whole: never one that holds anything but a build
        try:
            other = sorted(set(os.listdir(out_dir)) - set(BUILD_FILES))
        except OSError as e:
            raise SpecError(f"cannot build into '{out_dir}': {e.strerror or e}", loc) from None
        if other:
            shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
            raise SpecError(f"cannot build into '{out_dir}': it holds files that are not from "
                            f"a build ({shown}), and a build replaces its directory whole", loc,
                            "give a new or empty directory, or an earlier build's")
    folder_problem(out_dir, os.path.dirname(os.path.abspath(out_dir)), loc, create=True)


def run(args: argparse.Namespace) -> int:
    from safetensors.torch import save

    from archspec.cli import load, report_warnings
    from archspec.codegen import generate
    from archspec.errors import Location, SpecError
    from archspec.fsio import safe_name
    from archspec.shapes import human, summarize, to_json
    from archspec.text import printable
    from archspec.torch_backend import build_module, check_activation_memory

    if args.batch < 1:
        raise SpecError(f"--batch must be at least 1, got {args.batch}", Location("--batch"))
    t0 = time.perf_counter()
    g = load(args.spec, args.overrides)
    report_warnings(g, args.strict)
    # the spec's name is data: never a path (an absolute name or '../..' went outside build/)
    out_dir = args.out or os.path.join("build", safe_name(g.graph["name"], "model"))
    check_out_dir(out_dir)
    check_activation_memory(g, max(args.batch, 2))
    check_batch_statistics(g, args.batch)
    module = build_module(g)
    t_build = time.perf_counter() - t0
    got = check_forward(module, g, args.batch)
    t_fwd = time.perf_counter() - t0 - t_build
    summary = summarize(g)
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    source = generate(g)
    try:          # never exit 0 with a model.py that does not parse
        compile(source, "model.py", "exec", dont_inherit=True)
    except SyntaxError as e:
        raise SpecError(f"the generated model.py does not parse: {e.msg} (line {e.lineno})",
                        Location(args.spec), "this is an archspec bug; please report it") from None
    files = {"model.py": source.encode(),
             "weights.safetensors": save(state, metadata={"spec": g.graph["name"]}),
             "summary.json": (to_json(summary) + "\n").encode()}
    try:
        write_build(out_dir, files, g)
    except OSError as e:
        raise SpecError(f"cannot write the build directory '{out_dir}': {e.strerror or e}",
                        Location(out_dir)) from None
    total = time.perf_counter() - t0
    shapes = ", ".join(f"{n} {tuple(s)}" for n, s in got.items())
    print(f"{printable(g.graph['name'])}: {summary.params:,} params ({human(summary.params)}), "
          f"{human(summary.macs)}MACs/sample")
    print(f"outputs: {shapes}  (dummy batch {args.batch}, shapes match the spec)")
    print(f"built in {t_build:.2f}s, forward {t_fwd:.2f}s, total {total:.2f}s -> "
          f"{printable(os.path.join(out_dir, ''))}")
    return 0
