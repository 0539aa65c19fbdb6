/* kd_kernels.h - accelerated kernels, registered into the dispatch table in
 * order of preference (best first).  Each kernel lives in its own file
 * (kd_k_<name>.c) and is compiled on every build; architecture-specific
 * bodies are guarded so the file compiles to nothing elsewhere, and the
 * table below registers nothing for it.
 *
 * Preference: x86-64 sha-ni > avx2 > portable; AArch64 armv8 > portable.
 */
#ifndef KD_KERNELS_H
#define KD_KERNELS_H

#include "kd_internal.h"

/* The x86-64 kernels use GCC/clang target attributes; other compilers
 * (MSVC) build the portable kernels only. */
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define KD_HAVE_X86_KERNELS 1
#endif

#if defined(KD_HAVE_X86_KERNELS)
void kd_sha256_blocks_shani(uint32_t *state, const uint8_t *data, size_t nblocks);
void kd_sha1_blocks_shani(uint32_t *state, const uint8_t *data, size_t nblocks);
int kd_cpu_shani(void);
void kd_sha256_blocks_avx2(uint32_t *state, const uint8_t *data, size_t nblocks);
void kd_sha1_blocks_avx2(uint32_t *state, const uint8_t *data, size_t nblocks);
int kd_cpu_avx2(void);
void kd_sha256_pairs_shani(uint32_t *s1, const uint8_t *p1, uint32_t *s2, const uint8_t *p2,
                           size_t nblocks);
#define KD_X86_PAIR_KERNELS {"sha-ni", kd_sha256_pairs_shani},
#define KD_X86_KERNELS                                                                     \
    {"sha-ni", KD_ALG_SHA256, kd_sha256_blocks_shani, kd_cpu_shani},                       \
    {"sha-ni", KD_ALG_SHA1, kd_sha1_blocks_shani, kd_cpu_shani},                           \
    {"avx2", KD_ALG_SHA256, kd_sha256_blocks_avx2, kd_cpu_avx2},                           \
    {"avx2", KD_ALG_SHA1, kd_sha1_blocks_avx2, kd_cpu_avx2},
#else
#define KD_X86_KERNELS
#define KD_X86_PAIR_KERNELS
#endif

#if defined(__aarch64__) || defined(_M_ARM64)
void kd_sha256_blocks_armv8(uint32_t *state, const uint8_t *data, size_t nblocks);
void kd_sha1_blocks_armv8(uint32_t *state, const uint8_t *data, size_t nblocks);
int kd_cpu_armv8_sha2(void);
int kd_cpu_armv8_sha1(void);
#define KD_ARM_KERNELS                                                                     \
    {"armv8", KD_ALG_SHA256, kd_sha256_blocks_armv8, kd_cpu_armv8_sha2},                   \
    {"armv8", KD_ALG_SHA1, kd_sha1_blocks_armv8, kd_cpu_armv8_sha1},
#else
#define KD_ARM_KERNELS
#endif

#define KD_ACCELERATED_KERNELS KD_X86_KERNELS KD_ARM_KERNELS
/* SHA-256 kernels that also have a two-message form (see kd_pair_fn). */
#define KD_PAIR_KERNELS KD_X86_PAIR_KERNELS

#endif
