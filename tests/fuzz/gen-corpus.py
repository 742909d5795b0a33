#!/usr/bin/env python3
#
# Generate the seed corpus for tests/fuzz/fuzz-wire.c.
#
# Each file is one fuzz input: a byte whose low bit is the number of fds
# that arrived with the message, then the message itself.  Files named
# "bad-*" are malformed on purpose; all others decode successfully.  The
# "fuzz-*" files in the corpus are not generated here: they were kept from
# fuzzer runs (see docs/fuzzing.md).
#
# Usage: tests/fuzz/gen-corpus.py [OUTDIR]   (default: corpus/wire next to
# this script).  Existing files of the same name are overwritten.
#
# Copyright (c) 2026 The memexpose authors
#
# SPDX-License-Identifier: GPL-2.0-or-later

import os
import struct
import sys

MAGIC = 0x3150584D
HEADER = struct.Struct('<HHIQ')
FLAG_FD = 1

(HELLO, BYE, ERROR, PING, PONG, READ, READ_REPLY, WRITE, ACK, MAP,
 MAP_REPLY, INVALIDATE, INVALIDATE_ACK, DOORBELL, CREDIT, BOOT, RESET,
 HALT, STATE, DB_RING, DB_EVENT, DB_SPACE) = range(1, 23)


def msg(mtype, payload=b'', msg_id=0, flags=0, length=None):
    if length is None:
        length = len(payload)
    return HEADER.pack(mtype, flags, length, msg_id) + payload


def hello(name=b'vm0', magic=MAGIC, page_size=4096, role=0, vectors=8,
          queue_depth=64, max_data=4096, features=0xF, major=1, minor=0):
    name_field = name.ljust(64, b'\0')
    return msg(HELLO, struct.pack('<IHHQIBBHII', magic, major, minor,
                                  features, page_size, role, vectors,
                                  queue_depth, max_data, 0) + name_field)


def error(mtype, code, request_type=0, addr=0, msg_id=0):
    return msg(mtype, struct.pack('<IIQ', code, request_type, addr), msg_id)


def access(mtype, addr, size, data=b'', msg_id=0):
    return msg(mtype, struct.pack('<QII', addr, size, 0) + data, msg_id)


def map_reply(kind, perm, addr, length, fd_offset, msg_id=0, flags=None):
    if flags is None:
        flags = FLAG_FD if kind == 0 else 0
    return msg(MAP_REPLY, struct.pack('<BB6xQQQ', kind, perm, addr, length,
                                      fd_offset), msg_id, flags)


def doorbell(vector, data=b'', size=None):
    if size is None:
        size = len(data)
    return msg(DOORBELL, struct.pack('<HHI', vector, size, 0) + data)


def boot(entry, args, nargs=None):
    if nargs is None:
        nargs = len(args)
    args = list(args) + [0] * (4 - len(args))
    return msg(BOOT, struct.pack('<QII4Q', entry, nargs, 0, *args))


def pattern(n):
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


SEEDS = {
    # One valid message of every type.
    'hello': (0, hello()),
    'hello-minor-7': (0, hello(minor=7)),
    'hello-boot-target': (0, hello(name=b'x' * 63, page_size=1 << 21,
                                   role=1, vectors=64, queue_depth=1024,
                                   max_data=8)),
    'bye': (0, error(BYE, 14)),
    'error': (0, error(ERROR, 3, READ, 0x1000, msg_id=7)),
    'ping': (0, msg(PING, struct.pack('<Q', 0x0123456789ABCDEF), 1)),
    'pong': (0, msg(PONG, struct.pack('<Q', 0x0123456789ABCDEF), 1)),
    'read': (0, access(READ, 0x1000, 8, msg_id=2)),
    'read-reply': (0, access(READ_REPLY, 0x1000, 8, pattern(8), 2)),
    'write': (0, access(WRITE, 0x2000, 4, pattern(4), 3)),
    'write-4096': (0, access(WRITE, 0x10000, 4096, pattern(4096), 4)),
    'ack': (0, msg(ACK, msg_id=3)),
    'map': (0, msg(MAP, struct.pack('<Q', 0x40000), 5)),
    'map-reply-fd': (1, map_reply(0, 3, 0x40000, 0x10000, 0x2000, 5)),
    'map-reply-forward': (0, map_reply(1, 1, 0x80000, 0x1000, 0, 6)),
    'map-reply-denied': (0, map_reply(2, 0, 0x90000, 0x1000, 0, 7)),
    'invalidate': (0, msg(INVALIDATE, struct.pack('<QQ', 0x40000, 0x10000),
                          8)),
    'invalidate-ack': (0, msg(INVALIDATE_ACK, msg_id=8)),
    'doorbell': (0, doorbell(3, pattern(16))),
    'doorbell-empty': (0, doorbell(0)),
    'credit': (0, msg(CREDIT, struct.pack('<II', 16, 0))),
    'boot': (0, boot(0x100000, [0x8000, 0x1234])),
    'reset': (0, msg(RESET)),
    'halt': (0, msg(HALT)),
    'state': (0, msg(STATE, struct.pack('<II', 2, 0))),
    'db-ring': (1, msg(DB_RING, struct.pack('<II', 32, 0), flags=FLAG_FD)),
    'db-event': (1, msg(DB_EVENT, struct.pack('<II', 3, 0), flags=FLAG_FD)),
    'db-space': (0, msg(DB_SPACE)),

    # Malformed ones, one defect each.
    'bad-short-header': (0, msg(PING, struct.pack('<Q', 1))[:8]),
    'bad-truncated': (0, access(READ, 0x1000, 8)[:-1]),
    'bad-trailing': (0, msg(PING, struct.pack('<Q', 1)) + b'\0'),
    'bad-too-long': (0, msg(WRITE, length=0xFFFFFFFF)),
    'bad-type-0': (0, msg(0)),
    'bad-type-23': (0, msg(23)),
    'bad-db-ring-no-fd': (0, msg(DB_RING, struct.pack('<II', 32, 0))),
    'bad-db-ring-depth': (1, msg(DB_RING, struct.pack('<II', 1025, 0),
                                 flags=FLAG_FD)),
    'bad-db-event-vector': (1, msg(DB_EVENT, struct.pack('<II', 64, 0),
                                   flags=FLAG_FD)),
    'bad-flags': (0, msg(PING, struct.pack('<Q', 1), flags=2)),
    'bad-fd-missing': (0, map_reply(0, 3, 0x40000, 0x1000, 0)),
    'bad-fd-unexpected': (1, msg(PING, struct.pack('<Q', 1))),
    'bad-fd-forward': (1, map_reply(1, 1, 0x40000, 0x1000, 0,
                                    flags=FLAG_FD)),
    'bad-magic': (0, hello(magic=0x3250584D)),
    'bad-version': (0, hello(major=2, minor=1)),
    'bad-version-short': (0, msg(HELLO, struct.pack('<IHH', MAGIC, 2, 0))),
    'bad-error-code-0': (0, error(ERROR, 0, READ, 0x1000)),
    'bad-map-reply-write-only': (1, map_reply(0, 2, 0x40000, 0x1000, 0)),
    'bad-name': (0, hello(name=b'vm0\0junk')),
    'bad-read-size-0': (0, access(READ, 0x1000, 0)),
    'bad-read-wrap': (0, access(READ, 0xFFFFFFFFFFFFFFFC, 8)),
    'bad-map-reply-perm': (0, map_reply(1, 4, 0x40000, 0x1000, 0)),
    'bad-doorbell-vector': (0, doorbell(64, pattern(4))),
    'bad-boot-nargs': (0, boot(0x100000, [1, 2, 3, 4], nargs=5)),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else \
        os.path.join(here, 'corpus', 'wire')
    os.makedirs(outdir, exist_ok=True)
    for name, (nfds, data) in sorted(SEEDS.items()):
        with open(os.path.join(outdir, name), 'wb') as f:
            f.write(bytes([nfds]) + data)
    print('wrote %d seeds to %s' % (len(SEEDS), outdir))


if __name__ == '__main__':
    main()
