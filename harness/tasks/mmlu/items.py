"""MMLU's items: the 57 subjects and their categories, and the loaders (the original CSV layout, or
the hub copy ``cais/mmlu`` with its answers converted from 0-3). Text is kept verbatim: the
template decides what to strip (lm-eval strips the question and leaves the choices alone), so
the loader must not.
"""

from __future__ import annotations

import csv
import os
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.configfile import unknown
from harness.data.sources import SOURCES, DataNotFound, locate

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
        return locate("mmlu", explicit, option="--data-dir mmlu=PATH")
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
                choices=choices,
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
