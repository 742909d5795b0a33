#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Two guests linked by memexpose, started by a real libvirtd.  Prints TAP.

    run-libvirt.py --initrd build/guest/initramfs.cpio.gz [--workdir DIR]

The domains are contrib/libvirt/memexpose-{a,b}.xml.in with @QEMU@,
@KERNEL@, @INITRD@ and @RUN@ filled in, exactly as the user guide does
it.  libvirtd (Debian's) runs in session mode (qemu:///session) as an
unprivileged user, with its configuration, state and sockets in a
directory of its own (the work directory's "state" link points to it):
the test touches no system-wide libvirt state.  As root
that user is memexpose-lv, created on first use; otherwise it is the
caller.  Where libvirtd cannot run at all, every case is reported as
skipped with the reason.

Checked: both domains define and start, boot to the test initramfs'
command loop, load memexpose.ko, bring the link up; B maps A's RAM
zero-copy (mapped-bytes, no forwarded read, a memexpose-peer@ region
in info mtree -f) and what B writes through
its window is what A's RAM holds (QMP pmemsave through libvirt); a
doorbell with payload each way through the driver; both destroyed.
"""

import argparse
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

sys.dont_write_bytecode = True
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "guest"))
import harness  # noqa: E402
from harness import Guest, GuestError  # noqa: E402
from checks import Failed, parse_crc  # noqa: E402

USER = "memexpose-lv"
CTL = "memexpose-ctl"
RESERVED = 0x8000000        # memmap=96M$0x8000000 in both domains
BOOT_TIMEOUT = float(os.environ.get("MEMEXPOSE_BOOT_TIMEOUT", "180"))


class Skip(Exception):
    pass


class Libvirt:
    """A libvirtd of our own, in session mode, as an unprivileged user."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None
        if os.geteuid() == 0:
            self.ensure_user()
            self.user = USER
        else:
            self.user = pwd.getpwuid(os.geteuid()).pw_name
        home = self.short_home(workdir)
        self.env = dict(os.environ, HOME=home,
                        XDG_CONFIG_HOME=os.path.join(home, "config"),
                        XDG_CACHE_HOME=os.path.join(home, "cache"),
                        XDG_DATA_HOME=os.path.join(home, "data"),
                        XDG_RUNTIME_DIR=os.path.join(home, "run"))
        for d in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
                  "XDG_DATA_HOME", "XDG_RUNTIME_DIR"):
            os.makedirs(self.env[d], mode=0o700, exist_ok=True)
        self.sock = os.path.join(self.env["XDG_RUNTIME_DIR"], "libvirt",
                                 "libvirt-sock")

    @staticmethod
    def short_home(workdir):
        """libvirtd puts each domain's monitor socket under
        $XDG_CONFIG_HOME, and a unix socket path has room for 107 bytes:
        a checkout in a deep directory must not break the test, so the
        state lives in a fresh directory under /tmp, reached from the
        work directory through the link "state"."""
        home = tempfile.mkdtemp(prefix="mxlv.", dir="/tmp")
        os.symlink(home, os.path.join(workdir, "state"))
        return home

    @staticmethod
    def ensure_user():
        try:
            pwd.getpwnam(USER)
            return
        except KeyError:
            pass
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        r = subprocess.run([useradd, "--system", "--user-group",
                            "--no-create-home", "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", USER],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip("cannot create the user %s for libvirtd: %s"
                       % (USER, r.stderr.strip()))

    def as_user(self, argv):
        if os.geteuid() == 0:
            return ["runuser", "-u", self.user, "--"] + argv
        return argv

    def chown_tree(self, path):
        if os.geteuid() != 0:
            return
        pw = pwd.getpwnam(self.user)
        for root, dirs, files in os.walk(path):
            for n in [root] + [os.path.join(root, f) for f in dirs + files]:
                os.lchown(n, pw.pw_uid, pw.pw_gid)

    def start(self):
        libvirtd = shutil.which("libvirtd") or "/usr/sbin/libvirtd"
        if not os.access(libvirtd, os.X_OK):
            raise Skip("no libvirtd (Debian's libvirt-daemon; make deps)")
        if not shutil.which("virsh"):
            raise Skip("no virsh (Debian's libvirt-clients; make deps)")
        self.chown_tree(self.workdir)
        self.chown_tree(self.env["HOME"])
        log = open(os.path.join(self.workdir, "libvirtd.log"), "ab")
        self.proc = subprocess.Popen(self.as_user([libvirtd]), env=self.env,
                                     stdout=log, stderr=log,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None:
                raise Skip("libvirtd exited with status %d at start; see %s"
                           % (self.proc.returncode,
                              os.path.join(self.workdir, "libvirtd.log")))
            if time.monotonic() > deadline:
                raise Skip("libvirtd did not open %s within 30 s" % self.sock)
            time.sleep(0.1)
        uri = self.virsh("uri").strip()
        version = subprocess.run([libvirtd, "--version"], capture_output=True,
                                 text=True).stdout.strip()
        harness_diag("%s, connected to %s as %s" % (version, uri, self.user))

    def virsh(self, *args, timeout=120, check=True):
        r = subprocess.run(self.as_user(["virsh", "-c", "qemu:///session"]
                                        + list(args)),
                           env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise GuestError("virsh %s: %s" % (" ".join(args),
                                                (r.stderr or r.stdout).strip()))
        return r.stdout

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def harness_diag(msg):
    for line in str(msg).splitlines():
        print("# " + line)
    sys.stdout.flush()


class LibvirtGuest(Guest):
    """A Guest whose QEMU libvirtd starts: the serial console is a unix
    socket (<serial type='unix'>), QMP goes through virsh
    qemu-monitor-command, and killing it is virsh destroy."""

    def __init__(self, lv, name, domain, xml, console, workdir):
        super().__init__(name, workdir, None, None, None)
        self.lv = lv
        self.domain = domain
        self.xml = xml
        self.console = console
        self.con = None
        self.running = False

    def start(self):
        xml_path = os.path.join(self.workdir, self.domain + ".xml")
        with open(xml_path, "w") as f:
            f.write(self.xml)
        self.lv.chown_tree(self.workdir)
        self._serial_log = open(self.serial_log_path, "a", errors="replace")
        self._stderr = open(self.stderr_path, "ab")
        self.lv.virsh("define", xml_path)
        self.lv.virsh("start", self.domain)
        self.running = True
        self._start_time = time.monotonic()
        with harness._live_lock:
            harness._live_guests.append(self)
        deadline = time.monotonic() + 20
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.console)
                break
            except OSError as e:
                s.close()
                if time.monotonic() > deadline:
                    self.fail("console %s: %s" % (self.console, e))
                time.sleep(0.1)
        self.con = s
        self._eof = False
        self._mark = len(self._buf)
        self._reader = threading.Thread(target=self._read_console,
                                        daemon=True)
        self._reader.start()

    def boot(self, timeout=120):
        self.wait_for(r"^__MX_READY__\n", timeout)
        self.boot_seconds = time.monotonic() - self._start_time
        return self.boot_seconds

    def _read_console(self):
        while True:
            try:
                data = self.con.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            text = data.decode("utf-8", errors="replace").replace("\r", "")
            self._serial_log.write(text)
            self._serial_log.flush()
            with self._cond:
                self._buf += text
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def alive(self):
        if not self.running:
            return False
        out = self.lv.virsh("domstate", self.domain, check=False, timeout=30)
        return out.strip() == "running"

    def send_raw(self, data):
        try:
            self.con.sendall(data.encode() if isinstance(data, str)
                             else data)
        except OSError as e:
            self.fail("writing to the console: %s" % e)

    def qmp(self, command, timeout=30, **arguments):
        req = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        out = self.lv.virsh("qemu-monitor-command", self.domain,
                            json.dumps(req), timeout=timeout)
        resp = json.loads(out)
        if "error" in resp:
            raise GuestError("%s: QMP %s failed: %s" % (self.name, command,
                                                         resp["error"]))
        return resp.get("return")

    def stderr_tail(self, n=20):
        log = os.path.join(self.lv.env["XDG_CACHE_HOME"], "libvirt", "qemu",
                           "log", self.domain + ".log")
        try:
            with open(log, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def kill(self):
        if self.running:
            self.lv.virsh("destroy", self.domain, check=False, timeout=60)
            self.running = False
        self.lv.virsh("undefine", self.domain, check=False, timeout=60)
        if self.con:
            self.con.close()
            self.con = None
        if self._reader:
            self._reader.join(timeout=5)
        with harness._live_lock:
            if self in harness._live_guests:
                harness._live_guests.remove(self)


def domain_xml(name, qemu, kernel, initrd, run):
    path = os.path.join(TOP, "contrib", "libvirt", "memexpose-%s.xml.in"
                        % name)
    with open(path) as f:
        text = f.read()
    for key, val in (("@QEMU@", qemu), ("@KERNEL@", kernel),
                     ("@INITRD@", initrd), ("@RUN@", run)):
        text = text.replace(key, val)
    if "@" in text.split("-->", 1)[-1]:
        raise GuestError("%s: a placeholder is left unfilled" % path)
    return text


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, what):
        self.n += 1
        if not cond:
            self.failed += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, what))
        sys.stdout.flush()
        return cond

    def skip(self, what, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, what, why))


CASES = ["libvirtd started (qemu:///session)",
         "both domains defined and started",
         "both guests booted and loaded memexpose.ko",
         "link up between the libvirt domains",
         "B maps A's RAM zero-copy; B's writes are in A's RAM",
         "a doorbell with payload A -> B",
         "a doorbell with payload B -> A",
         "both domains destroyed and undefined"]


def doorbell(tap, sender, receiver, payload):
    receiver.check("(%s doorbell wait 20000 > /tmp/rx 2>&1; echo rc=$? >> "
                   "/tmp/rx) > /dev/null 2>&1 &" % CTL, timeout=10)
    time.sleep(0.5)
    sender.check("%s doorbell send 1 %s" % (CTL, payload), timeout=20)
    out = ""
    for _ in range(100):
        out = receiver.check("cat /tmp/rx", timeout=10)
        if "rc=" in out:
            break
        time.sleep(0.2)
    return tap.ok("vector 1: %s" % payload in out and "rc=0" in out,
                  "a doorbell with payload %s -> %s" % (sender.name,
                                                         receiver.name)) \
        or harness_diag("receiver output: %r" % out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--workdir",
                    default=os.path.join(TOP, "build", "libvirt", "work"))
    ap.add_argument("--kernel", default=None)
    args = ap.parse_args()
    harness.install_signal_handlers()
    qemu = os.environ.get("MEMEXPOSE_QEMU",
                          os.path.join(harness.QEMU_BUILD,
                                       "qemu-system-x86_64"))
    print("1..%d" % len(CASES))
    tap = Tap()
    state = os.path.join(args.workdir, "state")
    if os.path.islink(state):
        shutil.rmtree(os.readlink(state), ignore_errors=True)
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    initrd = os.path.join(args.workdir, "initramfs.cpio.gz")
    shutil.copy(args.initrd, initrd)
    kernel = args.kernel or harness.newest_kernel()
    lv = Libvirt(args.workdir)
    # The link and console sockets have the same limit as the monitor's.
    run = os.path.join(lv.env["HOME"], "sockets")
    os.makedirs(run)
    guests = []
    try:
        try:
            lv.start()
        except Skip as e:
            for c in CASES:
                tap.skip(c, str(e))
            return 0
        tap.ok(True, CASES[0])
        for name in ("a", "b"):
            g = LibvirtGuest(lv, name.upper(), "memexpose-" + name,
                             domain_xml(name, qemu, kernel, initrd, run),
                             os.path.join(run, "memexpose-%s.console" % name),
                             os.path.join(args.workdir, name.upper()))
            g.start()
            guests.append(g)
        a, b = guests
        tap.ok(a.alive() and b.alive(), CASES[1])

        for g in guests:
            g.boot(BOOT_TIMEOUT)
            g.check("insmod /memexpose.ko", timeout=30)
            g.check("i=0; while [ ! -e /dev/memexpose0 ] && [ $i -lt 100 ]; "
                    "do usleep 50000; i=$((i+1)); done; ls /dev/memexpose0",
                    timeout=20)
        harness_diag("booted A in %.1fs, B in %.1fs" % (a.boot_seconds,
                                                         b.boot_seconds))
        tap.ok(True, CASES[2])

        for g in guests:
            g.wait_link(True, timeout=30)
        tap.ok(a.qom_get("peer-name") == "B" and
               b.qom_get("peer-name") == "A", CASES[3])

        size = 1 << 20
        fwd0 = b.qom_get("forwarded-reads")
        b.check("%s fill 0x%x 0x%x 5" % (CTL, RESERVED, size), timeout=60)
        out = b.check("%s crc 0x%x 0x%x" % (CTL, RESERVED, size), timeout=60)
        seen = parse_crc(out)
        dump = os.path.join(run, "a-ram.bin")
        a.pmemsave(RESERVED, size, dump)
        with open(dump, "rb") as f:
            host = zlib.crc32(f.read()) & 0xffffffff
        mapped = b.qom_get("mapped-bytes")
        mtree = lv.virsh("qemu-monitor-command", "--hmp", b.domain,
                         "info mtree -f")
        peer_regions = [line.strip() for line in mtree.splitlines()
                        if "memexpose-peer@" in line]
        harness_diag("B's info mtree -f: %s" % "; ".join(peer_regions[:2]))
        fwd = b.qom_get("forwarded-reads") - fwd0
        harness_diag("B: mapped-bytes %d, forwarded reads %d; window crc %s,"
                     " A's RAM crc 0x%08x" % (mapped, fwd, out.strip(), host))
        tap.ok(mapped >= 256 << 20 and fwd == 0 and seen == host and
               peer_regions, CASES[4])

        doorbell(tap, a, b, "from-A")
        doorbell(tap, b, a, "from-B")

        for g in guests:
            g.kill()
        left = lv.virsh("list", "--all", "--name").split()
        tap.ok(not any(d.startswith("memexpose-") for d in left), CASES[7])
        guests = []
    except (GuestError, Failed, OSError, subprocess.TimeoutExpired) as e:
        harness_diag(e)
        while tap.n < len(CASES):
            tap.ok(False, CASES[tap.n])
    finally:
        for g in guests:
            g.kill()
        lv.stop()
    if not tap.failed:
        shutil.rmtree(lv.env["HOME"], ignore_errors=True)
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
