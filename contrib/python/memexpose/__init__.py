# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (c) 2026 The memexpose authors
"""memexpose: Python bindings for libmemexpose (ctypes).

A Link is one memexpose link to a VM's device (or another peer), with
the library's rules: single-threaded, errors raised as MemexposeError
with the library's reason.  Zero-copy mappings are memoryviews of the
VM's RAM.  See contrib/libmemexpose/README.md for the semantics.

    from memexpose import Link
    with Link.connect("/tmp/vm.sock") as l:
        print(hex(l.read_value(0x100000, 8)))
        ram = l.map(0x100000, 1 << 20)      # memoryview, or None
        l.ring(0, b"hello")
"""

import ctypes
import ctypes.util
import os

__all__ = ["Link", "MemexposeError", "load_library"]

PERM_READ = 1
PERM_RW = 3
MAP_FD, MAP_FORWARD, MAP_DENIED = 0, 1, 2
FEAT_MAP, FEAT_BULK, FEAT_BOOT, FEAT_HEARTBEAT, FEAT_DB_RING = (
    1, 2, 4, 8, 16)
ERR_AGAIN = -6

_INVAL_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64,
                             ctypes.c_uint64)
_DB_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint,
                          ctypes.c_void_p, ctypes.c_size_t)


class _Options(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("features", ctypes.c_uint64),
                ("vectors", ctypes.c_uint), ("queue_depth", ctypes.c_uint),
                ("timeout_ms", ctypes.c_uint), ("trust_peer", ctypes.c_bool),
                ("on_invalidate", _INVAL_FN), ("on_doorbell", _DB_FN),
                ("opaque", ctypes.c_void_p), ("heartbeat_ms", ctypes.c_uint)]


class _PeerInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 64),
                ("version_minor", ctypes.c_uint),
                ("features", ctypes.c_uint64), ("negotiated", ctypes.c_uint64),
                ("page_size", ctypes.c_uint), ("role", ctypes.c_uint),
                ("vectors", ctypes.c_uint), ("queue_depth", ctypes.c_uint),
                ("max_data", ctypes.c_uint)]


class _Range(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_uint64), ("length", ctypes.c_uint64),
                ("kind", ctypes.c_uint), ("perm", ctypes.c_uint),
                ("reason", ctypes.c_uint), ("host", ctypes.c_void_p),
                ("map_addr", ctypes.c_uint64), ("map_len", ctypes.c_uint64),
                ("why", ctypes.c_char_p)]


class _Doorbell(ctypes.Structure):
    _fields_ = [("vector", ctypes.c_uint), ("len", ctypes.c_size_t),
                ("data", ctypes.c_uint8 * 256)]


class MemexposeError(Exception):
    """A failed call: .code is the library's result, .reason its text."""

    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code
        self.reason = reason


_libs = {}


def load_library(path=None):
    """Load libmemexpose.so: @path, $LIBMEMEXPOSE, or the system's."""
    path = path or os.environ.get("LIBMEMEXPOSE") or \
        ctypes.util.find_library("memexpose") or "libmemexpose.so.0"
    if path in _libs:
        return _libs[path]
    lib = ctypes.CDLL(path)
    p, u64, cu = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint
    sigs = {
        "mx_options_init": (None, [ctypes.POINTER(_Options)]),
        "mx_link_new": (p, [ctypes.POINTER(_Options)]),
        "mx_connect": (ctypes.c_int, [p, ctypes.c_char_p]),
        "mx_listen": (ctypes.c_int, [p, ctypes.c_char_p, ctypes.c_int]),
        "mx_close": (None, [p]),
        "mx_link_error": (ctypes.c_char_p, [p]),
        "mx_link_up": (ctypes.c_bool, [p]),
        "mx_peer": (ctypes.POINTER(_PeerInfo), [p]),
        "mx_strerror": (ctypes.c_char_p, [ctypes.c_int]),
        "mx_dispatch": (ctypes.c_int, [p, ctypes.c_int]),
        "mx_read": (ctypes.c_int, [p, u64, p, ctypes.c_size_t]),
        "mx_write": (ctypes.c_int, [p, u64, p, ctypes.c_size_t]),
        "mx_read_value": (ctypes.c_int, [p, u64, cu,
                                         ctypes.POINTER(ctypes.c_uint64)]),
        "mx_write_value": (ctypes.c_int, [p, u64, cu, u64]),
        "mx_map": (ctypes.c_int, [p, u64, u64, ctypes.POINTER(_Range)]),
        "mx_unmap": (None, [p, p]),
        "mx_ring": (ctypes.c_int, [p, cu, p, ctypes.c_size_t]),
        "mx_credits": (cu, [p]),
        "mx_wait_doorbell": (ctypes.c_int, [p, ctypes.POINTER(_Doorbell),
                                            ctypes.c_int]),
        "mx_barrier": (ctypes.c_int, [p]),
        "mx_ping": (ctypes.c_int, [p]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    _libs[path] = lib
    return lib


class Link:
    """One link; use Link.connect() or Link.listen()."""

    def __init__(self, name="memexpose-py", timeout_ms=1000, vectors=4,
                 queue_depth=32, trust_peer=False, features=None,
                 library=None):
        self._lib = load_library(library)
        opt = _Options()
        self._lib.mx_options_init(ctypes.byref(opt))
        self._name = name.encode()
        opt.name = self._name
        opt.timeout_ms = timeout_ms
        opt.vectors = vectors
        opt.queue_depth = queue_depth
        opt.trust_peer = trust_peer
        if features is not None:
            opt.features = features
        self._l = self._lib.mx_link_new(ctypes.byref(opt))
        if not self._l:
            raise MemexposeError(-3, "bad link options")
        self._maps = []

    @classmethod
    def connect(cls, path, **kw):
        link = cls(**kw)
        link._check(link._lib.mx_connect(link._l, path.encode()))
        return link

    @classmethod
    def listen(cls, path, timeout_ms=-1, **kw):
        link = cls(**kw)
        link._check(link._lib.mx_listen(link._l, path.encode(), timeout_ms))
        return link

    def _check(self, ret):
        if ret != 0:
            reason = self._lib.mx_link_error(self._l).decode() or \
                self._lib.mx_strerror(ret).decode()
            if ret > 0:
                reason = "refused by the peer: " + \
                    self._lib.mx_strerror(ret).decode()
            raise MemexposeError(ret, reason)
        return ret

    def close(self):
        if self._l:
            for view in self._maps:
                view.release()
            self._maps = []
            self._lib.mx_close(self._l)
            self._l = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def up(self):
        return bool(self._lib.mx_link_up(self._l))

    @property
    def error(self):
        return self._lib.mx_link_error(self._l).decode()

    @property
    def peer(self):
        """The peer's HELLO as a dict."""
        p = self._lib.mx_peer(self._l)
        if not p:
            return None
        p = p.contents
        return {f: (getattr(p, f).decode() if f == "name"
                    else getattr(p, f)) for f, _ in p._fields_}

    def dispatch(self, timeout_ms=0):
        """Serve the peer for up to @timeout_ms (call at least each second)."""
        self._check(self._lib.mx_dispatch(self._l, timeout_ms))

    def read(self, addr, size):
        buf = ctypes.create_string_buffer(size)
        self._check(self._lib.mx_read(self._l, addr, buf, size))
        return buf.raw

    def write(self, addr, data):
        data = bytes(data)
        self._check(self._lib.mx_write(self._l, addr, data, len(data)))

    def read_value(self, addr, width=4):
        val = ctypes.c_uint64()
        self._check(self._lib.mx_read_value(self._l, addr, width,
                                            ctypes.byref(val)))
        return val.value

    def write_value(self, addr, value, width=4):
        self._check(self._lib.mx_write_value(self._l, addr, width, value))

    def map(self, addr, size):
        """A memoryview of the peer's RAM at @addr (zero-copy), or None
        if the peer forwards or refuses the range."""
        r = _Range()
        self._check(self._lib.mx_map(self._l, addr, size, ctypes.byref(r)))
        if not r.host:
            return None
        off = addr - r.map_addr
        size = min(size, r.map_len - off)
        cbuf = (ctypes.c_char * size).from_address(r.host + off)
        view = memoryview(cbuf).cast("B")
        if r.perm != PERM_RW:
            view = view.toreadonly()
        self._maps.append(view)
        return view

    def ring(self, vector, data=b""):
        data = bytes(data)
        self._check(self._lib.mx_ring(self._l, vector, data, len(data)))

    @property
    def credits(self):
        return self._lib.mx_credits(self._l)

    def wait_doorbell(self, timeout_ms=-1):
        """(vector, payload) of the next doorbell, None on timeout."""
        db = _Doorbell()
        ret = self._lib.mx_wait_doorbell(self._l, ctypes.byref(db),
                                         timeout_ms)
        if ret == ERR_AGAIN:
            return None
        self._check(ret)
        return db.vector, bytes(db.data[:db.len])

    def barrier(self):
        self._check(self._lib.mx_barrier(self._l))

    def ping(self):
        self._check(self._lib.mx_ping(self._l))
