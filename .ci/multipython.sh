#!/usr/bin/env bash
# Multi-Python pass: build the wheel once (from a copy of the tree), check that
# it is the one cp39-abi3 wheel the README promises, then install that same
# file into a throwaway venv of the oldest and of the newest CPython >= 3.9 on
# this machine (pyenv versions and python3.N on PATH) with its runtime
# dependencies and run a fast subset of the tests there: hashing, kernels,
# contexts and a few uploads to the local server.  A Python that is not
# present is skipped with a note.
#
#   .ci/multipython.sh            PYTHON=python3 (builds the wheel)
set -euo pipefail
# shellcheck source=.ci/_common.sh
source "$(dirname "$0")/_common.sh"

PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/koodrive-multipython.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

ci_copy_tree "$WORK/tree"
"$PYTHON" -m pip wheel -q --no-deps -w "$WORK/dist" "$WORK/tree"
wheels=("$WORK"/dist/koodrive_fast-*.whl)
if [ "${#wheels[@]}" -ne 1 ] || [ ! -e "${wheels[0]}" ]; then
    ci_note "expected one wheel, found: ${wheels[*]}"
    exit 1
fi
wheel=${wheels[0]}
case "$(basename "$wheel")" in
    *-cp39-abi3-*.whl) ci_note "wheel $(basename "$wheel")" ;;
    *) ci_note "wheel $(basename "$wheel") is not tagged cp39-abi3"; exit 1 ;;
esac

# Candidate interpreters: CPython >= 3.9 with the GIL (abi3 does not load in a
# free-threaded build), one per minor version.
candidates=()
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
for py in "$pyenv_root"/versions/*/bin/python3 /usr/bin/python3 /usr/local/bin/python3; do
    [ -x "$py" ] && candidates+=("$py")
done
for minor in $(seq 9 20); do
    py=$(command -v "python3.$minor" 2>/dev/null) && candidates+=("$py")
done
declare -A by_minor=()
for py in "${candidates[@]}"; do
    minor=$("$py" -c 'import sys, sysconfig
ok = (sys.implementation.name == "cpython" and sys.version_info >= (3, 9)
      and not sysconfig.get_config_var("Py_GIL_DISABLED"))
print(sys.version_info[1] if ok else "")' 2>/dev/null) || continue
    [ -n "$minor" ] && [ -z "${by_minor[$minor]:-}" ] && by_minor[$minor]=$py
done
if [ "${#by_minor[@]}" -eq 0 ]; then
    ci_note "no CPython >= 3.9 found: multi-Python pass skipped"
    exit 0
fi
minors=$(printf '%s\n' "${!by_minor[@]}" | sort -n)
oldest=$(head -n 1 <<<"$minors")
newest=$(tail -n 1 <<<"$minors")
ci_note "CPython found: $(tr '\n' ' ' <<<"$minors" | sed 's/\([0-9]\+\)/3.\1/g')"
[ "$oldest" -eq 9 ] || ci_note "note: no Python 3.9 here; the oldest tested is 3.$oldest"
targets=("$oldest")
[ "$newest" != "$oldest" ] && targets+=("$newest")
[ "$newest" != "$oldest" ] || ci_note "note: only one Python version present"

# Test dependencies from pyproject's "test" extra, less the type checker.
test_deps=$("$PYTHON" - "$CI_ROOT/pyproject.toml" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
block = re.search(r"^test\s*=\s*\[(.*?)\]", text, re.M | re.S)
print(" ".join(r for r in re.findall(r'"([^"]+)"', block.group(1)) if not r.startswith("mypy")))
PY
)

cd "$WORK/tree"
for minor in "${targets[@]}"; do
    py=${by_minor[$minor]}
    start=$SECONDS
    venv=$WORK/venv-3.$minor
    ci_note "Python 3.$minor ($py): install the wheel, run the subset"
    "$py" -m venv "$venv"
    # shellcheck disable=SC2086  # test_deps is a list of requirement strings
    "$venv/bin/python" -m pip install -qq "$wheel" $test_deps
    "$venv/bin/python" - "$venv" <<'PY'
import sys
import koodrive_fast
from koodrive_fast._native import lib
assert koodrive_fast.__file__.startswith(sys.argv[1]), koodrive_fast.__file__
import koodrive_fast._kdsha as core
assert core.__file__.endswith(".abi3.so"), core.__file__
print(f"[ci]   {sys.version.split()[0]}: {core.__file__.rsplit('/', 1)[1]}, kernels {koodrive_fast.kernels()}")
PY
    "$venv/bin/python" -m pytest -q -p no:cacheprovider \
        tests/test_hashing.py tests/test_kernels.py tests/test_contexts.py \
        "tests/test_upload.py::test_sizes_round_trip" \
        "tests/test_upload.py::test_async_client_upload" \
        -k "not under_qemu"
    ci_note "Python 3.$minor ok in $((SECONDS - start)) s"
done
