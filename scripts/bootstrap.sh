#!/usr/bin/env bash
# Set up everything archspec needs on a fresh machine, idempotently:
# Debian's graphviz (for `dot`), a virtual environment in .venv, torch and torchvision
# (pinned to the build this project's machines carry on disk), and archspec itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dot >/dev/null 2>&1; then
  echo "bootstrap: installing Debian's graphviz (for dot)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq graphviz >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, torchvision" >/dev/null 2>&1; then
  echo "bootstrap: installing torch and torchvision (about a minute)" >&2
  .venv/bin/pip install -q --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
fi
if ! .venv/bin/python -c "import archspec, safetensors, matplotlib, tqdm, onnx, pytest" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.archspec-installed ]; then
  echo "bootstrap: installing archspec and its Python dependencies" >&2
  .venv/bin/pip install -q --disable-pip-version-check -e ".[torch,test]"
  touch .venv/.archspec-installed
fi
