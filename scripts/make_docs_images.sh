#!/usr/bin/env bash
# Regenerate the diagrams of docs/render.md (and the README) into docs/images/.
# Needs Graphviz's dot (apt-get install graphviz) and the .venv of scripts/bootstrap.sh.
#   bash scripts/make_docs_images.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=docs/images
mkdir -p "$OUT"
archspec() { "$PY" -m archspec "$@"; }

# WRN-28-10 with every block collapsed into one box, then with layer2.0 opened.
archspec render specs/wrn-28-10.yaml --depth 2 -o "$OUT/wrn-28-10.svg"
archspec render specs/wrn-28-10.yaml --depth 2 --expand layer2.0 -o "$OUT/wrn-28-10-layer2.0.svg"

# GoogLeNet at top level, with the first Inception module opened: four branches side by side,
# the two auxiliary heads (training only) dashed.
archspec render specs/googlenet-paper.yaml --depth 1 --expand inception3a -o "$OUT/googlenet-inception3a.svg"

# Two block types: WRN-16-1 with B(3,3) vs B(1,3,1), layer2.0 opened; the report as text.
archspec diff specs/wrn.yaml --set count=blocks --set d=16 --set k=1 --set-b 'block=B(1,3,1)' \
    --depth 2 --expand layer2.0 -o "$OUT/diff-B33-B131.svg" > "$OUT/diff-B33-B131.txt"

# Widening factor: WRN-28-10 with k = 8 vs k = 10, report only.
archspec diff specs/wrn-28-10.yaml --set-a k=8 > "$OUT/diff-k8-k10.txt"

ls -l "$OUT"
