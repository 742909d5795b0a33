/*
 * host-floor: the host's own round-trip floor between two processes, for
 * the bench to set memexpose's figures against.
 *
 *   host-floor unix COUNT      8-byte message over a unix socketpair and
 *                              back (what a forwarded access needs at
 *                              the least: one message each way)
 *   host-floor eventfd COUNT   an eventfd signalled each way (what a
 *                              doorbell needs at the least)
 *
 * Prints "kind: ...", "count: N" and "rtt-samples: ns ns ..." in
 * mxbench's format.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 100

static void die(const char *what)
{
	fprintf(stderr, "host-floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void xread(int fd, void *buf, size_t len)
{
	ssize_t n = read(fd, buf, len);

	if (n != (ssize_t)len)
		die("read");
}

static void xwrite(int fd, const void *buf, size_t len)
{
	ssize_t n = write(fd, buf, len);

	if (n != (ssize_t)len)
		die("write");
}

/* One round trip: send on @out, wait for the answer on @in. */
static uint64_t round_trip(int out, int in, size_t len)
{
	uint64_t v = 1, t0 = now_ns();

	xwrite(out, &v, len);
	xread(in, &v, len);
	return now_ns() - t0;
}

int main(int argc, char **argv)
{
	int to_child, from_child, child_in, child_out;
	unsigned long count, i;
	uint64_t *rtt;
	size_t len = 8;
	pid_t pid;
	int status;

	if (argc != 3 || (strcmp(argv[1], "unix") && strcmp(argv[1], "eventfd"))) {
		fprintf(stderr, "usage: host-floor unix|eventfd COUNT\n");
		return 2;
	}
	count = strtoul(argv[2], NULL, 0);
	if (!count)
		return 2;
	rtt = calloc(count, sizeof(*rtt));
	if (!rtt)
		die("calloc");

	if (!strcmp(argv[1], "unix")) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
			die("socketpair");
		to_child = from_child = sv[0];
		child_in = child_out = sv[1];
	} else {
		to_child = child_in = eventfd(0, 0);
		from_child = child_out = eventfd(0, 0);
		if (to_child < 0 || from_child < 0)
			die("eventfd");
	}

	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		uint64_t v;

		for (i = 0; i < count + WARMUP; i++) {
			xread(child_in, &v, len);
			xwrite(child_out, &v, len);
		}
		_exit(0);
	}
	for (i = 0; i < WARMUP; i++)
		round_trip(to_child, from_child, len);
	for (i = 0; i < count; i++)
		rtt[i] = round_trip(to_child, from_child, len);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		die("child");

	printf("kind: %s\ncount: %lu\nrtt-samples:", argv[1], count);
	for (i = 0; i < count; i++)
		printf(" %" PRIu64, rtt[i]);
	printf("\n");
	free(rtt);
	return 0;
}
