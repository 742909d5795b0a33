#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Both variants interoperate: an x86_64 Linux guest with memexpose-pci and
an aarch64 Linux guest with memexpose-sysbus, each running memexpose.ko
(the PCI binding in one, the device-tree platform binding in the other) and
memexpose-ctl.  Prints TAP; exits non-zero on the first failure.

    tests/guest/arm64-linux.py --initrd X86_INITRD --initrd-arm64 ARM64_INITRD
                               [--workdir DIR]

Guest A: qemu-system-x86_64 pc, 256 MiB, memexpose-pci (256 MiB window),
link server, memmap=96M$0x8000000 (128..224 MiB left alone by its kernel).
Guest B: qemu-system-aarch64 virt (cortex-a57), 256 MiB at 0x40000000,
memexpose-sysbus (16 MiB window, the most virt's platform bus takes), link
client, mem=192M (its kernel leaves 0x4c000000..0x50000000 alone).  Both
keep their RAM in a shared memfd and export all of it.

Steps: boot; B probes through the device tree ("qemu,memexpose" under
virt's platform bus), A through PCI; the link comes up with the names
crossed; A writes 32 MiB into B's free RAM through its window and B
writes 16 MiB into A's reserved RAM through its own, each checked against
the target's RAM (QMP pmemsave) and inside the target guest (devmem in B,
/dev/mem in A), and checked for zero-copy; doorbells with text and
binary payloads each way, in order; B unbinds, rebinds, rmmods and
insmods the platform driver and the link and data come back; neither
kernel logged an oops or a warning, no request timed out.

Environment: MEMEXPOSE_QEMU (x86_64), MEMEXPOSE_QEMU_AARCH64,
MEMEXPOSE_ARM64_ROOT (Debian's arm64 kernel, scripts/arm64-guest.sh),
MEMEXPOSE_BOOT_TIMEOUT (180 s), MEMEXPOSE_ACCEL (tcg).
"""

import argparse
import hashlib
import os
import re
import shutil
import sys
import time
import zlib

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Guest, GuestError  # noqa: E402
from checks import (Failed, OOPS_RX, diag, expect,  # noqa: E402
                    fill_pattern, parse_crc, parse_kv, pattern_word)

BOOT_TIMEOUT = float(os.environ.get("MEMEXPOSE_BOOT_TIMEOUT", "180"))
CTL = "memexpose-ctl"
KO = "/memexpose.ko"

A_RESERVED = 0x8000000          # memmap=96M$0x8000000 in A
A_APPEND = "memmap=96M$0x8000000"
B_RAM = 0x40000000              # virt's RAM
B_FREE = 0x4c000000             # above B's mem=192M
B_APPEND = "mem=192M"
A_WINDOW = 256 << 20
B_WINDOW = 16 << 20             # memexpose-sysbus's default
A_TO_B = 32 << 20
B_TO_A = 16 << 20
A_VECTOR = 1                    # A -> B
B_VECTOR = 2                    # B -> A
N_DOORBELLS = 10

class Test:
    def __init__(self, opts):
        self.opts = opts
        self.workdir = opts.workdir
        sock = os.path.join(self.workdir, "link.sock")
        self.a = Guest("A", os.path.join(self.workdir, "A"),
                       harness.newest_kernel(), opts.initrd, sock,
                       role="server", mem="256M", export="0+256M:rw",
                       window_size="256M", extra_append=A_APPEND)
        self.b = Guest("B", os.path.join(self.workdir, "B"),
                       harness.arm64_kernel(), opts.initrd_arm64, sock,
                       role="client", arch="aarch64", mem="256M",
                       export="0x%x+256M:rw" % B_RAM,
                       extra_append=B_APPEND)
        self.n = 0

    # ---- helpers ---------------------------------------------------------

    def ctl(self, g, args, timeout=60):
        rc, out = g.run("%s %s" % (CTL, args), timeout=timeout)
        if rc != 0:
            raise Failed("%s: memexpose-ctl %s exited %d:\n%s"
                         % (g.name, args, rc, out))
        return out

    def info(self, g):
        return parse_kv(self.ctl(g, "info", 20))

    def wait_link(self, g, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            info = self.info(g)
            if info.get("link") == "up":
                return info
            if time.monotonic() > deadline:
                raise Failed("%s: link not up within %ss: %s"
                             % (g.name, timeout, info))
            time.sleep(0.2)

    def wait_dev(self, g, present=True):
        test = "-e" if present else "! -e"
        g.check("i=0; until [ %s /dev/memexpose0 ] || [ $i -ge 100 ]; do "
                "usleep 50000; i=$((i+1)); done; [ %s /dev/memexpose0 ]"
                % (test, test), timeout=20)

    def pmem(self, g, addr, size):
        path = os.path.join(self.workdir, "pmem-%s.bin" % g.name)
        try:
            g.pmemsave(addr, size, path, timeout=60)
            with open(path, "rb") as f:
                return f.read()
        finally:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def ok(self, what):
        self.n += 1
        print("ok %d - %s" % (self.n, what), flush=True)

    def not_ok(self, what, why):
        self.n += 1
        print("not ok %d - %s" % (self.n, what), flush=True)
        diag(why)

    # ---- steps -----------------------------------------------------------

    def boot(self):
        t0 = time.monotonic()
        self.a.start()
        self.b.start()
        self.a.boot(BOOT_TIMEOUT)
        self.b.boot(BOOT_TIMEOUT)
        diag("booted A (x86_64) in %.1fs, B (aarch64) in %.1fs (TCG, "
             "parallel)" % (self.a.boot_seconds, self.b.boot_seconds))
        diag("A: " + self.a.check("uname -rm", 10).strip())
        diag("B: " + self.b.check("uname -rm", 10).strip())
        expect("aarch64" in self.b.check("uname -m", 10),
               "B does not run an aarch64 kernel")
        expect("x86_64" in self.a.check("uname -m", 10),
               "A does not run an x86_64 kernel")
        self.t_boot = time.monotonic() - t0

    def probe_b(self):
        b = self.b
        out = b.check("insmod %s && echo loaded" % KO, 30)
        expect("loaded" in out, "B: insmod: %s" % out)
        self.wait_dev(b)
        # Bound by the platform driver, to the device-tree node.
        devs = b.check("cd /sys/bus/platform/drivers/memexpose && "
                       "ls -d *.memexpose", 10).split()
        expect(len(devs) == 1, "B: platform devices bound to memexpose: %r"
               % devs)
        self.b_dev = devs[0]
        node = b.check("cd /sys/bus/platform/devices/%s && "
                       "readlink -f of_node && tr '\\0' '\\n' < "
                       "of_node/compatible && basename $(readlink -f "
                       "subsystem)" % self.b_dev, 10).split()
        diag("B: %s, of_node %s, compatible %s, bus %s"
             % (self.b_dev, node[0], node[1] if len(node) > 1 else "?",
                node[-1]))
        expect(len(node) == 3 and node[1] == "qemu,memexpose"
               and node[2] == "platform"
               and "/platform-bus@c000000/memexpose@" in node[0],
               "B: not probed through the device tree: %r" % node)
        # Nothing on PCI in B: the aarch64 guest has no memexpose-pci.
        pci = b.check("ls /sys/bus/pci/drivers/memexpose/ 2>/dev/null | "
                      "grep -c : || true", 10).strip()
        expect(pci in ("", "0"), "B: memexpose PCI devices: %s" % pci)
        dm = b.check("dmesg | grep 'memexpose0:'", 10)
        diag("B dmesg: " + dm.strip().replace("\n", "\n  "))
        expect(re.search(r"window \[mem 0x[0-9a-f]+-0x[0-9a-f]+\] "
                         r"\(%d bytes\)" % B_WINDOW, dm),
               "B: the driver did not report the 16 MiB window")
        iomem = b.check("grep memexpose /proc/iomem", 10)
        expect(len(iomem.strip().splitlines()) == 2,
               "B: /proc/iomem has not the registers and the window:\n%s"
               % iomem)

    def probe_a(self):
        a = self.a
        out = a.check("insmod %s && echo loaded" % KO, 30)
        expect("loaded" in out, "A: insmod: %s" % out)
        self.wait_dev(a)
        devs = a.check("ls /sys/bus/pci/drivers/memexpose/ | grep : || "
                       "true", 10).split()
        expect(len(devs) == 1, "A: PCI devices bound to memexpose: %r"
               % devs)
        diag("A: PCI %s" % devs[0])

    def link(self):
        for g, peer, wsize in ((self.a, "B", A_WINDOW),
                               (self.b, "A", B_WINDOW)):
            info = self.wait_link(g)
            diag("%s: %s" % (g.name, " ".join(
                "%s=%s" % kv for kv in info.items()
                if kv[0] in ("link", "peer", "window-size", "features",
                             "vectors", "peer-vectors", "tx-credits"))))
            expect(info.get("peer") == peer, "%s: peer is %r, expected %r"
                   % (g.name, info.get("peer"), peer))
            expect(int(info.get("window-size", "0"), 0) == wsize,
                   "%s: window-size %r, expected %d"
                   % (g.name, info.get("window-size"), wsize))
            expect(g.qom_get("link-up") is True,
                   "%s: QOM link-up is not true" % g.name)
            expect(g.qom_get("peer-name") == peer,
                   "%s: QOM peer-name %r" % (g.name, g.qom_get("peer-name")))

    def transfer(self, writer, target, base, off, size, seed, addr):
        """writer fills window offset off (window base base) = target's
        guest-physical addr; checks as run-scenarios.py's bulk.  Returns
        the bytes in target's RAM."""
        before_w = writer.counters(["forwarded-writes", "forwarded-reads"])
        before_t = target.counters(["served-writes", "served-reads"])
        self.ctl(writer, "base 0x%x" % base)
        t0 = time.monotonic()
        c_fill = parse_crc(self.ctl(writer, "fill 0x%x 0x%x %d"
                                    % (off, size, seed), 120))
        t_fill = time.monotonic() - t0
        c_pread = parse_crc(self.ctl(writer, "crc 0x%x 0x%x" % (off, size),
                                     120))
        c_mmap = parse_crc(self.ctl(writer, "mmap-check 0x%x 0x%x"
                                    % (off, size), 120))
        after_w = writer.counters(["forwarded-writes", "forwarded-reads"])
        after_t = target.counters(["served-writes", "served-reads"])
        data = self.pmem(target, addr, size)
        c_host = zlib.crc32(data) & 0xffffffff
        fw = after_w["forwarded-writes"] - before_w["forwarded-writes"]
        fr = after_w["forwarded-reads"] - before_w["forwarded-reads"]
        sw = after_t["served-writes"] - before_t["served-writes"]
        sr = after_t["served-reads"] - before_t["served-reads"]
        diag("%s -> %s: %d MiB at 0x%x (window base 0x%x + 0x%x): fill "
             "%.1fs, crc fill 0x%08x pread 0x%08x mmap 0x%08x %s's RAM "
             "0x%08x; forwarded writes %d reads %d, served by %s writes %d "
             "reads %d" % (writer.name, target.name, size >> 20, addr, base,
                           off, t_fill, c_fill, c_pread, c_mmap, target.name,
                           c_host, fw, fr, target.name, sw, sr))
        expect(data[:0x10000] == fill_pattern(seed, off, 0x10000),
               "%s's RAM at 0x%x does not hold the fill pattern (seed %d)"
               % (target.name, addr, seed))
        expect(c_fill == c_host, "CRC of the pattern 0x%08x != CRC of %s's "
               "RAM 0x%08x" % (c_fill, target.name, c_host))
        expect(c_pread == c_host and c_mmap == c_host,
               "read back through %s's window: pread 0x%08x, mmap 0x%08x; "
               "%s's RAM 0x%08x" % (writer.name, c_pread, c_mmap,
                                    target.name, c_host))
        expect(fw <= 16 and sw <= 16 and fr <= 16 and sr <= 16,
               "not zero-copy: %d forwarded writes, %d forwarded reads, %d "
               "served writes, %d served reads for %d MiB"
               % (fw, fr, sw, sr, size >> 20))
        return data

    def a_to_b(self):
        """A (x86_64, memexpose-pci) -> B's free RAM above mem=192M."""
        off = B_FREE - B_RAM
        seed = 0xa64
        self.transfer(self.a, self.b, B_RAM, off, A_TO_B, seed, B_FREE)
        # B sees it too: 64-bit loads through /dev/mem (mmap; the range is
        # not System RAM for B's kernel).
        offs = [0, 8, 0x1000, 0x123458, 0x1000000, A_TO_B - 8]
        out = self.b.check("for o in %s; do devmem $((0x%x + o)) 64; done"
                           % (" ".join(str(o) for o in offs), B_FREE), 20)
        got = [int(w, 16) for w in out.split()]
        want = [pattern_word(seed, off + o) for o in offs]
        diag("B reads its own RAM at 0x%x+%s: %s"
             % (B_FREE, offs, " ".join("%016x" % w for w in got)))
        expect(got == want, "B's view of its RAM %s != the pattern %s"
               % (["%016x" % w for w in got], ["%016x" % w for w in want]))

    def b_to_a(self):
        """B (aarch64, memexpose-sysbus) -> A's reserved RAM."""
        data = self.transfer(self.b, self.a, A_RESERVED, 0, B_TO_A, 0xb64,
                             A_RESERVED)
        # A sees it too: /dev/mem of its reserved (memmap=) range.
        out = self.a.check("dd if=/dev/mem bs=65536 skip=%d count=%d "
                           "2>/dev/null | sha256sum"
                           % (A_RESERVED // 65536, B_TO_A // 65536), 60)
        want = hashlib.sha256(data).hexdigest()
        diag("A reads its own RAM at 0x%x: sha256 %s (host: %s)"
             % (A_RESERVED, out.split()[0] if out.split() else "?", want))
        expect(out.split()[:1] == [want],
               "A's view of its RAM differs from what the host reads")

    def doorbells_one(self, sender, receiver, vector, tag):
        n = N_DOORBELLS
        binary = "0x" + "".join("%02x" % ((i * 37 + vector) & 0xff)
                                for i in range(256))
        receiver.check("rm -f /tmp/rx; (i=0; while [ $i -lt %d ]; do "
                       "%s doorbell wait 10000 || echo \"wait-failed $?\"; "
                       "i=$((i+1)); done > /tmp/rx 2>&1; echo end >> /tmp/rx)"
                       " > /dev/null 2>&1 & echo $! > /tmp/rx.pid"
                       % (n + 1, CTL), 10)
        sent = ["%s-%d" % (tag, i) for i in range(n)] + [binary]
        t0 = time.monotonic()
        rc, out = sender.run("i=0; while [ $i -lt %d ]; do %s doorbell send "
                             "%d %s-$i || exit 1; i=$((i+1)); done && "
                             "%s doorbell send %d %s"
                             % (n, CTL, vector, tag, CTL, vector, binary), 60)
        t_send = time.monotonic() - t0
        expect(rc == 0, "%s: sending failed (rc %d):\n%s"
               % (sender.name, rc, out))
        out = receiver.check("i=0; while kill -0 $(cat /tmp/rx.pid) "
                             "2>/dev/null && [ $i -lt 300 ]; do usleep "
                             "100000; i=$((i+1)); done; cat /tmp/rx", 60)
        got = re.findall(r"^vector (\d+): (.*)$", out, re.M)
        diag("%s -> %s: %d doorbells (the last a 256-byte binary payload) "
             "sent in %.1fs, %d received on vectors %s"
             % (sender.name, receiver.name, n + 1, t_send, len(got),
                sorted({int(v) for v, _ in got})))
        expect([p for _, p in got] == sent,
               "%s received, in this order:\n%s\nexpected %s"
               % (receiver.name, out, sent))
        expect({int(v) for v, _ in got} == {vector},
               "received on vectors %s, sent on %d"
               % (sorted({int(v) for v, _ in got}), vector))

    def doorbells(self):
        self.doorbells_one(self.a, self.b, A_VECTOR, "x86-to-arm64")
        self.doorbells_one(self.b, self.a, B_VECTOR, "arm64-to-x86")

    def rebind_b(self):
        b = self.b
        drv = "/sys/bus/platform/drivers/memexpose"
        b.check("echo %s > %s/unbind" % (self.b_dev, drv), 20)
        self.wait_dev(b, False)
        b.check("echo %s > %s/bind" % (self.b_dev, drv), 20)
        self.wait_dev(b)
        self.wait_link(b)
        rc, out = b.run("rmmod memexpose", 30)
        expect(rc == 0, "B: rmmod memexpose: %s" % out)
        b.check("! grep -q '^memexpose ' /proc/modules", 10)
        self.wait_dev(b, False)
        b.check("insmod %s" % KO, 30)
        self.wait_dev(b)
        info = self.wait_link(b)
        self.wait_link(self.a)
        diag("B after unbind/bind and rmmod/insmod: link %s, peer %s, "
             "link-epoch %s" % (info.get("link"), info.get("peer"),
                                info.get("link-epoch")))
        # Data and doorbells again, both ways, briefly.
        addr = A_RESERVED + (32 << 20)
        self.ctl(b, "base 0x%x" % addr)
        c = parse_crc(self.ctl(b, "fill 0 0x100000 77"))
        h = zlib.crc32(self.pmem(self.a, addr, 0x100000)) & 0xffffffff
        expect(c == h, "B -> A after re-probe: pattern 0x%08x, A's RAM "
               "0x%08x" % (c, h))
        self.ctl(self.a, "doorbell send %d again" % A_VECTOR)
        out = self.ctl(b, "doorbell wait 10000", 20)
        expect(out.strip() == "vector %d: again" % A_VECTOR,
               "B after re-probe received %r" % out)

    def clean_logs(self):
        for g in (self.a, self.b):
            out = g.check("dmesg | grep -i -E '%s' || true" % OOPS_RX, 20)
            lines = [line for line in out.splitlines() if line.strip()]
            expect(not lines, "%s's kernel log:\n%s" % (g.name,
                                                        "\n".join(lines)))
            t = g.qom_get("timeouts")
            expect(t == 0, "%s: %d requests timed out" % (g.name, t))
            expect(g.alive(), "%s's QEMU is gone" % g.name)

    def run(self):
        steps = [
            ("boot: A x86_64 Linux (memexpose-pci, link server) and B "
             "aarch64 Linux (memexpose-sysbus, link client)", self.boot),
            ("B: insmod memexpose.ko, the platform driver probes the "
             "\"qemu,memexpose\" device-tree node, /dev/memexpose0",
             self.probe_b),
            ("A: insmod memexpose.ko, the PCI driver probes, "
             "/dev/memexpose0", self.probe_a),
            ("link up: each side's memexpose-ctl info names the other",
             self.link),
            ("A -> B: 32 MiB through A's PCI window into B's RAM, "
             "zero-copy, seen by the host and by B", self.a_to_b),
            ("B -> A: 16 MiB through B's platform window into A's RAM, "
             "zero-copy, seen by the host and by A", self.b_to_a),
            ("doorbells with text and binary payloads, each way, in order",
             self.doorbells),
            ("B: platform unbind/bind and rmmod/insmod, link and data "
             "come back", self.rebind_b),
            ("no oops or warning in either kernel log, no request timed "
             "out", self.clean_logs),
        ]
        t0 = time.monotonic()
        rc = 0
        try:
            for what, fn in steps:
                try:
                    fn()
                except (Failed, GuestError, OSError) as e:
                    self.not_ok(what, e)
                    for g in (self.a, self.b):
                        diag("%s: serial log %s, QEMU stderr %s"
                             % (g.name, g.serial_log_path, g.stderr_path))
                    rc = 1
                    break
                self.ok(what)
        finally:
            self.a.kill()
            self.b.kill()
        diag("run time %.1fs (boot %.1fs)"
             % (time.monotonic() - t0, getattr(self, "t_boot", 0)))
        print("1..%d" % self.n, flush=True)
        return rc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--initrd", required=True, help="x86_64 initramfs")
    ap.add_argument("--initrd-arm64", required=True, help="arm64 initramfs")
    ap.add_argument("--workdir")
    opts = ap.parse_args()
    harness.install_signal_handlers()
    opts.initrd = os.path.abspath(opts.initrd)
    opts.initrd_arm64 = os.path.abspath(opts.initrd_arm64)
    if opts.workdir is None:
        opts.workdir = os.path.join(harness.TOP, "build", "guest",
                                    "work-arm64")
    shutil.rmtree(opts.workdir, ignore_errors=True)
    os.makedirs(opts.workdir)
    try:
        test = Test(opts)
    except GuestError as e:
        print("Bail out! %s" % e)
        return 1
    return test.run()


if __name__ == "__main__":
    sys.exit(main())
