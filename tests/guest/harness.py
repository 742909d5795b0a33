#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Drive Linux guests running the memexpose test initramfs (stdlib only).

A Guest is one qemu-system-x86_64 process with a memexpose-pci device
(arch="x86_64", the default) or one qemu-system-aarch64 virt machine with
a memexpose-sysbus device (arch="aarch64").  Its serial console is the
process's stdin/stdout (a pipe); the guest's /init (tests/guest/init) runs
a command loop on it:

    host  -> guest   "<id> <command line>\\n"
    guest -> host    output ... "\\n__MX_DONE__ <id> <rc>\\n"

QMP is on a unix socket in the guest's work directory.  Every wait has a
timeout; on failure the last serial output is in the exception message.
QEMU runs in its own process group with PDEATHSIG set, and every Guest is
killed at interpreter exit, so no QEMU outlives the harness.
"""

import atexit
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The QEMU build to use: MEMEXPOSE_QEMU_BUILD, else the default series'.
QEMU_BUILD = os.environ.get("MEMEXPOSE_QEMU_BUILD",
                            os.path.join(TOP, "build", "qemu-10.0"))
DEFAULT_QEMU = os.path.join(QEMU_BUILD, "qemu-system-x86_64")
DEFAULT_QEMU_AARCH64 = os.path.join(QEMU_BUILD, "qemu-system-aarch64")
# Debian's arm64 kernel as scripts/arm64-guest.sh unpacks it.
ARM64_ROOT = os.path.join(TOP, "build", "arm64", "root")

_live_guests = []
_live_lock = threading.Lock()


def _cleanup_all():
    with _live_lock:
        guests = list(_live_guests)
    for g in guests:
        try:
            g.kill()
        except Exception:
            pass


atexit.register(_cleanup_all)


def _on_signal(signum, frame):
    _cleanup_all()
    # 128 + signal, like a shell.
    os._exit(128 + signum)


def install_signal_handlers():
    """Kill all guests on SIGTERM/SIGINT/SIGHUP (call from the main thread)."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def _set_pdeathsig():
    # Runs in the child between fork and exec: die with the parent.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def newest_kernel():
    """The newest /boot/vmlinuz-*-amd64 (what build-initramfs.sh uses)."""
    env = os.environ.get("MEMEXPOSE_KVER")
    if env:
        return "/boot/vmlinuz-" + env
    cands = [f for f in os.listdir("/boot")
             if f.startswith("vmlinuz-") and f.endswith("-amd64")]
    if not cands:
        raise GuestError("no /boot/vmlinuz-*-amd64")

    def key(name):
        return [int(p) if p.isdigit() else p
                for p in re.split(r"(\d+)", name)]
    return "/boot/" + sorted(cands, key=key)[-1]


def arm64_kernel(root=None):
    """The newest boot/vmlinuz-*-arm64 under root (MEMEXPOSE_ARM64_ROOT,
    default build/arm64/root), what build-initramfs.sh uses for arm64."""
    root = root or os.environ.get("MEMEXPOSE_ARM64_ROOT", ARM64_ROOT)
    boot = os.path.join(root, "boot")
    try:
        cands = [f for f in os.listdir(boot)
                 if f.startswith("vmlinuz-") and f.endswith("-arm64")]
    except OSError:
        cands = []
    if not cands:
        raise GuestError("no %s/vmlinuz-*-arm64 (scripts/arm64-guest.sh)"
                         % boot)

    def key(name):
        return [int(p) if p.isdigit() else p
                for p in re.split(r"(\d+)", name)]
    return os.path.join(boot, sorted(cands, key=key)[-1])


class GuestError(Exception):
    pass


def describe_status(status):
    if status is None:
        return "still running"
    if status < 0:
        try:
            return "killed by %s" % signal.Signals(-status).name
        except ValueError:
            return "killed by signal %d" % -status
    return "exit status %d" % status


class Guest:
    """One QEMU guest with a memexpose-pci device (x86_64 pc) or a
    memexpose-sysbus device (aarch64 virt).

    MEMEXPOSE_QEMU_WRAPPER (or MEMEXPOSE_QEMU_WRAPPER_<name>) is prepended
    to QEMU's command line, e.g. "gdb -batch -ex run -ex bt --args".

    role: "server" (listens on link_sock) or "client" (connects to it,
    reconnecting every reconnect_ms).  extra_args: more QEMU arguments
    (a list), appended to the command line.

    arch: "x86_64" (pc, memexpose-pci, console ttyS0, QEMU from
    MEMEXPOSE_QEMU) or "aarch64" (virt with cpu, memexpose-sysbus, console
    ttyAMA0, QEMU from MEMEXPOSE_QEMU_AARCH64).  On aarch64 RAM starts at
    0x40000000, so export defaults to 0x40000000+<mem>:rw, and the window
    to memexpose-sysbus's default (16 MiB, the most that fits into virt's
    platform bus) unless window_size is given.
    """

    ARCHES = ("x86_64", "aarch64")

    def __init__(self, name, workdir, kernel, initrd, link_sock,
                 role="server", qemu=None, mem="256M", export=None,
                 window_size=None, trust_peer=True, extra_append="",
                 device_extra="", accel=None, log=None, reconnect_ms=200,
                 extra_args=None, arch="x86_64", cpu="cortex-a57", smp=1):
        if arch not in self.ARCHES:
            raise ValueError("arch must be one of %s" % (self.ARCHES,))
        self.name = name
        self.workdir = workdir
        self.kernel = kernel
        self.initrd = initrd
        self.link_sock = link_sock
        self.role = role
        self.arch = arch
        self.cpu = cpu
        self.smp = smp
        if arch == "x86_64":
            self.qemu = qemu or os.environ.get("MEMEXPOSE_QEMU", DEFAULT_QEMU)
            if export is None:
                export = "0+256M:rw"
            if window_size is None:
                window_size = "256M"
        else:
            self.qemu = qemu or os.environ.get("MEMEXPOSE_QEMU_AARCH64",
                                               DEFAULT_QEMU_AARCH64)
            if export is None:
                export = "0x40000000+%s:rw" % mem
        self.mem = mem
        self.export = export
        self.window_size = window_size
        self.trust_peer = trust_peer
        self.extra_append = extra_append
        self.device_extra = device_extra
        self.accel = accel or os.environ.get("MEMEXPOSE_ACCEL", "tcg")
        self.reconnect_ms = reconnect_ms
        self.extra_args = list(extra_args or [])
        self.log = log or (lambda msg: None)
        os.makedirs(workdir, exist_ok=True)
        self.qmp_path = os.path.join(workdir, "qmp.sock")
        self.serial_log_path = os.path.join(workdir, "serial.log")
        self.stderr_path = os.path.join(workdir, "qemu.stderr")
        self.proc = None
        self._buf = ""            # all serial output so far (\r removed)
        self._cond = threading.Condition()
        self._reader = None
        self._eof = False
        self._qmp = None
        self._qmp_file = None
        self._qmp_lock = threading.Lock()
        self.qmp_events = []
        self._cmd_id = 0
        self._mark = 0            # buffer offset where the current boot began
        self.boot_seconds = None

    # ---- process -------------------------------------------------------

    def command_line(self):
        aarch64 = self.arch == "aarch64"
        append = ("console=%s quiet panic=-1 nokaslr mx.name=%s"
                  % ("ttyAMA0" if aarch64 else "ttyS0", self.name))
        if self.extra_append:
            append += " " + self.extra_append
        chardev = "socket,id=mxlink,path=%s" % self.link_sock
        if self.role == "server":
            chardev += ",server=on,wait=off"
        else:
            chardev += ",reconnect-ms=%d" % self.reconnect_ms
        trust = "on" if self.trust_peer else "off"
        if aarch64:
            # virt: memexpose-sysbus, whose window has a default that fits.
            dev = ("memexpose-sysbus,id=mx,chardev=mxlink,name=%s,export=%s,"
                   "trust-peer=%s" % (self.name, self.export, trust))
            if self.window_size:
                dev += ",window-size=%s" % self.window_size
            machine = ["-machine", "virt,memory-backend=ram",
                       "-cpu", self.cpu]
            smp = str(self.smp)
            no_vga = []
        else:
            dev = ("memexpose-pci,id=mx,chardev=mxlink,name=%s,export=%s,"
                   "window-size=%s,trust-peer=%s"
                   % (self.name, self.export, self.window_size, trust))
            machine = ["-machine", "pc,memory-backend=ram"]
            smp = "1"
            no_vga = ["-vga", "none"]
        if self.device_extra:
            dev += "," + self.device_extra
        wrapper = os.environ.get("MEMEXPOSE_QEMU_WRAPPER_" + self.name,
                                 os.environ.get("MEMEXPOSE_QEMU_WRAPPER", ""))
        return wrapper.split() + [
            self.qemu,
            "-name", "mx-guest-" + self.name,
            "-accel", self.accel,
        ] + machine + [
            "-m", self.mem,
            "-object", "memory-backend-memfd,id=ram,size=%s,share=on" % self.mem,
            "-smp", smp,
            "-nodefaults", "-display", "none",
        ] + no_vga + [
            "-chardev", "stdio,id=ser0,signal=off",
            "-serial", "chardev:ser0",
            "-monitor", "none",
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
            "-no-reboot",
            "-msg", "timestamp=on",
            "-kernel", self.kernel,
            "-initrd", self.initrd,
            "-append", append,
            "-chardev", chardev,
            "-device", dev,
        ] + self.extra_args

    def start(self):
        """Start QEMU (does not wait for the guest; see boot())."""
        if self.proc:
            raise GuestError("%s: already started" % self.name)
        for p in (self.qmp_path,):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        argv = self.command_line()
        self.log("%s: %s" % (self.name, " ".join(argv)))
        self._stderr = open(self.stderr_path, "ab")
        self._serial_log = open(self.serial_log_path, "a", errors="replace")
        env = dict(os.environ)
        # glibc fills freed memory with this byte: a use-after-free in
        # QEMU then fails at once instead of now and then.
        perturb = os.environ.get("MEMEXPOSE_MALLOC_PERTURB", "165")
        if perturb and perturb != "0":
            env["MALLOC_PERTURB_"] = perturb
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
            stderr=self._stderr, start_new_session=True,
            preexec_fn=_set_pdeathsig, bufsize=0)
        with _live_lock:
            _live_guests.append(self)
        self._eof = False
        self._mark = len(self._buf)
        self._reader = threading.Thread(target=self._read_serial,
                                        name="serial-" + self.name,
                                        daemon=True)
        self._reader.start()
        self._start_time = time.monotonic()
        self._qmp_connect(timeout=20)

    def _read_serial(self):
        fd = self.proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
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
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """Kill QEMU (the whole process group) and reap it."""
        if self.proc is None:
            return
        proc = self.proc
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self._reader:
            self._reader.join(timeout=5)
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except Exception:
                pass
        self._qmp_close()
        try:
            self._stderr.close()
            self._serial_log.close()
        except Exception:
            pass
        self.proc = None
        with _live_lock:
            if self in _live_guests:
                _live_guests.remove(self)

    def quit(self, timeout=10):
        """Ask QEMU to quit over QMP, kill it if it does not."""
        if not self.alive():
            self.kill()
            return
        try:
            self.qmp("quit", timeout=timeout)
            self.proc.wait(timeout=timeout)
        except Exception:
            pass
        self.kill()

    # ---- serial --------------------------------------------------------

    def tail(self, n=40):
        with self._cond:
            lines = self._buf.splitlines()
        return "\n".join(lines[-n:])

    def stderr_tail(self, n=20):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def fail(self, msg):
        raise GuestError(
            "%s: %s\n--- last serial output of %s ---\n%s\n"
            "--- qemu stderr ---\n%s\n---"
            % (self.name, msg, self.name, self.tail(), self.stderr_tail()))

    def wait_for(self, pattern, timeout, start=None):
        """Wait until regex pattern (multiline) appears in the serial output
        after buffer offset start (default: the current boot).  Returns the
        match object, whose offsets are absolute buffer offsets."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        pos = self._mark if start is None else start
        problem = None
        with self._cond:
            while True:
                m = rx.search(self._buf, pos)
                if m:
                    return m
                if re.search(r"Kernel panic - not syncing", self._buf[pos:]):
                    problem = "kernel panic while waiting for %r" % pattern
                    break
                if self._eof:
                    problem = "QEMU exited while waiting for %r" % pattern
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    problem = "timeout (%ss) waiting for %r" % (timeout,
                                                                pattern)
                    break
                self._cond.wait(min(left, 1.0))
        if self._eof and self.proc is not None:
            try:
                status = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                status = None
            problem += " (QEMU %s)" % describe_status(status)
        self.fail(problem)

    def position(self):
        with self._cond:
            return len(self._buf)

    def output_since(self, pos):
        with self._cond:
            return self._buf[pos:]

    def boot(self, timeout=120):
        """Start QEMU if needed and wait for the command loop."""
        if self.proc is None:
            self.start()
        self.wait_for(r"^__MX_READY__\n", timeout)
        self.boot_seconds = time.monotonic() - self._start_time
        return self.boot_seconds

    def send_raw(self, data):
        if not self.alive():
            self.fail("QEMU is not running")
        try:
            self.proc.stdin.write(data.encode() if isinstance(data, str)
                                  else data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            self.fail("writing to the serial console: %s" % e)

    def run(self, cmd, timeout=30):
        """Run a shell command line in the guest; return (rc, output)."""
        if "\n" in cmd:
            raise ValueError("command must be one line")
        if len(cmd) > 3800:
            raise ValueError("command too long for the tty line buffer")
        self._cmd_id += 1
        cid = self._cmd_id
        pos = self.position()
        self.send_raw("%d %s\n" % (cid, cmd))
        try:
            m = self.wait_for(r"^__MX_DONE__ %d (-?\d+)\n" % cid, timeout,
                              start=pos)
        except GuestError as e:
            if self.alive():
                self.interrupt()
            raise GuestError("command %r: %s" % (cmd, e)) from None
        out = self.output_since(pos)[: m.start() - pos]
        if out.endswith("\n"):
            out = out[:-1]        # the newline /init prints before the marker
        return int(m.group(1)), out

    def check(self, cmd, timeout=30):
        """run() and raise unless the command exits 0; returns the output."""
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            raise GuestError("%s: command %r exited %d:\n%s"
                             % (self.name, cmd, rc, out))
        return out

    def interrupt(self, timeout=5):
        """Send ^C to interrupt a hung command; True if the loop came back."""
        pos = self.position()
        self.send_raw(b"\x03")
        try:
            self.wait_for(r"^__MX_DONE__ \d+ -?\d+\n", timeout, start=pos)
            return True
        except GuestError:
            return False

    # ---- QMP -----------------------------------------------------------

    def _qmp_connect(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                self.fail("QEMU exited at start (status %s)"
                          % self.proc.poll())
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(timeout)
                s.connect(self.qmp_path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    self.fail("QMP socket %s did not appear" % self.qmp_path)
                time.sleep(0.05)
        self._qmp = s
        self._qmp_file = s.makefile("rb")
        greeting = self._qmp_read(timeout)
        if "QMP" not in greeting:
            self.fail("unexpected QMP greeting %r" % greeting)
        self.qmp("qmp_capabilities")

    def _qmp_close(self):
        try:
            if self._qmp_file:
                self._qmp_file.close()
            if self._qmp:
                self._qmp.close()
        except Exception:
            pass
        self._qmp = self._qmp_file = None

    def _qmp_read(self, timeout):
        self._qmp.settimeout(timeout)
        try:
            line = self._qmp_file.readline()
        except socket.timeout:
            self.fail("QMP: no answer within %ss" % timeout)
        if not line:
            self.fail("QMP connection closed")
        return json.loads(line)

    def qmp(self, command, timeout=30, **arguments):
        """Execute a QMP command; return its "return" value."""
        if self._qmp is None:
            self.fail("QMP is not connected")
        req = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        with self._qmp_lock:
            self._qmp.sendall(json.dumps(req).encode() + b"\n")
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.fail("QMP %s: timeout" % command)
                resp = self._qmp_read(left)
                if "event" in resp:
                    self.qmp_events.append(resp)
                    continue
                if "error" in resp:
                    raise GuestError("%s: QMP %s failed: %s"
                                     % (self.name, command, resp["error"]))
                return resp.get("return")

    def qom_get(self, prop, path="/machine/peripheral/mx"):
        return self.qmp("qom-get", path=path, property=prop)

    def counters(self, names=None):
        names = names or ["link-up", "peer-name", "forwarded-reads",
                          "forwarded-writes", "served-reads",
                          "served-writes", "refused-accesses",
                          "mapped-bytes", "mappings-made", "doorbells-sent",
                          "doorbells-received", "doorbells-dropped",
                          "timeouts", "link-ups"]
        return {n: self.qom_get(n) for n in names}

    def pmemsave(self, addr, size, filename, timeout=60):
        """Save guest-physical memory [addr, addr+size) to filename."""
        self.qmp("pmemsave", timeout=timeout, val=addr, size=size,
                 filename=os.path.abspath(filename))

    def wait_link(self, up=True, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if bool(self.qom_get("link-up")) == up:
                return
            time.sleep(0.1)
        self.fail("link-up did not become %s within %ss" % (up, timeout))

    def reboot(self, timeout=120):
        """Reset the machine over QMP (system_reset) and wait for the
        command loop again.  -no-reboot would turn the reset into an exit,
        so reboots are allowed for the duration."""
        self.qmp("set-action", reboot="reset")
        try:
            self._mark = self.position()
            self._start_time = time.monotonic()
            self.qmp("system_reset")
            self._cmd_id += 1000          # never match a stale marker
            return self.boot(timeout)
        finally:
            if self.alive():
                self.qmp("set-action", reboot="shutdown")


def boot_pair(workdir, kernel, initrd, log=None, a_opts=None, b_opts=None,
              timeout=180):
    """Start guest A (link server) and B (client) in parallel and wait for
    both command loops."""
    sock = os.path.join(workdir, "link.sock")
    try:
        os.unlink(sock)
    except FileNotFoundError:
        pass
    a = Guest("A", os.path.join(workdir, "A"), kernel, initrd, sock,
              role="server", log=log, **(a_opts or {}))
    b = Guest("B", os.path.join(workdir, "B"), kernel, initrd, sock,
              role="client", log=log, **(b_opts or {}))
    try:
        a.start()
        b.start()
        a.boot(timeout)
        b.boot(timeout)
    except Exception:
        a.kill()
        b.kill()
        raise
    return a, b


if __name__ == "__main__":
    # Smoke test: python3 harness.py INITRD [N]: boot N guests (1 or 2).
    install_signal_handlers()
    import tempfile
    initrd = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    kernel = newest_kernel()
    wd = tempfile.mkdtemp(prefix="mx-guest-")
    t0 = time.monotonic()
    if n == 1:
        g = Guest("A", os.path.join(wd, "A"), kernel, initrd,
                  os.path.join(wd, "link.sock"), log=print)
        print("boot: %.1fs" % g.boot())
        print(g.run("uname -r; cat /proc/cmdline; ls /sys/bus/pci/devices"))
        g.kill()
    else:
        a, b = boot_pair(wd, kernel, initrd, log=print)
        print("boot: A %.1fs B %.1fs" % (a.boot_seconds, b.boot_seconds))
        b.wait_link(True, 30)
        print("A", a.counters())
        print("B", b.counters())
        a.kill()
        b.kill()
    print("total %.1fs, logs in %s" % (time.monotonic() - t0, wd))
