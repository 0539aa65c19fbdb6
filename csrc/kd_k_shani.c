/* kd_k_shani.c - x86-64 SHA extensions (SHA-NI) kernels for SHA-256 and SHA-1.
 *
 * Intrinsics compiled with target attributes, so the rest of the module stays
 * baseline x86-64.  The state is kept in the instructions' lane order
 * (SHA-256: ABEF/CDGH, SHA-1: ABCD reversed + E in the top lane) for the
 * whole run of blocks and converted only on entry and exit.  Rounds are fully
 * unrolled; the message schedule for the next group is computed while the
 * rounds of the current group run.
 */
#include "kd_kernels.h"

#if defined(KD_HAVE_X86_KERNELS)

#include <immintrin.h>

#include "kd_cpu_x86.h"

#define KD_SHANI_TARGET __attribute__((target("sha,sse4.1,ssse3")))

/* SHA-1 is sensitive to instruction order: GCC's -O2 schedule of this
 * function measured 1.7 % faster than its -O3 one (at OpenSSL's speed). */
#if defined(__GNUC__) && !defined(__clang__)
#define KD_SHA1_SCHEDULE __attribute__((optimize("O2")))
#else
#define KD_SHA1_SCHEDULE
#endif


/* ----------------------------------------------------------------- SHA-256 */

/* The rounds below name their state registers: AB (lanes F E B A) and CD
 * (H G D C), so the same macros drive one message (abef, cdgh) or two
 * interleaved ones. */

/* Four rounds on message group X (W[4g..4g+3]) with K pre-added. */
#define S256_ROUNDS_ON(AB, CD, X, g)                                                       \
    do {                                                                                   \
        __m128i wk_ = _mm_add_epi32(X, _mm_load_si128((const __m128i *)(kd_sha256_k + 4 * (g)))); \
        CD = _mm_sha256rnds2_epu32(CD, AB, wk_);                                           \
        wk_ = _mm_shuffle_epi32(wk_, 0x0E);                                                \
        AB = _mm_sha256rnds2_epu32(AB, CD, wk_);                                           \
    } while (0)

/* Rounds of group g on Xc while finishing the next group Xn
 * (Xn += W[t-7] group, then msg2) and, if START, starting group g+3 in Xp (msg1). */
#define S256_GROUP_ON(AB, CD, Xc, Xn, Xp, g, START)                                        \
    do {                                                                                   \
        __m128i wk_ = _mm_add_epi32(Xc, _mm_load_si128((const __m128i *)(kd_sha256_k + 4 * (g)))); \
        CD = _mm_sha256rnds2_epu32(CD, AB, wk_);                                           \
        Xn = _mm_add_epi32(Xn, _mm_alignr_epi8(Xc, Xp, 4));                                \
        Xn = _mm_sha256msg2_epu32(Xn, Xc);                                                 \
        wk_ = _mm_shuffle_epi32(wk_, 0x0E);                                                \
        AB = _mm_sha256rnds2_epu32(AB, CD, wk_);                                           \
        if (START) Xp = _mm_sha256msg1_epu32(Xp, Xc);                                      \
    } while (0)

/* The message registers of one 64-byte block at P. */
#define S256_LOAD(X0, X1, X2, X3, P)                                                       \
    do {                                                                                   \
        X0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)((P) + 0)), bswap);        \
        X1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)((P) + 16)), bswap);       \
        X2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)((P) + 32)), bswap);       \
        X3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)((P) + 48)), bswap);       \
    } while (0)

/* The 64 rounds of one block as a table of steps; STEPS(step...) runs each
 * step for one stream or, alternately, for two. */
#define S256_BLOCK_STEPS(STEPS)                                                            \
    STEPS(S256_ROUNDS_ON, 0, 0, 0, 0, 0, 0);                                               \
    STEPS(S256_ROUNDS_ON, 1, 1, 1, 1, 1, 1);                                               \
    STEPS(S256_MSG1, 0, 1, 0, 0, 0, 0);                                                    \
    STEPS(S256_ROUNDS_ON, 2, 2, 2, 2, 2, 2);                                               \
    STEPS(S256_MSG1, 1, 2, 0, 0, 0, 0);                                                    \
    STEPS(S256_GROUP_ON, 3, 0, 2, 3, 1, 0);                                                \
    STEPS(S256_GROUP_ON, 0, 1, 3, 4, 1, 0);                                                \
    STEPS(S256_GROUP_ON, 1, 2, 0, 5, 1, 0);                                                \
    STEPS(S256_GROUP_ON, 2, 3, 1, 6, 1, 0);                                                \
    STEPS(S256_GROUP_ON, 3, 0, 2, 7, 1, 0);                                                \
    STEPS(S256_GROUP_ON, 0, 1, 3, 8, 1, 0);                                                \
    STEPS(S256_GROUP_ON, 1, 2, 0, 9, 1, 0);                                                \
    STEPS(S256_GROUP_ON, 2, 3, 1, 10, 1, 0);                                               \
    STEPS(S256_GROUP_ON, 3, 0, 2, 11, 1, 0);                                               \
    STEPS(S256_GROUP_ON, 0, 1, 3, 12, 1, 0);                                               \
    STEPS(S256_GROUP_ON, 1, 2, 0, 13, 0, 0);                                               \
    STEPS(S256_GROUP_ON, 2, 3, 1, 14, 0, 0);                                               \
    STEPS(S256_ROUNDS_ON, 3, 3, 3, 15, 15, 15)

/* Stream s keeps its message in registers x<s>0..x<s>3. */
#define S256_X(s, i) x##s##i
#define S256_MSG1_ON(Xp, Xc) Xp = _mm_sha256msg1_epu32(Xp, Xc)
/* A step of stream s (state AB/CD): (GROUP_ON, c, n, p, g, start) is group g on
 * x_c finishing x_n and starting x_p; (ROUNDS_ON, i, i, i, g) rounds of group g
 * on x_i; (MSG1, p, c) starts x_p from x_c. */
#define S256_STEP_S256_ROUNDS_ON(s, AB, CD, a, b, c, g, start) S256_ROUNDS_ON(AB, CD, S256_X(s, a), g)
#define S256_STEP_S256_GROUP_ON(s, AB, CD, a, b, c, g, start)                              \
    S256_GROUP_ON(AB, CD, S256_X(s, a), S256_X(s, b), S256_X(s, c), g, start)
#define S256_STEP_S256_MSG1(s, AB, CD, a, b, c, g, start) S256_MSG1_ON(S256_X(s, a), S256_X(s, b))

/* state (canonical H0..H7) <-> the instructions' lane order */
KD_SHANI_TARGET static inline void s256_load_state(const uint32_t *state, __m128i *abef, __m128i *cdgh) {
    __m128i abcd = _mm_loadu_si128((const __m128i *)state);       /* lanes A B C D */
    __m128i efgh = _mm_loadu_si128((const __m128i *)(state + 4)); /* lanes E F G H */
    __m128i badc = _mm_shuffle_epi32(abcd, 0xB1);                 /* B A D C */
    efgh = _mm_shuffle_epi32(efgh, 0x1B);                         /* H G F E */
    *abef = _mm_alignr_epi8(badc, efgh, 8);                       /* F E B A */
    *cdgh = _mm_blend_epi16(efgh, badc, 0xF0);                    /* H G D C */
}

KD_SHANI_TARGET static inline void s256_store_state(uint32_t *state, __m128i abef, __m128i cdgh) {
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B); /* A B E F */
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1); /* G H C D */
    _mm_storeu_si128((__m128i *)state, _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)(state + 4), _mm_alignr_epi8(dchg, feba, 8));
}

KD_SHANI_TARGET
void kd_sha256_blocks_shani(uint32_t *state, const uint8_t *p, size_t nblocks) {
    if (nblocks == 0) return;
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i abef, cdgh;
    s256_load_state(state, &abef, &cdgh);
    do {
        const __m128i abef_in = abef, cdgh_in = cdgh;
        __m128i xa0, xa1, xa2, xa3;
        S256_LOAD(xa0, xa1, xa2, xa3, p);
#define ONE(MACRO, i, j, k, g, start, u) S256_STEP_##MACRO(a, abef, cdgh, i, j, k, g, start)
        S256_BLOCK_STEPS(ONE);
#undef ONE
        abef = _mm_add_epi32(abef, abef_in);
        cdgh = _mm_add_epi32(cdgh, cdgh_in);
        p += 64;
    } while (--nblocks);
    s256_store_state(state, abef, cdgh);
}

/* Two independent messages, one block of each per iteration, their steps
 * alternating: sha256rnds2's latency, not its throughput, bounds one stream,
 * so two streams run at nearly twice the bytes per cycle. */
KD_SHANI_TARGET
void kd_sha256_pairs_shani(uint32_t *s1, const uint8_t *p1, uint32_t *s2, const uint8_t *p2,
                           size_t nblocks) {
    if (nblocks == 0) return;
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i ab1, cd1, ab2, cd2;
    s256_load_state(s1, &ab1, &cd1);
    s256_load_state(s2, &ab2, &cd2);
    do {
        const __m128i ab1_in = ab1, cd1_in = cd1, ab2_in = ab2, cd2_in = cd2;
        __m128i xa0, xa1, xa2, xa3, xb0, xb1, xb2, xb3;
        S256_LOAD(xa0, xa1, xa2, xa3, p1);
        S256_LOAD(xb0, xb1, xb2, xb3, p2);
#define TWO(MACRO, i, j, k, g, start, u)                                                   \
    S256_STEP_##MACRO(a, ab1, cd1, i, j, k, g, start);                                     \
    S256_STEP_##MACRO(b, ab2, cd2, i, j, k, g, start)
        S256_BLOCK_STEPS(TWO);
#undef TWO
        ab1 = _mm_add_epi32(ab1, ab1_in);
        cd1 = _mm_add_epi32(cd1, cd1_in);
        ab2 = _mm_add_epi32(ab2, ab2_in);
        cd2 = _mm_add_epi32(cd2, cd2_in);
        p1 += 64;
        p2 += 64;
    } while (--nblocks);
    s256_store_state(s1, ab1, cd1);
    s256_store_state(s2, ab2, cd2);
}

/* ------------------------------------------------------------------- SHA-1 */

/* Group g of 4 rounds on Xc.  Ea receives the E of this group (nexte of the
 * previous ABCD with Xc), Eb saves ABCD for the next group.  Optional message
 * work: MSG2 finishes group g+1 (Xn), MSG1 starts group g+3 (Xp), XOR folds
 * Xc into group g+2 (Xq). */
#define S1_GROUP(Ea, Eb, Xc, g, WORK)                                                      \
    do {                                                                                   \
        Ea = _mm_sha1nexte_epu32(Ea, Xc);                                                  \
        Eb = abcd;                                                                         \
        WORK;                                                                              \
        abcd = _mm_sha1rnds4_epu32(abcd, Ea, (g) / 5);                                     \
    } while (0)
#define S1_MSG2(Xn, Xc) Xn = _mm_sha1msg2_epu32(Xn, Xc)
#define S1_MSG1(Xp, Xc) Xp = _mm_sha1msg1_epu32(Xp, Xc)
#define S1_XOR(Xq, Xc) Xq = _mm_xor_si128(Xq, Xc)

#define S1_FULL(Ea, Eb, Xc, Xn, Xp, Xq, g)                                                 \
    do {                                                                                   \
        Ea = _mm_sha1nexte_epu32(Ea, Xc);                                                  \
        Eb = abcd;                                                                         \
        Xn = _mm_sha1msg2_epu32(Xn, Xc);                                                   \
        abcd = _mm_sha1rnds4_epu32(abcd, Ea, (g) / 5);                                     \
        Xp = _mm_sha1msg1_epu32(Xp, Xc);                                                   \
        Xq = _mm_xor_si128(Xq, Xc);                                                        \
    } while (0)

/* The next block is loaded during the last groups of the current one
 * (software pipelining, as OpenSSL's shaext code does); q points at the
 * next block, or again at the last one so nothing past the input is read. */
KD_SHANI_TARGET KD_SHA1_SCHEDULE
void kd_sha1_blocks_shani(uint32_t *state, const uint8_t *p, size_t nblocks) {
    if (nblocks == 0) return;
    const __m128i bswap = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)state), 0x1B);
    __m128i e0 = _mm_set_epi32((int)state[4], 0, 0, 0);
    __m128i e1;
    __m128i x0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 0)), bswap);
    __m128i x1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), bswap);
    __m128i x2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), bswap);
    __m128i x3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), bswap);
    do {
        const uint8_t *q = nblocks > 1 ? p + 64 : p;
        const __m128i abcd_in = abcd, e_in = e0;
        /* group 0: E enters by addition, not nexte */
        e0 = _mm_add_epi32(e0, x0);
        e1 = abcd;
        abcd = _mm_sha1rnds4_epu32(abcd, e0, 0);
        S1_GROUP(e1, e0, x1, 1, S1_MSG1(x0, x1));
        S1_GROUP(e0, e1, x2, 2, (S1_MSG1(x1, x2), S1_XOR(x0, x2)));
        S1_FULL(e1, e0, x3, x0, x2, x1, 3);
        S1_FULL(e0, e1, x0, x1, x3, x2, 4);
        S1_FULL(e1, e0, x1, x2, x0, x3, 5);
        S1_FULL(e0, e1, x2, x3, x1, x0, 6);
        S1_FULL(e1, e0, x3, x0, x2, x1, 7);
        S1_FULL(e0, e1, x0, x1, x3, x2, 8);
        S1_FULL(e1, e0, x1, x2, x0, x3, 9);
        S1_FULL(e0, e1, x2, x3, x1, x0, 10);
        S1_FULL(e1, e0, x3, x0, x2, x1, 11);
        S1_FULL(e0, e1, x0, x1, x3, x2, 12);
        S1_FULL(e1, e0, x1, x2, x0, x3, 13);
        S1_FULL(e0, e1, x2, x3, x1, x0, 14);
        S1_FULL(e1, e0, x3, x0, x2, x1, 15);
        S1_FULL(e0, e1, x0, x1, x3, x2, 16);
        S1_GROUP(e1, e0, x1, 17, (S1_MSG2(x2, x1), S1_XOR(x3, x1)));
        x0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(q + 0)), bswap);
        S1_GROUP(e0, e1, x2, 18, S1_MSG2(x3, x2));
        x1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(q + 16)), bswap);
        S1_GROUP(e1, e0, x3, 19, (void)0);
        x2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(q + 32)), bswap);
        x3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(q + 48)), bswap);
        e0 = _mm_sha1nexte_epu32(e0, e_in);
        abcd = _mm_add_epi32(abcd, abcd_in);
        p = q;
    } while (--nblocks);
    _mm_storeu_si128((__m128i *)state, _mm_shuffle_epi32(abcd, 0x1B));
    state[4] = (uint32_t)_mm_extract_epi32(e0, 3);
}

int kd_cpu_shani(void) { return kd_x86_has_shani(); }

#else
typedef int kd_k_shani_empty; /* ISO C forbids an empty translation unit */
#endif
