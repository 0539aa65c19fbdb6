/* recv_pair_harness.c - the storage node's body receivers pairing their
 * hashing, for ThreadSanitizer (no Python needed).  Build and run from the
 * repo root:
 *
 *   gcc -fsanitize=thread -O1 -g -std=c11 -Icsrc csrc/tests/recv_pair_harness.c \
 *       csrc/kd_*.c -lpthread -o /tmp/kd_recv_pair
 *   TSAN_OPTIONS=halt_on_error=1 /tmp/kd_recv_pair
 *
 * RECEIVERS threads each run kd_recv_body on one end of a socketpair while a
 * writer thread per pair sends BODY bytes in uneven chunks.  Receivers wait
 * long for partners (pair_wait_us, partner_idle_ms), so buffers are hashed
 * in pairs: one thread reads the other's buffer and writes the other's
 * chaining words while that one sleeps.  Each body's digest is checked
 * against a one-thread kd_hash_update of the same bytes.  Prints one line
 * per receiver and the blocks hashed in pairs; exits non-zero on a wrong
 * digest, or if the pair kernel is active and nothing was paired. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kd_sha.h"

#define RECEIVERS 4
#define BODY (3 * 1024 * 1024 + 17)
#define BUFFER (256 * 1024)

typedef struct lane {
    int fds[2];
    uint8_t *data;
    uint8_t *buf;
    kd_recv job;
    int status;
} lane;

static lane lanes[RECEIVERS];

static void fill(uint8_t *p, size_t n, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static void *writer(void *arg) {
    lane *l = arg;
    size_t sent = 0, step = 1000;
    while (sent < BODY) {
        size_t n = BODY - sent < step ? BODY - sent : step;
        ssize_t w = write(l->fds[0], l->data + sent, n);
        if (w <= 0) break;
        sent += (size_t)w;
        step = step * 7 % 200003 + 1; /* uneven chunks */
    }
    return NULL;
}

static void *receiver(void *arg) {
    lane *l = arg;
    l->status = kd_recv_body(&l->job);
    return NULL;
}

int main(void) {
    pthread_t writers[RECEIVERS], receivers[RECEIVERS];
    for (int i = 0; i < RECEIVERS; i++) {
        lane *l = &lanes[i];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, l->fds) != 0) return 2;
        l->data = malloc(BODY);
        l->buf = malloc(BUFFER);
        if (!l->data || !l->buf) return 2;
        fill(l->data, BODY, (uint32_t)i + 1);
        memset(&l->job, 0, sizeof(l->job));
        kd_hash_init(&l->job.ctx, KD_ALG_SHA256);
        l->job.sock = l->fds[1];
        l->job.out_fd = -1;
        l->job.remaining = BODY;
        l->job.buf = l->buf;
        l->job.buf_size = BUFFER;
        l->job.idle_ms = 30000;
        l->job.pair_wait_us = 200000;
        l->job.partner_idle_ms = 30000;
    }
    for (int i = 0; i < RECEIVERS; i++) {
        pthread_create(&receivers[i], NULL, receiver, &lanes[i]);
        pthread_create(&writers[i], NULL, writer, &lanes[i]);
    }
    int bad = 0;
    for (int i = 0; i < RECEIVERS; i++) {
        pthread_join(writers[i], NULL);
        pthread_join(receivers[i], NULL);
        lane *l = &lanes[i];
        kd_hash_ctx ref;
        kd_hash_init(&ref, KD_ALG_SHA256);
        kd_hash_update(&ref, l->data, BODY);
        uint8_t got[32], want[32];
        kd_hash_digest(&l->job.ctx, got);
        kd_hash_digest(&ref, want);
        int ok = l->status == KD_OK && l->job.received == BODY && memcmp(got, want, 32) == 0;
        printf("receiver %d %s\n", i, ok ? "ok" : "WRONG");
        bad |= !ok;
        close(l->fds[0]);
        close(l->fds[1]);
        free(l->data);
        free(l->buf);
    }
    uint64_t paired = kd_recv_paired_blocks();
    printf("pair kernel '%s', blocks hashed in pairs %llu\n", kd_pair_kernel_name(),
           (unsigned long long)paired);
    if (kd_pair_kernel_name()[0] != '\0' && paired == 0) bad = 1;
    return bad;
}
