"""scripts/bench_phases.py: the phases it reads from a run, shards of one phase merged."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_phases.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_phases", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sharded_phases_merge_and_cached_phases_are_left_out(tmp_path):
    phases = tmp_path / "run" / "phases"
    phases.mkdir(parents=True)
    shard = {
        "task": "spider",
        "variant": "ft",
        "computed": 5,
        "seconds": 10.0,
        "prompt_tokens": 1000,
        "new_tokens": 100,
    }
    (phases / "spider-ft.gw0.json").write_text(json.dumps(shard))
    (phases / "spider-ft.gw1.json").write_text(json.dumps({**shard, "seconds": 12.0, "prompt_tokens": 900}))
    (phases / "mmlu-ft.json").write_text(
        json.dumps({"task": "mmlu", "variant": "ft", "computed": 0, "seconds": 0.0})
    )
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    # The fields training/_summary.py writes: the loop's tokens and seconds, apart from the whole
    # run's wall time (download, conversion, loading and saving included).
    (adapter / "training_summary.json").write_text(
        json.dumps(
            {
                "loss_curve": [{"tokens": 50, "elapsed_s": 1.0}, {"tokens": 590, "elapsed_s": 5.9}],
                "tokens_seen": 600,
                "train_time_s": 6.0,
                "wall_time_s": 40.0,
                "tokens_per_s": 100.0,
                "base_model": {"name": "m"},
            }
        )
    )

    rows = _load().phase_rows(tmp_path / "run", [adapter])

    assert [r["phase"] for r in rows] == ["training adapter", "spider generation ft"]
    assert rows[0]["tokens"] == 600 and rows[0]["seconds"] == 6.0 and rows[0]["factor"] == 6
    # Two shards ran side by side: tokens add up, the phase took as long as the slower one.
    assert (
        rows[1]["tokens"] == 2100
        and rows[1]["seconds"] == 12.0
        and rows[1]["computed"] == 10
        and rows[1]["workers"] == 2
    )
