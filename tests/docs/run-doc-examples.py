#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Run the shell examples of README.md and the user guide as written.

    run-doc-examples.py QEMU-X86_64 QEMU-AARCH64 MEMEXPOSE-HOST FIRMWARE

Prints TAP.  The examples are taken from the text on every run (README's
fenced blocks, the guide's literal blocks), so an example that no longer
works, or that disappears, fails here.  What the text says an example
does is what is checked: the link comes up between the names given, the
HMP and QMP commands answer as shown, memexpose-host prints the lines
shown after each "$ " command ("..." stands for lines left out).

To run on a host without the reader's own files, each QEMU command line
is changed in these ways only, and the test prints the result:
- "qemu-system-x86_64", "qemu-system-aarch64" and README's $Q are the
  QEMUs under test;
- paths under /tmp/ move to a directory of the test's own;
- -drive and -kernel options naming a file that does not exist (the
  reader's disk image or kernel: vm-a.qcow2, Image) are left out, with
  -initrd and -append;
- -nographic becomes -display none (there is no terminal to share);
- a QMP socket is added, for the checks.
Examples that run inside a guest (devmem, memexpose-ctl) are run by the
guest tests (tests/guest); make targets are what make check itself runs.
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
README = os.path.join(TOP, "README.md")
GUIDE = os.path.join(TOP, "docs", "system", "devices", "memexpose.rst")
LINK_WAIT = 30


class Failed(Exception):
    pass


def diag(msg):
    for line in str(msg).splitlines():
        print("# " + line)
    sys.stdout.flush()


# ---- taking the examples out of the text ----

def fenced_blocks(path):
    """README's ``` blocks: (first line number, [lines])."""
    blocks, cur, start = [], None, 0
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line.startswith("```"):
                if cur is None:
                    cur, start = [], n + 1
                else:
                    blocks.append((start, cur))
                    cur = None
            elif cur is not None:
                cur.append(line)
    return blocks


def literal_blocks(path):
    """reStructuredText literal blocks (after "::"), dedented."""
    with open(path) as f:
        lines = f.read().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if lines[i].rstrip().endswith("::") and \
                not lines[i].lstrip().startswith(".."):
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and lines[j].startswith(" "):
                indent = len(lines[j]) - len(lines[j].lstrip())
                body = []
                k = j
                while k < len(lines) and (not lines[k].strip() or
                                          lines[k].startswith(" " * indent)):
                    body.append(lines[k][indent:])
                    k += 1
                while body and not body[-1].strip():
                    body.pop()
                blocks.append((j + 1, body))
                i = k
                continue
        i += 1
    return blocks


def logical_lines(lines):
    """Join backslash continuations."""
    out, cur = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
        else:
            out.append(cur + line)
            cur = ""
    if cur:
        out.append(cur)
    return out


def find_block(blocks, *needles):
    """The one block that contains every needle."""
    hits = [(n, b) for n, b in blocks
            if all(any(x in line for line in b) for x in needles)]
    if len(hits) != 1:
        raise Failed("%d example blocks contain %s, expected one"
                     % (len(hits), " and ".join(repr(x) for x in needles)))
    return hits[0]


def qemu_lines(block):
    return [line for line in logical_lines(block)
            if re.match(r"\s*(\$Q|qemu-system-)", line)]


def tool_session(block):
    """"$ memexpose-host ..." commands and the output lines shown."""
    steps = []
    for line in block:
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line.strip())
    return steps


# ---- running them ----

class Env:
    def __init__(self, qemu, qemu_a64, tool, firmware):
        self.qemu = {"x86_64": os.path.abspath(qemu),
                     "aarch64": os.path.abspath(qemu_a64)}
        self.tool = os.path.abspath(tool)
        self.firmware = os.path.abspath(firmware)
        self.tmp = tempfile.mkdtemp(prefix="mx-docs.", dir="/tmp")
        self.vms = []

    def relocate(self, word):
        return word.replace("/tmp/", self.tmp + "/")

    def host_argv(self, line, tag):
        argv = shlex.split(line, comments=True)
        if argv and argv[-1] == "&":
            argv.pop()
        arch = "aarch64" if "aarch64" in argv[0] else "x86_64"
        out = [self.qemu[arch]]
        i = 1
        dropped_kernel = False
        while i < len(argv):
            a = argv[i]
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            if a == "-drive" and not os.path.exists(
                    re.sub(r"^file=([^,]*).*", r"\1", nxt)):
                i += 2
                continue
            if a == "-kernel" and not os.path.exists(nxt):
                dropped_kernel = True
                i += 2
                continue
            if a in ("-append", "-initrd") and dropped_kernel:
                i += 2
                continue
            if a == "-nographic":
                out += ["-display", "none"]
                i += 1
                continue
            out.append(self.relocate(a))
            i += 1
        qmp = os.path.join(self.tmp, "qmp-%s.sock" % tag)
        out += ["-qmp", "unix:%s,server=on,wait=off" % qmp]
        return out, qmp

    def start(self, line, tag):
        argv, qmp = self.host_argv(line, tag)
        diag("%s: %s" % (tag, " ".join(shlex.quote(a) for a in argv)))
        vm = Vm(tag, argv, qmp, self.tmp)
        self.vms.append(vm)
        return vm

    def stop_all(self):
        for vm in self.vms:
            vm.kill()
        self.vms = []

    def tool_run(self, cmd, cwd=None, timeout=120):
        argv = [self.relocate(a) for a in shlex.split(cmd)]
        assert argv[0] == "memexpose-host"
        argv[0] = self.tool
        return subprocess.run(argv, cwd=cwd or self.tmp, capture_output=True,
                              text=True, timeout=timeout)


class Vm:
    def __init__(self, tag, argv, qmp_path, cwd):
        self.tag = tag
        self.log = os.path.join(cwd, "%s.log" % tag)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        self.sock = None
        self.buf = b""
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise Failed("%s exited with %d: %s" % (tag, self.proc.returncode,
                                                         self.log_tail()))
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(qmp_path)
                self.sock = s
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise Failed("%s: no QMP socket" % tag)
                time.sleep(0.05)
        self.sock.settimeout(30)
        self.recv()                      # greeting
        self.qmp("qmp_capabilities")

    def log_tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return " | ".join(f.read().splitlines()[-5:])
        except OSError:
            return ""

    def recv(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failed("%s: QMP closed: %s" % (self.tag, self.log_tail()))
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def qmp_raw(self, req):
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            msg = self.recv()
            if "event" in msg:
                continue
            return msg

    def qmp(self, command, **args):
        req = {"execute": command}
        if args:
            req["arguments"] = args
        resp = self.qmp_raw(req)
        if "error" in resp:
            raise Failed("%s: %s: %s" % (self.tag, command, resp["error"]))
        return resp["return"]

    def hmp(self, line):
        return self.qmp("human-monitor-command", **{"command-line": line})

    def info(self):
        devs = self.qmp("query-memexpose")
        if len(devs) != 1:
            raise Failed("%s: %d memexpose devices" % (self.tag, len(devs)))
        return devs[0]

    def wait(self, what, cond, timeout=LINK_WAIT):
        deadline = time.monotonic() + timeout
        while True:
            d = self.info()
            if cond(d):
                return d
            if time.monotonic() > deadline:
                raise Failed("%s: %s within %d s; query-memexpose: %s"
                             % (self.tag, what, timeout, json.dumps(d)))
            time.sleep(0.1)

    def wait_link(self, peer):
        return self.wait("link up with %r" % peer,
                         lambda d: d["link"] == "up" and
                         d.get("peer-name") == peer)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.sock:
            self.sock.close()


def hmp_unix(path, line, timeout=10):
    """One command on an HMP monitor socket (-monitor unix:...)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    buf = b""

    def until_prompt():
        nonlocal buf
        while not buf.rstrip().endswith(b"(qemu)"):
            chunk = s.recv(65536)
            if not chunk:
                raise Failed("monitor %s closed" % path)
            buf += chunk
        out, buf = buf, b""
        return out.decode(errors="replace")

    until_prompt()
    s.sendall(line.encode() + b"\n")
    out = until_prompt()
    s.close()
    # Drop the echo and the prompt; the monitor's line editing adds
    # escape sequences to the echo.
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out)
    lines = [x.rstrip("\r") for x in text.splitlines()]
    return "\n".join(x for x in lines[1:] if not x.startswith("(qemu)"))


def xp_words(out):
    """The values of an "xp /Nwx" dump."""
    return [w for line in out.splitlines() if ":" in line
            for w in line.split(":", 1)[1].split()]


# ---- the cases ----

def readme_try_it(env, tap):
    n, block = find_block(fenced_blocks(README), "Q=", "name=vm-a")
    cmds = qemu_lines(block)
    if len(cmds) != 2:
        raise Failed("README line %d: %d QEMU command lines, expected 2"
                     % (n, len(cmds)))
    a = env.start(cmds[0], "readme-a")
    b = env.start(cmds[1], "readme-b")
    a.wait_link("vm-b")
    b.wait_link("vm-a")
    # README's own monitor sockets.
    out = hmp_unix(env.relocate("/tmp/mx-b.mon"), "info memexpose")
    tap.ok('link: up' in out and 'peer "vm-a"' in out,
           "README 'Try it' (line %d): A and B link, B's monitor shows it"
           % n) or diag(out)
    d = b.wait("B maps A's RAM", lambda d: d["counters"]["mapped-bytes"] > 0)
    tap.ok(any(r["size"] > 0 for r in d["mappings"]),
           "README 'Try it': B maps A's RAM zero-copy (%d bytes)"
           % d["counters"]["mapped-bytes"])
    env.stop_all()


def guide_two_vms(env, tap):
    blocks = literal_blocks(GUIDE)
    na, ba = find_block(blocks, "name=vm-a", "qemu-system-x86_64")
    nb, bb = find_block(blocks, "name=vm-b", "qemu-system-x86_64")
    a = env.start(qemu_lines(ba)[0], "guide-a")
    b = env.start(qemu_lines(bb)[0], "guide-b")
    a.wait_link("vm-b")
    b.wait_link("vm-a")
    tap.ok(True, "guide: the two VMs (lines %d, %d) link as vm-a and vm-b"
           % (na, nb))
    # Each maps the other's RAM once its firmware enables BAR2, and its
    # firmware's changes below 1 MiB settle.
    for vm in (a, b):
        vm.wait("the peer's RAM above 1 MiB mapped",
                lambda d: any(r["addr"] == 0x100000 for r in d["mappings"]))
        settled(vm)

    # info memexpose as the guide shows it for vm-a.
    n, block = find_block(blocks, "(qemu) info memexpose")
    got = a.hmp("info memexpose").rstrip("\r\n").replace("\r", "").split("\n")
    why = info_differs(got, block[1:], a.info())
    tap.ok(not why, "guide line %d: A's info memexpose is what the guide"
           " shows" % n) or diag("%s\ngot:\n%s\nguide:\n%s"
                                % (why, "\n".join(got), "\n".join(block[1:])))

    # xp and pmemsave at B's BAR2 reach A's memory.
    n, block = find_block(blocks, "(qemu) xp /4wx 0x800f0000")
    cmds = [re.sub(r"\s+#.*", "", line)[len("(qemu) "):] for line in block]
    in_b = xp_words(b.hmp(cmds[0]))
    in_a = xp_words(a.hmp("xp /4wx 0xf0000"))
    tap.ok(len(in_b) == 4 and in_b == in_a,
           "guide line %d: %s in B shows A's 0xf0000" % (n, cmds[0])) or \
        diag("B: %s, A: %s" % (in_b, in_a))
    out = b.hmp(env.relocate(cmds[1]))
    if out.strip():
        raise Failed("%s: %s" % (cmds[1], out.strip()))
    mine = os.path.join(env.tmp, "a-own.bin")
    a.qmp("pmemsave", val=0x100000, size=0x100000, filename=mine)
    with open(env.relocate("/tmp/a.bin"), "rb") as f1, open(mine, "rb") as f2:
        x, y = f1.read(), f2.read()
    tap.ok(len(x) == 0x100000 and x == y,
           "guide: %s in B is A's 1 MiB at 0x100000" % cmds[1])

    # qom-get, HMP and QMP.
    n, block = find_block(blocks, "(qemu) qom-get /machine/peripheral/mx0")
    outs = [b.hmp(line[len("(qemu) "):]).strip() for line in block]
    n2, qblock = find_block(blocks, '"execute": "qom-get"')
    val = b.qmp_raw(json.loads("\n".join(qblock)))
    tap.ok(outs[0].isdigit() and outs[1] == "true" and
           isinstance(val.get("return"), int),
           "guide lines %d, %d: qom-get of forwarded-reads and link-up"
           " (HMP, QMP)" % (n, n2)) or diag("%s %s" % (outs, val))
    n, block = find_block(blocks, '"execute": "query-memexpose"')
    devs = b.qmp_raw(json.loads("\n".join(block))).get("return", [])
    tap.ok(len(devs) == 1 and devs[0]["name"] == "vm-b" and
           "forwarded-reads" in devs[0]["counters"],
           "guide line %d: query-memexpose lists B's device" % n)
    env.stop_all()


def settled(vm, quiet=1.0, timeout=LINK_WAIT):
    """Wait until the VM's mappings stay unchanged for @quiet seconds."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = vm.info()["mappings"]
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.1)
    raise Failed("%s: the mappings keep changing" % vm.tag)


# Counters that do not depend on when the firmware's changes met the link.
TIMING_FREE_COUNTERS = ("link-ups", "timeouts", "forwarded-reads",
                        "forwarded-writes", "served-reads", "served-writes",
                        "refused-accesses")


def info_differs(got, want, info):
    """Why @got (info memexpose) is not what the guide's @want shows.

    The lines and their labels must be the guide's; so must the values,
    except those that depend on the firmware and on timing (the mapped
    ranges and the counters that follow them), which must agree with
    query-memexpose instead."""
    if len(got) != len(want):
        return "%d lines, the guide shows %d" % (len(got), len(want))
    for g, w in zip(got, want):
        label = w.split(":")[0]
        if g.split(":")[0] != label:
            return "line %r where the guide has %r" % (g, w)
        if label.strip() == "mapped":
            ranges = " ".join("0x%x+0x%x:%s" % (r["addr"], r["size"],
                                                r["perm"])
                              for r in info["mappings"])
            if g.split(":", 1)[1].strip() != ranges:
                return "mapped ranges %r, query-memexpose %r" % (g, ranges)
        elif re.fullmatch(r"\s*([a-z-]+: \d+\s*)+", w):
            shown = dict(re.findall(r"([a-z-]+): (\d+)", w))
            vals = dict(re.findall(r"([a-z-]+): (\d+)", g))
            if sorted(vals) != sorted(shown):
                return "counters %r, the guide shows %r" % (g, w)
            for k in shown:
                if int(vals[k]) != info["counters"][k]:
                    return "%s %s, query-memexpose %d" % (
                        k, vals[k], info["counters"][k])
                if k in TIMING_FREE_COUNTERS and vals[k] != shown[k]:
                    return "%s %s, the guide shows %s" % (k, vals[k],
                                                          shown[k])
        elif g != w:
            return "line %r where the guide has %r" % (g, w)
    return None


def guide_virt(env, tap):
    blocks = literal_blocks(GUIDE)
    _, vm_b_block = find_block(blocks, "name=vm-b", "qemu-system-x86_64")
    n, block = find_block(blocks, "memexpose-sysbus,id=mx0")
    line = qemu_lines(block)[0]
    a = env.start(line, "guide-virt")
    b = env.start(qemu_lines(vm_b_block)[0], "guide-virt-peer")
    a.wait_link("vm-b")
    b.wait_link("mx0")
    tap.ok(True, "guide line %d: the aarch64 virt VM links with the second"
           " x86_64 VM" % n)
    env.stop_all()

    # Its device tree node, as the guide shows it.
    nd, node = find_block(blocks, 'compatible = "qemu,memexpose"')
    dtb = os.path.join(env.tmp, "virt.dtb")
    argv, _ = env.host_argv(line, "dtb")
    argv += ["-machine", "dumpdtb=" + dtb]
    r = subprocess.run(argv, cwd=env.tmp, capture_output=True, text=True,
                       timeout=60)
    dts = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", dtb],
                         capture_output=True, text=True).stdout
    m = re.search(r"\n(\s*)memexpose@0 \{\n(.*?)\n\1\};", dts, re.S)
    got = [x.strip() for x in m.group(2).splitlines()] if m else []
    want = [x.strip() for x in node[1:-1]]
    # Properties in any order: the order in the blob carries no meaning.
    tap.ok(r.returncode == 0 and sorted(got) == sorted(want),
           "guide line %d: the device tree node is the one the guide shows"
           % nd) or diag("dumpdtb exit %d %s; node %s" % (r.returncode,
                                                            r.stderr, got))


def check_output(out, shown):
    """Each shown line appears in @out, in order; "..." skips lines."""
    lines = [" ".join(x.split()) for x in out.splitlines()]
    i = 0
    skip = False
    for want in shown:
        want = " ".join(want.split())
        if want == "...":
            skip = True
            continue
        while i < len(lines) and lines[i] != want and skip:
            i += 1
        if i >= len(lines) or lines[i] != want:
            return False
        i += 1
        skip = False
    return skip or i == len(lines)


def guide_host_tool(env, tap):
    blocks = literal_blocks(GUIDE)
    n, block = find_block(blocks, "-machine q35", "path=/tmp/vm.sock")
    vm = env.start(qemu_lines(block)[0], "guide-host")
    ns, session = find_block(blocks, "$ memexpose-host -s /tmp/vm.sock info")
    bad = []
    ran = 0
    for cmd, shown in tool_session(session):
        verb = shlex.split(cmd)[3]
        if verb == "serve":
            argv = [env.tool] + [env.relocate(a)
                                 for a in shlex.split(cmd)[1:]]
            p = subprocess.Popen(argv, cwd=env.tmp, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            try:
                vm.wait_link("memexpose-host")
                p.terminate()
                out, err = p.communicate(timeout=20)
                ok = p.returncode == 0
            except Failed as e:
                p.kill()
                out, err = p.communicate()
                ok = False
                err += str(e)
            rc = p.returncode
        else:
            r = env.tool_run(cmd)
            out, err, rc = r.stdout, r.stderr, r.returncode
            # Nothing rings B's doorbell here: wait times out (exit 6).
            ok = rc == (6 if verb == "wait" else 0) and \
                check_output(out, shown)
        vm.wait("the tool's link gone", lambda d: d["link"] != "up")
        ran += 1
        if not ok:
            bad.append("%s: exit %d, printed %r, %r" % (cmd, rc, out, err))
        if verb == "dump":
            # Before "load" changes that RAM.
            args = shlex.split(cmd)[4:]
            dump = os.path.join(env.tmp, args[2])
            ref = os.path.join(env.tmp, "pmemsave.bin")
            size = int(args[1][:-1]) << 20 if args[1].endswith("M") else \
                int(args[1], 0)
            vm.qmp("pmemsave", val=int(args[0], 0), size=size, filename=ref)
            if not (os.path.getsize(dump) == size and subprocess.run(
                    ["cmp", "-s", dump, ref]).returncode == 0):
                bad.append("the dump is not what pmemsave saves")
    tap.ok(not bad and ran >= 8,
           "guide lines %d, %d: the memexpose-host session (%d commands)"
           " prints what the guide shows; the dump is pmemsave's"
           % (n, ns, ran)) or diag("\n".join(bad))
    env.stop_all()


def guide_boot(env, tap):
    if not os.path.exists(env.firmware):
        raise Failed("no %s (make firmware)" % env.firmware)
    blocks = literal_blocks(GUIDE)
    n, block = find_block(blocks, "name=slave,boot-target=on")
    vm = env.start(qemu_lines(block)[0], "guide-slave")
    ns, session = find_block(blocks, "memexpose-host -s /tmp/mx-link.sock"
                                     " state")
    bad = []
    for cmd, shown in tool_session(session):
        # The firmware's path is relative to the project's directory.
        r = env.tool_run(cmd, cwd=TOP)
        if r.returncode != 0 or not check_output(r.stdout, shown):
            bad.append("%s: exit %d, printed %r, %r" % (cmd, r.returncode,
                                                         r.stdout, r.stderr))
        vm.wait("the tool's link gone", lambda d: d["link"] != "up")
    uart = os.path.join(env.tmp, "slave-uart.log")
    deadline = time.monotonic() + 10
    text = ""
    while "hello from the aarch64 slave" not in text and \
            time.monotonic() < deadline:
        with open(uart, errors="replace") as f:
            text = f.read()
        time.sleep(0.1)
    if "cookie 0x0000000000001234" not in text:
        bad.append("slave UART: %r" % text)
    tap.ok(not bad, "guide lines %d, %d: the host boots the slave VM with"
           " memexpose-host" % (n, ns)) or diag("\n".join(bad))
    env.stop_all()


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = False

    def ok(self, cond, name):
        self.n += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, name))
        sys.stdout.flush()
        self.failed |= not cond
        return cond


CASES = [(readme_try_it, 2), (guide_two_vms, 6), (guide_virt, 2),
         (guide_host_tool, 1), (guide_boot, 1)]


def main():
    if len(sys.argv) != 5:
        sys.stderr.write(__doc__)
        return 2
    env = Env(*sys.argv[1:])
    tap = Tap()
    print("1..%d" % sum(n for _, n in CASES))
    try:
        for fn, count in CASES:
            first = tap.n
            try:
                fn(env, tap)
            except (Failed, OSError, subprocess.TimeoutExpired) as e:
                diag("%s: %s" % (fn.__name__, e))
                for vm in env.vms:
                    diag("%s: %s" % (vm.tag, vm.log_tail()))
                env.stop_all()
            while tap.n < first + count:
                tap.ok(False, "%s: not reached" % fn.__name__)
    finally:
        env.stop_all()
    if not tap.failed:
        shutil.rmtree(env.tmp, ignore_errors=True)
    else:
        diag("logs in %s" % env.tmp)
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
