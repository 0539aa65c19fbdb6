/* kd_dispatch.c - kernel table, CPU detection, self-test and selection.
 *
 * kd_init() runs once (pthread_once).  For each algorithm it walks the
 * kernel table in order of preference, skips kernels the CPU/OS cannot run,
 * self-tests the candidate against the portable kernel on the states after
 * 0..KD_SELFTEST_BLOCKS blocks (and on multi-block calls), and keeps the
 * first that passes.  KOODRIVE_FAST_KERNEL=<name> forces a kernel: every
 * algorithm that has a kernel of that name uses it (if it is usable and
 * passes the self-test), the others use portable.  A forced kernel that no
 * algorithm can use makes kd_init() return KD_ENOKERNEL.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_internal.h"

#ifndef KD_PACKAGE_VERSION
#define KD_PACKAGE_VERSION "unknown"
#endif

kd_blocks_fn kd_active_sha256 = kd_sha256_blocks_portable;
kd_blocks_fn kd_active_sha1 = kd_sha1_blocks_portable;
kd_pair_fn kd_active_sha256_pair = NULL;
static const char *active_name_sha256 = "portable";
static const char *active_name_sha1 = "portable";

/* Kernels in order of preference; portable last.  Accelerated kernels are
 * declared in kd_kernels.h and registered here. */
#include "kd_kernels.h"

static const kd_kernel kernels[] = {
    KD_ACCELERATED_KERNELS
    {"portable", KD_ALG_SHA256, kd_sha256_blocks_portable, NULL},
    {"portable", KD_ALG_SHA1, kd_sha1_blocks_portable, NULL},
};
#define NKERNELS (sizeof(kernels) / sizeof(kernels[0]))

static const kd_pair_kernel pair_kernels[] = {KD_PAIR_KERNELS{NULL, NULL}};
#define NPAIRKERNELS (sizeof(pair_kernels) / sizeof(pair_kernels[0]) - 1)

static int init_status = KD_OK;
static char init_error[256];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

const char *kd_version(void) { return KD_PACKAGE_VERSION; }
const char *kd_init_error(void) { return init_error; }

/* Deterministic test input (xorshift). */
static void selftest_data(uint8_t *p, size_t n) {
    uint32_t x = 0x9e3779b9u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

#define KD_SELFTEST_BLOCKS 9

/* Compare k with portable: the state after 0..N single blocks, then after a
 * run of N blocks in one call, starting from the IV and from odd states. */
static int selftest(const kd_kernel *k) {
    uint8_t data[64 * KD_SELFTEST_BLOCKS];
    selftest_data(data, sizeof(data));
    kd_blocks_fn ref = k->algorithm == KD_ALG_SHA1 ? kd_sha1_blocks_portable
                                                   : kd_sha256_blocks_portable;
    int nw = kd_words_for(k->algorithm);
    const uint32_t *iv = k->algorithm == KD_ALG_SHA1 ? kd_sha1_iv : kd_sha256_iv;
    uint32_t a[8], b[8];
    for (int start = 0; start < 2; start++) {
        for (int i = 0; i < nw; i++) a[i] = b[i] = start ? 0xffffffffu - (uint32_t)i * 0x01010101u : iv[i];
        for (int n = 0; n < KD_SELFTEST_BLOCKS; n++) {
            if (memcmp(a, b, sizeof(uint32_t) * (size_t)nw) != 0) return 0;
            ref(a, data + 64 * n, 1);
            k->blocks(b, data + 64 * n, 1);
        }
        if (memcmp(a, b, sizeof(uint32_t) * (size_t)nw) != 0) return 0;
        for (int i = 0; i < nw; i++) a[i] = b[i] = iv[i];
        ref(a, data, KD_SELFTEST_BLOCKS);
        k->blocks(b, data, KD_SELFTEST_BLOCKS);
        if (memcmp(a, b, sizeof(uint32_t) * (size_t)nw) != 0) return 0;
        /* unaligned input */
        ref(a, data + 1, KD_SELFTEST_BLOCKS - 1);
        k->blocks(b, data + 1, KD_SELFTEST_BLOCKS - 1);
        if (memcmp(a, b, sizeof(uint32_t) * (size_t)nw) != 0) return 0;
    }
    return 1;
}

/* A pair kernel against portable: two different messages (one unaligned)
 * from two different states, for 1..N blocks. */
static int pair_selftest(kd_pair_fn pairs) {
    uint8_t data[64 * KD_SELFTEST_BLOCKS + 1];
    selftest_data(data, sizeof(data));
    for (int n = 1; n <= KD_SELFTEST_BLOCKS - 1; n++) {
        uint32_t a1[8], a2[8], b1[8], b2[8];
        for (int i = 0; i < 8; i++) {
            a1[i] = b1[i] = kd_sha256_iv[i];
            a2[i] = b2[i] = 0xffffffffu - (uint32_t)i * 0x01010101u;
        }
        kd_sha256_blocks_portable(a1, data, (size_t)n);
        kd_sha256_blocks_portable(a2, data + 65, (size_t)n);
        pairs(b1, data, b2, data + 65, (size_t)n);
        if (memcmp(a1, b1, sizeof(a1)) != 0 || memcmp(a2, b2, sizeof(a2)) != 0) return 0;
    }
    return 1;
}

/* Known answer for the portable kernels themselves: SHA-256("abc") and
 * SHA-1("abc") first words after one padded block. */
static int portable_known_answer(void) {
    uint8_t block[64] = {'a', 'b', 'c', 0x80};
    block[63] = 24;
    uint32_t h[8];
    memcpy(h, kd_sha256_iv, sizeof(kd_sha256_iv));
    kd_sha256_blocks_portable(h, block, 1);
    if (h[0] != 0xba7816bfu || h[7] != 0xf20015adu) return 0;
    memcpy(h, kd_sha1_iv, sizeof(kd_sha1_iv));
    kd_sha1_blocks_portable(h, block, 1);
    return h[0] == 0xa9993e36u && h[4] == 0x9cd0d89du;
}

static const kd_kernel *find_kernel(int algorithm, const char *name) {
    for (size_t i = 0; i < NKERNELS; i++)
        if (kernels[i].algorithm == algorithm && strcmp(kernels[i].name, name) == 0)
            return &kernels[i];
    return NULL;
}

static int usable(const kd_kernel *k) {
    if (k->cpu_ok && !k->cpu_ok()) return 0;
    return selftest(k);
}

/* Results of usable() per table entry, computed once in do_init. */
static int usable_cache[NKERNELS];
static int pair_usable_cache[NPAIRKERNELS + 1];

/* The usable pair form of the SHA-256 kernel called name, or NULL. */
static kd_pair_fn pair_for(const char *name) {
    for (size_t i = 0; pair_kernels[i].name != NULL; i++)
        if (strcmp(pair_kernels[i].name, name) == 0 && pair_usable_cache[i])
            return pair_kernels[i].pairs;
    return NULL;
}

static void activate(const kd_kernel *k) {
    if (k->algorithm == KD_ALG_SHA1) {
        kd_active_sha1 = k->blocks;
        active_name_sha1 = k->name;
    } else {
        kd_active_sha256 = k->blocks;
        active_name_sha256 = k->name;
        kd_active_sha256_pair = pair_for(k->name);
    }
}

static void do_init(void) {
    if (!portable_known_answer()) {
        snprintf(init_error, sizeof(init_error), "portable kernel failed its known-answer test");
        init_status = KD_ENOKERNEL;
        return;
    }
    for (size_t i = 0; i < NKERNELS; i++) usable_cache[i] = usable(&kernels[i]);
    for (size_t i = 0; pair_kernels[i].name != NULL; i++) {
        const kd_kernel *single = find_kernel(KD_ALG_SHA256, pair_kernels[i].name);
        pair_usable_cache[i] = single != NULL && usable_cache[single - kernels] &&
                               pair_selftest(pair_kernels[i].pairs);
    }
    const char *forced = getenv("KOODRIVE_FAST_KERNEL");
    if (forced && *forced && strcmp(forced, "auto") != 0) {
        int any = 0;
        for (int alg = KD_ALG_SHA256; alg <= KD_ALG_SHA1; alg++) {
            const kd_kernel *k = find_kernel(alg, forced);
            if (k && usable_cache[k - kernels]) {
                activate(k);
                any = 1;
            }
        }
        if (!any) {
            snprintf(init_error, sizeof(init_error),
                     "KOODRIVE_FAST_KERNEL=%.64s: no such kernel usable on this CPU", forced);
            init_status = KD_ENOKERNEL;
        }
        return;
    }
    int have256 = 0, have1 = 0;
    for (size_t i = 0; i < NKERNELS; i++) {
        const kd_kernel *k = &kernels[i];
        int *have = k->algorithm == KD_ALG_SHA1 ? &have1 : &have256;
        if (*have || !usable_cache[i]) continue;
        activate(k);
        *have = 1;
    }
}

int kd_init(void) {
    pthread_once(&init_once, do_init);
    return init_status;
}

const char *kd_kernel_name(int algorithm) {
    kd_init();
    return algorithm == KD_ALG_SHA1 ? active_name_sha1 : active_name_sha256;
}

int kd_kernel_available(int algorithm, const char *name) {
    kd_init();
    const kd_kernel *k = find_kernel(algorithm, name);
    return k != NULL && usable_cache[k - kernels];
}

int kd_set_kernel(int algorithm, const char *name) {
    kd_init();
    const kd_kernel *k = find_kernel(algorithm, name);
    if (k == NULL || !usable_cache[k - kernels]) return KD_ENOKERNEL;
    activate(k);
    return KD_OK;
}

void kd_sha256_blocks(uint32_t state[8], const uint8_t *data, size_t nblocks) {
    kd_init();
    kd_active_sha256(state, data, nblocks);
}

void kd_sha1_blocks(uint32_t state[5], const uint8_t *data, size_t nblocks) {
    kd_init();
    kd_active_sha1(state, data, nblocks);
}

int kd_blocks_with(int algorithm, const char *kernel, uint32_t *state, const uint8_t *data,
                   size_t nblocks) {
    kd_init();
    const kd_kernel *k = find_kernel(algorithm, kernel);
    if (k == NULL || !usable_cache[k - kernels]) return KD_ENOKERNEL;
    k->blocks(state, data, nblocks);
    return KD_OK;
}

const char *kd_pair_kernel_name(void) {
    kd_init();
    return kd_active_sha256_pair != NULL ? active_name_sha256 : "";
}

int kd_sha256_pairs_with(const char *kernel, uint32_t *s1, const uint8_t *p1, uint32_t *s2,
                         const uint8_t *p2, size_t nblocks) {
    kd_init();
    kd_pair_fn pairs = pair_for(kernel);
    if (pairs == NULL) return KD_ENOKERNEL;
    pairs(s1, p1, s2, p2, nblocks);
    return KD_OK;
}
