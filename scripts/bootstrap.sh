#!/usr/bin/env bash
# Set up everything archspec needs on a fresh machine, idempotently: Debian's graphviz
# (for `dot`), a virtual environment in .venv holding exactly the versions pinned in
# requirements.lock (torch 2.14.1 and torchvision 0.29.1 among them), and archspec itself,
# editable. `bash scripts/lock.sh` refreshes the lock after pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# A stale lock is one line with the fix, before anything is installed.
"$PY" scripts/lockhash.py --check requirements.lock || exit 2

if ! command -v dot >/dev/null 2>&1; then
  echo "bootstrap: installing Debian's graphviz (for dot)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq graphviz >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/pip install -q --disable-pip-version-check)
stamp=.venv/.archspec-lock
want="$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c "import archspec" 2>/dev/null; then
  echo "bootstrap: installing requirements.lock (torch takes about a minute)" >&2
  # --no-deps: the lock is the whole environment; pip check proves it is consistent.
  "${PIP[@]}" --no-deps -r requirements.lock 2> >(grep -v "^WARNING: Location" >&2)
  "${PIP[@]}" --no-deps --no-build-isolation -e . 2> >(grep -v "^WARNING: Location" >&2)
  .venv/bin/pip check --disable-pip-version-check >/dev/null
  echo "$want" > "$stamp"
fi
