#!/usr/bin/env bash
# Sanitizer pass: the C core built with AddressSanitizer and
# UndefinedBehaviorSanitizer (-fno-sanitize-recover=undefined) into a throwaway
# venv from a copy of the tree (the normal in-place build is never touched),
# then, under it:
#   - the kernel, hashing, scan, scan-fuzz, context and body-receive tests once per kernel
#     this CPU can run, forced in turn with KOODRIVE_FAST_KERNEL;
#   - the seeded scan fuzz against OpenSSL's contexts, ~1 minute in all;
#   - the ThreadSanitizer harnesses: the scan's progress counters, the receivers' pairing.
# Any sanitizer report, in pytest or in a process it starts, fails the pass.
#
# Python is not instrumented, so libasan is preloaded (LD_PRELOAD, the one the
# extension links) and PYTHONMALLOC=malloc makes every Python buffer a malloc
# block that ASan fences; leak detection is off (CPython keeps memory to exit).
# Reports go to files (log_path) so none is lost in a test's captured stderr.
#
#   .ci/sanitize.sh            FUZZ_SECONDS=60 (total), PYTHON=python3
set -euo pipefail
# shellcheck source=.ci/_common.sh
source "$(dirname "$0")/_common.sh"

PYTHON=${PYTHON:-python3}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/koodrive-sanitize.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

ci_copy_tree "$WORK/tree"
"$PYTHON" -m venv --system-site-packages "$WORK/venv"
VPY=$WORK/venv/bin/python
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
ci_note "building the core with $SAN"
CFLAGS="$SAN -fno-omit-frame-pointer -g" LDFLAGS="$SAN" \
    "$VPY" -m pip install -q --no-deps "$WORK/tree"

so=$(find "$WORK/venv" -name '_kdsha*.so' -path '*koodrive_fast*' | head -n 1)
[ -n "$so" ] || { ci_note "no built extension in $WORK/venv"; exit 1; }
asan_lib=$(ldd "$so" | awk '$1 ~ /^libasan\.so/ { print $3 }')
if [ -z "$asan_lib" ] || [ ! -e "$asan_lib" ]; then
    ldd "$so"
    ci_note "the extension is not linked against libasan: the sanitizer build did not take"
    exit 1
fi

REPORTS=$WORK/reports
mkdir -p "$REPORTS"
sanitized() {
    env LD_PRELOAD="$asan_lib" PYTHONMALLOC=malloc \
        ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:log_path=$REPORTS/asan" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$REPORTS/ubsan" \
        "$@"
}

# Fail on any report, whatever the exit status said: ASan's report files, and
# the reports in a run's output ($1; UBSan here writes to stderr whatever its
# log_path says, which is why pytest runs with --capture=sys: C's writes to
# fd 2 reach the log even when the process aborts mid-test).
check_reports() {
    local found=0 f
    for f in "$REPORTS"/*; do
        [ -e "$f" ] || continue
        found=1
        ci_note "sanitizer report $(basename "$f"):"
        cat "$f"
        rm -f "$f"
    done
    if [ -n "${1:-}" ] && grep -qE "$REPORT_PATTERN" "$1"; then
        found=1
        ci_note "sanitizer report in the output above:"
        grep -E "$REPORT_PATTERN" "$1"
    fi
    return "$found"
}
REPORT_PATTERN='runtime error:|ERROR: AddressSanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer'

cd "$WORK/tree"
# Which build is loaded, and which kernels it can run here (importing the core
# runs its kernels' self-tests: a first chance for a report).
status=0
kernels=$(sanitized "$VPY" - "$WORK/venv" 2>"$WORK/load.log" <<'PY'
import sys
import koodrive_fast
from koodrive_fast._native import ALGORITHMS, kernel_names, lib
if not koodrive_fast.__file__.startswith(sys.argv[1]):
    sys.exit(f"koodrive_fast came from {koodrive_fast.__file__}, not the sanitizer venv")
print(" ".join(k for k in kernel_names
               if any(lib.kd_kernel_available(a, k.encode()) for a in ALGORITHMS.values())))
PY
) || status=$?
cat "$WORK/load.log" >&2
check_reports "$WORK/load.log" || exit 1
[ "$status" -eq 0 ] || { ci_note "the sanitized core failed to load"; exit 1; }
read -r -a kernel_list <<<"$kernels"
[ "${#kernel_list[@]}" -gt 0 ] || { ci_note "no kernel available"; exit 1; }
per_kernel=$((FUZZ_SECONDS / ${#kernel_list[@]}))
ci_note "extension $so, libasan $asan_lib; kernels here: $kernels"

for kernel in "${kernel_list[@]}"; do
    start=$SECONDS
    ci_note "sanitizer: KOODRIVE_FAST_KERNEL=$kernel (scan fuzz ${per_kernel} s)"
    log=$WORK/pytest-$kernel.log
    sanitized env KOODRIVE_FAST_KERNEL="$kernel" KOODRIVE_SCAN_FUZZ_SECONDS="$per_kernel" \
        "$VPY" -m pytest -q -p no:cacheprovider -x --capture=sys \
        tests/test_kernels.py tests/test_hashing.py tests/test_scan.py tests/test_scan_fuzz.py \
        tests/test_contexts.py tests/test_recv_core.py -k "not under_qemu and not under_tsan" 2>&1 | tee "$log" ||
        status=$?
    check_reports "$log" || status=1
    [ "$status" -eq 0 ] || { ci_note "sanitizer: FAILED with kernel $kernel"; exit 1; }
    ci_note "sanitizer: kernel $kernel clean in $((SECONDS - start)) s"
done

ci_note "ThreadSanitizer: scan progress counters, receivers pairing their hashing"
log=$WORK/pytest-tsan.log
sanitized "$VPY" -m pytest -q -p no:cacheprovider --capture=sys -rs tests/test_scan.py \
    tests/test_recv_core.py -k under_tsan 2>&1 | tee "$log" || status=$?
check_reports "$log" || status=1
exit "$status"
