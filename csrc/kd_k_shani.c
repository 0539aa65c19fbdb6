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

/* Four rounds on message group X (W[4g..4g+3]) with K pre-added. */
#define S256_ROUNDS(X, g)                                                                  \
    do {                                                                                   \
        __m128i wk_ = _mm_add_epi32(X, _mm_load_si128((const __m128i *)(kd_sha256_k + 4 * (g)))); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk_);                                     \
        wk_ = _mm_shuffle_epi32(wk_, 0x0E);                                                \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, wk_);                                     \
    } while (0)

/* Rounds of group g on Xc while finishing the next group Xn
 * (Xn += W[t-7] group, then msg2) and starting group g+3 in Xp (msg1). */
#define S256_GROUP_FULL(Xc, Xn, Xp, g)                                                     \
    do {                                                                                   \
        __m128i wk_ = _mm_add_epi32(Xc, _mm_load_si128((const __m128i *)(kd_sha256_k + 4 * (g)))); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk_);                                     \
        Xn = _mm_add_epi32(Xn, _mm_alignr_epi8(Xc, Xp, 4));                                \
        Xn = _mm_sha256msg2_epu32(Xn, Xc);                                                 \
        wk_ = _mm_shuffle_epi32(wk_, 0x0E);                                                \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, wk_);                                     \
        Xp = _mm_sha256msg1_epu32(Xp, Xc);                                                 \
    } while (0)

/* Same without starting a new group (g = 13, 14). */
#define S256_GROUP_TAIL(Xc, Xn, Xp, g)                                                     \
    do {                                                                                   \
        __m128i wk_ = _mm_add_epi32(Xc, _mm_load_si128((const __m128i *)(kd_sha256_k + 4 * (g)))); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk_);                                     \
        Xn = _mm_add_epi32(Xn, _mm_alignr_epi8(Xc, Xp, 4));                                \
        Xn = _mm_sha256msg2_epu32(Xn, Xc);                                                 \
        wk_ = _mm_shuffle_epi32(wk_, 0x0E);                                                \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, wk_);                                     \
    } while (0)

KD_SHANI_TARGET
void kd_sha256_blocks_shani(uint32_t *state, const uint8_t *p, size_t nblocks) {
    if (nblocks == 0) return;
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i abcd = _mm_loadu_si128((const __m128i *)state);       /* lanes A B C D */
    __m128i efgh = _mm_loadu_si128((const __m128i *)(state + 4)); /* lanes E F G H */
    __m128i badc = _mm_shuffle_epi32(abcd, 0xB1);                 /* B A D C */
    efgh = _mm_shuffle_epi32(efgh, 0x1B);                         /* H G F E */
    __m128i abef = _mm_alignr_epi8(badc, efgh, 8);                /* F E B A */
    __m128i cdgh = _mm_blend_epi16(efgh, badc, 0xF0);             /* H G D C */
    do {
        const __m128i abef_in = abef, cdgh_in = cdgh;
        __m128i x0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 0)), bswap);
        __m128i x1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), bswap);
        __m128i x2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), bswap);
        __m128i x3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), bswap);
        S256_ROUNDS(x0, 0);
        S256_ROUNDS(x1, 1);
        x0 = _mm_sha256msg1_epu32(x0, x1);
        S256_ROUNDS(x2, 2);
        x1 = _mm_sha256msg1_epu32(x1, x2);
        S256_GROUP_FULL(x3, x0, x2, 3);
        S256_GROUP_FULL(x0, x1, x3, 4);
        S256_GROUP_FULL(x1, x2, x0, 5);
        S256_GROUP_FULL(x2, x3, x1, 6);
        S256_GROUP_FULL(x3, x0, x2, 7);
        S256_GROUP_FULL(x0, x1, x3, 8);
        S256_GROUP_FULL(x1, x2, x0, 9);
        S256_GROUP_FULL(x2, x3, x1, 10);
        S256_GROUP_FULL(x3, x0, x2, 11);
        S256_GROUP_FULL(x0, x1, x3, 12);
        S256_GROUP_TAIL(x1, x2, x0, 13);
        S256_GROUP_TAIL(x2, x3, x1, 14);
        S256_ROUNDS(x3, 15);
        abef = _mm_add_epi32(abef, abef_in);
        cdgh = _mm_add_epi32(cdgh, cdgh_in);
        p += 64;
    } while (--nblocks);
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B); /* A B E F */
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1); /* G H C D */
    _mm_storeu_si128((__m128i *)state, _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)(state + 4), _mm_alignr_epi8(dchg, feba, 8));
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
