/* kd_avx2_pairs.h - what the two AVX2 kernels (kd_k_avx2.c, kd_k_avx2_sha1.c)
 * share: the target attribute and the driver that walks the input in pairs of
 * blocks.  Include after <immintrin.h>, inside the KD_HAVE_X86_KERNELS guard.
 */
#ifndef KD_AVX2_PAIRS_H
#define KD_AVX2_PAIRS_H

#define KD_AVX2_TARGET __attribute__((target("avx2,bmi,bmi2")))

/* Body of a kd_*_blocks_avx2 function.  Each kernel schedules two blocks at
 * once into a W + K table of TABLE_WORDS words; SECOND_BLOCK is where the
 * second block's entries start in it.  While the first block of a pair runs
 * its rounds, the next pair is scheduled (for the last pair, a harmless
 * repeat of valid input); the second block runs plain rounds.  The kernel
 * supplies
 *   schedule_pair(wk, p, q)                      W + K of blocks p and q
 *   rounds_and_schedule(state, wk, next, p, q)   rounds of wk's first block,
 *                                                scheduling p and q into next
 *   rounds(state, wk)                            rounds of one block
 * STATE, DATA and NBLOCKS are the function's parameters (DATA and NBLOCKS
 * are consumed). */
#define KD_AVX2_BLOCK_PAIRS(STATE, DATA, NBLOCKS, TABLE_WORDS, SECOND_BLOCK,           \
                            schedule_pair, rounds_and_schedule, rounds)                \
    do {                                                                               \
        uint32_t wk_[2][TABLE_WORDS] __attribute__((aligned(32)));                     \
        int cur_ = 0;                                                                  \
        if ((NBLOCKS) == 0) break;                                                     \
        schedule_pair(wk_[0], (DATA), (NBLOCKS) >= 2 ? (DATA) + 64 : (DATA));          \
        while ((NBLOCKS) >= 2) {                                                       \
            const uint8_t *np_ = (NBLOCKS) >= 3 ? (DATA) + 128 : (DATA);               \
            const uint8_t *nq_ = (NBLOCKS) >= 4 ? (DATA) + 192 : np_;                  \
            rounds_and_schedule((STATE), wk_[cur_], wk_[cur_ ^ 1], np_, nq_);          \
            rounds((STATE), wk_[cur_] + (SECOND_BLOCK));                               \
            cur_ ^= 1;                                                                 \
            (DATA) += 128;                                                             \
            (NBLOCKS) -= 2;                                                            \
        }                                                                              \
        if (NBLOCKS) rounds((STATE), wk_[cur_]);                                       \
        _mm256_zeroupper();                                                            \
    } while (0)

#endif /* KD_AVX2_PAIRS_H */
