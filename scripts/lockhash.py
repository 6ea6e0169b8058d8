"""The inputs hash that ties requirements.lock to pyproject.toml and requirements.in.

``scripts/lock.sh`` writes it into the lock as ``# inputs-sha256: ...``; ``scripts/bootstrap.sh``
runs ``python3 scripts/lockhash.py --check requirements.lock`` before installing anything, so a
pyproject.toml edited without refreshing the lock is one line with the fix, never a pip
traceback or a silently different environment. Standard library only: it runs before any venv.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "# inputs-sha256: "
REFRESH = "bash scripts/lock.sh"


def inputs_hash(root: Path = ROOT) -> str:
    """sha256 of what the lock is resolved from: dependencies, extras, build requires, .in pins."""
    import tomllib  # Python >= 3.11
    meta = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    project = meta.get("project", {})
    pins = [ln.split("#", 1)[0].strip()
            for ln in (root / "requirements.in").read_text(encoding="utf-8").splitlines()]
    inputs = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-requires": meta.get("build-system", {}).get("requires", []),
        "requirements.in": [p for p in pins if p],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_hash(lock: Path) -> str | None:
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line.startswith(MARKER):
            return line[len(MARKER):].strip()
    return None


def main(argv: list[str]) -> int:
    if len(argv) == 1:
        print(inputs_hash())
        return 0
    if len(argv) != 3 or argv[1] != "--check":
        print("usage: lockhash.py [--check LOCK]", file=sys.stderr)
        return 2
    lock = Path(argv[2])
    if sys.version_info < (3, 11):
        print(f"bootstrap: note: Python < 3.11 cannot read pyproject.toml; {lock} not checked",
              file=sys.stderr)
        return 0
    if not lock.is_file():
        print(f"bootstrap: error: {lock} is missing; create it with '{REFRESH}'", file=sys.stderr)
        return 2
    if recorded_hash(lock) != inputs_hash():
        print(f"bootstrap: error: {lock} is out of date with pyproject.toml and requirements.in "
              f"(their dependencies changed since it was made); refresh it with '{REFRESH}'",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
