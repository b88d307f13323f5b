"""The external predictions scorer, on a tiny Spider folder built here."""

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from harness.score_spider import format_summary, read_prediction_lines, score_spider_file

DEV = [
    {"db_id": "concert", "question": "How many singers?", "query": "SELECT count(*) FROM singer"},
    {"db_id": "concert", "question": "Singer names?", "query": "SELECT name FROM singer"},
    {"db_id": "concert", "question": "Distinct names?", "query": "SELECT DISTINCT name FROM singer"},
    {"db_id": "concert", "question": "Names by age?", "query": "SELECT name FROM singer ORDER BY age"},
    {"db_id": "absent_db", "question": "How many x?", "query": "SELECT count(*) FROM t"},
]


@pytest.fixture()
def spider_dir(tmp_path) -> Path:
    root = tmp_path / "spider"
    (root / "database" / "concert").mkdir(parents=True)
    (root / "dev.json").write_text(json.dumps(DEV))
    (root / "tables.json").write_text("[]")
    conn = sqlite3.connect(root / "database" / "concert" / "concert.sqlite")
    conn.execute("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    conn.executemany("INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ann", 41), (2, "Bo", 29), (3, "Bo", 35)])
    conn.commit()
    conn.close()
    return root


def write_lines(path: Path, lines: list[str], final_newline: bool = True) -> Path:
    path.write_text("\n".join(lines) + ("\n" if final_newline else ""), encoding="utf-8")
    return path


def read_tsv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_scores_each_line_and_writes_tsv(spider_dir, tmp_path):
    preds = write_lines(
        tmp_path / "preds.sql",
        [
            "   SELECT count(*) FROM singer   ",  # surrounding whitespace is stripped
            "SELECT name FROM singer\tconcert",  # cut at the first tab, as the official script
            "SELECT name FROM singer",  # DISTINCT forgotten: wrong here (kept)
            "SELECT name FROM singer ORDER BY age DESC",  # wrong order
            "SELECT count(*) FROM t",  # database absent: NA
        ],
    )
    out = tmp_path / "out" / "verdicts.tsv"
    summary = score_spider_file(preds, spider_dir, out)

    assert (summary.n, summary.scored, summary.correct, summary.n_missing_db) == (5, 4, 2, 1)
    assert summary.accuracy == 0.5
    assert summary.missing_db_ids == ("absent_db",)
    rows = read_tsv(out)
    assert list(rows[0]) == ["index", "db_id", "correct", "reason"]
    assert [r["correct"] for r in rows] == ["1", "1", "0", "0", "NA"]
    assert [r["index"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert "gold has 2 rows, prediction 3" in rows[2]["reason"]
    assert "another order" in rows[3]["reason"]
    assert "absent_db" in rows[4]["reason"]


def test_strip_distinct_reproduces_the_official_default(spider_dir, tmp_path):
    preds = write_lines(tmp_path / "p.sql", ["SELECT 1", "SELECT 1", "SELECT name FROM singer", "SELECT 1", "SELECT 1"])
    kept = score_spider_file(preds, spider_dir, tmp_path / "a.tsv")
    stripped = score_spider_file(preds, spider_dir, tmp_path / "b.tsv", keep_distinct=False)
    assert [r["correct"] for r in read_tsv(tmp_path / "a.tsv")][2] == "0"
    assert [r["correct"] for r in read_tsv(tmp_path / "b.tsv")][2] == "1"
    assert stripped.correct == kept.correct + 1


def test_empty_lines_are_empty_predictions(spider_dir, tmp_path):
    # A final newline ends the last line; it does not add an empty prediction.
    preds = write_lines(tmp_path / "p.sql", ["", "SELECT name FROM singer", "", "", "SELECT 1"], final_newline=False)
    summary = score_spider_file(preds, spider_dir, tmp_path / "v.tsv")
    rows = read_tsv(tmp_path / "v.tsv")
    assert summary.correct == 1
    assert "empty prediction" in rows[0]["reason"]


def test_reasons_stay_on_one_line(spider_dir, tmp_path):
    preds = write_lines(tmp_path / "p.sql", ["SELECT 'a\tb'", "SELECT 'x\x0cy'", "SELECT 1", "SELECT 1", "SELECT 1"])
    score_spider_file(preds, spider_dir, tmp_path / "v.tsv")
    lines = (tmp_path / "v.tsv").read_text(encoding="utf-8").split("\n")
    assert len(lines) == 1 + 5 + 1  # header, five rows, final newline
    assert all(line.count("\t") == 3 for line in lines[:-1])


@pytest.mark.parametrize("count", [4, 6])
def test_wrong_number_of_lines_names_file_and_counts(spider_dir, tmp_path, count):
    preds = write_lines(tmp_path / "short.sql", ["SELECT 1"] * count)
    with pytest.raises(ValueError) as err:
        score_spider_file(preds, spider_dir, tmp_path / "v.tsv")
    message = str(err.value)
    assert "short.sql" in message and f"{count} lines" in message and "5 items" in message
    assert not (tmp_path / "v.tsv").exists()


def test_missing_predictions_file(tmp_path):
    with pytest.raises(ValueError, match="predictions file not found"):
        read_prediction_lines(tmp_path / "nope.sql", 3)


def test_form_feed_is_not_a_line_break(tmp_path):
    path = tmp_path / "p.sql"
    path.write_text("SELECT 1\x0c\nSELECT 2\n", encoding="utf-8")
    assert read_prediction_lines(path, 2) == ["SELECT 1", "SELECT 2"]


def test_format_summary(spider_dir, tmp_path):
    preds = write_lines(tmp_path / "p.sql", ["SELECT count(*) FROM singer", "SELECT 1", "SELECT 1", "SELECT 1", "x"])
    text = format_summary(score_spider_file(preds, spider_dir, tmp_path / "v.tsv"))
    assert "execution accuracy 0.250 (1 of 4 scored items; 5 in the file)" in text
    assert "1 items whose database is absent (absent_db)" in text
