/* armv8_harness.c - checks the AArch64 kernels against the portable ones
 * under qemu-user (no Python needed).  Build and run from the repo root:
 *
 *   aarch64-linux-gnu-gcc -O2 -Wall -Wextra -Icsrc csrc/tests/armv8_harness.c \
 *       csrc/kd_*.c -lpthread -o /tmp/kd_armv8_harness
 *   qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max /tmp/kd_armv8_harness
 *
 * Prints one line per algorithm and exits non-zero on any mismatch. */
#include <stdio.h>
#include <string.h>

#include "kd_kernels.h"

#if defined(__aarch64__)
static uint32_t rng = 0x12345678u;
static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static int check(const char *name, int words, kd_blocks_fn ref, kd_blocks_fn fast) {
    static uint8_t data[64 * 40 + 16];
    int bad = 0, cases = 0;
    for (size_t i = 0; i < sizeof(data); i++) data[i] = (uint8_t)next();
    for (int round = 0; round < 200; round++) {
        uint32_t a[8], b[8];
        for (int i = 0; i < 8; i++) a[i] = b[i] = next();
        size_t nblocks = next() % 40, off = next() % 16;
        ref(a, data + off, nblocks);
        fast(b, data + off, nblocks);
        cases++;
        if (memcmp(a, b, sizeof(uint32_t) * (size_t)words) != 0) bad++;
    }
    /* Known answer: one padded block of "abc". */
    uint8_t block[64] = {'a', 'b', 'c', 0x80};
    block[63] = 24;
    uint32_t h[8];
    if (words == 8) {
        memcpy(h, kd_sha256_iv, sizeof(kd_sha256_iv));
        fast(h, block, 1);
        bad += h[0] != 0xba7816bfu || h[7] != 0xf20015adu;
    } else {
        memcpy(h, kd_sha1_iv, sizeof(kd_sha1_iv));
        fast(h, block, 1);
        bad += h[0] != 0xa9993e36u || h[4] != 0x9cd0d89du;
    }
    printf("%s: %d random cases + known answer, %d mismatches\n", name, cases, bad);
    return bad;
}

int main(void) {
    int bad = 0;
    printf("cpu: sha2=%d sha1=%d\n", kd_cpu_armv8_sha2(), kd_cpu_armv8_sha1());
    if (!kd_cpu_armv8_sha2() || !kd_cpu_armv8_sha1()) return 2;
    bad += check("armv8 sha256", 8, kd_sha256_blocks_portable, kd_sha256_blocks_armv8);
    bad += check("armv8 sha1", 5, kd_sha1_blocks_portable, kd_sha1_blocks_armv8);
    /* Dispatch: kd_init self-tests and picks the armv8 kernels. */
    const char *n256 = kd_kernel_name(KD_ALG_SHA256), *n1 = kd_kernel_name(KD_ALG_SHA1);
    printf("dispatch: init=%d sha256=%s sha1=%s\n", kd_init(), n256, n1);
    bad += strcmp(n256, "armv8") != 0 || strcmp(n1, "armv8") != 0;
    return bad ? 1 : 0;
}
#else
int main(void) {
    puts("not aarch64");
    return 2;
}
#endif
