"""The experiment config: valid files load; every problem is named by file and dotted key."""

from pathlib import Path

import pytest

from harness.config import ConfigError, load_experiment

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
spider_shots = 3
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.toml"
    p.write_text(text)
    return p


def test_loads_and_applies_defaults(tmp_path):
    cfg = load_experiment(write(tmp_path, GOOD))
    assert [v.name for v in cfg.variants] == ["base", "base-3shot"]
    assert cfg.spider.limit == 5 and cfg.spider.template == "schema"
    assert cfg.mmlu_shots_of(cfg.variants[0]) == 4
    assert cfg.baseline_variant == "base"


def test_the_shipped_experiments_load():
    for path in Path("experiments").glob("*.toml"):
        assert load_experiment(path).variants, path


@pytest.mark.parametrize(
    "text, fragment",
    [
        (GOOD.replace("limit = 5", "limt = 5"), "spider.limt: unknown key; did you mean 'limit'?"),
        (GOOD.replace("limit = 5", 'limit = "five"'), "spider.limit: expected int"),
        (GOOD.replace('model = "org/model"\n\n', 'model = "org/model"\nload = "fp16"\n\n', 1), "variants[0].load: 'fp16' is not one of"),
        (GOOD.replace('name = "base-3shot"', 'name = "base"'), "variants[1].name: 'base' is declared twice"),
        (GOOD.replace('baseline = "base"', 'baseline = "bsae"'), "unknown variant 'bsae'; did you mean 'base'?"),
        (GOOD + '\n[[variants]]\nname = "ft"\nadapter = "nowhere"\n', "variants[2].adapter: no adapter_config.json in 'nowhere'"),
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
    text = GOOD.replace("limit = 5", "limit = -1").replace('model = "org/model"\n\n', 'model = "org/model"\nload = "x"\n\n', 1)
    with pytest.raises(ConfigError) as err:
        load_experiment(write(tmp_path, text))
    assert "spider.limit" in str(err.value) and "variants[0].load" in str(err.value)


def test_overrides(tmp_path):
    cfg = load_experiment(write(tmp_path, GOOD), variants=["base-3shot"], model="other/m", spider_limit=0)
    assert [v.name for v in cfg.variants] == ["base-3shot"]
    assert cfg.variants[0].model == "other/m" and cfg.spider.limit == 0
    with pytest.raises(ConfigError, match="unknown variant 'bse'; did you mean 'base'"):
        load_experiment(write(tmp_path, GOOD), variants=["bse"])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml: experiment config not found"):
        load_experiment(tmp_path / "nope.toml")
