"""The user's own text-to-SQL set as untrusted input: nothing created beside its databases, no
database outside the declared folder, JSON read as JSON, only regular files of bounded size,
prompts that must fit the model, and a failing gold query reported as the data's error."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from harness.engine.core import Engine
from harness.models.pool import ModelPool
from harness.sql import execute_readonly
from harness.tasks import TASKS
from harness.tasks.base import RunContext
from harness.tasks.text2sql import Text2SQLSettings
from harness.tasks.text2sql_data import Text2SQLDataError, load_items, read_schema
from tests.test_task_text2sql import Canned, Variant, make_db


def make_wal_db(path: Path, pending: bool = False) -> sqlite3.Connection | None:
    """A WAL-mode database; with ``pending``, a second row sits in a -wal file not yet
    checkpointed (the returned connection keeps it there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO singer VALUES (1, 'Ann')")
    conn.commit()
    conn.close()
    if not pending:
        return None
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("INSERT INTO singer VALUES (2, 'Bo')")
    writer.commit()
    return writer


def write_items(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_wal_database_gets_no_side_files_from_the_schema_reader_or_the_sandbox(tmp_path):
    db = tmp_path / "dbs" / "music.sqlite"
    make_wal_db(db)
    before = sorted(os.listdir(db.parent))
    assert before == ["music.sqlite"]
    assert [t.name for t in read_schema("music", db).tables] == ["singer"]
    assert execute_readonly(db, "SELECT name FROM singer").rows == [("Ann",)]
    assert sorted(os.listdir(db.parent)) == before


def test_a_wal_database_with_pending_changes_is_read_whole_and_left_as_it_was(tmp_path):
    db = tmp_path / "dbs" / "music.sqlite"
    writer = make_wal_db(db, pending=True)
    try:
        files = {p.name: p.read_bytes() for p in db.parent.iterdir()}
        assert "music.sqlite-wal" in files
        assert sorted(execute_readonly(db, "SELECT id FROM singer").rows) == [(1,), (2,)]
        read_schema("music", db)
        assert {p.name: p.read_bytes() for p in db.parent.iterdir()} == files
    finally:
        writer.close()


@pytest.mark.parametrize(
    "db_path, message",
    [
        ("/etc/passwd", "must be relative to the questions file's folder"),
        ("../outside/secret.sqlite", "without '..'"),
        ("dbs/../../outside/secret.sqlite", "without '..'"),
    ],
)
def test_a_db_path_outside_the_databases_folder_is_refused(tmp_path, db_path, message):
    make_db(tmp_path / "outside" / "secret.sqlite")
    root = tmp_path / "set"
    make_db(root / "dbs" / "music.sqlite")
    path = write_items(root / "q.jsonl", [{"question": "q", "query": "SELECT 1", "db_path": db_path}])
    with pytest.raises(Text2SQLDataError, match=f"q.jsonl:1: 'db_path' .*{message}"):
        load_items(path, root / "dbs")


def test_a_symbolic_link_out_of_the_databases_folder_is_refused(tmp_path):
    secret = make_db(tmp_path / "outside" / "secret.sqlite")
    dbs = tmp_path / "set" / "dbs"
    dbs.mkdir(parents=True)
    (dbs / "music.sqlite").symlink_to(secret)
    path = write_items(
        tmp_path / "set" / "q.jsonl", [{"question": "q", "query": "SELECT 1", "db_id": "music"}]
    )
    with pytest.raises(Text2SQLDataError, match="q.jsonl:1: database 'music' resolves to .* outside"):
        load_items(path, dbs)
    # The same through db_path:
    write_items(path, [{"question": "q", "query": "SELECT 1", "db_path": "dbs/music.sqlite"}])
    with pytest.raises(Text2SQLDataError, match="outside the databases folder"):
        load_items(path, dbs)


def test_a_link_inside_the_folder_is_followed(tmp_path):
    dbs = tmp_path / "dbs"
    real = make_db(dbs / "real" / "music.sqlite")
    (dbs / "music.sqlite").symlink_to(real)
    path = write_items(tmp_path / "q.jsonl", [{"question": "q", "query": "SELECT 1", "db_id": "music"}])
    assert load_items(path, dbs)[0].db_path == real.resolve()


@pytest.mark.parametrize("char", ["\u2028", "\u0085", "\u2029", "\x0c", "\x1c"])
def test_characters_json_allows_inside_strings_are_not_line_breaks(tmp_path, char):
    make_db(tmp_path / "music.sqlite")
    path = tmp_path / "q.jsonl"
    row = {"question": f"How{char}many?", "query": "SELECT 1", "db_id": "music"}
    path.write_text(json.dumps(row, ensure_ascii=False) + "\r\n", encoding="utf-8")
    items = load_items(path)
    assert [i.question for i in items] == [f"How{char}many?"]


def _unblock_a_reader_of(fifo: Path, seconds: float = 10.0) -> None:
    """Write a line into ``fifo`` once someone opens it for reading (so that a reader that
    should not have opened it gets a wrong answer instead of hanging the test)."""
    import threading

    def writer():
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet
                time.sleep(0.05)
                continue
            os.write(fd, b'{"question": "q", "query": "SELECT 1", "db_id": "x"}\n')
            os.close(fd)
            return

    threading.Thread(target=writer, daemon=True).start()


def test_a_fifo_or_a_device_is_refused_at_once(tmp_path):
    fifo = tmp_path / "q.jsonl"
    os.mkfifo(fifo)
    _unblock_a_reader_of(fifo)
    start = time.monotonic()
    with pytest.raises(Text2SQLDataError, match="q.jsonl is not a regular file"):
        load_items(fifo)
    assert time.monotonic() - start < 5
    with pytest.raises(Text2SQLDataError, match="/dev/zero is not a regular file"):
        load_items(Path("/dev/zero"))


def test_a_questions_file_over_the_cap_is_refused(tmp_path, monkeypatch):
    import harness.tasks.text2sql_data as text2sql_data

    make_db(tmp_path / "music.sqlite")
    path = write_items(tmp_path / "q.jsonl", [{"question": "q" * 200, "query": "SELECT 1", "db_id": "music"}])
    monkeypatch.setattr(text2sql_data, "MAX_QUESTIONS_BYTES", 100)
    with pytest.raises(Text2SQLDataError, match="more than the 0 MiB allowed|is over"):
        load_items(path)


def test_a_huge_question_is_refused_naming_its_line(tmp_path):
    make_db(tmp_path / "music.sqlite")
    path = write_items(
        tmp_path / "q.jsonl", [{"question": "x" * 100_000, "query": "SELECT 1", "db_id": "music"}]
    )
    with pytest.raises(Text2SQLDataError, match="q.jsonl:1: question of 100,000 characters"):
        load_items(path)


class NoModel:
    def generate(self, *args, **kwargs):
        raise AssertionError("the model ran before the prompts were measured")


def test_a_prompt_longer_than_the_context_is_refused_before_any_model_work(tmp_path, tiny_model_dir):
    make_db(tmp_path / "dbs" / "music.sqlite")
    rows = [
        {"question": "Short?", "query": "SELECT 1", "db_id": "music"},
        {"id": "long", "question": "word " * 3000, "query": "SELECT 1", "db_id": "music"},
    ]
    path = write_items(tmp_path / "q.jsonl", rows)
    settings = Text2SQLSettings(path=str(path), databases=str(tmp_path / "dbs"))
    task = TASKS["text2sql"]
    data = task.load(settings, seed=0)
    variant = Variant()
    variant.model = str(tiny_model_dir)
    engine = Engine(ModelPool(), tmp_path / "cache", backend=NoModel())
    with pytest.raises(
        Text2SQLDataError, match=r"q.jsonl:2: item 'long': its prompt is [\d,]+ tokens.*context of"
    ):
        task.predict(RunContext(engine, 0), data, variant, settings, None)


BROKEN_GOLD = [
    {"question": "How many?", "query": "SELECT count(*) FROM singer", "db_id": "music"},
    {"id": "bad", "question": "Typo?", "query": "SELECT nme FROM singer", "db_id": "music"},
    {"id": "write", "question": "Write?", "query": "DELETE FROM singer", "db_id": "music"},
]


def test_a_failing_gold_query_is_a_data_error_naming_the_item(tmp_path):
    make_db(tmp_path / "music.sqlite")
    path = write_items(tmp_path / "q.jsonl", BROKEN_GOLD)
    with pytest.raises(
        Text2SQLDataError, match=r"q.jsonl:2: item 'bad': its gold query is a data error .*\(and 1 more\)"
    ):
        TASKS["text2sql"].load(Text2SQLSettings(path=str(path)), seed=0)


def test_allowed_gold_errors_skip_their_items_and_are_never_the_models_miss(tmp_path, tiny_model_dir):
    make_db(tmp_path / "music.sqlite")
    path = write_items(tmp_path / "q.jsonl", BROKEN_GOLD)
    settings = Text2SQLSettings(path=str(path), allow_gold_errors=True)
    task = TASKS["text2sql"]
    data = task.load(settings, seed=0)
    assert set(data.context.gold_errors) == {"bad", "write"}
    assert "forbidden" in data.context.gold_errors["write"]
    variant = Variant()
    variant.model = str(tiny_model_dir)
    engine = Engine(ModelPool(), tmp_path / "cache", backend=Canned("SELECT count(*) FROM singer"))
    predictions = task.predict(RunContext(engine, 0), data, variant, settings, None)
    assert set(predictions.by_item) == {"item-0000"}
    metric = task.metric(settings)
    specs = {
        it.item_id: task.case(it, predictions.by_item.get(it.item_id), variant, settings, data, metric)
        for it in data.items
    }
    assert specs["item-0000"].test_case is not None
    assert "its gold query is a data error" in specs["bad"].skip_reason
    assert specs["write"].test_case is None


@pytest.mark.parametrize(
    "row, message",
    [
        ({"id": "a\nb"}, "'id' 'a\\\\nb' holds a control character"),
        ({"group": "g\tforged"}, "'group' .* holds a control character"),
        ({"id": "x" * 500}, "'id' of 500 characters"),
        ({"id": [1]}, "'id' must be a string"),
        ({"db_id": "mu\tsic", "db_path": "music.sqlite"}, "'db_id' .* holds a control character"),
    ],
)
def test_labels_that_would_break_a_report_line_are_refused(tmp_path, row, message):
    make_db(tmp_path / "music.sqlite")
    item = {"question": "q", "query": "SELECT 1", "db_id": "music", **row}
    path = write_items(tmp_path / "q.jsonl", [item])
    with pytest.raises(Text2SQLDataError, match=f"q.jsonl:1: {message}"):
        load_items(path)


def test_json_nested_too_deeply_is_one_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("[" * 200_000 + "]" * 200_000 + "\n")
    with pytest.raises(Text2SQLDataError, match="q.jsonl:1: not valid JSON here \\(nested too deeply\\)"):
        load_items(path)


@pytest.mark.parametrize("kind", ["fifo", "device link"])
def test_a_wal_side_file_that_is_not_a_regular_file_is_ignored(tmp_path, kind):
    db = tmp_path / "dbs" / "music.sqlite"
    make_wal_db(db)
    wal = db.with_name(db.name + "-wal")
    if kind == "fifo":
        os.mkfifo(wal)
    else:
        wal.symlink_to("/dev/zero")
    start = time.monotonic()
    assert execute_readonly(db, "SELECT name FROM singer").rows == [("Ann",)]
    assert [t.name for t in read_schema("music", db).tables] == ["singer"]
    assert time.monotonic() - start < 10
    assert sorted(os.listdir(db.parent)) == ["music.sqlite", "music.sqlite-wal"]


def test_a_wal_database_too_large_to_copy_is_one_line(tmp_path, monkeypatch):
    import harness.sql.opening as opening

    db = tmp_path / "dbs" / "music.sqlite"
    writer = make_wal_db(db, pending=True)
    try:
        monkeypatch.setattr(opening, "MAX_COPY_BYTES", 1000)
        outcome = execute_readonly(db, "SELECT 1")
        assert outcome.kind == "error" and "checkpoint it first" in outcome.error
        with pytest.raises(Text2SQLDataError, match="checkpoint it first"):
            read_schema("music", db)
    finally:
        writer.close()


def test_a_benchmark_run_with_a_too_long_prompt_stops_in_one_line(tmp_path, tiny_model_dir):
    import subprocess
    import sys

    from tests.tiny_data import harness_options

    root = Path(__file__).resolve().parents[1]
    make_db(tmp_path / "dbs" / "music.sqlite")
    rows = [
        {"question": "Short?", "query": "SELECT 1", "db_id": "music"},
        {"id": "long", "question": "word " * 3000, "query": "SELECT 1", "db_id": "music"},
    ]
    questions = write_items(tmp_path / "q.jsonl", rows)
    exp = tmp_path / "exp.toml"
    exp.write_text(
        f'[experiment]\nname = "own"\ntasks = ["text2sql"]\ngates = ""\n\n'
        f'[text2sql]\npath = "{questions}"\ndatabases = "{tmp_path / "dbs"}"\nmax_new_tokens = 4\n\n'
        f'[[variants]]\nname = "base"\nmodel = "{tiny_model_dir}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", *harness_options(tmp_path, exp, "long")],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / "hcache")},
        timeout=600,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 4, out[-3000:]
    assert out.count("item 'long': its prompt is") == 1
    assert "Traceback" not in out
    assert not (tmp_path / "cache" / "text2sql").exists()  # nothing was generated


def test_a_lone_surrogate_is_refused_naming_its_field(tmp_path):
    make_db(tmp_path / "music.sqlite")
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "why\\ud800", "query": "SELECT 1", "db_id": "music"}\n')
    with pytest.raises(Text2SQLDataError, match="q.jsonl:1: 'question' holds a lone surrogate"):
        load_items(path)


def test_a_forked_child_gets_a_fresh_copies_lock():
    """A fork while another thread makes a private copy must not leave the child's lock held."""
    from harness.sql import opening

    with opening._COPIES_LOCK:
        pid = os.fork()
        if pid == 0:  # the child: the lock held by the parent's thread is not inherited as held
            os._exit(0 if opening._COPIES_LOCK.acquire(blocking=False) else 1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
