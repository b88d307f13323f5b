"""Is a data folder usable, and is it the known release? One finding per problem.

Two levels of checks. The layout ones hold for any copy the harness can read: the files are
there, parse, and every Spider dev question has its database. The release ones say whether it is
the official release the harness's numbers are computed on: its counts (1,034 Spider dev
questions over 20 databases, 14,042 MMLU test questions over 57 subjects, ...) and the checksums
of its files. A folder that ``harness data fetch`` filled from another archive than the official
one (a mirror given with its own checksum, a test fixture) records so, and gets the layout checks
only.

Spider's ``wta_1`` database is known to be absent from some copies (the one this project was built
on): its absence is a warning with the number of questions it costs, not an error.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness.data.mmlu_checksums import MMLU_CSV_SHA256
from harness.files import file_sha256 as sha256_of

SOURCE_RECORD = ".harness-source.json"  # what `harness data fetch` fetched into the folder

# The corrected (2020) dev.json and tables.json of the official Spider release; each checksum is
# given by two independent public records of the release.
SPIDER_SHA256 = {
    "dev.json": "30d64a3fccde493226df79687aed9e4a1c0129525baf44f29c0573d914d758a4",
    "tables.json": "61bb20aa401f03164e2d7f3b16509b7b5f79cc9c943ca7bd159046df1159e2ed",
}
SPIDER_COUNTS = {"dev.json": 1034, "train_spider.json": 7000, "tables.json": 166}
SPIDER_DEV_DATABASES = 20
SPIDER_KNOWN_MISSING = ("wta_1",)  # absent from the copy this project was built on
MMLU_SPLITS = ("dev", "val", "test")
MMLU_COUNTS = {"dev": 285, "val": 1531, "test": 14042}
MMLU_SUBJECTS = 57
_SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    where: str  # the file or folder at fault
    message: str

    def line(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


def source_record(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / SOURCE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_known_release(folder: Path) -> bool:
    """False when ``harness data fetch`` filled ``folder`` from another archive than the official one."""
    record = source_record(folder)
    return record is None or bool(record.get("official", True))


class _Findings(list):
    def error(self, where, message: str) -> None:
        self.append(Finding("error", str(where), message))

    def warning(self, where, message: str) -> None:
        self.append(Finding("warning", str(where), message))


def _json_list(path: Path, out: _Findings) -> list | None:
    if not path.is_file():
        out.error(path, "missing")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        out.error(path, f"not valid JSON ({e})")
        return None
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        out.error(path, "expected a JSON list of objects")
        return None
    return data


def check_spider(folder: Path, *, release: bool = True) -> list[Finding]:
    """The findings for a Spider folder in the official layout."""
    folder = Path(folder)
    out = _Findings()
    if not folder.is_dir():
        out.error(folder, "no such folder")
        return out
    tables = _json_list(folder / "tables.json", out)
    dev = _json_list(folder / "dev.json", out)
    train = _json_list(folder / "train_spider.json", out)
    for name, rows in (("tables.json", tables), ("dev.json", dev), ("train_spider.json", train)):
        if rows is None:
            continue
        key = ("db_id",) if name == "tables.json" else ("db_id", "question", "query")
        bad = next((i for i, row in enumerate(rows) if any(not row.get(k) for k in key)), None)
        if bad is not None:
            out.error(folder / name, f"item {bad} lacks one of {', '.join(key)}")
        elif release and len(rows) != SPIDER_COUNTS[name]:
            out.error(folder / name, f"{len(rows)} items, the official release has {SPIDER_COUNTS[name]}")
    if release:
        for name, expected in SPIDER_SHA256.items():
            got = sha256_of(folder / name) if (folder / name).is_file() else expected
            if got != expected:
                out.error(
                    folder / name, f"not the official release's file (sha256 {got}, expected {expected})"
                )
    if dev is None:
        return out
    per_db = Counter(row.get("db_id") for row in dev)
    if release and len(per_db) != SPIDER_DEV_DATABASES:
        out.error(
            folder / "dev.json", f"{len(per_db)} databases, the official release has {SPIDER_DEV_DATABASES}"
        )
    known = {row.get("db_id") for row in tables or ()}
    for db_id, n in sorted(per_db.items()):
        if tables is not None and db_id not in known:
            out.error(folder / "tables.json", f"no schema for database {db_id!r} ({n} dev items)")
        path = folder / "database" / str(db_id) / f"{db_id}.sqlite"
        if not path.is_file():
            if db_id in SPIDER_KNOWN_MISSING:
                out.warning(path, f"database {db_id!r} missing (known): its {n} dev items will be skipped")
            else:
                out.error(path, f"database {db_id!r} missing ({n} dev items)")
            continue
        with open(path, "rb") as f:
            if f.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
                out.error(path, f"not an SQLite database ({n} dev items)")
    return out


def _csv_rows(path: Path, out: _Findings) -> int:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        out.error(path, f"unreadable CSV ({e})")
        return 0
    for i, row in enumerate(rows, 1):
        if len(row) != 6 or row[5].strip() not in ("A", "B", "C", "D"):
            out.error(path, f"line {i}: expected question, 4 choices and an answer letter A-D")
            return len(rows)
    return len(rows)


def check_mmlu(folder: Path, *, release: bool = True) -> list[Finding]:
    """The findings for an MMLU folder in the original layout (``<split>/<subject>_<split>.csv``)."""
    folder = Path(folder)
    out = _Findings()
    if not folder.is_dir():
        out.error(folder, "no such folder")
        return out
    for split in MMLU_SPLITS:
        split_dir = folder / split
        if not split_dir.is_dir():
            out.error(split_dir, "missing")
            continue
        files = sorted(split_dir.glob(f"*_{split}.csv"))
        if not files:
            out.error(split_dir, f"no <subject>_{split}.csv files")
            continue
        items = sum(_csv_rows(path, out) for path in files)
        if not release:
            continue
        if len(files) != MMLU_SUBJECTS:
            out.error(split_dir, f"{len(files)} subjects, the original release has {MMLU_SUBJECTS}")
        elif items != MMLU_COUNTS[split]:
            out.error(split_dir, f"{items} questions, the original release has {MMLU_COUNTS[split]}")
        for path in files:
            expected = MMLU_CSV_SHA256.get(f"{split}/{path.name}")
            if expected is None:
                out.error(path, "not a subject of the original release")
            elif sha256_of(path) != expected:
                out.error(
                    path, f"not the original release's file (sha256 {sha256_of(path)}, expected {expected})"
                )
    return out


CHECKS = {"spider": check_spider, "mmlu": check_mmlu}


def check(name: str, folder: Path, *, release: bool | None = None) -> list[Finding]:
    """``name``'s findings for ``folder``; ``release`` None: as its fetch record says."""
    if release is None:
        release = is_known_release(folder)
    return CHECKS[name](Path(folder), release=release)


def summary_line(name: str, folder: Path, findings: list[Finding], release: bool) -> str:
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    what = "the official release" if release else "the layout only: not fetched from the official archive"
    verdict = f"{errors} problem(s)" if errors else "ok"
    extra = f", {warnings} warning(s)" if warnings else ""
    return f"{name}: {verdict}{extra} at {folder} (checked: {what})"
