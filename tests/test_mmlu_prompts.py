"""The MMLU prompt: lm-evaluation-harness's default layout, character for character."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.tasks.mmlu.items import SUBJECT_CATEGORIES, MMLUItem
from harness.tasks.mmlu.prompts import (
    MMLU_TEMPLATE_VERSION,
    mmlu_description,
    mmlu_prompt,
    mmlu_prompt_parts,
    mmlu_shots,
)


def item(
    subject: str, index: int, question: str, choices=("w", "x", "y", "z"), answer="A", split="test"
) -> MMLUItem:
    return MMLUItem(subject, SUBJECT_CATEGORIES[subject], split, index, question, tuple(choices), answer)


DEV = [
    item("high_school_physics", 0, "First shot?", ("1", "2", "3", "4"), "B", "dev"),
    item("high_school_physics", 1, "  Second shot? ", ("a", " b", "c ", "d"), "D", "dev"),
    item("high_school_physics", 2, "Third shot?", answer="C", split="dev"),
    item("anatomy", 0, "Anatomy shot?", split="dev"),
]
QUESTION = item(
    "high_school_physics", 7, "\nWhat falls faster?\n", ("A feather", "A stone", "Both", "Neither"), "C"
)


def test_two_shot_prompt_is_lm_eval_layout_exactly():
    expected = (
        "The following are multiple choice questions (with answers) about high school physics.\n\n"
        "First shot?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n"
        "Second shot?\nA. a\nB.  b\nC. c \nD. d\nAnswer: D\n\n"
        "What falls faster?\nA. A feather\nB. A stone\nC. Both\nD. Neither\nAnswer:"
    )
    assert mmlu_prompt(QUESTION, mmlu_shots(DEV, "high_school_physics", 2)) == expected
    assert MMLU_TEMPLATE_VERSION == 1


def test_zero_shot_prompt_is_description_then_question():
    assert mmlu_prompt(QUESTION, []) == (
        "The following are multiple choice questions (with answers) about high school physics.\n\n"
        "What falls faster?\nA. A feather\nB. A stone\nC. Both\nD. Neither\nAnswer:"
    )


def test_parts_split_before_the_question():
    prefix, suffix = mmlu_prompt_parts(QUESTION, DEV[:2])
    assert prefix + suffix == mmlu_prompt(QUESTION, DEV[:2])
    assert prefix.endswith("Answer: D\n\n") and suffix.startswith("What falls faster?")


def test_shots_are_the_first_k_of_the_same_subject():
    # Not deepeval's behaviour (the first subject's shots for every subject).
    shuffled = [DEV[2], DEV[3], DEV[0], DEV[1]]
    assert mmlu_shots(shuffled, "high_school_physics", 2) == [DEV[0], DEV[1]]
    assert mmlu_shots(shuffled, "anatomy", 1) == [DEV[3]]
    assert mmlu_shots(shuffled, "anatomy", 0) == []
    assert mmlu_shots(DEV, "high_school_physics", 2, exclude=DEV[0]) == [DEV[1], DEV[2]]


def test_shot_errors():
    with pytest.raises(ValueError, match="only 1"):
        mmlu_shots(DEV, "anatomy", 2)
    with pytest.raises(ValueError, match=">= 0"):
        mmlu_shots(DEV, "anatomy", -1)
    with pytest.raises(
        ValueError,
        match=r"high_school_physics-0007: MMLU shots must come from subject 'high_school_physics', "
        r"got anatomy-0000",
    ):
        mmlu_prompt(QUESTION, [DEV[3]])


def test_description_spells_out_the_subject():
    assert mmlu_description("us_foreign_policy") == (
        "The following are multiple choice questions (with answers) about us foreign policy.\n\n"
    )


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    subject=st.sampled_from(sorted(SUBJECT_CATEGORIES)),
    question=text,
    choices=st.tuples(text, text, text, text),
    k=st.integers(0, 3),
)
def test_every_prompt_ends_with_the_cue_and_shares_its_subject_prefix(subject, question, choices, k):
    shots = [item(subject, i, f"shot {i}", split="dev") for i in range(k)]
    q = item(subject, 0, question, choices)
    other = item(subject, 1, "another question", choices)
    prompt = mmlu_prompt(q, shots)
    assert prompt.endswith("\nAnswer:")
    assert prompt.startswith(mmlu_description(subject))
    assert mmlu_prompt_parts(q, shots)[0] == mmlu_prompt_parts(other, shots)[0]


def test_the_cloze_prompt_is_lm_evals_mmlu_continuation_layout_exactly():
    from harness.tasks.mmlu.prompts import cloze_choices, cloze_prompt_parts

    prefix, question = cloze_prompt_parts(QUESTION, DEV[:2])
    assert prefix == (
        "The following are questions (with answers) about high school physics.\n\n"
        "Question: First shot?\nAnswer: 2\n\n"
        "Question: Second shot?\nAnswer: d\n\n"
    )
    assert question == "Question: What falls faster?\nAnswer:"
    assert cloze_choices(QUESTION) == (" A feather", " A stone", " Both", " Neither")
    with pytest.raises(ValueError, match="must come from subject 'high_school_physics'"):
        cloze_prompt_parts(QUESTION, [DEV[3]])


def test_cloze_picks_by_log_likelihood_per_character_and_scores_the_gold_per_token():
    from harness.tasks.mmlu.scoring import MMLUPrediction, acc_norm_choice, choice_scores, gold_token_loglik

    # -6 over 12 characters beats -3 over 4: acc_norm divides by the text's length
    assert acc_norm_choice([-3.0, -6.0, -9.0, -9.0], ["abcd", "abcdefghijkl", "x", "y"]) == 1
    assert acc_norm_choice([-2.0, -2.0, -5.0, -5.0], ["ab", "cd", "e", "f"]) == 0  # a tie: the earlier
    cloze = MMLUPrediction("q", "B", (-3.0, -6.0, -9.0, -9.0), None, (2, 3, 1, 1), "p", 0, "cloze")
    assert gold_token_loglik(cloze, 1) == -2.0  # the gold text's log-likelihood per token
    # the scores the prediction ranks: per character of each choice's text ("A feather" is 9)
    assert choice_scores(cloze, QUESTION) == pytest.approx(
        tuple(lp / len(c) for lp, c in zip(cloze.logprobs, QUESTION.choices))
    )
    letters = MMLUPrediction("q", "A", (-1.0, -2.0, -3.0, -4.0), None, None, "p", 0, "loglik")
    assert choice_scores(letters, QUESTION) == letters.logprobs


def test_the_cloze_task_asks_for_each_choices_text_and_answers_by_acc_norm(tmp_path, tiny_model_dir):
    from harness.engine.core import Engine
    from harness.engine.loglik import ChoiceScores
    from harness.models.pool import ModelPool
    from harness.tasks import TASKS
    from harness.tasks.base import RunContext
    from harness.tasks.mmlu.prompts import cloze_choices
    from harness.tasks.mmlu.scoring import acc_norm_choice
    from harness.tasks.mmlu.task import MMLUSettings
    from tests.tiny_data import MMLU_ROWS, build_mmlu_dir

    asked = []

    class ByLength:  # log-likelihood -sqrt(length): the shortest text is likeliest, the longest per character
        def score_choices(self, variant, requests, choices, settings, tick=None):
            asked.extend(choices)
            return [ChoiceScores(tuple(-(len(c) ** 0.5) for c in cs), (2, 2, 2, 2), 0, 0) for cs in choices]

    class Variant:
        name, model, load, adapter = "base", str(tiny_model_dir), "fp32", ""

    task = TASKS["mmlu"]
    settings = MMLUSettings(
        data_dir=str(build_mmlu_dir(tmp_path / "mmlu")),
        selection="per_subject",
        per_subject=2,
        subjects=tuple(MMLU_ROWS),
        shots=0,
    )
    settings = settings.model_copy(update={"scoring": "cloze"})
    data = task.load(settings, seed=0)
    engine = Engine(ModelPool(), tmp_path / "cache", backend=ByLength())
    predictions = task.predict(RunContext(engine, 0), data, Variant(), settings, None)
    assert asked == [cloze_choices(item) for item in data.items]
    for item in data.items:
        p = predictions.by_item[item.item_id]
        assert p.scoring == "cloze" and p.token_counts == (2, 2, 2, 2)
        assert p.letter == "ABCD"[acc_norm_choice(p.logprobs, item.choices)]
        longest = max(range(4), key=lambda i: (len(item.choices[i]), -i))
        assert p.letter == "ABCD"[longest]
