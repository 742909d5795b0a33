#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""memexpose slave boot with real parts: an x86_64 Linux master (TCG,
memexpose-pci, memexpose.ko, memexpose-ctl) boots an aarch64 virt slave
(TCG, memexpose-sysbus, boot-target=on, no firmware of its own) with the
bare-metal test firmware of tests/firmware/aarch64.

    tests/guest/amp.py --initrd INITRD [--tap] [--workdir DIR]

Without --tap it prints a transcript (make demo-amp); with --tap it prints
TAP for make check.  Either way it exits non-zero on the first failure.

Steps: the slave waits; the master loads the firmware into the slave's RAM
through its window (memexpose-ctl load) and starts it (memexpose-ctl boot
with x0 = the slave's memexpose registers, x1 = its PL011, x2 = a cookie);
the firmware prints a line on the slave's UART and rings doorbell 0 back
with the cookie in the payload; then RESET, a second load and BOOT with
another cookie, and HALT.  Environment: MEMEXPOSE_QEMU (x86_64),
MEMEXPOSE_QEMU_AARCH64, MEMEXPOSE_FW (the firmware .bin, the one in the
initramfs), MEMEXPOSE_BOOT_TIMEOUT (120 s).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import zlib

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Guest, GuestError  # noqa: E402
from checks import Failed  # noqa: E402

TOP = harness.TOP
QEMU_ARM = os.environ.get("MEMEXPOSE_QEMU_AARCH64",
                          harness.DEFAULT_QEMU_AARCH64)
BOOT_TIMEOUT = float(os.environ.get("MEMEXPOSE_BOOT_TIMEOUT", "120"))
FW_IN_GUEST = "/memexpose-fw-aarch64.bin"
FW_ENTRY = 0x40100000           # where the firmware is linked to run
SLAVE_RAM = 0x40000000          # virt's RAM
SLAVE_MX_REGS = 0x0c000000      # first device on virt's platform bus
SLAVE_UART = 0x09000000         # virt's PL011


class Slave:
    """The aarch64 virt boot target: no firmware, CPUs waiting for BOOT."""

    def __init__(self, workdir, link_sock):
        self.workdir = workdir
        self.uart = os.path.join(workdir, "slave-uart.log")
        self.stderr = os.path.join(workdir, "slave.stderr")
        self.argv = [
            QEMU_ARM, "-name", "mx-slave",
            "-M", "virt", "-cpu", "cortex-a57", "-m", "128M",
            "-object", "memory-backend-memfd,id=ram,size=128M,share=on",
            "-machine", "memory-backend=ram", "-accel", "tcg",
            "-nodefaults", "-display", "none", "-monitor", "none",
            "-serial", "file:" + self.uart,
            "-chardev", "socket,id=mxlink,path=%s,server=on,wait=off"
            % link_sock,
            "-device", "memexpose-sysbus,id=mx,chardev=mxlink,name=slave,"
            "boot-target=on,export=0x%x+128M:rw" % SLAVE_RAM,
        ]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=open(self.stderr, "wb"),
            start_new_session=True, preexec_fn=harness._set_pdeathsig)

    def uart_text(self):
        try:
            with open(self.uart, errors="replace") as f:
                return f.read().replace("\r", "")
        except FileNotFoundError:
            return ""

    def wait_uart(self, text, count=1, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.uart_text().count(text) >= count:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise Failed("slave UART: no %r (x%d) within %ss; it shows:\n%s"
                     % (text, count, timeout, self.uart_text()))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Reporter:
    def __init__(self, tap):
        self.tap = tap
        self.n = 0
        self.t0 = time.monotonic()

    def step(self, what):
        if not self.tap:
            print("[%5.1fs] %s" % (time.monotonic() - self.t0, what),
                  flush=True)

    def show(self, text):
        if not self.tap:
            for line in text.splitlines():
                print("          | " + line, flush=True)

    def ok(self, what):
        self.n += 1
        if self.tap:
            print("ok %d - %s" % (self.n, what), flush=True)

    def fail(self, what, why):
        self.n += 1
        if self.tap:
            print("not ok %d - %s" % (self.n, what))
            for line in str(why).splitlines():
                print("# " + line)
        else:
            print("FAILED: %s: %s" % (what, why))
        sys.stdout.flush()


def ctl(g, args, timeout=60):
    rc, out = g.run("memexpose-ctl " + args, timeout=timeout)
    if rc != 0:
        raise Failed("memexpose-ctl %s exited %d:\n%s" % (args, rc, out))
    return out


def boot_and_check(rep, master, slave, cookie, count):
    out = ctl(master, "boot 0x%x 0x%x 0x%x 0x%x"
              % (FW_ENTRY, SLAVE_MX_REGS, SLAVE_UART, cookie))
    rep.show(out)
    want = "memexpose-fw: booted, cookie 0x%016x" % cookie
    out = ctl(master, "doorbell wait 30000", timeout=40)
    rep.show(out)
    if out.strip() != "vector 0: " + want:
        raise Failed("doorbell payload %r, expected %r" % (out, want))
    slave.wait_uart("memexpose-fw: hello from the aarch64 slave, cookie "
                    "0x%016x\n" % cookie)
    slave.wait_uart("memexpose-fw: doorbell sent\n", count)
    rep.show("slave UART: " + [line for line in slave.uart_text().splitlines()
                               if "0x%016x" % cookie in line][0])
    out = ctl(master, "wait-boot-state running 10000", timeout=20)
    rep.show(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--tap", action="store_true")
    ap.add_argument("--workdir")
    opts = ap.parse_args()
    harness.install_signal_handlers()
    rep = Reporter(opts.tap)
    workdir = opts.workdir or tempfile.mkdtemp(prefix="mx-amp-")
    os.makedirs(workdir, exist_ok=True)
    sock = os.path.join(workdir, "link.sock")
    if os.path.exists(sock):
        os.unlink(sock)

    slave = Slave(workdir, sock)
    master = Guest("master", os.path.join(workdir, "master"),
                   harness.newest_kernel(), opts.initrd, sock, role="client",
                   export="0+256M:ro")
    steps = [
        ("the slave waits for BOOT; the x86_64 master boots Linux and "
         "links to it", None),
        ("the master sees a boot target in state waiting", None),
        ("load the firmware into the slave's RAM through the window", None),
        ("BOOT: the firmware prints on the slave's UART and rings back",
         None),
        ("an invalid BOOT (already running) is refused, the slave keeps "
         "running", None),
        ("RESET returns the slave to waiting", None),
        ("load and BOOT again with another cookie", None),
        ("HALT stops the slave", None),
    ]
    current = None
    try:
        current = steps[0][0]
        rep.step("slave: " + " ".join(slave.argv[:12]) + " ... boot-target=on")
        slave.start()
        rep.step("master: x86_64 Linux with memexpose-pci (TCG)")
        master.start()
        master.boot(BOOT_TIMEOUT)
        master.check("insmod /memexpose.ko")
        master.wait_link(True, 30)
        rep.ok(current)

        current = steps[1][0]
        out = ctl(master, "info")
        rep.show("\n".join(line for line in out.splitlines()
                           if line.startswith(("link", "peer"))))
        if "peer-boot-target: yes" not in out:
            raise Failed("the slave is not reported as a boot target:\n"
                         + out)
        rep.show(ctl(master, "wait-boot-state waiting 10000", timeout=20))
        rep.ok(current)

        current = steps[2][0]
        rep.step("master$ memexpose-ctl load %s 0x%x" % (FW_IN_GUEST,
                                                        FW_ENTRY))
        rep.show(ctl(master, "load %s 0x%x" % (FW_IN_GUEST, FW_ENTRY)))
        with open(os.environ["MEMEXPOSE_FW"], "rb") as f:
            fw = f.read()
        want = "crc32: 0x%08x" % zlib.crc32(fw)
        ctl(master, "base 0x%x" % SLAVE_RAM)
        crc = ctl(master, "crc 0x%x %d" % (FW_ENTRY - SLAVE_RAM, len(fw)))
        rep.show("read back through the window: %s (the image's: %s)"
                 % (crc.strip(), want))
        if crc.strip() != want:
            raise Failed("the slave's RAM does not hold the image")
        rep.ok(current)

        current = steps[3][0]
        rep.step("master$ memexpose-ctl boot 0x%x 0x%x 0x%x 0xc0ffee"
                 % (FW_ENTRY, SLAVE_MX_REGS, SLAVE_UART))
        boot_and_check(rep, master, slave, 0xc0ffee, 1)
        rep.ok(current)

        current = steps[4][0]
        rc, out = master.run("memexpose-ctl boot 0x%x" % FW_ENTRY)
        rep.show(out)
        if rc == 0 or "Device or resource busy" not in out:
            raise Failed("a second BOOT was not refused as busy: %d %s"
                         % (rc, out))
        rep.show(ctl(master, "boot-state"))
        rep.ok(current)

        current = steps[5][0]
        rep.step("master$ memexpose-ctl reset")
        ctl(master, "reset")
        rep.show(ctl(master, "wait-boot-state waiting 10000", timeout=20))
        rep.ok(current)

        current = steps[6][0]
        ctl(master, "load %s 0x%x" % (FW_IN_GUEST, FW_ENTRY))
        boot_and_check(rep, master, slave, 0xfeedface, 2)
        rep.ok(current)

        current = steps[7][0]
        rep.step("master$ memexpose-ctl halt")
        ctl(master, "halt")
        rep.show(ctl(master, "wait-boot-state halted 10000", timeout=20))
        rep.ok(current)
    except (Failed, GuestError, OSError) as e:
        rep.fail(current, e)
        if not opts.tap:
            print("logs in %s" % workdir)
        return 1
    finally:
        master.kill()
        slave.stop()
    if opts.tap:
        print("1..%d" % rep.n)
    else:
        rep.step("done: the x86_64 master booted the aarch64 slave twice")
    return 0


if __name__ == "__main__":
    sys.exit(main())
