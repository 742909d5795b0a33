#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The out-of-process DMA engine (contrib/examples/dma-engine) driven
from a real Linux guest.  Prints TAP.

    tests/guest/dma.py --initrd INITRD [--workdir DIR]

One x86_64 guest (TCG, memexpose-pci, memexpose.ko, memexpose-ctl)
whose device listens; the host's dma-engine process connects to it.
The guest moves its window onto the engine's registers, programs a
16 MiB copy inside its own RAM (SRC, DST, LEN, GO, with single 8-byte
writes), and waits for the completion doorbell.  The source is a
pattern QEMU's loader device puts into RAM the guest's kernel leaves
alone (memmap=96M$0x8000000); the host checks the destination with
pmemsave, and that the engine copied zero-copy (no READ or WRITE came
over the link).  Environment: MEMEXPOSE_DMA_ENGINE (default
build/mx/contrib/examples/dma-engine), MEMEXPOSE_QEMU,
MEMEXPOSE_BOOT_TIMEOUT (180 s).
"""

import argparse
import os
import random
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Guest, GuestError  # noqa: E402
from checks import Failed  # noqa: E402

TOP = harness.TOP
ENGINE = os.environ.get("MEMEXPOSE_DMA_ENGINE",
                        os.path.join(TOP, "build", "mx", "contrib",
                                     "examples", "dma-engine"))
BOOT_TIMEOUT = float(os.environ.get("MEMEXPOSE_BOOT_TIMEOUT", "180"))
CTL = "memexpose-ctl"
SRC = 0x8000000                 # inside memmap=96M$0x8000000
DST = 0x9000000
LEN = 16 << 20
# The engine's registers (contrib/examples/README.md).
REG_ID, REG_SRC, REG_DST, REG_LEN, REG_GO, REG_STATUS, REG_COUNT = \
    0x00, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30

CASES = [
    "the guest boots, loads memexpose.ko and links with the dma-engine",
    "the guest's window reaches the engine's ID register",
    "a 16 MiB copy programmed by the guest completes with a doorbell",
    "the destination holds the source, copied zero-copy",
]


def le64(value):
    return "0x" + struct.pack("<Q", value).hex()


def reg_write(g, reg, value):
    g.check("%s write 0x%x %s" % (CTL, reg, le64(value)))


def reg_read(g, reg):
    out = g.check("%s read 0x%x 8" % (CTL, reg))
    # A hex dump line: "OFFSET  b0 b1 ... b7  |ascii|"
    hexes = out.strip().splitlines()[-1].split("|")[0].split()[1:9]
    return struct.unpack("<Q", bytes(int(x, 16) for x in hexes))[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--workdir",
                    default=os.path.join(TOP, "build", "guest", "dma"))
    ap.add_argument("--kernel", default=None)
    args = ap.parse_args()
    harness.install_signal_handlers()
    os.makedirs(args.workdir, exist_ok=True)
    print("1..%d" % len(CASES))
    n = 0
    failed = False

    def ok(cond, what=None):
        nonlocal n, failed
        n += 1
        failed |= not cond
        print("%s %d - %s" % ("ok" if cond else "not ok", n, CASES[n - 1]))
        if what and not cond:
            print("# " + str(what).replace("\n", "\n# "))
        sys.stdout.flush()
        return cond

    pattern = os.path.join(args.workdir, "pattern.bin")
    rnd = random.Random(20261202)
    with open(pattern, "wb") as f:
        f.write(rnd.randbytes(LEN))
    sock = os.path.join(args.workdir, "link.sock")
    guest = Guest("dma", os.path.join(args.workdir, "guest"),
                  args.kernel or harness.newest_kernel(), args.initrd, sock,
                  extra_append="memmap=96M$0x8000000",
                  extra_args=["-device", "loader,file=%s,addr=0x%x,"
                              "force-raw=on" % (pattern, SRC)])
    engine = None
    engine_log = os.path.join(args.workdir, "dma-engine.log")
    try:
        if not os.access(ENGINE, os.X_OK):
            raise Failed("no dma-engine at %s (make mx)" % ENGINE)
        guest.start()
        with open(engine_log, "wb") as log:
            engine = subprocess.Popen([ENGINE, sock, "0x0"], stdout=log,
                                      stderr=log)
        guest.boot(BOOT_TIMEOUT)
        guest.check("insmod /memexpose.ko", timeout=30)
        guest.check("i=0; while [ ! -e /dev/memexpose0 ] && [ $i -lt 100 ];"
                    " do usleep 50000; i=$((i+1)); done; ls /dev/memexpose0",
                    timeout=20)
        guest.wait_link(True, timeout=30)
        ok(guest.qom_get("peer-name") == "dma-engine")

        # The engine's block is at its address 0: window base 0.
        guest.check("%s base 0" % CTL)
        ident = reg_read(guest, REG_ID)
        ok(struct.pack("<Q", ident) == b"MXDMA001", "ID 0x%x" % ident)

        dump = os.path.join(args.workdir, "dst.bin")
        guest.pmemsave(DST, LEN, dump)
        with open(dump, "rb") as f1, open(pattern, "rb") as f2:
            if f1.read() == f2.read():
                raise Failed("the destination holds the pattern before GO")
        before = guest.counters(["served-reads", "served-writes"])
        reg_write(guest, REG_SRC, SRC)
        reg_write(guest, REG_DST, DST)
        reg_write(guest, REG_LEN, LEN)
        start = time.monotonic()
        reg_write(guest, REG_GO, 1)
        out = guest.check("%s doorbell wait 30000" % CTL, timeout=40)
        took = time.monotonic() - start
        status, count = reg_read(guest, REG_STATUS), reg_read(guest,
                                                              REG_COUNT)
        print("# doorbell: %s (%.2f s after GO); STATUS %d, COUNT %d"
              % (out.strip(), took, status, count))
        ok(out.strip() == "vector 0: " + le64(2 | 1 << 32) and
           status == 2 and count == 1, out)

        guest.pmemsave(DST, LEN, dump)
        with open(dump, "rb") as f1, open(pattern, "rb") as f2:
            same = f1.read() == f2.read()
        after = guest.counters(["served-reads", "served-writes"])
        print("# the engine's READs and WRITEs of guest RAM over the link:"
              " %d, %d" % (after["served-reads"] - before["served-reads"],
                           after["served-writes"] - before["served-writes"]))
        ok(same and after == before, "destination %s the source"
           % ("equals" if same else "differs from"))
    except (Failed, GuestError, OSError, subprocess.TimeoutExpired) as e:
        print("# %s" % e)
        print("# guest: %s" % guest.tail(10).replace("\n", "\n# "))
        while n < len(CASES):
            ok(False)
    finally:
        guest.kill()
        if engine:
            engine.terminate()
            try:
                engine.wait(timeout=10)
            except subprocess.TimeoutExpired:
                engine.kill()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
