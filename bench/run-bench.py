#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""memexpose benchmark: two Linux guests (TCG) linked by memexpose-pci and,
in the same two QEMU processes, by QEMU's ivshmem-doorbell through
ivshmem-server.  Everything is measured side by side in one run; what
counts is the ratios.

    run-bench.py --initrd build/bench/initramfs.cpio.gz [--out build/bench]

1. copy: B memcpy's SIZE bytes of A's reserved RAM (memmap=96M$0x8000000)
   out of its window (zero-copy mapping) into a local buffer, against B
   copying between two local buffers; alternately, REPS times each.
   Ratio of the medians, target >= 0.9.
2. forwarded read: B's window base is moved to A's memexpose register BAR
   (MMIO: never mapped, always forwarded) and B makes COUNT timed
   volatile 8-byte loads of A's PEER_NAME register; p50 and p99.
3. doorbell round trip: A rings B on vector 0, B's waiter (blocked in
   the kernel) rings back, A's waiter measures; memexpose
   (MEMEXPOSE_IOC_SEND/RECV_DOORBELL) against ivshmem-doorbell with
   bench/guest/ivshmem-bench (write/read), ROUNDS rounds alternating.
   Ratio of the p50s (and of the p99s), target <= 1.
4. host side: a VM of its own (no guest kernel, q35, 512 MiB shared)
   reached by host programs on libmemexpose: 8-byte reads forwarded by
   the library (RAM and MMIO targets) against the unix-socket floor,
   interleaved (target <= 2); memexpose-host dump of 256 MiB (zero-copy)
   against the host copying a 256 MiB buffer to the same file system
   (target >= 0.8) and against QMP pmemsave of the same range
   (reported).  HOST_REPS rounds alternating, medians.

Every figure is checked before it is reported (the copied bytes against
A's RAM as the host sees it, the zero-copy and forwarding counters, the
value read, the sequence of round trips); a failed check ends the run
with status 1 and no results file.  Writes OUT/results.md,
OUT/results.json (all samples) and, with gnuplot, OUT/results.png.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import zlib

sys.dont_write_bytecode = True
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "guest"))
import harness  # noqa: E402
from harness import Guest  # noqa: E402
from checks import file_crc  # noqa: E402

RAM = "256M"
APPEND = "memmap=96M$0x8000000"
RESERVED = 0x8000000
COPY_SIZE = int(os.environ.get("MXBENCH_COPY_MIB", "32")) << 20
COPY_REPS = int(os.environ.get("MXBENCH_COPY_REPS", "21"))
LOAD_COUNT = int(os.environ.get("MXBENCH_LOAD_COUNT", "2000"))
DB_COUNT = int(os.environ.get("MXBENCH_DB_COUNT", "1000"))
FLOOR_COUNT = int(os.environ.get("MXBENCH_FLOOR_COUNT", "1000"))
DB_WARMUP = 20
DB_ROUNDS = int(os.environ.get("MXBENCH_DB_ROUNDS", "6"))
BOOT_TIMEOUT = float(os.environ.get("MEMEXPOSE_BOOT_TIMEOUT", "180"))
PEER_NAME_OFF = 0x300           # memexpose register block: PEER_NAME
HOST_REPS = int(os.environ.get("MXBENCH_HOST_REPS", "5"))
HOST_DUMP = (0x100000, 256 << 20)   # above q35's holes below 1 MiB
HOST_READ_RAM = 0x1000000       # RAM the library never maps: forwarded
HPET_COUNTER = 0xfed000f0       # q35's HPET main counter: MMIO
BIOS_ROM = 0xfffc0000           # pc.bios: RAM-backed ROM, forwarded
BIOS_ROM_SIZE = 0x40000
MEMEXPOSE_ID = ("0x1b36", "0x00f0")
MX = "/dev/memexpose0"
IVS = "/dev/ivshmem-bench"


class BenchError(Exception):
    pass


def say(msg):
    print("bench: " + msg, flush=True)


def expect(cond, msg):
    if not cond:
        raise BenchError(msg)


def pct(samples, p):
    """Nearest-rank percentile (p in 0..100) of a list of numbers."""
    s = sorted(samples)
    if not s:
        raise BenchError("no samples")
    k = max(1, -(-len(s) * p // 100))      # ceil(n * p / 100), at least 1
    return s[min(len(s), int(k)) - 1]


def median(samples):
    s = sorted(samples)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def parse(out):
    """mxbench output: 'key: value' lines and 'NAME-samples: v v v'."""
    kv, samples = {}, {}
    for line in out.splitlines():
        key, sep, val = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key.endswith("-samples"):
            samples[key[:-8]] = [int(x) for x in val.split()]
        else:
            kv[key] = val.strip()
    return kv, samples


def thread_switches(pid):
    """{thread name: voluntary context switches} of a process: how often
    its threads went to sleep (and were woken)."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                st = dict(l.split(":", 1) for l in f.read().splitlines()
                          if ":" in l)
        except OSError:
            continue
        name = st.get("Name", "?").strip()
        out[name] = out.get(name, 0) + int(
            st.get("voluntary_ctxt_switches", "0"))
    return out


class Qmp:
    """A QMP connection to a QEMU the bench started itself."""

    def __init__(self, path, proc, timeout=20):
        import socket
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise BenchError("QEMU exited with %d" % proc.returncode)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise BenchError("no QMP socket at %s" % path)
                time.sleep(0.05)
        s.settimeout(120)
        self.f = s.makefile("rw")
        self.sock = s
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, command, **arguments):
        req = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        self.f.write(json.dumps(req) + "\n")
        self.f.flush()
        while True:
            msg = json.loads(self.f.readline())
            if "event" in msg:
                continue
            if "error" in msg:
                raise BenchError("QMP %s: %s" % (command, msg["error"]))
            return msg["return"]

    def qom(self, prop):
        return self.cmd("qom-get", path="/machine/peripheral/mx",
                        property=prop)

    def close(self):
        self.sock.close()


class Bench:
    def __init__(self, args):
        self.args = args
        self.out = args.out
        self.work = os.path.join(self.out, "work")
        self.kernel = args.kernel or harness.newest_kernel()
        self.server = None
        self.a = self.b = None
        self.res = {}
        self.floor_ns = {}
        self.switches = {}
        self.log_lines = []
        self.load_at_start = " ".join("%.2f" % x for x in os.getloadavg())

    # ---- setup ---------------------------------------------------------

    def start_ivshmem_server(self):
        self.ivs_sock = os.path.join(self.work, "ivshmem.sock")
        self.shm_name = "memexpose-bench-%d" % os.getpid()
        # Shared memory left by an earlier run that was killed.
        for name in os.listdir("/dev/shm"):
            pid = name[len("memexpose-bench-"):]
            if name.startswith("memexpose-bench-") and pid.isdigit() and \
                    not os.path.exists("/proc/" + pid):
                os.unlink("/dev/shm/" + name)
        try:
            os.unlink(self.ivs_sock)
        except FileNotFoundError:
            pass
        argv = [self.args.ivshmem_server, "-F", "-v", "-S", self.ivs_sock,
                "-M", self.shm_name, "-l", "1M", "-n", "1"]
        self.log_lines.append("ivshmem-server: " + " ".join(argv))
        self.server_log = open(os.path.join(self.work, "ivshmem-server.log"),
                               "wb")
        self.server = subprocess.Popen(argv, stdout=self.server_log,
                                       stderr=subprocess.STDOUT,
                                       preexec_fn=harness._set_pdeathsig)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.ivs_sock):
            if self.server.poll() is not None:
                raise BenchError("ivshmem-server exited (status %s), see %s"
                                 % (self.server.returncode,
                                    self.server_log.name))
            if time.monotonic() > deadline:
                raise BenchError("ivshmem-server did not create %s"
                                 % self.ivs_sock)
            time.sleep(0.05)

    def stop_ivshmem_server(self):
        if self.server is None:
            return
        if self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.server = None
        self.server_log.close()
        for p in ("/dev/shm/" + self.shm_name, self.ivs_sock):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass

    @staticmethod
    def thread_names(name):
        # The same -name as the harness's, plus host thread names (for
        # the wakeup counts): a later -name overrides the earlier one.
        return ["-name", "mx-guest-%s,debug-threads=on" % name]

    def boot(self):
        sock = os.path.join(self.work, "link.sock")
        try:
            os.unlink(sock)
        except FileNotFoundError:
            pass
        ivs = ["-chardev", "socket,id=ivs,path=%s" % self.ivs_sock,
               "-device", "ivshmem-doorbell,id=ivs,chardev=ivs,vectors=1"]
        # A also exports its 32-bit PCI MMIO window read-only, so that B
        # can reach A's memexpose registers (forwarded, never mapped), and
        # its BIOS ROM (RAM-backed, not a descriptor: forwarded too).
        self.a = Guest("A", os.path.join(self.work, "A"), self.kernel,
                       self.args.initrd, sock, role="server", mem=RAM,
                       export="0+256M:rw;0xe0000000+0x1ec00000:ro;"
                              "0x%x+0x%x:ro" % (BIOS_ROM, BIOS_ROM_SIZE),
                       window_size="256M", extra_append=APPEND,
                       extra_args=ivs + self.thread_names("A"),
                       log=self.log_lines.append)
        self.b = Guest("B", os.path.join(self.work, "B"), self.kernel,
                       self.args.initrd, sock, role="client", mem=RAM,
                       export="0+256M:rw", window_size="1G",
                       extra_append=APPEND,
                       extra_args=ivs + self.thread_names("B"),
                       log=self.log_lines.append)
        t0 = time.monotonic()
        self.a.start()
        self.b.start()
        self.a.boot(BOOT_TIMEOUT)
        self.b.boot(BOOT_TIMEOUT)
        say("booted A in %.1fs, B in %.1fs (TCG, in parallel)"
            % (self.a.boot_seconds, self.b.boot_seconds))
        for g in (self.a, self.b):
            g.check("insmod /memexpose.ko && insmod /ivshmem-bench.ko && "
                    "i=0; while [ ! -e %s ] || [ ! -e %s ]; do "
                    "[ $i -ge 100 ] && exit 1; usleep 50000; i=$((i+1)); "
                    "done" % (MX, IVS), timeout=60)
        for g in (self.a, self.b):
            self.wait_for(g, "link up", lambda: g.qom_get("link-up"), 30)
        # Zero-copy: all of A's RAM mapped into B's window.
        self.wait_for(self.b, "A's RAM mapped",
                      lambda: self.b.qom_get("mapped-bytes") >= 256 << 20,
                      30)
        self.res["boot_seconds"] = time.monotonic() - t0
        self.res["clocksource"] = {
            g.name: g.check("cat /sys/devices/system/clocksource/"
                            "clocksource0/current_clocksource").strip()
            for g in (self.a, self.b)}
        self.res["guest_kernel"] = self.b.check("uname -r").strip()

    def quit_guests(self):
        for g in (self.a, self.b):
            if g:
                g.quit()

    def boot_loop(self, count):
        """Boot both guests @count times in a row.  Every boot must bring
        the link up exactly once on each side (no drop, no reconnect) and
        time nothing out, while both guests boot at the same time."""
        secs = []
        for i in range(1, count + 1):
            logs = {}
            for name in ("A", "B"):
                path = os.path.join(self.work, name, "qemu.stderr")
                try:
                    logs[name] = os.path.getsize(path)
                except OSError:
                    logs[name] = 0
            self.boot()
            for g in (self.a, self.b):
                ups, t = g.qom_get("link-ups"), g.qom_get("timeouts")
                with open(g.stderr_path, errors="replace") as f:
                    f.seek(logs[g.name])
                    text = f.read()
                drops = [ln for ln in text.splitlines()
                         if "link down" in ln or "closing link" in ln]
                expect(ups == 1 and t == 0 and not drops,
                       "boot %d: %s: %d link-ups, %d timeouts%s"
                       % (i, g.name, ups, t,
                          "".join("\n  " + ln for ln in drops)))
            secs.append(self.res["boot_seconds"])
            say("boot %d/%d: both up, link up once each, A's RAM mapped"
                " in B, %.1fs" % (i, count, secs[-1]))
            self.quit_guests()
        self.res["boots"] = {"count": count, "link_drops": 0, "timeouts": 0,
                             "seconds_p50": median(secs),
                             "seconds_max": max(secs)}
        with open(os.path.join(self.out, "boots.json"), "w") as f:
            json.dump(self.res["boots"], f, indent=1)
        say("%d boots of both guests: 0 link drops, 0 timeouts (link up and"
            " mapped in %.1fs at the median, %.1fs at worst)"
            % (count, median(secs), max(secs)))

    def wait_for(self, g, what, pred, timeout):
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                g.fail("timed out waiting for %s" % what)
            time.sleep(0.2)

    def kill(self):
        for g in (self.a, self.b):
            if g:
                g.kill()
        self.stop_ivshmem_server()

    # ---- 1. copy bandwidth ------------------------------------------

    def bench_copy(self):
        b, a = self.b, self.a
        size = COPY_SIZE
        # A pattern in A's reserved RAM (written by B through the window;
        # the host reads it back from A below).
        b.check("memexpose-ctl fill 0x%x 0x%x 4242" % (RESERVED, size),
                timeout=120)
        before = b.counters(["forwarded-reads", "forwarded-writes",
                             "mapped-bytes"])
        t0 = time.monotonic()
        out = b.check("mxbench copy %s 0x%x 0x%x %d"
                      % (MX, RESERVED, size, COPY_REPS), timeout=300)
        secs = time.monotonic() - t0
        after = b.counters(["forwarded-reads", "forwarded-writes",
                            "mapped-bytes"])
        kv, s = parse(out)
        path = os.path.join(self.work, "pmem-A.bin")
        a.pmemsave(RESERVED, size, path, timeout=60)
        host_crc = file_crc(path)
        os.unlink(path)
        win_crc = int(kv.get("window-crc32", "-1"), 16)
        fr = after["forwarded-reads"] - before["forwarded-reads"]
        expect(win_crc == host_crc,
               "copy: CRC of the bytes copied out of the window 0x%08x != "
               "CRC of A's RAM 0x%08x" % (win_crc, host_crc))
        expect(host_crc != zlib.crc32(bytes(size)) & 0xffffffff,
               "copy: A's RAM is all zeroes")
        expect(fr <= 16, "copy: not zero-copy, %d forwarded reads" % fr)
        for k in ("window-mbps", "local-mbps", "alias-window-mbps",
                  "alias-local-mbps"):
            expect(len(s.get(k, [])) == COPY_REPS,
                   "copy: wrong number of samples:\n%s" % out)
        w, loc = median(s["window-mbps"]), median(s["local-mbps"])
        aw, al = (median(s["alias-window-mbps"]),
                  median(s["alias-local-mbps"]))
        self.res["copy"] = {
            "size": size, "reps": COPY_REPS, "seconds": secs,
            "distance": kv.get("distance"),
            "alias_distance": kv.get("alias-distance"),
            "window_mbps": s["window-mbps"], "local_mbps": s["local-mbps"],
            "window_median": w, "local_median": loc, "ratio": w / loc,
            "alias_window_mbps": s["alias-window-mbps"],
            "alias_local_mbps": s["alias-local-mbps"],
            "alias_window_median": aw, "alias_local_median": al,
            "alias_ratio": aw / al,
            "faults": {k: int(kv.get(k, "-1")) for k in (
                "window-faults", "local-faults", "alias-window-faults",
                "alias-local-faults")},
            "crc32": "0x%08x" % host_crc, "forwarded_reads": fr,
            "mapped_bytes": after["mapped-bytes"],
        }
        say("copy %d MiB x %d: window %.0f MB/s, local %.0f MB/s, ratio "
            "%.3f (CRC 0x%08x checked against A's RAM, %d forwarded reads);"
            " TLB-aliasing placement: %.0f / %.0f MB/s, ratio %.3f"
            % (size >> 20, COPY_REPS, w, loc, w / loc, host_crc, fr, aw, al,
               aw / al))

    # ---- 2. forwarded 8-byte reads -----------------------------------

    def a_register_bar(self):
        """A's memexpose BAR0 address, as A's kernel assigned it."""
        out = self.a.check(
            "for d in /sys/bus/pci/devices/*; do "
            "[ $(cat $d/vendor) = %s ] && [ $(cat $d/device) = %s ] && "
            "head -n 1 $d/resource; done; true" % MEMEXPOSE_ID, timeout=20)
        start = int(out.split()[0], 16)
        expect(start and not start & 0xfff,
               "A's memexpose BAR0 at 0x%x?" % start)
        expect(0xe0000000 <= start < 0xfec00000,
               "A's memexpose BAR0 0x%x is outside the range A exports"
               % start)
        return start

    def bench_load(self):
        a, b = self.a, self.b
        bar0 = self.a_register_bar()
        b.check("memexpose-ctl base 0x%x" % bar0, timeout=20)
        names = ["forwarded-reads", "refused-accesses"]
        b0 = b.counters(names)
        a0 = a.qom_get("served-reads")
        self.floor("unix")
        sw0 = thread_switches(a.proc.pid)
        try:
            out = b.check("mxbench load %s 0x%x %d"
                          % (MX, PEER_NAME_OFF, LOAD_COUNT), timeout=300)
        finally:
            sw1 = thread_switches(a.proc.pid)
            b.check("memexpose-ctl base 0", timeout=20)
        worker = (sw1.get("memexpose-srv", 0) -
                  sw0.get("memexpose-srv", 0)) / LOAD_COUNT
        self.floor("unix")
        b1 = b.counters(names)
        served = a.qom_get("served-reads") - a0
        kv, s = parse(out)
        fr = b1["forwarded-reads"] - b0["forwarded-reads"]
        value = int(kv.get("value", "0"), 16)
        # PEER_NAME of A's device holds B's name, "B", NUL-padded.
        expect(value == 0x42 and kv.get("values-differing") == "0",
               "forwarded read: read 0x%x (%s differing), expected 0x42 "
               "(\"B\", A's PEER_NAME)" % (value,
                                            kv.get("values-differing")))
        expect(fr >= LOAD_COUNT and served >= LOAD_COUNT,
               "forwarded read: %d loads, but B forwarded %d and A served "
               "%d reads" % (LOAD_COUNT, fr, served))
        expect(b1["refused-accesses"] == b0["refused-accesses"],
               "forwarded read: refused accesses")
        ns = s["window-ns"]
        self.res["load"] = {
            "count": LOAD_COUNT, "a_bar0": "0x%x" % bar0,
            "offset": "0x%x" % PEER_NAME_OFF, "value": "0x%016x" % value,
            "forwarded_reads": fr, "served_reads": served,
            "window_ns": ns, "local_ns": s["local-ns"],
            "clock_ns": s["clock-ns"],
            "p50": pct(ns, 50), "p99": pct(ns, 99),
            "local_p50": pct(s["local-ns"], 50),
            "clock_p50": pct(s["clock-ns"], 50),
            "a_worker_wakeups_per_read": worker,
        }
        say("forwarded 8-byte read of A's register (0x%x): p50 %.1f us, p99 "
            "%.1f us (%d loads; local RAM load p50 %d ns, clock %d ns; A's "
            "worker woken %.2f times per read)"
            % (bar0 + PEER_NAME_OFF, pct(ns, 50) / 1e3, pct(ns, 99) / 1e3,
               LOAD_COUNT, pct(s["local-ns"], 50), pct(s["clock-ns"], 50),
               worker))
        self.wait_for(b, "A's RAM mapped again",
                      lambda: b.qom_get("mapped-bytes") >= 256 << 20, 30)
        self.bench_load_ram()

    def bench_load_ram(self):
        """A forwarded read that A serves from memory rather than MMIO:
        A's BIOS ROM (RAM-backed, never handed out as a descriptor)."""
        a, b = self.a, self.b
        f0 = b.qom_get("forwarded-reads")
        a0 = a.qom_get("served-reads")
        self.floor("unix")
        b.check("memexpose-ctl base 0x%x" % BIOS_ROM, timeout=20)
        sw0 = thread_switches(a.proc.pid)
        try:
            out = b.check("mxbench load %s 0 %d" % (MX, LOAD_COUNT),
                          timeout=300)
        finally:
            sw1 = thread_switches(a.proc.pid)
            b.check("memexpose-ctl base 0", timeout=20)
        self.floor("unix")
        # A's worker is not woken for reads of RAM: its I/O thread serves
        # them.
        worker = (sw1.get("memexpose-srv", 0) -
                  sw0.get("memexpose-srv", 0)) / LOAD_COUNT
        fr = b.qom_get("forwarded-reads") - f0
        served = a.qom_get("served-reads") - a0
        kv, s = parse(out)
        expect(kv.get("values-differing") == "0",
               "forwarded RAM read: values differ")
        expect(fr >= LOAD_COUNT and served >= LOAD_COUNT,
               "forwarded RAM read: %d loads, but B forwarded %d and A "
               "served %d reads" % (LOAD_COUNT, fr, served))
        ns = s["window-ns"]
        self.res["load_ram"] = {
            "count": LOAD_COUNT, "addr": "0x%x" % BIOS_ROM,
            "forwarded_reads": fr, "served_reads": served,
            "window_ns": ns, "p50": pct(ns, 50), "p99": pct(ns, 99),
            "a_worker_wakeups_per_read": worker,
        }
        say("forwarded 8-byte read of A's BIOS ROM (0x%x): p50 %.1f us, "
            "p99 %.1f us (%d loads; A's worker woken %.2f times per read)"
            % (BIOS_ROM, pct(ns, 50) / 1e3, pct(ns, 99) / 1e3, LOAD_COUNT,
               worker))

    # ---- the host's own floor ----------------------------------------

    def floor(self, kind):
        """One host-floor run between two host processes, interleaved
        with the guest figures so that both see the same load."""
        out = subprocess.run([self.args.host_floor, kind, str(FLOOR_COUNT)],
                             stdout=subprocess.PIPE, check=True,
                             universal_newlines=True).stdout
        _, s = parse(out)
        expect(len(s.get("rtt", [])) == FLOOR_COUNT,
               "host-floor %s: %d samples" % (kind, len(s.get("rtt", []))))
        self.floor_ns.setdefault(kind, []).extend(s["rtt"])

    def floor_results(self):
        f = {}
        for kind, s in self.floor_ns.items():
            f[kind] = {"p50": pct(s, 50), "p99": pct(s, 99),
                       "samples": len(s)}
        ld, d = self.res["load"], self.res["doorbell"]
        f["forwarded_read_p50_over_unix_p50"] = ld["p50"] / f["unix"]["p50"]
        f["forwarded_ram_read_p50_over_unix_p50"] = (
            self.res["load_ram"]["p50"] / f["unix"]["p50"])
        f["doorbell_p50_over_eventfd_p50"] = (d["memexpose_p50"] /
                                              f["eventfd"]["p50"])
        self.res["floor"] = f
        say("host floor: unix socket round trip p50 %.1f us p99 %.1f us; "
            "eventfd p50 %.1f us p99 %.1f us; forwarded read p50 = %.2f x "
            "unix (RAM target %.2f x), doorbell p50 = %.2f x eventfd"
            % (f["unix"]["p50"] / 1e3, f["unix"]["p99"] / 1e3,
               f["eventfd"]["p50"] / 1e3, f["eventfd"]["p99"] / 1e3,
               f["forwarded_read_p50_over_unix_p50"],
               f["forwarded_ram_read_p50_over_unix_p50"],
               f["doorbell_p50_over_eventfd_p50"]))

    # ---- 4. host side -------------------------------------------------

    def bench_host_side(self):
        """Host programs against a VM of their own, no guest kernel."""
        sock = os.path.join(self.work, "host-vm.sock")
        qmp_path = os.path.join(self.work, "host-vm.qmp")
        argv = [self.args.qemu, "-machine", "q35,memory-backend=ram",
                "-m", "512M", "-display", "none", "-nodefaults",
                "-object", "memory-backend-memfd,id=ram,size=512M,share=on",
                "-chardev", "socket,id=mx,path=%s,server=on,wait=off" % sock,
                "-device", "memexpose-pci,id=mx,name=host-bench,chardev=mx,"
                "export=0+512M:rw;0x%x+1K:ro,trust-peer=on"
                % (HPET_COUNTER & ~0xfff),
                "-qmp", "unix:%s,server=on,wait=off" % qmp_path]
        self.log_lines.append("host-vm: " + " ".join(argv))
        with open(os.path.join(self.work, "host-vm.log"), "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=log)
        try:
            self.host_side(Qmp(qmp_path, proc), sock)
        finally:
            proc.kill()
            proc.wait()

    def host_tool(self, qmp, argv):
        """Run a host program on the VM's link and wait until it is gone
        (the device serves one link at a time)."""
        t0 = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        took = time.monotonic() - t0
        expect(r.returncode == 0, "%s: exit %d: %s" % (
            " ".join(argv), r.returncode, r.stderr.strip()))
        deadline = time.monotonic() + 10
        while qmp.qom("link-up"):
            expect(time.monotonic() < deadline, "the VM kept the link")
            time.sleep(0.02)
        return r.stdout, took

    def host_side(self, qmp, sock):
        h = {"ram_ns": [], "mmio_ns": [], "unix_ns": [], "dump_s": [],
             "copy_s": [], "pmemsave_s": []}
        addr, size = HOST_DUMP
        dump = os.path.join(self.work, "host-dump.bin")
        copy = os.path.join(self.work, "host-copy.bin")
        saved = os.path.join(self.work, "host-pmemsave.bin")
        tool = self.args.memexpose_host
        # A running VM's RAM is populated: fill the range once, untimed
        # (pages of the memfd that were never touched would cost the
        # first reader an allocation each).
        with open(copy, "wb") as f:
            f.write(os.urandom(1 << 20) * (size >> 20))
        self.host_tool(qmp, [tool, "-s", sock, "load", copy, hex(addr)])
        for rep in range(HOST_REPS):
            served = qmp.qom("served-reads")
            for target, key in ((HOST_READ_RAM, "ram_ns"),
                                (HPET_COUNTER, "mmio_ns")):
                out = subprocess.run([self.args.host_floor, "unix",
                                      str(FLOOR_COUNT)], check=True,
                                     capture_output=True, text=True).stdout
                h["unix_ns"] += parse(out)[1]["rtt"]
                out, _ = self.host_tool(qmp, [
                    self.args.host_side, "read", sock, hex(target),
                    str(LOAD_COUNT)])
                h[key] += parse(out)[1]["rtt"]
            got = qmp.qom("served-reads") - served
            expect(got == 2 * (LOAD_COUNT + 100),
                   "the VM served %d reads, not %d: not all forwarded"
                   % (got, 2 * (LOAD_COUNT + 100)))
            # Dump, the host's own copy, pmemsave: the same 256 MiB.
            served = qmp.qom("served-reads")
            _, took = self.host_tool(qmp, [tool, "-s", sock, "dump",
                                           hex(addr), str(size), dump])
            h["dump_s"].append(took)
            expect(qmp.qom("served-reads") == served,
                   "the dump was not zero-copy")
            out = subprocess.run([self.args.host_side, "copy", str(size),
                                  copy], check=True, capture_output=True,
                                 text=True).stdout
            h["copy_s"].append(float(parse(out)[0]["seconds"]))
            t0 = time.monotonic()
            qmp.cmd("pmemsave", val=addr, size=size, filename=saved)
            h["pmemsave_s"].append(time.monotonic() - t0)
            if rep == 0:
                expect(subprocess.run(["cmp", "-s", dump, saved]).returncode
                       == 0, "the dump differs from pmemsave")
        for f in (dump, copy, saved):
            os.unlink(f)
        unix = pct(h["unix_ns"], 50)
        mb = size / 1e6
        res = {
            "reps": HOST_REPS, "count": LOAD_COUNT, "size": size,
            "ram_p50": pct(h["ram_ns"], 50), "ram_p99": pct(h["ram_ns"], 99),
            "mmio_p50": pct(h["mmio_ns"], 50),
            "mmio_p99": pct(h["mmio_ns"], 99),
            "unix_p50": unix, "unix_p99": pct(h["unix_ns"], 99),
            "dump_mbps": mb / median(h["dump_s"]),
            "copy_mbps": mb / median(h["copy_s"]),
            "pmemsave_mbps": mb / median(h["pmemsave_s"]),
            "samples": h,
        }
        res["ram_over_unix"] = res["ram_p50"] / unix
        res["mmio_over_unix"] = res["mmio_p50"] / unix
        res["dump_over_copy"] = res["dump_mbps"] / res["copy_mbps"]
        res["dump_over_pmemsave"] = res["dump_mbps"] / res["pmemsave_mbps"]
        self.res["host_side"] = res
        say("host side: library forwarded read p50 %.1f us (RAM), %.1f us "
            "(MMIO), unix floor %.1f us: %.2f x, %.2f x; dump %.0f MB/s, "
            "host copy %.0f MB/s, pmemsave %.0f MB/s: %.2f x, %.2f x"
            % (res["ram_p50"] / 1e3, res["mmio_p50"] / 1e3, unix / 1e3,
               res["ram_over_unix"], res["mmio_over_unix"],
               res["dump_mbps"], res["copy_mbps"], res["pmemsave_mbps"],
               res["dump_over_copy"], res["dump_over_pmemsave"]))

    # ---- 3. doorbell round trips -------------------------------------

    def ivposition(self, g):
        kv, _ = parse(g.check("mxbench ivs-pos %s" % IVS, timeout=20))
        pos = int(kv["ivposition"])
        expect(0 <= pos < 0xffff, "%s: IVPosition %d" % (g.name, pos))
        return pos

    def pingpong(self, kind, ida, idb):
        a, b = self.a, self.b
        n = DB_COUNT + DB_WARMUP
        if kind.startswith("memexpose"):
            size = 8 if kind == "memexpose-8" else 0
            pong = "mxbench mx-pong %s %d %d" % (MX, n, size)
            ping = "mxbench mx-ping %s %d %d %d" % (MX, DB_COUNT, DB_WARMUP,
                                                    size)
            c0 = (a.qom_get("doorbells-sent"), b.qom_get("doorbells-sent"))
        else:
            pong = "mxbench ivs-pong %s %d %d" % (IVS, ida, n)
            ping = "mxbench ivs-ping %s %d %d %d" % (IVS, idb, DB_COUNT,
                                                    DB_WARMUP)
        sw0 = {g.name: thread_switches(g.proc.pid) for g in (a, b)}
        b.check("rm -f /tmp/pong; (%s > /tmp/pong 2>&1; echo \"rc=$?\" >> "
                "/tmp/pong) > /dev/null 2>&1 & i=0; until grep -q ready "
                "/tmp/pong; do [ $i -ge 100 ] && exit 1; usleep 20000; "
                "i=$((i+1)); done" % pong, timeout=30)
        try:
            out = a.check(ping, timeout=300)
        finally:
            rc, pout = b.run("i=0; until grep -q rc= /tmp/pong || "
                             "[ $i -ge 50 ]; do usleep 100000; i=$((i+1)); "
                             "done; cat /tmp/pong", timeout=30)
        # Host threads that slept and were woken, per round trip (the
        # serial commands around the ping-pong add a little).
        for g in (a, b):
            sw1 = thread_switches(g.proc.pid)
            acc = self.switches.setdefault(kind, {}).setdefault(g.name, {})
            for t, v in sw1.items():
                acc[t] = acc.get(t, 0) + (v - sw0[g.name].get(t, 0)) / n
        expect("answered %d" % n in pout and "rc=0" in pout,
               "%s: B's waiter did not answer %d doorbells:\n%s"
               % (kind, n, pout))
        kv, s = parse(out)
        rtt = s.get("rtt-ns", [])
        expect(len(rtt) == DB_COUNT, "%s: %d samples:\n%s"
               % (kind, len(rtt), out))
        if kind.startswith("memexpose"):
            sent = (a.qom_get("doorbells-sent") - c0[0],
                    b.qom_get("doorbells-sent") - c0[1])
            expect(sent == (n, n), "%s: doorbells sent %s, expected "
                   "%d each way" % (kind, sent, n))
        else:
            expect(kv.get("irq-count-jumps") == "0",
                   "ivshmem: A saw %s round trips with more or less than "
                   "one interrupt" % kv.get("irq-count-jumps"))
        return rtt

    def bench_doorbells(self):
        ida, idb = self.ivposition(self.a), self.ivposition(self.b)
        expect(ida != idb, "A and B have the same IVPosition %d" % ida)
        kinds = ["memexpose", "ivshmem", "memexpose-8"]
        rtt = {k: [] for k in kinds}
        rounds = []
        for r in range(DB_ROUNDS):
            # Rotate which goes first, so that no kind always follows
            # another.
            order = kinds[r % 3:] + kinds[:r % 3]
            p50s = {}
            self.floor("eventfd")
            self.floor("unix")
            for kind in order:
                s = self.pingpong(kind, ida, idb)
                rtt[kind] += s
                p50s[kind] = pct(s, 50)
            rounds.append(p50s)
            say("doorbell round %d: p50 memexpose %.1f us (8-byte payload "
                "%.1f us), ivshmem %.1f us"
                % (r + 1, p50s["memexpose"] / 1e3,
                   p50s["memexpose-8"] / 1e3, p50s["ivshmem"] / 1e3))
        m, m8, i = rtt["memexpose"], rtt["memexpose-8"], rtt["ivshmem"]
        wakeups = {}
        for k, per in self.switches.items():
            wakeups[k] = {}
            for g, th in per.items():
                wakeups[k][g] = {t: round(v / DB_ROUNDS, 2)
                                 for t, v in sorted(th.items())
                                 if v / DB_ROUNDS >= 0.05}
        self.res["doorbell"] = {
            "thread_wakeups_per_round_trip": wakeups,
            "count_per_round": DB_COUNT, "rounds": DB_ROUNDS,
            "warmup": DB_WARMUP, "ivposition": {"A": ida, "B": idb},
            "memexpose_ns": m, "memexpose8_ns": m8, "ivshmem_ns": i,
            "round_p50": rounds,
            "memexpose_p50": pct(m, 50), "memexpose_p99": pct(m, 99),
            "memexpose8_p50": pct(m8, 50), "memexpose8_p99": pct(m8, 99),
            "ivshmem_p50": pct(i, 50), "ivshmem_p99": pct(i, 99),
            "ratio_p50": pct(m, 50) / pct(i, 50),
            "ratio_p99": pct(m, 99) / pct(i, 99),
            "ratio8_p50": pct(m8, 50) / pct(i, 50),
            "ratio8_p99": pct(m8, 99) / pct(i, 99),
        }
        d = self.res["doorbell"]
        say("doorbell round trip: memexpose p50 %.1f us p99 %.1f us "
            "(8-byte payload p50 %.1f us p99 %.1f us); ivshmem p50 %.1f us "
            "p99 %.1f us; ratio p50 %.3f, p99 %.3f (8-byte payload: %.3f, "
            "%.3f)"
            % (d["memexpose_p50"] / 1e3, d["memexpose_p99"] / 1e3,
               d["memexpose8_p50"] / 1e3, d["memexpose8_p99"] / 1e3,
               d["ivshmem_p50"] / 1e3, d["ivshmem_p99"] / 1e3,
               d["ratio_p50"], d["ratio_p99"], d["ratio8_p50"],
               d["ratio8_p99"]))

    def final_checks(self):
        for g in (self.a, self.b):
            expect(g.alive(), "%s's QEMU exited: %s" % (g.name,
                                                         g.stderr_tail()))
            t = g.qom_get("timeouts")
            expect(t == 0, "%s: %d memexpose requests timed out" % (g.name,
                                                                   t))
            bad = g.check("dmesg | grep -i -E 'oops|bug:|call trace|"
                          "WARNING: CPU|kernel panic' || true", timeout=20)
            expect(not bad.strip(), "%s kernel log:\n%s" % (g.name, bad))

    # ---- output ------------------------------------------------------

    def write_results(self):
        self.floor_results()
        r = self.res
        c, ld, d = r["copy"], r["load"], r["doorbell"]
        hs = r["host_side"]
        host = {
            "cpus": os.cpu_count(),
            "load": " ".join("%.2f" % x for x in os.getloadavg()),
            "kernel": platform.release(),
            "qemu": self.qemu_version(),
        }
        r["host"] = host
        r["date"] = datetime.date.today().isoformat()
        r["load_at_start"] = self.load_at_start
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(r, f, indent=1)

        def us(ns):
            return "%.1f" % (ns / 1e3)

        def verdict(ok):
            return "met" if ok else "**not met**"

        def row(name, s):
            return "| %s | %s | %s | %s | %s | %s |" % (
                name, us(pct(s, 50)), us(pct(s, 90)), us(pct(s, 99)),
                us(max(s)), len(s))

        n_db = d["rounds"] * d["count_per_round"]
        lines = [
            "# memexpose benchmark results",
            "",
            "Written by `make bench` (bench/run-bench.py) on %s.  Host: %d "
            "CPUs, load average %s at the start and %s at the end, kernel "
            "%s; %s; guests: Debian %s, TCG, 1 vCPU, 256 MiB each, "
            "clocksource %s."
            % (r["date"], host["cpus"], self.load_at_start, host["load"],
               host["kernel"], host["qemu"], r["guest_kernel"],
               "/".join(sorted(set(r["clocksource"].values())))),
            "",
            "Absolute numbers on a shared, loaded machine under TCG are "
            "noise; the ratios, measured side by side in one run between "
            "the same two guests, are what counts.",
            "",
            "| figure | memexpose | baseline | ratio | target |",
            "| --- | ---: | ---: | ---: | --- |",
            "| copy bandwidth, median of %d (MB/s) | %.0f (A's RAM through "
            "B's window) | %.0f (B's own RAM) | %.3f | >= 0.9: %s |"
            % (c["reps"], c["window_median"], c["local_median"], c["ratio"],
               verdict(c["ratio"] >= 0.9)),
            "| doorbell round trip p50 (us) | %s | %s (ivshmem-doorbell) "
            "| %.3f | <= 1: %s |"
            % (us(d["memexpose_p50"]), us(d["ivshmem_p50"]), d["ratio_p50"],
               verdict(d["ratio_p50"] <= 1)),
            "| doorbell round trip p99 (us) | %s | %s (ivshmem-doorbell) "
            "| %.3f | <= 1: %s |"
            % (us(d["memexpose_p99"]), us(d["ivshmem_p99"]), d["ratio_p99"],
               verdict(d["ratio_p99"] <= 1)),
            "| doorbell round trip p50, 8-byte payload (us) | %s | %s "
            "(ivshmem-doorbell, no payload) | %.3f | (reported) |"
            % (us(d["memexpose8_p50"]), us(d["ivshmem_p50"]),
               d["ratio8_p50"]),
            "| forwarded 8-byte read p50 / p99 (us) | %s / %s | local RAM "
            "load p50 %d ns | -- | (reported) |"
            % (us(ld["p50"]), us(ld["p99"]), ld["local_p50"]),
            "| forwarded 8-byte read p50 (us), MMIO target | %s | %s (host "
            "unix-socket round trip p50) | %.2f | <= 3: %s |"
            % (us(ld["p50"]), us(r["floor"]["unix"]["p50"]),
               r["floor"]["forwarded_read_p50_over_unix_p50"],
               verdict(r["floor"]["forwarded_read_p50_over_unix_p50"] <= 3)),
            "| forwarded 8-byte read p50 (us), RAM target (A's BIOS ROM) | %s "
            "| %s (host unix-socket round trip p50) | %.2f | <= 3: %s |"
            % (us(r["load_ram"]["p50"]), us(r["floor"]["unix"]["p50"]),
               r["floor"]["forwarded_ram_read_p50_over_unix_p50"],
               verdict(r["floor"]["forwarded_ram_read_p50_over_unix_p50"]
                       <= 3)),
            "| doorbell round trip p50 (us) | %s | %s (host eventfd round "
            "trip p50) | %.2f | (reported) |"
            % (us(d["memexpose_p50"]), us(r["floor"]["eventfd"]["p50"]),
               r["floor"]["doorbell_p50_over_eventfd_p50"]),
            "| host side: libmemexpose forwarded 8-byte read p50 (us), RAM "
            "target | %s | %s (host unix-socket round trip p50) | %.2f | "
            "<= 2: %s |"
            % (us(hs["ram_p50"]), us(hs["unix_p50"]), hs["ram_over_unix"],
               verdict(hs["ram_over_unix"] <= 2)),
            "| host side: libmemexpose forwarded 8-byte read p50 (us), MMIO "
            "target | %s | %s (host unix-socket round trip p50) | %.2f | "
            "(reported) |"
            % (us(hs["mmio_p50"]), us(hs["unix_p50"]), hs["mmio_over_unix"]),
            "| host side: `memexpose-host dump` of 256 MiB (MB/s) | %.0f | "
            "%.0f (the host writing a 256 MiB buffer to the same file "
            "system) | %.2f | >= 0.8: %s |"
            % (hs["dump_mbps"], hs["copy_mbps"], hs["dump_over_copy"],
               verdict(hs["dump_over_copy"] >= 0.8)),
            "| host side: `memexpose-host dump` of 256 MiB (MB/s) | %.0f | "
            "%.0f (QMP pmemsave of the same range) | %.2f | (reported) |"
            % (hs["dump_mbps"], hs["pmemsave_mbps"],
               hs["dump_over_pmemsave"]),
            "",
            "Host floor, between two host processes in the same run, "
            "interleaved with the guest figures: unix-socket round trip "
            "(8 bytes each way) p50 %s us, p99 %s us; eventfd round trip "
            "p50 %s us, p99 %s us (%d samples each)."
            % (us(r["floor"]["unix"]["p50"]), us(r["floor"]["unix"]["p99"]),
               us(r["floor"]["eventfd"]["p50"]),
               us(r["floor"]["eventfd"]["p99"]),
               r["floor"]["unix"]["samples"]),
            "",
            "## 1. Copy bandwidth",
            "",
            "B memcpy's %d MiB of A's reserved RAM (A's guest-physical "
            "0x%x) out of an mmap of `/dev/memexpose0` into a local buffer, "
            "and %d MiB between two local buffers (private anonymous "
            "memory), alternately, %d times each after one untimed copy of "
            "each (mxbench copy).  The bytes copied out of the window have "
            "CRC32 %s, the same as A's RAM read by the host with QMP "
            "pmemsave; B forwarded %d reads meanwhile (zero-copy: %d MiB of "
            "A's RAM mapped in B's window).  Page faults during the timed "
            "copies: %s."
            % (c["size"] >> 20, RESERVED, c["size"] >> 20, c["reps"],
               c["crc32"], c["forwarded_reads"], c["mapped_bytes"] >> 20,
               ", ".join("%s %d" % kv for kv in sorted(c["faults"].items()))),
            "",
            "The window and the local source lie at the same distance from "
            "the destination, on either side of it (%s bytes, an odd number "
            "of pages).  The second pair of rows repeats the measurement "
            "with both sources at a distance of %s bytes, which makes "
            "source and destination pages share entries of QEMU's software "
            "TLB (indexed by page number modulo its power-of-two size): it "
            "shows how much placement alone moves these figures under TCG, "
            "for both sources alike.  Left to mmap and malloc, the window "
            "lands at the aliasing distance and the malloc'd buffers do "
            "not, which would compare TCG's TLB, not the window."
            % (c["distance"], c["alias_distance"]),
            "",
            "| MB/s | min | median | max |",
            "| --- | ---: | ---: | ---: |",
            "| window (A's RAM) | %d | %.0f | %d |"
            % (min(c["window_mbps"]), c["window_median"],
               max(c["window_mbps"])),
            "| local (B's RAM) | %d | %.0f | %d |"
            % (min(c["local_mbps"]), c["local_median"],
               max(c["local_mbps"])),
            "| window, TLB-aliasing placement | %d | %.0f | %d |"
            % (min(c["alias_window_mbps"]), c["alias_window_median"],
               max(c["alias_window_mbps"])),
            "| local, TLB-aliasing placement | %d | %.0f | %d |"
            % (min(c["alias_local_mbps"]), c["alias_local_median"],
               max(c["alias_local_mbps"])),
            "",
            "Ratio window/local: %.3f; with the aliasing placement %.3f."
            % (c["ratio"], c["alias_ratio"]),
            "",
            "## 2. Forwarded 8-byte read",
            "",
            "B's window base is set to A's memexpose register BAR (0x%x, "
            "MMIO, exported read-only by A: never mapped, every access is "
            "forwarded) and B makes %d timed volatile 8-byte loads of A's "
            "`PEER_NAME` register (offset %s) through an uncached mmap of "
            "the window.  Value read %s (\"B\"); B forwarded %d reads and "
            "A served %d.  Each sample includes one clock_gettime "
            "(p50 %d ns alone)."
            % (int(ld["a_bar0"], 16), ld["count"], ld["offset"],
               ld["value"], ld["forwarded_reads"], ld["served_reads"],
               ld["clock_p50"]),
            "",
            "| us | p50 | p90 | p99 | max | samples |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            row("forwarded read", ld["window_ns"]),
            "",
            "## 3. Doorbell round trip",
            "",
            "A rings B on vector 0; B's waiter, blocked in its kernel, "
            "wakes on the interrupt and rings A back; A's waiter wakes on "
            "its interrupt and takes the time.  memexpose: memexpose.ko, "
            "`MEMEXPOSE_IOC_SEND_DOORBELL` / blocking "
            "`MEMEXPOSE_IOC_RECV_DOORBELL`, without payload (the figure) "
            "and with an 8-byte payload (the sequence number, checked).  "
            "ivshmem: QEMU's `ivshmem-doorbell` (MSI-X, ioeventfd) with "
            "`ivshmem-server` from the same QEMU tree (IVPosition A %d, "
            "B %d), bench/guest/ivshmem-bench (`write` rings, blocking "
            "`read`).  %d rounds of %d round trips per kind (after %d "
            "untimed), the order rotated each round; percentiles over all "
            "%d."
            % (d["ivposition"]["A"], d["ivposition"]["B"], d["rounds"],
               d["count_per_round"], d["warmup"], n_db),
            "",
            "| us | p50 | p90 | p99 | max | samples |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            row("memexpose", d["memexpose_ns"]),
            row("memexpose, 8-byte payload", d["memexpose8_ns"]),
            row("ivshmem-doorbell", d["ivshmem_ns"]),
            "",
            "Ratio memexpose/ivshmem: p50 %.3f, p99 %.3f; with the 8-byte "
            "payload p50 %.3f, p99 %.3f."
            % (d["ratio_p50"], d["ratio_p99"], d["ratio8_p50"],
               d["ratio8_p99"]),
            "",
            "Host threads put to sleep and woken per round trip "
            "(voluntary context switches of each QEMU's threads during a "
            "ping-pong, divided by its round trips and averaged over the "
            "rounds; the serial commands that start and collect each "
            "ping-pong add a little).  `qemu-system-x86` is the main "
            "loop together with every thread whose name did not take (the "
            "memexpose worker's `memexpose-worker` is one character longer "
            "than Linux allows, so it keeps the process's name):",
            "",
            "| kind | A's QEMU | B's QEMU |",
            "| --- | --- | --- |",
        ] + [
            "| %s | %s | %s |" % (k, ", ".join(
                "%s %.2f" % tv for tv in d["thread_wakeups_per_round_trip"]
                [k].get("A", {}).items()), ", ".join(
                "%s %.2f" % tv for tv in d["thread_wakeups_per_round_trip"]
                [k].get("B", {}).items()))
            for k in ("memexpose", "memexpose-8", "ivshmem")
        ] + [
            "",
            "p50 per round (us): " + "; ".join(
                "memexpose %s, 8-byte %s, ivshmem %s"
                % (us(x["memexpose"]), us(x["memexpose-8"]),
                   us(x["ivshmem"]))
                for x in d["round_p50"]) + ".",
            "",
        ]
        lines += [
            "## 4. Host side",
            "",
            "A VM of its own (q35, 512 MiB of shared memfd RAM, no guest "
            "kernel: SeaBIOS idles) exporting its RAM (trust-peer=on) and "
            "its HPET read-only; host programs built with -O2 and no "
            "sanitizers.  Forwarded reads: %d timed 8-byte "
            "`mx_read_value()`s per run (after 100 untimed) of RAM at "
            "0x%x (never mapped by the library, so forwarded; QEMU serves "
            "it without the BQL) and of the HPET main counter (MMIO, under "
            "the BQL), each run after a unix-socket floor run of %d round "
            "trips; the VM's `served-reads` shows every read forwarded.  "
            "Dump: `memexpose-host dump 0x%x 256M` (the VM's RAM mapped "
            "zero-copy, no READ served meanwhile), the host writing a "
            "touched 256 MiB buffer to a file in the same directory in the "
            "same 1 MiB writes, and QMP `pmemsave` of the same range; the "
            "dump equals pmemsave's file.  %d rounds, alternating; medians."
            % (hs["count"], HOST_READ_RAM, FLOOR_COUNT, HOST_DUMP[0],
               hs["reps"]),
            "",
            "| us | p50 | p90 | p99 | max | samples |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            row("library read, RAM target", hs["samples"]["ram_ns"]),
            row("library read, MMIO target", hs["samples"]["mmio_ns"]),
            row("unix-socket round trip", hs["samples"]["unix_ns"]),
            "",
            "| 256 MiB, seconds | min | median | max |",
            "| --- | ---: | ---: | ---: |",
        ] + [
            "| %s | %.3f | %.3f | %.3f |" % (name, min(hs["samples"][k]),
                                             median(hs["samples"][k]),
                                             max(hs["samples"][k]))
            for name, k in (("memexpose-host dump", "dump_s"),
                            ("host copy to a file", "copy_s"),
                            ("QMP pmemsave", "pmemsave_s"))
        ] + [""]
        png = self.plot()
        if png:
            lines += ["Plot: `%s`." % os.path.relpath(png, TOP), ""]
        else:
            lines += ["No plot: %s." % self.plot_missing, ""]
        lines += ["All samples: `%s`." % os.path.relpath(
            os.path.join(self.out, "results.json"), TOP), ""]
        path = os.path.join(self.out, "results.md")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        say("results in %s" % os.path.relpath(path, TOP))

    def qemu_version(self):
        try:
            out = subprocess.run([self.args.qemu, "--version"],
                                 capture_output=True, text=True,
                                 timeout=20).stdout
            return out.splitlines()[0].strip()
        except Exception:
            return "QEMU ?"

    def plot(self):
        gp = shutil.which("gnuplot")
        if not gp:
            self.plot_missing = "gnuplot is not installed"
            return None
        pdir = os.path.join(self.work, "plot")
        os.makedirs(pdir, exist_ok=True)
        c, ld, d = self.res["copy"], self.res["load"], self.res["doorbell"]

        def cdf(name, samples):
            s = sorted(samples)
            with open(os.path.join(pdir, name), "w") as f:
                for k, v in enumerate(s):
                    f.write("%.3f %.5f\n" % (v / 1e3, (k + 1) / len(s)))
        cdf("mx.dat", d["memexpose_ns"])
        cdf("mx8.dat", d["memexpose8_ns"])
        cdf("ivs.dat", d["ivshmem_ns"])
        cdf("load.dat", ld["window_ns"])
        with open(os.path.join(pdir, "copy.dat"), "w") as f:
            for label, key in (("window", "window"), ("local", "local"),
                               ("window\\n(aliasing)", "alias_window"),
                               ("local\\n(aliasing)", "alias_local")):
                v = c[key + "_mbps"]
                f.write("\"%s\" %.1f %d %d\n"
                        % (label, c[key + "_median"], min(v), max(v)))
        png = os.path.join(self.out, "results.png")
        every = d["memexpose_ns"] + d["memexpose8_ns"] + d["ivshmem_ns"]
        xmax = pct(every, 99.5) / 1e3 * 1.2
        lmax = pct(ld["window_ns"], 99.5) / 1e3 * 1.2
        script = """
set terminal pngcairo size 1500,480 font ',10'
set output '%(png)s'
set bmargin 4
set multiplot layout 1,3 title 'memexpose bench %(date)s, TCG guests on a shared 2-core host: the ratios count, not the absolute values'
set title 'copy %(mib)d MiB: median, min..max of %(reps)d (window/local %(cr).3f)'
set style fill solid 0.6 border -1
set boxwidth 0.5
set ylabel 'MB/s'
set yrange [0:*]
set xrange [-0.6:3.6]
unset key
plot '%(pdir)s/copy.dat' using 0:2:xtic(1) with boxes lc rgb '#4070c0', \\
     '' using 0:2:3:4 with yerrorbars lc rgb 'black' pt 0
set title 'doorbell round trip, CDF (p50 ratio %(dr).3f)'
set ylabel 'fraction'
set xlabel 'us'
set yrange [0:1]
set xrange [0:%(xmax).1f]
set key bottom right
plot '%(pdir)s/mx.dat' using 1:2 with lines lw 2 title 'memexpose', \\
     '%(pdir)s/mx8.dat' using 1:2 with lines lw 2 title 'memexpose, 8-byte payload', \\
     '%(pdir)s/ivs.dat' using 1:2 with lines lw 2 title 'ivshmem-doorbell'
set title 'forwarded 8-byte read, CDF (p50 %(lp50).1f us, p99 %(lp99).1f us)'
set xrange [0:%(lmax).1f]
plot '%(pdir)s/load.dat' using 1:2 with lines lw 2 title 'memexpose forwarded read'
unset multiplot
""" % {"png": png, "pdir": pdir, "reps": c["reps"], "cr": c["ratio"],
       "mib": c["size"] >> 20, "dr": d["ratio_p50"], "xmax": xmax,
       "lmax": lmax, "lp50": ld["p50"] / 1e3, "lp99": ld["p99"] / 1e3,
       "date": datetime.date.today().isoformat()}
        sp = os.path.join(pdir, "plot.gp")
        with open(sp, "w") as f:
            f.write(script)
        r = subprocess.run([gp, sp], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0 or not os.path.exists(png):
            self.plot_missing = "gnuplot failed: %s" % r.stderr.strip()
            return None
        return png


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--kernel")
    ap.add_argument("--out", default=os.path.join(TOP, "build", "bench"))
    ap.add_argument("--qemu", default=os.environ.get(
        "MEMEXPOSE_QEMU", harness.DEFAULT_QEMU))
    ap.add_argument("--ivshmem-server", default=os.path.join(
        harness.QEMU_BUILD, "contrib", "ivshmem-server", "ivshmem-server"))
    ap.add_argument("--host-floor", default=os.path.join(
        TOP, "build", "bench", "host-floor"))
    ap.add_argument("--host-side", default=os.path.join(
        TOP, "build", "bench", "host-side"))
    ap.add_argument("--memexpose-host", default=os.path.join(
        TOP, "build", "bench", "memexpose-host"))
    ap.add_argument("--boots", type=int, default=0,
                    help="only boot both guests this many times in a row")
    args = ap.parse_args()
    harness.install_signal_handlers()
    os.environ["MEMEXPOSE_QEMU"] = args.qemu
    args.initrd = os.path.abspath(args.initrd)
    args.out = os.path.abspath(args.out)
    bench = Bench(args)
    shutil.rmtree(bench.work, ignore_errors=True)
    os.makedirs(bench.work)
    for f in ("results.md", "results.json", "results.png"):
        try:
            os.unlink(os.path.join(args.out, f))
        except FileNotFoundError:
            pass
    t0 = time.monotonic()
    try:
        bench.start_ivshmem_server()
        if args.boots:
            bench.boot_loop(args.boots)
            return 0
        bench.boot()
        bench.bench_copy()
        bench.bench_load()
        bench.bench_doorbells()
        bench.final_checks()
        bench.bench_host_side()
        bench.write_results()
    except (BenchError, harness.GuestError, OSError) as e:
        print("bench: FAILED: %s" % e, flush=True)
        print("bench: logs in %s" % bench.work, flush=True)
        return 1
    finally:
        with open(os.path.join(bench.work, "commands.log"), "w") as f:
            f.write("\n".join(bench.log_lines) + "\n")
        bench.kill()
    say("done in %.0fs" % (time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
