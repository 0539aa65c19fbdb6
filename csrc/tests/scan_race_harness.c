/* scan_race_harness.c - progress counters of a scan read from another thread,
 * for ThreadSanitizer (no Python needed).  Build and run from the repo root:
 *
 *   gcc -fsanitize=thread -O1 -g -std=c11 -Icsrc csrc/tests/scan_race_harness.c \
 *       csrc/kd_*.c -lpthread -o /tmp/kd_scan_race
 *   TSAN_OPTIONS=halt_on_error=1 /tmp/kd_scan_race
 *
 * A poller thread reads kd_scan_bytes_done / kd_scan_states_done (atomic
 * loads) and only then tells the main thread, through a relaxed flag that
 * orders nothing, to start a scan on the same kd_scan.  The scan's reset of
 * the counters is therefore unordered with those loads: a plain store there
 * is a data race by the C11 rules and ThreadSanitizer reports it; atomic
 * stores are not.  Each of kd_scan_buffer and kd_scan_fd (inline and with the
 * reader thread) runs once.  Prints one line per scan, exits non-zero on a
 * wrong result. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kd_sha.h"

#define DATA_LEN (64 * 1024 + 100)
#define STRIDE 4096
#define ROUNDS 3
#define MAX_SPINS 200000 /* x 50 us: 10 s */

static kd_scan scan;
static uint32_t states[DATA_LEN / STRIDE * 8];
static int requested; /* round the main thread waits to start (relaxed) */
static int ready;     /* round the poller has read the counters for (relaxed) */
static uint64_t seen; /* keeps the poller's loads */

static void pause_briefly(void) {
    struct timespec ts = {0, 50 * 1000};
    nanosleep(&ts, NULL);
}

static void *poller(void *arg) {
    (void)arg;
    for (int round = 1; round <= ROUNDS; round++) {
        for (long i = 0; i < MAX_SPINS && __atomic_load_n(&requested, __ATOMIC_RELAXED) < round;
             i++)
            pause_briefly();
        seen += kd_scan_bytes_done(&scan) + kd_scan_states_done(&scan);
        __atomic_store_n(&ready, round, __ATOMIC_RELAXED);
        for (int i = 0; i < 1000; i++) seen += kd_scan_bytes_done(&scan);
    }
    return NULL;
}

/* Ask the poller to read the counters, wait until it has: no happens-before. */
static int handshake(int round) {
    __atomic_store_n(&requested, round, __ATOMIC_RELAXED);
    for (long i = 0; i < MAX_SPINS; i++) {
        if (__atomic_load_n(&ready, __ATOMIC_RELAXED) >= round) return 0;
        pause_briefly();
    }
    return 1;
}

static void prepare(void) {
    kd_hash_init(&scan.ctx, KD_ALG_SHA256);
    scan.stride = STRIDE;
    scan.states = states;
    scan.max_states = sizeof(states) / sizeof(states[0]) / 8;
    scan.read_size = 4096; /* smaller than the data: kd_scan_fd uses its reader thread */
}

static int report(const char *what, int rc, const uint8_t *expected) {
    uint8_t out[32];
    kd_hash_digest(&scan.ctx, out);
    int ok = rc == KD_OK && kd_scan_bytes_done(&scan) == DATA_LEN &&
             kd_scan_states_done(&scan) == DATA_LEN / STRIDE && memcmp(out, expected, 32) == 0;
    printf("%s: rc=%d bytes=%llu states=%llu %s\n", what, rc,
           (unsigned long long)kd_scan_bytes_done(&scan),
           (unsigned long long)kd_scan_states_done(&scan), ok ? "ok" : "WRONG");
    return !ok;
}

int main(void) {
    static uint8_t data[DATA_LEN];
    for (size_t i = 0; i < sizeof(data); i++) data[i] = (uint8_t)(i * 131 + (i >> 8));
    uint8_t expected[32];
    kd_hash_ctx ref;
    kd_hash_init(&ref, KD_ALG_SHA256);
    kd_hash_update(&ref, data, sizeof(data));
    kd_hash_digest(&ref, expected);

    FILE *f = tmpfile();
    if (!f || fwrite(data, 1, sizeof(data), f) != sizeof(data) || fflush(f) != 0) return 3;
    int fd = fileno(f);

    prepare();
    pthread_t th;
    if (pthread_create(&th, NULL, poller, NULL) != 0) return 3;
    int bad = 0;

    if (handshake(1)) return 4;
    bad += report("kd_scan_buffer", kd_scan_buffer(&scan, data, sizeof(data)), expected);

    prepare();
    if (handshake(2)) return 4;
    bad += report("kd_scan_fd (reader thread)", kd_scan_fd(&scan, fd, 0, sizeof(data)), expected);

    prepare();
    scan.read_size = 2 * DATA_LEN; /* one read: the inline path */
    if (handshake(3)) return 4;
    bad += report("kd_scan_fd (inline)", kd_scan_fd(&scan, fd, 0, sizeof(data)), expected);

    pthread_join(th, NULL);
    fclose(f);
    printf("seen %llu\n", (unsigned long long)(seen != 0));
    return bad ? 1 : 0;
}
