"""``harness score-spider``: score a file of Spider predictions (harness/tasks/score_spider.py)."""

from __future__ import annotations

import argparse

NAME = "score-spider"


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.tasks.score_spider import run as score  # the task registry: deepeval, torch

    return score(args)


def add_parser(sub) -> None:
    score = sub.add_parser(
        NAME,
        help="score an official-format predictions file on Spider dev",
        description="Score a file of Spider dev predictions (one SQL query per line, in "
        "dev.json order), item by item, with the harness's execution match.",
    )
    score.add_argument(
        "predictions",
        help="one SQL query per line, aligned with dev.json, or a run's predictions/<variant>.spider.sql "
        "(its items are read from the <variant>.spider.ids.json beside it)",
    )
    score.add_argument(
        "--spider-dir",
        default=None,
        help="Spider folder (default: $HARNESS_SPIDER_DIR, $HARNESS_DATA_DIR/spider, ./data/spider, "
        "../shared/data/spider: the first that holds Spider)",
    )
    score.add_argument(
        "--ids",
        default=None,
        help="which items the lines answer: a run's .ids.json, or one dev index per line "
        "(default: the .ids.json beside the predictions, else all of dev)",
    )
    score.add_argument(
        "--out",
        default=None,
        help="TSV file to write: index, db_id, hardness, correct, reason "
        "(default: <predictions name>.scores.tsv beside the predictions)",
    )
    score.add_argument("--timeout", type=float, default=5.0, help="seconds per query (default 5)")
    score.add_argument(
        "--official",
        action="store_true",
        help="reproduce the official test-suite evaluator's comparison exactly (its rewrites of "
        "'value', YEAR(CURDATE()), '> =', DISTINCT and the first statement; DISTINCT stripped unless "
        "--distinct keep, its --keep_distinct), for published numbers",
    )
    score.add_argument(
        "--distinct",
        choices=("keep", "strip"),
        default=None,
        help="keep DISTINCT in both queries (the default, as the benchmarks do: a query that forgets "
        "DISTINCT answers another question), or strip it from both, as the official evaluator does",
    )
    score.add_argument(
        "--show-rows",
        action="store_true",
        help="quote the differing rows in the reasons (default: counts only, since the TSV may be "
        "shared and the rows are the database's data)",
    )
    score.set_defaults(func=run)
