/* kd_recv.c - the storage node's body loop: socket -> hash -> file, no GIL.
 *
 * The local server's part PUT body is received here on a dedicated thread:
 * recv into one caller-owned buffer, resume the hash from the signed context
 * over it, pwrite it at the next offset, repeat.  See kd_recv_body in kd_sha.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "kd_internal.h"

/* Longest single poll() while waiting for bytes, so cancel is seen promptly. */
#define KD_RECV_POLL_SLICE_MS 100
/* Runs shorter than this are hashed alone (pairing costs a lock round trip). */
#define KD_PAIR_MIN_BLOCKS 256
/* A receiver whose client sent nothing for this long stops counting as a
 * partner to wait for (kd_recv.partner_idle_ms 0 means this). */
#define KD_STREAMING_IDLE_MS 20
/* After offers nobody took, hash 1, 2, 4, ... up to this many buffers alone
 * before offering again (reset by a pairing). */
#define KD_PAIR_BACKOFF 16

/* SHA-256 receivers whose bytes are flowing (see KD_STREAMING_IDLE_MS): a
 * receiver waits for a partner only if another one is streaming. */
static int32_t receivers_streaming;

/* A receiver's own bookkeeping across one kd_recv_body call. */
typedef struct recv_state {
    int lowat;      /* SO_RCVLOWAT now set on the socket */
    int streaming;  /* counted in receivers_streaming */
    int skip_waits; /* buffers to hash without offering (back-off) */
    int misses;     /* offers in a row that nobody took */
} recv_state;

static void set_streaming(recv_state *st, int on) {
    if (st->streaming == on) return;
    __atomic_fetch_add(&receivers_streaming, on ? 1 : -1, __ATOMIC_RELAXED);
    st->streaming = on;
}

/* ------------------------------------------------------------------ pairing
 *
 * SHA-256 with SHA-NI is bound by the rounds' latency, so the pair kernel
 * hashes two messages in little more than the time of one.  A receiver with
 * a buffer to hash takes the buffer another receiver offered and hashes both
 * (the common length; each finishes its own rest), or offers its own and
 * sleeps up to pair_wait_us for a taker before hashing alone.  An offerer's
 * buffer and state are untouched by it until the taker says it is finished.
 */
typedef struct pair_offer {
    uint32_t *h;
    const uint8_t *data;
    size_t nblocks;
    size_t done; /* blocks the taker hashed, once finished */
    int taken, finished;
} pair_offer;

static pthread_mutex_t pair_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pair_cv;
static pthread_once_t pair_once = PTHREAD_ONCE_INIT;
static pair_offer *pair_waiting;
static uint64_t pair_blocks; /* blocks hashed by the pair kernel, both messages counted */
static uint64_t pair_unanswered; /* offers that timed out with no taker */

static void pair_init(void) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pair_cv, &attr);
    pthread_condattr_destroy(&attr);
}

uint64_t kd_recv_paired_blocks(void) { return __atomic_load_n(&pair_blocks, __ATOMIC_RELAXED); }
uint64_t kd_recv_unanswered_offers(void) { return __atomic_load_n(&pair_unanswered, __ATOMIC_RELAXED); }
int kd_recv_streaming(void) { return __atomic_load_n(&receivers_streaming, __ATOMIC_RELAXED); }

/* Returns 1 if the blocks were hashed in a pair, -1 if an offer timed out
 * untaken, 0 if hashed alone without offering. */
static int blocks_shared(kd_pair_fn pairs, uint32_t *h, const uint8_t *data, size_t nblocks,
                         int wait_us) {
    pthread_once(&pair_once, pair_init);
    pthread_mutex_lock(&pair_mu);
    pair_offer *other = pair_waiting;
    if (other != NULL) {
        pair_waiting = NULL;
        other->taken = 1;
        pthread_mutex_unlock(&pair_mu);
        size_t n = nblocks < other->nblocks ? nblocks : other->nblocks;
        pairs(h, data, other->h, other->data, n);
        __atomic_fetch_add(&pair_blocks, 2 * (uint64_t)n, __ATOMIC_RELAXED);
        pthread_mutex_lock(&pair_mu);
        other->done = n;
        other->finished = 1;
        pthread_cond_broadcast(&pair_cv);
        pthread_mutex_unlock(&pair_mu);
        kd_active_sha256(h, data + 64 * n, nblocks - n);
        return 1;
    }
    if (wait_us <= 0) {
        pthread_mutex_unlock(&pair_mu);
        kd_active_sha256(h, data, nblocks);
        return 0;
    }
    pair_offer me = {h, data, nblocks, 0, 0, 0};
    pair_waiting = &me;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_us / 1000000;
    until.tv_nsec += (long)(wait_us % 1000000) * 1000;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec += 1;
        until.tv_nsec -= 1000000000L;
    }
    while (!me.taken) {
        if (pthread_cond_timedwait(&pair_cv, &pair_mu, &until) == ETIMEDOUT && !me.taken) {
            pair_waiting = NULL; /* still ours: only a taker clears it */
            pthread_mutex_unlock(&pair_mu);
            __atomic_fetch_add(&pair_unanswered, 1, __ATOMIC_RELAXED);
            kd_active_sha256(h, data, nblocks);
            return -1;
        }
    }
    while (!me.finished) pthread_cond_wait(&pair_cv, &pair_mu);
    pthread_mutex_unlock(&pair_mu);
    kd_active_sha256(h, data + 64 * me.done, nblocks - me.done);
    return 1;
}

/* kd_hash_update, sharing the whole blocks with another receiver if one is hashing too. */
static void hash_shared(kd_recv *job, recv_state *st, const uint8_t *data, size_t n) {
    kd_hash_ctx *ctx = &job->ctx;
    kd_pair_fn pairs = kd_active_sha256_pair;
    if (pairs == NULL || ctx->algorithm != KD_ALG_SHA256 || n < 64 * KD_PAIR_MIN_BLOCKS) {
        kd_hash_update(ctx, data, n);
        return;
    }
    if (ctx->buf_len) { /* complete the pending block first */
        size_t take = 64 - ctx->buf_len;
        kd_hash_update(ctx, data, take);
        data += take;
        n -= take;
    }
    size_t nblocks = n / 64;
    int others = __atomic_load_n(&receivers_streaming, __ATOMIC_RELAXED) > st->streaming;
    int wait_us = others && st->skip_waits == 0 ? job->pair_wait_us : 0;
    if (st->skip_waits > 0) st->skip_waits--;
    int paired = blocks_shared(pairs, ctx->h, data, nblocks, wait_us);
    if (paired > 0) {
        st->misses = 0;
    } else if (paired < 0) {
        st->skip_waits = st->misses < 4 ? 1 << st->misses : KD_PAIR_BACKOFF;
        st->misses++;
    }
    ctx->length += 64 * (uint64_t)nblocks;
    kd_hash_update(ctx, data + 64 * nblocks, n - 64 * nblocks);
}

static int recv_cancelled(const kd_recv *job) {
    return __atomic_load_n(&job->cancel, __ATOMIC_ACQUIRE) != 0;
}

void kd_recv_cancel(kd_recv *job) { __atomic_store_n(&job->cancel, 1, __ATOMIC_RELEASE); }

uint64_t kd_recv_bytes_done(const kd_recv *job) {
    return __atomic_load_n(&job->received, __ATOMIC_ACQUIRE);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One wait for the socket (at most a poll slice): 1 readable or the slice
 * passed, 0 idle for idle_ms, or a status.  Silence past partner_idle_ms
 * (default KD_STREAMING_IDLE_MS) stops this receiver counting as a pairing
 * partner until bytes come again. */
static int wait_readable(kd_recv *job, recv_state *st, int64_t idle_since) {
    const int64_t partner_idle = job->partner_idle_ms > 0 ? job->partner_idle_ms : KD_STREAMING_IDLE_MS;
    for (;;) {
        if (recv_cancelled(job)) return KD_ECANCELLED;
        int64_t idle = now_ms() - idle_since;
        int64_t left = (int64_t)job->idle_ms - idle;
        if (left <= 0) return 0;
        int64_t slice = left < KD_RECV_POLL_SLICE_MS ? left : KD_RECV_POLL_SLICE_MS;
        if (st->streaming && idle < partner_idle && slice > partner_idle - idle) slice = partner_idle - idle;
        struct pollfd p = {job->sock, POLLIN, 0};
        int r = poll(&p, 1, (int)slice);
        if (r == 0 && st->streaming && now_ms() - idle_since >= partner_idle) set_streaming(st, 0);
        if (r >= 0) return 1;  /* readable (or hung up: recv says), or a slice passed: recv sees what came */
        if (errno != EINTR) {
            job->error = errno;
            return KD_EIO;
        }
    }
}

/* Wake the waiting thread only once `want` bytes are queued (SO_RCVLOWAT), so a
 * body arriving slower than it is hashed is read in buffer-sized pieces, not a
 * wakeup per segment.  Best effort: a socket that refuses it just wakes more. */
static void want_bytes(kd_recv *job, recv_state *st, uint64_t want) {
    int *current = &st->lowat;
    int value = want > (uint64_t)(1 << 30) ? (1 << 30) : (int)want;
    if (value < 1) value = 1;
    if (value == *current) return;
    if (setsockopt(job->sock, SOL_SOCKET, SO_RCVLOWAT, &value, sizeof(value)) == 0) *current = value;
}

/* Write n bytes at job->offset; on failure remember errno and stop storing. */
static void store(kd_recv *job, const uint8_t *data, size_t n) {
    size_t done = 0;
    while (done < n && job->out_fd >= 0) {
        ssize_t w = pwrite(job->out_fd, data + done, n - done, (off_t)(job->offset + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            job->write_error = w < 0 ? errno : EIO;
            job->out_fd = -1;
            return;
        }
        done += (size_t)w;
    }
    job->offset += n;
}

/* Hash and store what the buffer holds (every byte received so far). */
static void consume(kd_recv *job, recv_state *st, size_t n) {
    if (n == 0) return;
    if (job->write_error == 0) {
        hash_shared(job, st, job->buf, n);
        store(job, job->buf, n);
    }
}

static int receive(kd_recv *job, recv_state *st) {
    size_t fill = 0;
    int64_t idle_since = now_ms();
    while (job->remaining > 0) {
        if (recv_cancelled(job)) return KD_ECANCELLED;
        size_t room = job->buf_size - fill;
        if ((uint64_t)room > job->remaining) room = (size_t)job->remaining;
        ssize_t r = recv(job->sock, job->buf + fill, room, MSG_DONTWAIT);
        if (r > 0) {
            fill += (size_t)r;
            job->remaining -= (uint64_t)r;
            __atomic_store_n(&job->received, job->received + (uint64_t)r, __ATOMIC_RELEASE);
            if (job->ctx.algorithm == KD_ALG_SHA256) set_streaming(st, 1);
            if (fill == job->buf_size || job->remaining == 0) {
                consume(job, st, fill);
                fill = 0;
            }
            idle_since = now_ms();
            continue;
        }
        if (r == 0) return KD_ESHORT; /* the client closed before the body ended */
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            job->error = errno;
            return KD_EIO;
        }
        /* Drained for now: hash what we have, then sleep until a buffer's worth is
         * queued.  The client's idle time starts after our own work. */
        if (fill) {
            consume(job, st, fill);
            fill = 0;
            idle_since = now_ms();
        }
        want_bytes(job, st, job->remaining < job->buf_size / 4 ? job->remaining : job->buf_size / 4);
        int w = wait_readable(job, st, idle_since);
        if (w <= 0) return w == 0 ? KD_ETIMEDOUT : w;
    }
    return job->write_error ? KD_EWRITE : KD_OK;
}

int kd_recv_body(kd_recv *job) {
    kd_init();
    if (job->sock < 0 || job->buf == NULL || job->buf_size < 64 || job->idle_ms < 1 ||
        (job->ctx.algorithm != KD_ALG_SHA256 && job->ctx.algorithm != KD_ALG_SHA1))
        return KD_EINVAL;
    job->error = 0;
    recv_state st = {1, 0, 0, 0}; /* lowat 1: the socket's default, which its next reader expects back */
    int status = receive(job, &st);
    set_streaming(&st, 0);
    if (st.lowat != 1) {
        int one = 1;
        setsockopt(job->sock, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
    }
    return status;
}
