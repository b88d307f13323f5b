"""Where the evaluation data comes from and where the harness looks for it: the one place that
names the official archives, their checksums and the folders searched.

A dataset's folder is found, in this order: the explicit option (``--data-dir spider=PATH``, a config's
``data_dir``), the dataset's own environment variable (``$HARNESS_SPIDER_DIR``,
``$HARNESS_MMLU_DIR``), ``$HARNESS_DATA_DIR/<name>``, ``./data/<name>`` (the folder ``harness data
fetch`` fills by default), then ``../shared/data/<name>`` beside the repository (the machine this
project was built on).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "HARNESS_DATA_DIR"
DEFAULT_DATA_DIR = Path("data")
_REPO_ROOT = Path(__file__).resolve().parents[2]
_SHARED_DATA_DIR = _REPO_ROOT / ".." / "shared" / "data"
FETCH_COMMAND = "harness data fetch"


@dataclass(frozen=True)
class Source:
    """One dataset's official release and how to recognise its folder.

    ``sha256`` is the archive's checksum where a public source confirms it (None where none
    does: the files inside are then checked against their own known checksums). ``root`` is the
    folder inside the archive that becomes ``<data dir>/<name>``.
    """

    name: str
    url: str
    sha256: str | None
    size: int | None  # bytes, for the progress line and a truncated download's error
    archive: str  # "zip" or "tar"
    root: str
    marker: str  # a file or folder that a usable copy has (what the lookup checks)
    licence: str
    homepage: str
    dir_env: str  # the per-dataset folder variable
    url_env: str
    sha256_env: str

    def url_of(self, explicit: str | None = None) -> str:
        return explicit or os.environ.get(self.url_env) or self.url

    def sha256_of(self, explicit: str | None = None) -> str | None:
        """The checksum the download must have; "none" (option or variable) checks none."""
        value = explicit or os.environ.get(self.sha256_env)
        if value is None:
            return self.sha256
        return None if value.strip().lower() == "none" else value.strip().lower()


SOURCES: dict[str, Source] = {
    # The Yale-LILY page's "Spider Dataset" link (the corrected 2020 data, with the test set
    # added in 2023). Its checksum is the one two independent public records of the download
    # give (a provenance record and a dataset card); the size is the provenance record's.
    "spider": Source(
        name="spider",
        url="https://drive.usercontent.google.com/download?id=1403EGqzIDoHMdQF4c9Bkyl7dZLZ5Wt6J"
        "&export=download&confirm=t",
        sha256="00636695dabed6b5f4b8328a16b13e069a2f16591d5efcce57660669c85b121b",
        size=205_800_266,
        archive="zip",
        root="spider_data",
        marker="tables.json",
        licence="CC BY-SA 4.0",
        homepage="https://yale-lily.github.io/spider",
        dir_env="HARNESS_SPIDER_DIR",
        url_env="HARNESS_SPIDER_URL",
        sha256_env="HARNESS_SPIDER_SHA256",
    ),
    # Hendrycks et al.'s original archive, as the MMLU repository's README links it (the same
    # 166,184,960 bytes are served as cais/mmlu's data.tar on the Hugging Face hub). No public
    # checksum of the archive was found: its 171 CSV files are checked one by one instead
    # (harness.data.mmlu_checksums).
    "mmlu": Source(
        name="mmlu",
        url="https://people.eecs.berkeley.edu/~hendrycks/data.tar",
        sha256=None,
        size=166_184_960,
        archive="tar",
        root="data",
        marker="test",
        licence="MIT",
        homepage="https://github.com/hendrycks/test",
        dir_env="HARNESS_MMLU_DIR",
        url_env="HARNESS_MMLU_URL",
        sha256_env="HARNESS_MMLU_SHA256",
    ),
}
MMLU_HUB_MIRROR = "https://huggingface.co/datasets/cais/mmlu/resolve/main/data.tar"


class DataNotFound(ValueError):
    """No folder of a dataset where the harness looked; the message lists where, and the fix."""


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The folder ``harness data fetch`` fills: ``explicit``, else ``$HARNESS_DATA_DIR``, else ./data."""
    if explicit:
        return Path(explicit)
    return Path(os.environ[DATA_DIR_ENV]) if os.environ.get(DATA_DIR_ENV) else DEFAULT_DATA_DIR


def candidates(name: str, explicit: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """The folders searched for dataset ``name``, in order, each with how it was chosen.

    An explicit folder or the dataset's own variable is the only candidate: a user who named a
    folder means that one, and a copy found elsewhere would hide their mistake.
    """
    source = SOURCES[name]
    if explicit:
        return [(Path(explicit), "the given folder")]
    if os.environ.get(source.dir_env):
        return [(Path(os.environ[source.dir_env]), f"${source.dir_env}")]
    found = []
    if os.environ.get(DATA_DIR_ENV):
        found.append((Path(os.environ[DATA_DIR_ENV]) / name, f"${DATA_DIR_ENV}/{name}"))
    found.append((DEFAULT_DATA_DIR / name, f"./{DEFAULT_DATA_DIR}/{name}"))
    repo_default = _REPO_ROOT / DEFAULT_DATA_DIR / name
    if repo_default.resolve() != (DEFAULT_DATA_DIR / name).resolve():
        found.append((repo_default, "the repository's data folder"))
    found.append((_SHARED_DATA_DIR / name, "../shared/data"))
    return found


def locate(name: str, explicit: str | os.PathLike | None = None, *, option: str = "") -> Path:
    """The folder of dataset ``name`` (the first candidate holding its marker file), resolved.

    Raises DataNotFound naming every folder looked at and the command that fetches the data.
    """
    source = SOURCES[name]
    looked = candidates(name, explicit)
    for path, _ in looked:
        if (path / source.marker).exists():
            return path.resolve()
    where = "; ".join(f"{path.resolve()} ({how})" for path, how in looked)
    marker = source.marker if "." in source.marker else f"{source.marker}/"
    hint = f"pass {option} or " if option else ""
    raise DataNotFound(
        f"no {name} data ({marker} not found) at {where}; "
        f"get it with `{FETCH_COMMAND}` (into ./{DEFAULT_DATA_DIR} or ${DATA_DIR_ENV}), "
        f"or {hint}set ${source.dir_env}"
    )
