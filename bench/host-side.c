/*
 * host-side: the host-side figures of the bench, on libmemexpose.
 *
 *   host-side read SOCKET ADDR COUNT   COUNT timed 8-byte mx_read_value()s
 *                                      of the VM's ADDR, forwarded (the
 *                                      range is never mapped)
 *   host-side copy SIZE FILE           the host's own copy of a SIZE-byte
 *                                      buffer into FILE, 1 MiB per write()
 *                                      as memexpose-host dump writes
 *
 * read prints "kind: lib-read", "count: N" and "rtt-samples: ns ..." in
 * mxbench's format; copy prints "seconds: S".
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libmemexpose.h"

#define WARMUP  100
#define CHUNK   (1u << 20)

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static int bench_read(const char *sock, uint64_t addr, unsigned count)
{
    uint64_t *rtt = calloc(count, sizeof(*rtt));
    mx_options o;
    mx_link *l;
    unsigned i;

    mx_options_init(&o);
    o.name = "host-side-bench";
    l = mx_link_new(&o);
    if (!rtt || !l || mx_connect(l, sock)) {
        fprintf(stderr, "host-side: %s: %s\n", sock,
                l ? mx_link_error(l) : "out of memory");
        return 1;
    }
    for (i = 0; i < WARMUP + count; i++) {
        uint64_t t0 = now_ns(), v;
        int ret = mx_read_value(l, addr, 8, &v);

        if (ret) {
            fprintf(stderr, "host-side: read 0x%" PRIx64 ": %s (%s)\n",
                    addr, mx_strerror(ret), mx_link_error(l));
            return 1;
        }
        if (i >= WARMUP) {
            rtt[i - WARMUP] = now_ns() - t0;
        }
    }
    printf("kind: lib-read\ncount: %u\nrtt-samples:", count);
    for (i = 0; i < count; i++) {
        printf(" %" PRIu64, rtt[i]);
    }
    printf("\n");
    mx_close(l);
    free(rtt);
    return 0;
}

static int bench_copy(uint64_t size, const char *file)
{
    uint8_t *buf = malloc(size);
    uint64_t t0, done = 0, i;
    int fd;

    if (!buf) {
        fprintf(stderr, "host-side: out of memory\n");
        return 1;
    }
    /* Touched and not zero, as the VM's RAM is. */
    for (i = 0; i < size; i += 8) {
        *(uint64_t *)(buf + i) = i * 0x9e3779b97f4a7c15ULL;
    }
    t0 = now_ns();
    fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "host-side: %s: %s\n", file, strerror(errno));
        return 1;
    }
    while (done < size) {
        size_t n = size - done < CHUNK ? size - done : CHUNK;
        ssize_t k = write(fd, buf + done, n);

        if (k <= 0) {
            fprintf(stderr, "host-side: %s: %s\n", file, strerror(errno));
            return 1;
        }
        done += k;
    }
    if (close(fd) < 0) {
        fprintf(stderr, "host-side: %s: %s\n", file, strerror(errno));
        return 1;
    }
    printf("seconds: %.6f\n", (now_ns() - t0) / 1e9);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "read")) {
        return bench_read(argv[2], strtoull(argv[3], NULL, 0),
                          strtoul(argv[4], NULL, 0));
    }
    if (argc == 4 && !strcmp(argv[1], "copy")) {
        return bench_copy(strtoull(argv[2], NULL, 0), argv[3]);
    }
    fprintf(stderr, "usage: host-side read SOCKET ADDR COUNT\n"
                    "       host-side copy SIZE FILE\n");
    return 2;
}
