/* kd_cpu_x86.h - CPUID feature checks (with the OS-support checks) for the
 * x86-64 kernels.  Only included on x86-64. */
#ifndef KD_CPU_X86_H
#define KD_CPU_X86_H

#include <stdint.h>

#if defined(_MSC_VER)
#include <intrin.h>
static inline void kd_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    int v[4];
    __cpuidex(v, (int)leaf, (int)sub);
    for (int i = 0; i < 4; i++) r[i] = (uint32_t)v[i];
}
static inline uint64_t kd_xgetbv0(void) { return (uint64_t)_xgetbv(0); }
#else
#include <cpuid.h>
static inline void kd_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    r[0] = r[1] = r[2] = r[3] = 0;
    if ((leaf & 0x80000000u) == 0 && __get_cpuid_max(0, 0) < leaf) return;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}
static inline uint64_t kd_xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

/* CPUID.1:ECX */
#define KD_X86_SSSE3 (1u << 9)
#define KD_X86_SSE41 (1u << 19)
#define KD_X86_OSXSAVE (1u << 27)
#define KD_X86_AVX (1u << 28)
/* CPUID.(7,0):EBX */
#define KD_X86_BMI1 (1u << 3)
#define KD_X86_AVX2 (1u << 5)
#define KD_X86_BMI2 (1u << 8)
#define KD_X86_SHA (1u << 29)

static inline int kd_x86_has_ssse3(void) {
    uint32_t r[4];
    kd_cpuid(1, 0, r);
    return (r[2] & KD_X86_SSSE3) != 0;
}

/* SHA extensions use only XMM registers, whose state every x86-64 OS saves. */
static inline int kd_x86_has_shani(void) {
    uint32_t l1[4], l7[4];
    kd_cpuid(1, 0, l1);
    kd_cpuid(7, 0, l7);
    return (l1[2] & (KD_X86_SSSE3 | KD_X86_SSE41)) == (KD_X86_SSSE3 | KD_X86_SSE41) &&
           (l7[1] & KD_X86_SHA) != 0;
}

/* AVX2 + BMI1/2, and the OS saves the YMM state (OSXSAVE, XCR0 bits 1-2). */
static inline int kd_x86_has_avx2_bmi2(void) {
    uint32_t l1[4], l7[4];
    kd_cpuid(1, 0, l1);
    if ((l1[2] & (KD_X86_OSXSAVE | KD_X86_AVX)) != (KD_X86_OSXSAVE | KD_X86_AVX)) return 0;
    if ((kd_xgetbv0() & 6) != 6) return 0;
    kd_cpuid(7, 0, l7);
    uint32_t need = KD_X86_AVX2 | KD_X86_BMI1 | KD_X86_BMI2;
    return (l7[1] & need) == need;
}

#endif
