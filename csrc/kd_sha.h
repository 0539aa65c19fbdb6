/*
 * kd_sha.h - public interface of the koodrive_fast native hash core.
 *
 * This header is included by every C file in csrc/ and the region between
 * the CDEF markers is read verbatim by csrc/build_kdsha.py as the cffi cdef,
 * so the C and the Python binding cannot drift.  Keep that region free of
 * preprocessor conditionals and of anything pycparser cannot read.
 *
 * Conventions
 *   - Chaining words are always in canonical order (SHA-256: H0..H7,
 *     SHA-1: H0..H4) whatever kernel runs; kernels convert internally.
 *   - Lengths are in bytes.
 *   - All functions are thread-safe on distinct objects.  kd_init() is
 *     idempotent and thread-safe; every other entry point calls it.
 */
#ifndef KD_SHA_H
#define KD_SHA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* BEGIN CDEF */
#define KD_ALG_SHA256 1
#define KD_ALG_SHA1 2
#define KD_SHA256_WORDS 8
#define KD_SHA1_WORDS 5
#define KD_MAX_WORDS 8

/* Status codes returned by kd_* functions (0 = success). */
#define KD_OK 0
#define KD_EINVAL -1     /* bad argument (algorithm, alignment, sizes) */
#define KD_EIO -2        /* read error; kd_scan.error holds errno */
#define KD_ESHORT -3     /* file ended before offset + length */
#define KD_ECANCELLED -4 /* kd_scan_cancel() was called */
#define KD_ENOMEM -5
#define KD_ENOKERNEL -6  /* kernel unknown or not usable on this CPU */
#define KD_ETIMEDOUT -7  /* kd_recv_body: no byte arrived for idle_ms */
#define KD_EWRITE -8     /* kd_recv_body: body received, but a write failed */

/* Incremental hash context.  Plain data: copy it by value to fork a hash. */
typedef struct kd_hash_ctx {
    uint32_t h[8];     /* chaining words, canonical order; SHA-1 uses h[0..4] */
    uint64_t length;   /* total bytes fed so far */
    uint8_t buf[64];   /* pending partial block */
    uint32_t buf_len;  /* bytes pending in buf, always < 64 */
    int32_t algorithm; /* KD_ALG_SHA256 or KD_ALG_SHA1 */
} kd_hash_ctx;

/* Dispatch.  kd_init() picks the fastest kernel per algorithm from CPUID
 * (honouring the KOODRIVE_FAST_KERNEL environment variable), self-tests it
 * against the portable kernel and falls back to portable on any mismatch.
 * Returns KD_OK, or KD_ENOKERNEL if the forced kernel is unusable (portable
 * is then active and kd_init_error() says why). */
int kd_init(void);
const char *kd_init_error(void);
const char *kd_version(void);
/* Active kernel name for an algorithm: "sha-ni", "armv8", "avx2" or
 * "portable". */
const char *kd_kernel_name(int algorithm);
/* 1 when the named kernel exists for the algorithm, runs on this CPU and
 * passed its self-test; 0 otherwise. */
int kd_kernel_available(int algorithm, const char *name);
/* Make the named kernel the active one for the algorithm (tests, benchmarks). */
int kd_set_kernel(int algorithm, const char *name);

/* Raw compression of whole 64-byte blocks with the active kernel, or with a
 * named kernel (KD_ENOKERNEL if unavailable). */
void kd_sha256_blocks(uint32_t state[8], const uint8_t *data, size_t nblocks);
void kd_sha1_blocks(uint32_t state[5], const uint8_t *data, size_t nblocks);
int kd_blocks_with(int algorithm, const char *kernel, uint32_t *state,
                   const uint8_t *data, size_t nblocks);
/* Two SHA-256 messages at once: the pair form of a kernel (sha-ni has one),
 * nblocks blocks of p1 into s1 and of p2 into s2; KD_ENOKERNEL if the kernel
 * has no usable pair form.  kd_pair_kernel_name(): the active SHA-256
 * kernel's name if it has a usable pair form, else "". */
int kd_sha256_pairs_with(const char *kernel, uint32_t *s1, const uint8_t *p1,
                         uint32_t *s2, const uint8_t *p2, size_t nblocks);
const char *kd_pair_kernel_name(void);

/* Incremental hashing. */
int kd_hash_init(kd_hash_ctx *ctx, int algorithm);
/* Resume at a block boundary: length must be a multiple of 64. */
int kd_hash_set_state(kd_hash_ctx *ctx, int algorithm, const uint32_t *words,
                      uint64_t length);
void kd_hash_update(kd_hash_ctx *ctx, const uint8_t *data, size_t len);
/* Digest of everything fed so far; ctx is not modified.  out: 32 or 20 bytes. */
void kd_hash_digest(const kd_hash_ctx *ctx, uint8_t *out);
/* Finalisation from parts: words after total_len - tail_len bytes (a
 * multiple of 64), plus the tail_len (< 64) trailing bytes. */
int kd_finalize(int algorithm, const uint32_t *words, uint64_t total_len,
                const uint8_t *tail, size_t tail_len, uint8_t *out);

/* One-pass scan that records the chaining state at part boundaries.
 *
 * Fill ctx (kd_hash_init or kd_hash_set_state: ctx.length is the absolute
 * offset the scan starts at and must be a multiple of 64 with buf_len 0),
 * stride (part size, a positive multiple of 64), states / max_states, then
 * call kd_scan_fd or kd_scan_buffer once.  Every time ctx.length reaches a
 * multiple of stride strictly inside (start, start + length) the words are
 * written to states[i * words .. ] (words = 8 or 5) for i = 0, 1, ...
 * On return ctx holds the state after all bytes (tail in ctx.buf).
 *
 * While the scan runs, other threads may call kd_scan_bytes_done /
 * kd_scan_states_done (acquire loads: states below the count are complete)
 * and kd_scan_cancel.  The scan itself runs without the GIL and reads the
 * file on a helper thread into rotating buffers so reading overlaps hashing.
 */
typedef struct kd_scan {
    kd_hash_ctx ctx;      /* in: start state; out: end state */
    uint64_t stride;      /* in: part size, multiple of 64, > 0 */
    uint32_t *states;     /* in: output array of max_states * words */
    size_t max_states;    /* in: capacity of states (in states) */
    size_t read_size;     /* in: bytes per read, 0 = default (4 MiB) */
    uint64_t bytes_done;  /* out: bytes hashed (use kd_scan_bytes_done) */
    uint64_t states_done; /* out: states written (use kd_scan_states_done) */
    uint64_t allowed_end; /* in: 0 = no limit, else do not hash past this
                             absolute offset until kd_scan_allow raises it */
    int32_t cancel;       /* set by kd_scan_cancel */
    int32_t error;        /* out: errno of a failed read */
} kd_scan;

int kd_scan_fd(kd_scan *scan, int fd, uint64_t offset, uint64_t length);
int kd_scan_buffer(kd_scan *scan, const uint8_t *data, size_t len);
uint64_t kd_scan_bytes_done(const kd_scan *scan);
uint64_t kd_scan_states_done(const kd_scan *scan);
void kd_scan_cancel(kd_scan *scan);
/* Raise allowed_end (release store); a scan waiting at the limit resumes.
 * Lets an uploader keep hashing at most a window ahead of its uploads so
 * parts are sent while their pages are still in the page cache.
 *
 * Window semantics: allowed_end is an absolute hash offset (the same scale
 * as ctx.length).  0 means no limit.  Otherwise the scan hashes only whole
 * 64-byte blocks that end at or below allowed_end (the final partial block
 * needs allowed_end >= the scan's end; any allowed_end >= the end lifts the
 * limit).  At the limit the hashing thread sleeps in 200 us steps, checking
 * cancel (-> KD_ECANCELLED) and allowed_end, so bytes_done and states_done
 * stop at the limit and resume when it is raised.  The helper reader may
 * still read up to its buffers' worth (3 x read_size) ahead.  Lowering the
 * limit below the current position only pauses the scan there. */
void kd_scan_allow(kd_scan *scan, uint64_t end);

/* The storage node's body loop (the local server's part PUTs).
 *
 * Receives `remaining` bytes from the stream socket `sock` into buf, hashes
 * them into ctx (resumed from the part's signed context) and writes them at
 * consecutive offsets of out_fd (-1: hash only), a buffer at a time, all
 * without the GIL.  The socket may be non-blocking; a wait for the next byte
 * longer than idle_ms ends the loop.  Never reads past the body.
 *
 * Returns KD_OK (all received, hashed, stored), KD_ESHORT (the peer closed
 * first), KD_ETIMEDOUT, KD_ECANCELLED (kd_recv_cancel; seen within 100 ms
 * while waiting), KD_EIO (a socket error: errno in error), KD_EWRITE (the
 * whole body was received but a write failed: errno in write_error; neither
 * hashing nor writing went on after it, or write_error was set on entry)
 * or KD_EINVAL.  received counts the
 * bytes taken off the socket (kd_recv_bytes_done from other threads). */
typedef struct kd_recv {
    kd_hash_ctx ctx;      /* in: state at the body's start; out: after it */
    int32_t sock;         /* in: connected stream socket */
    int32_t out_fd;       /* in: file written at offset, or -1 */
    uint64_t offset;      /* in/out: file offset of the next byte */
    uint64_t remaining;   /* in/out: body bytes still to receive */
    uint64_t received;    /* out: bytes received so far */
    uint8_t *buf;         /* in: receive buffer */
    size_t buf_size;      /* in: its size, >= 64 */
    int32_t idle_ms;      /* in: longest wait for the next byte, >= 1 */
    int32_t cancel;       /* set by kd_recv_cancel */
    int32_t error;        /* out: errno of a failed socket call */
    int32_t write_error;  /* in/out: errno of the first failed write; set it
                             before the call to only drain the body */
    int32_t pair_wait_us; /* in: while another receiver's bytes are flowing,
                             wait up to this long for it to hash a buffer
                             together with (see kd_recv_paired_blocks); 0:
                             never wait.  After waits nobody answered, the
                             next 1, 2, 4 ... 16 buffers are hashed alone */
    int32_t partner_idle_ms; /* in: a receiver that got no byte for this long
                             is not waited for (0: 20 ms) */
} kd_recv;

int kd_recv_body(kd_recv *job);
void kd_recv_cancel(kd_recv *job);
uint64_t kd_recv_bytes_done(const kd_recv *job);
/* Blocks (of both messages) that receivers hashed together with the pair
 * kernel since the module loaded: where the active SHA-256 kernel has a pair
 * form (kd_pair_kernel_name), two receivers hashing at once share one pass. */
uint64_t kd_recv_paired_blocks(void);
/* Offers to pair that nobody took in time, and the SHA-256 receivers whose
 * bytes are flowing now (the ones a receiver would wait for). */
uint64_t kd_recv_unanswered_offers(void);
int kd_recv_streaming(void);
/* END CDEF */

#ifdef __cplusplus
}
#endif
#endif /* KD_SHA_H */
