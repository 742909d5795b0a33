# SPDX-License-Identifier: GPL-2.0-or-later
"""Helpers the guest tests and the bench share: failures, TAP comments,
memexpose-ctl output parsing and the fill pattern it writes."""

import re
import zlib

# What a kernel log must not contain after a test.
OOPS_RX = r"oops|bug:|call trace|general protection|WARNING: CPU|kernel panic"

M64 = (1 << 64) - 1


class Failed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Failed(msg)


def diag(msg):
    """Print msg as TAP comment lines."""
    for line in str(msg).splitlines() or [""]:
        print("# " + line, flush=True)


def parse_kv(text):
    """'key: value' lines -> dict (first occurrence wins)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_ -]+?)\s*:\s*(.*?)\s*$", line)
        if m and m.group(1) not in out:
            out[m.group(1)] = m.group(2)
    return out


def parse_crc(text):
    """The CRC32 of memexpose-ctl's "crc32: 0x..." line."""
    m = re.search(r"crc32:\s*(0x[0-9a-fA-F]+)", text)
    if not m:
        raise Failed("no 'crc32: 0x...' in output:\n%s" % text)
    return int(m.group(1), 16)


def file_crc(path):
    """zlib's CRC32 of a file, as memexpose-ctl crc computes it."""
    crc = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                return crc & 0xffffffff
            crc = zlib.crc32(chunk, crc)


def splitmix64(x):
    x = (x + 0x9e3779b97f4a7c15) & M64
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M64
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & M64
    return x ^ (x >> 31)


def pattern_word(seed, off):
    """memexpose-ctl fill's 64-bit word at window offset off (8-aligned)."""
    return splitmix64((seed + off // 8) & M64)


def fill_pattern(seed, off, size):
    """memexpose-ctl fill's pattern: the byte at window offset O is byte
    O % 8 (little-endian) of splitmix64(SEED + O / 8).  off, size: 8-byte
    aligned."""
    return b"".join(pattern_word(seed, o).to_bytes(8, "little")
                    for o in range(off, off + size, 8))
