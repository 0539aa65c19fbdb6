/* kd_k_armv8.c - AArch64 SHA-256 / SHA-1 kernels on the ARMv8 crypto
 * extensions (SHA256H/H2/SU0/SU1, SHA1C/P/M/H/SU0/SU1), via arm_neon.h
 * intrinsics with a target attribute, so the rest of the module stays
 * baseline armv8-a.  Both instructions sets take the state in canonical
 * order, so no lane shuffles are needed.
 *
 * Detection: Linux getauxval(AT_HWCAP) HWCAP_SHA2 / HWCAP_SHA1, Apple
 * silicon always, Windows IsProcessorFeaturePresent; otherwise off.
 */
#include "kd_kernels.h"

#if defined(__aarch64__) || defined(_M_ARM64)

#include <arm_neon.h>

#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_SHA1
#define HWCAP_SHA1 (1 << 5)
#endif
#ifndef HWCAP_SHA2
#define HWCAP_SHA2 (1 << 6)
#endif
#elif defined(_WIN32)
#include <windows.h>
#endif

#if defined(__ARM_FEATURE_SHA2) || defined(__ARM_FEATURE_CRYPTO) || defined(_MSC_VER)
#define KD_ARMV8_TARGET
#elif defined(__clang__)
#define KD_ARMV8_TARGET __attribute__((target("crypto")))
#else
#define KD_ARMV8_TARGET __attribute__((target("+crypto")))
#endif


static inline uint32x4_t load_be(const uint8_t *p) {
    return vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(p)));
}

/* Four SHA-256 rounds on message group X (g = group index). */
#define A256_ROUNDS(X, g)                                                                  \
    do {                                                                                   \
        uint32x4_t wk_ = vaddq_u32(X, vld1q_u32(kd_sha256_k + 4 * (g)));                      \
        uint32x4_t abcd_ = abcd;                                                           \
        abcd = vsha256hq_u32(abcd, efgh, wk_);                                             \
        efgh = vsha256h2q_u32(efgh, abcd_, wk_);                                           \
    } while (0)

/* The same, and turn X (W[4g..]) into W[4g+16..] for a later group. */
#define A256_ROUNDS_SCHED(X0, X1, X2, X3, g)                                               \
    do {                                                                                   \
        A256_ROUNDS(X0, g);                                                                \
        X0 = vsha256su1q_u32(vsha256su0q_u32(X0, X1), X2, X3);                             \
    } while (0)

KD_ARMV8_TARGET
void kd_sha256_blocks_armv8(uint32_t *state, const uint8_t *p, size_t nblocks) {
    uint32x4_t abcd = vld1q_u32(state), efgh = vld1q_u32(state + 4);
    while (nblocks--) {
        const uint32x4_t abcd_in = abcd, efgh_in = efgh;
        uint32x4_t x0 = load_be(p), x1 = load_be(p + 16), x2 = load_be(p + 32),
                   x3 = load_be(p + 48);
        A256_ROUNDS_SCHED(x0, x1, x2, x3, 0);
        A256_ROUNDS_SCHED(x1, x2, x3, x0, 1);
        A256_ROUNDS_SCHED(x2, x3, x0, x1, 2);
        A256_ROUNDS_SCHED(x3, x0, x1, x2, 3);
        A256_ROUNDS_SCHED(x0, x1, x2, x3, 4);
        A256_ROUNDS_SCHED(x1, x2, x3, x0, 5);
        A256_ROUNDS_SCHED(x2, x3, x0, x1, 6);
        A256_ROUNDS_SCHED(x3, x0, x1, x2, 7);
        A256_ROUNDS_SCHED(x0, x1, x2, x3, 8);
        A256_ROUNDS_SCHED(x1, x2, x3, x0, 9);
        A256_ROUNDS_SCHED(x2, x3, x0, x1, 10);
        A256_ROUNDS_SCHED(x3, x0, x1, x2, 11);
        A256_ROUNDS(x0, 12);
        A256_ROUNDS(x1, 13);
        A256_ROUNDS(x2, 14);
        A256_ROUNDS(x3, 15);
        abcd = vaddq_u32(abcd, abcd_in);
        efgh = vaddq_u32(efgh, efgh_in);
        p += 64;
    }
    vst1q_u32(state, abcd);
    vst1q_u32(state + 4, efgh);
}

/* Four SHA-1 rounds with round function OP (vsha1cq / vsha1pq / vsha1mq). */
#define A1_ROUNDS(OP, X, k)                                                                \
    do {                                                                                   \
        uint32x4_t wk_ = vaddq_u32(X, vdupq_n_u32(k));                                     \
        uint32_t e_next_ = vsha1h_u32(vgetq_lane_u32(abcd, 0));                            \
        abcd = OP(abcd, e, wk_);                                                           \
        e = e_next_;                                                                       \
    } while (0)

#define A1_ROUNDS_SCHED(OP, X0, X1, X2, X3, k)                                             \
    do {                                                                                   \
        A1_ROUNDS(OP, X0, k);                                                              \
        X0 = vsha1su1q_u32(vsha1su0q_u32(X0, X1, X2), X3);                                 \
    } while (0)

#define K1_0 0x5a827999u
#define K1_1 0x6ed9eba1u
#define K1_2 0x8f1bbcdcu
#define K1_3 0xca62c1d6u

KD_ARMV8_TARGET
void kd_sha1_blocks_armv8(uint32_t *state, const uint8_t *p, size_t nblocks) {
    uint32x4_t abcd = vld1q_u32(state);
    uint32_t e = state[4];
    while (nblocks--) {
        const uint32x4_t abcd_in = abcd;
        const uint32_t e_in = e;
        uint32x4_t x0 = load_be(p), x1 = load_be(p + 16), x2 = load_be(p + 32),
                   x3 = load_be(p + 48);
        A1_ROUNDS_SCHED(vsha1cq_u32, x0, x1, x2, x3, K1_0); /* 0-3 */
        A1_ROUNDS_SCHED(vsha1cq_u32, x1, x2, x3, x0, K1_0);
        A1_ROUNDS_SCHED(vsha1cq_u32, x2, x3, x0, x1, K1_0);
        A1_ROUNDS_SCHED(vsha1cq_u32, x3, x0, x1, x2, K1_0);
        A1_ROUNDS_SCHED(vsha1cq_u32, x0, x1, x2, x3, K1_0); /* 16-19 */
        A1_ROUNDS_SCHED(vsha1pq_u32, x1, x2, x3, x0, K1_1);
        A1_ROUNDS_SCHED(vsha1pq_u32, x2, x3, x0, x1, K1_1);
        A1_ROUNDS_SCHED(vsha1pq_u32, x3, x0, x1, x2, K1_1);
        A1_ROUNDS_SCHED(vsha1pq_u32, x0, x1, x2, x3, K1_1);
        A1_ROUNDS_SCHED(vsha1pq_u32, x1, x2, x3, x0, K1_1); /* 36-39 */
        A1_ROUNDS_SCHED(vsha1mq_u32, x2, x3, x0, x1, K1_2);
        A1_ROUNDS_SCHED(vsha1mq_u32, x3, x0, x1, x2, K1_2);
        A1_ROUNDS_SCHED(vsha1mq_u32, x0, x1, x2, x3, K1_2);
        A1_ROUNDS_SCHED(vsha1mq_u32, x1, x2, x3, x0, K1_2);
        A1_ROUNDS_SCHED(vsha1mq_u32, x2, x3, x0, x1, K1_2); /* 56-59 */
        A1_ROUNDS_SCHED(vsha1pq_u32, x3, x0, x1, x2, K1_3); /* 60-63: last to schedule */
        A1_ROUNDS(vsha1pq_u32, x0, K1_3);
        A1_ROUNDS(vsha1pq_u32, x1, K1_3);
        A1_ROUNDS(vsha1pq_u32, x2, K1_3);
        A1_ROUNDS(vsha1pq_u32, x3, K1_3); /* 76-79 */
        abcd = vaddq_u32(abcd, abcd_in);
        e += e_in;
        p += 64;
    }
    vst1q_u32(state, abcd);
    state[4] = e;
}

int kd_cpu_armv8_sha2(void) {
#if defined(__APPLE__)
    return 1;
#elif defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_SHA2) != 0;
#elif defined(_WIN32)
    return IsProcessorFeaturePresent(PF_ARM_V8_CRYPTO_INSTRUCTIONS_AVAILABLE) != 0;
#else
    return 0;
#endif
}

int kd_cpu_armv8_sha1(void) {
#if defined(__APPLE__)
    return 1;
#elif defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_SHA1) != 0;
#elif defined(_WIN32)
    return IsProcessorFeaturePresent(PF_ARM_V8_CRYPTO_INSTRUCTIONS_AVAILABLE) != 0;
#else
    return 0;
#endif
}

#else
typedef int kd_k_armv8_empty; /* ISO C forbids an empty translation unit */
#endif
