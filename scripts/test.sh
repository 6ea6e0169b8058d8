#!/usr/bin/env bash
# The README's test command: set up (idempotently), run the whole test suite, then prove
# the fresh-install path (the wheel alone, in a throw-away venv: scripts/check_wheel.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/python -m pytest -q "$@"
if [ "$#" -eq 0 ] || [ "${ARCHSPEC_CHECK_WHEEL:-}" = 1 ]; then
  bash scripts/check_wheel.sh
fi
