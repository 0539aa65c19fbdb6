# Shared by .ci/run and the passes it starts (sourced, not run).
# shellcheck shell=bash

CI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

ci_note() { printf '[ci] %s\n' "$*"; }

# Copy the work tree's build inputs and tests to $1, without build products, so
# a pass can build its own extension there and never touch the in-place build.
ci_copy_tree() {
    mkdir -p "$1"
    tar -C "$CI_ROOT" --exclude='*.so' --exclude='*.o' --exclude='__pycache__' \
        --exclude='*.egg-info' --exclude='build' --exclude='.hypothesis' \
        --exclude='src/koodrive_fast/_kdsha.c' \
        -cf - pyproject.toml setup.py MANIFEST.in README.md csrc src tests | tar -C "$1" -xf -
}

# Names and durations of the passes run so far (ci_pass), for ci_summary.
CI_PASSES=()

# ci_pass NAME LIMIT_SECONDS COMMAND...: run one pass, print how long it took;
# a failure (or running past the limit) ends the run with its status.
ci_pass() {
    local name=$1 limit=$2 start=$SECONDS status=0
    shift 2
    ci_note "pass '$name' starts (limit ${limit} s)"
    timeout "$limit" "$@" || status=$?
    local took=$((SECONDS - start))
    CI_PASSES+=("$(printf '%-28s %5d s' "$name" "$took")")
    if [ "$status" -ne 0 ]; then
        [ "$status" -eq 124 ] && ci_note "pass '$name' ran past its ${limit} s limit"
        ci_note "pass '$name' FAILED (exit $status) after ${took} s"
        ci_summary
        exit "$status"
    fi
    ci_note "pass '$name' ok in ${took} s"
}

ci_summary() {
    ci_note "time per pass:"
    local line
    for line in "${CI_PASSES[@]}"; do printf '[ci]   %s\n' "$line"; done
    printf '[ci]   %-28s %5d s\n' "total" "$SECONDS"
}
