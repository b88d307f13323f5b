"""The report's numbers (Wilson, McNemar, the paired-difference interval) and its files."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.numbers import stats
from harness.numbers import summary as summary_mod
from harness.records.manifest import collect_manifest
from harness.records.results import CaseResult
from harness.report.analysis import analyze
from harness.report.cells import variant_labels
from harness.report.document import write_report
from harness.report.markdown import render_markdown
from harness.report.results_json import SCHEMA, results_payload
from harness.report.sections import MIN_SUBJECT_N
from harness.report.terminal import format_table
from harness.tasks import declared_measures, subgroup_fields


def row(variant, benchmark, item_id, outcome, group="easy", reason="", **extra):
    return CaseResult(variant, benchmark, str(item_id), group, outcome, reason, None, None, extra)


# -- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "correct, n, low, high",
    [
        (8, 10, 0.4902, 0.9433),  # textbook Wilson 95% values
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (50, 100, 0.4038, 0.5962),
    ],
)
def test_wilson_known_values(correct, n, low, high):
    a = stats.wilson(correct, n)
    assert (a.n, a.correct, a.accuracy) == (n, correct, correct / n)
    assert a.ci_low == pytest.approx(low, abs=5e-5)
    assert a.ci_high == pytest.approx(high, abs=5e-5)


def test_wilson_of_no_items_is_undefined():
    a = stats.wilson(0, 0)
    assert a.n == 0 and math.isnan(a.accuracy) and math.isnan(a.ci_low)


def test_mcnemar_on_a_known_table():
    # 10 both right, 5 right only with the reference, 0 only with the variant, 10 both wrong:
    # the exact test is the binomial test of 0 successes in 5, two-sided: 2 * 0.5**5.
    ids = iter(range(100))
    ref, var = {}, {}
    for r, v, count in [(True, True, 10), (True, False, 5), (False, True, 0), (False, False, 10)]:
        for _ in range(count):
            i = str(next(ids))
            ref[i], var[i] = r, v
    p = stats.paired(var, ref)
    assert (p.n, p.both_correct, p.only_reference, p.only_variant, p.both_wrong) == (25, 10, 5, 0, 10)
    assert p.mcnemar_p == pytest.approx(0.0625)
    assert p.delta == pytest.approx(-5 / 25)
    assert p.accuracy == pytest.approx(10 / 25) and p.reference_accuracy == pytest.approx(15 / 25)


def test_paired_uses_only_shared_items():
    p = stats.paired({"a": True, "b": False, "x": True}, {"a": True, "b": True, "y": False})
    assert p.n == 2 and p.only_reference == 1 and p.mcnemar_p == pytest.approx(1.0)
    empty = stats.paired({"a": True}, {"b": True})
    assert empty.n == 0 and math.isnan(empty.mcnemar_p) and math.isnan(empty.delta)


def test_paired_interval_without_correlation_is_newcombes_independent_interval():
    """With phi = 0 (ad = bc) Newcombe's paired interval is his square-and-add interval for
    independent proportions, which statsmodels implements."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    both, only_ref, only_var, neither = 4, 2, 2, 1  # ad = 4 = bc
    low, high = stats.paired_difference_ci(both, only_ref, only_var, neither)
    ref_low, ref_high = confint_proportions_2indep(6, 9, 6, 9, method="newcomb")
    assert (low, high) == pytest.approx((ref_low, ref_high))


def test_paired_interval_is_narrower_for_correlated_systems():
    """Two systems that agree on most items differ less uncertainly than independent ones."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    low, high = stats.paired_difference_ci(40, 5, 10, 45)  # variant 50/100, reference 45/100
    ind_low, ind_high = confint_proportions_2indep(50, 100, 45, 100, method="newcomb")
    assert low < 0.05 < high
    assert high - low < ind_high - ind_low


def test_paired_interval_covers_the_true_difference():
    """Coverage of the 95% interval on simulated paired data is close to 95%."""
    rng = random.Random(0)
    # cell probabilities: both right, only reference, only variant, neither
    cells, n, trials = (0.30, 0.08, 0.14, 0.48), 120, 600
    true_delta = cells[2] - cells[1]
    covered = 0
    for _ in range(trials):
        counts = [0, 0, 0, 0]
        for _ in range(n):
            u, k = rng.random(), 0
            while u > cells[k] and k < 3:
                u -= cells[k]
                k += 1
            counts[k] += 1
        low, high = stats.paired_difference_ci(*counts)
        covered += low <= true_delta <= high
    assert 0.92 <= covered / trials <= 0.985


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_paired_interval_contains_the_estimate(verdicts):
    var = {str(i): v for i, (_, v) in enumerate(verdicts)}
    ref = {str(i): r for i, (r, _) in enumerate(verdicts)}
    p = stats.paired(var, ref)
    assert -1.0 <= p.delta_ci_low <= p.delta <= p.delta_ci_high <= 1.0
    assert p.delta == pytest.approx(p.accuracy - p.reference_accuracy)
    assert 0.0 <= p.mcnemar_p <= 1.0


# -- summaries --------------------------------------------------------------------------------


def _rows():
    rows = []
    # base: spider 3 of 6 right (1 error), 2 skipped; mmlu 2 of 4 right
    for i, (outcome, group) in enumerate(
        [
            ("passed", "easy"),
            ("passed", "easy"),
            ("wrong", "medium"),
            ("passed", "hard"),
            ("wrong", "hard"),
            ("error", "extra"),
        ]
    ):
        rows.append(row("base", "spider", i, outcome, group, reason="boom" if outcome == "error" else ""))
    rows += [
        row("base", "spider", 10, "skipped", reason="database 'wta_1' absent"),
        row("base", "spider", 11, "skipped", reason="database 'wta_1' absent"),
    ]
    # ft: spider 5 of 6 right on the same items
    for i, outcome in enumerate(["passed", "passed", "passed", "passed", "wrong", "passed"]):
        rows.append(row("ft", "spider", i, outcome))
    for i, (outcome, cat, subject) in enumerate(
        [
            ("passed", "stem", "anatomy"),
            ("wrong", "stem", "anatomy"),
            ("passed", "humanities", "philosophy"),
            ("wrong", "other", "virology"),
        ]
    ):
        rows.append(row("base", "mmlu", i, outcome, cat, subject=subject))
        rows.append(row("ft", "mmlu", i, "wrong" if i == 0 else outcome, cat, subject=subject))
    return rows


def test_summarize_counts_accuracy_groups_skips_and_errors():
    summary = {(s.variant, s.benchmark): s for s in summary_mod.summarize(_rows(), subgroup_fields())}
    s = summary["base", "spider"]
    assert (s.overall.n, s.overall.correct) == (6, 3)  # the error counts as wrong, skips not in n
    assert s.skipped == 2 and s.skip_reasons == {"database 'wta_1' absent": 2}
    assert s.errors == 1 and s.error_reasons == {"boom": 1}
    assert {g: (a.correct, a.n) for g, a in s.by_group.items()} == {
        "easy": (2, 2),
        "medium": (0, 1),
        "hard": (1, 2),
        "extra": (0, 1),
    }
    assert s.by_subject == {}
    m = summary["base", "mmlu"]
    assert {g: (a.correct, a.n) for g, a in m.by_group.items()} == {
        "humanities": (1, 1),
        "other": (0, 1),
        "stem": (1, 2),
    }
    assert {g: (a.correct, a.n) for g, a in m.by_subject.items()} == {
        "anatomy": (1, 2),
        "philosophy": (1, 1),
        "virology": (0, 1),
    }
    assert [(s.benchmark, s.variant) for s in summary_mod.summarize(_rows())] == [
        ("mmlu", "base"),
        ("mmlu", "ft"),
        ("spider", "base"),
        ("spider", "ft"),
    ]


def test_compare_to_baseline_pairs_shared_items():
    comps = {(c.variant, c.benchmark): c for c in summary_mod.compare_to_baseline(_rows(), "base")}
    assert set(comps) == {("ft", "spider"), ("ft", "mmlu")}
    sp = comps["ft", "spider"].paired
    # base right on 0,1,3; ft right on 0,1,2,3,5: gains 2 (items 2 and 5), loses 0
    assert (sp.n, sp.only_variant, sp.only_reference) == (6, 2, 0)
    assert sp.delta == pytest.approx(2 / 6)
    mm = comps["ft", "mmlu"].paired
    assert (mm.only_variant, mm.only_reference, mm.delta) == (0, 1, pytest.approx(-0.25))


# -- files ------------------------------------------------------------------------------------


def _payload(tmp_path, rows):
    analysis = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts={})
    manifest = collect_manifest(
        tmp_path,
        run_id="r1",
        experiment={"name": "t", "source": "missing.toml"},
        gates_file="",
        command=["pytest"],
        started=0.0,
        finished=12.5,
    )
    payload = results_payload(analysis, rows, manifest=manifest)
    return payload, analysis


def test_results_json_schema(tmp_path):
    (tmp_path / "phases").mkdir()
    phase = {
        "variant": "base",
        "task": "spider",
        "fingerprint": {"model": "m", "adapter": "", "load": "fp32"},
        "cache_key": "k",
        "template": "schema",
        "template_version": 2,
        "seed": 0,
        "n_prompts": 6,
        "cached": 2,
        "computed": 4,
        "seconds": 1.5,
        "device": "cpu",
    }
    (tmp_path / "phases" / "spider-base.json").write_text(json.dumps(phase))
    (tmp_path / "phases" / "mmlu-base.json").write_text("{not json")
    rows = _rows()
    payload, analysis = _payload(tmp_path, rows)
    paths = write_report(tmp_path, payload, analysis)
    data = json.loads((tmp_path / "results.json").read_text())  # strict JSON: no NaN
    assert set(data) == {
        "schema",
        "confidence",
        "baseline",
        "summary",
        "comparisons",
        "continuous",
        "adapters",
        "frontier",
        "gates",
        "manifest",
        "cases",
        "conclusion",
        "multiple_comparisons",
        "noise_floor",
    }
    assert data["conclusion"].startswith("No fine-tuned variant was measured")
    assert data["multiple_comparisons"]["family_size"] == len(data["comparisons"])
    assert data["schema"] == SCHEMA and data["baseline"] == "base"
    s = next(s for s in data["summary"] if (s["variant"], s["task"]) == ("base", "spider"))
    assert set(s) >= {
        "n",
        "correct",
        "accuracy",
        "ci_low",
        "ci_high",
        "skipped",
        "skip_reasons",
        "errors",
        "error_reasons",
        "by_group",
        "by_subject",
    }
    assert (s["n"], s["correct"], s["skipped"], s["errors"]) == (6, 3, 2, 1)
    assert s["by_group"]["easy"] == {
        "n": 2,
        "correct": 2,
        "accuracy": 1.0,
        "ci_low": pytest.approx(0.3424, abs=1e-4),
        "ci_high": 1.0,
    }
    c = next(c for c in data["comparisons"] if c["task"] == "spider")
    assert set(c) >= {
        "variant",
        "reference",
        "n",
        "only_variant",
        "only_reference",
        "delta",
        "delta_ci_low",
        "delta_ci_high",
        "mcnemar_p",
        "p_holm",
        "q_bh",
        "significant",
    }
    # two tests in the family (spider and mmlu): Holm doubles the smaller p-value at most
    raw = sorted(c["mcnemar_p"] for c in data["comparisons"])
    assert min(c["p_holm"] for c in data["comparisons"]) == pytest.approx(min(1.0, 2 * raw[0]))
    man = data["manifest"]
    assert man["wall_s"] == 12.5 and man["devices"] == ["cpu"]
    assert man["phases"]["spider-base"]["cached"] == 2 and "unreadable" in man["phases"]["mmlu-base"]
    assert set(man["libraries"]) >= {"torch", "transformers", "peft", "trl", "deepeval", "bitsandbytes"}
    assert man["libraries"]["deepeval"] and man["python"]
    assert len(data["cases"]) == len(rows) and data["cases"][0]["variant"] == "base"
    assert paths["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "report.md").read_text()
    for heading in [
        "## How to read this report",
        "## Accuracy",
        "## Differences from the baseline (base)",
        "## Spider execution accuracy by hardness",
        "## MMLU accuracy by category",
        "## MMLU accuracy by subject",
        "## Skipped and errored items",
        "## Gates",
        "## Manifest",
        "(tradeoff.png)",
    ]:
        assert heading in md
    assert "database 'wta_1' absent" in md and "| spider | ft | 6 |" in md and "| --- | --- | ---: |" in md


def test_undefined_numbers_are_null_in_json(tmp_path):
    rows = [
        row("base", "spider", 1, "skipped", reason="db absent"),
        row("ft", "spider", 1, "skipped", reason="db absent"),
    ]
    payload, analysis = _payload(tmp_path, rows)
    write_report(tmp_path, payload, analysis)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["summary"][0]["accuracy"] is None and data["summary"][0]["n"] == 0
    assert data["comparisons"][0]["mcnemar_p"] is None
    assert (tmp_path / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"


def test_report_of_all_wrong_and_all_right_variants(tmp_path):
    """0/n and n/n: Wilson bounds at exactly 0 and 1, and a figure with zero-length bars."""
    rows = [row("base", b, i, "wrong") for b in ("spider", "mmlu") for i in range(6)]
    rows += [row("ft", b, i, "passed") for b in ("spider", "mmlu") for i in range(6)]
    payload, analysis = _payload(tmp_path, rows)
    write_report(tmp_path, payload, analysis)
    data = json.loads((tmp_path / "results.json").read_text())
    assert {(s["variant"], s["ci_low"] == 0.0, s["ci_high"] == 1.0) for s in data["summary"]} == {
        ("base", True, False),
        ("ft", False, True),
    }
    assert (tmp_path / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"


def test_terminal_table_lists_accuracies_and_deltas():
    rows = _rows()
    text = format_table(analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts={}))
    assert "spider    base" in text and "50.0%" in text and "[" in text
    assert "+33.3" in text and "+2/-0" in text


def _sweep_rows(n=200):
    rows = [row("base", "spider", i, "passed" if i < 20 else "wrong") for i in range(n)]
    rows += [row("base", "mmlu", i, "passed" if i < 100 else "wrong", gold_prob=0.3) for i in range(n)]
    for variant, spider, mmlu in (("lr=1@1ep", 60, 100), ("lr=2@1ep", 22, 99)):
        rows += [
            row(variant, "spider", i, "passed" if i < spider else "wrong", kl_to_base=0.01 * (i % 5))
            for i in range(n)
        ]
        rows += [
            row(variant, "mmlu", i, "passed" if i < mmlu else "wrong", gold_prob=0.3 + 0.001 * (i % 3))
            for i in range(n)
        ]
    return rows


def _sweep_report(tmp_path, *, drawn=True, departures=()):
    from harness.report.frontier import AdapterFacts

    rows = _sweep_rows()
    where = {"point": "lr", "epochs_at": 1.0} if drawn else {}
    facts = {v: AdapterFacts(v, "a", "succeeded", **where) for v in ("lr=1@1ep", "lr=2@1ep")}
    analysis = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts=facts)
    manifest = collect_manifest(
        tmp_path,
        run_id="r1",
        experiment={"name": "t", "source": "missing.toml", "departures": list(departures)},
        gates_file="",
        command=["pytest"],
        started=0.0,
        finished=1.0,
    )
    payload = results_payload(analysis, rows, manifest=manifest)
    paths = write_report(tmp_path, payload, analysis)
    return json.loads((tmp_path / "results.json").read_text()), (tmp_path / "report.md").read_text(), paths


def test_the_report_opens_with_its_conclusion_and_names_every_measure_once(tmp_path):
    data, md, paths = _sweep_report(tmp_path, departures=["fp32 where the paper used 8-bit"])
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections[:3] == [
        "## Conclusion",
        "## Departures from the protocol reproduced",
        "## How to read this report",
    ]
    assert md.split("## Conclusion\n\n")[1].startswith("Fine-tuning (lr=1@1ep, against base)")
    assert "- fp32 where the paper used 8-bit" in md
    for m in declared_measures().values():
        assert md.count(f"*{m.title}*:") == 1
    assert "log-probability of the right answer" not in md
    # the frontier is drawn for a sweep, best named, Holm beside raw p
    assert "## The learning-forgetting frontier" in md and "frontier" in paths
    assert data["frontier"]["best"] == "lr=1@1ep" and "Holm p" in md and "BH q" in md
    # a KL: a size with its interval; no sign, no p-value, in the report and in results.json
    kl_lines = [line for line in md.splitlines() if "KL(" in line and line.startswith("| ")]
    assert kl_lines and all("+" not in line and "<0.001" not in line for line in kl_lines)
    kl = [c for c in data["continuous"] if c["measure"] == "kl_to_base"]
    assert kl and all("p_value" not in c and "p_holm" not in c for c in kl)
    changes = [c for c in data["continuous"] if c["measure"] == "gold_prob"]
    assert changes and all("p_holm" in c and "q_bh" in c for c in changes)
    # the family: 4 accuracy comparisons and 2 paired changes
    assert data["multiple_comparisons"]["family_size"] == 6


def test_one_adapter_is_no_frontier(tmp_path):
    data, md, paths = _sweep_report(tmp_path, drawn=False)
    assert "## The learning-forgetting frontier" not in md and "frontier" not in paths
    assert data["frontier"]["drawn"] is False


def test_the_report_shows_seeds_and_the_noise_floor(tmp_path):
    from tests.test_analysis import _seed_facts, _seed_sweep_rows

    rows = _seed_sweep_rows()
    rows += [
        row("base-b1", "mmlu", i, "passed" if i < 100 else "wrong", gold_prob=0.3 + 0.004 * (-1) ** i)
        for i in range(200)
    ]
    analysis = analyze(
        rows, baseline="base", tasks=("spider", "mmlu"), facts=_seed_facts(), null_variants=("base-b1",)
    )
    manifest = collect_manifest(
        tmp_path,
        run_id="r",
        experiment={"name": "t", "source": "x"},
        gates_file="",
        command=[],
        started=0,
        finished=1,
    )
    payload = results_payload(analysis, rows, manifest=manifest)
    write_report(tmp_path, payload, analysis)
    md = (tmp_path / "report.md").read_text()
    data = json.loads((tmp_path / "results.json").read_text())
    assert "### Over seeds" in md and "**lr=1@1ep** (best)" in md
    line = next(x for x in md.splitlines() if x.startswith("| **lr=1@1ep**"))
    assert "5.0 (+15.0, +20.0, +25.0)" in line  # the seeds' SD and each seed's change
    assert "base-b1 (*null*)" in md and "**Noise floor**" in md and "(*within noise*)" in md
    assert data["noise_floor"]["null_variants"] == ["base-b1"] and data["noise_floor"]["within_noise"]
    [group] = [g for g in data["frontier"]["seed_groups"] if g["setting"] == "lr=1@1ep"]
    assert group["gain"]["per_seed"] == pytest.approx([0.15, 0.2, 0.25]) and group["qualifies"]


def test_table_layout_answers_subjects_shots_load_and_model_names(tmp_path):
    """Every answer column (D too, which no variant chose); per-subject rows only where every
    variant scored MIN_SUBJECT_N items; each variant's shots and load mode as run; the model's name
    beside its hash in the phases."""
    rows = []
    for variant in ("base", "ft"):
        for i in range(MIN_SUBJECT_N):
            rows.append(
                CaseResult(
                    variant,
                    "mmlu",
                    f"a{i}",
                    "stem",
                    "passed" if i % 2 else "wrong",
                    "",
                    "ABC"[i % 3],
                    None,
                    {"subject": "anatomy"},
                )
            )
        rows.append(
            CaseResult(variant, "mmlu", "v0", "other", "wrong", "", "A", None, {"subject": "virology"})
        )
    (tmp_path / "phases").mkdir()
    for variant, shots, load in (("base", 0, "fp32"), ("ft", 3, "nf4")):
        record = {
            "variant": variant,
            "task": "mmlu",
            "shots": shots,
            "fingerprint": {"model": "dir:abc", "load": load},
        }
        (tmp_path / "phases" / f"mmlu-{variant}.json").write_text(json.dumps(record))
    analysis = analyze(rows, baseline="base", tasks=("mmlu",), facts={})
    manifest = collect_manifest(
        tmp_path,
        run_id="r1",
        experiment={"name": "t", "source": "x.toml", "variants": [{"name": "base", "model": "org/small"}]},
        gates_file="",
        command=["pytest"],
        started=0.0,
        finished=1.0,
    )
    payload = results_payload(analysis, rows, manifest=manifest)
    md = render_markdown(payload, analysis)
    answers = md[md.index("answers given") :]
    assert "| variant | `A` | `B` | `C` | `D` |" in answers
    assert "| base (0-shot, fp32) | 8 | 7 | 6 | 0 |" in answers
    subjects = md[md.index("## MMLU accuracy by subject") :].split("\n## ")[0]
    assert "| anatomy |" in subjects and "virology" not in subjects and "(1 of 2)" in subjects
    assert "virology" in json.dumps(payload["summary"]), "every subject stays in results.json"
    assert "| mmlu | ft (3-shot, nf4) | 21 |" in md
    assert "org/small (`dir:abc`)" in md
    terminal = format_table(analysis, variant_labels(payload))
    assert "ft (3-shot, nf4)" in terminal
