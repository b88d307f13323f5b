"""The text-to-SQL pieces both SQL tasks (Spider, and a user's own set in
harness/tasks/text2sql.py) use: when generation stops, the prediction and how it is made, the
DeepEval case of one item, how a wrong answer is classified, and the predictions files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from deepeval.test_case import LLMTestCase

from harness.engine.core import GenerationSettings, LoglikSettings, StopRule
from harness.files import atomic_write
from harness.numbers.summary import Measure
from harness.records.results import CaseSpec
from harness.sql import (
    EMPTY_PREDICTION,
    GOLD_FAILED,
    PREDICTION_FAILED,
    extract_sql,
)
from harness.tasks.base import (
    PhaseInfo,
    Predictions,
    RunContext,
)
from harness.tasks.sql_metric import ExecutionAccuracy
from harness.tasks.sql_prompts import spider_answer

# -- when generation stops -----------------------------------------------------------------------

_FENCE = "```"
_REPEAT_MIN_CHARS = 12


def sql_is_complete(text: str) -> bool:
    """Whether generation can stop: the SQL statement has ended.

    Stops at a ``;`` outside string literals, at ``[/INST]`` (the paper's model started a new
    turn), at a closing code fence, or at the first line repeated (the paper's Figure 2: one
    query, then the same query again until the token cap).
    """
    if "[/INST]" in text:
        return True
    body = text.lstrip()
    if body.startswith(_FENCE):
        if body.count(_FENCE) >= 2:
            return True
        body = body[len(_FENCE) :]
    elif _FENCE in body and body.index(_FENCE) > 0:
        return True
    if _has_statement_end(body):
        return True
    lines = [ln.strip().lstrip("-").strip() for ln in text.splitlines()]
    if not text.endswith("\n"):
        lines = lines[:-1]  # the last line is still being written
    complete_lines = [ln for ln in lines if len(ln) >= _REPEAT_MIN_CHARS]
    return len(complete_lines) != len(set(complete_lines))


def _has_statement_end(text: str) -> bool:
    """A ``;`` outside quotes, after some SQL."""
    quote = None
    seen_content = False
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
        elif ch == ";":
            if seen_content:
                return True
        elif not ch.isspace():
            seen_content = True
    return False


# The fingerprint entry the engine wrote before stop rules had names: the caches made then stay valid.
SQL_END = StopRule("sql_end", sql_is_complete, fingerprint_entry=(("stop_at_sql_end", True),))


@dataclass(frozen=True)
class SQLPrediction:
    """A text-to-SQL item's prediction: the prompt, what the model generated, the query in it."""

    item_id: str
    prompt: str
    raw: str  # what the model generated, up to the stop point
    sql: str  # extract_sql(raw)
    kl_to_base: float | None = None  # mean KL(base || adapted) over the gold answer's tokens


# The Spider task's measure of how far an adapter moved the model (with_kl_to_base, sql_case).
KL_TO_BASE = Measure(
    "KL(base || adapted) on the task's gold answers",
    "kl_to_base",
    "mean",
    short="KL to base",
    definition="mean over the gold answer's tokens of KL(p_base(. | prefix) || p_adapted(. | prefix)) "
    "over the vocabulary, in nats (Shenfeld et al. 2025: it predicts forgetting)",
)


def predict_sql(
    run: RunContext,
    prompts: dict[str, str],
    variant,
    *,
    namespace: str,
    max_new_tokens: int,
    batch_size: int | str,
    info: PhaseInfo,
) -> Predictions[SQLPrediction]:
    """Generate SQL for ``prompts`` (item id -> prompt) and extract the query from each output."""
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size, stop=SQL_END)
    ids = list(prompts)
    raws, phase = run.engine.generate(
        variant, [prompts[i] for i in ids], settings, namespace=namespace, desc=f"{namespace} {variant.name}"
    )
    replace(info, n_prompts=len(ids), seed=run.seed).into(phase)
    by_item = {i: SQLPrediction(i, prompts[i], raw, extract_sql(raw)) for i, raw in zip(ids, raws)}
    return Predictions(by_item, phase)


def with_kl_to_base(
    run: RunContext,
    items: Sequence,
    prompts: dict[str, str],
    predictions: Predictions,
    variant,
    settings,
    namespace: str,
) -> Predictions:
    """``predictions`` with each item's KL(base || adapted) on its gold answer after its prompt."""
    ids = list(prompts)  # built from ``items``: every prompt has its item
    if settings.kl_limit:
        ids = ids[: settings.kl_limit]
    answer_of = {item.item_id: spider_answer(item) for item in items if item.item_id in prompts}
    loglik = LoglikSettings(batch_size=settings.batch_size, max_batch_tokens=settings.kl_max_batch_tokens)
    divergences, phase = run.engine.kl_to_base(
        variant,
        [(prompts[i], answer_of[i]) for i in ids],
        loglik,
        namespace=namespace,
        desc=f"{namespace} {variant.name} KL to base",
    )
    PhaseInfo(kind="kl_to_base", n_prompts=len(ids), seed=run.seed).into(phase)
    kl = {i: d.mean_kl for i, d in zip(ids, divergences)}
    by_item = {i: replace(p, kl_to_base=kl.get(i)) for i, p in predictions.by_item.items()}
    return Predictions(by_item, predictions.phase, {**predictions.more_phases, "kl": phase})


_FAILURE_KINDS = (  # (the start of an execution_match reason, its kind), first match wins
    (EMPTY_PREDICTION, "no SQL"),
    (PREDICTION_FAILED["error"], "SQL error"),
    (PREDICTION_FAILED["timeout"], "timeout"),
    (PREDICTION_FAILED["forbidden"], "refused (not one read-only SELECT)"),
    (PREDICTION_FAILED["too_many_rows"], "too many rows"),
    (GOLD_FAILED, "gold query failed"),
    ("same rows in another order", "wrong order"),
    ("database", "no database"),  # ExecutionAccuracy.measure: the item's database is absent
)


def sql_failure_kind(reason: str) -> str:
    """The kind of a wrong text-to-SQL answer, from its execution-match reason."""
    for start, kind in _FAILURE_KINDS:
        if reason.startswith(start):
            return kind
    if " column" in reason.split(";")[0]:
        return "wrong columns"
    if reason.startswith("gold has") and "rows" in reason:
        return "wrong number of rows"
    if reason.startswith("both have"):
        return "wrong values"
    return "other"


def sql_case(
    item_question: str,
    gold_sql: str,
    db_path: Path,
    prediction: SQLPrediction | None,
    variant,
    case_name: str,
    metric: ExecutionAccuracy,
    metadata: dict,
) -> CaseSpec:
    """The DeepEval case of one text-to-SQL item (Spider, or a user's own set)."""
    if not db_path.is_file() or prediction is None:
        return CaseSpec(None, metric, skip_reason=f"database {db_path.parent.name!r} absent ({db_path})")
    test_case = LLMTestCase(
        name=case_name,
        input=item_question,
        actual_output=prediction.sql,
        expected_output=gold_sql,
        metadata={"db_path": str(db_path), "variant": variant.name, "raw_output": prediction.raw, **metadata},
    )
    extra = {} if prediction.kl_to_base is None else {"kl_to_base": prediction.kl_to_base}
    return CaseSpec(
        test_case,
        metric,
        prediction=prediction.sql,
        extra=extra,
        sample={"prompt": prediction.prompt, "raw_output": prediction.raw},
    )


# Beside a run's ``predictions/<variant>.<task>.sql``: which items its lines answer, and their gold.
IDS_SUFFIX = ".ids.json"
GOLD_SUFFIX = ".gold.sql"


def subset_files(predictions: Path) -> tuple[Path, Path]:
    """(ids sidecar, gold file) of a predictions file: ``ft.spider.sql`` has ``ft.spider.ids.json``
    and ``ft.spider.gold.sql`` beside it."""
    predictions = Path(predictions)
    stem = predictions.name.removesuffix(".sql")
    return predictions.with_name(stem + IDS_SUFFIX), predictions.with_name(stem + GOLD_SUFFIX)


def one_line(sql: str) -> str:
    """A query on one line, as the official files hold them: only the characters that would
    break the line or the field (newline, carriage return, tab) become spaces, so the text the
    benchmark scored is otherwise kept, inside string literals too."""
    return (sql or "").replace("\r\n", " ").translate(_LINE_BREAKS).strip()


_LINE_BREAKS = str.maketrans({"\n": " ", "\r": " ", "\t": " "})


def write_sql_predictions(path_stem: Path, variant, items: Sequence, predictions: Predictions, row) -> None:
    """The predictions as JSONL (``row(item, prediction)`` per item) and as an official-evaluator
    ``.sql`` file: one query per line, aligned with the items, blank for unscored items; beside
    it, the gold file in the official format (``query<TAB>db_id``) and a sidecar naming the items
    (``{"split": ..., "ids": [index, ...]}``, for items that have a split index), so that
    ``harness score-spider <variant>.spider.sql`` scores exactly these items."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    rows, sql_lines, gold_lines = [], [], []
    for item in items:
        pred = predictions.by_item.get(item.item_id)
        rows.append(
            {
                "item_id": item.item_id,
                "variant": variant.name,
                **row(item, pred),
                "response_query": pred.sql if pred else None,
                "raw_output": pred.raw if pred else None,
            }
        )
        sql_lines.append(one_line(pred.sql if pred else ""))
        gold_lines.append(f"{one_line(item.gold_sql)}\t{one_line(item.db_id)}")
    sql_path = path_stem.with_name(path_stem.name + ".sql")
    ids_path, gold_path = subset_files(sql_path)
    atomic_write(
        path_stem.with_name(path_stem.name + ".jsonl"),
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
    )
    atomic_write(gold_path, "".join(line + "\n" for line in gold_lines))
    indexed = all(isinstance(getattr(item, "index", None), int) and hasattr(item, "split") for item in items)
    if items and indexed:
        sidecar = {"split": items[0].split, "ids": [item.index for item in items]}
        atomic_write(ids_path, json.dumps(sidecar) + "\n")
    atomic_write(sql_path, "".join(line + "\n" for line in sql_lines))
