// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * mxbench: the guest side of `make bench` (bench/run-bench.py).
 *
 * Static, libc only.  Every command prints "key: value" lines; timings
 * are CLOCK_MONOTONIC nanoseconds, and "NAME-samples: v v ..." lines
 * carry every sample, so that the host computes the percentiles the same
 * way for all measurements.
 *
 *   mxbench copy DEV OFF SIZE REPS
 *       B copies SIZE bytes from the window (mmap of DEV at offset OFF)
 *       into a local buffer, and SIZE bytes between two local buffers,
 *       alternately, REPS times each after one untimed warm-up of each;
 *       then the same again with the sources at a distance that aliases
 *       in TCG's software TLB (see cmd_copy).  Prints the series in MB/s
 *       (10^6 bytes per second) and the CRC32 (zlib's) of a copy out of
 *       the window.
 *   mxbench load DEV OFF COUNT
 *       COUNT volatile 8-byte loads at window offset OFF (uncached mmap),
 *       each timed; also COUNT timed loads of local RAM and COUNT empty
 *       timed intervals (the cost of the clock itself).  Prints the value
 *       read (hex).
 *   mxbench mx-ping DEV COUNT WARMUP PAYLOAD / mx-pong DEV N PAYLOAD
 *       memexpose doorbell ping-pong on vector 0, PAYLOAD 0 or 8 bytes
 *       (8: the sequence number, checked): ping sends and waits for the
 *       echo; pong receives and sends back (blocking
 *       MEMEXPOSE_IOC_RECV_DOORBELL, MEMEXPOSE_IOC_SEND_DOORBELL).  ping
 *       times COUNT round trips after WARMUP untimed ones; pong answers
 *       COUNT + WARMUP doorbells and exits.
 *   mxbench ivs-ping DEV PEER COUNT WARMUP / mxbench ivs-pong DEV PEER N
 *       The same over ivshmem-doorbell with bench/guest/ivshmem-bench:
 *       write() rings PEER's vector 0, read() blocks for our interrupt.
 *   mxbench ivs-pos DEV
 *       Our ivshmem IVPosition (the id the ivshmem-server gave us).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <linux/memexpose.h>

#include "ivshmem-bench/ivshmem-bench.h"

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mxbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static uint64_t num(const char *s)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		die("bad number '%s'", s);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end)
		die("bad number '%s'", s);
	return v;
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int open_dev(const char *dev, int flags)
{
	int fd = open(dev, flags | O_CLOEXEC);

	if (fd < 0)
		die("%s: %s", dev, strerror(errno));
	return fd;
}

static void print_samples(const char *name, const uint64_t *v, size_t n)
{
	size_t i;

	printf("%s-samples:", name);
	for (i = 0; i < n; i++)
		printf(" %" PRIu64, v[i]);
	printf("\n");
}

/* zlib's CRC32 (the same as memexpose-ctl and Python's zlib.crc32). */
static uint32_t crc32_buf(const uint8_t *p, size_t n)
{
	static uint32_t table[256];
	uint32_t c = 0xffffffffu;
	size_t i;

	if (!table[1]) {
		for (i = 0; i < 256; i++) {
			uint32_t x = (uint32_t)i;
			int k;

			for (k = 0; k < 8; k++)
				x = x & 1 ? 0xedb88320u ^ (x >> 1) : x >> 1;
			table[i] = x;
		}
	}
	for (i = 0; i < n; i++)
		c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static void *map_window(const char *dev, uint64_t off, size_t len, int *fdp)
{
	int fd = open_dev(dev, O_RDWR);
	void *p;

	if (off & 4095)
		die("offset 0x%" PRIx64 " is not page aligned", off);
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)off);
	if (p == MAP_FAILED)
		die("mmap %s 0x%" PRIx64 "+0x%zx: %s", dev, off, len,
		    strerror(errno));
	*fdp = fd;
	return p;
}

static uint64_t mbps(size_t bytes, uint64_t ns)
{
	/* MB/s with 10^6 bytes; ns is never 0 in practice. */
	return ns ? (uint64_t)((double)bytes * 1e3 / (double)ns) : 0;
}

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static void *map_fixed(void *addr, size_t len, int prot, int flags, int fd,
		       off_t off)
{
	void *p = mmap(addr, len, prot, flags | MAP_FIXED, fd, off);

	if (p == MAP_FAILED)
		die("mmap at %p, 0x%zx bytes: %s", addr, len, strerror(errno));
	return p;
}

/*
 * One series: REPS timed copies window -> dst and src -> dst, alternately
 * (so that load changes hit both alike), after one untimed copy of each
 * (everything is faulted in: the timed copies touch no new page).
 */
static void copy_series(uint8_t *dst, const uint8_t *w, const uint8_t *src,
			size_t size, int reps, uint64_t *win, uint64_t *loc,
			long *wflt, long *lflt)
{
	uint64_t t0;
	long f0;
	int i;

	memcpy(dst, w, size);
	memcpy(dst, src, size);
	for (i = 0; i < reps; i++) {
		f0 = minflt();
		t0 = now_ns();
		memcpy(dst, w, size);
		win[i] = mbps(size, now_ns() - t0);
		*wflt += minflt() - f0;
		f0 = minflt();
		t0 = now_ns();
		memcpy(dst, src, size);
		loc[i] = mbps(size, now_ns() - t0);
		*lflt += minflt() - f0;
	}
}

/*
 * The window mapping (source 1), the local source buffer (source 2) and
 * the local destination are placed explicitly, page aligned, the two
 * sources symmetrically around the destination: window at dst - D, local
 * source at dst + D.  D matters under TCG: QEMU's software TLB is indexed
 * by virtual page number modulo its (power-of-two, dynamically resized)
 * size, so a source whose distance to the destination is a multiple of
 * the TLB's span makes source and destination pages evict each other on
 * every access.  Left to mmap/malloc, the window lands exactly SIZE below
 * the destination (aliasing) while malloc'd buffers are SIZE + 4 KiB
 * apart (not aliasing): that measures TCG's TLB, not the window.
 *
 * Series 1 (the figure): D = an odd number of pages, no aliasing for any
 * TLB size.  Series 2 (diagnostic): D = SIZE rounded up to a power of
 * two, aliasing for every TLB of up to D / 4 KiB entries, for both
 * sources alike.  The local buffers are private anonymous memory, what
 * malloc returns for these sizes.
 */
static int cmd_copy(const char *dev, uint64_t off, size_t size, int reps)
{
	const int anon = MAP_PRIVATE | MAP_ANONYMOUS;
	long wflt = 0, lflt = 0, awflt = 0, alflt = 0;
	uint64_t *win = calloc(reps, sizeof(*win));
	uint64_t *loc = calloc(reps, sizeof(*loc));
	uint64_t *awin = calloc(reps, sizeof(*awin));
	uint64_t *aloc = calloc(reps, sizeof(*aloc));
	size_t pages = size / 4096, d_odd, d_alias = 4096, span;
	uint8_t *base, *dst, *src, *w;
	uint32_t crc;
	int fd;

	if (!win || !loc || !awin || !aloc)
		die("out of memory");
	if (!size || size % 4096 || off % 4096)
		die("size and offset must be page multiples");
	d_odd = ((pages + 1) % 2 ? pages + 1 : pages + 2) * 4096;
	while (d_alias < size)
		d_alias <<= 1;
	span = d_odd > d_alias ? d_odd : d_alias;
	fd = open_dev(dev, O_RDWR);

	/* Reserve address space, then place everything inside it. */
	base = mmap(NULL, 2 * span + size, PROT_NONE, anon | MAP_NORESERVE,
		    -1, 0);
	if (base == MAP_FAILED)
		die("reserving address space: %s", strerror(errno));
	dst = map_fixed(base + span, size, PROT_READ | PROT_WRITE, anon, -1, 0);
	memset(dst, 0, size);

	w = map_fixed(dst - d_odd, size, PROT_READ, MAP_SHARED, fd, (off_t)off);
	src = map_fixed(dst + d_odd, size, PROT_READ | PROT_WRITE, anon, -1, 0);
	memset(src, 0x5a, size);
	copy_series(dst, w, src, size, reps, win, loc, &wflt, &lflt);
	memcpy(dst, w, size);
	crc = crc32_buf(dst, size);

	/* Series 2: the same at an aliasing distance. */
	map_fixed(w, size, PROT_NONE, anon | MAP_NORESERVE, -1, 0);
	map_fixed(src, size, PROT_NONE, anon | MAP_NORESERVE, -1, 0);
	w = map_fixed(dst - d_alias, size, PROT_READ, MAP_SHARED, fd,
		      (off_t)off);
	src = map_fixed(dst + d_alias, size, PROT_READ | PROT_WRITE, anon, -1,
			0);
	memset(src, 0x5a, size);
	copy_series(dst, w, src, size, reps, awin, aloc, &awflt, &alflt);

	printf("size: %zu\n", size);
	printf("distance: 0x%zx\n", d_odd);
	printf("alias-distance: 0x%zx\n", d_alias);
	printf("window-crc32: 0x%08x\n", crc);
	/* Page faults taken during the timed copies (should be none). */
	printf("window-faults: %ld\n", wflt);
	printf("local-faults: %ld\n", lflt);
	printf("alias-window-faults: %ld\n", awflt);
	printf("alias-local-faults: %ld\n", alflt);
	print_samples("window-mbps", win, reps);
	print_samples("local-mbps", loc, reps);
	print_samples("alias-window-mbps", awin, reps);
	print_samples("alias-local-mbps", aloc, reps);
	munmap(base, 2 * span + size);
	close(fd);
	return 0;
}

static int cmd_load(const char *dev, uint64_t off, size_t count)
{
	uint64_t *fwd = calloc(count, sizeof(*fwd));
	uint64_t *loc = calloc(count, sizeof(*loc));
	uint64_t *clk = calloc(count, sizeof(*clk));
	volatile uint64_t *local = malloc(4096);
	const uint8_t *w;
	volatile const uint64_t *p;
	uint64_t v = 0, first = 0, t0;
	size_t i, differ = 0;
	int fd;

	if (!fwd || !loc || !clk || !local)
		die("out of memory");
	if (off & 7)
		die("offset 0x%" PRIx64 " is not 8-byte aligned", off);
	w = map_window(dev, off & ~4095ull, 4096, &fd);
	p = (volatile const uint64_t *)(w + (off & 4095));
	local[0] = 0x1122334455667788ull;
	first = *p;			/* fault the page in, untimed */
	for (i = 0; i < count; i++) {
		t0 = now_ns();
		v = *p;
		fwd[i] = now_ns() - t0;
		if (v != first)
			differ++;
	}
	for (i = 0; i < count; i++) {
		t0 = now_ns();
		v = local[0];
		loc[i] = now_ns() - t0;
	}
	for (i = 0; i < count; i++) {
		t0 = now_ns();
		clk[i] = now_ns() - t0;
	}
	(void)v;
	printf("value: 0x%016" PRIx64 "\n", first);
	printf("values-differing: %zu\n", differ);
	print_samples("window-ns", fwd, count);
	print_samples("local-ns", loc, count);
	print_samples("clock-ns", clk, count);
	munmap((void *)w, 4096);
	close(fd);
	return 0;
}

/* ---- memexpose doorbells ---- */

static void mx_send(int fd, uint64_t seq, unsigned int size)
{
	struct memexpose_doorbell db;

	memset(&db, 0, sizeof(db));
	db.vector = 0;
	db.size = (uint16_t)size;
	memcpy(db.data, &seq, size);
	/* One doorbell in flight: a credit is always there. */
	while (ioctl(fd, MEMEXPOSE_IOC_SEND_DOORBELL, &db) < 0) {
		if (errno != EINTR && errno != EAGAIN)
			die("send doorbell: %s", strerror(errno));
		if (errno == EAGAIN)
			usleep(100);
	}
}

static uint64_t mx_recv(int fd, unsigned int size)
{
	struct memexpose_doorbell db;
	uint64_t seq = 0;

	while (ioctl(fd, MEMEXPOSE_IOC_RECV_DOORBELL, &db) < 0)
		if (errno != EINTR)
			die("receive doorbell: %s", strerror(errno));
	if (db.vector != 0 || db.size != size)
		die("unexpected doorbell: vector %u, %u bytes", db.vector,
		    db.size);
	memcpy(&seq, db.data, size);
	return seq;
}

/* Doorbells left over from an interrupted earlier run would be taken for
 * replies: drop them (a second, non-blocking file). */
static size_t drain_mx(const char *dev)
{
	struct memexpose_doorbell db;
	int fd = open_dev(dev, O_RDWR | O_NONBLOCK);
	size_t n = 0;

	while (ioctl(fd, MEMEXPOSE_IOC_RECV_DOORBELL, &db) == 0)
		n++;
	if (errno != EAGAIN)
		die("draining doorbells: %s", strerror(errno));
	close(fd);
	return n;
}

static int cmd_mx_ping(const char *dev, size_t count, size_t warmup,
		       unsigned int size)
{
	uint64_t *rtt = calloc(count, sizeof(*rtt));
	int fd = open_dev(dev, O_RDWR);
	uint64_t seq, got, t0;
	size_t i;

	if (!rtt)
		die("out of memory");
	printf("stale-doorbells: %zu\n", drain_mx(dev));
	for (i = 0; i < warmup + count; i++) {
		seq = 0x6d78000000000000ull | i;
		t0 = now_ns();
		mx_send(fd, seq, size);
		got = mx_recv(fd, size);
		if (i >= warmup)
			rtt[i - warmup] = now_ns() - t0;
		if (size && got != seq)
			die("round trip %zu: sent 0x%" PRIx64 ", got back 0x%"
			    PRIx64, i, seq, got);
	}
	printf("round-trips: %zu\n", count);
	print_samples("rtt-ns", rtt, count);
	close(fd);
	return 0;
}

static int cmd_mx_pong(const char *dev, size_t n, unsigned int size)
{
	int fd = open_dev(dev, O_RDWR);
	size_t i;

	printf("pong: ready\n");
	fflush(stdout);
	for (i = 0; i < n; i++)
		mx_send(fd, mx_recv(fd, size), size);
	printf("pong: answered %zu\n", n);
	close(fd);
	return 0;
}

/* ---- ivshmem doorbells (bench/guest/ivshmem-bench) ---- */

static void ivs_ring(int fd, uint32_t peer)
{
	uint32_t val = peer << 16 | 0;	/* vector 0 */

	while (write(fd, &val, sizeof(val)) != sizeof(val))
		if (errno != EINTR)
			die("ring: %s", strerror(errno));
}

static uint64_t ivs_wait(int fd)
{
	uint64_t count;

	while (read(fd, &count, sizeof(count)) != sizeof(count))
		if (errno != EINTR)
			die("wait: %s", strerror(errno));
	return count;
}

static int cmd_ivs_ping(const char *dev, uint32_t peer, size_t count,
			size_t warmup)
{
	uint64_t *rtt = calloc(count, sizeof(*rtt));
	int fd = open_dev(dev, O_RDWR);
	uint64_t t0, c, last = 0;
	size_t i, skipped = 0;

	if (!rtt)
		die("out of memory");
	for (i = 0; i < warmup + count; i++) {
		t0 = now_ns();
		ivs_ring(fd, peer);
		c = ivs_wait(fd);
		if (i >= warmup)
			rtt[i - warmup] = now_ns() - t0;
		/* Exactly one interrupt per round trip. */
		if (i && c != last + 1)
			skipped++;
		last = c;
	}
	printf("round-trips: %zu\n", count);
	printf("irq-count-jumps: %zu\n", skipped);
	print_samples("rtt-ns", rtt, count);
	close(fd);
	return 0;
}

static int cmd_ivs_pong(const char *dev, uint32_t peer, size_t n)
{
	int fd = open_dev(dev, O_RDWR);
	size_t i;

	printf("pong: ready\n");
	fflush(stdout);
	for (i = 0; i < n; i++) {
		ivs_wait(fd);
		ivs_ring(fd, peer);
	}
	printf("pong: answered %zu\n", n);
	close(fd);
	return 0;
}

static int cmd_ivs_pos(const char *dev)
{
	int fd = open_dev(dev, O_RDONLY);
	__u32 pos;

	if (ioctl(fd, IVSHMEM_BENCH_IOC_POSITION, &pos) < 0)
		die("IVPosition: %s", strerror(errno));
	printf("ivposition: %d\n", (int32_t)pos);
	close(fd);
	return 0;
}

static unsigned int payload(const char *s)
{
	uint64_t v = num(s);

	if (v != 0 && v != 8)
		die("payload: 0 or 8 bytes");
	return (unsigned int)v;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: mxbench copy DEV OFF SIZE REPS\n"
		"       mxbench load DEV OFF COUNT\n"
		"       mxbench mx-ping DEV COUNT WARMUP PAYLOAD | "
		"mx-pong DEV N PAYLOAD\n"
		"       mxbench ivs-ping DEV PEER COUNT WARMUP | "
		"ivs-pong DEV PEER N\n"
		"       mxbench ivs-pos DEV\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	if (!strcmp(cmd, "copy") && argc == 6)
		return cmd_copy(argv[2], num(argv[3]), num(argv[4]),
				(int)num(argv[5]));
	if (!strcmp(cmd, "load") && argc == 5)
		return cmd_load(argv[2], num(argv[3]), num(argv[4]));
	if (!strcmp(cmd, "mx-ping") && argc == 6)
		return cmd_mx_ping(argv[2], num(argv[3]), num(argv[4]),
				   payload(argv[5]));
	if (!strcmp(cmd, "mx-pong") && argc == 5)
		return cmd_mx_pong(argv[2], num(argv[3]), payload(argv[4]));
	if (!strcmp(cmd, "ivs-ping") && argc == 6)
		return cmd_ivs_ping(argv[2], num(argv[3]), num(argv[4]),
				    num(argv[5]));
	if (!strcmp(cmd, "ivs-pong") && argc == 5)
		return cmd_ivs_pong(argv[2], num(argv[3]), num(argv[4]));
	if (!strcmp(cmd, "ivs-pos") && argc == 3)
		return cmd_ivs_pos(argv[2]);
	usage();
	return 2;
}
