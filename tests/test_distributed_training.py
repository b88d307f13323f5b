"""The training recipe under several processes: DDP over gloo on CPU, 2 ranks, tiny model.

What is pinned: ``torchrun --nproc_per_node 2`` trains one adapter, written once by rank 0, with
its half-way checkpoint (saved mid-training without hanging the other rank); the effective batch
(per-device batch x accumulation x processes) is the config's, so the run plans the same
optimizer steps as one process; a rank whose loss turns NaN stops every rank at the same step (a
rank that stopped alone would hang the others), only rank 0 writes the failure folder, and the
checkpoint it had reached is discarded; a batch that cannot be split over the processes is a
config error before any load.

This file is also the script the launcher runs (``python tests/test_distributed_training.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN = 8  # tests/test_training.py's tiny Spider train split


def _config(tmp: Path, model: Path, spider: Path, output: str) -> Path:
    """8 examples, batch 1 x 4 accumulation: 2 optimizer steps for one process, and for two."""
    path = tmp / f"{output}.toml"
    path.write_text(
        f"""
name = "{output}"
model = "{model}"
output = "{tmp / output}"
seed = 0

[data]
spider_dir = "{spider}"
template = "schema"

[train]
epochs = 1.0
per_device_batch_size = 1
gradient_accumulation_steps = 4
learning_rate = 1e-3

[hardware]
device = "cpu"
cpu_quantization = "fp32"

[checkpoints]
at = [0.5, 1.0]
"""
    )
    return path


# --- pure pieces ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_device", "accumulation", "world", "expected"),
    [(1, 4, 1, 4), (1, 4, 2, 2), (64, 4, 4, 1), (2, 8, 8, 1)],
)
def test_accumulation_is_divided_by_the_processes(per_device, accumulation, world, expected):
    from training._distributed import split_accumulation

    got = split_accumulation(per_device, accumulation, world)
    assert got == expected and per_device * got * world == per_device * accumulation


def test_an_unsplittable_batch_names_the_keys_and_the_fix():
    from training import ConfigError
    from training._distributed import BatchSplitError, split_accumulation

    with pytest.raises(BatchSplitError) as e:
        split_accumulation(64, 4, 3)
    assert isinstance(e.value, ConfigError)
    msg = str(e.value)
    assert "train.gradient_accumulation_steps = 4" in msg and "3 processes" in msg and "64 x 4 = 256" in msg


def test_world_comes_from_the_launcher_variables():
    from training._distributed import World, world_from_env

    assert world_from_env({}) == World(0, 0, 1) and not world_from_env({}).distributed
    w = world_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (w.rank, w.local_rank, w.size, w.is_main, w.distributed) == (3, 1, 4, False, True)
    with pytest.raises(RuntimeError, match="RANK=5, WORLD_SIZE=4"):
        world_from_env({"WORLD_SIZE": "4", "RANK": "5"})


def test_multicast_stays_off_unless_set():
    from harness.engine.sharding import keep_multicast_off

    env = {"NCCL_NVLS_ENABLE": "0"}
    keep_multicast_off(env)
    assert env == {
        "NCCL_NVLS_ENABLE": "0",
        "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
        "NVSHMEM_DISABLE_NVLS": "1",
    }


def test_unsplittable_batch_exits_2_before_loading(tmp_path, monkeypatch, capsys):
    import training

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    config = _config(tmp_path, tmp_path / "no-model-needed", tmp_path / "no-data-needed", "adapter")
    assert training.main(["--config", str(config)]) == 2
    assert "cannot be shared by 3 processes" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [config], "nothing is written, nothing is loaded"


# --- two processes ------------------------------------------------------------------------------


def _launch_env() -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_XDIST", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_"))
    }
    env.update(
        OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT)
    )
    return env


def test_two_processes_train_one_adapter_with_the_same_effective_batch(tmp_path, tiny_model_dir):
    from tests.test_training import build_tiny_spider

    spider = build_tiny_spider(tmp_path / "spider")
    good = _config(tmp_path, tiny_model_dir, spider, "adapter")
    bad = _config(tmp_path, tiny_model_dir, spider, "nan")
    out = tmp_path / "ranks"
    out.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(Path(__file__)),
        str(good),
        str(bad),
        str(out),
    ]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=_launch_env(), capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t0
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    print(f"2-process launch: {seconds:.1f} s")

    # The good run: one adapter, by rank 0; the batch split 1 x 2 x 2 = the config's 1 x 4.
    assert [r["good"]["cli_status"] for r in ranks] == [0, 0]
    adapter = tmp_path / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "adapter_config.json").is_file()
    s = json.loads((adapter / "training_summary.json").read_text())
    assert s["status"] == "succeeded"
    assert s["distributed"] == {
        "world_size": 2,
        "parallel_mode": "distributed",
        "backend": "gloo",
        "fsdp": False,
        "per_device_batch_size": 1,
        "gradient_accumulation_steps": 2,
        "effective_batch": 4,
    }
    # One process plans ceil(8 / (1 x 4)) = 2 steps; so do two (each sees 4 examples, 2 per step).
    assert s["steps_planned"] == 2 and s["steps_done"] == 2 and s["examples_seen"] == N_TRAIN
    assert s["tokens_seen"] > 0 and all(isinstance(r["loss"], float) for r in s["loss_curve"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no staging folder is left"
    assert not (tmp_path / "adapter.failed").exists()
    half = adapter / "checkpoints" / "0.5"
    assert (half / "adapter_model.safetensors").is_file() and (half / "adapter_config.json").is_file()
    ck = json.loads((half / "training_summary.json").read_text())
    assert ck["status"] == "succeeded" and ck["steps_done"] == 1 and ck["examples_seen"] == N_TRAIN // 2
    assert ck["distributed"] == s["distributed"] and len(ck["loss_curve"]) == 1
    assert sorted(p.name for p in (adapter / "checkpoints").iterdir()) == ["0.5"]

    # NaN on rank 1 only: both ranks stop at step 1, rank 0 writes the failure folder, no adapter.
    assert [r["nan"]["status"] for r in ranks] == ["diverged", "diverged"]
    assert [r["nan"]["steps_done"] for r in ranks] == [1, 1]
    assert not (tmp_path / "nan").exists()
    failed = json.loads((tmp_path / "nan.failed" / "training_summary.json").read_text())
    assert failed["status"] == "diverged" and "another training process" in failed["reason"], (
        "rank 0 wrote it"
    )
    assert failed["checkpoints_discarded"] == [0.5], (
        "step 1's checkpoint was saved before its log diverged, then discarded"
    )
    assert "loss became nan" in ranks[1]["nan"]["reason"]


def _worker_main(good: str, bad: str, out: str) -> None:
    """One rank: the NaN run first (NaN injected on rank 1 only), then the good run through
    the command line, which ends the process group; each rank reports to ``out/rank<r>.json``."""
    from transformers import TrainerCallback

    import training
    from training._distributed import world_from_env

    world = world_from_env()

    class NanOnRank1(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs and world.rank == 1:
                logs["loss"] = float("nan")
            return control

    report = {}
    try:
        training.train_from_config(bad, callbacks=[NanOnRank1()])
        report["nan"] = {"status": "succeeded"}
    except training.TrainingFailed as e:
        r = e.results[0]
        report["nan"] = {"status": r.status, "reason": r.reason, "steps_done": r.summary.get("steps_done")}
    report["good"] = {"cli_status": training.main(["--config", good])}
    Path(out, f"rank{world.rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    _worker_main(*sys.argv[1:4])
