"""``harness data fetch``: download a dataset's archive, verify it, unpack it, check it, and only
then put it in place.

Everything happens in a hidden scratch folder inside the data folder (so the last step is a
rename on one file system): the archive is streamed there and its sha256 computed on the way,
unpacked beside it, checked (harness.data.check), and the checked folder renamed to
``<data dir>/<name>``. A wrong checksum, a broken archive, a failed check or an interruption
removes the scratch folder and leaves the data folder as it was.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from harness.data.check import SOURCE_RECORD, Finding, check
from harness.data.sources import MMLU_HUB_MIRROR, SOURCES, Source
from harness.files import write_json

_BLOCK = 1 << 20


class FetchError(RuntimeError):
    """The download, its checksum, its archive or its contents are wrong; nothing was written."""

    def __init__(self, message: str, findings: Sequence[Finding] = ()):
        super().__init__(message)
        self.findings = list(findings)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def download(url: str, dest: Path, *, timeout_s: float = 60.0, say: Callable[[str], None] = _say) -> str:
    """Stream ``url`` into ``dest``; its sha256."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "finetune-tradeoff-harness"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done, shown = 0, time.monotonic()
            for block in iter(lambda: response.read(_BLOCK), b""):
                out.write(block)
                digest.update(block)
                done += len(block)
                if time.monotonic() - shown > 5:
                    shown = time.monotonic()
                    of = f" of {total / 2**20:.0f}" if total else ""
                    say(f"harness data: {done / 2**20:.0f}{of} MiB")
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise FetchError(f"{url}: download failed ({getattr(e, 'reason', None) or e})") from None
    return digest.hexdigest()


def _safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and not name.startswith("\\")


def unpack(archive: Path, kind: str, into: Path, url: str) -> None:
    """Unpack a zip or tar archive, refusing members that would land outside ``into``."""
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as z:
                bad = next((n for n in z.namelist() if not _safe_name(n)), None)
                if bad is not None:
                    raise FetchError(f"{url}: archive member {bad!r} points outside its folder")
                z.extractall(into)
        else:
            with tarfile.open(archive) as t:
                t.extractall(into, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise FetchError(f"{url}: not a readable {kind} archive ({e})") from None


def _content_root(unpacked: Path, source: Source, url: str) -> Path:
    """The folder of the archive that becomes ``<data dir>/<name>``."""
    root = unpacked / source.root
    if (root / source.marker).exists():
        return root
    found = sorted(p.parent for p in unpacked.rglob(source.marker) if len(p.relative_to(unpacked).parts) <= 3)
    if not found:
        raise FetchError(
            f"{url}: the archive has no {source.marker} (expected {source.root}/{source.marker})"
        )
    return found[0]


def is_official(source: Source, url: str, sha256: str) -> bool:
    """Whether the archive fetched is the official release (what the release checks assume)."""
    if source.sha256 is not None:
        return sha256 == source.sha256
    return url in (source.url, MMLU_HUB_MIRROR) if source.name == "mmlu" else url == source.url


def fetch(
    name: str,
    data_dir: Path,
    *,
    url: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    say: Callable[[str], None] = _say,
) -> tuple[Path, list[Finding]]:
    """Fetch dataset ``name`` into ``data_dir/name``: (its folder, the check's warnings).

    ``url`` and ``sha256`` override the official ones (also ``$HARNESS_<NAME>_URL`` and
    ``$HARNESS_<NAME>_SHA256``; sha256 "none" checks none). A folder already there is kept
    unless ``force``. Raises FetchError, leaving ``data_dir`` as it was.
    """
    source = SOURCES[name]
    url = source.url_of(url)
    expected = source.sha256_of(sha256)
    target = Path(data_dir) / name
    if target.exists() and not force:
        say(f"harness data: {target} exists; kept (`harness data check` checks it, --force fetches again)")
        return target, []
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".fetch-{name}-", dir=data_dir))
    try:
        archive = work / f"{name}.{source.archive}"
        say(f"harness data: fetching {name} from {url}")
        got = download(url, archive, say=say)
        if expected is not None and got != expected:
            raise FetchError(f"{url}: sha256 {got}, expected {expected} (a corrupted or different archive)")
        if expected is None:
            say(f"harness data: {name}: no archive checksum to compare (sha256 {got}); its files are checked")
        unpacked = work / "unpacked"
        unpack(archive, source.archive, unpacked, url)
        archive.unlink()
        content = _content_root(unpacked, source, url)
        official = is_official(source, url, got)
        write_json(
            content / SOURCE_RECORD,
            {
                "name": name,
                "url": url,
                "sha256": got,
                "official": official,
                "fetched": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        findings = check(name, content, release=official)
        errors = [f for f in findings if f.level == "error"]
        if errors:
            inside = [
                Finding(f.level, f.where.replace(str(content), f"{source.archive}:{source.root}"), f.message)
                for f in errors
            ]
            raise FetchError(f"{url}: the unpacked archive fails its check; nothing written", inside)
        if target.exists():
            target.rename(work / "replaced")
        content.rename(target)
        return target, findings
    finally:
        shutil.rmtree(work, ignore_errors=True)
