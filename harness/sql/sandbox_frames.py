"""Frames over a socket pair between the sandbox's caller and its worker: a length, then a
pickle whose unpickling names no class (rows are tuples of plain values). Only the standard
library: the worker imports this.
"""

from __future__ import annotations

import pickle
import socket
import struct
import time

_HEADER = struct.Struct("!Q")


class _Late(Exception):
    """The worker did not answer by the deadline."""


class _Lost(Exception):
    """The worker died or said something it should not."""


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_HEADER.pack(len(payload)))
    sock.sendall(payload)


def _recv_exact(sock: socket.socket, n: int, deadline: float | None) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Late()
            sock.settimeout(left)
        try:
            k = sock.recv_into(view[got:])
        except TimeoutError:
            raise _Late() from None
        if k == 0:
            raise _Lost("the worker closed its end")
        got += k
    return buf


def _recv_frame(sock: socket.socket, deadline: float | None, limit: int) -> bytearray:
    (n,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, deadline))
    if n > limit:
        raise _Lost(f"a frame of {n} bytes (at most {limit} expected)")
    return _recv_exact(sock, n, deadline)


class _BufferReader:
    """A file over a buffer, so that unpickling copies one value at a time, not the frame."""

    def __init__(self, buf: bytearray) -> None:
        self._view = memoryview(buf)
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._view) if n < 0 else min(self._pos + n, len(self._view))
        data = bytes(self._view[self._pos : end])
        self._pos = end
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self) -> bytes:
        rest = self._view[self._pos :]
        end = bytes(rest).find(b"\n")
        return self.read(len(rest) if end < 0 else end + 1)


class _RowsUnpickler(pickle.Unpickler):
    """Rows are tuples of int, float, str, bytes and None: no class may be named."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"a worker frame names {module}.{name}")


def _unpack(buf: bytearray):
    return _RowsUnpickler(_BufferReader(buf)).load()
