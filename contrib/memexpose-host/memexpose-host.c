/*
 * memexpose-host: reach a VM's memory and doorbells from the host,
 * through a memexpose device's socket (libmemexpose).
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libmemexpose.h"

/* Exit codes, also in --help and the user guide. */
enum {
    EX_OK = 0,
    EX_REFUSED = 1,     /* the peer refused the request */
    EX_USAGE = 2,       /* bad command line */
    EX_CONNECT = 3,     /* no link: cannot connect or hand-shake */
    EX_LINK = 4,        /* the link went down or timed out meanwhile */
    EX_FILE = 5,        /* a local file could not be read or written */
    EX_NOTHING = 6,     /* wait: no doorbell before the timeout */
};

#define CHUNK   (1u << 20)

static const char usage_text[] =
"Usage: memexpose-host [OPTIONS] COMMAND [ARGS]\n"
"Reach the memory and doorbells of a VM through its memexpose device.\n"
"\n"
"Options (before COMMAND):\n"
"  -s, --socket PATH   connect to PATH (the device's chardev has server=on)\n"
"  -l, --listen PATH   listen on PATH for the device (its chardev connects)\n"
"  -n, --name NAME     name we announce (default memexpose-host)\n"
"  -t, --timeout MS    bound of every wait for the peer (default 1000)\n"
"  -v, --vectors N     doorbell vectors we receive (default 4)\n"
"      --trust-peer    map descriptors that are not sealed memfds\n"
"  -h, --help          this text\n"
"\n"
"Commands (addresses are the VM's guest-physical addresses):\n"
"  info                      the peer's HELLO and what it exports\n"
"  read ADDR [WIDTH]         one access of WIDTH 1, 2, 4 or 8 bytes\n"
"                            (default 4); prints the value in hex\n"
"  write ADDR VALUE [WIDTH]  one access of WIDTH bytes\n"
"  dump ADDR SIZE FILE       copy SIZE bytes to FILE ('-': stdout); mapped\n"
"                            RAM is copied zero-copy, the rest read in bulk\n"
"  load FILE ADDR            copy FILE into the VM at ADDR\n"
"  ring VECTOR [HEXDATA]     ring the VM's doorbell with a payload\n"
"  wait [--timeout MS] [--count N]\n"
"                            print N (default 1) doorbells from the VM as\n"
"                            'VECTOR HEXDATA' lines\n"
"  serve [--addr ADDR] [--size SIZE] [--file FILE [--copy]] [--ro]\n"
"        [--regs ADDR]      export to the VM a fresh buffer (default 16M at\n"
"                            0, zero-copy) or FILE itself (per access; the\n"
"                            VM's writes land in FILE unless --ro) or, with\n"
"                            --copy, a zero-copy buffer holding a copy of\n"
"                            FILE; --regs adds a 4 KiB scratch register\n"
"                            block at ADDR; runs until killed, printing the\n"
"                            doorbells it receives\n"
"  boot ENTRY [ARG...] [--wait MS]\n"
"                            start a boot-target VM at ENTRY (up to 4 args);\n"
"                            --wait: print the first doorbell it rings\n"
"  reset | halt              reset or halt a boot-target VM\n"
"  state                     the boot target's state\n"
"\n"
"SIZE and ADDR take K, M and G suffixes (powers of 1024).\n"
"Exit status: 0 done, 1 refused by the peer, 2 usage, 3 no link,\n"
"4 link lost or timed out, 5 local file error, 6 no doorbell in time.\n";

static const char *prog = "memexpose-host";
static volatile sig_atomic_t stop;

static void die_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '%s --help'.\n", prog);
    exit(EX_USAGE);
}

static bool parse_u64(const char *s, uint64_t *v)
{
    char *end;

    errno = 0;
    if (!*s || *s == '-') {
        return false;
    }
    *v = strtoull(s, &end, 0);
    if (errno) {
        return false;
    }
    switch (*end) {
    case 'K': case 'k':
        *v <<= 10, end++;
        break;
    case 'M': case 'm':
        *v <<= 20, end++;
        break;
    case 'G': case 'g':
        *v <<= 30, end++;
        break;
    default:
        break;
    }
    return *end == '\0';
}

static uint64_t arg_u64(const char *s, const char *what)
{
    uint64_t v;

    if (!parse_u64(s, &v)) {
        char msg[64];

        snprintf(msg, sizeof(msg), "bad %s: '%%s'", what);
        die_usage(msg, s);
    }
    return v;
}

static unsigned arg_width(const char *s)
{
    uint64_t w = arg_u64(s, "width");

    if (w != 1 && w != 2 && w != 4 && w != 8) {
        die_usage("WIDTH must be 1, 2, 4 or 8, not '%s'", s);
    }
    return w;
}

/* Exit code and message for a failed library call. */
static int fail(mx_link *l, int ret, const char *what)
{
    if (ret > 0) {
        fprintf(stderr, "%s: %s: refused by the peer: %s\n", prog, what,
                mx_strerror(ret));
        return EX_REFUSED;
    }
    fprintf(stderr, "%s: %s: %s%s%s\n", prog, what, mx_strerror(ret),
            mx_link_error(l)[0] ? ": " : "", mx_link_error(l));
    return ret == MX_ERR_AGAIN ? EX_REFUSED : EX_LINK;
}

static bool write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= n;
    }
    return true;
}

/* Last address of a described range. */
static uint64_t range_last(const mx_range *r)
{
    if (r->addr == 0 && r->length == UINT64_MAX) {
        return UINT64_MAX;
    }
    return r->addr + (r->length - 1);
}

static const char *kind_str(unsigned kind)
{
    return kind == MX_MAP_FD ? "shared (zero-copy)" :
           kind == MX_MAP_FORWARD ? "forwarded" : "not exported";
}

static int cmd_info(mx_link *l)
{
    const mx_peer_info *p = mx_peer(l);
    uint64_t addr = 0;
    unsigned n;

    printf("peer:        %s\n", p->name);
    printf("protocol:    1.%u\n", p->version_minor);
    printf("role:        %s\n", p->role == MX_ROLE_DEVICE ? "device" :
           p->role == MX_ROLE_BOOT_TARGET ? "boot target" : "tool");
    printf("features:    0x%" PRIx64 " offered, 0x%" PRIx64
           " in use%s%s%s%s%s\n", p->features, p->negotiated,
           p->negotiated & MX_FEAT_MAP ? " MAP" : "",
           p->negotiated & MX_FEAT_BULK ? " BULK" : "",
           p->negotiated & MX_FEAT_BOOT ? " BOOT" : "",
           p->negotiated & MX_FEAT_HEARTBEAT ? " HEARTBEAT" : "",
           p->negotiated & MX_FEAT_DB_RING ? " DB_RING" : "");
    printf("page size:   %u\n", p->page_size);
    printf("vectors:     %u\n", p->vectors);
    printf("credits:     %u\n", p->queue_depth);
    printf("max data:    %u\n", p->max_data);
    if (p->role == MX_ROLE_BOOT_TARGET) {
        printf("boot state:  %u\n", mx_peer_boot_state(l));
    }
    if (!(p->negotiated & MX_FEAT_MAP)) {
        printf("exports:     unknown (no feature MAP)\n");
        return EX_OK;
    }
    printf("exports:\n");
    for (n = 0; n < 1024; n++) {
        mx_range r;
        uint64_t last;
        int ret = mx_map(l, addr, 1, &r);

        if (ret) {
            return fail(l, ret, "MAP");
        }
        last = range_last(&r);
        if (r.host) {
            mx_unmap(l, r.host);
        }
        if (r.kind != MX_MAP_DENIED) {
            printf("  0x%016" PRIx64 "-0x%016" PRIx64 " %s %s", r.addr, last,
                   r.perm == MX_PERM_RW ? "rw" : "ro", kind_str(r.kind));
            if (r.kind == MX_MAP_FORWARD && r.reason) {
                printf(": %s", mx_reason_str(r.reason));
            }
            printf("\n");
        }
        if (last == UINT64_MAX || last == UINT64_MAX - 1) {
            return EX_OK;
        }
        addr = last + 1;
    }
    printf("  ... (more than 1024 ranges)\n");
    return EX_OK;
}

/*
 * Copy [addr, addr + size) between the peer and @fd: mapped RAM straight
 * from or into the mapping, the rest through READ/WRITE in bulk.
 */
static int transfer(mx_link *l, uint64_t addr, uint64_t size, int fd,
                    bool to_peer)
{
    bool map = mx_peer(l)->negotiated & MX_FEAT_MAP;
    uint8_t *buf = malloc(CHUNK);
    uint64_t pos = 0;
    int ret = EX_OK;

    if (!buf) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return EX_FILE;
    }
    while (pos < size && ret == EX_OK) {
        uint64_t a = addr + pos, seg = size - pos;
        mx_range r = { 0 };

        if (map) {
            int m = mx_map(l, a, seg, &r);

            if (m) {
                ret = fail(l, m, "MAP");
                break;
            }
            if (r.kind == MX_MAP_DENIED) {
                fprintf(stderr, "%s: 0x%" PRIx64 ": not exported by the"
                        " peer\n", prog, a);
                ret = EX_REFUSED;
                break;
            }
            if (range_last(&r) - a < seg - 1) {
                seg = range_last(&r) - a + 1;
            }
        }
        if (r.host && (!to_peer || r.perm == MX_PERM_RW)) {
            uint8_t *h = (uint8_t *)r.host + (a - r.map_addr);
            uint64_t n = r.map_addr + r.map_len - a;

            n = n < seg ? n : seg;
            if (to_peer) {
                ssize_t got = 0;

                while ((uint64_t)got < n) {
                    ssize_t k = read(fd, h + got, n - got);

                    if (k <= 0) {
                        fprintf(stderr, "%s: short input file\n", prog);
                        ret = EX_FILE;
                        break;
                    }
                    got += k;
                }
            } else if (!write_all(fd, h, n)) {
                fprintf(stderr, "%s: write: %s\n", prog, strerror(errno));
                ret = EX_FILE;
            }
            mx_unmap(l, r.host);
            pos += n;
            continue;
        }
        if (r.host) {
            mx_unmap(l, r.host);
        } else if (r.kind == MX_MAP_FD && r.why) {
            fprintf(stderr, "%s: note: 0x%" PRIx64 ": not mapped (%s);"
                    " reading it through the link\n", prog, a, r.why);
        }
        while (seg && ret == EX_OK) {
            size_t n = seg < CHUNK ? seg : CHUNK;
            int e;

            if (to_peer) {
                size_t got = 0;

                while (got < n) {
                    ssize_t k = read(fd, buf + got, n - got);

                    if (k <= 0) {
                        fprintf(stderr, "%s: short input file\n", prog);
                        ret = EX_FILE;
                        break;
                    }
                    got += k;
                }
                if (ret != EX_OK) {
                    break;
                }
                e = mx_write(l, addr + pos, buf, n);
            } else {
                e = mx_read(l, addr + pos, buf, n);
            }
            if (e) {
                char what[64];

                snprintf(what, sizeof(what), "%s at 0x%" PRIx64,
                         to_peer ? "write" : "read", addr + pos);
                ret = fail(l, e, what);
                break;
            }
            if (!to_peer && !write_all(fd, buf, n)) {
                fprintf(stderr, "%s: write: %s\n", prog, strerror(errno));
                ret = EX_FILE;
                break;
            }
            pos += n;
            seg -= n;
        }
    }
    free(buf);
    return ret;
}

static int cmd_dump(mx_link *l, uint64_t addr, uint64_t size,
                    const char *file)
{
    int fd = strcmp(file, "-") ? open(file, O_WRONLY | O_CREAT | O_TRUNC |
                                      O_CLOEXEC, 0644) : STDOUT_FILENO;
    int ret;

    if (fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(errno));
        return EX_FILE;
    }
    ret = transfer(l, addr, size, fd, false);
    if (fd != STDOUT_FILENO && close(fd) < 0 && ret == EX_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(errno));
        ret = EX_FILE;
    }
    return ret;
}

static int cmd_load(mx_link *l, const char *file, uint64_t addr)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int ret;

    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(errno));
        return EX_FILE;
    }
    ret = transfer(l, addr, st.st_size, fd, true);
    close(fd);
    return ret;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static void print_doorbell(const mx_doorbell *db)
{
    size_t i;

    printf("%u ", db->vector);
    for (i = 0; i < db->len; i++) {
        printf("%02x", db->data[i]);
    }
    printf("\n");
    fflush(stdout);
}

static int cmd_ring(mx_link *l, const char *vec, const char *hex)
{
    uint8_t data[MX_MAX_DOORBELL];
    uint64_t v = arg_u64(vec, "vector");
    size_t len = 0;
    int ret;

    if (hex) {
        size_t n = strlen(hex);

        if (!strncmp(hex, "0x", 2)) {
            hex += 2;
            n -= 2;
        }
        if (n % 2 || n / 2 > sizeof(data)) {
            die_usage("HEXDATA must be an even number of hex digits, at"
                      " most 256 bytes: '%s'", hex);
        }
        for (len = 0; len < n / 2; len++) {
            int hi = hexval(hex[2 * len]), lo = hexval(hex[2 * len + 1]);

            if (hi < 0 || lo < 0) {
                die_usage("bad HEXDATA: '%s'", hex);
            }
            data[len] = hi << 4 | lo;
        }
    }
    if (v >= mx_peer(l)->vectors) {
        fprintf(stderr, "%s: the peer has %u doorbell vectors, not %" PRIu64
                "\n", prog, mx_peer(l)->vectors, v + 1);
        return EX_REFUSED;
    }
    ret = mx_ring(l, v, data, len);
    if (ret) {
        return fail(l, ret, "ring");
    }
    /* Our BYE must not overtake the doorbell at the peer. */
    ret = mx_barrier(l);
    return ret ? fail(l, ret, "ring") : EX_OK;
}

static int cmd_wait(mx_link *l, int argc, char **argv)
{
    long timeout = -1;
    uint64_t count = 1, i;
    int k;

    for (k = 0; k < argc; k++) {
        if (!strcmp(argv[k], "--timeout") && k + 1 < argc) {
            timeout = arg_u64(argv[++k], "timeout");
        } else if (!strcmp(argv[k], "--count") && k + 1 < argc) {
            count = arg_u64(argv[++k], "count");
        } else {
            die_usage("wait: unknown argument '%s'", argv[k]);
        }
    }
    for (i = 0; i < count; i++) {
        mx_doorbell db;
        int ret = mx_wait_doorbell(l, &db, timeout);

        if (ret == MX_ERR_AGAIN) {
            fprintf(stderr, "%s: no doorbell within %ld ms\n", prog, timeout);
            return EX_NOTHING;
        }
        if (ret) {
            return fail(l, ret, "wait");
        }
        print_doorbell(&db);
    }
    return EX_OK;
}

/* The scratch register block of serve --regs: 512 64-bit registers. */
static uint64_t scratch[512];

static int scratch_access(void *opaque, uint64_t off, void *buf,
                          uint32_t size, bool write)
{
    (void)opaque;
    if (off + size > sizeof(scratch)) {
        return MX_E_ACCESS;
    }
    if (write) {
        memcpy((uint8_t *)scratch + off, buf, size);
    } else {
        memcpy(buf, (uint8_t *)scratch + off, size);
    }
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Exports must be set before the handshake: parsed before connecting. */
typedef struct ServeArgs {
    uint64_t addr;
    uint64_t size;
    bool size_given;
    const char *file;
    bool copy;
    bool ro;
    bool regs;
    uint64_t regs_addr;
} ServeArgs;

static void parse_serve(int argc, char **argv, ServeArgs *a)
{
    int k;

    a->addr = 0;
    a->size = 16 << 20;
    for (k = 0; k < argc; k++) {
        if (!strcmp(argv[k], "--addr") && k + 1 < argc) {
            a->addr = arg_u64(argv[++k], "address");
        } else if (!strcmp(argv[k], "--size") && k + 1 < argc) {
            a->size = arg_u64(argv[++k], "size");
            a->size_given = true;
        } else if (!strcmp(argv[k], "--file") && k + 1 < argc) {
            a->file = argv[++k];
        } else if (!strcmp(argv[k], "--copy")) {
            a->copy = true;
        } else if (!strcmp(argv[k], "--ro")) {
            a->ro = true;
        } else if (!strcmp(argv[k], "--regs") && k + 1 < argc) {
            a->regs = true;
            a->regs_addr = arg_u64(argv[++k], "address");
        } else {
            die_usage("serve: unknown argument '%s'", argv[k]);
        }
    }
    if (a->copy && !a->file) {
        die_usage("serve: %s needs --file", "--copy");
    }
}

static int serve_setup(mx_link *l, ServeArgs *a)
{
    long page = sysconf(_SC_PAGESIZE);
    void *host;
    int fd = -1, ret;

    if (a->file) {
        struct stat st;

        fd = open(a->file, (a->ro || a->copy ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, a->file, strerror(errno));
            if (fd >= 0) {
                close(fd);
            }
            return EX_FILE;
        }
        if (!a->size_given) {
            a->size = ((uint64_t)st.st_size + page - 1) &
                      ~(uint64_t)(page - 1);
        }
        if (!a->size) {
            a->size = page;
        }
    }
    if (a->file && !a->copy) {
        /* The file itself, per access: it may change size under us. */
        ret = mx_export_file(l, a->addr, a->size,
                             a->ro ? MX_PERM_READ : MX_PERM_RW, fd, 0);
        close(fd);
        fd = -1;
        host = NULL;
    } else {
        ret = mx_export_buffer(l, a->addr, a->size,
                               a->ro ? MX_PERM_READ : MX_PERM_RW, &host);
    }
    if (ret) {
        fprintf(stderr, "%s: cannot export 0x%" PRIx64 "+0x%" PRIx64 ": %s\n",
                prog, a->addr, a->size, mx_link_error(l)[0] ?
                mx_link_error(l) : mx_strerror(ret));
        if (fd >= 0) {
            close(fd);
        }
        return EX_USAGE;
    }
    if (fd >= 0) {
        uint64_t got = 0;
        ssize_t k;

        while ((k = read(fd, (uint8_t *)host + got, a->size - got)) > 0) {
            got += k;
        }
        close(fd);
        if (k < 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, a->file, strerror(errno));
            return EX_FILE;
        }
    }
    if (a->regs && mx_export_callback(l, a->regs_addr, sizeof(scratch),
                                      MX_PERM_RW, scratch_access, NULL)) {
        fprintf(stderr, "%s: cannot export registers at 0x%" PRIx64 ": %s\n",
                prog, a->regs_addr, mx_link_error(l));
        return EX_USAGE;
    }
    return EX_OK;
}

static int cmd_serve(mx_link *l, const ServeArgs *a)
{
    struct sigaction sa = { .sa_handler = on_signal };

    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "%s: serving 0x%" PRIx64 "+0x%" PRIx64 " (%s) to '%s'\n",
            prog, a->addr, a->size, a->ro ? "ro" : "rw", mx_peer(l)->name);
    while (!stop) {
        mx_doorbell db;
        int ret = mx_wait_doorbell(l, &db, 200);

        if (ret == 0) {
            print_doorbell(&db);
        } else if (ret != MX_ERR_AGAIN) {
            return fail(l, ret, "serve");
        }
    }
    return EX_OK;
}

static const char *state_str(unsigned s)
{
    static const char *const names[] = {
        "none", "waiting", "running", "halted",
    };

    return s < 4 ? names[s] : "unknown";
}

static int cmd_boot(mx_link *l, int argc, char **argv)
{
    uint64_t args[4];
    uint64_t entry;
    long wait_ms = -2;
    int i, ret;

    /* --wait MS: the booted code's first doorbell says it is up. */
    if (argc >= 2 && !strcmp(argv[argc - 2], "--wait")) {
        wait_ms = arg_u64(argv[argc - 1], "timeout");
        argc -= 2;
    }
    if (argc < 1 || argc > 5) {
        die_usage("boot takes ENTRY and up to 4 arguments%s", "");
    }
    entry = arg_u64(argv[0], "entry");
    for (i = 1; i < argc; i++) {
        args[i - 1] = arg_u64(argv[i], "argument");
    }
    ret = mx_boot(l, entry, args, argc - 1);
    if (ret) {
        return fail(l, ret, "boot");
    }
    if (wait_ms != -2) {
        mx_doorbell db;

        ret = mx_wait_doorbell(l, &db, wait_ms);
        if (ret == MX_ERR_AGAIN) {
            fprintf(stderr, "%s: no doorbell within %ld ms of BOOT\n", prog,
                    wait_ms);
            return EX_NOTHING;
        }
        if (ret) {
            return fail(l, ret, "boot --wait");
        }
        print_doorbell(&db);
    }
    return EX_OK;
}

static void need_args(int argc, int min, int max, const char *cmd)
{
    if (argc < min || argc > max) {
        die_usage("wrong number of arguments for '%s'", cmd);
    }
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "socket", required_argument, NULL, 's' },
        { "listen", required_argument, NULL, 'l' },
        { "name", required_argument, NULL, 'n' },
        { "timeout", required_argument, NULL, 't' },
        { "vectors", required_argument, NULL, 'v' },
        { "trust-peer", no_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *sock = NULL, *cmd;
    ServeArgs serve = { 0 };
    bool listen_mode = false;
    mx_options opt;
    mx_link *l;
    int c, ret, nargs;
    char **args;

    mx_options_init(&opt);
    while ((c = getopt_long(argc, argv, "+s:l:n:t:v:h", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 's':
        case 'l':
            sock = optarg;
            listen_mode = c == 'l';
            break;
        case 'n':
            opt.name = optarg;
            break;
        case 't':
            opt.timeout_ms = arg_u64(optarg, "timeout");
            break;
        case 'v':
            opt.vectors = arg_u64(optarg, "vector count");
            break;
        case 'T':
            opt.trust_peer = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return EX_OK;
        default:
            fprintf(stderr, "Try '%s --help'.\n", prog);
            return EX_USAGE;
        }
    }
    if (optind >= argc) {
        die_usage("no command given%s", "");
    }
    cmd = argv[optind];
    args = argv + optind + 1;
    nargs = argc - optind - 1;
    if (!strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return EX_OK;
    }
    if (!sock) {
        die_usage("no socket: give --socket PATH or --listen PATH%s", "");
    }
    /* Check the command line before touching the VM. */
    if (!strcmp(cmd, "info") || !strcmp(cmd, "reset") ||
        !strcmp(cmd, "halt") || !strcmp(cmd, "state")) {
        need_args(nargs, 0, 0, cmd);
    } else if (!strcmp(cmd, "read")) {
        need_args(nargs, 1, 2, cmd);
    } else if (!strcmp(cmd, "write")) {
        need_args(nargs, 2, 3, cmd);
    } else if (!strcmp(cmd, "dump")) {
        need_args(nargs, 3, 3, cmd);
    } else if (!strcmp(cmd, "load")) {
        need_args(nargs, 2, 2, cmd);
    } else if (!strcmp(cmd, "ring")) {
        need_args(nargs, 1, 2, cmd);
    } else if (!strcmp(cmd, "serve")) {
        parse_serve(nargs, args, &serve);
    } else if (strcmp(cmd, "wait") && strcmp(cmd, "boot")) {
        die_usage("unknown command '%s'", cmd);
    }

    l = mx_link_new(&opt);
    if (!l) {
        fprintf(stderr, "%s: bad options (name, vectors or timeout)\n", prog);
        return EX_USAGE;
    }
    if (!strcmp(cmd, "serve")) {
        ret = serve_setup(l, &serve);
        if (ret) {
            mx_close(l);
            return ret;
        }
    }
    ret = listen_mode ? mx_listen(l, sock, -1) : mx_connect(l, sock);
    if (ret) {
        fprintf(stderr, "%s: no link on %s: %s\n", prog, sock,
                mx_link_error(l)[0] ? mx_link_error(l) : mx_strerror(ret));
        mx_close(l);
        return EX_CONNECT;
    }

    if (!strcmp(cmd, "info")) {
        ret = cmd_info(l);
    } else if (!strcmp(cmd, "read")) {
        unsigned w = nargs > 1 ? arg_width(args[1]) : 4;
        uint64_t v;

        ret = mx_read_value(l, arg_u64(args[0], "address"), w, &v);
        if (ret) {
            ret = fail(l, ret, "read");
        } else {
            printf("0x%0*" PRIx64 "\n", (int)w * 2, v);
        }
    } else if (!strcmp(cmd, "write")) {
        unsigned w = nargs > 2 ? arg_width(args[2]) : 4;

        ret = mx_write_value(l, arg_u64(args[0], "address"), w,
                             arg_u64(args[1], "value"));
        ret = ret ? fail(l, ret, "write") : EX_OK;
    } else if (!strcmp(cmd, "dump")) {
        ret = cmd_dump(l, arg_u64(args[0], "address"),
                       arg_u64(args[1], "size"), args[2]);
    } else if (!strcmp(cmd, "load")) {
        ret = cmd_load(l, args[0], arg_u64(args[1], "address"));
    } else if (!strcmp(cmd, "ring")) {
        ret = cmd_ring(l, args[0], nargs > 1 ? args[1] : NULL);
    } else if (!strcmp(cmd, "wait")) {
        ret = cmd_wait(l, nargs, args);
    } else if (!strcmp(cmd, "serve")) {
        ret = cmd_serve(l, &serve);
    } else if (!strcmp(cmd, "boot")) {
        ret = cmd_boot(l, nargs, args);
    } else if (!strcmp(cmd, "reset")) {
        ret = mx_reset(l);
        ret = ret ? fail(l, ret, "reset") : EX_OK;
    } else if (!strcmp(cmd, "halt")) {
        ret = mx_halt(l);
        ret = ret ? fail(l, ret, "halt") : EX_OK;
    } else {
        /* state: the target reports it right after link-up. */
        mx_ping(l);
        printf("%s\n", state_str(mx_peer_boot_state(l)));
        ret = EX_OK;
    }
    mx_close(l);
    return ret;
}
