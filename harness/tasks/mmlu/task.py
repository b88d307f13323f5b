"""The MMLU task object: its settings, loading, and what it makes of one item's prediction."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deepeval.test_case import LLMTestCase
from pydantic import model_validator

from harness.configfile import Problems, unknown
from harness.engine.core import LoglikSettings
from harness.engine.token_counts import batch_token_counter
from harness.numbers.stats import choice_probability
from harness.numbers.summary import Measure
from harness.records.results import CaseSpec
from harness.tasks.base import (
    BatchSize,
    NonNegative,
    PhaseInfo,
    Positive,
    Predictions,
    Report,
    RunContext,
    Task,
    TaskData,
    TaskSettings,
    Variant,
    VariantOptions,
    shots_of,
    stratified_sample,
)
from harness.tasks.mmlu.items import (
    CATEGORIES,
    LETTERS,
    SUBJECT_CATEGORIES,
    MMLUItem,
    Selection,
    find_mmlu_dir,
    load_mmlu_hub,
    load_mmlu_split,
)
from harness.tasks.mmlu.metric import MultipleChoice
from harness.tasks.mmlu.prompts import (
    MMLU_CLOZE_TEMPLATE_VERSION,
    MMLU_TEMPLATE_VERSION,
    FittedPrompt,
    cloze_prompt_parts,
    fit_prompts,
    mmlu_prompt_parts,
    mmlu_shots,
)
from harness.tasks.mmlu.scoring import (
    MMLUPrediction,
    Request,
    Scoring,
    answer_room,
    choice_scores,
    generate_letters,
    gold_token_loglik,
    score_choices,
)
from harness.tasks.mmlu.selection import named_selection, select_mmlu


class MMLUSettings(TaskSettings):
    """The ``[mmlu]`` table of an experiment. ``batch_size = "auto"``: 8 on a CPU; on a CUDA
    device the largest batch that fits, from a cap of 64 prompts (a forward pass still holds at
    most ``max_batch_tokens``), found once per (model, device, task) and reused
    (:func:`harness.engine.batch_fitting.split_on_oom`)."""

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

    def prompt_label(self, options: VariantOptions | None = None) -> str:
        return scoring_of(self, options if isinstance(options, MMLUOptions) else None)


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


def scoring_of(settings: MMLUSettings, options: MMLUOptions | None) -> Scoring:
    return settings.scoring if options is None or options.scoring is None else options.scoring


def _fitted_prompts(run: RunContext, data: TaskData, variant, k: int, scoring: str) -> list[FittedPrompt]:
    """Every question's prompt with ``k`` shots of its subject, fitted into the model's context
    with room for the answer the scoring mode reads."""
    engine = run.engine
    count = batch_token_counter(engine.tokenizer(variant), engine.cache_root)
    shots = {subject: mmlu_shots(data.context.dev, subject, k) for subject in {i.subject for i in data.items}}
    return fit_prompts(
        [(item, shots[item.subject]) for item in data.items],
        count,
        engine.context_length(variant),
        reserve=answer_room(scoring, data.items, count),
        parts_of=cloze_prompt_parts if scoring == "cloze" else mmlu_prompt_parts,
    )


# What a case's extra fields carry besides the verdict (MMLUTask.case), compared across variants.
MEASURES = {
    "gold_prob": Measure(
        "probability of the right answer among the choices",
        "gold_prob",
        "paired",
        short="p(right)",
        definition="p(gold) = exp(s_gold) / sum_c exp(s_c), s_c the choice scores the prediction ranks "
        "(the letter's log-likelihood; in the cloze form, the choice text's log-likelihood per "
        "character, lm-eval's acc_norm); mean over items, change = variant minus baseline, paired",
    ),
    "gold_token_loglik": Measure(
        "per-token log-likelihood of the right answer's text",
        "gold_token_loglik",
        "paired",
        "log p(gold text | prompt) / (tokens in the gold text), in nats (cloze form only); not a "
        "probability among the choices: it ignores the other choices",
    ),
    "answer_kl": Measure(
        "KL(baseline || variant) of the answer distribution",
        "choice_scores",
        "kl",
        "sum_c p_base(c) log(p_base(c) / p_variant(c)) over the choices, p = the softmax of the "
        "choice scores above, in nats; 0 = the same beliefs",
    ),
}


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
        subgroup_field="subject",
        chance=0.25,
        role="generalization",
        answer_choices=tuple(LETTERS),
        measures=MEASURES,
        frontier_measure="gold_prob",
    )

    def load(self, settings: MMLUSettings, *, seed: int) -> TaskData[MMLUItem, MMLUContext]:
        return load_mmlu_data(settings, seed)

    def record_fields(self, item: MMLUItem) -> dict[str, str]:
        return {"group": item.category, "subject": item.subject}

    def predict(
        self,
        run: RunContext,
        data: TaskData[MMLUItem, MMLUContext],
        variant: Variant,
        settings: MMLUSettings,
        options: MMLUOptions | None,
    ) -> Predictions[MMLUPrediction]:
        """The answer of every selected question, by log-likelihood of the letters (default), of
        the choices' texts (cloze), or by the first character of a greedy generation (the paper's way)."""
        k = shots_of(settings, options)
        scoring = scoring_of(settings, options)
        cloze = scoring == "cloze"
        fitted = _fitted_prompts(run, data, variant, k, scoring)
        version = MMLU_CLOZE_TEMPLATE_VERSION if cloze else MMLU_TEMPLATE_VERSION
        fingerprint: dict = {"scoring": scoring, "template_version": version}
        batch_size = settings.batch_size
        if options is not None and options.batch_size is not None:
            # its own cache entry: scored again at this batch size, never read from another's
            batch_size = fingerprint["batch_size"] = options.batch_size
        request = Request(run.engine, variant, self.name, fingerprint, f"mmlu {variant.name} ({scoring})")
        if scoring == "generate":
            answers, phase = generate_letters(request, fitted, batch_size)
        else:
            # cloze: the choices' texts differ per question, so no prefix is shared between them
            loglik = LoglikSettings(
                batch_size=batch_size,
                max_batch_tokens=settings.max_batch_tokens,
                reuse_prefix="off" if cloze else settings.reuse_prefix,
            )
            answers, phase = score_choices(request, fitted, data.items, loglik, cloze)
        by_item = {
            item.item_id: MMLUPrediction(
                item_id=item.item_id,
                letter=a.letter,
                logprobs=a.logprobs,
                raw=a.raw,
                token_counts=a.token_counts,
                prompt=f.prompt,
                shots_used=f.shots_used,
                scoring=scoring,
            )
            for item, f, a in zip(data.items, fitted, answers)
        }
        info = PhaseInfo(
            template="lm-eval-mmlu-continuation" if cloze else "lm-eval-mmlu",
            template_version=version,
            seed=run.seed,
            n_prompts=len(fitted),
            shots=k,
            more={
                "scoring": scoring,
                "shots_reduced": sum(f.shots_dropped > 0 for f in fitted),
                "predicted_letters": dict(Counter(p.letter or "<empty>" for p in by_item.values())),
            },
        )
        return Predictions(by_item, info.into(phase))

    def metric(self, settings: MMLUSettings) -> MultipleChoice:
        return MultipleChoice()

    def case(
        self,
        item: MMLUItem,
        prediction: MMLUPrediction | None,
        variant: Variant,
        settings: MMLUSettings,
        data: TaskData[MMLUItem, MMLUContext],
        metric: MultipleChoice,
    ) -> CaseSpec:
        if prediction is None:  # predict answers every selected question; a hole is not guessed at
            return CaseSpec(None, metric, skip_reason=f"{item.item_id}: no prediction")
        extra = {"shots_used": prediction.shots_used, "scoring": prediction.scoring}
        logprobs = list(prediction.logprobs) if prediction.logprobs is not None else None
        scores = list(choice_scores(prediction, item)) if prediction.logprobs is not None else None
        if logprobs is not None and scores is not None:
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

    def write_outputs(
        self,
        run_dir: Path,
        variant: Variant,
        data: TaskData[MMLUItem, MMLUContext],
        predictions: Predictions[MMLUPrediction],
    ) -> None:
        return None


# Annotated so the type checker holds the task to the contract (harness/tasks/base.py).
TASK: Task[MMLUItem, MMLUContext, MMLUPrediction, MMLUSettings, MMLUOptions] = MMLUTask()
