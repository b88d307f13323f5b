"""Which MMLU questions a run asks: the paper's seeded 50 STEM + 50 humanities + 50 social
sciences, every question, or so many per subject.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness.configfile import unknown
from harness.tasks.mmlu.items import (
    CATEGORIES,
    SELECTIONS,
    SUBJECT_CATEGORIES,
    MMLUDataError,
    MMLUItem,
)

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
        if self.mode == "stratified" and not any(n for _, n in self.category_counts):
            raise ValueError(
                "selection.per_category: mode 'stratified' needs a count for at least one category"
            )
        if self.mode == "per_subject" and self.per_subject <= 0:
            raise ValueError(
                f"selection.per_subject: mode 'per_subject' needs a positive count, got {self.per_subject}"
            )
        if not isinstance(self.seed, int):
            raise ValueError(f"selection.seed: must be an integer, got {self.seed!r}")

    @property
    def category_counts(self) -> tuple[tuple[str, int], ...]:
        """``per_category`` as sorted (category, count) pairs, as ``__post_init__`` stores it."""
        pc = self.per_category
        return tuple(sorted(pc.items())) if isinstance(pc, Mapping) else tuple(pc)

    def describe(self) -> str:
        """A stable one-line description, for cache fingerprints and reports."""
        parts = [f"mode={self.mode}", f"seed={self.seed}"]
        if self.subjects:
            parts.append("subjects=" + ",".join(self.subjects))
        if self.mode == "stratified":
            parts.append("per_category=" + ",".join(f"{c}:{n}" for c, n in self.category_counts))
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
        for category, n in selection.category_counts:
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
