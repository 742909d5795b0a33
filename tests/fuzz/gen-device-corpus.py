#!/usr/bin/env python3
#
# Generate the seed inputs of the device fuzzer (memexpose-peer, see
# tests/fuzz/memexpose-fuzz-peer.c for the input format): one program per
# path into the device worth starting from.  The "fuzz-*" files of
# corpus/device are not generated here: they are what fuzzer runs kept
# (docs/fuzzing.md).
#
# Usage: tests/fuzz/gen-device-corpus.py [OUTDIR]  (default: corpus/device
# next to this script).  Existing files of the same name are overwritten.
#
# Copyright (c) 2026 The memexpose authors
#
# SPDX-License-Identifier: GPL-2.0-or-later

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from importlib import import_module

wire = import_module('gen-corpus')

(OP_MSG, OP_MSG_FD, OP_RAW, OP_MAP_REPLY, OP_ACCESS, OP_RING, OP_PUBLISH,
 OP_SIGNAL, OP_GUEST_W, OP_GUEST_R, OP_SYNC) = range(11)

FEAT_MAP, FEAT_BULK, FEAT_BOOT, FEAT_HEARTBEAT, FEAT_DB_RING = (
    1, 2, 4, 8, 16)
ALL = 0x1F
NO_HANDSHAKE = 0x80

# Indices into op_guest_write()'s register table.
(G_INTR_STATUS, G_INTR_MASK, G_WINDOW_LO, G_WINDOW_HI, G_TX_LEN,
 G_TX_VECTOR, G_RX_POP, G_BOOT_ENTRY, G_BOOT_NARGS, G_BOOT_ARG0,
 G_TX_DATA0, G_TX_DATA1, G_ID) = range(13)


def op_msg(raw_message, idsel=None):
    """A whole encoded message, sent through MSG (header re-packed)."""
    mtype, flags, length, msg_id = wire.HEADER.unpack(raw_message[:16])
    payload = raw_message[16:]
    if idsel is None:
        ids = bytes([3]) + struct.pack('<Q', msg_id)
    else:
        ids = bytes([idsel])
    return (bytes([OP_MSG, mtype, flags]) + ids +
            struct.pack('<H', len(payload)) + payload)


def op_msg_fd(fdkind, pages, raw_message):
    return bytes([OP_MSG_FD, fdkind, pages]) + op_msg(raw_message)[1:]


def op_raw(data):
    return bytes([OP_RAW, len(data)]) + data


def op_map_reply(kind, perm, reason=0, amode=0, pages=0, foff=0, fdkind=0):
    return bytes([OP_MAP_REPLY, kind, perm, reason, amode]) + \
        struct.pack('<HH', pages, foff) + bytes([fdkind])


def op_access(write, area, offset, sizesel, data=b''):
    return bytes([OP_ACCESS, write, area]) + struct.pack('<I', offset) + \
        bytes([sizesel]) + data


def op_publish(vector, data):
    return bytes([OP_PUBLISH]) + struct.pack('<HH', vector, len(data)) + data


def op_ring(which, offset, data):
    return bytes([OP_RING, which]) + struct.pack('<H', offset) + \
        bytes([len(data)]) + data


def op_guest_w(sel, value):
    return bytes([OP_GUEST_W, sel]) + struct.pack('<I', value)


def op_guest_r(reg):
    return bytes([OP_GUEST_R]) + struct.pack('<H', reg)


SYNC = bytes([OP_SYNC])

SEEDS = {
    'link-ring': bytes([ALL]) + SYNC,
    'link-socket': bytes([ALL & ~FEAT_DB_RING]) + SYNC,
    'link-bare': bytes([0]) + SYNC,
    'read-ram': bytes([ALL]) + op_access(0, 0, 0x1000, 3),
    'write-ram': bytes([ALL]) + op_access(1, 0, 0x1000, 2, b'\x12\x34'),
    'write-read-only': bytes([ALL]) + op_access(1, 2, 8, 3, b'\xaa' * 8),
    'read-straddle': bytes([ALL]) + op_access(0, 1, 4, 5),
    'read-mmio': bytes([ALL]) + op_access(0, 4, 0, 2),
    'read-unassigned': bytes([ALL]) + op_access(0, 5, 0, 2),
    'read-window': bytes([ALL]) + op_access(0, 6, 0, 2),
    'read-bulk': bytes([ALL]) + op_access(0, 0, 0x2000, 6),
    'bulk-no-feature': bytes([FEAT_MAP]) + op_access(0, 0, 0, 4),
    'read-top': bytes([ALL]) + op_access(0, 8, 4088, 3),
    'map': bytes([ALL]) + op_msg(wire.msg(wire.MAP,
                                          struct.pack('<Q', 0x1000), 7)),
    'map-reply-forward': bytes([ALL]) + op_map_reply(1, 3, 1, 0, 16),
    'map-reply-denied': bytes([ALL]) + op_map_reply(2, 0, 0, 0, 255),
    'map-reply-fd': bytes([ALL]) + op_map_reply(0, 3, 0, 0, 15, 0, 0),
    'map-reply-fd-unsealed': bytes([ALL]) + op_map_reply(0, 3, 0, 0, 15, 0,
                                                         1),
    'map-reply-fd-pipe': bytes([ALL]) + op_map_reply(0, 1, 0, 0, 0, 0, 3),
    'map-reply-tiny': bytes([ALL]) + op_map_reply(1, 1, 0, 0x80, 0),
    'window-move': bytes([ALL]) + op_guest_w(G_WINDOW_LO, 0x100000) +
                   op_map_reply(1, 3, 0, 0, 3),
    'doorbell-ring': bytes([ALL]) + op_publish(0, b'payload!') +
                     op_guest_w(G_RX_POP, 0),
    'doorbell-bad-vector': bytes([ALL]) + op_publish(9, b''),
    'doorbell-socket': bytes([ALL & ~FEAT_DB_RING]) +
                       op_msg(wire.doorbell(1, b'hi')),
    'doorbell-flood': bytes([ALL & ~FEAT_DB_RING]) +
                      op_msg(wire.doorbell(0, b'x')) * 12,
    'credit': bytes([ALL & ~FEAT_DB_RING]) +
              op_msg(wire.msg(wire.CREDIT, struct.pack('<II', 1, 0))),
    'guest-doorbell': bytes([ALL]) + op_guest_w(G_TX_LEN, 4) +
                      op_guest_w(G_TX_DATA0, 0x11223344) +
                      op_guest_w(G_TX_VECTOR, 1) + SYNC +
                      op_ring(1, 64, struct.pack('<I', 1)),
    'ring-producer': bytes([ALL]) + op_ring(0, 0, struct.pack('<I', 99)) +
                     bytes([OP_SIGNAL, 0]),
    'ring-consumer': bytes([ALL]) + op_ring(1, 64, struct.pack('<I', 7)) +
                     op_guest_w(G_TX_VECTOR, 0),
    'boot-not-target': bytes([ALL]) + op_msg(wire.boot(0x40000000, [1, 2]),
                                             2),
    'reset': bytes([ALL]) + op_msg(wire.msg(wire.RESET), 2),
    'invalidate': bytes([ALL]) + op_msg(wire.msg(
        wire.INVALIDATE, struct.pack('<QQ', 0, 0x100000)), 2),
    'error-reply-map': bytes([ALL]) + op_msg(wire.error(wire.ERROR, 5,
                                                        wire.MAP), 1),
    'bye': bytes([ALL]) + op_msg(wire.error(wire.BYE, 14)),
    'pong-unasked': bytes([ALL]) + op_msg(wire.msg(
        wire.PONG, struct.pack('<Q', 5), 5)),
    'hello-twice': bytes([ALL]) + op_msg(wire.hello(features=ALL)),
    'handshake-own': bytes([NO_HANDSHAKE]) +
                     op_msg(wire.hello(features=0x7, vectors=1,
                                       queue_depth=2, minor=1)) + SYNC,
    'handshake-ring': bytes([NO_HANDSHAKE]) +
                      op_msg(wire.hello(features=ALL, vectors=1,
                                        queue_depth=2, minor=1)) +
                      op_msg_fd(0, 0, wire.msg(wire.DB_RING,
                                               struct.pack('<II', 2, 0),
                                               flags=1)) +
                      op_msg_fd(4, 0, wire.msg(wire.DB_EVENT,
                                               struct.pack('<II', 0, 0),
                                               flags=1)),
    'handshake-version': bytes([NO_HANDSHAKE]) + op_msg(wire.hello(major=2)),
    'fd-outside-header': bytes([ALL]) + op_raw(b'\x04\x00') +
                         op_msg_fd(0, 0, wire.msg(wire.PING, b'\0' * 8, 9)),
    'unfinished': bytes([ALL]) + op_raw(b'\x04\x00\x00\x00\x08\x00'),
    'garbage': bytes([ALL]) + op_raw(bytes(range(32))),
    'registers': bytes([ALL]) + b''.join(op_guest_r(r) for r in
                                         (0, 8, 0x48, 0x54, 0x58, 0x300)),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'corpus', 'device')
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
