"""Batched token counts equal one-by-one counts, and a second counter on the same cache counts nothing."""

from __future__ import annotations

from harness.engine.token_counts import batch_token_counter, tokenizer_fingerprint
from harness.models.loading import load_tokenizer, resolve_model
from harness.tasks.mmlu.items import SUBJECT_CATEGORIES, MMLUItem
from harness.tasks.mmlu.prompts import mmlu_prompt

QUESTION = MMLUItem(
    "anatomy",
    SUBJECT_CATEGORIES["anatomy"],
    "test",
    0,
    "How many bones?",
    ("one", "two", "three", "four"),
    "B",
)
SHOTS = [
    MMLUItem(
        "anatomy", SUBJECT_CATEGORIES["anatomy"], "dev", i, f"Shot {i}?", ("a", "b", "c", "d"), "ABCD"[i]
    )
    for i in range(3)
]
TEXTS = ["The following are multiple choice questions.\n\nQ? " * n + "Answer:" for n in range(1, 40)]


def test_batched_counts_equal_one_call_per_text(tiny_model_dir):
    """What fitting counts is what the scorer reads: ``tokenizer(prompt)["input_ids"]``."""
    tokenizer = load_tokenizer(resolve_model(str(tiny_model_dir)))
    assert batch_token_counter(tokenizer)(TEXTS) == [len(tokenizer(t)["input_ids"]) for t in TEXTS]
    prompt = mmlu_prompt(QUESTION, SHOTS)
    assert batch_token_counter(tokenizer)([prompt]) == [len(tokenizer(prompt)["input_ids"])]


def test_counts_are_remembered_per_tokenizer(tiny_model_dir, tmp_path):
    tokenizer = load_tokenizer(resolve_model(str(tiny_model_dir)))
    first = batch_token_counter(tokenizer, tmp_path)(TEXTS)

    class Watched:  # the same tokenizer, recording what it is asked to count
        backend_tokenizer = tokenizer.backend_tokenizer
        asked: list[str] = []

        def __call__(self, texts):
            self.asked.extend(texts)
            return tokenizer(texts)

    Watched.__name__ = type(tokenizer).__name__
    assert tokenizer_fingerprint(Watched()) == tokenizer_fingerprint(tokenizer)
    assert batch_token_counter(Watched(), tmp_path)(TEXTS + ["a new text"]) == first + [
        len(tokenizer("a new text")["input_ids"])
    ]
    assert Watched.asked == ["a new text"]


def test_a_tokenizer_without_a_serialisation_is_counted_every_time(tmp_path):
    calls = []

    def tokenizer(texts):
        calls.append(list(texts))
        return {"input_ids": [t.split() for t in texts]}

    counter = batch_token_counter(tokenizer, tmp_path)
    assert counter(["a b", "c"]) == [2, 1] and counter(["a b"]) == [2]
    assert len(calls) == 2 and not (tmp_path / "token_counts").exists()
