"""`harness data fetch` and `harness data check`, against a local HTTP server on 127.0.0.1 serving
small archives in the official layouts (no other network), and the data folders' lookup order."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from harness.cli import main
from harness.data.check import SOURCE_RECORD, check_mmlu, check_spider
from harness.data.sources import DATA_DIR_ENV, SOURCES, DataNotFound, locate
from tests.fixture_archives import CONCERT_ONLY, mmlu_tar, publish, serve, spider_zip
from tests.tiny_data import DEV, build_mmlu_dir, build_spider_dir

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture
def server(tmp_path):
    """(folder served, base URL) of an HTTP server on 127.0.0.1, on a free port."""
    served = tmp_path / "served"
    served.mkdir()
    httpd, base = serve(served)
    yield served, base
    httpd.shutdown()
    httpd.server_close()


def _spider_zip(tmp: Path, dev: list[dict]) -> bytes:
    return spider_zip(tmp, dev)


_mmlu_tar = mmlu_tar
_serve = publish


def _fetch_args(base: str, data_dir: Path, spider_sha: str, mmlu_sha: str) -> list[str]:
    return [
        "data",
        "fetch",
        "--data-dir",
        str(data_dir),
        "--spider-url",
        f"{base}/spider_data.zip",
        "--spider-sha256",
        spider_sha,
        "--mmlu-url",
        f"{base}/data.tar",
        "--mmlu-sha256",
        mmlu_sha,
    ]


def _left_behind(data_dir: Path) -> list[str]:
    return sorted(p.name for p in data_dir.iterdir()) if data_dir.exists() else []


def test_fetch_then_check_from_a_local_server(tmp_path, server, capsys):
    served, base = server
    spider_sha = _serve(served, "spider_data.zip", _spider_zip(tmp_path, CONCERT_ONLY))
    mmlu_sha = _serve(served, "data.tar", _mmlu_tar(tmp_path))
    data_dir = tmp_path / "data"

    assert main(_fetch_args(base, data_dir, spider_sha, mmlu_sha)) == 0
    assert _left_behind(data_dir) == ["mmlu", "spider"]  # no scratch folder left
    assert (data_dir / "spider" / "tables.json").is_file()
    assert (data_dir / "mmlu" / "test" / "philosophy_test.csv").is_file()
    record = json.loads((data_dir / "spider" / SOURCE_RECORD).read_text())
    assert record["sha256"] == spider_sha and record["official"] is False
    capsys.readouterr()

    assert main(["data", "check", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "spider: ok" in out and "mmlu: ok" in out and "the layout only" in out


def test_a_corrupted_archive_is_refused_and_nothing_is_written(tmp_path, server, capsys):
    served, base = server
    good = _spider_zip(tmp_path, CONCERT_ONLY)
    expected = hashlib.sha256(good).hexdigest()
    _serve(served, "spider_data.zip", good[: len(good) // 2])  # a truncated download
    data_dir = tmp_path / "data"

    rc = main(
        ["data", "fetch", "--data-dir", str(data_dir), "--only", "spider"]
        + ["--spider-url", f"{base}/spider_data.zip", "--spider-sha256", expected]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert len(err) == 2 and "sha256" in err[1] and f"expected {expected}" in err[1]
    assert _left_behind(data_dir) == []


def test_an_unreadable_archive_without_a_checksum_is_refused(tmp_path, server, capsys):
    served, base = server
    _serve(served, "data.tar", b"<html>not the archive</html>")
    data_dir = tmp_path / "data"
    rc = main(
        ["data", "fetch", "--data-dir", str(data_dir), "--only", "mmlu"]
        + ["--mmlu-url", f"{base}/data.tar", "--mmlu-sha256", "none"]
    )
    assert rc == 1
    assert "not a readable tar archive" in capsys.readouterr().err
    assert _left_behind(data_dir) == []


def test_a_missing_database_fails_the_fetch_in_one_line(tmp_path, server, capsys):
    served, base = server
    sha = _serve(served, "spider_data.zip", _spider_zip(tmp_path, DEV))  # absent_db has no database
    data_dir = tmp_path / "data"
    rc = main(
        ["data", "fetch", "--data-dir", str(data_dir), "--only", "spider"]
        + ["--spider-url", f"{base}/spider_data.zip", "--spider-sha256", sha]
    )
    errors = [line for line in capsys.readouterr().err.splitlines() if "absent_db" in line]
    assert rc == 1
    assert len(errors) == 1 and "database 'absent_db' missing (1 dev items)" in errors[0]
    assert _left_behind(data_dir) == []


def test_a_failed_refetch_keeps_the_folder_that_was_there(tmp_path, server):
    served, base = server
    data_dir = tmp_path / "data"
    build_spider_dir(data_dir / "spider")
    before = (data_dir / "spider" / "dev.json").read_bytes()
    _serve(served, "spider_data.zip", b"garbage")
    rc = main(
        ["data", "fetch", "--data-dir", str(data_dir), "--only", "spider", "--force"]
        + ["--spider-url", f"{base}/spider_data.zip", "--spider-sha256", "none"]
    )
    assert rc == 1
    assert _left_behind(data_dir) == ["spider"]
    assert (data_dir / "spider" / "dev.json").read_bytes() == before


def test_an_archive_member_outside_its_folder_is_refused(tmp_path, server, capsys):
    served, base = server
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("../evil.txt", "x")
    sha = _serve(served, "spider_data.zip", buffer.getvalue())
    data_dir = tmp_path / "data"
    rc = main(
        ["data", "fetch", "--data-dir", str(data_dir), "--only", "spider"]
        + ["--spider-url", f"{base}/spider_data.zip", "--spider-sha256", sha]
    )
    assert rc == 1 and "points outside its folder" in capsys.readouterr().err
    assert not (tmp_path / "evil.txt").exists() and _left_behind(data_dir) == []


def test_a_known_missing_database_is_a_warning_with_its_item_count(tmp_path, capsys):
    folder = build_spider_dir(tmp_path / "spider")
    dev = CONCERT_ONLY + [{"db_id": "wta_1", "question": f"q{i}", "query": "SELECT 1"} for i in range(2)]
    (folder / "dev.json").write_text(json.dumps(dev))
    tables = json.loads((folder / "tables.json").read_text()) + [{"db_id": "wta_1"}]
    (folder / "tables.json").write_text(json.dumps(tables))
    assert (
        main(
            [
                "data",
                "check",
                "--layout-only",
                "--spider-dir",
                str(folder),
                "--mmlu-dir",
                str(build_mmlu_dir(tmp_path / "mmlu")),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err.splitlines()
    assert err == [line for line in err if "wta_1" in line] and len(err) == 1
    assert err[0].startswith("harness data: warning:") and "its 2 dev items" in err[0]


def test_release_checks_count_the_items_and_compare_checksums(tmp_path):
    spider = build_spider_dir(tmp_path / "spider")
    (spider / "database" / "absent_db").mkdir()
    (spider / "database" / "absent_db" / "absent_db.sqlite").write_bytes(b"not sqlite")
    messages = [f.message for f in check_spider(spider, release=True)]
    assert "4 items, the official release has 1034" in messages
    assert any(m.startswith("not the official release's file") for m in messages)
    assert "not an SQLite database (1 dev items)" in messages
    layout = [f.message for f in check_spider(spider, release=False)]
    assert layout == ["not an SQLite database (1 dev items)"]
    mmlu_messages = [f.message for f in check_mmlu(build_mmlu_dir(tmp_path / "mmlu"), release=True)]
    assert "2 subjects, the original release has 57" in mmlu_messages
    assert check_mmlu(tmp_path / "mmlu", release=False) == []


@pytest.mark.skipif(not (SHARED / "spider" / "tables.json").is_file(), reason="needs ../shared/data")
def test_the_shared_copy_is_the_official_release_but_for_wta_1(capsys):
    rc = main(["data", "check", str(SHARED)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.err.count("warning") == 1 and "wta_1" in captured.err and "62 dev items" in captured.err
    assert "checked: the official release" in captured.out


def test_check_with_no_data_names_where_it_looked_and_the_fetch_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_SPIDER_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HARNESS_MMLU_DIR", str(tmp_path / "nowhere"))
    assert main(["data", "check"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert all("nowhere" in line and "`harness data fetch`" in line for line in err)


def test_lookup_order(tmp_path, monkeypatch):
    for folder in ("explicit", "own", "root/spider", "cwd/data/spider"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "tables.json").write_text("[]")
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.delenv(SOURCES["spider"].dir_env, raising=False)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert locate("spider") == (tmp_path / "cwd" / "data" / "spider").resolve()
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "root"))
    assert locate("spider") == (tmp_path / "root" / "spider").resolve()
    monkeypatch.setenv(SOURCES["spider"].dir_env, str(tmp_path / "own"))
    assert locate("spider") == (tmp_path / "own").resolve()
    assert locate("spider", tmp_path / "explicit") == (tmp_path / "explicit").resolve()
    with pytest.raises(DataNotFound, match=r"missing \(the given folder\).*harness data fetch"):
        locate("spider", tmp_path / "missing")
