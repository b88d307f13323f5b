"""MMLU's headline continuous measure is what its name says: the probability of the right answer
among the four choices, in the normalisation the prediction uses; checked on 10 questions
against an independent computation (the tiny model's logits, read here with torch)."""

from __future__ import annotations

import csv
import math

import pytest

from harness.tasks.mmlu.items import LETTERS, SUBJECT_CATEGORIES

SUBJECTS = ("anatomy", "virology")
ROWS = [
    ["Which bone is longest?", "femur", "ulna", "the small stirrup bone", "rib", "A"],
    ["How many chambers has the heart?", "two", "four", "three", "six", "B"],
    ["Where is the tibia?", "arm", "skull", "leg", "hand", "C"],
    ["What carries oxygen?", "plasma", "platelets", "white cells", "red cells", "D"],
    ["What is the largest organ?", "liver", "skin", "brain", "lung", "B"],
]


def _mmlu_dir(root):
    for split in ("dev", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        for subject in SUBJECTS:
            with open(root / split / f"{subject}_{split}.csv", "w", newline="") as f:
                csv.writer(f).writerows(ROWS)
    return root


def _independent_continuation_logprob(model, tokenizer, context: str, continuation: str) -> float:
    """sum of log p(token) over the continuation's tokens: the whole text encoded once, the
    continuation being the tokens after the context's own encoding (lm-eval's convention)."""
    import torch

    whole = tokenizer(context + continuation)["input_ids"]
    n_context = len(tokenizer(context)["input_ids"])
    with torch.no_grad():
        logits = model(torch.tensor([whole])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    return sum(float(logp[i - 1, whole[i]]) for i in range(n_context, len(whole)))


@pytest.mark.parametrize("scoring", ["loglik", "cloze"])
def test_gold_prob_equals_an_independent_computation_on_10_questions(tmp_path, tiny_model_dir, scoring):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.engine.core import Engine
    from harness.models.pool import ModelPool
    from harness.tasks import TASKS
    from harness.tasks.base import RunContext
    from harness.tasks.mmlu.task import MMLUSettings

    class Variant:
        name, model, load, adapter = "base", str(tiny_model_dir), "fp32", ""

    task = TASKS["mmlu"]
    settings = MMLUSettings(
        data_dir=str(_mmlu_dir(tmp_path / "mmlu")),
        selection="full",
        subjects=SUBJECTS,
        shots=1,
        scoring=scoring,
    )
    data = task.load(settings, seed=0)
    assert len(data.items) == 10
    engine = Engine(ModelPool(), tmp_path / "cache")
    predictions = task.predict(RunContext(engine, 0), data, Variant(), settings, None)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    metric = task.metric(settings)
    for item in data.items:
        p = predictions.by_item[item.item_id]
        spec = task.case(item, p, Variant(), settings, data, metric)
        continuations = [" " + c for c in item.choices] if scoring == "cloze" else [" " + x for x in LETTERS]
        scores = [_independent_continuation_logprob(model, tokenizer, p.prompt, c) for c in continuations]
        if scoring == "cloze":  # acc_norm: per character of the choice's text
            scores = [s / len(c) for s, c in zip(scores, item.choices)]
        gold = LETTERS.index(item.answer)
        expected = math.exp(scores[gold]) / sum(math.exp(s) for s in scores)
        assert spec.extra["gold_prob"] == pytest.approx(expected, abs=1e-5), item.item_id
        # the prediction is the argmax of the same scores
        assert p.letter == LETTERS[max(range(4), key=lambda i: (scores[i], -i))]
        # and the metric's reason gives the same probability (its score is 1.0 or 0.0, as deepeval's)
        metric.measure(spec.test_case)
        assert f"among the choices: {expected:.2f})" in metric.reason
        assert metric.score == float(p.letter == item.answer)
        assert ("gold_token_loglik" in spec.extra) == (scoring == "cloze")
        assert "gold_logprob" not in spec.extra
    assert set(SUBJECTS) <= set(SUBJECT_CATEGORIES)


def test_a_small_limit_spreads_over_subjects_seeded():
    from harness.tasks.base import stratified_sample

    subjects = sorted(SUBJECT_CATEGORIES)  # 57 subjects of 4 items each: every quota is equal
    items = [(s, i) for s in subjects for i in range(4)]
    picked = stratified_sample(items, 5, seed=0, stratum=lambda it: it[0])
    chosen = [s for s, _ in picked]
    assert len(chosen) == 5 and len(set(chosen)) == 5  # five subjects, one question each
    assert chosen != subjects[:5]  # not the alphabetically first five
    assert picked == stratified_sample(items, 5, seed=0, stratum=lambda it: it[0])  # seeded
    others = {
        tuple(s for s, _ in stratified_sample(items, 5, seed=k, stratum=lambda it: it[0])) for k in range(5)
    }
    assert len(others) > 1  # another seed, another spread
    # proportional quotas are kept: 114 of 228 is 2 of every subject
    half = stratified_sample(items, 114, seed=0, stratum=lambda it: it[0])
    assert all(sum(s == subject for s, _ in half) == 2 for subject in subjects)


def test_mmlu_limit_reaches_the_stratified_sample(tmp_path):
    from harness.tasks import TASKS
    from harness.tasks.mmlu.task import MMLUSettings

    settings = MMLUSettings(
        data_dir=str(_mmlu_dir(tmp_path / "mmlu")), selection="full", subjects=SUBJECTS, limit=2
    )
    data = TASKS["mmlu"].load(settings, seed=0)
    assert sorted(item.subject for item in data.items) == sorted(SUBJECTS)  # one of each, not two of anatomy
