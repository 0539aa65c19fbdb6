/* kd_k_avx2.c - SHA-256 for x86-64 CPUs with AVX2 + BMI2 but no SHA-NI (the
 * SHA-1 kernel of the same name is in kd_k_avx2_sha1.c; kd_cpu_avx2 below
 * gates both).
 *
 * The "vectorised message schedule" approach: two blocks are scheduled at
 * once (one per 128-bit lane of a YMM register, four words per step), W + K
 * goes to a small stack table, and the rounds run on scalar registers, where
 * BMI2's rorx (three-operand rotate) and andn keep the round short.
 */
#include "kd_kernels.h"

#if defined(KD_HAVE_X86_KERNELS)

#include <immintrin.h>

#include "kd_avx2_pairs.h"
#include "kd_cpu_x86.h"


#define VROTR(x, n) _mm256_or_si256(_mm256_srli_epi32(x, n), _mm256_slli_epi32(x, 32 - (n)))

KD_AVX2_TARGET static inline __m256i ssig0(__m256i x) {
    return _mm256_xor_si256(_mm256_xor_si256(VROTR(x, 7), VROTR(x, 18)), _mm256_srli_epi32(x, 3));
}

/* sigma1 of x, for 64-bit lanes holding the pair (x, x): (x:x) >> n has
 * rotr(x, n) in its low half, so a rotate costs one shift.  The result is
 * valid in the even 32-bit lanes. */
KD_AVX2_TARGET static inline __m256i ssig1_pairs(__m256i xx) {
    __m256i r = _mm256_xor_si256(_mm256_srli_epi64(xx, 17), _mm256_srli_epi64(xx, 19));
    return _mm256_xor_si256(r, _mm256_srli_epi32(xx, 10));
}

/* Next four schedule words of both blocks from the previous sixteen
 * (x0 = W[t-16..t-13], ..., x3 = W[t-4..t-1]). */
KD_AVX2_TARGET static inline __m256i schedule4(__m256i x0, __m256i x1, __m256i x2, __m256i x3) {
    __m256i w = _mm256_add_epi32(x0, ssig0(_mm256_alignr_epi8(x1, x0, 4)));
    w = _mm256_add_epi32(w, _mm256_alignr_epi8(x3, x2, 4));
    /* words t, t+1 need sigma1(W[t-2]), sigma1(W[t-1]) = lanes 2, 3 of x3 */
    __m256i s = ssig1_pairs(_mm256_shuffle_epi32(x3, 0xFA)); /* (x2,x2,x3,x3) */
    s = _mm256_shuffle_epi32(s, 0x08);                         /* lanes 0,2 -> 0,1; hi = junk */
    s = _mm256_blend_epi32(s, _mm256_setzero_si256(), 0xCC);
    w = _mm256_add_epi32(w, s);
    /* words t+2, t+3 need sigma1 of the new words t, t+1 */
    s = ssig1_pairs(_mm256_shuffle_epi32(w, 0x50)); /* (w0,w0,w1,w1) */
    s = _mm256_shuffle_epi32(s, 0x80);              /* lanes 0,2 -> 2,3 */
    s = _mm256_blend_epi32(s, _mm256_setzero_si256(), 0x33);
    return _mm256_add_epi32(w, s);
}

/* W + K of group g (cur) to wk: low lane -> block at p, high -> block at q. */
#define STORE_WK(dst, cur, g)                                                                   \
    do {                                                                                   \
        __m256i v_ = _mm256_add_epi32(                                                     \
            cur, _mm256_broadcastsi128_si256(                                              \
                     _mm_load_si128((const __m128i *)(kd_sha256_k + 4 * (g)))));             \
        _mm_store_si128((__m128i *)((dst) + 4 * (g)), _mm256_castsi256_si128(v_));       \
        _mm_store_si128((__m128i *)((dst) + 64 + 4 * (g)), _mm256_extracti128_si256(v_, 1)); \
    } while (0)

#define SCHED(dst, x0, x1, x2, x3, g)                                                           \
    do {                                                                                   \
        x0 = schedule4(x0, x1, x2, x3);                                                    \
        STORE_WK(dst, x0, g);                                                              \
    } while (0)

/* Fill wk[0..63] (block at p) and wk[64..127] (block at q) with W + K. */
KD_AVX2_TARGET static inline __attribute__((always_inline)) void schedule2(uint32_t *wk,
                                                                           const uint8_t *p,
                                                                           const uint8_t *q) {
    const __m256i bswap = _mm256_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL,
                                            0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
#define LOAD2(off)                                                                         \
    _mm256_shuffle_epi8(                                                                   \
        _mm256_inserti128_si256(                                                           \
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p + (off)))),         \
            _mm_loadu_si128((const __m128i *)(q + (off))), 1),                             \
        bswap)
    __m256i x0 = LOAD2(0), x1 = LOAD2(16), x2 = LOAD2(32), x3 = LOAD2(48);
#undef LOAD2
    STORE_WK(wk, x0, 0);
    STORE_WK(wk, x1, 1);
    STORE_WK(wk, x2, 2);
    STORE_WK(wk, x3, 3);
    SCHED(wk, x0, x1, x2, x3, 4);
    SCHED(wk, x1, x2, x3, x0, 5);
    SCHED(wk, x2, x3, x0, x1, 6);
    SCHED(wk, x3, x0, x1, x2, 7);
    SCHED(wk, x0, x1, x2, x3, 8);
    SCHED(wk, x1, x2, x3, x0, 9);
    SCHED(wk, x2, x3, x0, x1, 10);
    SCHED(wk, x3, x0, x1, x2, 11);
    SCHED(wk, x0, x1, x2, x3, 12);
    SCHED(wk, x1, x2, x3, x0, 13);
    SCHED(wk, x2, x3, x0, x1, 14);
    SCHED(wk, x3, x0, x1, x2, 15);
}

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
/* One round.  The e chain is kept to about four cycles: d + h + W+K is
 * formed early, Ch(e,f,g) (two deep) is added while Sigma1(e) (three deep)
 * is computed, so the new e costs one add after Sigma1.  Maj reuses the
 * previous round's a ^ b: Maj(a,b,c) = b ^ ((a ^ b) & (b ^ c)). */
#define RND(a, b, c, d, e, f, g, h, t)                                                     \
    do {                                                                                   \
        uint32_t hk_ = h + wk[t];                                                          \
        uint32_t ch_ = (e & f) ^ (~e & g);                                                 \
        uint32_t s1_ = ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25);                             \
        uint32_t dhk_ = d + hk_;                                                           \
        uint32_t ab_ = a ^ b;                                                              \
        uint32_t s0_ = ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22);                             \
        uint32_t mj_ = b ^ (ab_ & bc);                                                     \
        __asm__("" : "+r"(dhk_)); /* keep (d + h + wk) + ch + s1 in this order */         \
        dhk_ += ch_;                                                                       \
        hk_ += ch_;                                                                        \
        __asm__("" : "+r"(dhk_), "+r"(hk_));                                               \
        d = dhk_ + s1_;                                                                    \
        hk_ += s1_;                                                                        \
        h = hk_ + (s0_ + mj_);                                                             \
        bc = ab_;                                                                          \
    } while (0)

#define RND8(t)                                                                            \
    RND(a, b, c, d, e, f, g, h, (t) + 0);                                                  \
    RND(h, a, b, c, d, e, f, g, (t) + 1);                                                  \
    RND(g, h, a, b, c, d, e, f, (t) + 2);                                                  \
    RND(f, g, h, a, b, c, d, e, (t) + 3);                                                  \
    RND(e, f, g, h, a, b, c, d, (t) + 4);                                                  \
    RND(d, e, f, g, h, a, b, c, (t) + 5);                                                  \
    RND(c, d, e, f, g, h, a, b, (t) + 6);                                                  \
    RND(b, c, d, e, f, g, h, a, (t) + 7)

KD_AVX2_TARGET static inline __attribute__((always_inline)) void rounds(uint32_t *state, const uint32_t *wk) {
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    uint32_t bc = b ^ c;
    RND8(0);
    RND8(8);
    RND8(16);
    RND8(24);
    RND8(32);
    RND8(40);
    RND8(48);
    RND8(56);
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

/* Rounds of the block whose W + K is in wk, with the schedule of the next
 * pair (blocks at p and q, W + K to nwk) spread between groups of eight
 * rounds, so the vector work fills the gaps of the scalar round chain. */
KD_AVX2_TARGET static inline __attribute__((always_inline)) void rounds_and_schedule(
    uint32_t *state, const uint32_t *wk, uint32_t *nwk, const uint8_t *p, const uint8_t *q) {
    const __m256i bswap = _mm256_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL,
                                            0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
#define LOAD2(off)                                                                         \
    _mm256_shuffle_epi8(                                                                   \
        _mm256_inserti128_si256(                                                           \
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p + (off)))),         \
            _mm_loadu_si128((const __m128i *)(q + (off))), 1),                             \
        bswap)
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    uint32_t bc = b ^ c;
    __m256i x0 = LOAD2(0), x1 = LOAD2(16), x2 = LOAD2(32), x3 = LOAD2(48);
#undef LOAD2
    STORE_WK(nwk, x0, 0);
    STORE_WK(nwk, x1, 1);
    RND8(0);
    STORE_WK(nwk, x2, 2);
    STORE_WK(nwk, x3, 3);
    RND8(8);
    SCHED(nwk, x0, x1, x2, x3, 4);
    SCHED(nwk, x1, x2, x3, x0, 5);
    RND8(16);
    SCHED(nwk, x2, x3, x0, x1, 6);
    SCHED(nwk, x3, x0, x1, x2, 7);
    RND8(24);
    SCHED(nwk, x0, x1, x2, x3, 8);
    SCHED(nwk, x1, x2, x3, x0, 9);
    RND8(32);
    SCHED(nwk, x2, x3, x0, x1, 10);
    SCHED(nwk, x3, x0, x1, x2, 11);
    RND8(40);
    SCHED(nwk, x0, x1, x2, x3, 12);
    SCHED(nwk, x1, x2, x3, x0, 13);
    RND8(48);
    SCHED(nwk, x2, x3, x0, x1, 14);
    SCHED(nwk, x3, x0, x1, x2, 15);
    RND8(56);
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

KD_AVX2_TARGET
void kd_sha256_blocks_avx2(uint32_t *state, const uint8_t *data, size_t nblocks) {
    /* first block's W + K in words 0..63 of a table, the second's in 64..127 */
    KD_AVX2_BLOCK_PAIRS(state, data, nblocks, 128, 64, schedule2, rounds_and_schedule, rounds);
}

int kd_cpu_avx2(void) { return kd_x86_has_avx2_bmi2(); }

#else
typedef int kd_k_avx2_empty; /* ISO C forbids an empty translation unit */
#endif
