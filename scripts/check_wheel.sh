#!/usr/bin/env bash
# The fresh-install path, as a user who runs `pip install archspec` gets it: build the
# wheel, install it into a throw-away venv (dependencies pinned by requirements.lock, no
# source tree on the path), and run the tool by name from an empty temporary folder.
# Run by scripts/test.sh after the test suite; also on its own: bash scripts/check_wheel.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/archspec-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
quiet() { grep -v "^WARNING: Location" >&2 || true; }

# Build from the tracked files only, so a stray local file can never ship by accident.
mkdir "$work/src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached | xargs -0 cp --parents -t "$work/src"
else
  tar --exclude=./.venv --exclude=./.venv-lock --exclude=./build -cf - . | tar -xf - -C "$work/src"
fi
.venv/bin/pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
  "$work/src" -w "$work/dist" 2> >(quiet)
whl=$(ls "$work"/dist/archspec-*.whl)
echo "wheel: $(basename "$whl"), $(du -k "$whl" | cut -f1) KiB," \
  "$(unzip -Z1 "$whl" | grep -c '\.yaml$') YAML data files" >&2

"$PY" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check -c requirements.lock \
  "archspec[torch] @ file://$whl" 2> >(quiet)
"$work/venv/bin/pip" check --disable-pip-version-check >/dev/null

mkdir "$work/cwd" && cd "$work/cwd"
export PATH="$work/venv/bin:/usr/bin:/bin"
unset PYTHONPATH
where=$(python -c "import archspec, os; print(os.path.dirname(archspec.__file__))")
case "$where" in "$work/venv/"*) ;; *) echo "check_wheel: archspec imported from $where" >&2; exit 1;; esac
set -x
archspec --version
archspec list >/dev/null
archspec check resnet50 wrn-28-10 googlenet
archspec summary resnet50 --depth 0 | grep -F "Total params:       25,557,032"
archspec grid wrn-table1 --format csv | grep -c 36479194
archspec build wrn-28-10 -o out >/dev/null
test -s out/model.py && test -s out/graph.svg
python -c "import archspec; m = archspec.build_module('resnet18'); print(sum(p.numel() for p in m.parameters()))" | grep -Fx 11689512
python -c "from archspec.train.recipe import load_recipe; print(load_recipe('wrn').name)" | grep -Fx wrn
set +x
! archspec check no-such-spec 2> err.txt
grep -q "no such spec 'no-such-spec'" err.txt
echo "check_wheel: ok (installed from the wheel only, run by name from $work/cwd)" >&2
