"""The training recipe on a tiny random model and a tiny Spider-like folder built here.

What is pinned: a run writes a loadable PEFT adapter and a valid summary; every example's
labels end with EOS and cover only the completion; a diverged run is caught, reported and
leaves an earlier adapter byte-identical; config mistakes name the file and the key; a sweep
expands to one run per point; checkpoints are loadable PEFT folders with their own summaries,
published with the run or not at all (diverged, killed); ``--missing-only`` trains only what is
missing; ``training_plan`` names and places every adapter without importing ``training``; a
run stopped by its time budget says so; printed losses are rounded.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from transformers import TrainerCallback

import training
from harness.config.training import parse_override, resolve_key, run_status, training_plan
from training import ConfigError, TrainingFailed, divergence, load_config, load_sweep, train_from_config
from training._output import OutputError, check_output
from training._summary import examples_seen

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "training" / "configs").glob("*.toml"))

_TABLES = [
    {
        "db_id": "concert_singer",
        "table_names_original": ["singer", "concert"],
        "table_names": ["singer", "concert"],
        "column_names_original": [
            [-1, "*"],
            [0, "Singer_ID"],
            [0, "Name"],
            [0, "Age"],
            [1, "concert_ID"],
            [1, "Singer_ID"],
        ],
        "column_names": [
            [-1, "*"],
            [0, "singer id"],
            [0, "name"],
            [0, "age"],
            [1, "concert id"],
            [1, "singer id"],
        ],
        "column_types": ["text", "number", "text", "number", "number", "number"],
        "primary_keys": [1, 4],
        "foreign_keys": [[5, 1]],
    },
    {
        "db_id": "pets_1",
        "table_names_original": ["Pets"],
        "table_names": ["pets"],
        "column_names_original": [[-1, "*"], [0, "PetID"], [0, "PetType"], [0, "pet_age"]],
        "column_names": [[-1, "*"], [0, "pet id"], [0, "pet type"], [0, "pet age"]],
        "column_types": ["text", "number", "text", "number"],
        "primary_keys": [1],
        "foreign_keys": [],
    },
]
_TRAIN = [
    ("concert_singer", "How many singers do we have?", "SELECT count(*) FROM singer"),
    (
        "concert_singer",
        "What are the names of singers older than 30?",
        "SELECT Name FROM singer WHERE Age > 30",
    ),
    (
        "concert_singer",
        "List singer names by age, oldest first.",
        "SELECT Name FROM singer ORDER BY Age DESC",
    ),
    ("concert_singer", "How many concerts are there?", "SELECT count(*) FROM concert"),
    ("pets_1", "How many pets are there?", "SELECT count(*) FROM Pets"),
    ("pets_1", "Find the number of distinct pet types.", "SELECT count(DISTINCT PetType) FROM Pets"),
    ("pets_1", "What is the average pet age?", "SELECT avg(pet_age) FROM Pets"),
    ("pets_1", "Which pets are older than 1?", "SELECT PetID FROM Pets WHERE pet_age > 1"),
]
DEV_MARKER = "DEV-ONLY QUESTION THAT TRAINING MUST NEVER SEE"


def build_tiny_spider(root: Path) -> Path:
    """tables.json + train_spider.json (8 items, 2 dbs), and a dev.json that must stay unread."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "tables.json").write_text(json.dumps(_TABLES))
    (root / "train_spider.json").write_text(
        json.dumps([{"db_id": d, "question": q, "query": s} for d, q, s in _TRAIN])
    )
    (root / "dev.json").write_text(
        json.dumps([{"db_id": "pets_1", "question": DEV_MARKER, "query": "SELECT 1"}])
    )
    return root


@pytest.fixture(scope="session")
def spider_dir(tmp_path_factory) -> Path:
    return build_tiny_spider(tmp_path_factory.mktemp("spider"))


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def tiny_config(
    tmp_path: Path,
    model: Path,
    spider: Path,
    *,
    output: str = "adapter",
    steps: int = 3,
    sweep: str = "",
    device: str = "cpu",
) -> Path:
    """A config that trains the tiny model for a few steps on the tiny Spider folder (on CPU: in fp32)."""
    return write_config(
        tmp_path / "tiny.toml",
        f"""
name = "tiny"
model = "{model}"
output = "{tmp_path / output}"
seed = 0

[data]
spider_dir = "{spider}"
template = "schema"

[train]
max_steps = {steps}
per_device_batch_size = 2
gradient_accumulation_steps = 1
learning_rate = 1e-3

[hardware]
device = "{device}"
cpu_quantization = "fp32"
{sweep}""",
    )


def read_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir, spider_dir):
    """One successful tiny run, shared by the tests that only read its outputs."""
    tmp = tmp_path_factory.mktemp("trained")
    results = train_from_config(tiny_config(tmp, tiny_model_dir, spider_dir))
    return results[0]


# --- a run writes a loadable adapter and an honest summary ------------------------------------


def test_run_writes_loadable_adapter_and_summary(trained, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from harness.models.loading import check_adapter_usable

    out = trained.output
    assert trained.ok and trained.status == "succeeded"
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    check_adapter_usable(out)  # what the benchmarks call before using an adapter
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(out))
    assert any("lora_A" in n for n, _ in model.named_parameters())

    s = json.loads((out / "training_summary.json").read_text())
    assert s["status"] == "succeeded" and s["reason"] is None
    assert s["seed"] == 0 and s["config"]["lora"]["r"] == 16
    assert s["base_model"]["fingerprint"].startswith("dir:")
    assert s["data"]["examples"] == len(_TRAIN) and len(s["data"]["fingerprint"]) == 64
    assert s["data"]["dropped_overlong"] == 0 and s["data"]["truncated"] == 0
    assert s["steps_done"] == 3 and len(s["loss_curve"]) == 3
    assert s["examples_seen"] == 6 and s["tokens_seen"] > 0 and s["tokens_per_s"] > 0
    assert all(math.isfinite(r["loss"]) for r in s["loss_curve"])
    assert s["quantization"]["used"] == "fp32" and s["device"].startswith("cpu")
    assert s["libraries"]["trl"] and s["libraries"]["peft"] and s["wall_time_s"] > 0
    assert len(s["adapter_sha256"]) == 64
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [], "staging folders must not outlive the run"
    assert not (out.parent / "adapter.failed").exists()


def test_every_example_ends_with_eos_and_only_the_completion_is_trained(tmp_path, tiny_model_dir, spider_dir):
    from harness.models.loading import resolve_model
    from training import _setup

    cfg = load_config(tiny_config(tmp_path, tiny_model_dir, spider_dir))
    resolved = resolve_model(cfg.model)
    model, quant = _setup.setup_model(resolved, cfg.hardware, "cpu")
    tok = _setup.setup_tokenizer(resolved, model)
    examples = _setup.setup_dataset(cfg, tok)
    trainer, *_ = _setup.setup_trainer(
        cfg, model, tok, examples, _setup.setup_peft(cfg.lora), quant, "cpu", tmp_path, ()
    )

    rows = trainer.train_dataset
    assert len(rows) == len(_TRAIN)
    for _ids, labels in zip(rows["input_ids"], rows["labels"]):
        assert labels[-1] == tok.eos_token_id, "the last trained token must be EOS"
        assert tok.eos_token_id in [x for x in labels if x != -100]
        assert labels[0] == -100, "the prompt must not be trained on"
        trained_text = tok.decode([x for x in labels if x != -100])
        assert trained_text.startswith("SELECT") and trained_text.endswith(tok.eos_token)
    assert all(DEV_MARKER not in p for p in examples.prompts)


# --- the divergence guard -----------------------------------------------------------------------


class InjectLoss(TrainerCallback):
    """Overwrites the n-th logged loss with ``values[n]`` (None: leave it), as a diverging run
    would log it; the recipe runs extra callbacks before its guard, so the guard sees these."""

    def __init__(self, values):
        self.values = values
        self.n = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            if self.n < len(self.values) and self.values[self.n] is not None:
                logs["loss"] = self.values[self.n]
            self.n += 1
        return control


def test_nan_loss_is_caught_and_the_earlier_adapter_survives(tmp_path, trained, tiny_model_dir, spider_dir):
    out = tmp_path / "adapter"
    shutil.copytree(trained.output, out)
    before = read_bytes(out)
    config = tiny_config(tmp_path, tiny_model_dir, spider_dir, steps=5)

    with pytest.raises(TrainingFailed) as caught:
        train_from_config(config, callbacks=[InjectLoss([None, float("nan")])])

    result = caught.value.results[0]
    assert result.status == "diverged" and "nan" in result.reason
    assert read_bytes(out) == before, "a diverged run must leave the earlier adapter byte-identical"
    failed = json.loads((tmp_path / "adapter.failed" / "training_summary.json").read_text())
    assert failed["status"] == "diverged" and failed["steps_done"] == 2 and failed["diverged_at_step"] == 2
    assert failed["loss_curve"][1]["loss"] == "nan"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    status = run_status(out)  # the earlier adapter is what is published; the failed attempt rides along
    assert status["published"] and status["status"] == "succeeded"
    assert status["failure"]["status"] == "diverged" and "nan" in status["failure"]["reason"]
    assert (
        status["failure"]["config_fingerprint"]
        == failed["config_fingerprint"]
        != status["config_fingerprint"]
    )


def test_growing_loss_is_caught_and_the_cli_exits_non_zero(
    tmp_path, tiny_model_dir, spider_dir, capsys, monkeypatch
):
    from training import _cli

    config = tiny_config(tmp_path, tiny_model_dir, spider_dir, steps=8)
    losses = [1.0, 1.0, 1.0, 3.5, 4.0, 5.0, 6.0, 7.0]  # above 3 x 1.0 from the 4th log on
    original = _cli.run
    monkeypatch.setattr(
        _cli, "run", lambda cfg, **kw: original(cfg, **{**kw, "callbacks": [InjectLoss(losses)]})
    )

    code = training.main(["--config", str(config)])

    assert code == 1
    assert "diverged" in capsys.readouterr().err
    assert not (tmp_path / "adapter").exists(), "no adapter may appear where a run diverged"
    failed = json.loads((tmp_path / "adapter.failed" / "training_summary.json").read_text())
    assert failed["status"] == "diverged" and failed["steps_done"] == 6


def test_huge_learning_rate_diverges(tmp_path, tiny_model_dir, spider_dir):
    config = tiny_config(tmp_path, tiny_model_dir, spider_dir, steps=12)
    with pytest.raises(TrainingFailed) as caught:
        train_from_config(config, learning_rate=1e4, max_grad_norm=0.0)
    assert caught.value.results[0].status == "diverged"
    assert not (tmp_path / "adapter").exists()


@pytest.mark.parametrize(
    ("losses", "grad_norm", "reference_logs", "diverged"),
    [
        ([], None, 1, False),
        ([2.0, 1.5, 1.0], None, 1, False),
        ([float("nan")], None, 3, True),  # non-finite: at once, even inside the reference window
        ([2.0, float("inf")], None, 1, True),
        ([2.0, 1.9], float("nan"), 1, True),
        ([1.0, 3.5, 3.5], None, 1, False),  # only 2 logs above the bound, patience 3
        ([1.0, 3.5, 3.5, 3.5], None, 1, True),
        ([1.0, 3.5, 2.0, 3.5, 3.5], None, 1, False),  # a dip resets the streak
        ([1.0, 2.9, 2.9, 2.9, 2.9], None, 1, False),  # growth below the bound is not divergence
        (
            [0.5, 2.0, 2.0, 1.8, 1.8, 1.8],
            None,
            1,
            True,
        ),  # one lucky first batch against a single reference...
        (
            [0.5, 2.0, 2.0, 1.8, 1.8, 1.8],
            None,
            3,
            False,
        ),  # ...is no trap with a 3-log mean (1.5 -> bound 4.5)
        ([1.0, 1.0, 1.0, 5.0, 6.0, 7.0], None, 3, True),
    ],
)
def test_divergence_verdict(losses, grad_norm, reference_logs, diverged):
    verdict = divergence(losses, factor=3.0, patience=3, reference_logs=reference_logs, grad_norm=grad_norm)
    assert (verdict is not None) == diverged


# --- configs ----------------------------------------------------------------------------------


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    path = write_config(tmp_path / "bad.toml", "[train]\nlearnig_rate = 2e-4\n[lora]\nrank = 8\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert str(path) in msg
    assert "train.learnig_rate: unknown key; did you mean 'learning_rate'?" in msg
    assert "lora.rank" in msg, "every problem is reported, not just the first"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[train]\nlearning_rate = "fast"\n', "train.learning_rate: expected a number, got str 'fast'"),
        (
            "[train]\nper_device_batch_size = 2.5\n",
            "train.per_device_batch_size: expected a whole number, got float 2.5",
        ),
        ('[lora]\ntarget_modules = "q_proj"\n', "lora.target_modules: expected a list, got str 'q_proj'"),
        ("[lora]\ntarget_modules = []\n", "lora.target_modules: at least one module name is required"),
        (
            '[data]\ntemplate = "schmea"\n',
            "data.template: 'schmea' is not one of paper, schema; did you mean 'schema'?",
        ),
        ("[train]\nlearning_rate = -1.0\n", "train.learning_rate: must be greater than 0, got -1.0"),
        ("[guard]\nloss_factor = 1.0\n", "guard.loss_factor: must be greater than 1, got 1.0"),
        (
            "[checkpoints]\nat = [0.5, 0.25]\n",
            "checkpoints.at: fractions must be sorted and distinct, got [0.5, 0.25]",
        ),
        ("[checkpoints]\nat = [0.5, 1.5]\n", "checkpoints.at[1]: must be less than or equal to 1, got 1.5"),
        ("[checkpoints]\nat = [0.0]\n", "checkpoints.at[0]: must be greater than 0, got 0.0"),
        ("[checkpoints]\nat = []\n", "checkpoints.at: at least one fraction is required"),
        ("[checkpoints]\n", "checkpoints.at: required"),
        ('source = "x.toml"\n', "source: unknown key (set by the loader)"),
        ("train = 3\n", "train: expected a table"),
        (
            '[hardware]\ncpu_quantization = "int4"\n',
            "hardware.cpu_quantization: 'int4' is not one of auto, nf4, fp32",
        ),
    ],
)
def test_bad_values_name_the_key(tmp_path, toml, expected):
    path = write_config(tmp_path / "bad.toml", toml)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value) and expected in str(e.value)


def test_bad_config_exits_2_without_training(tmp_path, capsys):
    path = write_config(tmp_path / "bad.toml", "modle = 'x'\n")
    assert training.main(["--config", str(path)]) == 2
    assert "modle: unknown key; did you mean 'model'?" in capsys.readouterr().err


def test_overrides_take_dotted_or_unique_bare_keys(tmp_path):
    path = write_config(tmp_path / "c.toml", "")
    cfg = load_config(path, learning_rate=2e-2, **{"lora.r": 8}, max_steps=7, output="x/y")
    assert (cfg.train.learning_rate, cfg.lora.r, cfg.train.max_steps, cfg.output) == (2e-2, 8, 7, "x/y")
    assert cfg.name == "c" and load_config(path).output == "adapters/c"
    assert resolve_key("r") == "lora.r"
    assert parse_override('lora.target_modules=["q_proj"]') == ("lora.target_modules", ["q_proj"])
    assert parse_override("model=org/name") == ("model", "org/name")
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        load_config(path, learning_rat=1.0)
    with pytest.raises(ConfigError, match="train.learning_rate: expected a number, got str 'high'"):
        load_config(path, learning_rate="high")


def test_sweep_expands_to_one_run_per_point(tmp_path):
    path = write_config(
        tmp_path / "s.toml", 'output = "runs/s"\n[sweep]\nlearning_rate = [2e-4, 2e-2]\n"lora.r" = [8, 16]\n'
    )
    points = load_sweep(path)
    assert len(points) == 4
    outputs = [p.config.output for p in points]
    assert len(set(outputs)) == 4 and all(o.startswith("runs/s/") for o in outputs)
    assert "runs/s/learning_rate=0.02,r=8" in outputs
    assert {(p.config.train.learning_rate, p.config.lora.r) for p in points} == {
        (2e-4, 8),
        (2e-4, 16),
        (2e-2, 8),
        (2e-2, 16),
    }
    assert len(load_sweep(path, learning_rate=1e-3)) == 2, "an override pins a swept key"
    with pytest.raises(ConfigError, match="holds a sweep"):
        load_config(path)


def test_sweep_with_a_bad_point_fails_before_training(tmp_path):
    path = write_config(tmp_path / "s.toml", '[sweep]\nlearning_rate = [2e-4, "big"]\nlernrate = [1]\n')
    with pytest.raises(ConfigError) as e:
        load_sweep(path)
    assert "sweep.lernrate: unknown key" in str(e.value)


def test_sweep_trains_every_point(tmp_path, tiny_model_dir, spider_dir):
    config = tiny_config(
        tmp_path, tiny_model_dir, spider_dir, output="sweep", steps=1, sweep="[sweep]\nseed = [0, 1]\n"
    )
    results = train_from_config(config)
    assert [r.status for r in results] == ["succeeded", "succeeded"]
    assert {r.output.name for r in results} == {"seed=0", "seed=1"}
    summary = json.loads((tmp_path / "sweep" / "sweep_summary.json").read_text())
    assert [r["status"] for r in summary["runs"]] == ["succeeded", "succeeded"]
    assert results[0].summary["data"]["fingerprint"] != results[1].summary["data"]["fingerprint"]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_configs_load(path):
    points = load_sweep(path)
    for p in points:
        cfg = p.config
        assert cfg.lora.r == 16 and cfg.lora.lora_alpha == 16 and cfg.lora.lora_dropout == 0.05
        assert cfg.lora.target_modules == (
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        )
        assert cfg.lora.bias == "none" and cfg.lora.task_type == "CAUSAL_LM"
        assert cfg.hardware.cuda_quantization == "nf4" and cfg.train.epochs == 1.0


def test_paper_configs_match_the_paper_tables():
    t1 = load_config(REPO / "training/configs/paper_table1.toml")
    t2 = load_config(REPO / "training/configs/paper_table2.toml")
    assert (t1.train.learning_rate, t2.train.learning_rate) == (2e-4, 2e-2)
    for cfg in (t1, t2):
        assert (cfg.train.per_device_batch_size, cfg.train.gradient_accumulation_steps) == (64, 4)
    default = load_config(REPO / "training/configs/default.toml")
    assert (
        default.output == "adapters/default" and default.data.template == "schema" and default.data.shots == 0
    )


# --- small pieces ---------------------------------------------------------------------------------


def test_output_that_is_not_an_adapter_is_refused(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="non-empty folder"):
        check_output(tmp_path / "precious")
    check_output(tmp_path / "absent")


def test_a_killed_runs_leftovers_are_cleaned_and_its_old_adapter_restored(tmp_path):
    from training._output import discard, make_staging

    out = tmp_path / "adapter"
    dead = 999_999_999  # above any pid the kernel hands out
    old = tmp_path / f".adapter.old-{dead}-1"
    old.mkdir()
    (old / "adapter_config.json").write_text("{}")
    (tmp_path / f".adapter.staging-{dead}-2").mkdir()
    staging = make_staging(out)
    assert (out / "adapter_config.json").read_text() == "{}", (
        "killed between the renames: the old adapter comes back"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["adapter", staging.name])
    discard(staging)


def test_dry_run_lists_the_sweep_points(tmp_path, capsys):
    path = write_config(tmp_path / "s.toml", 'output = "runs/s"\n[sweep]\nlearning_rate = [2e-4, 2e-2]\n')
    assert training.main(["--config", str(path), "--dry-run", "--max-steps", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "s[learning_rate=0.0002]: output runs/s/learning_rate=0.0002 (learning_rate=0.0002)",
        "s[learning_rate=0.02]: output runs/s/learning_rate=0.02 (learning_rate=0.02)",
    ]


def test_the_cli_reads_its_config_once(tmp_path, spider_dir, monkeypatch, capsys):
    """The data check and the runs share one reading of the config (and of its sweep)."""
    from training import _cli
    from training._recipe import TrainingResult

    config = tiny_config(
        tmp_path, tmp_path / "model", spider_dir, sweep="[sweep]\nlearning_rate = [1e-3, 2e-3]"
    )
    reads = []
    load_sweep_once = _cli.load_sweep
    monkeypatch.setattr(_cli, "load_sweep", lambda *a, **kw: reads.append(a) or load_sweep_once(*a, **kw))
    trained = []

    def fake_run(cfg, **kw):
        trained.append(cfg.name)
        summary = {"config": {"name": cfg.name}, "status": "succeeded", "final_loss": 1.0}
        return TrainingResult("succeeded", Path(cfg.output), Path(cfg.output) / "s.json", summary)

    monkeypatch.setattr(_cli, "run", fake_run)
    monkeypatch.setattr(_cli, "_write_sweep_summary", lambda points, results: None)
    assert training.main(["--config", str(config)]) == 0
    assert len(reads) == 1 and len(trained) == 2


def test_a_spike_below_patience_is_a_warning_not_a_failure():
    from harness.config.training import TrainingConfig
    from training._summary import loss_warnings

    curve = [
        {"loss": x} for x in (2.9, 2.3, 6.9, 10.2, 11.4, 7.5, 3.6)
    ]  # paper_table2 on CPU, 10 linear-decay steps
    warnings = loss_warnings(curve, TrainingConfig())
    assert len(warnings) == 2 and "above the first" in warnings[0] and "peaked at 11.4" in warnings[1]
    assert loss_warnings([{"loss": 2.0}, {"loss": 1.5}], TrainingConfig()) == []


def test_examples_seen_counts_epochs():
    assert examples_seen(3, 8, 2, 1) == 6
    assert examples_seen(4, 8, 2, 1) == 8
    assert examples_seen(5, 8, 2, 1) == 10  # second epoch
    assert examples_seen(1, 1000, 64, 4) == 256


def test_the_summary_writes_a_key_once_the_run_reaches_it_in_the_order_it_does():
    from harness.config.training import TrainingConfig
    from training._summary import RunSummary

    summary = RunSummary.start(TrainingConfig(name="t", output="adapters/t"), None)
    start = [
        "status",
        "reason",
        "cut_short",
        "warnings",
        "config",
        "config_fingerprint",
        "config_file",
        "sweep_point",
        "seed",
        "output",
        "started_at",
        "load_average_at_start",
        "libraries",
        "python",
    ]
    assert list(summary.to_dict()) == start
    assert summary.to_dict()["reason"] == "did not finish" and summary.to_dict()["sweep_point"] is None
    summary.device = "cpu"
    summary.end("failed", "boom", 1.5)
    summary.checkpoints, summary.checkpoints_discarded = [], []
    assert list(summary.to_dict()) == [
        *start,
        "device",
        "wall_time_s",
        "checkpoints",
        "checkpoints_discarded",
    ]
    assert summary.to_dict()["status"] == "failed" and summary.to_dict()["reason"] == "boom"


def test_overlong_examples_are_dropped_or_truncated_and_counted(tiny_model_dir, spider_dir):
    from harness.models.loading import load_tokenizer, resolve_model
    from training._data import build_examples, pick_max_length

    tok = load_tokenizer(resolve_model(str(tiny_model_dir)))
    common = dict(
        spider_dir=str(spider_dir), template="schema", shots=0, max_examples=0, max_length=0, seed=0
    )
    full = build_examples(tok, length_percentile=100, overlong="drop", **common)
    assert full.stats["dropped_overlong"] == 0 and full.max_length == max(full.lengths)
    dropped = build_examples(tok, length_percentile=50, overlong="drop", **common)
    cut = pick_max_length(full.lengths, 50)
    n_over = sum(1 for n in full.lengths if n > cut)
    assert dropped.max_length == cut and dropped.stats["dropped_overlong"] == n_over > 0
    assert dropped.stats["examples"] == len(_TRAIN) - n_over
    truncated = build_examples(tok, length_percentile=50, overlong="truncate", **common)
    assert truncated.stats["truncated"] == n_over and truncated.stats["examples"] == len(_TRAIN)
    subset = build_examples(tok, length_percentile=100, overlong="drop", **{**common, "max_examples": 3})
    again = build_examples(tok, length_percentile=100, overlong="drop", **{**common, "max_examples": 3})
    assert subset.stats["examples"] == 3 and subset.stats["fingerprint"] == again.stats["fingerprint"]


def test_time_budget_cuts_the_run_short_and_says_so(tmp_path, tiny_model_dir, spider_dir, caplog):
    config = tiny_config(tmp_path, tiny_model_dir, spider_dir, steps=6)
    with caplog.at_level("WARNING", logger="training"):
        result = train_from_config(config, time_budget_s=1e-6)[0]
    s = json.loads((result.output / "training_summary.json").read_text())
    assert result.ok and s["status"] == "succeeded", "the adapter is usable"
    assert s["cut_short"] is True and s["steps_done"] == 1 and s["steps_planned"] == 6
    assert s["examples_seen"] == 2 and s["tokens_seen"] > 0 and isinstance(s["final_loss"], float)
    (warning,) = [w for w in s["warnings"] if "cut short" in w]
    assert "train.time_budget_s" in warning and "stopped after step 1 of 6" in warning
    assert f"final loss {s['final_loss']:.4f}" in warning, "the printed loss is rounded to 4 decimals"
    assert "cut short" in caplog.text
    status = run_status(result.output)
    assert status["cut_short"] is True and status["steps_done"] == 1 and status["status"] == "succeeded"


def test_a_full_run_is_not_cut_short(trained):
    s = trained.summary
    assert s["cut_short"] is False and s["steps_done"] == s["steps_planned"] == 3
    assert not [w for w in s["warnings"] if "cut short" in w]


def test_cpu_4bit_is_used_when_it_works_and_fp32_is_the_announced_fallback(
    tiny_model_dir, monkeypatch, caplog
):
    import bitsandbytes as bnb

    from harness.config.training import HardwareSettings
    from harness.models.loading import resolve_model
    from training import _setup

    resolved = resolve_model(str(tiny_model_dir))
    model, quant = _setup.setup_model(
        resolved, HardwareSettings(device="cpu", cpu_quantization="auto"), "cpu"
    )
    assert quant.used == "nf4" and quant.fallback_reason is None
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())

    def broken(model):
        raise RuntimeError("simulated: no 4-bit CPU kernel")

    monkeypatch.setattr(_setup, "check_backward", broken)
    with caplog.at_level("WARNING", logger="training"):
        model, quant = _setup.setup_model(
            resolved, HardwareSettings(device="cpu", cpu_quantization="auto"), "cpu"
        )
    assert quant.used == "fp32" and quant.requested == "auto" and "simulated" in quant.fallback_reason
    assert "training the unquantized fp32 model instead" in caplog.text
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    with pytest.raises(RuntimeError, match="cpu_quantization = 'nf4'"):
        _setup.setup_model(resolved, HardwareSettings(device="cpu", cpu_quantization="nf4"), "cpu")


# --- checkpoints, the plan, --missing-only --------------------------------------------------------


def peft_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, by relative path (checkpoints included)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def load_peft(base_dir: Path, adapter: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base_dir)), str(adapter))


SWEEP_2x2 = "[checkpoints]\nat = [0.5, 1.0]\n[sweep]\nlearning_rate = [1e-3, 2e-3]\n"


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_model_dir, spider_dir):
    """A 2-point sweep x checkpoints at 0.5 and 1.0, 4 steps each: 4 adapters."""
    tmp = tmp_path_factory.mktemp("swept")
    config = tiny_config(tmp, tiny_model_dir, spider_dir, output="sweep", steps=4, sweep=SWEEP_2x2)
    return config, train_from_config(config)


def test_a_sweep_with_checkpoints_publishes_loadable_peft_folders(swept, tiny_model_dir):
    import torch

    from harness.models.loading import check_adapter_usable

    config, results = swept
    assert [r.status for r in results] == ["succeeded", "succeeded"]
    for r in results:
        final, half = r.output, r.output / "checkpoints" / "0.5"
        assert sorted(p.name for p in (r.output / "checkpoints").iterdir()) == ["0.5"], (
            "fraction 1 is the final adapter"
        )
        models = {}
        for folder in (final, half):
            assert (folder / "adapter_config.json").is_file() and (
                folder / "adapter_model.safetensors"
            ).is_file()
            check_adapter_usable(folder)
            models[folder] = load_peft(tiny_model_dir, folder)
        weights = [
            {n: p.detach().clone() for n, p in m.named_parameters() if "lora_B" in n} for m in models.values()
        ]
        assert any(not torch.equal(weights[0][n], weights[1][n]) for n in weights[0]), (
            "the checkpoint holds earlier weights"
        )

        run = json.loads((final / "training_summary.json").read_text())
        ck = json.loads((half / "training_summary.json").read_text())
        assert ck["status"] == "succeeded" and ck["reason"] is None and ck["cut_short"] is False
        assert ck["checkpoint"]["fraction"] == 0.5 and ck["checkpoint"]["step"] == 2 and ck["steps_done"] == 2
        assert ck["steps_planned"] == 4 and ck["epochs_done"] == 0.5 and ck["fraction_done"] == 0.5
        assert ck["examples_seen"] == 4 and 0 < ck["tokens_seen"] < run["tokens_seen"]
        assert [row["step"] for row in ck["loss_curve"]] == [1, 2] and ck["loss_curve"] == run["loss_curve"][
            :2
        ]
        assert ck["final_loss"] == run["loss_curve"][1]["loss"]
        assert ck["config"] == run["config"] and ck["config_fingerprint"] == run["config_fingerprint"]
        assert ck["output"] == str(half) and ck["adapter_sha256"] != run["adapter_sha256"]
        assert run["checkpoints"] == [
            {"fraction": 0.5, "step": 2, "path": str(half), "saved": True},
            {"fraction": 1.0, "step": 4, "path": str(final), "saved": True},
        ]
        status = run_status(final)
        assert status["status"] == "succeeded" and status["checkpoints"] == [0.5, 1.0] and status["published"]
        assert (
            status["config_fingerprint"] == run["config_fingerprint"]
            and status["final_loss"] == run["final_loss"]
        )
    assert [p.name for p in results[0].output.parent.iterdir() if p.name.startswith(".")] == []

    plan = training_plan(config)
    assert [(p.short_name, p.adapter_dir) for p in plan] == [
        ("lr=1e-3@0.5ep", str(results[0].output / "checkpoints" / "0.5")),
        ("lr=1e-3@1ep", str(results[0].output)),
        ("lr=2e-3@0.5ep", str(results[1].output / "checkpoints" / "0.5")),
        ("lr=2e-3@1ep", str(results[1].output)),
    ]
    assert all((Path(p.adapter_dir) / "adapter_model.safetensors").is_file() for p in plan)


def test_missing_only_trains_nothing_the_second_time(swept, monkeypatch, capsys, caplog):
    from training import _cli

    config, results = swept
    before = {r.output: peft_files(r.output) for r in results}

    def must_not_train(cfg, **kw):
        raise AssertionError(f"--missing-only trained {cfg.name} again")

    monkeypatch.setattr(_cli, "run", must_not_train)
    with caplog.at_level("INFO", logger="training"):
        assert training.main(["--config", str(config), "--missing-only"]) == 0
    out = capsys.readouterr().out
    assert out.count("already trained with this config (skipped)") == 2
    assert caplog.text.count("skipped, already trained with this config") == 2
    assert {r.output: peft_files(r.output) for r in results} == before
    sweep = json.loads((results[0].output.parent / "sweep_summary.json").read_text())
    assert [(r["status"], r["skipped"]) for r in sweep["runs"]] == [("succeeded", True), ("succeeded", True)]


def test_missing_only_retrains_a_changed_config(tmp_path, tiny_model_dir, spider_dir, monkeypatch):
    from training import _cli

    config = tiny_config(tmp_path, tiny_model_dir, spider_dir, steps=1)
    first = train_from_config(config)[0]
    again = train_from_config(config, missing_only=True)[0]
    assert again.skipped and again.summary["adapter_sha256"] == first.summary["adapter_sha256"]

    trained_now = []
    original = _cli.run
    monkeypatch.setattr(_cli, "run", lambda cfg, **kw: trained_now.append(cfg.name) or original(cfg, **kw))
    changed = train_from_config(config, missing_only=True, **{"lora.r": 4})[0]
    assert trained_now == ["tiny"] and not changed.skipped and changed.ok
    assert changed.summary["config_fingerprint"] != first.summary["config_fingerprint"]
    assert json.loads((first.output / "training_summary.json").read_text())["config"]["lora"]["r"] == 4
    assert train_from_config(config, missing_only=True, **{"lora.r": 4})[0].skipped
    assert trained_now == ["tiny"]


def test_missing_only_keeps_an_adapter_it_did_not_train(tmp_path, monkeypatch, caplog):
    from training import _cli

    config = write_config(tmp_path / "c.toml", f'output = "{tmp_path / "adapter"}"\n')
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    monkeypatch.setattr(
        _cli, "run", lambda cfg, **kw: pytest.fail("--missing-only replaced an adapter it did not train")
    )
    with caplog.at_level("WARNING", logger="training"):
        (result,) = train_from_config(config, missing_only=True)
    assert result.skipped and result.ok and "no training_summary.json" in caplog.text
    assert (tmp_path / "adapter" / "adapter_config.json").read_text() == "{}"


def test_a_diverging_point_publishes_no_checkpoint_and_missing_only_skips_it(
    tmp_path, tiny_model_dir, spider_dir, monkeypatch, capsys, caplog
):
    from training import _cli

    sweep = "[checkpoints]\nat = [0.125, 0.5]\n[sweep]\nlearning_rate = [1e-3, 1e4]\n"
    config = tiny_config(tmp_path, tiny_model_dir, spider_dir, output="sweep", steps=8, sweep=sweep)
    write_config(config, config.read_text().replace("[train]\n", "[train]\nmax_grad_norm = 0.0\n"))
    with pytest.raises(TrainingFailed) as caught:
        train_from_config(config)
    good, bad = caught.value.results
    assert good.ok and (good.output / "checkpoints" / "0.125" / "adapter_model.safetensors").is_file()
    assert (good.output / "checkpoints" / "0.5" / "adapter_model.safetensors").is_file()
    assert bad.status == "diverged" and not bad.output.exists(), (
        "a diverged run publishes no adapter and no checkpoint"
    )
    failed = json.loads(
        (tmp_path / "sweep" / "learning_rate=10000.0.failed" / "training_summary.json").read_text()
    )
    assert failed["status"] == "diverged" and 0.125 in failed["checkpoints_discarded"]
    assert not any(c["saved"] for c in failed["checkpoints"])
    assert [p.name for p in (tmp_path / "sweep").iterdir() if p.name.startswith(".")] == []
    status = run_status(bad.output)
    assert status["status"] == "diverged" and not status["published"] and status["checkpoints"] == []
    assert status["checkpoints_discarded"] == failed["checkpoints_discarded"]

    def must_not_train(cfg, **kw):
        raise AssertionError(f"--missing-only trained {cfg.name} again")

    monkeypatch.setattr(_cli, "run", must_not_train)
    capsys.readouterr()
    with caplog.at_level("INFO", logger="training"):
        assert training.main(["--config", str(config), "--missing-only"]) == 1, (
            "a skipped diverged point is a failure"
        )
    err = capsys.readouterr().err
    assert "learning_rate=10000.0]: diverged" in err and "skipped" in err
    assert (
        "skipped: its last attempt with this config diverged" in caplog.text
        and "would diverge again" in caplog.text
    )
    assert training.main(["--config", str(config), "--missing-only", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        "[skip: already trained with this config" in lines[0]
        and "[skip: its last attempt with this config diverged" in lines[1]
    )


class InterruptAt(TrainerCallback):
    """Raises KeyboardInterrupt at the end of optimizer step ``step`` (before the recipe's own
    callbacks see it), after noting what a reader of the output folder would find."""

    def __init__(self, step: int, output: Path):
        self.step, self.output, self.seen = step, output, {}

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            staged = [
                p for p in self.output.parent.iterdir() if p.name.startswith(f".{self.output.name}.staging-")
            ]
            self.seen = {
                "output": peft_files(self.output) if self.output.exists() else None,
                "staged": sorted(
                    q.relative_to(s).as_posix() for s in staged for q in s.rglob("*.safetensors")
                ),
            }
            raise KeyboardInterrupt("simulated kill")
        return control


@pytest.mark.parametrize("earlier", [False, True], ids=["fresh", "over-an-earlier-adapter"])
def test_a_run_killed_between_checkpoints_shows_no_checkpoint(
    earlier, tmp_path, swept, tiny_model_dir, spider_dir
):
    out = tmp_path / "adapter"
    if earlier:
        shutil.copytree(swept[1][0].output, out)
    before = peft_files(out) if earlier else None
    config = tiny_config(
        tmp_path, tiny_model_dir, spider_dir, steps=4, sweep="[checkpoints]\nat = [0.25, 0.5]\n"
    )
    spy = InterruptAt(2, out)
    with pytest.raises(KeyboardInterrupt):
        train_from_config(config, callbacks=[spy])

    assert spy.seen["staged"] == ["checkpoints/0.25/adapter_model.safetensors"], (
        "checkpoint 0.25 was written, in staging"
    )
    assert spy.seen["output"] == before, "while training, the output shows no new checkpoint"
    assert (peft_files(out) if out.exists() else None) == before, "after the kill too"
    assert not (out / "checkpoints" / "0.25").exists() or earlier
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "the staging folder is gone"
    failed = json.loads((tmp_path / "adapter.failed" / "training_summary.json").read_text())
    assert failed["status"] == "failed" and "simulated kill" in failed["reason"]
    assert failed["checkpoints_discarded"] == [0.25] and failed["steps_done"] >= 1 and failed["loss_curve"]


def test_training_plan_names_and_paths(tmp_path):
    from harness.config.training import PlannedAdapter, config_fingerprint, load_sweep

    path = write_config(
        tmp_path / "s.toml",
        'output = "runs/s"\n[train]\nepochs = 2.0\n[checkpoints]\nat = [0.25, 0.5]\n'
        '[sweep]\nlearning_rate = [2e-4, 2e-2]\n"lora.r" = [8]\n',
    )
    plan = training_plan(path)
    assert [p.short_name for p in plan] == [
        "lr=2e-4,r=8@0.5ep",
        "lr=2e-4,r=8@1ep",
        "lr=2e-4,r=8@2ep",
        "lr=2e-2,r=8@0.5ep",
        "lr=2e-2,r=8@1ep",
        "lr=2e-2,r=8@2ep",
    ]
    first = plan[0]
    assert first == PlannedAdapter(
        point_label="learning_rate=0.0002,r=8",
        values=(("train.learning_rate", 2e-4), ("lora.r", 8)),
        fraction=0.25,
        epochs_at=0.5,
        adapter_dir="runs/s/learning_rate=0.0002,r=8/checkpoints/0.25",
        run_output="runs/s/learning_rate=0.0002,r=8",
        failed_summary="runs/s/learning_rate=0.0002,r=8.failed/training_summary.json",
        short_name="lr=2e-4,r=8@0.5ep",
        config_file=str(path),
        config_fingerprint=config_fingerprint(load_sweep(path)[0].config),
        model=load_sweep(path)[0].config.model,
    )
    final = plan[2]
    assert (final.fraction, final.epochs_at, final.adapter_dir, final.is_final) == (
        1.0,
        2.0,
        "runs/s/learning_rate=0.0002,r=8",
        True,
    )
    assert plan[1].adapter_dir.endswith("/checkpoints/0.5") and not plan[1].is_final

    single = write_config(tmp_path / "one.toml", "[checkpoints]\nat = [0.5, 1]\n")
    assert [(p.short_name, p.adapter_dir, p.point_label, p.values) for p in training_plan(single)] == [
        ("@0.5ep", "adapters/one/checkpoints/0.5", "", ()),
        ("@1ep", "adapters/one", "", ()),
    ]
    bare = write_config(
        tmp_path / "bare.toml", '[sweep]\nepochs = [1, 3]\n"data.max_examples" = [100]\nlora_alpha = [32]\n'
    )
    assert [p.short_name for p in training_plan(bare)] == [
        "ep=1,n=100,alpha=32@1ep",
        "ep=3,n=100,alpha=32@3ep",
    ]
    assert run_status(tmp_path / "never-trained") is None


def test_the_config_fingerprint_ignores_where_a_run_is_kept(tmp_path):
    from harness.config.training import config_fingerprint

    path = write_config(tmp_path / "c.toml", "")
    base = config_fingerprint(load_config(path))
    assert base == config_fingerprint(load_config(path, output="elsewhere", name="other"))
    assert base != config_fingerprint(load_config(path, learning_rate=1e-3))
    assert base != config_fingerprint(load_config(path, **{"checkpoints.at": [0.5]}))
    assert len(base) == 64


def test_the_harness_reads_training_configs_without_importing_training():
    import subprocess
    import sys

    code = (
        "import sys; from harness.config.training import training_plan; "
        "plan = training_plan('training/configs/default.toml'); "
        "bad = sorted(m for m in sys.modules if m == 'training' or m.startswith('training.')); "
        "assert not bad, bad; print(len(plan))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_default_config_is_a_fixed_length_run():
    cfg = load_config(REPO / "training/configs/default.toml")
    assert cfg.train.max_steps == 20 and cfg.data.max_examples == 80
    assert (
        cfg.train.per_device_batch_size * cfg.train.gradient_accumulation_steps * cfg.train.max_steps
        == cfg.data.max_examples
    ), "20 steps of 4 examples: one pass over the 80 examples, as train.epochs = 1 says"
    assert cfg.train.time_budget_s > 0, "the budget stays, as a safety stop"
    assert [(p.short_name, p.adapter_dir) for p in training_plan(REPO / "training/configs/default.toml")] == [
        ("@0.5ep", "adapters/default/checkpoints/0.5"),
        ("@1ep", "adapters/default"),
    ]
    shorter = training_plan(REPO / "training/configs/default.toml", max_steps=3)
    assert [p.short_name for p in shorter] == ["@0.075ep", "@0.15ep"], (
        "3 steps of 4 of the 80 examples: 0.15 epochs"
    )


def test_the_kernels_hub_notice_alone_is_dropped(caplog):
    import logging

    from harness.models import noise as _noise

    logger = logging.getLogger(_noise.LOGGER)
    with caplog.at_level("WARNING", logger=_noise.LOGGER):
        logger.warning(
            "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure ...",
            "No module named 'kernels'",
        )
        logger.warning("some other bitsandbytes warning")
    assert [r.getMessage() for r in caplog.records] == ["some other bitsandbytes warning"]
    assert _noise.kernels_hub_notice_dropped()


def test_the_command_line_prints_rounded_losses_and_no_kernels_hub_notice(
    tmp_path, tiny_model_dir, spider_dir
):
    import re
    import subprocess
    import sys

    config = tiny_config(tmp_path, tiny_model_dir, spider_dir, steps=2)
    done = subprocess.run(
        [sys.executable, "-m", "training", "--config", str(config), "time_budget_s=1e-6"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-3000:]
    assert "gemm_4bit_forward" not in text and "kernels-community" not in text
    assert "\x1b[" not in text  # not a terminal: no nested library bars moving the cursor
    assert "\u2588" not in text, "off a terminal the bar is drawn in plain characters"
    losses = re.findall(r"loss[ =:]+'?(\d+\.\d+)", text)
    assert losses and all(len(x.split(".")[1]) <= 4 for x in losses), losses
    assert "cut short" in text and "succeeded ->" in text


def test_seeds_are_a_sweep_axis(tmp_path):
    from harness.config.training import training_plan

    path = write_config(
        tmp_path / "s.toml", 'output = "runs/s"\n[sweep]\nlearning_rate = [2e-4, 2e-3]\nseeds = [0, 1, 2]\n'
    )
    points = load_sweep(path)
    assert sorted((p.config.train.learning_rate, p.config.seed) for p in points) == [
        (lr, s) for lr in (2e-4, 2e-3) for s in (0, 1, 2)
    ]
    assert len({p.config.output for p in points}) == 6  # one run, one folder per seed
    names = {a.short_name for a in training_plan(path)}
    assert "lr=2e-4,seed=1@1ep" in names
