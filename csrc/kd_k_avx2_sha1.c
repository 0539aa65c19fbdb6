/* kd_k_avx2_sha1.c - SHA-1 for x86-64 CPUs with AVX2 + BMI2 but no SHA-NI.
 *
 * Same plan as the SHA-256 kernel in kd_k_avx2.c: the message schedule of
 * two blocks is computed at once (one block per 128-bit lane of a YMM
 * register, four words per step), W + K goes to a small stack table, and the
 * 80 rounds run on scalar registers reading W + K from it.
 *
 * Schedule, four words W[t..t+3] per step:
 *   t < 32:  W[t] = rol1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]).  W[t+3] needs
 *            W[t] from the same step, so lane 3 is first computed with 0 in
 *            its place and then corrected: rol1 is linear over xor, so the
 *            missing term is rol1(W[t]) = rol2(the lane-0 xor before its
 *            rotate).
 *   t >= 32: the equivalent W[t] = rol2(W[t-6] ^ W[t-16] ^ W[t-28] ^ W[t-32])
 *            (the t < 32 recurrence applied to itself), which has no
 *            dependency inside a step.
 *
 * The W + K table of a pair of blocks is interleaved by step: wk[8g..8g+3]
 * holds W + K of words 4g..4g+3 of the first block and wk[8g+4..8g+7] those
 * of the second, so each step is one 256-bit store.  While the rounds of a
 * pair run, the schedule of the next pair is computed between groups of
 * rounds, filling the gaps of the scalar round chain.
 */
#include "kd_kernels.h"

#if defined(KD_HAVE_X86_KERNELS)

#include <immintrin.h>

#include "kd_avx2_pairs.h"

#define VROL(x, n) _mm256_or_si256(_mm256_slli_epi32(x, n), _mm256_srli_epi32(x, 32 - (n)))

/* W[t..t+3] for 16 <= t < 32, from x0 = W[t-16..t-13], x1 = W[t-12..t-9],
 * x2 = W[t-8..t-5], x3 = W[t-4..t-1] (per 128-bit lane). */
KD_AVX2_TARGET static inline __m256i sched_early(__m256i x0, __m256i x1, __m256i x2,
                                                 __m256i x3) {
    /* (W[t-3], W[t-2], W[t-1], 0) ^ W[t-8..t-5] ^ W[t-14..t-11] ^ W[t-16..t-13] */
    __m256i t = _mm256_xor_si256(_mm256_srli_si256(x3, 4), x2);
    t = _mm256_xor_si256(t, _mm256_xor_si256(_mm256_alignr_epi8(x1, x0, 8), x0));
    __m256i fix = _mm256_slli_si256(t, 12); /* lane 0 -> lane 3, zeros elsewhere */
    return _mm256_xor_si256(VROL(t, 1), VROL(fix, 2));
}

/* W[t..t+3] for t >= 32, from the steps 8, 7, 4, 2 and 1 back. */
KD_AVX2_TARGET static inline __m256i sched_late(__m256i x8, __m256i x7, __m256i x4, __m256i x2,
                                                __m256i x1) {
    /* W[t-6..t-3] ^ W[t-16..t-13] ^ W[t-28..t-25] ^ W[t-32..t-29] */
    __m256i t = _mm256_xor_si256(_mm256_alignr_epi8(x1, x2, 8), x4);
    t = _mm256_xor_si256(t, _mm256_xor_si256(x7, x8));
    return VROL(t, 2);
}

#define K1 0x5a827999u
#define K2 0x6ed9eba1u
#define K3 0x8f1bbcdcu
#define K4 0xca62c1d6u

#define STORE_WK(g)                                                                        \
    _mm256_store_si256((__m256i *)(nwk + 8 * (g)),                                         \
                       _mm256_add_epi32(w##g, _mm256_set1_epi32((int)((g) < 5    ? K1      \
                                                                      : (g) < 10 ? K2      \
                                                                      : (g) < 15 ? K3      \
                                                                                 : K4))))
#define EARLY(g, a, b, c, d)                                                               \
    w##g = sched_early(w##a, w##b, w##c, w##d);                                            \
    STORE_WK(g)
#define LATE(g, a, b, c, d, e)                                                             \
    w##g = sched_late(w##a, w##b, w##c, w##d, w##e);                                       \
    STORE_WK(g)

/* The schedule of the pair (p, q) in pieces, S0 .. S9: two steps each. */
#define SCHED_DECL                                                                         \
    __m256i w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12, w13, w14, w15, w16,     \
        w17, w18, w19
#define LOAD2(off)                                                                         \
    _mm256_shuffle_epi8(                                                                   \
        _mm256_inserti128_si256(                                                           \
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p + (off)))),         \
            _mm_loadu_si128((const __m128i *)(q + (off))), 1),                             \
        bswap)
#define S0                                                                                 \
    w0 = LOAD2(0);                                                                         \
    w1 = LOAD2(16);                                                                        \
    STORE_WK(0);                                                                           \
    STORE_WK(1)
#define S1                                                                                 \
    w2 = LOAD2(32);                                                                        \
    w3 = LOAD2(48);                                                                        \
    STORE_WK(2);                                                                           \
    STORE_WK(3)
#define S2                                                                                 \
    EARLY(4, 0, 1, 2, 3);                                                                  \
    EARLY(5, 1, 2, 3, 4)
#define S3                                                                                 \
    EARLY(6, 2, 3, 4, 5);                                                                  \
    EARLY(7, 3, 4, 5, 6)
#define S4                                                                                 \
    LATE(8, 0, 1, 4, 6, 7);                                                                \
    LATE(9, 1, 2, 5, 7, 8)
#define S5                                                                                 \
    LATE(10, 2, 3, 6, 8, 9);                                                               \
    LATE(11, 3, 4, 7, 9, 10)
#define S6                                                                                 \
    LATE(12, 4, 5, 8, 10, 11);                                                             \
    LATE(13, 5, 6, 9, 11, 12)
#define S7                                                                                 \
    LATE(14, 6, 7, 10, 12, 13);                                                            \
    LATE(15, 7, 8, 11, 13, 14)
#define S8                                                                                 \
    LATE(16, 8, 9, 12, 14, 15);                                                            \
    LATE(17, 9, 10, 13, 15, 16)
#define S9                                                                                 \
    LATE(18, 10, 11, 14, 16, 17);                                                          \
    LATE(19, 11, 12, 15, 17, 18)

/* Rounds.  F1 and F3 are written as sums of disjoint terms, so each term is
 * added to e on its own; e + W + K + f(b, c, d) is formed before rol5(a)
 * (a is the newest word), leaving one add after the rotate on the chain. */
#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define WK(t) wk[8 * ((t) >> 2) + (t) % 4]
#define RF1(a, b, c, d, e, t)                                                              \
    do {                                                                                   \
        e += WK(t);                                                                        \
        e += (b & c);                                                                      \
        e += (~b & d);                                                                     \
        e += ROL(a, 5);                                                                    \
        b = ROL(b, 30);                                                                    \
    } while (0)
#define RF2(a, b, c, d, e, t)                                                              \
    do {                                                                                   \
        e += WK(t);                                                                        \
        e += (b ^ c ^ d);                                                                  \
        e += ROL(a, 5);                                                                    \
        b = ROL(b, 30);                                                                    \
    } while (0)
#define RF3(a, b, c, d, e, t)                                                              \
    do {                                                                                   \
        e += WK(t);                                                                        \
        e += (b & c);                                                                      \
        e += (d & (b ^ c));                                                                \
        e += ROL(a, 5);                                                                    \
        b = ROL(b, 30);                                                                    \
    } while (0)
/* Eight rounds on (a..e) return the roles to (d, e, a, b, c); ten rounds to
 * the start.  80 rounds = ten groups of eight, with the names rotated. */
#define R8(F, t, a, b, c, d, e)                                                            \
    F(a, b, c, d, e, (t) + 0);                                                             \
    F(e, a, b, c, d, (t) + 1);                                                             \
    F(d, e, a, b, c, (t) + 2);                                                             \
    F(c, d, e, a, b, (t) + 3);                                                             \
    F(b, c, d, e, a, (t) + 4);                                                             \
    F(a, b, c, d, e, (t) + 5);                                                             \
    F(e, a, b, c, d, (t) + 6);                                                             \
    F(d, e, a, b, c, (t) + 7)
#define R_0_7 R8(RF1, 0, a, b, c, d, e)
#define R_8_15 R8(RF1, 8, c, d, e, a, b)
#define R_16_23 RF1(e, a, b, c, d, 16); RF1(d, e, a, b, c, 17); RF1(c, d, e, a, b, 18);        \
    RF1(b, c, d, e, a, 19); RF2(a, b, c, d, e, 20); RF2(e, a, b, c, d, 21);                 \
    RF2(d, e, a, b, c, 22); RF2(c, d, e, a, b, 23)
#define R_24_31 R8(RF2, 24, b, c, d, e, a)
#define R_32_39 R8(RF2, 32, d, e, a, b, c)
#define R_40_47 R8(RF3, 40, a, b, c, d, e)
#define R_48_55 R8(RF3, 48, c, d, e, a, b)
#define R_56_63 RF3(e, a, b, c, d, 56); RF3(d, e, a, b, c, 57); RF3(c, d, e, a, b, 58);        \
    RF3(b, c, d, e, a, 59); RF2(a, b, c, d, e, 60); RF2(e, a, b, c, d, 61);                 \
    RF2(d, e, a, b, c, 62); RF2(c, d, e, a, b, 63)
#define R_64_71 R8(RF2, 64, b, c, d, e, a)
#define R_72_79 R8(RF2, 72, d, e, a, b, c)

#define ROUNDS_BEGIN                                                                       \
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3], e = state[4]
#define ROUNDS_END                                                                         \
    state[0] += a;                                                                         \
    state[1] += b;                                                                         \
    state[2] += c;                                                                         \
    state[3] += d;                                                                         \
    state[4] += e

/* All 80 rounds of one block (W + K at wk, stride 8 per step). */
KD_AVX2_TARGET static inline __attribute__((always_inline)) void rounds(uint32_t *state,
                                                                        const uint32_t *wk) {
    ROUNDS_BEGIN;
    R_0_7;
    R_8_15;
    R_16_23;
    R_24_31;
    R_32_39;
    R_40_47;
    R_48_55;
    R_56_63;
    R_64_71;
    R_72_79;
    ROUNDS_END;
}

/* The rounds of one block with the schedule of the pair (p, q) into nwk
 * spread between them. */
KD_AVX2_TARGET static inline __attribute__((always_inline)) void rounds_and_schedule(
    uint32_t *state, const uint32_t *wk, uint32_t *nwk, const uint8_t *p, const uint8_t *q) {
    const __m256i bswap = _mm256_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL,
                                            0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    SCHED_DECL;
    ROUNDS_BEGIN;
    S0;
    R_0_7;
    S1;
    R_8_15;
    S2;
    R_16_23;
    S3;
    R_24_31;
    S4;
    R_32_39;
    S5;
    R_40_47;
    S6;
    R_48_55;
    S7;
    R_56_63;
    S8;
    R_64_71;
    S9;
    R_72_79;
    ROUNDS_END;
}

KD_AVX2_TARGET static inline __attribute__((always_inline)) void schedule(uint32_t *nwk,
                                                                          const uint8_t *p,
                                                                          const uint8_t *q) {
    const __m256i bswap = _mm256_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL,
                                            0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    SCHED_DECL;
    S0;
    S1;
    S2;
    S3;
    S4;
    S5;
    S6;
    S7;
    S8;
    S9;
}

KD_AVX2_TARGET
void kd_sha1_blocks_avx2(uint32_t *state, const uint8_t *data, size_t nblocks) {
    /* the blocks' W + K interleaved by step: the second block's start at word 4 */
    KD_AVX2_BLOCK_PAIRS(state, data, nblocks, 160, 4, schedule, rounds_and_schedule, rounds);
}

#else
typedef int kd_k_avx2_sha1_empty; /* ISO C forbids an empty translation unit */
#endif
