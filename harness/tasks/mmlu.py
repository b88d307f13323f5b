"""MMLU: multiple-choice questions over 57 subjects, the measure of general knowledge.

One item, in order: a row of ``<split>/<subject>_<split>.csv`` becomes an :class:`MMLUItem`;
:func:`mmlu_prompt_parts` renders it in lm-evaluation-harness's default layout (a subject
description, k shots from the same subject's dev split, the question, "Answer:"), fitted into
the model's context by dropping shots (:func:`fit_prompts`); the engine scores the
log-likelihood of " A" .. " D" after it (or, the paper's way, generates and keeps the first
letter); :class:`MultipleChoice` passes when the predicted letter is the gold one.

Data: the original CSV layout (Hendrycks et al.'s ``data.tar``: ``<dir>/{dev,val,test}/
<subject>_<split>.csv``, no header, ``question,A,B,C,D,answer``) or the hub copy ``cais/mmlu``
(answer as 0-3, converted). Text is kept verbatim: the template decides what to strip
(lm-eval strips the question and leaves the choices alone), so the loader must not.
"""

from __future__ import annotations

import csv
import os
import random
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deepeval.metrics import BaseMetric
from deepeval.test_case import LLMTestCase, SingleTurnParams
from pydantic import model_validator

from harness.configfile import Problems, unknown
from harness.data.sources import SOURCES, DataNotFound, locate
from harness.engine.core import GenerationSettings, LoglikSettings
from harness.engine.token_counts import batch_token_counter
from harness.numbers.stats import choice_probability
from harness.records.results import CaseSpec
from harness.tasks.base import (
    BatchSize,
    NonNegative,
    Positive,
    Predictions,
    Report,
    RunContext,
    TaskData,
    TaskSettings,
    VariantOptions,
    check_threshold,
    require_expected,
    shots_of,
    stratified_sample,
)

# -- items and selections

MMLU_DIR_ENV = SOURCES["mmlu"].dir_env

SPLITS = ("dev", "val", "test")
Selection = Literal["paper", "full", "per_subject"]
SELECTIONS = typing.get_args(Selection)
_HUB_SPLITS = {"dev": "dev", "val": "validation", "test": "test"}
LETTERS = ("A", "B", "C", "D")

# The 57 subjects and their category, exactly as lm-evaluation-harness groups them
# (EleutherAI/lm-evaluation-harness@lm_eval/tasks/mmlu/_generate_configs.py, SUBJECTS), so our
# per-category accuracies and the paper's 50 STEM / 50 humanities / 50 social sciences sample
# mean the same thing as everyone else's mmlu_stem, mmlu_humanities, ... groups.
SUBJECT_CATEGORIES: dict[str, str] = {
    "abstract_algebra": "stem",
    "anatomy": "stem",
    "astronomy": "stem",
    "business_ethics": "other",
    "clinical_knowledge": "other",
    "college_biology": "stem",
    "college_chemistry": "stem",
    "college_computer_science": "stem",
    "college_mathematics": "stem",
    "college_medicine": "other",
    "college_physics": "stem",
    "computer_security": "stem",
    "conceptual_physics": "stem",
    "econometrics": "social_sciences",
    "electrical_engineering": "stem",
    "elementary_mathematics": "stem",
    "formal_logic": "humanities",
    "global_facts": "other",
    "high_school_biology": "stem",
    "high_school_chemistry": "stem",
    "high_school_computer_science": "stem",
    "high_school_european_history": "humanities",
    "high_school_geography": "social_sciences",
    "high_school_government_and_politics": "social_sciences",
    "high_school_macroeconomics": "social_sciences",
    "high_school_mathematics": "stem",
    "high_school_microeconomics": "social_sciences",
    "high_school_physics": "stem",
    "high_school_psychology": "social_sciences",
    "high_school_statistics": "stem",
    "high_school_us_history": "humanities",
    "high_school_world_history": "humanities",
    "human_aging": "other",
    "human_sexuality": "social_sciences",
    "international_law": "humanities",
    "jurisprudence": "humanities",
    "logical_fallacies": "humanities",
    "machine_learning": "stem",
    "management": "other",
    "marketing": "other",
    "medical_genetics": "other",
    "miscellaneous": "other",
    "moral_disputes": "humanities",
    "moral_scenarios": "humanities",
    "nutrition": "other",
    "philosophy": "humanities",
    "prehistory": "humanities",
    "professional_accounting": "other",
    "professional_law": "humanities",
    "professional_medicine": "other",
    "professional_psychology": "social_sciences",
    "public_relations": "social_sciences",
    "security_studies": "social_sciences",
    "sociology": "social_sciences",
    "us_foreign_policy": "social_sciences",
    "virology": "other",
    "world_religions": "humanities",
}
CATEGORIES: tuple[str, ...] = ("stem", "humanities", "social_sciences", "other")


class MMLUDataError(ValueError):
    """The MMLU folder or one of its files is missing or malformed; the message names it."""


@dataclass(frozen=True)
class MMLUItem:
    """One MMLU question.

    ``index`` is the 0-based row of the question in its subject's CSV file (the position within
    the subject for hub rows), so ``item_id`` is stable across selections, variants and runs.
    """

    subject: str
    category: str
    split: str
    index: int
    question: str
    choices: tuple[str, str, str, str]
    answer: str  # "A".."D"

    @property
    def item_id(self) -> str:
        return f"{self.subject}-{self.index:04d}"


def category_of(subject: str) -> str:
    try:
        return SUBJECT_CATEGORIES[subject]
    except KeyError:
        raise MMLUDataError(unknown("MMLU subject", subject, SUBJECT_CATEGORIES)) from None


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise MMLUDataError(unknown("MMLU split", split, SPLITS))


def find_mmlu_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The MMLU folder (one with a ``test/`` subfolder, the original layout): ``explicit`` if given,
    else ``$HARNESS_MMLU_DIR``, else ``$HARNESS_DATA_DIR/mmlu``, ./data/mmlu, ../shared/data/mmlu
    (harness.data.sources); the error names every folder looked at and ``harness data fetch``."""
    try:
        return locate("mmlu", explicit, option="--mmlu-dir")
    except DataNotFound as e:
        raise MMLUDataError(f"{e} (or use mmlu.source = 'hub' when online)") from None


def _subjects_to_read(split_dir: Path, split: str, subjects: Iterable[str] | None) -> list[str]:
    """The subjects to load; with ``subjects=None``, all 57, and the folder must hold exactly them."""
    if subjects is not None:
        wanted = list(dict.fromkeys(subjects))
        for s in wanted:
            category_of(s)  # raises, naming the unknown subject
        return wanted
    suffix = f"_{split}.csv"
    on_disk = sorted(p.name[: -len(suffix)] for p in split_dir.glob(f"*{suffix}"))
    strangers = [s for s in on_disk if s not in SUBJECT_CATEGORIES]
    if strangers:
        raise MMLUDataError(
            f"{split_dir / (strangers[0] + suffix)}: "
            f"{unknown('MMLU subject', strangers[0], SUBJECT_CATEGORIES)}"
        )
    missing = [s for s in SUBJECT_CATEGORIES if s not in on_disk]
    if missing:
        raise MMLUDataError(
            f"{split_dir}: {len(missing)} of the 57 subjects have no {split} file ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}); pass subjects=[...] to load only some"
        )
    return list(SUBJECT_CATEGORIES)


def _read_subject_csv(path: Path, subject: str, split: str) -> list[MMLUItem]:
    category = category_of(subject)
    items = []
    try:
        f = open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise MMLUDataError(f"{path}: file not found (subject {subject!r}, split {split!r})") from None
    with f:
        reader = csv.reader(f)
        line = 1  # the line on which the next record starts (a quoted field may span lines)
        for index, row in enumerate(reader):
            where = f"{path}:{line}"
            line = reader.line_num + 1
            if len(row) != 6:
                raise MMLUDataError(
                    f"{where}: expected 6 fields (question,A,B,C,D,answer), found {len(row)}: {row!r:.200}"
                )
            answer = row[5].strip()
            if answer not in LETTERS:
                raise MMLUDataError(f"{where}: answer must be one of A, B, C, D, found {row[5]!r}")
            items.append(
                MMLUItem(
                    subject=subject,
                    category=category,
                    split=split,
                    index=index,
                    question=row[0],
                    choices=(row[1], row[2], row[3], row[4]),
                    answer=answer,
                )
            )
    return items


def load_mmlu_split(
    mmlu_dir: str | os.PathLike, split: str, subjects: Iterable[str] | None = None
) -> list[MMLUItem]:
    """All items of ``split`` ("dev", "val" or "test"), subject by subject in table order, each
    subject's rows in file order.

    Raises :class:`MMLUDataError` naming the file and line of a malformed row (wrong field count,
    answer not a letter A-D), an unknown subject file, or a missing one.
    """
    _check_split(split)
    split_dir = Path(mmlu_dir) / split
    if not split_dir.is_dir():
        raise MMLUDataError(f"{split_dir}: no such folder (the original layout has dev/, val/ and test/)")
    items: list[MMLUItem] = []
    for subject in _subjects_to_read(split_dir, split, subjects):
        items.extend(_read_subject_csv(split_dir / f"{subject}_{split}.csv", subject, split))
    return items


def items_from_hub_rows(rows: Iterable[Mapping], split: str, source: str) -> list[MMLUItem]:
    """Convert ``cais/mmlu`` rows (``question``, ``subject``, ``choices`` (4), ``answer`` 0-3) to
    items. ``index`` counts rows within each subject, which is the CSV row for the hub's copy."""
    _check_split(split)
    per_subject: dict[str, int] = {}
    items = []
    for n, row in enumerate(rows):
        where = f"{source} row {n}"
        subject = row.get("subject")
        if subject not in SUBJECT_CATEGORIES:
            raise MMLUDataError(f"{where}: {unknown('MMLU subject', str(subject), SUBJECT_CATEGORIES)}")
        choices = tuple(row.get("choices") or ())
        if len(choices) != 4:
            raise MMLUDataError(f"{where}: expected 4 choices, found {len(choices)}")
        answer = row.get("answer")
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer <= 3:
            raise MMLUDataError(f"{where}: answer must be an integer 0-3, found {answer!r}")
        index = per_subject.get(subject, 0)
        per_subject[subject] = index + 1
        items.append(
            MMLUItem(
                subject=subject,
                category=SUBJECT_CATEGORIES[subject],
                split=split,
                index=index,
                question=row["question"],
                choices=choices,  # type: ignore[arg-type]
                answer=LETTERS[answer],
            )
        )
    return items


def load_mmlu_hub(split: str) -> list[MMLUItem]:
    """Items of ``split`` from the Hugging Face hub copy ``cais/mmlu`` ("all" config; needs
    internet or a warm datasets cache). The hub calls the val split "validation"."""
    from datasets import load_dataset

    _check_split(split)
    hub_split = _HUB_SPLITS[split]
    ds = load_dataset("cais/mmlu", "all", split=hub_split)
    return items_from_hub_rows(ds, split, f"cais/mmlu[all/{hub_split}]")


# --- selection ------------------------------------------------------------------------------

SELECTION_MODES = ("full", "stratified", "per_subject")


@dataclass(frozen=True)
class MMLUSelection:
    """Which items of a split a benchmark runs; deterministic in (items, selection).

    ``mode``:
      * "full": every item (of ``subjects``, when given);
      * "stratified": ``per_category[c]`` items drawn at random from category ``c``;
      * "per_subject": ``per_subject`` items drawn at random from every subject.
    ``subjects`` restricts the pool in every mode (empty: all 57). ``per_category`` is stored as
    sorted ``(category, n)`` pairs so the selection is hashable and prints the same every time;
    pass a dict. An experiment file names a selection (``mmlu.selection = "paper"``, "full" or
    "per_subject"): :func:`named_selection` turns the name into one of these.
    """

    mode: str = "full"
    subjects: tuple[str, ...] = ()
    per_category: tuple[tuple[str, int], ...] | Mapping[str, int] = ()
    per_subject: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.mode not in SELECTION_MODES:
            raise ValueError(unknown("MMLU selection mode", self.mode, SELECTION_MODES))
        object.__setattr__(self, "subjects", tuple(self.subjects))
        for s in self.subjects:
            if s not in SUBJECT_CATEGORIES:
                raise ValueError(f"selection.subjects: {unknown('MMLU subject', s, SUBJECT_CATEGORIES)}")
        pairs = dict(
            self.per_category.items() if isinstance(self.per_category, Mapping) else self.per_category
        )
        for c, n in pairs.items():
            if c not in CATEGORIES:
                raise ValueError(f"selection.per_category: {unknown('MMLU category', c, CATEGORIES)}")
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"selection.per_category.{c}: must be a non-negative integer, got {n!r}")
        object.__setattr__(self, "per_category", tuple(sorted(pairs.items())))
        if self.mode == "stratified" and not any(n for _, n in self.per_category):
            raise ValueError(
                "selection.per_category: mode 'stratified' needs a count for at least one category"
            )
        if self.mode == "per_subject" and self.per_subject <= 0:
            raise ValueError(
                f"selection.per_subject: mode 'per_subject' needs a positive count, got {self.per_subject}"
            )
        if not isinstance(self.seed, int):
            raise ValueError(f"selection.seed: must be an integer, got {self.seed!r}")

    def describe(self) -> str:
        """A stable one-line description, for cache fingerprints and reports."""
        parts = [f"mode={self.mode}", f"seed={self.seed}"]
        if self.subjects:
            parts.append("subjects=" + ",".join(self.subjects))
        if self.mode == "stratified":
            parts.append("per_category=" + ",".join(f"{c}:{n}" for c, n in self.per_category))
        if self.mode == "per_subject":
            parts.append(f"per_subject={self.per_subject}")
        return " ".join(parts)


# The paper's 150 questions: 50 STEM, 50 humanities, 50 social sciences, from the test split.
PAPER_SELECTION = MMLUSelection(
    mode="stratified", per_category={"stem": 50, "humanities": 50, "social_sciences": 50}, seed=0
)


def named_selection(
    name: str, *, seed: int = 0, per_subject: int = 0, subjects: Iterable[str] = ()
) -> MMLUSelection:
    """The selection a config's ``mmlu.selection = "paper" | "full" | "per_subject"`` means."""
    subjects = tuple(subjects)
    if name == "paper":
        return MMLUSelection(
            mode="stratified", per_category=dict(PAPER_SELECTION.per_category), seed=seed, subjects=subjects
        )
    if name == "full":
        return MMLUSelection(mode="full", seed=seed, subjects=subjects)
    if name == "per_subject":
        return MMLUSelection(mode="per_subject", per_subject=per_subject, seed=seed, subjects=subjects)
    raise ValueError(unknown("MMLU selection", name, SELECTIONS))


def _sample(pool: list[MMLUItem], n: int, seed: int, stratum: str) -> list[MMLUItem]:
    if n > len(pool):
        raise MMLUDataError(f"selection asks for {n} items of {stratum}, which has only {len(pool)}")
    # A string seed is hashed with SHA-512 by random.seed, so it is the same in every process
    # (unlike hash()); one stream per stratum keeps each stratum's draw independent of the others'
    # sizes, so asking for more humanities items does not reshuffle the STEM ones.
    return random.Random(f"mmlu:{seed}:{stratum}").sample(pool, n)


def select_mmlu(items: Iterable[MMLUItem], selection: MMLUSelection) -> list[MMLUItem]:
    """The items ``selection`` picks, sorted by (subject, index).

    The pool is first put in (subject, index) order, so the result depends only on which items
    there are and on the selection, never on the order they were loaded in.
    """
    pool = sorted(items, key=lambda it: (it.subject, it.index))
    if selection.subjects:
        wanted = set(selection.subjects)
        pool = [it for it in pool if it.subject in wanted]
        absent = wanted - {it.subject for it in pool}
        if absent:
            raise MMLUDataError(f"selection.subjects: no items loaded for {', '.join(sorted(absent))}")
    if selection.mode == "full":
        chosen = pool
    elif selection.mode == "stratified":
        chosen = []
        for category, n in selection.per_category:
            if n:
                chosen += _sample([it for it in pool if it.category == category], n, selection.seed, category)
    else:
        by_subject: dict[str, list[MMLUItem]] = {}
        for it in pool:
            by_subject.setdefault(it.subject, []).append(it)
        chosen = []
        for subject, subject_items in by_subject.items():
            chosen += _sample(subject_items, selection.per_subject, selection.seed, subject)
    return sorted(chosen, key=lambda it: (it.subject, it.index))


# -- prompts: lm-evaluation-harness's default MMLU layout, character for character

MMLU_TEMPLATE_VERSION = 1
MMLU_ANSWER_CUE = "Answer:"
_MMLU_FEWSHOT_DELIMITER = "\n\n"  # lm-eval's fewshot_delimiter, after every shot
_MMLU_TARGET_DELIMITER = " "  # lm-eval's target_delimiter, between "Answer:" and the letter


def _subject_words(subject: str) -> str:
    return " ".join(subject.split("_"))  # high_school_physics -> high school physics


def _require_same_subject(item: MMLUItem, shots: Sequence[MMLUItem]) -> None:
    strangers = [s.item_id for s in shots if s.subject != item.subject]
    if strangers:
        # deepeval's MMLU benchmark reuses the first subject's shots for every subject; a shot
        # from another subject is that bug, not a choice.
        raise ValueError(
            f"{item.item_id}: MMLU shots must come from subject {item.subject!r}, got {', '.join(strangers)}"
        )


def mmlu_description(subject: str) -> str:
    """``The following are multiple choice questions (with answers) about high school physics.``
    + blank line."""
    return f"The following are multiple choice questions (with answers) about {_subject_words(subject)}.\n\n"


def mmlu_question(item: MMLUItem) -> str:
    """One question as lm-eval's ``doc_to_text`` renders it: stripped question, the four
    choices verbatim (lm-eval does not strip them), and the answer cue."""
    a, b, c, d = item.choices
    return f"{item.question.strip()}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\n{MMLU_ANSWER_CUE}"


def mmlu_shot(item: MMLUItem) -> str:
    """A solved example: the question, then " " and its answer letter."""
    return mmlu_question(item) + _MMLU_TARGET_DELIMITER + item.answer


def mmlu_prompt_parts(item: MMLUItem, shots: Sequence[MMLUItem]) -> tuple[str, str]:
    """The prompt split into (shared prefix, question suffix); ``prefix + suffix`` is the prompt.

    The prefix (description and shots, ending with the blank line before the question) is the
    same for every question of a subject, so a scorer can compute it once and reuse it.
    """
    _require_same_subject(item, shots)
    prefix = mmlu_description(item.subject) + "".join(mmlu_shot(s) + _MMLU_FEWSHOT_DELIMITER for s in shots)
    return prefix, mmlu_question(item)


def mmlu_prompt(item: MMLUItem, shots: Sequence[MMLUItem]) -> str:
    """The full k-shot prompt for ``item``; it ends with ``Answer:`` (no trailing space)."""
    prefix, suffix = mmlu_prompt_parts(item, shots)
    return prefix + suffix


def mmlu_shots(
    dev_items: Sequence[MMLUItem], subject: str, k: int, *, exclude: MMLUItem | None = None
) -> list[MMLUItem]:
    """The first ``k`` dev items of ``subject``, in file order (lm-eval's ``first_n`` sampler).

    ``exclude`` drops the item being asked, as lm-eval does when shots and questions come from
    the same split.
    """
    if k < 0:
        raise ValueError(f"the number of MMLU shots must be >= 0, got {k}")
    pool = sorted((s for s in dev_items if s.subject == subject and s != exclude), key=lambda s: s.index)
    if len(pool) < k:
        raise ValueError(f"asked for {k} MMLU shots of {subject!r}, but the shot pool has only {len(pool)}")
    return pool[:k]


# -- the cloze form: each choice's text scored after "Answer:" (lm-eval's mmlu_continuation)

MMLU_CLOZE_TEMPLATE_VERSION = 1


def cloze_question(item: MMLUItem) -> str:
    """``Question: <question>\nAnswer:``, without the lettered choices: the model is asked to
    continue with the answer's text, which a small model can do above chance where it cannot
    name a letter (SmolLM2's "MMLU cloze")."""
    return f"Question: {item.question.strip()}\nAnswer:"


def cloze_choices(item: MMLUItem) -> tuple[str, ...]:
    """The continuations scored: each choice's text after lm-eval's target delimiter (a space)."""
    return tuple(_MMLU_TARGET_DELIMITER + c for c in item.choices)


def cloze_prompt_parts(item: MMLUItem, shots: Sequence[MMLUItem]) -> tuple[str, str]:
    """lm-eval's ``mmlu_continuation`` layout: a description, shots answered with their gold
    choice's text, then the question; split into (shared prefix, question) like the letter form."""
    _require_same_subject(item, shots)
    description = f"The following are questions (with answers) about {_subject_words(item.subject)}.\n\n"
    solved = "".join(
        cloze_question(s) + cloze_choices(s)[LETTERS.index(s.answer)] + _MMLU_FEWSHOT_DELIMITER for s in shots
    )
    return description + solved, cloze_question(item)


# -- fitting a prompt into the context


class PromptTooLongError(ValueError):
    """A question does not fit the model's context even without shots; the message names it."""


@dataclass(frozen=True)
class FittedPrompt:
    """A prompt that fits the model, with how many of the requested shots it kept."""

    prefix: str
    suffix: str
    shots_used: int
    shots_requested: int
    n_tokens: int

    @property
    def prompt(self) -> str:
        return self.prefix + self.suffix

    @property
    def shots_dropped(self) -> int:
        return self.shots_requested - self.shots_used


def fit_shots(
    item: MMLUItem,
    shots: Sequence[MMLUItem],
    count_tokens: Callable[[str], int],
    max_tokens: int,
    *,
    reserve: int = 1,
) -> FittedPrompt:
    """The prompt with as many of ``shots`` (a prefix of them, in order) as fit in ``max_tokens``,
    leaving ``reserve`` tokens for the answer (1 for loglik, ``max_new_tokens`` for generate).

    Never truncates text: a prompt that is too long loses whole shots from the end, and the
    result says how many were kept so the report can show it. A question that does not fit
    even with no shots raises :class:`PromptTooLongError` naming the item.
    """
    return fit_prompts(
        [(item, shots)], lambda texts: [count_tokens(t) for t in texts], max_tokens, reserve=reserve
    )[0]


def fit_prompts(
    requests: Sequence[tuple[MMLUItem, Sequence[MMLUItem]]],
    count_tokens: Callable[[Sequence[str]], list[int]],
    max_tokens: int,
    *,
    reserve: int = 1,
    parts_of: Callable[[MMLUItem, Sequence[MMLUItem]], tuple[str, str]] | None = None,
) -> list[FittedPrompt]:
    """:func:`fit_shots` for many (question, shots) pairs, counting tokens a batch at a time:
    every prompt with all its shots first, then those that did not fit with one shot fewer,
    and so on (``count_tokens`` maps a list of texts to their token counts). ``parts_of``
    renders a prompt (default: :func:`mmlu_prompt_parts`; the cloze form: :func:`cloze_prompt_parts`)."""
    parts_of = parts_of or mmlu_prompt_parts
    fitted: list[FittedPrompt | None] = [None] * len(requests)
    kept = [len(shots) for _, shots in requests]
    pending = list(range(len(requests)))
    while pending:
        parts = [parts_of(requests[i][0], requests[i][1][: kept[i]]) for i in pending]
        counts = count_tokens([prefix + suffix for prefix, suffix in parts])
        too_long = []
        for i, (prefix, suffix), n_tokens in zip(pending, parts, counts):
            item, shots = requests[i]
            if n_tokens + reserve <= max_tokens:
                fitted[i] = FittedPrompt(prefix, suffix, kept[i], len(shots), n_tokens)
            elif kept[i] == 0:
                raise PromptTooLongError(
                    f"{item.item_id}: the 0-shot prompt is {n_tokens} tokens; with {reserve} reserved "
                    f"for the answer it exceeds the model's context of {max_tokens} tokens"
                )
            else:
                kept[i] -= 1
                too_long.append(i)
        pending = too_long
    return fitted


# -- answers and the metric


def first_letter(text: str) -> str:
    """The paper's answer extraction: the first non-whitespace character, uppercased.

    It may be no letter at all ("S" of "Sure", "(" ...), which then scores as wrong; "" for an
    empty or all-whitespace output.
    """
    stripped = text.lstrip()
    return stripped[0].upper() if stripped else ""


class MultipleChoice(BaseMetric):
    """Passes when the predicted letter (``actual_output``) is the gold one (``expected_output``,
    one of A-D); a prediction that is not a single letter A-D (for example "S" or "") is wrong,
    and the reason says it was not a valid choice.

    ``score`` is 1.0 for the right answer and 0.0 otherwise, and the case passes when ``score >=
    threshold``, as deepeval's metrics read. When the test case carries the choices' scores
    (``metadata["choice_scores"]``, in the normalisation the prediction uses, from the
    log-likelihood and cloze scorings) the reason also gives the probability the model puts on
    the right answer among the choices (the report's continuous measure, which moves before the
    accuracy does).
    """

    _required_params = [SingleTurnParams.ACTUAL_OUTPUT, SingleTurnParams.EXPECTED_OUTPUT]

    def __init__(self, threshold: float = 1.0):
        check_threshold(threshold)
        self.threshold = threshold

    def measure(self, test_case: LLMTestCase, *args, **kwargs) -> float:
        self.error = None
        answer = require_expected(self, test_case).upper()
        if answer not in LETTERS:
            self.error = f"expected_output must be one of {', '.join(LETTERS)}, got {answer!r}"
            raise ValueError(self.error)
        predicted = (test_case.actual_output or "").strip()
        if predicted.upper() not in LETTERS:
            ok, reason = (
                False,
                f"prediction {predicted!r} is not a valid choice (A-D); the answer is {answer}",
            )
        elif predicted.upper() == answer:
            ok, reason = True, f"prediction {predicted.upper()} is the answer"
        else:
            ok, reason = False, f"prediction {predicted.upper()}, answer {answer}"
        scores = (test_case.metadata or {}).get("choice_scores")
        if scores:
            probability = choice_probability(scores, LETTERS.index(answer))
            reason += f" (probability of the answer among the choices: {probability:.2f})"
        self.score = float(ok)
        self.reason = reason
        self.success = self.is_successful()
        return self.score

    async def a_measure(self, test_case: LLMTestCase, *args, **kwargs) -> float:
        return self.measure(test_case, *args, **kwargs)

    def is_successful(self) -> bool:
        score = getattr(self, "score", None)
        self.success = self.error is None and score is not None and score >= self.threshold
        return self.success

    @property
    def __name__(self):
        return "Multiple Choice"


def choice_scores(prediction: MMLUPrediction, item: MMLUItem) -> tuple[float, ...]:
    """The four scores whose largest is the predicted answer: the letters' log-likelihoods, or,
    in the cloze form, each choice text's log-likelihood per character (:func:`acc_norm_choice`).
    The probability of the right answer and the answer KL read these, so the measures and the
    prediction read one distribution."""
    if prediction.scoring == "cloze":
        return tuple(lp / max(len(c), 1) for lp, c in zip(prediction.logprobs, item.choices))
    return tuple(prediction.logprobs)


def gold_token_loglik(prediction: MMLUPrediction, gold: int) -> float:
    """Cloze form: the gold text's log-likelihood per token, log p(text | prompt) / tokens. Not a
    probability among the choices (it ignores the others), and reported only under this name."""
    return prediction.logprobs[gold] / max(prediction.token_counts[gold], 1)


def acc_norm_choice(logprobs: Sequence[float], choices: Sequence[str]) -> int:
    """lm-eval's ``acc_norm``: the choice with the highest log-likelihood per character of its
    text (ties to the earlier one)."""
    normalised = [lp / max(len(c), 1) for lp, c in zip(logprobs, choices)]
    return max(range(len(normalised)), key=lambda i: (normalised[i], -i))


# -- the task ------------------------------------------------------------------------------------

Scoring = Literal["loglik", "cloze", "generate"]
_GENERATE_TOKENS = 5  # the paper read the first character; a few more help diagnosis
LETTER_CHOICES = tuple(
    _MMLU_TARGET_DELIMITER + letter for letter in LETTERS
)  # lm-eval scores " A" after "Answer:"


class MMLUSettings(TaskSettings):
    """The ``[mmlu]`` table of an experiment. ``batch_size = "auto"``: 8 on a CPU; on a CUDA
    device the largest batch that fits, from a cap of 64 prompts (a forward pass still holds at
    most ``max_batch_tokens``), found once per (model, device, task) and reused
    (:func:`harness.engine.core.split_on_oom`)."""

    data_dir: str = ""  # empty: looked up as harness.data.sources says ($HARNESS_MMLU_DIR, ./data, ...)
    source: Literal["disk", "hub"] = "disk"
    split: Literal["dev", "val", "test"] = "test"
    # "paper": 50 STEM + 50 humanities + 50 social sciences, seeded; "full"; "per_subject"
    selection: Selection = "paper"
    per_subject: NonNegative = 0  # with selection = "per_subject": this many questions of every subject
    subjects: tuple[str, ...] = ()  # restrict to these subjects (any selection)
    shots: NonNegative = 4
    # "loglik": the log-likelihood of the letters " A" .. " D" (lm-eval's mmlu); "cloze": of each
    # choice's text, picked by log-likelihood per character (lm-eval's mmlu_continuation,
    # acc_norm); "generate": the first character of a greedy continuation (the paper's way).
    scoring: Scoring = "loglik"  # a variant may override it
    batch_size: BatchSize = 8  # loglik: prompts per forward pass; generate: prompts per generate() call
    # loglik: a forward pass also holds at most this many tokens, padding included, so a long
    # question does not pad a batch of short ones; raise it (with batch_size) on a GPU.
    max_batch_tokens: Positive = 2048
    # loglik: run a subject's shared few-shot prefix once and reuse its KV cache. "auto": on a
    # CPU only, where it is faster; on a GPU the small per-subject batches it forces are slower
    # (docs/measurements.md).
    reuse_prefix: Literal["auto", "on", "off"] = "auto"

    @model_validator(mode="after")
    def _check(self):
        problems = []
        if self.selection == "per_subject" and self.per_subject <= 0:
            problems.append("per_subject: must be positive when selection = 'per_subject'")
        for i, subject in enumerate(self.subjects):
            if subject not in SUBJECT_CATEGORIES:
                problems.append(f"subjects[{i}]: {unknown('MMLU subject', subject, SUBJECT_CATEGORIES)}")
        if problems:
            raise Problems(problems)
        return self


class MMLUOptions(VariantOptions):
    """A variant's ``mmlu = {...}`` table: ``shots``, ``scoring`` and ``batch_size`` override the
    task's (another batch size: a null variant that measures the run's noise floor). Its
    ``batch_size`` enters the cache fingerprint as written: a number, or the word "auto" (never
    the size "auto" found), so "auto" and 8 are two entries even on a CPU where they compute alike."""

    scoring: Scoring | None = None
    batch_size: BatchSize | None = None


@dataclass(frozen=True)
class MMLUContext:
    dev: tuple[MMLUItem, ...]  # the shot pool


@dataclass(frozen=True)
class MMLUPrediction:
    item_id: str
    letter: str  # "A".."D", or whatever the generate mode produced (e.g. "S")
    logprobs: tuple[float, ...] | None  # loglik: of " A" .. " D"; cloze: of each choice's text
    raw: str | None  # generate: the raw continuation
    token_counts: tuple[int, ...] | None  # cloze: tokens of each choice's text
    prompt: str
    shots_used: int
    scoring: str


def load_mmlu_data(settings: MMLUSettings, seed: int) -> TaskData:
    selection = named_selection(
        settings.selection, seed=seed, per_subject=settings.per_subject, subjects=settings.subjects
    )
    if settings.source == "hub":
        items, dev = load_mmlu_hub(settings.split), load_mmlu_hub("dev")
    else:
        mmlu_dir = find_mmlu_dir(settings.data_dir or None)
        subjects = settings.subjects or None
        items, dev = (
            load_mmlu_split(mmlu_dir, settings.split, subjects),
            load_mmlu_split(mmlu_dir, "dev", subjects),
        )
    selected = select_mmlu(items, selection)
    # --limit: a seeded sample of the selection, spread over subjects in proportion to their sizes.
    selected = stratified_sample(selected, settings.limit, seed, stratum=lambda item: item.subject)
    return TaskData(tuple(selected), MMLUContext(tuple(dev)))


def scoring_of(settings: MMLUSettings, options: MMLUOptions | None) -> str:
    return settings.scoring if options is None or options.scoring is None else options.scoring


class MMLUTask:
    name = "mmlu"
    description = "an MMLU multiple-choice case (benchmarks/test_mmlu.py)"
    settings_model = MMLUSettings
    variant_model = MMLUOptions
    report = Report(
        title="MMLU accuracy",
        group_label="category",
        group_order=(*CATEGORIES, "unknown"),
        subgroup_label="subject",
        chance=0.25,
        role="generalization",
        closed_answers=True,
    )

    def load(self, settings: MMLUSettings, *, seed: int) -> TaskData:
        return load_mmlu_data(settings, seed)

    def record_fields(self, item: MMLUItem) -> dict:
        return {"group": item.category, "subject": item.subject}

    def predict(
        self, run: RunContext, data: TaskData, variant, settings: MMLUSettings, options: MMLUOptions | None
    ) -> Predictions:
        """The answer of every selected question, by log-likelihood of the letters (default) or
        by the first character of a greedy generation (the paper's way)."""
        engine = run.engine
        tokenizer = engine.tokenizer(variant)
        k = shots_of(settings, options)
        scoring = scoring_of(settings, options)
        shots = {
            subject: mmlu_shots(data.context.dev, subject, k) for subject in {i.subject for i in data.items}
        }
        count = batch_token_counter(tokenizer, engine.cache_root)
        cloze = scoring == "cloze"
        # Room for the answer: a letter, the generation, or a choice's text (the longest, counted).
        if scoring == "loglik":
            reserve = 1
        elif scoring == "generate":
            reserve = _GENERATE_TOKENS
        else:
            reserve = 1 + max(count([c for item in data.items for c in cloze_choices(item)]) or [1])
        fitted = fit_prompts(
            [(item, shots[item.subject]) for item in data.items],
            count,
            engine.context_length(variant),
            reserve=reserve,
            parts_of=cloze_prompt_parts if cloze else mmlu_prompt_parts,
        )
        version = MMLU_CLOZE_TEMPLATE_VERSION if cloze else MMLU_TEMPLATE_VERSION
        fingerprint = {"scoring": scoring, "template_version": version}
        batch_size = settings.batch_size
        if options is not None and options.batch_size is not None:
            # its own cache entry: scored again at this batch size, never read from another's
            batch_size = fingerprint["batch_size"] = options.batch_size
        desc = f"mmlu {variant.name} ({scoring})"
        if scoring in ("loglik", "cloze"):
            # cloze: the choices' texts differ per question, so no prefix is shared between them
            loglik = LoglikSettings(
                batch_size=batch_size,
                max_batch_tokens=settings.max_batch_tokens,
                reuse_prefix="off" if cloze else settings.reuse_prefix,
            )
            scores, phase = engine.score_choices(
                variant,
                [(f.prefix, f.suffix) for f in fitted],
                [cloze_choices(item) for item in data.items] if cloze else [LETTER_CHOICES] * len(fitted),
                loglik,
                namespace=self.name,
                fingerprint=fingerprint,
                desc=desc,
            )
            answers = [
                (
                    LETTERS[acc_norm_choice(s.logprobs, item.choices) if cloze else s.best],
                    s.logprobs,
                    None,
                    s.token_counts if cloze else None,
                )
                for s, item in zip(scores, data.items)
            ]
        else:
            gen = GenerationSettings(
                max_new_tokens=_GENERATE_TOKENS, batch_size=batch_size, add_special_tokens=True
            )
            raws, phase = engine.generate(
                variant,
                [f.prompt for f in fitted],
                gen,
                namespace=self.name,
                fingerprint=fingerprint,
                desc=desc,
            )
            answers = [(first_letter(raw), None, raw, None) for raw in raws]
        by_item = {
            item.item_id: MMLUPrediction(
                item_id=item.item_id,
                letter=letter,
                logprobs=logprobs,
                raw=raw,
                token_counts=tokens,
                prompt=f.prompt,
                shots_used=f.shots_used,
                scoring=scoring,
            )
            for item, f, (letter, logprobs, raw, tokens) in zip(data.items, fitted, answers)
        }
        phase.info.update(
            template="lm-eval-mmlu-continuation" if cloze else "lm-eval-mmlu",
            template_version=version,
            seed=run.seed,
            n_prompts=len(fitted),
            shots=k,
            scoring=scoring,
            shots_reduced=sum(f.shots_dropped > 0 for f in fitted),
            predicted_letters=dict(Counter(p.letter or "<empty>" for p in by_item.values())),
        )
        return Predictions(by_item, phase)

    def metric(self, settings: MMLUSettings) -> MultipleChoice:
        return MultipleChoice()

    def case(
        self,
        item: MMLUItem,
        prediction: MMLUPrediction,
        variant,
        settings: MMLUSettings,
        data: TaskData,
        metric: MultipleChoice,
    ) -> CaseSpec:
        extra = {"shots_used": prediction.shots_used, "scoring": prediction.scoring}
        logprobs = list(prediction.logprobs) if prediction.logprobs is not None else None
        scores = list(choice_scores(prediction, item)) if logprobs is not None else None
        if logprobs is not None:
            gold = LETTERS.index(item.answer)
            extra["letter_scores"] = dict(zip(LETTERS, logprobs))  # as the model scored them
            extra["choice_scores"] = dict(zip(LETTERS, scores))  # as the prediction ranks them
            extra["gold_prob"] = choice_probability(scores, gold)
            if prediction.scoring == "cloze":
                extra["gold_token_loglik"] = gold_token_loglik(prediction, gold)
        test_case = LLMTestCase(
            name=f"{variant.name}/{item.item_id}",
            input=item.question,
            actual_output=prediction.letter,
            expected_output=item.answer,
            metadata={
                "subject": item.subject,
                "category": item.category,
                "variant": variant.name,
                "predicted_letter": prediction.letter,
                "letter_scores": extra.get("letter_scores"),
                "choice_logprobs": logprobs,
                "choice_scores": scores,
                "raw_output": prediction.raw,
                "shots_used": prediction.shots_used,
            },
        )
        sample = {
            "prompt": prediction.prompt,
            "raw_output": prediction.raw,
            "choice_logprobs": logprobs,
        }
        return CaseSpec(test_case, metric, prediction=prediction.letter, extra=extra, sample=sample)

    def failure_kind(self, reason: str) -> str:
        return "not a choice" if "not a valid choice" in reason else "wrong letter"

    def write_outputs(self, run_dir: Path, variant, data: TaskData, predictions: Predictions) -> None:
        return None


TASK = MMLUTask()
