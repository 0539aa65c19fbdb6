/* kd_internal.h - shared between the C files of the hash core; not part of
 * the cffi interface. */
#ifndef KD_INTERNAL_H
#define KD_INTERNAL_H

#include "kd_sha.h"

typedef void (*kd_blocks_fn)(uint32_t *state, const uint8_t *data, size_t nblocks);

/* One compression kernel.  cpu_ok returns non-zero when the CPU and OS can
 * run it; NULL means always. */
typedef struct kd_kernel {
    const char *name;
    int algorithm;
    kd_blocks_fn blocks;
    int (*cpu_ok)(void);
} kd_kernel;

/* Portable kernels (kd_portable.c); reference for every self-test. */
void kd_sha256_blocks_portable(uint32_t *state, const uint8_t *data, size_t nblocks);
void kd_sha1_blocks_portable(uint32_t *state, const uint8_t *data, size_t nblocks);

/* Two independent SHA-256 messages, nblocks blocks of each, in one pass. */
typedef void (*kd_pair_fn)(uint32_t *s1, const uint8_t *p1, uint32_t *s2, const uint8_t *p2,
                           size_t nblocks);

/* One pair kernel: the two-message form of the SHA-256 kernel of that name. */
typedef struct kd_pair_kernel {
    const char *name;
    kd_pair_fn pairs;
} kd_pair_kernel;

/* Active kernels, chosen by kd_init() (kd_dispatch.c).  kd_active_sha256_pair
 * is the active SHA-256 kernel's pair form, or NULL if it has none. */
extern kd_blocks_fn kd_active_sha256;
extern kd_blocks_fn kd_active_sha1;
extern kd_pair_fn kd_active_sha256_pair;

/* Pick the active block function for an algorithm (after kd_init). */
static inline kd_blocks_fn kd_blocks_for(int algorithm) {
    return algorithm == KD_ALG_SHA1 ? kd_active_sha1 : kd_active_sha256;
}

static inline int kd_words_for(int algorithm) {
    return algorithm == KD_ALG_SHA1 ? KD_SHA1_WORDS : KD_SHA256_WORDS;
}

static inline uint32_t kd_load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
           (uint32_t)p[3];
}

static inline void kd_store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#if defined(_MSC_VER)
#define KD_ALIGNED(n) __declspec(align(n))
#else
#define KD_ALIGNED(n) __attribute__((aligned(n)))
#endif

extern const uint32_t kd_sha256_iv[8];
/* SHA-256 round constants, 64-byte aligned (SIMD kernels load them with
 * aligned loads); defined once in kd_portable.c. */
extern KD_ALIGNED(64) const uint32_t kd_sha256_k[64];
extern const uint32_t kd_sha1_iv[5];

#endif
