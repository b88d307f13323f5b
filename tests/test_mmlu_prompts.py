"""The MMLU prompt: lm-evaluation-harness's default layout, character for character."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.tasks.mmlu import (
    MMLU_TEMPLATE_VERSION,
    SUBJECT_CATEGORIES,
    MMLUItem,
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
