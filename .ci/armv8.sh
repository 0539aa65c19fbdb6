#!/usr/bin/env bash
# ARMv8 pass: the AArch64 kernels cross-built and checked under qemu-user
# (tests/test_kernels.py::test_armv8_kernels_under_qemu).  Installs the cross
# compiler, the AArch64 C library and qemu-user with apt-get when missing, and
# fails if the test would skip (KOODRIVE_REQUIRE_ARMV8=1).
set -euo pipefail
# shellcheck source=.ci/_common.sh
source "$(dirname "$0")/_common.sh"
cd "$CI_ROOT"

missing=()
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/include/stdio.h ] || missing+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null || { ci_note "need ${missing[*]} and there is no apt-get"; exit 1; }
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
    ci_note "installing ${missing[*]}"
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    if ! { "${sudo[@]}" apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
            --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log"
        ci_note "apt-get could not install ${missing[*]}"
        exit 1
    fi
fi

KOODRIVE_REQUIRE_ARMV8=1 python3 -m pytest -q -p no:cacheprovider -rs \
    tests/test_kernels.py::test_armv8_kernels_under_qemu
