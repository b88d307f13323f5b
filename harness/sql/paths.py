"""database_file: a Spider ``db_id`` to its database file, refusing any that would leave the folder.

``db_id`` comes from a data file, and the database it names is opened and its rows may be quoted
in a report, so a name that is not plain, or a symbolic link out of ``database``, is an error.
"""

from __future__ import annotations

import os
from pathlib import Path


def is_plain_name(name: str) -> bool:
    """Whether ``name`` names a file or folder right here: not empty, no path separator (either
    kind, on any system), no "..", not absolute, no NUL."""
    return (
        isinstance(name, str)
        and name not in ("", ".")
        and ".." not in name
        and "\x00" not in name
        and "/" not in name
        and "\\" not in name
        and not os.path.isabs(name)
    )


def database_file(root: Path, db_id: str) -> Path:
    """``root/database/<db_id>/<db_id>.sqlite``, resolved (the file need not exist).

    Raises ``ValueError`` naming ``db_id`` when it is not a plain name (empty, a path
    separator, "..", absolute, a NUL), or when the resolved path, symbolic links followed,
    is not inside ``root/database`` resolved: a data file must not make us open, and then
    quote, a database elsewhere.
    """
    if not is_plain_name(db_id):
        raise ValueError(
            f"db_id {db_id!r} is not a plain database name (no path separators, '..' or absolute paths)"
        )
    base = (Path(root) / "database").resolve()
    path = (base / db_id / f"{db_id}.sqlite").resolve()
    if not path.is_relative_to(base):
        raise ValueError(
            f"db_id {db_id!r}: its database resolves to {path}, outside {base} (a symbolic link?)"
        )
    return path
