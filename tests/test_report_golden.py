"""The report's files, byte for byte: ``report.md``, ``results.json`` (every key but the cases,
and the whole file's hash) and the terminal summary of four runs (a plain one with phases and
gates, a sweep, a seeded sweep with a noise floor, a table of subjects) against the copies in
``tests/data/report_golden/``. A change to what the report writes shows here as a diff; a
deliberate one is accepted by regenerating them:
``REPORT_GOLDEN_WRITE=1 python -m pytest tests/test_report_golden.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from harness.records.manifest import collect_manifest
from harness.records.results import CaseResult
from harness.report.analysis import analyze
from harness.report.cells import variant_labels
from harness.report.document import write_report
from harness.report.frontier import AdapterFacts
from harness.report.results_json import results_payload
from harness.report.sections import MIN_SUBJECT_N
from harness.report.terminal import format_table
from tests.test_analysis import _seed_facts, _seed_sweep_rows
from tests.test_report import _rows, _sweep_rows, row

GOLDEN = Path(__file__).parent / "data" / "report_golden"
# What differs from machine to machine or from hour to hour, set to fixed values
STEADY = {
    "started": "2000-01-01T00:00:00+0000",
    "finished": "2000-01-01T00:00:12+0000",
    "git_commit": "0" * 40,
    "python": "3.x",
    "platform": "Linux-x",
    "machine": "x86_64",
    "cpu_count": 2,
    "libraries": {"torch": "2.x", "deepeval": "3.x", "statsmodels": None},
}
GATES = {
    "file": "gates.toml",
    "note": "",
    "passed": False,
    "results": [
        {"status": "pass", "message": "spider ft >= base"},
        {"status": "fail", "message": "mmlu | ft within 1 point"},
    ],
}


def _manifest(run_dir: Path, experiment: dict, *, bench: dict | None = None) -> dict:
    man = collect_manifest(
        run_dir,
        run_id="golden",
        experiment=experiment,
        gates_file="gates.toml",
        command=["pytest", "benchmarks/"],
        started=0.0,
        finished=12.5,
        command_record=bench,
    )
    # the devices the phases name; without any, the manifest asks torch if the process imported it
    devices = sorted({str(p["device"]) for p in man["phases"].values() if p.get("device")})
    return {**man, **STEADY, "devices": devices}


def _plain(run_dir: Path):
    (run_dir / "phases").mkdir(parents=True)
    phase = {
        "variant": "base",
        "task": "spider",
        "shots": 0,
        "fingerprint": {"model": "m", "adapter": "", "load": "fp32"},
        "template": "schema",
        "template_version": 2,
        "seed": 0,
        "n_prompts": 6,
        "cached": 2,
        "computed": 4,
        "seconds": 1.5,
        "device": "cpu",
    }
    (run_dir / "phases" / "spider-base.json").write_text(json.dumps(phase))
    (run_dir / "phases" / "mmlu-base.json").write_text("{not json")
    rows = _rows()
    rows += [
        CaseResult(
            "ft", "spider", "20", "easy", "wrong", "empty prediction: no SQL to execute", "", None, {}
        ),
        CaseResult("ft", "mmlu", "9", "stem", "wrong", "", "B", None, {"subject": "anatomy"}),
    ]
    facts = {
        "ft": AdapterFacts("ft", "adapters/ft", "succeeded", None, 18, 20, 72, 9000, 1.2345, cut_short=True)
    }
    analysis = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts=facts)
    bench = {
        "wall_s": 99.0,
        "training": [{"config": "training/configs/default.toml", "seconds": 50.0, "exit": 0}],
    }
    man = _manifest(run_dir, {"name": "t", "source": "missing.toml", "variants": []}, bench=bench)
    return rows, analysis, man, GATES


def _sweep(run_dir: Path):
    rows = _sweep_rows()
    facts = {
        v: AdapterFacts(
            v,
            "a",
            "succeeded",
            None,
            10,
            10,
            40,
            4000,
            0.5,
            point="lr",
            values=(("train.learning_rate", v[3]),),
            epochs_at=1.0,
        )
        for v in ("lr=1@1ep", "lr=2@1ep")
    }
    facts["lr=3@1ep"] = AdapterFacts(
        "lr=3@1ep", "a", "diverged", "loss was nan", 3, 10, point="lr", values=(("lr", "3"),)
    )
    analysis = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts=facts)
    exp = {"name": "sweep", "source": "missing.toml", "departures": ["fp32 where the paper used 8-bit"]}
    return rows, analysis, _manifest(run_dir, exp), None


def _seeds(run_dir: Path):
    rows = _seed_sweep_rows()
    rows += [
        row("base-b1", "mmlu", i, "passed" if i < 100 else "wrong", gold_prob=0.3 + 0.004 * (-1) ** i)
        for i in range(200)
    ]
    analysis = analyze(
        rows, baseline="base", tasks=("spider", "mmlu"), facts=_seed_facts(), null_variants=("base-b1",)
    )
    return rows, analysis, _manifest(run_dir, {"name": "seeds", "source": "x"}), None


def _subjects(run_dir: Path):
    rows = []
    for variant in ("base", "ft"):
        for i in range(MIN_SUBJECT_N):
            outcome = "passed" if i % 2 else "wrong"
            rows.append(
                CaseResult(
                    variant, "mmlu", f"a{i}", "stem", outcome, "", "ABC"[i % 3], None, {"subject": "anatomy"}
                )
            )
        rows.append(
            CaseResult(variant, "mmlu", "v0", "other", "wrong", "", "A", None, {"subject": "virology"})
        )
    (run_dir / "phases").mkdir(parents=True)
    for variant, shots, load in (("base", 0, "fp32"), ("ft", 3, "nf4")):
        record = {
            "variant": variant,
            "task": "mmlu",
            "shots": shots,
            "fingerprint": {"model": "dir:abc", "load": load},
        }
        (run_dir / "phases" / f"mmlu-{variant}.json").write_text(json.dumps(record))
    analysis = analyze(rows, baseline="base", tasks=("mmlu",), facts={})
    exp = {"name": "t", "source": "x.toml", "variants": [{"name": "base", "model": "org/small"}]}
    return rows, analysis, _manifest(run_dir, exp), None


SCENARIOS = {"plain": _plain, "sweep": _sweep, "seeds": _seeds, "subjects": _subjects}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_reports_files_are_unchanged(name, tmp_path):
    run_dir = tmp_path / name
    run_dir.mkdir()
    rows, analysis, manifest, gates = SCENARIOS[name](run_dir)
    payload = results_payload(analysis, rows, manifest=manifest, gates=gates)
    write_report(run_dir, payload, analysis)
    results = (run_dir / "results.json").read_bytes()
    without_cases = {k: v for k, v in json.loads(results).items() if k != "cases"}
    written = {
        "report.md": (run_dir / "report.md").read_text(encoding="utf-8"),
        # every key but the cases (the rows as given, and long), then the whole file's hash
        "results.json": json.dumps(without_cases, indent=1, ensure_ascii=False) + "\n",
        "results.json.sha256": hashlib.sha256(results).hexdigest() + "\n",
        "terminal.txt": format_table(analysis, variant_labels(payload)) + "\n",
    }
    folder = GOLDEN / name
    if os.environ.get("REPORT_GOLDEN_WRITE"):
        folder.mkdir(parents=True, exist_ok=True)
        for file, text in written.items():
            (folder / file).write_text(text, encoding="utf-8")
    for file, text in written.items():
        assert text == (folder / file).read_text(encoding="utf-8"), (
            f"{name}/{file} differs from its golden copy"
        )
