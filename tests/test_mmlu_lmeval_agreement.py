"""Agreement with lm-evaluation-harness, item by item: the same prompts, the same letter
log-likelihoods, the same answers. Skipped when lm-eval is not installed
(``pip install --no-deps lm-eval`` plus its small dependencies)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.engine.loglik import score_choices
from harness.tasks.mmlu.items import LETTERS, find_mmlu_dir, load_mmlu_split
from harness.tasks.mmlu.prompts import LETTER_CHOICES, mmlu_prompt_parts, mmlu_shots

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bench_mmlu_vs_lmeval.py"
REAL_MMLU = ROOT / ".." / "shared" / "data" / "mmlu"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_mmlu_vs_lmeval", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, rows: list[list[str]]) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)


def test_tiny_model_matches_lm_eval_hf_backend(tmp_path, tiny_model_dir):
    """lm-eval builds the prompts from the CSVs itself and scores with its HF backend; ours
    must give the same prompts and the same log-likelihoods, with prefix reuse on."""
    pytest.importorskip("lm_eval")
    from lm_eval.models.huggingface import HFLM

    from harness.models.loading import load_base_model, load_tokenizer, resolve_model

    dev = [[f"Shot {i}?", "SELECT", "count", "NaN", "None", "ABCDA"[i]] for i in range(5)]
    test = [
        ["How many singers do we have?", "1", "010", "three", "", "B"],
        ["  What is 2 + 2?  ", "4", "2.0", "None", "N/A", "A"],
        ['Question: stadium, "quoted"\nsecond line', "a", "b", "c", "d", "D"],
    ]
    for subject in ("anatomy", "virology"):
        _write(tmp_path / "dev" / f"{subject}_dev.csv", dev)
        _write(tmp_path / "test" / f"{subject}_test.csv", test)
    items = load_mmlu_split(tmp_path, "test", subjects=["anatomy", "virology"])
    shots = load_mmlu_split(tmp_path, "dev", subjects=["anatomy", "virology"])

    resolved = resolve_model(str(tiny_model_dir))
    model, tokenizer = load_base_model(resolved, "fp32", "cpu"), load_tokenizer(resolved)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, max_length=2048)
    bench = _bench_module()
    for k in (0, 3):
        theirs = bench.lmeval_requests(items, tmp_path, "test", k)
        requests = [mmlu_prompt_parts(it, mmlu_shots(shots, it.subject, k)) for it in items]
        ours = score_choices(
            model, tokenizer, requests, [LETTER_CHOICES] * len(requests), min_shared_tokens=1
        )
        for it, (prefix, suffix), score in zip(items, requests, ours):
            insts = theirs[it.item_id]
            assert insts[0].args[0] == prefix + suffix, f"{it.item_id}: prompts differ at {k} shots"
            lls = [ll for ll, _ in lm.loglikelihood(insts, disable_tqdm=True)]
            assert score.logprobs == pytest.approx(lls, abs=1e-4), it.item_id
            assert LETTERS[score.best] == LETTERS[lls.index(max(lls))]


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_MMLU / "test").is_dir(), reason="no MMLU data at ../shared/data/mmlu")
def test_default_model_agrees_with_lm_eval_on_real_mmlu(tmp_path):
    """One question of every subject at 4 shots on the default model (about two minutes on
    2 CPU cores): at least 99% identical answers and every prompt identical."""
    pytest.importorskip("lm_eval")
    find_mmlu_dir(REAL_MMLU)
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--per-subject",
        "1",
        "--shots",
        "4",
        "--chunks",
        "1",
        "--json",
        str(out),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = json.loads(out.read_text())["runs"]
    assert run["identical_prompts"] == run["questions"] == 57
    assert run["agreement"] >= 0.99, run
