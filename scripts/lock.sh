#!/usr/bin/env bash
# Refresh requirements.lock: every dependency of archspec (with the torch and test extras,
# and what builds its wheel) pinned exactly, resolved by pip-tools from pyproject.toml and
# requirements.in. Run it after changing either; bootstrap refuses a stale lock.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TOOLS=.venv-lock
if [ ! -x "$TOOLS/bin/pip-compile" ]; then
  "$PY" -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check "pip-tools==7.6.2"
fi
tmp=$(mktemp requirements.lock.tmp-XXXXXX)
trap 'rm -f "$tmp"' EXIT
# --upgrade: resolve afresh (the old lock is not a preference); no index URLs in the file.
"$TOOLS/bin/pip-compile" -q --upgrade --allow-unsafe --strip-extras --no-emit-index-url \
  --no-emit-find-links --extra torch --extra test --output-file "$tmp" \
  pyproject.toml requirements.in 2> >(grep -v "^WARNING: Location" >&2)
{
  echo "# requirements.lock: made by 'bash scripts/lock.sh'; do not edit by hand."
  echo "# For Linux x86_64, CPython 3.11 (this project's machines): torch's CUDA build."
  echo "$("$PY" scripts/lockhash.py | sed 's/^/# inputs-sha256: /')"
  sed 's#'"$tmp"'#requirements.lock#' "$tmp"
} > requirements.lock
echo "lock: wrote requirements.lock ($(grep -c '==' requirements.lock) pins)" >&2
