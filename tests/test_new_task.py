"""A fourth task added as a contributor would, in exactly three files, run end to end.

The test copies the harness (its packages, fixtures, benchmarks and pytest setup) into a
temporary folder, adds a toy task there (exact-match arithmetic from a JSONL file, greedy
generation on the tiny model) in three files: the task module, its line in the registry and
its benchmark file; checks that these three are the only files that changed; runs the tests
that read the registry there (the layers, the gates, the generated schema, which then holds the
new task's table); and runs the benchmark under pytest with the harness's plugins, its file
named by the generic ``--set arith.path=...``, to a results.json and a report.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.tiny_data import harness_options

ROOT = Path(__file__).resolve().parents[1]
COPIED = (
    "harness",
    "fixtures",
    "benchmarks",
    "training",
    "tests",
    "experiments",
    "examples",
    "conftest.py",
    "pytest.ini",
    "gates.toml",
    "README.md",
    ".env",
)
# The tests that read the task registry: a new task needs no edit of them, nor of what they check.
REGISTRY_READERS = ("tests/test_layers.py", "tests/test_gates.py", "tests/test_schema.py")

TASK_MODULE = '''"""Exact-match arithmetic from a JSONL file: ``{"question": "2+3", "answer": "5"}``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from deepeval.test_case import LLMTestCase

from harness.engine.core import GenerationSettings
from harness.records.results import CaseSpec
from harness.tasks.base import (
    PhaseInfo,
    Predictions,
    Report,
    RunContext,
    Task,
    TaskData,
    TaskSettings,
    VariantOptions,
)
from harness.tasks.metric import PassFailMetric


@dataclass(frozen=True)
class Sum:
    item_id: str
    question: str
    answer: str


class ArithSettings(TaskSettings):
    path: str = ""  # the JSONL file of questions


class ExactMatch(PassFailMetric):
    metric_name: ClassVar[str] = "Exact Match"

    def judge(self, test_case: LLMTestCase, gold: str) -> tuple[bool, str]:
        said = (test_case.actual_output or "").strip()
        return said == gold, f"said {said!r}, the answer is {gold!r}"


class ArithTask:
    name = "arith"
    description = "an arithmetic exact-match case (benchmarks/test_arith.py)"
    settings_model = ArithSettings
    variant_model = VariantOptions
    report = Report(
        title="Arithmetic exact match",
        group_label="operation",
        subgroup_label="answer length",
        subgroup_field="digits",
    )

    def load(self, settings: ArithSettings, *, seed: int) -> TaskData[Sum, None]:
        lines = Path(settings.path).read_text().splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        return TaskData(tuple(Sum(f"q{i}", r["question"], r["answer"]) for i, r in enumerate(rows)))

    def record_fields(self, item: Sum) -> dict[str, str]:
        return {"group": "sum" if "+" in item.question else "other"}

    def predict(
        self, run: RunContext, data: TaskData[Sum, None], variant: Any, settings: ArithSettings, options: Any
    ) -> Predictions[str]:
        prompts = [f"{item.question} = " for item in data.items]
        outputs, phase = run.engine.generate(
            variant, prompts, GenerationSettings(max_new_tokens=4), namespace=self.name, desc=self.name
        )
        info = PhaseInfo(template="arith", template_version=1, seed=run.seed, n_prompts=len(prompts), shots=0)
        return Predictions({item.item_id: out for item, out in zip(data.items, outputs)}, info.into(phase))

    def metric(self, settings: ArithSettings) -> ExactMatch:
        return ExactMatch()

    def case(
        self, item: Sum, prediction: str | None, variant: Any, settings: ArithSettings, data: Any, metric: Any
    ) -> CaseSpec:
        said = (prediction or "").strip()
        test_case = LLMTestCase(
            name=f"{variant.name}/{item.item_id}",
            input=item.question,
            actual_output=said,
            expected_output=item.answer,
        )
        return CaseSpec(test_case, metric, prediction=said, extra={"digits": str(len(item.answer))})

    def write_outputs(self, run_dir: Path, variant: Any, data: Any, predictions: Any) -> None:
        return None

    def failure_kind(self, reason: str) -> str:
        return "wrong number"


TASK: Task[Sum, None, str, ArithSettings, VariantOptions] = ArithTask()
'''

BENCHMARK = '''"""Arithmetic exact match (harness/tasks/arith.py): one case per (variant, item)."""

from deepeval import assert_test

from fixtures.cases import parametrize_task


def pytest_generate_tests(metafunc):
    parametrize_task(metafunc, "arith")


def test_exact_match(case):
    assert_test(case.test_case, [case.metric], run_async=False)
'''


def _tree(root: Path) -> dict[str, str]:
    """path -> sha256 of every file under ``root`` (no bytecode)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def _add_the_task(repo: Path) -> None:
    """The three edits a contributor makes."""
    (repo / "harness" / "tasks" / "arith.py").write_text(TASK_MODULE)
    registry = repo / "harness" / "tasks" / "__init__.py"
    text = registry.read_text()
    anchor = '    "text2sql",\n'
    assert anchor in text, "the registry's last line moved: update this test"
    registry.write_text(text.replace(anchor, anchor + '    "arith",\n', 1))
    (repo / "benchmarks" / "test_arith.py").write_text(BENCHMARK)


def test_a_fourth_task_in_three_files_runs_end_to_end(tmp_path, tiny_model_dir):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            shutil.copy2(src, repo / name)
    before = _tree(repo)
    _add_the_task(repo)
    after = _tree(repo)
    touched = sorted(p for p in after.keys() | before.keys() if before.get(p) != after.get(p))
    assert touched == ["benchmarks/test_arith.py", "harness/tasks/__init__.py", "harness/tasks/arith.py"]
    diff = [line for line in after.keys() & before.keys() if before[line] != after[line]]
    assert diff == ["harness/tasks/__init__.py"]

    questions = tmp_path / "arith.jsonl"
    rows = [
        {"question": f"{a}+{b}", "answer": str(a + b)} for a, b in [(1, 2), (3, 4), (10, 5), (7, 7), (2, 2)]
    ]
    rows.append({"question": "9-4", "answer": "5"})
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "PYTHONPATH": str(repo), "HARNESS_CACHE_DIR": str(tmp_path / "hcache")}

    checks = [sys.executable, "-m", "pytest", *REGISTRY_READERS, "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(checks, cwd=repo, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    schema = subprocess.run(
        [sys.executable, "-m", "harness.config.experiment"], cwd=repo, capture_output=True, text=True, env=env
    )
    assert schema.returncode == 0, schema.stderr[-3000:]
    assert "arith" in json.loads(schema.stdout)["properties"]

    exp = tmp_path / "exp.toml"
    exp.write_text(
        f"""
[experiment]
name = "toy"
baseline = "base"
gates = ""
tasks = ["arith"]

[[variants]]
name = "base"
model = "{tiny_model_dir}"
"""
    )
    args = [
        sys.executable,
        "-m",
        "pytest",
        "benchmarks/test_arith.py",
        *harness_options(tmp_path, exp, "toy"),
        "--set",
        f"arith.path={questions}",
    ]
    done = subprocess.run(args, cwd=repo, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "arith" in done.stdout  # the terminal summary names the task

    run_dir = tmp_path / "reports" / "toy"
    results = json.loads((run_dir / "results.json").read_text())
    cases = [c for c in results["cases"] if c["task"] == "arith"]
    assert len(cases) == len(rows) and {c["outcome"] for c in cases} <= {"passed", "wrong"}
    assert {c["group"] for c in cases} == {"sum", "other"}
    # the result row's score is the metric's: 1.0 for a right answer, 0.0 for a wrong one
    assert all(c["score"] == (1.0 if c["outcome"] == "passed" else 0.0) for c in cases), cases
    (summary,) = [s for s in results["summary"] if s["task"] == "arith"]
    correct = sum(c["outcome"] == "passed" for c in cases)
    assert (summary["n"], summary["correct"], summary["accuracy"]) == (
        len(rows),
        correct,
        correct / len(rows),
    )
    assert summary["why_wrong"] == ({"wrong number": len(rows) - correct} if correct < len(rows) else {})
    # the report reads the task's declarations: its title, its groups and its declared subgroup
    assert summary["by_group"].keys() == {"sum", "other"}
    assert summary["by_subject"].keys() == {"1", "2"}
    report = (run_dir / "report.md").read_text()
    assert "## Arithmetic exact match by operation" in report
    assert "## Arithmetic exact match by answer length" in report
    phase = json.loads((run_dir / "phases" / "arith-base.json").read_text())
    assert (phase["template"], phase["n_prompts"], phase["computed"]) == ("arith", len(rows), len(rows))
