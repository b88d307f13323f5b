"""``harness data fetch`` and ``harness data check``: the evaluation data, fetched and checked."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "data"

DESCRIPTION = """\
Get the evaluation data and check it. Sources (harness/data/sources.py): Spider 1.0's official
release (spider_data.zip, CC BY-SA 4.0, sha256 checked) and MMLU's original data.tar (MIT; its
171 CSV files checked one by one). Data folder: $HARNESS_DATA_DIR, default ./data.

The harness looks for a dataset in: --data-dir TASK=PATH (or a config's data_dir; --spider-dir
and --mmlu-dir are the same), $HARNESS_SPIDER_DIR / $HARNESS_MMLU_DIR, $HARNESS_DATA_DIR/<name>,
./data/<name>, ../shared/data/<name>.
"""


def _print_findings(findings) -> None:
    for finding in findings:
        print(f"harness data: {finding.line()}", file=sys.stderr)


def fetch_command(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.data.fetch import FetchError, fetch
    from harness.data.sources import SOURCES, data_root

    root = data_root(args.data_dir)
    rc = 0
    for name in args.only or list(SOURCES):
        try:
            folder, findings = fetch(
                name,
                root,
                url=getattr(args, f"{name}_url"),
                sha256=getattr(args, f"{name}_sha256"),
                force=args.force,
            )
        except FetchError as e:
            print(f"harness data: error: {e}", file=sys.stderr)
            _print_findings(e.findings)
            rc = 1
            continue
        _print_findings(findings)
        print(f"harness data: {name} -> {folder}")
    if rc == 0:
        again = f"harness data check {root}" if args.data_dir else "harness data check"
        print(f"harness data: done; `{again}` checks it again")
    return rc


def _datasets_in(folder: Path) -> dict[str, Path]:
    """The datasets a folder given to `harness data check` holds: itself, or its subfolders."""
    from harness.data.sources import SOURCES

    for name, source in SOURCES.items():
        if (folder / source.marker).exists():
            return {name: folder}
    return {name: folder / name for name in SOURCES}


def _located(args: argparse.Namespace) -> dict[str, Path | None]:
    """The folder of each dataset, where the harness would look (None, and said, if nowhere)."""
    from harness.data.check import Finding
    from harness.data.sources import SOURCES, DataNotFound, locate

    folders: dict[str, Path | None] = {}
    for name in SOURCES:
        try:
            folders[name] = locate(name, getattr(args, f"{name}_dir"), option=f"--{name}-dir")
        except DataNotFound as e:
            _print_findings([Finding("error", name, str(e))])
            folders[name] = None
    return folders


def check_command(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.data.check import check, is_known_release, summary_line

    folders: dict[str, Path | None] = dict(_datasets_in(Path(args.folder))) if args.folder else _located(args)
    errors = 0
    for name, folder in folders.items():
        if folder is None:
            errors += 1
            continue
        release = False if args.layout_only else is_known_release(folder)
        findings = check(name, folder, release=release)
        _print_findings(findings)
        errors += sum(f.level == "error" for f in findings)
        print(f"harness data: {summary_line(name, folder, findings, release)}")
    return 1 if errors else 0


def _add_fetch(data_sub) -> None:
    fetch = data_sub.add_parser(
        "fetch",
        help="download Spider and MMLU, verify, unpack, check, put in place",
        description="Download each dataset's official archive (or the URL given), verify its sha256, "
        "unpack and check it in a scratch folder, then move it to <data dir>/<name>: a failure "
        "leaves the data folder as it was.",
    )
    fetch.add_argument(
        "--data-dir", default=None, help="where to put them (default: $HARNESS_DATA_DIR, else ./data)"
    )
    fetch.add_argument(
        "--only", action="append", choices=("spider", "mmlu"), help="only this dataset (repeatable)"
    )
    fetch.add_argument(
        "--force", action="store_true", help="fetch again a dataset already there (replaced atomically)"
    )
    for name in ("spider", "mmlu"):
        fetch.add_argument(
            f"--{name}-url",
            default=None,
            help=f"a mirror of the {name} archive (also $HARNESS_{name.upper()}_URL)",
        )
        fetch.add_argument(
            f"--{name}-sha256",
            default=None,
            help=f"the sha256 the {name} archive must have "
            f"(also $HARNESS_{name.upper()}_SHA256; 'none': no check)",
        )
    fetch.set_defaults(func=fetch_command)


def _add_check(data_sub) -> None:
    check = data_sub.add_parser(
        "check",
        help="check a data folder: layout, counts, checksums, missing databases",
        description="Check the data the harness would use (or FOLDER: a data folder holding spider/ and "
        "mmlu/, or one dataset's folder). One line per problem; exit status 1 if any, 0 when only "
        "warnings (Spider's wta_1 database, known to be missing from some copies).",
    )
    check.add_argument(
        "folder", nargs="?", default=None, help="a data folder (default: where the harness looks)"
    )
    check.add_argument("--spider-dir", default=None, help="the Spider folder to check")
    check.add_argument("--mmlu-dir", default=None, help="the MMLU folder to check")
    check.add_argument(
        "--layout-only",
        action="store_true",
        help="check that the files are there and readable, not that they are the official release",
    )
    check.set_defaults(func=check_command)


def add_parser(sub) -> None:
    data = sub.add_parser(
        NAME,
        help="fetch the evaluation data and check a data folder",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="{fetch,check}")
    _add_fetch(data_sub)
    _add_check(data_sub)
