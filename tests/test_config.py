"""The experiment config: valid files load; every problem is named by file and dotted key."""

from pathlib import Path

import pytest

from harness.config.experiment import ConfigError, Overrides, json_schema, load_experiment
from harness.tasks.base import shots_of

GOOD = """
[experiment]
name = "t"
baseline = "base"

[spider]
limit = 5

[[variants]]
name = "base"
model = "org/model"

[[variants]]
name = "base-3shot"
model = "org/model"
spider = { shots = 3 }
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.toml"
    p.write_text(text)
    return p


def test_loads_and_applies_defaults(tmp_path):
    cfg = load_experiment(write(tmp_path, GOOD))
    assert [v.name for v in cfg.variants] == ["base", "base-3shot"]
    assert cfg.spider.limit == 5 and cfg.spider.template == "schema"
    assert shots_of(cfg.mmlu, cfg.variants[0].options("mmlu")) == 4
    assert shots_of(cfg.spider, cfg.variants[1].options("spider")) == 3
    assert cfg.tasks == ("spider", "mmlu")
    assert cfg.baseline_variant == "base"


def test_the_shipped_experiments_load():
    for path in Path("experiments").glob("*.toml"):
        assert load_experiment(path).variants, path


@pytest.mark.parametrize(
    "text, fragment",
    [
        (GOOD.replace("limit = 5", "limt = 5"), "spider.limt: unknown key; did you mean 'limit'?"),
        (
            GOOD.replace("limit = 5", 'limit = "five"'),
            "spider.limit: expected a whole number, got str 'five'",
        ),
        (
            GOOD.replace('model = "org/model"\n\n', 'model = "org/model"\nload = "fp16"\n\n', 1),
            "variants[0].load: 'fp16' is not one of",
        ),
        (GOOD.replace('name = "base-3shot"', 'name = "base"'), "variants[1].name: 'base' is declared twice"),
        (
            GOOD.replace('baseline = "base"', 'baseline = "bsae"'),
            "unknown variant 'bsae'; did you mean 'base'?",
        ),
        (
            GOOD + '\n[[variants]]\nname = "ft"\nadapter = "nowhere"\n',
            "variants[2].adapter: no adapter_config.json in 'nowhere'",
        ),
        (GOOD.replace("[spider]", "[spidr]"), "spidr: unknown key; did you mean 'spider'?"),
        ("x = [", "not valid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as err:
        load_experiment(write(tmp_path, text))
    assert fragment in str(err.value)
    assert str(tmp_path / "exp.toml") in str(err.value)


def test_all_problems_are_reported_together(tmp_path):
    text = GOOD.replace("limit = 5", "limit = -1").replace(
        'model = "org/model"\n\n', 'model = "org/model"\nload = "x"\n\n', 1
    )
    with pytest.raises(ConfigError) as err:
        load_experiment(write(tmp_path, text))
    assert "spider.limit" in str(err.value) and "variants[0].load" in str(err.value)


def test_overrides(tmp_path):
    cfg = load_experiment(
        write(tmp_path, GOOD), Overrides(variants=("base-3shot",), model="other/m", limits={"spider": 0})
    )
    assert [v.name for v in cfg.variants] == ["base-3shot"]
    assert cfg.variants[0].model == "other/m" and cfg.spider.limit == 0
    assert cfg.baseline_variant == "base-3shot"  # the baseline was left out: the first chosen variant
    with pytest.raises(ConfigError, match="unknown variant 'bse'; did you mean 'base'"):
        load_experiment(write(tmp_path, GOOD), Overrides(variants=("bse",)))


def test_limit_and_shots_for_every_task_or_one(tmp_path):
    cfg = load_experiment(write(tmp_path, GOOD), Overrides(limits={"*": 7, "mmlu": 3}, shots={"spider": 2}))
    assert cfg.spider.limit == 7 and cfg.mmlu.limit == 3
    assert [shots_of(cfg.spider, v.options("spider")) for v in cfg.variants] == [2, 2]
    assert [shots_of(cfg.mmlu, v.options("mmlu")) for v in cfg.variants] == [4, 4]
    with pytest.raises(ConfigError, match="--limit spidr=...: unknown task 'spidr'; did you mean 'spider'"):
        load_experiment(write(tmp_path, GOOD), Overrides(limits={"spidr": 1}))


@pytest.mark.parametrize(
    "old, new",
    [
        ("spider_shots = 3", "spider = {shots = N}"),
        ('mmlu_scoring = "generate"', 'mmlu = {scoring = "generate"}'),
        ('benchmarks = ["mmlu"]', "tasks = [...]"),
    ],
)
def test_renamed_variant_keys_say_what_they_became(tmp_path, old, new):
    text = GOOD.replace("spider = { shots = 3 }", old)
    with pytest.raises(ConfigError) as err:
        load_experiment(write(tmp_path, text))
    assert f"variants[1].{old.split(' ')[0]}: renamed; write {new}" in str(err.value)


def test_a_variant_task_must_be_one_of_the_experiments(tmp_path):
    text = GOOD.replace("[spider]", 'tasks = ["spider"]\n\n[spider]').replace(
        "spider = { shots = 3 }", 'spider = { shots = 3 }\ntasks = ["mmlu"]'
    )
    with pytest.raises(
        ConfigError, match=r"variants\[1\].tasks: 'mmlu' is not one of the experiment's tasks"
    ):
        load_experiment(write(tmp_path, text))


def test_the_json_schema_admits_the_shipped_experiments_keys():
    """Every key a shipped experiment writes, at the top and in [experiment], is one the schema has."""
    import tomllib

    schema = json_schema()
    head = schema["properties"]["experiment"]["properties"]
    assert "source" not in schema["properties"] and "source" not in head
    for path in [*Path("experiments").glob("*.toml"), Path("examples/text2sql/experiment.toml")]:
        raw = tomllib.loads(path.read_text())
        assert set(raw) <= set(schema["properties"]), path
        assert set(raw.get("experiment", {})) <= set(head), path


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml: experiment config not found"):
        load_experiment(tmp_path / "nope.toml")


def test_variants_that_repeat_a_measurement_are_found():
    """Shots for Spider leave MMLU unchanged: the 3-shot variants' MMLU repeats the 0-shot one's."""
    cfg = load_experiment("experiments/default.toml")
    assert cfg.same_measurements() == {("base-3shot", "mmlu"): "base", ("ft-3shot", "mmlu"): "ft"}


def test_a_sweep_becomes_variants_that_keep_each_points_model_and_markers(tmp_path):
    from harness.plugins.session import selected_variants as _selected_variants

    train = tmp_path / "sweep.toml"
    train.write_text('name = "s"\noutput = "adapters/s"\n[sweep]\nmodel = ["model-a", "model-b"]\n')
    text = f'[experiment]\nname = "x"\n[[variants]]\nname = "base"\n[[sweeps]]\ntrain_config = "{train}"\n'
    exp = load_experiment(write(tmp_path, text))
    swept = {v.name: v.model for v in exp.variants if v.origin is not None}
    assert swept == {"model=model-a@1ep": "model-a", "model=model-b@1ep": "model-b"}
    # `harness bench -m <marker>` trains what pytest's -m would select with the same marker
    picked = {v.name for v in _selected_variants(exp, "sweep")}
    assert picked == set(swept)
    one = exp.variant("model=model-a@1ep").markers[-2]  # the run's marker
    assert {v.name for v in _selected_variants(exp, one)} == {"model=model-a@1ep"}


def test_a_null_variant_is_declared_and_rescored_at_its_own_batch_size(tmp_path):
    text = (
        GOOD
        + '\n[[variants]]\nname = "base-b1"\nmodel = "org/model"\nnoise_floor = true\n'
        + "mmlu = { batch_size = 1 }\n"
    )
    cfg = load_experiment(write(tmp_path, text))
    assert cfg.noise_floor_variants == ("base-b1",)
    assert cfg.variant("base-b1").options("mmlu").batch_size == 1
    assert ("base-b1", "mmlu") not in cfg.same_measurements()  # another batch size: measured again
    bad = (
        GOOD
        + '\n[[variants]]\nname = "n"\nmodel = "org/model"\nadapter = "a"\n'
        + 'train_config = "exp.toml"\nnoise_floor = true\n'
    )
    with pytest.raises(
        ConfigError, match=r"variants\[2\].noise_floor: a null variant re-scores the baseline"
    ):
        load_experiment(write(tmp_path, bad))
