"""Writing files so that a reader never sees half of one, hashing them, and locking them
between processes."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class OutputError(OSError):
    """A file could not be written (a full disk, a folder that cannot be made); the message is
    one line naming the path. Nothing half written is left at that path."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def atomic_write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file beside it and a rename: a reader
    sees the old file or the whole new one. When writing fails (ENOSPC, say), the temporary
    file is removed, ``path`` is left as it was, and :class:`OutputError` names the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(e.errno, f"cannot write {path}: {e.strerror or e}") from None
    return path


def write_json(path: Path, data: Any, *, indent: int = 1) -> Path:
    """``data`` as JSON (no NaN: undefined numbers must be written as null first), atomically."""
    return atomic_write(path, json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False) + "\n")


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (made if absent); the kernel drops it if the
    process dies, so a killed holder never blocks the others."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
