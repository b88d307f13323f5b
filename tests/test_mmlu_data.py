"""MMLU loading (CSV layout and hub rows), the subject table, and seeded selections."""

from __future__ import annotations

import csv
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.tasks.mmlu.items import (
    CATEGORIES,
    MMLU_DIR_ENV,
    SUBJECT_CATEGORIES,
    MMLUDataError,
    MMLUItem,
    find_mmlu_dir,
    items_from_hub_rows,
    load_mmlu_split,
)
from harness.tasks.mmlu.selection import PAPER_SELECTION, MMLUSelection, named_selection, select_mmlu

REAL_MMLU = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mmlu"


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def write_split(root: Path, split: str, rows_per_subject: int = 2) -> Path:
    """Every one of the 57 subjects, ``rows_per_subject`` simple rows each."""
    for subject in SUBJECT_CATEGORIES:
        rows = [[f"{subject} q{i}?", "w", "x", "y", "z", "ABCD"[i % 4]] for i in range(rows_per_subject)]
        write_csv(root / split / f"{subject}_{split}.csv", rows)
    return root


def fake_items(per_subject: int = 10) -> list[MMLUItem]:
    return [
        MMLUItem(subject, category, "test", i, f"{subject} {i}?", ("a", "b", "c", "d"), "ABCD"[i % 4])
        for subject, category in SUBJECT_CATEGORIES.items()
        for i in range(per_subject)
    ]


# --- the subject table -------------------------------------------------------------------------


def test_57_subjects_in_four_categories_as_lm_eval_counts_them():
    assert len(SUBJECT_CATEGORIES) == 57
    assert set(SUBJECT_CATEGORIES.values()) == set(CATEGORIES)
    assert Counter(SUBJECT_CATEGORIES.values()) == {
        "stem": 19,
        "humanities": 13,
        "social_sciences": 12,
        "other": 13,
    }


def test_subject_table_matches_installed_lm_eval_task_files():
    """Cross-check against lm-eval's generated per-subject YAMLs, when lm-eval is installed."""
    lm_eval = pytest.importorskip("lm_eval")
    folder = Path(lm_eval.__file__).parent / "tasks" / "mmlu" / "default"
    found = {}
    for path in folder.glob("mmlu_*.yaml"):
        text = path.read_text()
        subject = text.split('"dataset_name": "')[1].split('"')[0]
        tag = text.split('"tag": "mmlu_')[1].split('_tasks"')[0]
        found[subject] = tag
    if not found:
        pytest.skip("lm-eval has no per-subject MMLU task files here")
    assert found == SUBJECT_CATEGORIES


# --- the CSV loader ----------------------------------------------------------------------------


def test_loads_rows_verbatim_with_index_and_category(tmp_path):
    write_csv(
        tmp_path / "test" / "anatomy_test.csv",
        [
            ["  Which bone?\n(two lines)", "a, with comma", ' "quoted" ', "", "None", "B"],
            ["Second?", "1", "2", "3", "4", "D"],
        ],
    )
    items = load_mmlu_split(tmp_path, "test", subjects=["anatomy"])
    assert [it.item_id for it in items] == ["anatomy-0000", "anatomy-0001"]
    first = items[0]
    # The loader keeps text as it is; the template decides what to strip.
    assert first.question == "  Which bone?\n(two lines)"
    assert first.choices == ("a, with comma", ' "quoted" ', "", "None")
    assert (first.subject, first.category, first.split, first.index, first.answer) == (
        "anatomy",
        "stem",
        "test",
        0,
        "B",
    )


def test_full_split_needs_all_57_subjects_and_keeps_table_order(tmp_path):
    write_split(tmp_path, "dev", rows_per_subject=1)
    items = load_mmlu_split(tmp_path, "dev")
    assert [it.subject for it in items] == list(SUBJECT_CATEGORIES)
    (tmp_path / "dev" / "virology_dev.csv").unlink()
    with pytest.raises(MMLUDataError, match="virology"):
        load_mmlu_split(tmp_path, "dev")


def test_wrong_field_count_names_file_and_line(tmp_path):
    path = write_csv(
        tmp_path / "test" / "anatomy_test.csv",
        [
            ["q1", "a", "b", "c", "d", "A"],
            ["q2\nspans\nlines", "a", "b", "c", "d", "B"],
            ["q3", "a", "b", "c", "A"],
        ],
    )
    with pytest.raises(MMLUDataError) as err:
        load_mmlu_split(tmp_path, "test", subjects=["anatomy"])
    # q3 starts on line 5: q2's quoted question takes lines 2-4.
    assert f"{path}:5" in str(err.value)
    assert "expected 6 fields" in str(err.value) and "found 5" in str(err.value)


def test_bad_answer_names_file_line_and_value(tmp_path):
    path = write_csv(
        tmp_path / "val" / "virology_val.csv",
        [["q", "a", "b", "c", "d", "A"], ["q", "a", "b", "c", "d", "E"]],
    )
    with pytest.raises(MMLUDataError) as err:
        load_mmlu_split(tmp_path, "val", subjects=["virology"])
    assert f"{path}:2" in str(err.value) and "'E'" in str(err.value)


def test_unknown_subject_file_is_an_error(tmp_path):
    write_split(tmp_path, "dev", rows_per_subject=1)
    write_csv(tmp_path / "dev" / "astrology_dev.csv", [["q", "a", "b", "c", "d", "A"]])
    with pytest.raises(MMLUDataError, match=r"astrology_dev\.csv.*unknown MMLU subject 'astrology'"):
        load_mmlu_split(tmp_path, "dev")


@pytest.mark.parametrize(
    "split, subjects, message",
    [
        ("train", None, "unknown MMLU split 'train'"),
        ("test", ["anatomyy"], "did you mean 'anatomy'"),
        ("test", ["anatomy"], r"anatomy_test\.csv: file not found"),
    ],
)
def test_loader_errors_say_what_is_wrong(tmp_path, split, subjects, message):
    (tmp_path / "test").mkdir()
    with pytest.raises(MMLUDataError, match=message):
        load_mmlu_split(tmp_path, split, subjects=subjects)


def test_find_mmlu_dir_explicit_then_env(tmp_path, monkeypatch):
    (tmp_path / "a" / "test").mkdir(parents=True)
    (tmp_path / "b" / "test").mkdir(parents=True)
    assert find_mmlu_dir(tmp_path / "a") == (tmp_path / "a").resolve()
    monkeypatch.setenv(MMLU_DIR_ENV, str(tmp_path / "b"))
    assert find_mmlu_dir() == (tmp_path / "b").resolve()
    monkeypatch.setenv(MMLU_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(MMLUDataError, match=rf"--data-dir mmlu=PATH.*{MMLU_DIR_ENV}"):
        find_mmlu_dir()


# --- hub rows ----------------------------------------------------------------------------------


def test_hub_rows_convert_to_the_same_items_as_the_csv(tmp_path):
    """cais/mmlu holds the CSV rows with answers as integers; an in-memory datasets.Dataset of the
    same schema stands in for the hub, so no network is needed."""
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    rows = {
        "anatomy": [["Q1", "a", "b", "c", "d", "C"], ["Q2", "e", "f", "g", "h", "A"]],
        "virology": [["Q3", "i", "j", "k", "l", "D"]],
    }
    for subject, subject_rows in rows.items():
        write_csv(tmp_path / "test" / f"{subject}_test.csv", subject_rows)
    from_csv = load_mmlu_split(tmp_path, "test", subjects=list(rows))

    features = Features(
        {
            "question": Value("string"),
            "subject": Value("string"),
            "choices": Sequence(Value("string")),
            "answer": ClassLabel(names=["A", "B", "C", "D"]),
        }
    )
    hub = Dataset.from_dict(
        {
            "question": [r[0] for rs in rows.values() for r in rs],
            "subject": [s for s, rs in rows.items() for _ in rs],
            "choices": [r[1:5] for rs in rows.values() for r in rs],
            "answer": ["ABCD".index(r[5]) for rs in rows.values() for r in rs],
        },
        features=features,
    )
    assert items_from_hub_rows(hub, "test", "local copy") == from_csv


@pytest.mark.parametrize(
    "row, message",
    [
        (
            {"question": "q", "subject": "astrology", "choices": ["a"] * 4, "answer": 0},
            "unknown MMLU subject",
        ),
        ({"question": "q", "subject": "anatomy", "choices": ["a"] * 3, "answer": 0}, "expected 4 choices"),
        ({"question": "q", "subject": "anatomy", "choices": ["a"] * 4, "answer": 4}, "integer 0-3, found 4"),
        (
            {"question": "q", "subject": "anatomy", "choices": ["a"] * 4, "answer": "A"},
            "integer 0-3, found 'A'",
        ),
    ],
)
def test_bad_hub_rows_name_the_row(row, message):
    with pytest.raises(MMLUDataError, match=rf"src row 0: .*{message}"):
        items_from_hub_rows([row], "test", "src")


# --- selections --------------------------------------------------------------------------------


def test_stratified_selection_counts_order_and_determinism():
    items = fake_items()
    sel = MMLUSelection(
        mode="stratified", per_category={"stem": 7, "humanities": 5, "social_sciences": 3}, seed=1
    )
    chosen = select_mmlu(items, sel)
    assert Counter(it.category for it in chosen) == {"stem": 7, "humanities": 5, "social_sciences": 3}
    assert chosen == sorted(chosen, key=lambda it: (it.subject, it.index))
    # The same whatever order the items came in, and whenever it runs.
    shuffled = items[:]
    random.Random(5).shuffle(shuffled)
    assert select_mmlu(shuffled, sel) == chosen
    assert (
        select_mmlu(
            items,
            MMLUSelection(
                mode="stratified", per_category={"stem": 7, "humanities": 5, "social_sciences": 3}, seed=1
            ),
        )
        == chosen
    )
    assert (
        select_mmlu(
            items,
            MMLUSelection(
                mode="stratified", per_category={"stem": 7, "humanities": 5, "social_sciences": 3}, seed=2
            ),
        )
        != chosen
    )


def test_one_stratum_does_not_move_when_another_grows():
    items = fake_items()
    small = select_mmlu(items, MMLUSelection(mode="stratified", per_category={"stem": 10, "humanities": 5}))
    big = select_mmlu(items, MMLUSelection(mode="stratified", per_category={"stem": 10, "humanities": 40}))
    assert [it for it in small if it.category == "stem"] == [it for it in big if it.category == "stem"]


def test_per_subject_full_and_subject_filter():
    items = fake_items()
    per = select_mmlu(items, MMLUSelection(mode="per_subject", per_subject=3, seed=0))
    assert Counter(it.subject for it in per) == {s: 3 for s in SUBJECT_CATEGORIES}
    only = select_mmlu(items, MMLUSelection(mode="full", subjects=("virology", "anatomy")))
    assert [it.item_id for it in only] == [f"anatomy-{i:04d}" for i in range(10)] + [
        f"virology-{i:04d}" for i in range(10)
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "random"}, "unknown MMLU selection mode 'random'"),
        ({"mode": "stratified", "per_category": {"steM": 5}}, "did you mean 'stem'"),
        ({"mode": "stratified", "per_category": {"stem": -1}}, "per_category.stem"),
        ({"mode": "stratified"}, "needs a count"),
        ({"mode": "per_subject"}, "needs a positive count"),
        ({"subjects": ("astronomyy",)}, "did you mean 'astronomy'"),
    ],
)
def test_bad_selections_fail_when_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MMLUSelection(**kwargs)


def test_asking_for_more_than_a_stratum_has_is_an_error():
    with pytest.raises(MMLUDataError, match="20 items of abstract_algebra, which has only 10"):
        select_mmlu(fake_items(), MMLUSelection(mode="per_subject", per_subject=20))


def test_paper_selection_and_named_selections():
    assert (
        PAPER_SELECTION.describe()
        == "mode=stratified seed=0 per_category=humanities:50,social_sciences:50,stem:50"
    )
    assert named_selection("paper") == PAPER_SELECTION
    assert named_selection("per_subject", per_subject=2, seed=3) == MMLUSelection(
        mode="per_subject", per_subject=2, seed=3
    )
    with pytest.raises(ValueError, match="did you mean 'paper'"):
        named_selection("papr")


@settings(max_examples=40, deadline=None)
@given(
    counts=st.fixed_dictionaries({c: st.integers(0, 30) for c in CATEGORIES}).filter(
        lambda d: any(d.values())
    ),
    seed=st.integers(0, 10_000),
)
def test_stratified_is_a_sorted_subset_with_exact_counts(counts, seed):
    items = fake_items(per_subject=3)
    chosen = select_mmlu(items, MMLUSelection(mode="stratified", per_category=counts, seed=seed))
    assert len(set(chosen)) == len(chosen) == sum(counts.values())
    assert set(chosen) <= set(items)
    assert Counter(it.category for it in chosen) == {c: n for c, n in counts.items() if n}
    assert chosen == sorted(chosen, key=lambda it: (it.subject, it.index))


# --- the real data, when present -----------------------------------------------------------------

needs_real_mmlu = pytest.mark.skipif(
    not (REAL_MMLU / "test").is_dir(), reason="no MMLU data at ../shared/data/mmlu"
)


@needs_real_mmlu
def test_real_splits_have_the_documented_counts():
    assert [len(load_mmlu_split(REAL_MMLU, s)) for s in ("dev", "val", "test")] == [285, 1531, 14042]


@needs_real_mmlu
def test_paper_selection_on_real_data_is_50_50_50_and_stable():
    test = load_mmlu_split(REAL_MMLU, "test")
    chosen = select_mmlu(test, PAPER_SELECTION)
    assert Counter(it.category for it in chosen) == {"stem": 50, "humanities": 50, "social_sciences": 50}
    assert len({it.item_id for it in chosen}) == 150
    assert select_mmlu(list(reversed(test)), PAPER_SELECTION) == chosen
