#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (c) 2026 The memexpose authors
"""The Python binding against a real QEMU (TAP output).

Usage: test_python.py QEMU
with contrib/python on PYTHONPATH and LIBMEMEXPOSE naming the library.
The binding reads a VM's RAM (zero-copy, through a memoryview, and by
forwarding), checked against QMP pmemsave and qtest, and rings a
doorbell that the VM's device registers then show.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import memexpose

REGS = 0xe0000000
DB_RX_COUNT, DB_RX_HEAD, DB_RX_DATA, DB_RX_POP = 0x50, 0x54, 0x200, 0x58
results = []


def check(name, cond, detail=""):
    results.append((name, bool(cond), detail))


def connect(path, proc, timeout=20):
    deadline = time.time() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.time() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.02)


class Lines:
    def __init__(self, sock):
        self.f = sock.makefile("rwb", buffering=0)

    def cmd(self, text):
        self.f.write(text.encode() + b"\n")
        return self.f.readline().decode().strip()


def qmp(q, cmd, **args):
    q.f.write(json.dumps({"execute": cmd, "arguments": args}).encode())
    while True:
        r = json.loads(q.f.readline())
        if "event" not in r:
            return r


def main():
    qemu = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="mx-py-test-")
    mx, qt, qm = (os.path.join(tmp, n) for n in ("mx.sock", "qt.sock",
                                                 "qmp.sock"))
    log = open(os.path.join(tmp, "qemu.log"), "w")
    # A sanitizer runtime preloaded for the library is not QEMU's.
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    proc = subprocess.Popen(
        [qemu, "-machine", "pc", "-accel", "qtest", "-display", "none",
         "-nodefaults", "-m", "64",
         "-object", "memory-backend-memfd,id=ram,size=64M,share=on",
         "-machine", "memory-backend=ram",
         "-qtest", "unix:%s,server=on,wait=off" % qt,
         "-qmp", "unix:%s,server=on,wait=off" % qm,
         "-chardev", "socket,id=mx,path=%s,server=on,wait=off" % mx,
         "-device", "memexpose-pci,id=mx,chardev=mx,name=pyvm,addr=4.0,"
         "window-size=16M,export=0+64M:rw,trust-peer=on"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    ok = False
    try:
        t = Lines(connect(qt, proc))
        q = Lines(connect(qm, proc))
        q.f.readline()
        qmp(q, "qmp_capabilities")
        # The device's registers at REGS (BAR0), memory decoding on.
        cfg = 0x80000000 | (4 << 11)
        t.cmd("outl 0xcf8 0x%x" % (cfg | 0x10))
        t.cmd("outl 0xcfc 0x%x" % REGS)
        t.cmd("outl 0xcf8 0x%x" % (cfg | 0x04))
        t.cmd("outw 0xcfc 0x2")
        pattern = bytes((i * 7 + 3) & 0xff for i in range(1 << 20))
        t.cmd("write 0x200000 0x%x 0x%s" % (8192, pattern[:8192].hex()))

        with memexpose.Link.connect(mx, name="python",
                                    timeout_ms=5000) as link:
            check("handshake", link.up and link.peer["name"] == "pyvm",
                  link.peer)
            ram = link.map(0x100000, 4 << 20)
            check("zero-copy map", ram is not None and len(ram) == 4 << 20)
            dump = os.path.join(tmp, "pmemsave.bin")
            r = qmp(q, "pmemsave", val=0x100000, size=4 << 20,
                    filename=dump)
            with open(dump, "rb") as f:
                saved = f.read()
            check("memoryview equals pmemsave", ram is not None and
                  bytes(ram) == saved and "return" in r)
            check("forwarded-or-mapped read equals qtest",
                  link.read(0x200000, 8192) == pattern[:8192])
            link.write_value(0x300000, 0x1122334455667788, 8)
            got = t.cmd("readq 0x300000")
            check("write_value seen by the VM",
                  int(got.split()[1], 16) == 0x1122334455667788, got)
            if ram is not None:
                ram[0x300000 - 0x100000] = 0x99
            check("memoryview write seen by the VM",
                  int(t.cmd("readb 0x300000").split()[1], 16) == 0x99)
            link.ring(2, b"py-doorbell")
            link.barrier()
            count = int(t.cmd("readl 0x%x" % (REGS + DB_RX_COUNT))
                        .split()[1], 16)
            head = int(t.cmd("readl 0x%x" % (REGS + DB_RX_HEAD)).split()[1],
                       16)
            data = t.cmd("read 0x%x 11" % (REGS + DB_RX_DATA)).split()[1]
            check("doorbell reached the VM", count == 1 and
                  head == (2 | 11 << 16) and
                  bytes.fromhex(data[2:]) == b"py-doorbell",
                  (count, hex(head), data))
            try:
                link.read(0x5000000, 8)
                check("refusal raises", False)
            except memexpose.MemexposeError as e:
                check("refusal raises", e.code == 3 and link.up, e.reason)
        ok = True
    finally:
        proc.kill()
        proc.wait()
        log.close()
        if ok and all(r[1] for r in results):
            shutil.rmtree(tmp)
        else:
            print("# QEMU log in %s" % tmp)
    print("1..%d" % len(results))
    for i, (name, good, detail) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if good else "not ok", i, name))
        if not good:
            print("# %s" % (detail,))
    return 0 if all(r[1] for r in results) and results else 1


if __name__ == "__main__":
    sys.exit(main())
