"""MMLU: items from the original CSV layout on disk or from the hub, and seeded selections.

The original layout (Hendrycks et al.'s ``data.tar``) is ``<dir>/{dev,val,test}/<subject>_<split>.csv``:
no header, six fields ``question,A,B,C,D,answer``, answer a letter ``A``-``D``. The hub copy
``cais/mmlu`` holds the same rows (its loader read these CSVs with the ``csv`` module) with the
answer as an integer 0-3; :func:`items_from_hub_rows` converts it to the same items.

Text is kept verbatim: the prompt template decides what to strip (lm-evaluation-harness strips
the question and leaves the choices alone), so the loader must not.
"""

from __future__ import annotations

import csv
import difflib
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

MMLU_DIR_ENV = "HARNESS_MMLU_DIR"
_DEFAULT_MMLU_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mmlu"

SPLITS = ("dev", "val", "test")
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


def _unknown(kind: str, name: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (choose from {', '.join(choices)})"


def category_of(subject: str) -> str:
    try:
        return SUBJECT_CATEGORIES[subject]
    except KeyError:
        raise MMLUDataError(_unknown("MMLU subject", subject, SUBJECT_CATEGORIES)) from None


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise MMLUDataError(_unknown("MMLU split", split, SPLITS))


def find_mmlu_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The MMLU folder: ``explicit`` if given, else ``$HARNESS_MMLU_DIR``, else ../shared/data/mmlu.

    A folder qualifies when it has a ``test/`` subfolder (the original layout).
    """
    if explicit:
        candidate, how = Path(explicit), "the given folder"
    elif os.environ.get(MMLU_DIR_ENV):
        candidate, how = Path(os.environ[MMLU_DIR_ENV]), f"${MMLU_DIR_ENV}"
    else:
        candidate, how = _DEFAULT_MMLU_DIR, "the default folder"
    if (candidate / "test").is_dir():
        return candidate.resolve()
    raise MMLUDataError(
        f"no MMLU folder with a test/ subfolder at {candidate} ({how}); expected the original layout "
        f"<dir>/{{dev,val,test}}/<subject>_<split>.csv. Pass --mmlu-dir, set {MMLU_DIR_ENV} or "
        f"mmlu.data_dir in the experiment config, or use mmlu.source = 'hub' when online"
    )


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
            f"{split_dir / (strangers[0] + suffix)}: {_unknown('MMLU subject', strangers[0], SUBJECT_CATEGORIES)}"
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
                raise MMLUDataError(f"{where}: expected 6 fields (question,A,B,C,D,answer), found {len(row)}: {row!r:.200}")
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


def load_mmlu_split(mmlu_dir: str | os.PathLike, split: str, subjects: Iterable[str] | None = None) -> list[MMLUItem]:
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
            raise MMLUDataError(f"{where}: {_unknown('MMLU subject', str(subject), SUBJECT_CATEGORIES)}")
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
    pass a dict. In TOML the paper's sample is one line:
    ``selection = {mode = "stratified", per_category = {stem = 50, humanities = 50, social_sciences = 50}, seed = 0}``.
    """

    mode: str = "full"
    subjects: tuple[str, ...] = ()
    per_category: tuple[tuple[str, int], ...] | Mapping[str, int] = ()
    per_subject: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.mode not in SELECTION_MODES:
            raise ValueError(_unknown("MMLU selection mode", self.mode, SELECTION_MODES))
        object.__setattr__(self, "subjects", tuple(self.subjects))
        for s in self.subjects:
            if s not in SUBJECT_CATEGORIES:
                raise ValueError(f"selection.subjects: {_unknown('MMLU subject', s, SUBJECT_CATEGORIES)}")
        pairs = dict(self.per_category.items() if isinstance(self.per_category, Mapping) else self.per_category)
        for c, n in pairs.items():
            if c not in CATEGORIES:
                raise ValueError(f"selection.per_category: {_unknown('MMLU category', c, CATEGORIES)}")
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"selection.per_category.{c}: must be a non-negative integer, got {n!r}")
        object.__setattr__(self, "per_category", tuple(sorted(pairs.items())))
        if self.mode == "stratified" and not any(n for _, n in self.per_category):
            raise ValueError("selection.per_category: mode 'stratified' needs a count for at least one category")
        if self.mode == "per_subject" and self.per_subject <= 0:
            raise ValueError(f"selection.per_subject: mode 'per_subject' needs a positive count, got {self.per_subject}")
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


def named_selection(name: str, *, seed: int = 0, per_subject: int = 0, subjects: Iterable[str] = ()) -> MMLUSelection:
    """The selection a config's ``mmlu.selection = "paper" | "full" | "per_subject"`` means."""
    subjects = tuple(subjects)
    if name == "paper":
        return MMLUSelection(mode="stratified", per_category=dict(PAPER_SELECTION.per_category), seed=seed, subjects=subjects)
    if name == "full":
        return MMLUSelection(mode="full", seed=seed, subjects=subjects)
    if name == "per_subject":
        return MMLUSelection(mode="per_subject", per_subject=per_subject, seed=seed, subjects=subjects)
    raise ValueError(_unknown("MMLU selection", name, ("paper", "full", "per_subject")))


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
