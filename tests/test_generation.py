"""Stopping rules, the prediction cache (resume, sharing, torn lines) and batched generation."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.engine.batch_fitting import split_on_oom
from harness.engine.core import GenerationSettings, StopRule
from harness.engine.decoding import generate_batch
from harness.records.cache import PredictionCache, cached_compute, prompt_key
from harness.tasks.sql_task import SQL_END, sql_is_complete


@pytest.mark.parametrize(
    "text, done",
    [
        ("SELECT count(*) FROM singer", False),
        ("SELECT count(*) FROM singer;", True),
        ("SELECT name FROM t WHERE name = 'a;b'", False),  # ; inside a literal
        ("SELECT name FROM t WHERE name = 'a;b';", True),
        ("```sql\nSELECT 1", False),
        ("```sql\nSELECT 1\n```", True),
        ("SELECT 1\n```", True),
        ("SELECT 1 [/INST] SELECT 1", True),
        (
            "SELECT model FROM car GROUP BY model\n-- SELECT model FROM car GROUP BY model\n",
            True,
        ),  # the paper's Figure 2
        ("SELECT a FROM t\nWHERE b > 1\n", False),
        (";", False),
        ("", False),
    ],
)
def test_sql_is_complete(text, done):
    assert sql_is_complete(text) is done


@given(st.text(alphabet="SELECT abc,*()\n'", max_size=60))
def test_completion_is_monotonic(prefix):
    """Once complete, appending text never makes it incomplete (generation can stop safely)."""
    if sql_is_complete(prefix):
        assert sql_is_complete(prefix + " more;")


def test_cache_resumes_and_skips_done_items(tmp_path):
    cache = PredictionCache(tmp_path, "spider", {"model": "m"})
    calls = []

    def compute(batch, tick=None):
        calls.append(list(batch))
        return [{"raw": p.upper()} for p in batch]

    records, stats = cached_compute(cache, ["a", "b", "c"], compute, batch_size=2)
    assert [r["raw"] for r in records] == ["A", "B", "C"] and stats.computed == 3
    records, stats = cached_compute(cache, ["a", "b", "c", "d"], compute, batch_size=2)
    assert (
        stats.cached == 3 and stats.computed == 1 and calls[-1] == ["d"] and stats.computed_prompts == ["d"]
    )
    assert json.loads(cache.path.with_suffix(".json").read_text()) == {"model": "m"}


def test_interrupted_run_resumes(tmp_path):
    cache = PredictionCache(tmp_path, "spider", {"model": "m"})

    def exploding(batch, tick=None):
        if "c" in batch:
            raise KeyboardInterrupt
        return [{"raw": p} for p in batch]

    with pytest.raises(KeyboardInterrupt):
        cached_compute(cache, ["a", "b", "c", "d"], exploding, batch_size=2)
    assert set(cache.load()) == {prompt_key("a"), prompt_key("b")}
    # A torn last line (killed mid-write) is ignored, and the next append starts a new line.
    with open(cache.path, "a") as f:
        f.write('{"key": "half')
    records, stats = cached_compute(
        cache, ["a", "b", "c", "d"], lambda b, tick: [{"raw": p} for p in b], batch_size=2
    )
    assert stats.computed == 2 and [r["raw"] for r in records] == ["a", "b", "c", "d"]
    assert len(cache.load()) == 4


def test_split_on_oom_halves_until_the_batch_fits():
    import torch

    sizes = []

    def compute(batch, tick=None):
        sizes.append(len(batch))
        if len(batch) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return [x * 10 for x in batch]

    assert split_on_oom(compute, list(range(10))) == [x * 10 for x in range(10)]  # order kept
    assert sizes == [10, 5, 2, 2, 2, 2, 2]  # halves until a chunk fits, then goes on at that size


def test_split_on_oom_gives_up_at_one_row():
    import torch

    def compute(batch, tick=None):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        split_on_oom(compute, [1, 2])


def test_choice_scores_keep_their_token_counts_when_every_request_has_the_same_choices(
    tmp_path, tiny_model_dir
):
    """One cloze question (or many with the same answer texts): the counts are the backend's."""
    from harness.engine.core import Engine, LoglikSettings
    from harness.engine.loglik import ChoiceScores
    from harness.models.pool import ModelPool

    class ThreeTokensEach:
        def score_choices(self, variant, requests, choices, settings, tick=None):
            return [ChoiceScores((-1.0, -2.0), (3, 3), 0, 0) for _ in requests]

    class Variant:
        name, model, load, adapter = "base", str(tiny_model_dir), "fp32", ""

    engine = Engine(ModelPool(), tmp_path, backend=ThreeTokensEach())
    requests = [("Q1 ", "Answer:"), ("Q2 ", "Answer:")]
    for run in ("computed", "cached"):
        scores, _ = engine.score_choices(
            Variant(), requests, [(" red", " blue")] * 2, LoglikSettings(), namespace="cloze"
        )
        assert [s.token_counts for s in scores] == [(3, 3), (3, 3)], run


def test_different_fingerprints_do_not_share(tmp_path):
    a = PredictionCache(tmp_path, "spider", {"model": "m", "adapter": None})
    b = PredictionCache(tmp_path, "spider", {"model": "m", "adapter": "x"})
    assert a.path != b.path


def test_batched_generation_stops_and_matches_single(tiny_model_dir):
    from harness.models.loading import ResolvedModel, load_base_model, load_tokenizer

    resolved = ResolvedModel("tiny", str(tiny_model_dir), None, "tiny")
    tok, model = load_tokenizer(resolved), load_base_model(resolved, "fp32", "cpu")
    prompts = ["SELECT name", "How many singers do we have? SELECT count(*) FROM singer WHERE"]
    settings = GenerationSettings(max_new_tokens=12, batch_size=2, stop=SQL_END)
    batched = generate_batch(model, tok, prompts, settings)
    singles = [generate_batch(model, tok, [p], settings)[0] for p in prompts]
    assert len(batched) == 2
    # Left padding leaves each row's greedy continuation unchanged up to the stop point.
    for b, s in zip(batched, singles):
        assert b.startswith(s) or s.startswith(b)
    # The stop rule ends decoding: a rule met by any text stops both rows after one step.
    steps = []
    anything = GenerationSettings(max_new_tokens=12, batch_size=2, stop=StopRule("any", bool))
    generate_batch(model, tok, prompts, anything, on_step=lambda step, flags: steps.append(step))
    assert len(steps) < 12


def test_a_torn_multibyte_line_and_a_line_without_its_payload_are_skipped(tmp_path, caplog):
    """kill -9 (or a full disk) can cut a record inside a UTF-8 character; a valid line without
    the payload must not replace the good record of its key."""
    cache = PredictionCache(tmp_path, "spider", {"model": "m"}, required=("raw",))
    cached_compute(cache, ["é1", "é2"], lambda b, tick: [{"raw": "SELECT 'é'"} for _ in b], batch_size=2)
    good = cache.path.read_bytes()
    bad = json.dumps({"key": prompt_key("é1"), "fp": cache.key}).encode() + b"\n"
    cache.path.write_bytes(good + bad + '{"key": "x", "raw": "é'.encode()[:-1])  # torn inside é
    records = cache.load()
    assert records[prompt_key("é1")]["raw"] == "SELECT 'é'"
    assert f"{cache.path}:3: cache line without raw skipped" in caplog.text
    assert f"{cache.path}:4: unreadable cache line skipped" in caplog.text
    # and a run resumes from it: the torn item is computed again, the good ones are not
    _, stats = cached_compute(cache, ["é1", "é2", "x"], lambda b, tick: [{"raw": p} for p in b], batch_size=2)
    assert stats.computed == 1 and stats.cached == 2


def test_a_cache_whose_fingerprint_says_otherwise_is_refused(tmp_path):
    from harness.records.cache import CacheError

    cache = PredictionCache(tmp_path, "spider", {"model": "m", "max_new_tokens": 80})
    cached_compute(cache, ["a"], lambda b, tick: [{"raw": "x"} for _ in b], batch_size=1)
    meta = cache.path.with_suffix(".json")
    meta.write_text(json.dumps({"model": "other", "max_new_tokens": 80}))
    with pytest.raises(CacheError, match="written for another fingerprint"):
        cache.load()


def test_records_of_another_fingerprint_are_not_used(tmp_path):
    cache = PredictionCache(tmp_path, "spider", {"model": "m"})
    foreign = json.dumps({"key": prompt_key("a"), "raw": "stolen", "fp": "0" * 16})
    cache.path.parent.mkdir(parents=True)
    cache.path.write_text(foreign + "\n")
    assert cache.load() == {}


def test_the_default_models_fingerprint_names_its_conversion(monkeypatch):
    """A change to the GGUF conversion must not keep serving the old conversion's predictions."""
    import harness.models.default_model as models

    before = models.gguf_fingerprint("abc")
    monkeypatch.setattr(models, "_CONVERSION_VERSION", models._CONVERSION_VERSION + 1)
    assert models.gguf_fingerprint("abc") != before and "abc" in before
