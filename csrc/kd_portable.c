/* kd_portable.c - portable C SHA-256 and SHA-1 block functions.
 * Written from FIPS 180-4; fully unrolled rounds, message schedule in a
 * 16-word ring so the compiler keeps it in registers. */
#include "kd_internal.h"

const uint32_t kd_sha256_iv[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                  0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
const uint32_t kd_sha1_iv[5] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u,
                                0xc3d2e1f0u};

KD_ALIGNED(64) const uint32_t kd_sha256_k[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))
/* Nested form: rotr(rotr(rotr(x, 9) ^ x, 11) ^ x, 2) = rotr 2 ^ rotr 13 ^ rotr 22,
 * three rotates with no copies on two-operand ISAs. */
#define BSIG0(x) ROTR(ROTR(ROTR(x, 9) ^ (x), 11) ^ (x), 2)
#define BSIG1(x) ROTR(ROTR(ROTR(x, 14) ^ (x), 5) ^ (x), 6)
#define SSIG0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))

/* Schedule word t (t >= 16) in place in the 16-word ring. */
#define W256(t)                                                                            \
    (w[(t) & 15] += SSIG1(w[((t) - 2) & 15]) + w[((t) - 7) & 15] + SSIG0(w[((t) - 15) & 15]))

/* One round, as d + h + K + W, Ch and Sigma1 in separate terms the compiler
 * may order freely (measured faster than fixing the order).  Maj reuses the
 * previous round's a ^ b: Maj(a,b,c) = b ^ ((a ^ b) & (b ^ c)), with bc
 * holding b ^ c. */
#define R256(a, b, c, d, e, f, g, h, t, wt)                                                \
    do {                                                                                   \
        uint32_t hk_ = (h) + kd_sha256_k[t] + (wt);                                               \
        uint32_t ch_ = CH(e, f, g);                                                        \
        uint32_t s1_ = BSIG1(e);                                                           \
        uint32_t dhk_ = (d) + hk_;                                                         \
        uint32_t ab_ = (a) ^ (b);                                                          \
        uint32_t s0_ = BSIG0(a);                                                           \
        uint32_t mj_ = (b) ^ (ab_ & bc);                                                   \
        dhk_ += ch_;                                                                       \
        hk_ += ch_;                                                                        \
        (d) = dhk_ + s1_;                                                                  \
        hk_ += s1_;                                                                        \
        (h) = hk_ + (s0_ + mj_);                                                           \
        bc = ab_;                                                                          \
    } while (0)

#define R8_LOAD(t)                                                                         \
    R256(a, b, c, d, e, f, g, h, (t) + 0, w[(t) + 0] = kd_load_be32(p + 4 * ((t) + 0)));  \
    R256(h, a, b, c, d, e, f, g, (t) + 1, w[(t) + 1] = kd_load_be32(p + 4 * ((t) + 1)));  \
    R256(g, h, a, b, c, d, e, f, (t) + 2, w[(t) + 2] = kd_load_be32(p + 4 * ((t) + 2)));  \
    R256(f, g, h, a, b, c, d, e, (t) + 3, w[(t) + 3] = kd_load_be32(p + 4 * ((t) + 3)));  \
    R256(e, f, g, h, a, b, c, d, (t) + 4, w[(t) + 4] = kd_load_be32(p + 4 * ((t) + 4)));  \
    R256(d, e, f, g, h, a, b, c, (t) + 5, w[(t) + 5] = kd_load_be32(p + 4 * ((t) + 5)));  \
    R256(c, d, e, f, g, h, a, b, (t) + 6, w[(t) + 6] = kd_load_be32(p + 4 * ((t) + 6)));  \
    R256(b, c, d, e, f, g, h, a, (t) + 7, w[(t) + 7] = kd_load_be32(p + 4 * ((t) + 7)))

#define R8_SCHED(t)                                                                        \
    R256(a, b, c, d, e, f, g, h, (t) + 0, W256((t) + 0));                                  \
    R256(h, a, b, c, d, e, f, g, (t) + 1, W256((t) + 1));                                  \
    R256(g, h, a, b, c, d, e, f, (t) + 2, W256((t) + 2));                                  \
    R256(f, g, h, a, b, c, d, e, (t) + 3, W256((t) + 3));                                  \
    R256(e, f, g, h, a, b, c, d, (t) + 4, W256((t) + 4));                                  \
    R256(d, e, f, g, h, a, b, c, (t) + 5, W256((t) + 5));                                  \
    R256(c, d, e, f, g, h, a, b, (t) + 6, W256((t) + 6));                                  \
    R256(b, c, d, e, f, g, h, a, (t) + 7, W256((t) + 7))

void kd_sha256_blocks_portable(uint32_t *state, const uint8_t *p, size_t nblocks) {
    uint32_t w[16];
    while (nblocks--) {
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        uint32_t bc = b ^ c;
        R8_LOAD(0);
        R8_LOAD(8);
        R8_SCHED(16);
        R8_SCHED(24);
        R8_SCHED(32);
        R8_SCHED(40);
        R8_SCHED(48);
        R8_SCHED(56);
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
        p += 64;
    }
}

/* SHA-1 */
#define F1(b, c, d) ((d) ^ ((b) & ((c) ^ (d))))
#define F2(b, c, d) ((b) ^ (c) ^ (d))
#define F3(b, c, d) (((b) & (c)) | ((d) & ((b) | (c))))
#define W1(t)                                                                              \
    (w[(t) & 15] =                                                                         \
         ROTL(w[((t) - 3) & 15] ^ w[((t) - 8) & 15] ^ w[((t) - 14) & 15] ^ w[(t) & 15], 1))
#define R1(a, b, c, d, e, f, k, wt)                                                        \
    do {                                                                                   \
        (e) += ROTL(a, 5) + f(b, c, d) + (k) + (wt);                                       \
        (b) = ROTL(b, 30);                                                                 \
    } while (0)
#define R5(f, k, t, WX)                                                                    \
    R1(a, b, c, d, e, f, k, WX((t) + 0));                                                  \
    R1(e, a, b, c, d, f, k, WX((t) + 1));                                                  \
    R1(d, e, a, b, c, f, k, WX((t) + 2));                                                  \
    R1(c, d, e, a, b, f, k, WX((t) + 3));                                                  \
    R1(b, c, d, e, a, f, k, WX((t) + 4))
#define WL(t) (w[t] = kd_load_be32(p + 4 * (t)))

void kd_sha1_blocks_portable(uint32_t *state, const uint8_t *p, size_t nblocks) {
    uint32_t w[16];
    while (nblocks--) {
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3], e = state[4];
        R5(F1, 0x5a827999u, 0, WL);
        R5(F1, 0x5a827999u, 5, WL);
        R5(F1, 0x5a827999u, 10, WL);
        R1(a, b, c, d, e, F1, 0x5a827999u, WL(15));
        R1(e, a, b, c, d, F1, 0x5a827999u, W1(16));
        R1(d, e, a, b, c, F1, 0x5a827999u, W1(17));
        R1(c, d, e, a, b, F1, 0x5a827999u, W1(18));
        R1(b, c, d, e, a, F1, 0x5a827999u, W1(19));
        R5(F2, 0x6ed9eba1u, 20, W1);
        R5(F2, 0x6ed9eba1u, 25, W1);
        R5(F2, 0x6ed9eba1u, 30, W1);
        R5(F2, 0x6ed9eba1u, 35, W1);
        R5(F3, 0x8f1bbcdcu, 40, W1);
        R5(F3, 0x8f1bbcdcu, 45, W1);
        R5(F3, 0x8f1bbcdcu, 50, W1);
        R5(F3, 0x8f1bbcdcu, 55, W1);
        R5(F2, 0xca62c1d6u, 60, W1);
        R5(F2, 0xca62c1d6u, 65, W1);
        R5(F2, 0xca62c1d6u, 70, W1);
        R5(F2, 0xca62c1d6u, 75, W1);
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        p += 64;
    }
}
