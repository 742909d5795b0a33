// SPDX-License-Identifier: GPL-2.0
/*
 * memexpose-ctl: command line access to /dev/memexposeN.
 *
 * Build: gcc -static -O2 -Wall -Wextra -I../include/uapi \
 *            -o memexpose-ctl memexpose-ctl.c
 * (or "make tools" in linux-driver/).  Needs only libc and
 * <linux/memexpose.h>.
 *
 * Copyright (c) 2026 The memexpose authors
 */

#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/memexpose.h>

#define PROG		"memexpose-ctl"
#define CHUNK		(64 * 1024)
#define SEND_RETRY_MS	1000
/* Most of the window load maps at once (a 32-bit process has little room). */
#define LOAD_MAP_MAX	(256 * 1024 * 1024)
/* wait-boot-state: re-read the state at least this often. */
#define BOOT_POLL_MS	100

static const char *device = "/dev/memexpose0";

static void usage(FILE *f)
{
	fprintf(f,
"usage: " PROG " [-d DEVICE] COMMAND [ARGS...]\n"
"\n"
"DEVICE defaults to /dev/memexpose0.  ADDR is an offset in the window\n"
"(it reaches peer address window_base + ADDR); PEER_ADDR is a peer physical\n"
"address.  Numbers are decimal or 0x-hex, LEN, ADDR and PEER_ADDR accept a\n"
"K, M or G suffix (powers of 1024).\n"
"\n"
"  info                      device and link state\n"
"  read ADDR LEN             hex dump of the window (pread)\n"
"  write ADDR DATA           write DATA (a string, or 0x-prefixed hex bytes)\n"
"  dump ADDR LEN FILE        copy the window to FILE (pread, 64 KiB chunks)\n"
"  load FILE PEER_ADDR       copy FILE into peer memory at PEER_ADDR: moves\n"
"                            the window base as needed, writes through mmap\n"
"  load-window FILE ADDR     copy FILE into the window (pwrite)\n"
"  crc ADDR LEN              CRC32 of the range, read with pread\n"
"  mmap-check ADDR LEN       CRC32 of the range, read through mmap\n"
"  fill ADDR LEN SEED        write a pattern through mmap, print its CRC32\n"
"  doorbell send VEC [DATA]  send a doorbell (retries for 1 s if busy)\n"
"  doorbell wait [TIMEOUT_MS]\n"
"                            wait for a doorbell and print it\n"
"  boot ENTRY [ARG0 [ARG1 [ARG2 [ARG3]]]]\n"
"                            start the peer (a boot target) at ENTRY\n"
"  reset                     reset the peer (back to waiting)\n"
"  halt                      stop the peer\n"
"  boot-state                print \"peer: STATE own: STATE\"\n"
"  wait-boot-state STATE [TIMEOUT_MS]\n"
"                            wait until the peer's state is STATE\n"
"  base ADDR                 set the window base (peer address of offset 0)\n"
"\n"
"STATE is none, waiting, running or halted.\n"
"\n"
"crc, mmap-check and fill print \"crc32: 0x<8 hex digits>\" (zlib's CRC32).\n"
"The fill pattern depends on SEED and the window offset only: the byte at\n"
"offset O is byte (O %% 8) (little-endian) of splitmix64(SEED + O / 8).\n");
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void __attribute__((noreturn)) die_usage(const char *what)
{
	fprintf(stderr, PROG ": %s\n", what);
	usage(stderr);
	exit(2);
}

/* Numbers: decimal or 0x-hex, optional K/M/G suffix; nothing else. */
static uint64_t parse_num(const char *s, const char *what, bool suffix)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (!*s || *s == '-' || *s == '+' || isspace((unsigned char)*s))
		die("bad %s '%s'", what, s);
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		die("bad %s '%s'", what, s);
	if (suffix && *end) {
		switch (*end) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		default: die("bad %s '%s'", what, s);
		}
		end++;
	}
	if (*end)
		die("bad %s '%s'", what, s);
	if (shift && v > (UINT64_MAX >> shift))
		die("%s '%s' is too large", what, s);
	return (uint64_t)v << shift;
}

/* DATA: "0x" followed by hex byte pairs, or the string itself. */
static size_t parse_data(const char *s, uint8_t **out)
{
	size_t len, i;
	uint8_t *buf;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		const char *h = s + 2;

		len = strlen(h);
		if (!len || len % 2)
			die("bad hex data '%s' (need pairs of hex digits)", s);
		len /= 2;
		buf = malloc(len);
		if (!buf)
			die("out of memory");
		for (i = 0; i < len; i++) {
			char pair[3] = { h[2 * i], h[2 * i + 1], 0 };
			char *end;

			if (!isxdigit((unsigned char)pair[0]) ||
			    !isxdigit((unsigned char)pair[1]))
				die("bad hex data '%s'", s);
			buf[i] = (uint8_t)strtoul(pair, &end, 16);
		}
	} else {
		len = strlen(s);
		buf = malloc(len ? len : 1);
		if (!buf)
			die("out of memory");
		memcpy(buf, s, len);
	}
	*out = buf;
	return len;
}

static int open_dev(int flags)
{
	int fd = open(device, flags | O_CLOEXEC);

	if (fd < 0)
		die("%s: %s", device, strerror(errno));
	return fd;
}

static uint64_t window_size(int fd)
{
	off_t end = lseek(fd, 0, SEEK_END);

	if (end < 0)
		die("%s: lseek: %s", device, strerror(errno));
	return (uint64_t)end;
}

/* Check that [addr, addr + len) lies in the window. */
static void check_range(int fd, uint64_t addr, uint64_t len)
{
	uint64_t size = window_size(fd);

	if (addr > size || len > size - addr)
		die("range 0x%" PRIx64 "+0x%" PRIx64 " is outside the window (0x%" PRIx64 " bytes)",
		    addr, len, size);
	if (addr + len > (uint64_t)INT64_MAX)
		die("range 0x%" PRIx64 "+0x%" PRIx64 " is too large", addr, len);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void report_rate(const char *what, uint64_t bytes, double t0)
{
	double dt = now_s() - t0;

	fprintf(stderr, "%s %" PRIu64 " bytes in %.3f s (%.1f MB/s)\n", what,
		bytes, dt, dt > 0 ? bytes / dt / 1e6 : 0.0);
}

/* Full pread/pwrite: the window never returns short except at its end. */
static void pread_all(int fd, void *buf, size_t len, uint64_t addr)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  (off_t)(addr + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read at 0x%" PRIx64 ": %s", addr + done,
			    strerror(errno));
		if (n == 0)
			die("read at 0x%" PRIx64 ": end of window",
			    addr + done);
		done += n;
	}
}

static void pwrite_all(int fd, const void *buf, size_t len, uint64_t addr)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done,
				   (off_t)(addr + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("write at 0x%" PRIx64 ": %s", addr + done,
			    strerror(errno));
		if (n == 0)
			die("write at 0x%" PRIx64 ": end of window",
			    addr + done);
		done += n;
	}
}

/* ---- CRC32 (IEEE 802.3, as zlib's crc32()) ---- */

static uint32_t crc_table[256];

static void crc_init(void)
{
	uint32_t i, j, c;

	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++)
			c = c & 1 ? 0xedb88320U ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

/* Running CRC: start with 0, pass the previous result back in. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t len)
{
	crc = ~crc;
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- the fill pattern ---- */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint8_t pattern_byte(uint64_t seed, uint64_t off)
{
	return (uint8_t)(splitmix64(seed + off / 8) >> (8 * (off % 8)));
}

/* ---- mmap access in naturally aligned pieces (as the driver does) ---- */

struct wmap {
	uint8_t *base;		/* the mapping */
	size_t maplen;
	volatile uint8_t *p;	/* the range asked for */
};

static void map_range(int fd, uint64_t addr, uint64_t len, int prot,
		      struct wmap *m)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t start = addr & ~(uint64_t)(page - 1);
	uint64_t maplen = addr - start + len;
	void *p;

	if (maplen > SIZE_MAX)
		die("range too large to map");
	p = mmap(NULL, (size_t)maplen, prot, MAP_SHARED, fd, (off_t)start);
	if (p == MAP_FAILED)
		die("mmap 0x%" PRIx64 "+0x%" PRIx64 ": %s", start, maplen,
		    strerror(errno));
	m->base = p;
	m->maplen = (size_t)maplen;
	m->p = (volatile uint8_t *)p + (addr - start);
}

static size_t mmio_read(volatile uint8_t *src, uint8_t *dst, size_t len)
{
	uintptr_t a = (uintptr_t)src;

	if (!(a & 7) && len >= 8) {
		uint64_t v = *(volatile uint64_t *)src;

		memcpy(dst, &v, 8);
		return 8;
	}
	if (!(a & 3) && len >= 4) {
		uint32_t v = *(volatile uint32_t *)src;

		memcpy(dst, &v, 4);
		return 4;
	}
	if (!(a & 1) && len >= 2) {
		uint16_t v = *(volatile uint16_t *)src;

		memcpy(dst, &v, 2);
		return 2;
	}
	*dst = *src;
	return 1;
}

static size_t mmio_write(volatile uint8_t *dst, const uint8_t *src,
			 size_t len)
{
	uintptr_t a = (uintptr_t)dst;

	if (!(a & 7) && len >= 8) {
		uint64_t v;

		memcpy(&v, src, 8);
		*(volatile uint64_t *)dst = v;
		return 8;
	}
	if (!(a & 3) && len >= 4) {
		uint32_t v;

		memcpy(&v, src, 4);
		*(volatile uint32_t *)dst = v;
		return 4;
	}
	if (!(a & 1) && len >= 2) {
		uint16_t v;

		memcpy(&v, src, 2);
		*(volatile uint16_t *)dst = v;
		return 2;
	}
	*dst = *src;
	return 1;
}

/* ---- commands ---- */

static int cmd_info(void)
{
	struct memexpose_info info;
	int fd = open_dev(O_RDONLY);
	static const char *const feat[] = { "map", "bulk", "boot", "heartbeat" };
	unsigned int i;
	const char *sep = " ";

	if (ioctl(fd, MEMEXPOSE_IOC_GET_INFO, &info) < 0)
		die("%s: info: %s", device, strerror(errno));
	info.peer_name[sizeof(info.peer_name) - 1] = '\0';

	printf("device: %s\n", device);
	printf("link: %s\n", info.link & MEMEXPOSE_LINK_UP ? "up" : "down");
	printf("peer-boot-target: %s\n",
	       info.link & MEMEXPOSE_LINK_PEER_BOOT_TARGET ? "yes" : "no");
	printf("link-epoch: %u\n", info.link_epoch);
	printf("peer: %s\n", info.peer_name);
	printf("window-size: %llu\n", (unsigned long long)info.window_size);
	printf("window-base: 0x%llx\n", (unsigned long long)info.window_base);
	printf("features: 0x%llx", (unsigned long long)info.features);
	for (i = 0; i < sizeof(feat) / sizeof(feat[0]); i++) {
		if (info.features & (1ULL << i)) {
			printf("%s%s", sep, feat[i]);
			sep = ",";
		}
	}
	printf("\n");
	printf("vectors: %u\n", info.vectors);
	printf("peer-vectors: %u\n", info.peer_vectors);
	printf("queue-depth: %u\n", info.queue_depth);
	printf("tx-credits: %u\n", info.tx_credits);
	close(fd);
	return 0;
}

static void hexdump(const uint8_t *p, size_t len, uint64_t addr)
{
	size_t i, j;

	for (i = 0; i < len; i += 16) {
		printf("%08" PRIx64 " ", addr + i);
		for (j = 0; j < 16; j++) {
			if (j == 8)
				putchar(' ');
			if (i + j < len)
				printf(" %02x", p[i + j]);
			else
				printf("   ");
		}
		printf("  |");
		for (j = 0; j < 16 && i + j < len; j++)
			putchar(isprint(p[i + j]) ? p[i + j] : '.');
		printf("|\n");
	}
}

static int cmd_read(uint64_t addr, uint64_t len)
{
	int fd = open_dev(O_RDONLY);
	uint8_t *buf = malloc(CHUNK);
	uint64_t done = 0;

	if (!buf)
		die("out of memory");
	check_range(fd, addr, len);
	while (done < len) {
		size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;

		pread_all(fd, buf, n, addr + done);
		hexdump(buf, n, addr + done);
		done += n;
	}
	free(buf);
	close(fd);
	return 0;
}

static int cmd_write(uint64_t addr, const char *data)
{
	int fd = open_dev(O_RDWR);
	uint8_t *buf;
	size_t len = parse_data(data, &buf);

	check_range(fd, addr, len);
	pwrite_all(fd, buf, len, addr);
	free(buf);
	close(fd);
	return 0;
}

static int cmd_dump(uint64_t addr, uint64_t len, const char *path)
{
	int fd = open_dev(O_RDONLY);
	uint8_t *buf = malloc(CHUNK);
	uint64_t done = 0;
	double t0;
	int out;

	if (!buf)
		die("out of memory");
	check_range(fd, addr, len);
	out = strcmp(path, "-") ? open(path, O_WRONLY | O_CREAT | O_TRUNC |
				       O_CLOEXEC, 0644) : STDOUT_FILENO;
	if (out < 0)
		die("%s: %s", path, strerror(errno));
	t0 = now_s();
	while (done < len) {
		size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
		size_t w = 0;

		pread_all(fd, buf, n, addr + done);
		while (w < n) {
			ssize_t r = write(out, buf + w, n - w);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				die("%s: %s", path, strerror(errno));
			w += r;
		}
		done += n;
	}
	if (out != STDOUT_FILENO && close(out) < 0)
		die("%s: %s", path, strerror(errno));
	report_rate("dumped", done, t0);
	free(buf);
	close(fd);
	return 0;
}

static int open_input(const char *path)
{
	int in = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) :
				     STDIN_FILENO;

	if (in < 0)
		die("%s: %s", path, strerror(errno));
	return in;
}

/* Read up to CHUNK bytes; 0 at the end of the file. */
static size_t read_chunk(int in, const char *path, uint8_t *buf)
{
	for (;;) {
		ssize_t n = read(in, buf, CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("%s: %s", path, strerror(errno));
		return (size_t)n;
	}
}

static int cmd_load_window(const char *path, uint64_t addr)
{
	int fd = open_dev(O_RDWR);
	uint8_t *buf = malloc(CHUNK);
	uint64_t done = 0, size = window_size(fd);
	struct stat st;
	double t0;
	int in;

	if (!buf)
		die("out of memory");
	in = open_input(path);
	if (fstat(in, &st) == 0 && S_ISREG(st.st_mode))
		check_range(fd, addr, (uint64_t)st.st_size);
	t0 = now_s();
	for (;;) {
		size_t n = read_chunk(in, path, buf);

		if (n == 0)
			break;
		if (addr + done > size || (uint64_t)n > size - (addr + done))
			die("%s does not fit in the window at 0x%" PRIx64,
			    path, addr);
		pwrite_all(fd, buf, n, addr + done);
		done += n;
	}
	report_rate("loaded", done, t0);
	if (in != STDIN_FILENO)
		close(in);
	free(buf);
	close(fd);
	return 0;
}

static void set_base(int fd, uint64_t base)
{
	__u64 b = base;

	if (ioctl(fd, MEMEXPOSE_IOC_SET_WINDOW_BASE, &b) < 0)
		die("base 0x%" PRIx64 ": %s", base, strerror(errno));
}

/*
 * Copy FILE to peer address PEER_ADDR: point the window at a page-aligned
 * base that covers the next bytes, write them through a mapping of the
 * window (aligned 8/4/2/1-byte stores: safe where the window forwards
 * accesses, and plain memory speed where it maps peer RAM), move the base
 * when the window is passed.  The base is left where it ends.
 */
static int cmd_load(const char *path, uint64_t peer_addr)
{
	struct memexpose_info info, after;
	long page = sysconf(_SC_PAGESIZE);
	uint8_t *buf = malloc(CHUNK);
	uint64_t span, base = 0, done = 0;
	volatile uint8_t *win = NULL;
	bool have_base = false;
	double t0, dt;
	void *p;
	int fd, in;

	if (!buf)
		die("out of memory");
	fd = open_dev(O_RDWR);
	if (ioctl(fd, MEMEXPOSE_IOC_GET_INFO, &info) < 0)
		die("%s: info: %s", device, strerror(errno));
	if (!(info.link & MEMEXPOSE_LINK_UP))
		die("load: link is down");
	if (info.window_size < (uint64_t)page)
		die("load: the window (%llu bytes) is smaller than a page",
		    (unsigned long long)info.window_size);
	span = info.window_size & ~(uint64_t)(page - 1);
	if (span > LOAD_MAP_MAX)
		span = LOAD_MAP_MAX;
	p = mmap(NULL, (size_t)span, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p != MAP_FAILED)
		win = p;
	else if (errno != ENODEV)	/* ENODEV: window not mappable */
		die("load: mmap of the window: %s", strerror(errno));

	in = open_input(path);
	t0 = now_s();
	for (;;) {
		size_t n = read_chunk(in, path, buf), off = 0;
		uint64_t last;

		if (n == 0)
			break;
		if (__builtin_add_overflow(peer_addr, done + (n - 1), &last))
			die("load: %s does not fit below 2^64 at 0x%" PRIx64,
			    path, peer_addr);
		while (off < n) {
			uint64_t a = peer_addr + done + off;
			size_t k, i;

			if (!have_base || a < base || a - base >= span) {
				/* Earlier stores first, then the base. */
				__sync_synchronize();
				base = a & ~(uint64_t)(page - 1);
				set_base(fd, base);
				have_base = true;
			}
			k = n - off;
			if (k > span - (a - base))
				k = (size_t)(span - (a - base));
			if (win) {
				for (i = 0; i < k; )
					i += mmio_write(win + (a - base) + i,
							buf + off + i, k - i);
			} else {
				pwrite_all(fd, buf + off, k, a - base);
			}
			off += k;
		}
		done += n;
	}
	__sync_synchronize();
	dt = now_s() - t0;

	/* Writes are dropped while the link is down: say so. */
	if (ioctl(fd, MEMEXPOSE_IOC_GET_INFO, &after) < 0)
		die("%s: info: %s", device, strerror(errno));
	if (after.link_epoch != info.link_epoch)
		die("load: the link went down during the load");

	printf("loaded %" PRIu64 " bytes at 0x%" PRIx64 " (%.3f s, %.1f MB/s)\n",
	       done, peer_addr, dt, dt > 0 ? done / dt / 1e6 : 0.0);
	if (win)
		munmap((void *)win, (size_t)span);
	if (in != STDIN_FILENO)
		close(in);
	free(buf);
	close(fd);
	return 0;
}

static int cmd_crc(uint64_t addr, uint64_t len)
{
	int fd = open_dev(O_RDONLY);
	uint8_t *buf = malloc(CHUNK);
	uint64_t done = 0;
	uint32_t crc = 0;

	if (!buf)
		die("out of memory");
	check_range(fd, addr, len);
	while (done < len) {
		size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;

		pread_all(fd, buf, n, addr + done);
		crc = crc32_update(crc, buf, n);
		done += n;
	}
	printf("crc32: 0x%08x\n", crc);
	free(buf);
	close(fd);
	return 0;
}

static int cmd_mmap_check(uint64_t addr, uint64_t len)
{
	int fd = open_dev(O_RDONLY);
	uint8_t *buf = malloc(CHUNK);
	uint32_t crc = 0;
	struct wmap m;
	size_t done = 0;

	if (!buf)
		die("out of memory");
	check_range(fd, addr, len);
	if (len)
		map_range(fd, addr, len, PROT_READ, &m);
	while (done < len) {
		size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
		size_t i = 0;

		while (i < n)
			i += mmio_read(m.p + done + i, buf + i, n - i);
		crc = crc32_update(crc, buf, n);
		done += n;
	}
	if (len)
		munmap(m.base, m.maplen);
	printf("crc32: 0x%08x\n", crc);
	free(buf);
	close(fd);
	return 0;
}

static int cmd_fill(uint64_t addr, uint64_t len, uint64_t seed)
{
	int fd = open_dev(O_RDWR);
	uint8_t *buf = malloc(CHUNK);
	uint32_t crc = 0;
	struct wmap m;
	size_t done = 0;

	if (!buf)
		die("out of memory");
	check_range(fd, addr, len);
	if (len)
		map_range(fd, addr, len, PROT_READ | PROT_WRITE, &m);
	while (done < len) {
		size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
		size_t i;

		for (i = 0; i < n; i++)
			buf[i] = pattern_byte(seed, addr + done + i);
		i = 0;
		while (i < n)
			i += mmio_write(m.p + done + i, buf + i, n - i);
		crc = crc32_update(crc, buf, n);
		done += n;
	}
	if (len)
		munmap(m.base, m.maplen);
	printf("crc32: 0x%08x\n", crc);
	free(buf);
	close(fd);
	return 0;
}

static const char *send_error(int err)
{
	switch (err) {
	case ENOTCONN:
		return "link is down";
	case EINVAL:
		return "bad vector or payload";
	case ENODEV:
		return "device removed";
	default:
		return NULL;
	}
}

static int cmd_doorbell_send(uint64_t vec, const char *data)
{
	struct memexpose_doorbell db;
	int64_t deadline;
	uint8_t *buf = NULL;
	size_t len = 0;
	int fd;

	if (vec > UINT16_MAX)
		die("bad vector %" PRIu64, vec);
	if (data)
		len = parse_data(data, &buf);
	if (len > MEMEXPOSE_DOORBELL_MAX)
		die("payload of %zu bytes is larger than %d", len,
		    MEMEXPOSE_DOORBELL_MAX);
	memset(&db, 0, sizeof(db));
	db.vector = (uint16_t)vec;
	db.size = (uint16_t)len;
	if (len)
		memcpy(db.data, buf, len);
	free(buf);

	fd = open_dev(O_RDWR);
	deadline = now_ms() + SEND_RETRY_MS;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int64_t left;

		if (ioctl(fd, MEMEXPOSE_IOC_SEND_DOORBELL, &db) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			const char *why = send_error(errno);

			if (why)
				die("doorbell send: %s (%s)", why,
				    strerror(errno));
			die("doorbell send: %s", strerror(errno));
		}
		/* The peer's queue is full: wait for credits (EPOLLOUT). */
		left = deadline - now_ms();
		if (left <= 0)
			die("doorbell send: peer busy (%s)", strerror(EAGAIN));
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			die("doorbell send: poll: %s", strerror(errno));
		if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
			die("doorbell send: device removed");
	}
	close(fd);
	return 0;
}

static void print_doorbell(const struct memexpose_doorbell *db)
{
	bool text = true;
	unsigned int i, size = db->size;

	if (size > MEMEXPOSE_DOORBELL_MAX)
		size = MEMEXPOSE_DOORBELL_MAX;
	for (i = 0; i < size; i++)
		if (db->data[i] < 0x20 || db->data[i] > 0x7e)
			text = false;
	printf("vector %u: ", db->vector);
	if (text) {
		fwrite(db->data, 1, size, stdout);
	} else {
		printf("0x");
		for (i = 0; i < size; i++)
			printf("%02x", db->data[i]);
	}
	printf("\n");
	fflush(stdout);
}

static int cmd_doorbell_wait(int timeout_ms)
{
	struct memexpose_doorbell db;
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	int fd = open_dev(O_RDONLY | O_NONBLOCK);

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int left = -1, n;

		if (ioctl(fd, MEMEXPOSE_IOC_RECV_DOORBELL, &db) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			die("doorbell wait: %s", strerror(errno));

		if (deadline >= 0) {
			int64_t l = deadline - now_ms();

			if (l <= 0)
				die("doorbell wait: timed out after %d ms",
				    timeout_ms);
			left = l > INT_MAX ? INT_MAX : (int)l;
		}
		n = poll(&pfd, 1, left);
		if (n < 0 && errno != EINTR)
			die("doorbell wait: poll: %s", strerror(errno));
		if (n > 0 && (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)))
			die("doorbell wait: device removed");
	}
	print_doorbell(&db);
	close(fd);
	return 0;
}

static const char *boot_error(int err)
{
	switch (err) {
	case EPERM:
		return "peer is not a boot target";
	case EBUSY:
		return "not possible in the peer's current boot state";
	case EINVAL:
		return "bad entry or arguments";
	case EOPNOTSUPP:
		return "boot not supported on this link";
	case ENOLINK:
		return "link is down";
	case ETIMEDOUT:
		return "peer did not answer";
	case ENODEV:
		return "device removed";
	default:
		return NULL;
	}
}

static void __attribute__((noreturn)) die_boot(const char *name, int err)
{
	const char *why = boot_error(err);

	if (why)
		die("%s: %s (%s)", name, why, strerror(err));
	die("%s: %s", name, strerror(err));
}

static int cmd_boot(int argc, char **argv)
{
	struct memexpose_boot boot;
	int fd, i;

	memset(&boot, 0, sizeof(boot));
	boot.entry = parse_num(argv[0], "entry", false);
	if (argc - 1 > 4)
		die("boot: at most 4 arguments");
	for (i = 1; i < argc; i++)
		boot.args[i - 1] = parse_num(argv[i], "argument", false);
	boot.nargs = argc - 1;
	fd = open_dev(O_RDWR);
	if (ioctl(fd, MEMEXPOSE_IOC_BOOT, &boot) < 0)
		die_boot("boot", errno);
	close(fd);
	return 0;
}

static int cmd_simple(unsigned long req, const char *name)
{
	int fd = open_dev(O_RDWR);

	if (ioctl(fd, req) < 0)
		die_boot(name, errno);
	close(fd);
	return 0;
}

static const char *const boot_states[] = {
	[MEMEXPOSE_BOOT_STATE_NONE]	= "none",
	[MEMEXPOSE_BOOT_STATE_WAITING]	= "waiting",
	[MEMEXPOSE_BOOT_STATE_RUNNING]	= "running",
	[MEMEXPOSE_BOOT_STATE_HALTED]	= "halted",
};
#define NR_BOOT_STATES	(sizeof(boot_states) / sizeof(boot_states[0]))

/* A state's name; an unknown (newer) state as its number. */
static const char *boot_state_name(uint32_t state, char *tmp, size_t len)
{
	if (state < NR_BOOT_STATES)
		return boot_states[state];
	snprintf(tmp, len, "%" PRIu32, state);
	return tmp;
}

static uint32_t parse_boot_state(const char *s)
{
	uint64_t v;
	size_t i;

	for (i = 0; i < NR_BOOT_STATES; i++)
		if (!strcmp(s, boot_states[i]))
			return (uint32_t)i;
	if (!isdigit((unsigned char)*s))
		die("bad state '%s' (none, waiting, running or halted)", s);
	v = parse_num(s, "state", false);
	if (v > UINT32_MAX)
		die("bad state '%s'", s);
	return (uint32_t)v;
}

static void get_boot_state(int fd, const char *name,
			   struct memexpose_boot_state *bs)
{
	while (ioctl(fd, MEMEXPOSE_IOC_GET_BOOT_STATE, bs) < 0) {
		if (errno != EINTR)
			die("%s: %s", name, strerror(errno));
	}
}

static void print_boot_state(const struct memexpose_boot_state *bs)
{
	char a[16], b[16];

	printf("peer: %s own: %s\n", boot_state_name(bs->peer_state, a, sizeof(a)),
	       boot_state_name(bs->own_state, b, sizeof(b)));
}

static int cmd_boot_state(void)
{
	struct memexpose_boot_state bs;
	int fd = open_dev(O_RDONLY);

	get_boot_state(fd, "boot-state", &bs);
	print_boot_state(&bs);
	close(fd);
	return 0;
}

/*
 * Wait until the peer's boot state is @want.  GET_BOOT_STATE records the
 * state seen; poll() reports POLLPRI once it (or the link) changes.  The
 * state is re-read every BOOT_POLL_MS regardless.
 */
static int cmd_wait_boot_state(uint32_t want, int timeout_ms)
{
	struct memexpose_boot_state bs;
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	int fd = open_dev(O_RDONLY);
	char tmp[16];

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLPRI };
		int wait = BOOT_POLL_MS, n;

		get_boot_state(fd, "wait-boot-state", &bs);
		if (bs.peer_state == want)
			break;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				die("wait-boot-state: timed out after %d ms (peer: %s)",
				    timeout_ms, boot_state_name(bs.peer_state,
								tmp, sizeof(tmp)));
			if (left < wait)
				wait = (int)left;
		}
		n = poll(&pfd, 1, wait);
		if (n < 0 && errno != EINTR)
			die("wait-boot-state: poll: %s", strerror(errno));
		if (n > 0 && (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)))
			die("wait-boot-state: device removed");
	}
	print_boot_state(&bs);
	close(fd);
	return 0;
}

static int cmd_base(uint64_t base)
{
	int fd = open_dev(O_RDWR);

	set_base(fd, base);
	close(fd);
	return 0;
}

static void need_args(int argc, int min, int max)
{
	if (argc < min)
		die_usage("missing arguments");
	if (argc > max)
		die_usage("too many arguments");
}

int main(int argc, char **argv)
{
	const char *cmd;
	int opt;

	while ((opt = getopt(argc, argv, "+d:h")) != -1) {
		switch (opt) {
		case 'd':
			device = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		die_usage("no command");
	cmd = argv[0];
	argc--;
	argv++;
	crc_init();

	if (!strcmp(cmd, "info")) {
		need_args(argc, 0, 0);
		return cmd_info();
	}
	if (!strcmp(cmd, "read")) {
		need_args(argc, 2, 2);
		return cmd_read(parse_num(argv[0], "address", true),
				parse_num(argv[1], "length", true));
	}
	if (!strcmp(cmd, "write")) {
		need_args(argc, 2, 2);
		return cmd_write(parse_num(argv[0], "address", true), argv[1]);
	}
	if (!strcmp(cmd, "dump")) {
		need_args(argc, 3, 3);
		return cmd_dump(parse_num(argv[0], "address", true),
				parse_num(argv[1], "length", true), argv[2]);
	}
	if (!strcmp(cmd, "load")) {
		need_args(argc, 2, 2);
		return cmd_load(argv[0], parse_num(argv[1], "peer address",
						   true));
	}
	if (!strcmp(cmd, "load-window")) {
		need_args(argc, 2, 2);
		return cmd_load_window(argv[0],
				       parse_num(argv[1], "address", true));
	}
	if (!strcmp(cmd, "crc")) {
		need_args(argc, 2, 2);
		return cmd_crc(parse_num(argv[0], "address", true),
			       parse_num(argv[1], "length", true));
	}
	if (!strcmp(cmd, "mmap-check")) {
		need_args(argc, 2, 2);
		return cmd_mmap_check(parse_num(argv[0], "address", true),
				      parse_num(argv[1], "length", true));
	}
	if (!strcmp(cmd, "fill")) {
		need_args(argc, 3, 3);
		return cmd_fill(parse_num(argv[0], "address", true),
				parse_num(argv[1], "length", true),
				parse_num(argv[2], "seed", false));
	}
	if (!strcmp(cmd, "doorbell")) {
		if (argc < 1)
			die_usage("doorbell: send or wait?");
		if (!strcmp(argv[0], "send")) {
			need_args(argc, 2, 3);
			return cmd_doorbell_send(parse_num(argv[1], "vector",
							   false),
						 argc > 2 ? argv[2] : NULL);
		}
		if (!strcmp(argv[0], "wait")) {
			uint64_t t = 0;

			need_args(argc, 1, 2);
			if (argc > 1) {
				t = parse_num(argv[1], "timeout", false);
				if (t > INT_MAX)
					die("timeout %s is too large", argv[1]);
			}
			return cmd_doorbell_wait(argc > 1 ? (int)t : -1);
		}
		die_usage("doorbell: send or wait?");
	}
	if (!strcmp(cmd, "boot")) {
		need_args(argc, 1, 5);
		return cmd_boot(argc, argv);
	}
	if (!strcmp(cmd, "reset")) {
		need_args(argc, 0, 0);
		return cmd_simple(MEMEXPOSE_IOC_RESET, "reset");
	}
	if (!strcmp(cmd, "halt")) {
		need_args(argc, 0, 0);
		return cmd_simple(MEMEXPOSE_IOC_HALT, "halt");
	}
	if (!strcmp(cmd, "boot-state")) {
		need_args(argc, 0, 0);
		return cmd_boot_state();
	}
	if (!strcmp(cmd, "wait-boot-state")) {
		uint64_t t = 0;

		need_args(argc, 1, 2);
		if (argc > 1) {
			t = parse_num(argv[1], "timeout", false);
			if (t > INT_MAX)
				die("timeout %s is too large", argv[1]);
		}
		return cmd_wait_boot_state(parse_boot_state(argv[0]),
					   argc > 1 ? (int)t : -1);
	}
	if (!strcmp(cmd, "base")) {
		need_args(argc, 1, 1);
		return cmd_base(parse_num(argv[0], "address", true));
	}
	if (!strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	die_usage("unknown command");
}
