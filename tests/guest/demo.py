#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""memexpose demo (make demo): two Linux guests (TCG) linked by
memexpose-pci, with a short human-readable transcript on stdout.

    tests/guest/demo.py [--workdir DIR]

The guests are configured as in run-scenarios.py: RAM in a shared memfd,
A (the link server) and B each export all of their 256 MiB, trust-peer=on,
and reserve 96 MiB at 128 MiB (memmap=96M$0x8000000) that their kernels
leave alone.  The demo:

  1. boots A and B, loads memexpose.ko in both and waits for the link;
  2. A writes a string into its own RAM at 0x8000000 through /dev/mem
     (the reserved range is not System RAM, so STRICT_DEVMEM allows it);
  3. B reads it through /dev/memexpose0 (window base 0 = A's address 0);
     A's RAM is mapped into B's window, so B's QEMU forwards no read;
  4. B rings A's doorbell 0 with a payload, A waits for it and prints it.

Exits 0 on success, 1 with a message on any failure; the guests are
always stopped.  The initramfs is rebuilt when stale, as tests/guest/run.sh
does.  Environment: MEMEXPOSE_QEMU, MEMEXPOSE_KO, MEMEXPOSE_CTL,
MEMEXPOSE_ACCEL (tcg), MEMEXPOSE_BOOT_TIMEOUT (120 s).
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Guest, GuestError  # noqa: E402

TOP = harness.TOP
CTL = "memexpose-ctl"
KO = "/memexpose.ko"
RAM = "256M"
APPEND = "memmap=96M$0x8000000"
ADDR = 0x8000000                # in the reserved range of both guests
MESSAGE = "hello from A"
REPLY = "reply from B"
VECTOR = 0
BOOT_TIMEOUT = float(os.environ.get("MEMEXPOSE_BOOT_TIMEOUT", "120"))
CMD_TIMEOUT = 30


class DemoFailed(Exception):
    pass


T0 = time.monotonic()
STARTED = False                 # set once the guests are being started


def say(msg, took=None):
    line = "[%5.1fs] %s" % (time.monotonic() - T0, msg)
    if took is not None:
        line += "  [%s]" % fmt_ms(took)
    print(line, flush=True)


def fmt_ms(seconds):
    if seconds < 10:
        return "%d ms" % round(seconds * 1000)
    return "%.1f s" % seconds


def newer(path, ref):
    try:
        return os.path.getmtime(path) > os.path.getmtime(ref)
    except OSError:
        return False


def ensure_initramfs(ko, ctl):
    """Rebuild build/guest/initramfs.cpio.gz when stale, exactly as
    tests/guest/run.sh does (same inputs record, same build log)."""
    out = os.path.join(TOP, "build", "guest")
    initrd = os.path.join(out, "initramfs.cpio.gz")
    os.makedirs(out, exist_ok=True)
    kimgs = glob.glob("/boot/vmlinuz-*-amd64")
    kimg = ""
    if kimgs:
        kimg = subprocess.run(["sort", "-V"], input="\n".join(kimgs) + "\n",
                              capture_output=True, text=True,
                              check=True).stdout.split()[-1]
    fw = os.environ.get("MEMEXPOSE_FW", os.path.join(
        TOP, "build", "firmware", "memexpose-fw-aarch64.bin"))
    inputs = "%s %s %s %s" % (ko, ctl, kimg, fw)
    try:
        with open(initrd + ".inputs") as f:
            recorded = f.read().rstrip("\n")
    except OSError:
        recorded = None
    stale = not os.path.isfile(initrd) or recorded != inputs
    if not stale:
        for f in (ko, ctl, os.path.join(TOP, "tests/guest/init"),
                  os.path.join(TOP, "tests/guest/build-initramfs.sh"), kimg,
                  fw):
            if f and newer(f, initrd):
                stale = True
    if stale:
        t = time.monotonic()
        log = os.path.join(out, "build.log")
        with open(log, "w") as f:
            rc = subprocess.call(
                ["sh", os.path.join(TOP, "tests/guest/build-initramfs.sh"),
                 initrd], stdout=f, stderr=subprocess.STDOUT)
        if rc != 0:
            with open(log, errors="replace") as f:
                sys.stderr.write(f.read())
            raise DemoFailed("building the initramfs failed (see %s)" % log)
        with open(initrd + ".inputs", "w") as f:
            f.write(inputs + "\n")
        say("rebuilt the guest initramfs %s" % os.path.relpath(initrd, TOP),
            time.monotonic() - t)
    return initrd


def check(g, cmd, timeout=CMD_TIMEOUT):
    rc, out = g.run(cmd, timeout=timeout)
    if rc != 0:
        raise DemoFailed("%s: %r exited %d:\n%s" % (g.name, cmd, rc, out))
    return out


def info(g):
    out = check(g, "%s info" % CTL)
    kv = {}
    for line in out.splitlines():
        m = re.match(r"^([a-z-]+): (.*)$", line.strip())
        if m:
            kv.setdefault(m.group(1), m.group(2))
    return kv


def wait_link(g, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        kv = info(g)
        if kv.get("link") == "up":
            return kv
        if time.monotonic() > deadline:
            raise DemoFailed("%s: link not up after %ds; memexpose-ctl info:"
                             " %s" % (g.name, timeout, kv))
        time.sleep(0.2)


def decode_hexdump(text):
    """memexpose-ctl read output ("ADDR  xx xx ...  |ascii|") -> bytes."""
    data = bytearray()
    for line in text.splitlines():
        m = re.match(r"^[0-9a-f]{8,16} (.*?)  \|", line)
        if not m:
            continue
        data += bytes(int(h, 16) for h in m.group(1).split())
    return bytes(data)


def load_driver(g):
    check(g, "insmod %s && i=0; while [ ! -e /dev/memexpose0 ] && "
          "[ $i -lt 100 ]; do usleep 50000; i=$((i+1)); done; "
          "[ -e /dev/memexpose0 ]" % KO)


def demo(workdir, kernel, initrd):
    sock = os.path.join(workdir, "link.sock")
    a = Guest("A", os.path.join(workdir, "A"), kernel, initrd, sock,
              role="server", mem=RAM, export="0+256M:rw",
              window_size="256M", extra_append=APPEND)
    b = Guest("B", os.path.join(workdir, "B"), kernel, initrd, sock,
              role="client", mem=RAM, export="0+256M:rw", window_size="1G",
              extra_append=APPEND)
    guests = (a, b)
    global STARTED
    STARTED = True
    try:
        # 1. Boot, driver, link.
        say("booting guest A (exporter, link server) and guest B "
            "(link client), %s RAM each, %s ..." % (RAM, a.accel.upper()))
        t = time.monotonic()
        a.start()
        b.start()
        a.boot(BOOT_TIMEOUT)
        b.boot(BOOT_TIMEOUT)
        for g in guests:
            load_driver(g)
        ia, ib = wait_link(a), wait_link(b)
        if ia.get("peer") != "B" or ib.get("peer") != "A":
            raise DemoFailed("unexpected peers: A sees %r, B sees %r"
                             % (ia.get("peer"), ib.get("peer")))
        say("both guests up (A booted in %.1fs, B in %.1fs), memexpose.ko "
            "loaded; link up: A sees peer \"%s\", B sees peer \"%s\""
            % (a.boot_seconds, b.boot_seconds, ia["peer"], ib["peer"]),
            time.monotonic() - t)

        # 2. A writes into its own RAM through /dev/mem.
        t = time.monotonic()
        check(a, "printf '%s' | dd of=/dev/mem bs=1 seek=$((0x%x)) "
              "conv=notrunc 2>/dev/null" % (MESSAGE, ADDR))
        say("A: writes \"%s\" into its own RAM at 0x%x (dd to /dev/mem in A)"
            % (MESSAGE, ADDR), time.monotonic() - t)

        # 3. B reads it through its window, zero-copy.
        before_b = b.counters(["forwarded-reads", "forwarded-writes"])
        before_a = a.counters(["served-reads"])
        t = time.monotonic()
        out = check(b, "%s read 0x%x %d" % (CTL, ADDR, len(MESSAGE)))
        took = time.monotonic() - t
        after_b = b.counters(["forwarded-reads", "forwarded-writes",
                              "mapped-bytes"])
        after_a = a.counters(["served-reads"])
        got = decode_hexdump(out)
        fwd = after_b["forwarded-reads"] - before_b["forwarded-reads"]
        served = after_a["served-reads"] - before_a["served-reads"]
        shown = got.decode("ascii", errors="replace")
        say("B: reads A's RAM at 0x%x through /dev/memexpose0: \"%s\"  "
            "(zero-copy: forwarded reads %d, %d MiB of A's RAM mapped)"
            % (ADDR, shown, fwd, after_b["mapped-bytes"] >> 20), took)
        if got != MESSAGE.encode():
            raise DemoFailed("B read %r at 0x%x, expected %r; memexpose-ctl "
                             "read printed:\n%s" % (got, ADDR,
                                                    MESSAGE.encode(), out))
        if fwd or served:
            raise DemoFailed("not zero-copy: B's QEMU forwarded %d read(s), "
                             "A's QEMU served %d" % (fwd, served))

        # 4. B rings A's doorbell; A is already waiting for it.
        sent0 = b.qom_get("doorbells-sent")
        recv0 = a.qom_get("doorbells-received")
        result = {}

        def waiter():
            try:
                result["out"] = a.run("%s doorbell wait 5000" % CTL,
                                      timeout=CMD_TIMEOUT)
            except Exception as e:          # reported by the main thread
                result["error"] = e
            result["t"] = time.monotonic()

        th = threading.Thread(target=waiter, name="A-doorbell-wait",
                              daemon=True)
        th.start()
        time.sleep(0.3)                     # let A's wait open the device
        t = time.monotonic()
        check(b, "%s doorbell send %d '%s'" % (CTL, VECTOR, REPLY))
        say("B: rings A's doorbell %d with \"%s\"" % (VECTOR, REPLY),
            time.monotonic() - t)
        th.join(CMD_TIMEOUT + 5)
        if th.is_alive():
            raise DemoFailed("A: doorbell wait did not return")
        if "error" in result:
            raise DemoFailed("A: doorbell wait: %s" % result["error"])
        rc, out = result["out"]
        if rc != 0:
            raise DemoFailed("A: doorbell wait exited %d:\n%s" % (rc, out))
        m = re.search(r"^vector (\d+): (.*)$", out, re.M)
        if not m:
            raise DemoFailed("A: no doorbell in the output of doorbell "
                             "wait:\n%s" % out)
        say("A: doorbell %s: \"%s\"  (%s from B's send to A's wait "
            "returning, seen from the host)"
            % (m.group(1), m.group(2), fmt_ms(result["t"] - t)))
        if int(m.group(1)) != VECTOR or m.group(2) != REPLY:
            raise DemoFailed("A received vector %s %r, expected vector %d "
                             "%r" % (m.group(1), m.group(2), VECTOR, REPLY))
        sent = b.qom_get("doorbells-sent") - sent0
        recv = a.qom_get("doorbells-received") - recv0
        if sent != 1 or recv != 1:
            raise DemoFailed("doorbell counters: B sent %d, A received %d "
                             "(expected 1 each)" % (sent, recv))
    finally:
        for g in guests:
            g.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir",
                    default=os.path.join(TOP, "build", "guest", "demo"))
    args = ap.parse_args()
    harness.install_signal_handlers()
    drv = os.path.join(TOP, "linux-driver")
    ko = os.environ.get("MEMEXPOSE_KO", os.path.join(drv, "memexpose.ko"))
    ctl = os.environ.get("MEMEXPOSE_CTL",
                         os.path.join(drv, "tools", "memexpose-ctl"))
    qemu = os.environ.get("MEMEXPOSE_QEMU", harness.DEFAULT_QEMU)
    try:
        if not os.access(qemu, os.X_OK):
            raise DemoFailed("no QEMU at %s (make qemu)" % qemu)
        for f in (ko, ctl):
            if not os.path.isfile(f):
                raise DemoFailed("%s is missing (make driver)" % f)
        initrd = ensure_initramfs(ko, ctl)
        kernel = harness.newest_kernel()
        shutil.rmtree(args.workdir, ignore_errors=True)
        os.makedirs(args.workdir)
        demo(args.workdir, kernel, initrd)
    except (DemoFailed, GuestError, OSError, subprocess.SubprocessError) as e:
        print("[%5.1fs] FAILED: %s" % (time.monotonic() - T0, e),
              file=sys.stderr, flush=True)
        if STARTED:
            print("demo: failed; guests stopped; serial consoles and QEMU "
                  "logs in %s" % os.path.relpath(args.workdir, TOP),
                  file=sys.stderr, flush=True)
        return 1
    say("done: B read A's RAM zero-copy and A got B's doorbell; guests "
        "stopped (logs in %s)" % os.path.relpath(args.workdir, TOP))
    return 0


if __name__ == "__main__":
    sys.exit(main())
