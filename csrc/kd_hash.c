/* kd_hash.c - incremental hashing, finalisation and the one-pass file scan. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kd_internal.h"

static int valid_algorithm(int algorithm) {
    return algorithm == KD_ALG_SHA256 || algorithm == KD_ALG_SHA1;
}

int kd_hash_init(kd_hash_ctx *ctx, int algorithm) {
    if (!valid_algorithm(algorithm)) return KD_EINVAL;
    kd_init();
    memset(ctx, 0, sizeof(*ctx));
    ctx->algorithm = algorithm;
    if (algorithm == KD_ALG_SHA256)
        memcpy(ctx->h, kd_sha256_iv, sizeof(kd_sha256_iv));
    else
        memcpy(ctx->h, kd_sha1_iv, sizeof(kd_sha1_iv));
    return KD_OK;
}

int kd_hash_set_state(kd_hash_ctx *ctx, int algorithm, const uint32_t *words, uint64_t length) {
    if (!valid_algorithm(algorithm) || (length & 63) != 0 || length >= ((uint64_t)1 << 61))
        return KD_EINVAL;
    kd_init();
    memset(ctx, 0, sizeof(*ctx));
    ctx->algorithm = algorithm;
    memcpy(ctx->h, words, sizeof(uint32_t) * (size_t)kd_words_for(algorithm));
    ctx->length = length;
    return KD_OK;
}

void kd_hash_update(kd_hash_ctx *ctx, const uint8_t *data, size_t len) {
    /* Nothing to do; data may then be NULL, which memcpy must never see. */
    if (len == 0) return;
    kd_blocks_fn blocks = kd_blocks_for(ctx->algorithm);
    ctx->length += len;
    if (ctx->buf_len) {
        size_t take = 64 - ctx->buf_len;
        if (take > len) take = len;
        memcpy(ctx->buf + ctx->buf_len, data, take);
        ctx->buf_len += (uint32_t)take;
        data += take;
        len -= take;
        if (ctx->buf_len < 64) return;
        blocks(ctx->h, ctx->buf, 1);
        ctx->buf_len = 0;
    }
    if (len >= 64) {
        blocks(ctx->h, data, len / 64);
        data += len & ~(size_t)63;
        len &= 63;
    }
    if (len) {
        memcpy(ctx->buf, data, len);
        ctx->buf_len = (uint32_t)len;
    }
}

int kd_finalize(int algorithm, const uint32_t *words, uint64_t total_len, const uint8_t *tail,
                size_t tail_len, uint8_t *out) {
    if (!valid_algorithm(algorithm) || tail_len >= 64 || tail_len > total_len ||
        ((total_len - tail_len) & 63) != 0)
        return KD_EINVAL;
    kd_init();
    uint32_t h[8];
    uint8_t block[128];
    int nwords = kd_words_for(algorithm);
    memcpy(h, words, sizeof(uint32_t) * (size_t)nwords);
    memset(block, 0, sizeof(block));
    if (tail_len) memcpy(block, tail, tail_len);
    block[tail_len] = 0x80;
    size_t nblocks = tail_len < 56 ? 1 : 2;
    uint64_t bits = total_len << 3;
    for (int i = 0; i < 8; i++) block[nblocks * 64 - 1 - i] = (uint8_t)(bits >> (8 * i));
    kd_blocks_for(algorithm)(h, block, nblocks);
    for (int i = 0; i < nwords; i++) kd_store_be32(out + 4 * i, h[i]);
    return KD_OK;
}

void kd_hash_digest(const kd_hash_ctx *ctx, uint8_t *out) {
    kd_finalize(ctx->algorithm, ctx->h, ctx->length, ctx->buf, ctx->buf_len, out);
}

/* ------------------------------------------------------------------ scan */

uint64_t kd_scan_bytes_done(const kd_scan *scan) {
    return __atomic_load_n(&scan->bytes_done, __ATOMIC_ACQUIRE);
}

uint64_t kd_scan_states_done(const kd_scan *scan) {
    return __atomic_load_n(&scan->states_done, __ATOMIC_ACQUIRE);
}

/* A scan starts by zeroing its counters while other threads may already be
 * polling them (kd_scan_bytes_done / kd_scan_states_done): atomic stores, so
 * those loads never race with the reset.  Relaxed is enough: a zero
 * publishes no data. */
static void scan_reset_progress(kd_scan *scan) {
    __atomic_store_n(&scan->bytes_done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&scan->states_done, 0, __ATOMIC_RELAXED);
}

void kd_scan_cancel(kd_scan *scan) { __atomic_store_n(&scan->cancel, 1, __ATOMIC_RELEASE); }

static int scan_cancelled(const kd_scan *scan) {
    return __atomic_load_n(&scan->cancel, __ATOMIC_ACQUIRE) != 0;
}

/* Number of stride multiples strictly inside (start, end). */
static uint64_t boundaries_between(uint64_t start, uint64_t end, uint64_t stride) {
    if (end <= start) return 0;
    return (end - 1) / stride - start / stride;
}

static int scan_check(const kd_scan *scan, uint64_t length) {
    const kd_hash_ctx *ctx = &scan->ctx;
    if (!valid_algorithm(ctx->algorithm) || ctx->buf_len != 0 || (ctx->length & 63) != 0)
        return KD_EINVAL;
    if (scan->stride == 0 || (scan->stride & 63) != 0) return KD_EINVAL;
    if (ctx->length + length < ctx->length) return KD_EINVAL;
    uint64_t need = boundaries_between(ctx->length, ctx->length + length, scan->stride);
    if (need > scan->max_states || (need && scan->states == NULL)) return KD_EINVAL;
    return KD_OK;
}

static uint64_t scan_allowed_end(const kd_scan *scan) {
    return __atomic_load_n(&scan->allowed_end, __ATOMIC_ACQUIRE);
}

/* Bytes the window lets the scan hash from pos on, waiting while it lets
 * none; 0 means cancelled.  want is what the caller has.  The wait backs off
 * from 100 us to 5 ms: a scan held back by slow uploads wakes ~200 times a
 * second, not thousands, and the window is parts ahead so 5 ms never stalls. */
static uint64_t scan_window(kd_scan *scan, uint64_t pos, uint64_t want, uint64_t end) {
    long sleep_ns = 100 * 1000;
    for (;;) {
        uint64_t limit = scan_allowed_end(scan);
        if (limit == 0 || limit >= pos + want) return want;
        if (limit >= end) return want; /* the whole rest is allowed */
        if (limit > pos) {
            uint64_t n = (limit - pos) & ~(uint64_t)63; /* whole blocks only */
            if (n) return n;
        }
        if (scan_cancelled(scan)) return 0;
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        sleep_ns = sleep_ns * 2 < 5 * 1000 * 1000 ? sleep_ns * 2 : 5 * 1000 * 1000;
    }
}

/* Hash n bytes; every chunk but the last is a multiple of 64 so ctx.buf
 * stays empty until the end.  end is the absolute end of the scan.
 * Honours the allowed_end window; returns KD_OK or KD_ECANCELLED. */
static int scan_feed(kd_scan *scan, const uint8_t *p, size_t n, uint64_t end) {
    kd_hash_ctx *ctx = &scan->ctx;
    kd_blocks_fn blocks = kd_blocks_for(ctx->algorithm);
    size_t nwords = (size_t)kd_words_for(ctx->algorithm);
    uint64_t stride = scan->stride;
    while (n >= 64) {
        uint64_t pos = ctx->length;
        uint64_t next = (pos / stride + 1) * stride;
        uint64_t nb = n / 64;
        if (nb > (next - pos) / 64) nb = (next - pos) / 64;
        uint64_t ok = scan_window(scan, pos, nb * 64, end);
        if (ok == 0) return KD_ECANCELLED;
        nb = ok / 64;
        blocks(ctx->h, p, (size_t)nb);
        pos += nb * 64;
        p += nb * 64;
        n -= (size_t)(nb * 64);
        ctx->length = pos;
        if (pos == next && pos < end) {
            uint64_t i = scan->states_done;
            memcpy(scan->states + i * nwords, ctx->h, nwords * sizeof(uint32_t));
            __atomic_store_n(&scan->states_done, i + 1, __ATOMIC_RELEASE);
        }
        __atomic_store_n(&scan->bytes_done, scan->bytes_done + nb * 64, __ATOMIC_RELEASE);
    }
    if (n) {
        if (scan_window(scan, ctx->length, n, end) == 0) return KD_ECANCELLED;
        memcpy(ctx->buf, p, n);
        ctx->buf_len = (uint32_t)n;
        ctx->length += n;
        __atomic_store_n(&scan->bytes_done, scan->bytes_done + n, __ATOMIC_RELEASE);
    }
    return KD_OK;
}

static size_t scan_read_size(const kd_scan *scan) {
    size_t rs = scan->read_size ? scan->read_size : ((size_t)4 << 20);
    rs &= ~(size_t)63;
    return rs < 4096 ? 4096 : rs;
}

/* Hashes a buffer in read_size pieces so progress and cancel stay live. */
int kd_scan_buffer(kd_scan *scan, const uint8_t *data, size_t len) {
    kd_init();
    int rc = scan_check(scan, len);
    if (rc) return rc;
    scan_reset_progress(scan);
    uint64_t end = scan->ctx.length + len;
    size_t step = scan_read_size(scan);
    while (len) {
        if (scan_cancelled(scan)) return KD_ECANCELLED;
        size_t n = len < step ? len : step;
        rc = scan_feed(scan, data, n, end);
        if (rc) return rc;
        data += n;
        len -= n;
    }
    return KD_OK;
}

/* Read exactly want bytes at off unless EOF; returns bytes read or -errno. */
static int64_t read_full(int fd, uint8_t *buf, size_t want, uint64_t off) {
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(fd, buf + got, want - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -(int64_t)errno;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (int64_t)got;
}

#define KD_NBUF 3

typedef struct reader_shared {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint8_t *buf[KD_NBUF];
    int64_t filled[KD_NBUF]; /* -1 empty, else bytes (or -errno - 1 on error) */
    int stop;
    int fd;
    uint64_t offset, length;
    size_t chunk;
} reader_shared;

static void *reader_main(void *arg) {
    reader_shared *rs = (reader_shared *)arg;
    uint64_t done = 0;
    for (size_t i = 0; done < rs->length; i++) {
        int slot = (int)(i % KD_NBUF);
        pthread_mutex_lock(&rs->mu);
        while (rs->filled[slot] != -1 && !rs->stop) pthread_cond_wait(&rs->cv, &rs->mu);
        int stop = rs->stop;
        pthread_mutex_unlock(&rs->mu);
        if (stop) break;
        size_t want = rs->length - done < rs->chunk ? (size_t)(rs->length - done) : rs->chunk;
        int64_t got = read_full(rs->fd, rs->buf[slot], want, rs->offset + done);
        int64_t mark = got < 0 ? got - 1 : got; /* errors are < -1 */
        pthread_mutex_lock(&rs->mu);
        rs->filled[slot] = mark;
        pthread_cond_broadcast(&rs->cv);
        pthread_mutex_unlock(&rs->mu);
        if (got < 0 || (size_t)got < want) break;
        done += want;
    }
    return NULL;
}

static int scan_fd_inline(kd_scan *scan, int fd, uint64_t offset, uint64_t length, size_t chunk) {
    uint8_t *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, chunk ? chunk : 64) != 0) return KD_ENOMEM;
    int rc = KD_OK;
    int64_t got = length ? read_full(fd, buf, (size_t)length, offset) : 0;
    if (got < 0) {
        scan->error = (int32_t)-got;
        rc = KD_EIO;
    } else if ((uint64_t)got < length) {
        rc = KD_ESHORT;
    } else {
        rc = scan_feed(scan, buf, (size_t)length, scan->ctx.length + length);
    }
    free(buf);
    return rc;
}

int kd_scan_fd(kd_scan *scan, int fd, uint64_t offset, uint64_t length) {
    kd_init();
    int rc = scan_check(scan, length);
    if (rc) return rc;
    scan_reset_progress(scan);
    scan->error = 0;
    size_t chunk = scan_read_size(scan);
#ifdef POSIX_FADV_SEQUENTIAL
    if (length) posix_fadvise(fd, (off_t)offset, (off_t)length, POSIX_FADV_SEQUENTIAL);
#endif
    if (length <= chunk) return scan_fd_inline(scan, fd, offset, length, (size_t)length);

    reader_shared rs;
    memset(&rs, 0, sizeof(rs));
    rs.fd = fd;
    rs.offset = offset;
    rs.length = length;
    rs.chunk = chunk;
    for (int i = 0; i < KD_NBUF; i++) {
        rs.filled[i] = -1;
        if (posix_memalign((void **)&rs.buf[i], 4096, chunk) != 0) {
            for (int j = 0; j < i; j++) free(rs.buf[j]);
            return KD_ENOMEM;
        }
    }
    pthread_mutex_init(&rs.mu, NULL);
    pthread_cond_init(&rs.cv, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, reader_main, &rs) != 0) {
        rc = KD_ENOMEM;
        goto out_free;
    }
    uint64_t end = scan->ctx.length + length;
    uint64_t done = 0;
    for (size_t i = 0; done < length; i++) {
        int slot = (int)(i % KD_NBUF);
        pthread_mutex_lock(&rs.mu);
        while (rs.filled[slot] == -1) pthread_cond_wait(&rs.cv, &rs.mu);
        int64_t mark = rs.filled[slot];
        pthread_mutex_unlock(&rs.mu);
        if (mark < -1) {
            scan->error = (int32_t)(-(mark + 1));
            rc = KD_EIO;
            break;
        }
        size_t want = length - done < chunk ? (size_t)(length - done) : chunk;
        if ((size_t)mark < want) {
            rc = KD_ESHORT;
            break;
        }
        if (scan_cancelled(scan)) {
            rc = KD_ECANCELLED;
            break;
        }
        rc = scan_feed(scan, rs.buf[slot], want, end);
        if (rc) break;
        done += want;
        pthread_mutex_lock(&rs.mu);
        rs.filled[slot] = -1;
        pthread_cond_broadcast(&rs.cv);
        pthread_mutex_unlock(&rs.mu);
    }
    pthread_mutex_lock(&rs.mu);
    rs.stop = 1;
    pthread_cond_broadcast(&rs.cv);
    pthread_mutex_unlock(&rs.mu);
    pthread_join(th, NULL);
out_free:
    pthread_mutex_destroy(&rs.mu);
    pthread_cond_destroy(&rs.cv);
    for (int i = 0; i < KD_NBUF; i++) free(rs.buf[i]);
    return rc;
}

void kd_scan_allow(kd_scan *scan, uint64_t end) {
    __atomic_store_n(&scan->allowed_end, end, __ATOMIC_RELEASE);
}
