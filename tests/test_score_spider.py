"""The external predictions scorer, on a tiny Spider folder built here."""

import csv
import json
import os
import sqlite3
from pathlib import Path

import pytest

import harness.tasks.score_spider as score_spider
from harness.tasks.score_spider import format_summary, read_prediction_lines, score_spider_file

S = "SELECT name FROM singer"
SD = "SELECT DISTINCT name FROM singer"
SC = "SELECT count(name) FROM singer"

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
    assert list(rows[0]) == ["index", "db_id", "hardness", "correct", "reason"]
    assert [r["correct"] for r in rows] == ["1", "1", "0", "0", "NA"]
    assert [r["index"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert "gold has 2 rows, prediction 3" in rows[2]["reason"]
    assert "another order" in rows[3]["reason"]
    assert "absent_db" in rows[4]["reason"]


def test_strip_distinct_reproduces_the_official_default(spider_dir, tmp_path):
    lines = ["SELECT 1", "SELECT 1", "SELECT name FROM singer", "SELECT 1", "SELECT 1"]
    preds = write_lines(tmp_path / "p.sql", lines)
    kept = score_spider_file(preds, spider_dir, tmp_path / "a.tsv")
    stripped = score_spider_file(preds, spider_dir, tmp_path / "b.tsv", keep_distinct=False)
    assert [r["correct"] for r in read_tsv(tmp_path / "a.tsv")][2] == "0"
    assert [r["correct"] for r in read_tsv(tmp_path / "b.tsv")][2] == "1"
    assert stripped.correct == kept.correct + 1


def test_empty_lines_are_empty_predictions(spider_dir, tmp_path):
    # A final newline ends the last line; it does not add an empty prediction.
    lines = ["", "SELECT name FROM singer", "", "", "SELECT 1"]
    preds = write_lines(tmp_path / "p.sql", lines, final_newline=False)
    summary = score_spider_file(preds, spider_dir, tmp_path / "v.tsv")
    rows = read_tsv(tmp_path / "v.tsv")
    assert summary.correct == 1
    assert "empty prediction" in rows[0]["reason"]


def test_reasons_stay_on_one_line(spider_dir, tmp_path):
    lines = ["SELECT 'a\tb'", "SELECT 'x\x0cy'", "SELECT 1", "SELECT 1", "SELECT 1"]
    preds = write_lines(tmp_path / "p.sql", lines)
    score_spider_file(preds, spider_dir, tmp_path / "v.tsv")
    lines = (tmp_path / "v.tsv").read_text(encoding="utf-8").split("\n")
    assert len(lines) == 1 + 5 + 1  # header, five rows, final newline
    assert all(line.count("\t") == 4 for line in lines[:-1])


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
    lines = ["SELECT count(*) FROM singer", "SELECT 1", "SELECT 1", "SELECT 1", "x"]
    preds = write_lines(tmp_path / "p.sql", lines)
    text = format_summary(score_spider_file(preds, spider_dir, tmp_path / "v.tsv"))
    assert "execution accuracy 0.250 (1 of 4 scored items; 5 in the file)" in text
    assert "1 items whose database is absent (absent_db)" in text


# --- a byte order mark, a bad --out, a db_id that leaves the folder ---------------------------


def test_byte_order_mark_is_not_part_of_the_first_prediction(spider_dir, tmp_path):
    preds = tmp_path / "bom.sql"
    preds.write_text("\ufeffSELECT count(*) FROM singer\n" + "SELECT 1\n" * 4, encoding="utf-8")
    assert read_prediction_lines(preds, 5)[0] == "SELECT count(*) FROM singer"
    summary = score_spider_file(preds, spider_dir, tmp_path / "v.tsv")
    assert read_tsv(tmp_path / "v.tsv")[0]["correct"] == "1"
    assert summary.correct == 1


def _never_score(*args, **kwargs):
    raise AssertionError("scored an item before checking where the verdicts go")


@pytest.mark.parametrize("where", ["a folder", "under a file"])
def test_unwritable_out_fails_before_any_scoring(spider_dir, tmp_path, monkeypatch, where):
    monkeypatch.setattr(score_spider, "execution_match", _never_score)
    preds = write_lines(tmp_path / "p.sql", ["SELECT 1"] * 5)
    if where == "a folder":
        out = tmp_path / "results"
        out.mkdir()
        message = "is a folder"
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "v.tsv"
        message = "cannot make its folder"
    with pytest.raises(ValueError, match=message):
        score_spider_file(preds, spider_dir, out)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere, so nothing is refused")
def test_read_only_out_folder_fails_before_any_scoring(spider_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(score_spider, "execution_match", _never_score)
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="cannot be written"):
            score_spider_file(write_lines(tmp_path / "p.sql", ["SELECT 1"] * 5), spider_dir, folder / "v.tsv")
    finally:
        folder.chmod(0o700)


def test_out_check_leaves_no_file_behind(spider_dir, tmp_path):
    out = tmp_path / "new" / "v.tsv"
    score_spider._check_output(out)
    assert not out.exists()
    out.write_text("old")
    score_spider._check_output(out)
    assert out.read_text() == "old"


def _secret_database(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("INSERT INTO t VALUES ('TOP-SECRET-VALUE-42')")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("how", ["dot-dot", "absolute", "symlinked folder"])
def test_db_id_cannot_leave_the_database_folder(spider_dir, tmp_path, how):
    secret = _secret_database(tmp_path / "outside" / "x" / "x.sqlite")
    if how == "dot-dot":
        db_id = "../../outside/x"
    elif how == "absolute":
        db_id = str(secret.with_suffix(""))
    else:
        db_id = "x"
        (spider_dir / "database" / "x").symlink_to(secret.parent, target_is_directory=True)
    dev = [{"db_id": db_id, "question": "q?", "query": "SELECT 1"}]
    (spider_dir / "dev.json").write_text(json.dumps(dev))
    preds = write_lines(tmp_path / "p.sql", ["SELECT v FROM t"])
    out = tmp_path / "v.tsv"
    with pytest.raises(ValueError) as err:
        score_spider_file(preds, spider_dir, out)
    assert repr(db_id) in str(err.value) and "item 0" in str(err.value)
    assert "TOP-SECRET" not in str(err.value)
    assert not out.exists()


def test_reasons_count_rows_unless_asked_to_show_them(spider_dir, tmp_path):
    preds = write_lines(
        tmp_path / "p.sql",
        ["SELECT 1", f"{S} WHERE age > 30", "SELECT 1", "SELECT 'Zed' FROM singer", "SELECT 1"],
    )
    score_spider_file(preds, spider_dir, tmp_path / "shared.tsv")
    score_spider_file(preds, spider_dir, tmp_path / "private.tsv", show_rows=True)
    shared = (tmp_path / "shared.tsv").read_text(encoding="utf-8")
    private = (tmp_path / "private.tsv").read_text(encoding="utf-8")
    for name in ("Ann", "Bo"):
        assert name not in shared and name in private
    rows = read_tsv(tmp_path / "shared.tsv")
    assert rows[0]["reason"] == "both have 1 row but differ; missing 1 row, unexpected 1 row"
    assert rows[1]["reason"] == "gold has 3 rows, prediction 2; missing 1 row"
    assert rows[3]["reason"] == "both have 3 rows but differ; missing 3 rows, unexpected 3 rows"


# --- official=True: the test-suite evaluator's own handling of the text ----------------------

# (id, gold, prediction, official verdict, official verdict with --keep_distinct). Each verdict
# was computed by the official code itself: taoyds/test-suite-sql-eval @ e97acc5,
# exec_eval.eval_exec_match with sqlparse 0.6.0, after evaluation.py's strip, cut at the tab
# and replace("value", "1"), on a fresh copy of the database below for each pair.
OFFICIAL_PAIRS = [
    ("value in code", f"{S} WHERE id = 1", f"{S} WHERE id = value", 1, 1),
    ("value in a literal", "SELECT '1'", "SELECT 'value'", 1, 1),
    ("values lower case", "SELECT 1", "values (1)", 0, 0),
    ("VALUES upper case", "SELECT 1", "VALUES (1)", 1, 1),
    ("value as an alias", "SELECT count(*) FROM singer", "SELECT count(*) AS value FROM singer", 0, 0),
    ("split >= in code", f"{S} WHERE age >= 35", f"{S} WHERE age > = 35", 1, 1),
    ("split >= two spaces", f"{S} WHERE age >= 35", f"{S} WHERE age >  = 35", 0, 0),
    ("split <= form feed", f"{S} WHERE age <= 35", f"{S} WHERE age <\x0c= 35", 0, 0),
    ("split != in code", f"{S} WHERE age != 41", f"{S} WHERE age ! = 41", 1, 1),
    ("split >= in a literal", "SELECT 'a>=b'", "SELECT 'a> =b'", 1, 1),
    ("split >= in gold literal", "SELECT 'a> =b'", "SELECT 'a> =b'", 1, 1),
    ("cur year", f"{S} WHERE age > 2020 - 1990", f"{S} WHERE age > YEAR(CURDATE()) - 1990", 1, 1),
    ("cur year spaced", f"{S} WHERE age > 2020 - 1990", f"{S} WHERE age > year ( curdate ( ) ) - 1990", 1, 1),
    ("second statement dropped", S, f"{S}; DROP TABLE singer", 1, 0),
    ("second select dropped", "SELECT count(*) FROM singer", "SELECT count(*) FROM singer; SELECT 1", 1, 0),
    ("first statement wrong", "SELECT count(*) FROM singer", "SELECT 1; SELECT count(*) FROM singer", 0, 0),
    ("distinct, second statement", f"{SD}", f"{SD}; SELECT 1", 1, 0),
    ("semicolon in a literal", f"{S} WHERE name != 'a;b'", f"{S} WHERE name != 'a;b'", 1, 1),
    ("GO ends a statement", S, f"{S} GO SELECT 1", 1, 0),
    # sqlparse 0.6.0 opens a block at "begin", so the ";" does not end the first statement.
    ("begin keeps the text whole", S, "SELECT name AS begin FROM singer; SELECT 2", 0, 0),
    ("only a semicolon, empty gold", f"{S} WHERE age > 100", ";", 1, 1),
    ("only a comment, empty gold", f"{S} WHERE age > 100", "-- nothing to run", 1, 1),
    ("two semicolons", f"{S} WHERE age > 100", ";;", 1, 1),
    ("only a semicolon, gold has rows", S, ";", 0, 0),
    ("count distinct stripped", "SELECT count(DISTINCT name) FROM singer", f"{SC}", 1, 0),
    ("distinct forgotten", SD, S, 1, 0),
    ("distinct added", S, SD, 1, 0),
    ("quoted distinct column", 'SELECT "distinct" FROM tags', 'SELECT "distinct" FROM tags', 1, 1),
    ("bracketed distinct column", "SELECT [distinct] FROM tags", 'SELECT "distinct" FROM tags', 1, 1),
    ("dotted distinct column", 'SELECT tags."distinct" FROM tags', "SELECT tags.distinct FROM tags", 0, 0),
    ("distinct in a literal", "SELECT 'distinct'", "SELECT 'distinct'", 1, 1),
    ("distinct in a comment", S, f"{S} -- DISTINCT", 1, 1),
    ("distinct glued to a dollar", S, "SELECT DISTINCT$ name FROM singer", 0, 0),
    (
        # sqlparse reads \' as an escaped quote, so it sees the second DISTINCT inside a string.
        "backslash ends no literal",
        "SELECT DISTINCT name FROM singer WHERE name != '\\'",
        f"{S} WHERE name != '\\' UNION SELECT DISTINCT name FROM singer WHERE '' = ''",
        0,
        1,
    ),
    (
        # Here that decides: the prediction keeps its count(DISTINCT ...), the gold loses its own.
        "backslash hides a distinct",
        "SELECT '\\', count(DISTINCT name) FROM singer",
        "SELECT '\\' AS a, count(DISTINCT name) FROM singer WHERE '' = ''",
        0,
        1,
    ),
    ("hash comment", S, f"{S} # DISTINCT", 0, 0),
    ("text that is not UTF-8", "SELECT note FROM notes WHERE id = 1", "SELECT 'A'", 1, 1),
    ("order by after stripping", f"{S} ORDER BY age", f"{S} ORDER BY age DESC", 0, 0),
    ("rows reordered", "SELECT name, age FROM singer", "SELECT age, name FROM singer ORDER BY 2 DESC", 1, 1),
    ("float equals int", "SELECT 1", "SELECT 1.0", 1, 1),
    ("error is wrong", S, "SELECT nme FROM singer", 0, 0),
    # The one deliberate difference: the official evaluator runs the DELETE (on its read-write
    # connection) and compares its empty result; here a write is refused and scores 0.
    ("write is refused", f"{S} WHERE age > 100", "DELETE FROM singer WHERE age > 100", 1, 1),
    ("same query", f"{S} WHERE age > 30", f"{S} WHERE age > 30", 1, 1),
]
DELIBERATE = {"write is refused"}


def build_official_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    conn.executemany("INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ann", 41), (2, "Bo", 29), (3, "Bo", 35)])
    conn.execute('CREATE TABLE tags (id INTEGER PRIMARY KEY, "distinct" TEXT)')
    conn.executemany("INSERT INTO tags VALUES (?, ?)", [(1, "x"), (2, "x"), (3, "y")])
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT)")
    conn.execute("INSERT INTO notes VALUES (1, CAST(X'FF41' AS TEXT))")  # not UTF-8
    conn.commit()
    conn.close()


@pytest.fixture()
def official_run(tmp_path):
    """(spider folder, predictions file) with one dev item per pair."""
    root = tmp_path / "spider"
    (root / "database" / "concert").mkdir(parents=True)
    build_official_db(root / "database" / "concert" / "concert.sqlite")
    dev = [{"db_id": "concert", "question": name, "query": gold} for name, gold, *_ in OFFICIAL_PAIRS]
    (root / "dev.json").write_text(json.dumps(dev))
    return root, write_lines(tmp_path / "p.sql", [pred for _, _, pred, *_ in OFFICIAL_PAIRS])


def _verdicts(path: Path) -> list[int]:
    return [int(r["correct"]) for r in read_tsv(path)]


@pytest.mark.parametrize("keep_distinct", [None, True], ids=["official default", "official --keep_distinct"])
def test_official_mode_reproduces_the_official_verdicts(official_run, tmp_path, keep_distinct):
    root, preds = official_run
    score_spider_file(preds, root, tmp_path / "v.tsv", official=True, keep_distinct=keep_distinct)
    for pair, ours in zip(OFFICIAL_PAIRS, _verdicts(tmp_path / "v.tsv")):
        expected = pair[3] if keep_distinct is None else pair[4]
        assert ours == (0 if pair[0] in DELIBERATE else expected), pair[0]


def test_official_mode_differs_from_the_harness_with_distinct_stripped(official_run, tmp_path):
    root, preds = official_run
    score_spider_file(preds, root, tmp_path / "official.tsv", official=True)
    score_spider_file(preds, root, tmp_path / "strip.tsv", keep_distinct=False)
    official, strip = _verdicts(tmp_path / "official.tsv"), _verdicts(tmp_path / "strip.tsv")
    differ = [p[0] for p, a, b in zip(OFFICIAL_PAIRS, official, strip) if a != b]
    assert len(differ) == 18, differ
