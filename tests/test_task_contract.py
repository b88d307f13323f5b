"""The task contract (harness/tasks/base.py, harness/tasks/metric.py): what a task declares, and
what the harness reads from the declarations rather than from field names."""

import pytest
from deepeval import assert_test
from deepeval.test_case import LLMTestCase

from harness.engine.core import GenerationSettings, StopRule
from harness.numbers.summary import Measure, summarize
from harness.records.results import CaseResult, CaseSpec
from harness.tasks import TASKS, declared_measures, subgroup_fields
from harness.tasks.base import PhaseInfo, Report, TaskSettings, missing_members
from harness.tasks.metric import PassFailMetric
from harness.tasks.sql_task import SQL_END


def test_the_spider_stop_rule_keeps_its_old_fingerprint_and_another_rule_gets_its_own():
    # the value caches were keyed by before stop rules had names: it must not change
    assert GenerationSettings(max_new_tokens=16, stop=SQL_END).as_fingerprint() == {
        "max_new_tokens": 16,
        "stop_at_sql_end": True,
        "greedy": True,
    }
    assert GenerationSettings(max_new_tokens=16).as_fingerprint() == {
        "max_new_tokens": 16,
        "stop_at_sql_end": False,
        "greedy": True,
    }
    other = GenerationSettings(max_new_tokens=16, stop=StopRule("line_end", lambda t: "\n" in t))
    fp = other.as_fingerprint()
    assert fp["stop"] == "line_end" and fp.get("stop_at_sql_end") is not True
    third = GenerationSettings(max_new_tokens=16, stop=StopRule("dot", lambda t: "." in t))
    fingerprints = [GenerationSettings(max_new_tokens=16, stop=s).as_fingerprint() for s in (None, SQL_END)]
    assert len({repr(f) for f in [*fingerprints, fp, third.as_fingerprint()]}) == 4


class _Even(PassFailMetric):
    metric_name = "Even"

    def judge(self, test_case, gold):
        ok = int(test_case.actual_output) % 2 == 0
        return ok, f"{test_case.actual_output} is {'even' if ok else 'odd'}"


def test_one_base_gives_a_metric_its_deepeval_boilerplate_and_leaves_the_score_for_the_row():
    metric = _Even()
    assert metric.__name__ == "Even" and metric.threshold == 1.0
    right = LLMTestCase(input="n", actual_output="4", expected_output="even")
    wrong = LLMTestCase(input="n", actual_output="3", expected_output="even")
    assert CaseSpec(right, metric).score is None  # not scored yet
    assert_test(right, [metric], run_async=False)  # deepeval scores a copy of the metric
    with pytest.raises(AssertionError, match="3 is odd"):
        assert_test(wrong, [metric], run_async=False)
    assert (CaseSpec(right, metric).score, CaseSpec(wrong, metric).score) == (1.0, 0.0)
    with pytest.raises(ValueError, match="threshold"):
        _Even(threshold=2)
    empty = LLMTestCase(input="n", actual_output="4", expected_output=" ")
    with pytest.raises(Exception, match="expected_output"):
        metric.measure(empty)


def test_every_task_metric_is_on_the_one_base():
    for task in TASKS.values():
        assert isinstance(task.metric(task.settings_model()), PassFailMetric), task.name


def test_a_report_declaration_must_be_coherent():
    measure = Measure("t", "f", "paired", "d")
    Report("T", "g", measures={"m": measure}, frontier_measure="m")
    with pytest.raises(ValueError, match="frontier_measure"):
        Report("T", "g", measures={"m": measure}, frontier_measure="other")
    with pytest.raises(ValueError, match="subgroup"):
        Report("T", "g", subgroup_label="subject")


def test_the_measures_and_subgroups_come_from_the_tasks_declarations(monkeypatch):
    assert list(declared_measures()) == ["gold_prob", "gold_token_loglik", "answer_kl", "kl_to_base"]
    assert subgroup_fields() == {"mmlu": "subject"}
    # a subgroup field counts only for the task that declares it
    rows = [
        CaseResult("base", "mmlu", "1", "stem", "passed", extra={"subject": "anatomy"}),
        CaseResult("base", "spider", "1", "easy", "passed", extra={"subject": "anatomy"}),
    ]
    by = {s.benchmark: s for s in summarize(rows, subgroup_fields())}
    assert set(by["mmlu"].by_subject) == {"anatomy"} and by["spider"].by_subject == {}
    assert all(s.by_subject == {} for s in summarize(rows))
    # two tasks that declare one measure unlike each other are refused
    spider = TASKS["spider"]
    clash = Report("x", "g", measures={"gold_prob": Measure("other", "f", "paired", "d")})
    monkeypatch.setattr(type(spider), "report", clash)
    with pytest.raises(ValueError, match="gold_prob"):
        declared_measures()


def test_phase_info_records_what_is_set():
    assert PhaseInfo(template="t", template_version=2, seed=0, n_prompts=3, shots=0).record() == {
        "template": "t",
        "template_version": 2,
        "seed": 0,
        "n_prompts": 3,
        "shots": 0,
    }
    assert PhaseInfo(kind="kl_to_base", n_prompts=1, more={"x": 1}).record() == {
        "kind": "kl_to_base",
        "n_prompts": 1,
        "x": 1,
    }


def test_a_tasks_prompt_label_names_its_template_or_the_variants_scoring():
    spider, mmlu = TASKS["spider"], TASKS["mmlu"]
    assert spider.settings_model(template="schema").prompt_label() == "schema"
    settings = mmlu.settings_model(scoring="loglik")
    assert settings.prompt_label() == "loglik"
    assert settings.prompt_label(mmlu.variant_model(scoring="generate")) == "generate"
    assert TaskSettings().prompt_label() == ""


def test_a_measure_of_an_unknown_kind_and_a_task_that_lacks_a_member_are_refused():
    with pytest.raises(ValueError, match="how = 'pairwise', not one of paired, kl, mean"):
        Measure("x", "x", "pairwise", "x")  # type: ignore[arg-type]
    assert missing_members(TASKS["spider"]) == []

    class Partial:
        name = "partial"

        def load(self, settings, *, seed):
            return None

    missing = missing_members(Partial())
    assert "load" not in missing and "name" not in missing
    assert {"case", "metric", "report", "failure_kind"} <= set(missing)
