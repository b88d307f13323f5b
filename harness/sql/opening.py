"""readable_database: how to open a SQLite file read-only without creating anything beside it.

A read-only open (``mode=ro``) of a database in WAL mode still makes ``<file>-wal`` and
``<file>-shm`` beside it when it can: a harness that only reads would write into a user's
folder. So a WAL-mode file is opened with ``immutable=1`` (no locking, no side files) when it
has no pending ``-wal`` file, and otherwise through a private copy of the file and its
``-wal``, checkpointed once into an ordinary (rollback-journal) database in a temporary folder
of this process, so that the changes the ``-wal`` holds are read too. A file in rollback mode
(every Spider database) is opened with ``mode=ro``, which creates nothing and still sees a
writer's committed changes. Only the standard library: the sandbox's worker imports this.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import stat
import tempfile
import threading
from pathlib import Path
from urllib.parse import quote

_HEADER = b"SQLite format 3\x00"
_WAL_MODE = 2  # bytes 18 and 19 of the header: file format write/read version (2: WAL)

# A private copy is made only of a file this size or smaller (with its -wal); a larger WAL-mode
# database with pending changes must be checkpointed by its owner first.
MAX_COPY_BYTES = 1 << 30

_COPIES_LOCK = threading.Lock()
_COPIES: dict[tuple, Path] = {}
_COPY_DIR: list[Path] = []


def is_wal_mode(path: Path) -> bool:
    """Whether the file's header says WAL mode (read from the first 20 bytes, nothing opened by SQLite)."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return False
    return len(head) == 20 and head.startswith(_HEADER) and _WAL_MODE in (head[18], head[19])


def readable_database(path: str | Path) -> tuple[Path, bool]:
    """(file to open, whether to open it ``immutable``) for reading ``path`` without creating
    any file beside it; see the module's docstring. Raises ``ValueError`` (one line) for a
    WAL-mode file with pending changes too large to copy."""
    path = Path(path)
    if not is_wal_mode(path):
        return path, False
    wal = path.with_name(path.name + "-wal")
    try:
        info = wal.lstat()
    except OSError:
        return path, True
    # Only a regular -wal file is read: a link, a pipe or a device there is ignored, as an
    # immutable open ignores every side file.
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        return path, True
    size = path.stat().st_size + info.st_size
    if size > MAX_COPY_BYTES:
        raise ValueError(
            f"{path}: a WAL-mode database with changes pending in its -wal file, {size:,} bytes in all, "
            f"more than the {MAX_COPY_BYTES >> 20} MiB copied to read it without writing beside it; "
            f"checkpoint it first (sqlite3 {path.name} 'PRAGMA wal_checkpoint(TRUNCATE)')"
        )
    return _private_copy(path, wal), True


def readonly_uri(path: str | Path, immutable: bool) -> str:
    """The URI of a read-only connection to ``path`` (``immutable``: no locking, no side files)."""
    return f"file:{quote(str(path))}?mode=ro" + ("&immutable=1" if immutable else "")


def connect_readonly(path: str | Path, **kwargs) -> sqlite3.Connection:
    """A read-only connection to ``path`` that creates nothing beside it (see :func:`readable_database`)."""
    target, immutable = readable_database(path)
    return sqlite3.connect(readonly_uri(target, immutable), uri=True, **kwargs)


def _private_copy(path: Path, wal: Path) -> Path:
    st, wst = path.stat(), wal.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, wst.st_size, wst.st_mtime_ns)
    with _COPIES_LOCK:
        if key in _COPIES and _COPIES[key].is_file():
            return _COPIES[key]
        if not _COPY_DIR:
            _COPY_DIR.append(Path(tempfile.mkdtemp(prefix="harness-db-")))
            atexit.register(shutil.rmtree, _COPY_DIR[0], True)
        folder = Path(tempfile.mkdtemp(dir=_COPY_DIR[0]))
        copy = folder / path.name
        shutil.copyfile(path, copy)
        shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        conn = sqlite3.connect(str(copy), isolation_level=None)
        try:
            # Checkpoints the copied -wal into the copy and leaves it in rollback mode: then it
            # is a self-contained file that an immutable open reads whole.
            conn.execute("PRAGMA journal_mode = DELETE")
        finally:
            conn.close()
        for side in ("-wal", "-shm"):
            copy.with_name(copy.name + side).unlink(missing_ok=True)
        _COPIES[key] = copy
        return copy


def _forget_copies_after_fork() -> None:
    global _COPIES_LOCK
    _COPIES_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_copies_after_fork)
