"""An ablation from Python: vary one field of a spec, compare shapes, params and MACs.

The front end alone (load_spec → compile_graph → summarize, and archspec.diff) —
no torch is imported, so this runs in well under a second per variant. By default it
is the Wide ResNet paper's block-type comparison (Table 2: WRN-40-2, n = 6 blocks per
group whatever the block's length): B(3,3) against B(1,3,1), B(3,1,3) and B(3,1).

    python examples/ablation.py
    python examples/ablation.py examples/specs/cifar-resnet.yaml --set n=5 \\
        --vary block res "B(3,3)"
    python examples/ablation.py specs/wrn.yaml --vary k 1 2 4 8

The command-line equivalents: `archspec summary SPEC --set ...` for one variant and
`archspec diff SPEC --set ... --set-b block="B(1,3,1)"` for a pair.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import archspec
from archspec.diff import diff_graphs
from archspec.shapes import human, to_table

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT / "specs" / "wrn.yaml"
DEFAULT_SET = ["d=40", "k=2", "count=blocks"]
DEFAULT_VARY = ["block", "B(3,3)", "B(1,3,1)", "B(3,1,3)", "B(3,1)"]


def _shape(s: tuple | None) -> str:
    return "×".join(map(str, s)) if s else "-"


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", nargs="?", default=str(DEFAULT_SPEC))
    ap.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="fixed overrides (default with the default spec: d=40 k=2 count=blocks)")
    ap.add_argument("--vary", nargs="+", metavar=("PARAM", "VALUE"),
                    help="the parameter to vary and its values; the first value is the baseline")
    args = ap.parse_args(argv)
    default = args.spec == str(DEFAULT_SPEC)
    fixed = args.set if args.set is not None else (DEFAULT_SET if default else [])
    param, *values = args.vary or DEFAULT_VARY
    if not values:
        ap.error("--vary needs a parameter and at least one value")

    variants = []
    for v in values:
        # "key=value" strings are read as YAML and typed against the parameter, as --set is.
        spec = archspec.load_spec(args.spec, [*fixed, f"{param}={v}"])
        graph = archspec.compile_graph(spec)            # shapes checked here, or a SpecError
        stages = archspec.summarize(graph, depth=1)     # one row per top-level layer or stage
        variants.append({"value": v, "graph": graph, "summary": stages})

    base = variants[0]
    print(to_table(base["summary"]))                    # the baseline's shapes summary
    stage_names = [r.name for r in base["summary"].rows if r.ops > 1]
    print()
    print(f"{param:<12}{'params':>12}{'MACs':>11}  " + "  ".join(
        f"{n:>12}" for n in stage_names) + f"  {'vs ' + values[0]}")
    rows = []
    for var in variants:
        s = var["summary"]
        shapes = {r.name: r.shape for r in s.rows}
        d = diff_graphs(base["graph"], var["graph"])
        delta = ("baseline" if var is base else
                 f"{len(d.added)} added, {len(d.removed)} removed, {len(d.changed)} changed, "
                 f"params {(s.params - base['summary'].params) / base['summary'].params:+.1%}")
        print(f"{var['value']:<12}{s.params:>12,}{human(s.macs):>11}  " + "  ".join(
            f"{_shape(shapes.get(n)):>12}" for n in stage_names) + f"  {delta}")
        rows.append({"value": var["value"], "params": s.params, "macs": s.macs,
                     "added": len(d.added), "removed": len(d.removed),
                     "changed": len(d.changed)})
    return rows


if __name__ == "__main__":
    try:
        main()
    except archspec.SpecError as e:         # a bad spec or value: located lines, exit 2
        print(e, file=sys.stderr)
        sys.exit(2)
