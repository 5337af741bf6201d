"""Strict YAML config loading, typed overrides and the messages of every kind of user mistake."""

from __future__ import annotations

import re
import typing
import warnings
from pathlib import Path

import pytest
import yaml

from metarl.config import (
    Activation,
    Backend,
    Batching,
    BatchUnit,
    CollectorConfig,
    Config,
    FewShotConfig,
    FisherProduct,
    RLConfig,
    Vectorization,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    inner_step_sizes,
    load_config,
)
from metarl.config.schema import KEY_ORDER
from metarl.core.errors import ConfigError


def _nested(path: str, value: object) -> dict:
    """``"a.b", v`` -> ``{"a": {"b": v}}``."""
    *parents, leaf = path.split(".")
    data: dict = {leaf: value}
    for part in reversed(parents):
        data = {part: data}
    return data


@pytest.mark.parametrize("data", [{}, None])
def test_defaults_load_from_empty_data(data):
    config = config_from_dict(data)
    assert config == Config()
    assert config.meta.batch_size == 40
    assert config.policy.hidden_sizes == [100, 100]
    assert config.env.id == "metarl/Navigation2D-v0"


def test_yaml_file_round_trip(tmp_path):
    config = Config()
    config.seed = 3
    config.policy.hidden_sizes = [16, 8]
    config.policy.activation = "tanh"
    config.inner.first_order = True
    config.meta.gamma = 0.95
    config.trpo.max_kl = 0.02
    config.collector.vectorization = "sync"
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(config)))
    assert load_config(path) == config


def test_partial_yaml_keeps_other_defaults(tmp_path):
    path = tmp_path / "partial.yaml"
    path.write_text("# comment\nmeta:\n  batch_size: 5\n")
    config = load_config(path)
    assert config.meta.batch_size == 5
    assert config.meta.gamma == Config().meta.gamma
    assert config.policy == Config().policy


@pytest.mark.parametrize("path", ["empty.yaml", "comments.yaml"])
def test_empty_yaml_gives_defaults(tmp_path, path):
    file = tmp_path / path
    file.write_text("" if path == "empty.yaml" else "# nothing here\n")
    assert load_config(file) == Config()


def test_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match=r"^meta\.bach_size: unknown key \(did you mean 'batch_size'\?\)"):
        config_from_dict({"meta": {"bach_size": 10}})


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"valid keys here: steps, step_size, first_order"):
        config_from_dict({"inner": {"zzzzz": 1}})


def test_unknown_section_suggests_closest():
    with pytest.raises(ConfigError, match=r"^polcy: unknown key \(did you mean 'policy'\?\)"):
        config_from_dict({"polcy": {"activation": "relu"}})


def test_section_that_is_not_a_mapping_raises():
    with pytest.raises(ConfigError, match=r"expected a mapping of keys to values, got 5"):
        config_from_dict({"meta": 5})


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        ("meta.batch_size", "ten", r"^meta\.batch_size: expected an integer, got 'ten'"),
        ("meta.batch_size", True, r"^meta\.batch_size: expected an integer, got True"),
        ("meta.batch_size", 2.5, r"^meta\.batch_size: expected an integer, got 2\.5"),
        ("meta.gamma", "high", r"^meta\.gamma: expected a number, got 'high'"),
        ("meta.gamma", False, r"^meta\.gamma: expected a number, got False"),
        ("inner.first_order", 1, r"^inner\.first_order: expected true or false, got 1"),
        ("env.id", 3, r"^env\.id: expected a string, got 3"),
        ("policy.hidden_sizes", 8, r"^policy\.hidden_sizes: expected a list \(an integer each\)"),
        ("policy.hidden_sizes", [8, "a"], r"^policy\.hidden_sizes\[1\]: expected an integer, got 'a'"),
        ("policy.hidden_sizes", [8, True], r"^policy\.hidden_sizes\[1\]: expected an integer, got True"),
    ],
)
def test_wrong_type_raises_naming_field_and_value(path, value, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(_nested(path, value))


@pytest.mark.parametrize(("path", "value"), [("inner.step_size", 1), ("meta.gamma", 1), ("trpo.max_kl", 2)])
def test_int_accepted_for_float_and_converted(path, value):
    config = config_from_dict(_nested(path, value))
    section, key = path.split(".")
    got = getattr(getattr(config, section), key)
    assert type(got) is float
    assert got == float(value)


def test_list_of_ints_accepted():
    assert config_from_dict({"policy": {"hidden_sizes": [32, 16, 8]}}).policy.hidden_sizes == [32, 16, 8]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("meta.batch_size", 0),
        ("meta.gamma", 1.5),
        ("meta.gamma", -0.1),
        ("meta.gae_lambda", 1.01),
        ("inner.step_size", -1),
        ("inner.steps", 0),
        ("trpo.max_kl", 0),
        ("trpo.ls_ratio", 1.0),
        ("trpo.ls_ratio", 0.0),
        ("trpo.cg_damping", -1e-3),
        ("policy.activation", "sigmoid"),
        ("policy.init_std", 0.0),
        ("policy.hidden_sizes", []),
        ("policy.hidden_sizes", [8, 0]),
        ("collector.vectorization", "threads"),
        ("meta.episodes_per_task", 1),
        ("evaluation.episodes", 1),
        ("seed", -1),
        ("logging.checkpoint_every", 0),
        ("inner.estimator", "dice"),
    ],
)
def test_out_of_range_raises_with_field_and_value(path, value):
    with pytest.raises(ConfigError, match=rf"^{re.escape(path)}: got {re.escape(repr(value))}") as info:
        config_from_dict(_nested(path, value))
    assert str(info.value).startswith(f"{path}: ")
    assert "expected" in str(info.value)


@pytest.mark.parametrize(
    ("override", "path", "expected"),
    [
        ("meta.iterations=5", ("meta", "iterations"), 5),
        ("policy.hidden_sizes=[8,8]", ("policy", "hidden_sizes"), [8, 8]),
        ("inner.first_order=true", ("inner", "first_order"), True),
        ("meta.gamma=0.9", ("meta", "gamma"), 0.9),
        ("env.id=metarl/HalfCheetahVel-v0", ("env", "id"), "metarl/HalfCheetahVel-v0"),
        ("trpo.max_kl=1.0e-2", ("trpo", "max_kl"), 0.01),
    ],
)
def test_apply_overrides_parses_yaml_values(override, path, expected):
    data = apply_overrides({}, [override])
    section, key = path
    assert data[section][key] == expected
    assert type(data[section][key]) is type(expected)


def test_apply_overrides_keeps_other_keys_and_last_wins():
    data = {"meta": {"batch_size": 3, "gamma": 0.5}}
    out = apply_overrides(data, ["meta.gamma=0.7", "meta.gamma=0.8", "seed=4"])
    assert out is data
    assert data == {"meta": {"batch_size": 3, "gamma": 0.8}, "seed": 4}


def test_override_without_equals_raises():
    with pytest.raises(ConfigError, match=r"^--set: expected section\.key=value, got 'meta\.iterations'"):
        apply_overrides({}, ["meta.iterations"])


def test_override_with_unparseable_value_raises():
    with pytest.raises(ConfigError, match=r"^--set meta\.iterations: cannot parse value '\[1,'"):
        apply_overrides({}, ["meta.iterations=[1,"])


def test_override_below_a_non_section_raises():
    with pytest.raises(ConfigError, match=r"^--set seed\.x: 'seed' is not a section"):
        apply_overrides({"seed": 1}, ["seed.x=1"])


def test_load_config_applies_overrides_then_validates(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("meta:\n  iterations: 100\n")
    assert load_config(path, ["meta.iterations=5"]).meta.iterations == 5
    with pytest.raises(ConfigError, match=r"^meta\.iterations: got 0"):
        load_config(path, ["meta.iterations=0"])
    with pytest.raises(ConfigError, match=r"did you mean 'iterations'"):
        load_config(path, ["meta.iteration=5"])


def test_missing_file_raises_one_line(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"does not exist") as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["meta: [1,", "meta:\n  batch_size: 1\n bad: 2\n", "a: b: c\n"])
def test_malformed_yaml_raises_one_line(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"is not valid YAML") as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seed: 1\nmeta:\n  batch_size: 1\n bad: 2\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML at line \d+"):
        load_config(path)


@pytest.mark.parametrize(("text", "kind"), [("- 1\n- 2\n", "list"), ("42\n", "int"), ("just text\n", "str")])
def test_yaml_that_is_not_a_mapping_raises(tmp_path, text, kind):
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"must hold a mapping of sections, got {kind}$"):
        load_config(path)


def test_exponent_without_dot_is_read_as_a_number() -> None:
    """YAML 1.1 reads ``1e-5`` as a string; float fields accept it anyway."""
    from metarl.config import apply_overrides, config_from_dict

    config = config_from_dict(apply_overrides({}, ["trpo.cg_damping=1e-5"]))
    assert config.trpo.cg_damping == 1e-5


@pytest.mark.parametrize(
    ("override", "text"), [("trpo.max_kl=0.5", "trpo.max_kl = 0.5"), ("inner.step_size=5", "5.0")]
)
def test_suspicious_values_warn_with_the_numbers(override: str, text: str) -> None:
    from metarl.config import apply_overrides, config_from_dict

    with pytest.warns(UserWarning, match=text):
        config_from_dict(apply_overrides({}, [override]))


@pytest.mark.parametrize(
    ("evaluation", "expected"),
    [
        ({}, [0.1, 0.05, 0.05]),
        ({"first_step_size": 0.2}, [0.2, 0.1, 0.1]),
        ({"later_step_size": 0.3}, [0.1, 0.3, 0.3]),
    ],
)
def test_evaluation_step_sizes_default_to_alpha_then_half(evaluation: dict, expected: list[float]) -> None:
    config = config_from_dict({"inner": {"step_size": 0.1}, "evaluation": {"steps": 3, **evaluation}})
    assert config.evaluation_step_sizes == pytest.approx(expected)


def test_lvc_estimator_is_for_meta_rl_maml_only() -> None:
    assert config_from_dict({"inner": {"estimator": "lvc"}}).inner.estimator == "lvc"
    with pytest.raises(ConfigError, match=r"^inner\.estimator: got 'lvc' for a few-shot run; .* 'reinforce'"):
        config_from_dict({"data": {"dataset": "sinusoid"}, "inner": {"estimator": "lvc"}})
    with pytest.raises(ConfigError, match=r"^inner\.estimator: 'lvc' with method 'pretrained'; .*maml"):
        config_from_dict({"method": "pretrained", "inner": {"estimator": "lvc"}})


def test_fewshot_sections_are_strict_and_name_the_method() -> None:
    with pytest.raises(ConfigError, match="data.way: unknown key \\(did you mean 'ways'\\?\\)"):
        config_from_dict({"data": {"dataset": "sinusoid", "way": 5}})
    with pytest.raises(ConfigError, match="data.dataset: got 'mnist', expected one of sinusoid"):
        config_from_dict({"data": {"dataset": "mnist"}})
    with pytest.raises(ConfigError, match="meta.batching: got 'fast'"):
        config_from_dict({"meta": {"batching": "fast"}})
    with pytest.raises(
        ConfigError,
        match="meta.second_order_batch_norm: got 'fused', expected one of auto, pytorch, closed_form",
    ):
        config_from_dict({"meta": {"second_order_batch_norm": "fused"}})
    assert not config_from_dict({}).is_fewshot
    names = {
        (False, False, "all"): "maml",
        (True, False, "all"): "fomaml",
        (False, True, "all"): "metasgd",
        (False, False, "head"): "anil",
        (True, False, "head"): "fo-anil",
    }
    for (first_order, learn, adapt), name in names.items():
        inner = {"first_order": first_order, "learn_step_size": learn, "adapt": adapt}
        config = config_from_dict({"data": {"dataset": "sinusoid", "shots": 10}, "inner": inner})
        assert config.is_fewshot and config.method_name == name and config.evaluation_shots == (10, 1)


REPO = Path(__file__).resolve().parents[2]
STORED = sorted(
    [
        *REPO.glob("experiments/*.yaml"),
        *REPO.glob("experiments/pretrained/*/config.yaml"),
        *REPO.glob("docs/results/**/config.yaml"),
    ]
)


def _leaves(data: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("path", STORED, ids=[str(p.relative_to(REPO)) for p in STORED])
def test_every_shipped_config_loads_and_keeps_its_values(path: Path) -> None:
    """Experiments and the config.yaml of earlier runs load; every key they give comes back unchanged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = load_config(path)
    data = yaml.safe_load(path.read_text()) or {}
    assert isinstance(config, FewShotConfig if (data.get("data") or {}).get("dataset") else RLConfig)
    stored = _leaves(config_to_dict(config))
    for key, value in _leaves(data).items():
        assert stored[key] == value, key
    assert list(config_to_dict(config)) == list(KEY_ORDER)
    assert config_to_dict(config_from_dict(config_to_dict(config))) == config_to_dict(config)


def test_stored_configs_exist() -> None:
    assert len(STORED) > 30


def test_the_dataset_picks_the_schema_and_config_is_the_default_run() -> None:
    assert Config is RLConfig and type(config_from_dict({})) is RLConfig
    fewshot = config_from_dict({"data": {"dataset": "omniglot"}})
    assert type(fewshot) is FewShotConfig and fewshot.is_fewshot and not RLConfig.is_fewshot
    assert not hasattr(fewshot, "trpo") and not hasattr(Config(), "data")
    assert fewshot.collector == CollectorConfig()  # commands set collector.backend on any run
    assert config_to_dict(fewshot)["trpo"] == config_to_dict(Config())["trpo"]
    assert config_to_dict(Config())["data"]["dataset"] == ""


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"data": {"ways": 1}}, r"^data\.ways: got 1, expected an integer >= 2"),
        ({"data": {"dataset": "sinusoid"}, "env": {"idd": 1}}, r"^env\.idd: unknown key \(did you mean 'id'"),
        (
            {"data": {"dataset": "sinusoid"}, "trpo": {"max_kl": "big"}},
            r"^trpo\.max_kl: expected a number, got 'big'$",
        ),
        ({"modle": {}}, r"^modle: unknown key \(did you mean 'model'\?\)"),
    ],
)
def test_sections_the_run_does_not_use_are_still_checked(data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data)


@pytest.mark.parametrize(
    ("data", "section", "match"),
    [
        (
            {"model": {"filters": 32}},
            "model",
            r"^model\.filters = 32: ignored, a meta-RL run \(data\.dataset empty\) does not use the model "
            r"section \(it stays at the default 64\)$",
        ),
        (
            {"data": {"dataset": "sinusoid"}, "trpo": {"max_kl": 0.02}},
            "trpo",
            r"^trpo\.max_kl = 0\.02: ignored, a few-shot run \(data\.dataset 'sinusoid'\) does not use",
        ),
    ],
)
def test_values_off_the_default_in_unused_sections_warn_and_stay_default(
    data: dict, section: str, match: str
) -> None:
    with pytest.warns(UserWarning, match=match):
        config = config_from_dict(data)
    assert config_to_dict(config)[section] == config_to_dict(type(config)())[section]


def test_defaults_of_unused_sections_load_as_earlier_config_yaml_wrote_them() -> None:
    everything = config_to_dict(Config())
    assert type(config_from_dict(everything)) is RLConfig
    fewshot = {**everything, "data": {**everything["data"], "dataset": "sinusoid"}}
    assert config_to_dict(config_from_dict(fewshot)) == fewshot


@pytest.mark.parametrize(
    ("first", "later", "steps", "expected"),
    [(0.1, 0.0, 3, [0.1, 0.05, 0.05]), (0.2, 0.3, 2, [0.2, 0.3]), (0.5, 0.0, 1, [0.5]), (0.5, 0.0, 0, [])],
)
def test_inner_step_sizes_are_alpha_then_later_or_half(first, later, steps, expected) -> None:
    assert inner_step_sizes(first, later, steps) == expected


@pytest.mark.parametrize(
    ("path", "literal"),
    [
        ("policy.activation", Activation),
        ("collector.backend", Backend),
        ("collector.vectorization", Vectorization),
        ("collector.batch_unit", BatchUnit),
        ("meta.batching", Batching),
        ("trpo.fisher_product", FisherProduct),
    ],
)
def test_choice_errors_list_the_literal(path: str, literal: object) -> None:
    allowed = ", ".join(typing.get_args(literal))
    with pytest.raises(ConfigError, match=rf"^{re.escape(path)}: got 'nope', expected one of {allowed}$"):
        config_from_dict(_nested(path, "nope"))


def test_config_md_is_generated_from_the_schema() -> None:
    """docs/CONFIG.md equals what ``python -m metarl.config.docs`` writes (run it after a schema change)."""
    from metarl.config.docs import render

    assert (REPO / "docs" / "CONFIG.md").read_text() == render()


def test_every_key_is_documented() -> None:
    from metarl.config.docs import render

    text = render()
    for key in _leaves(config_to_dict(Config())):
        assert f"| `{key}` |" in text, key


def test_the_dataset_list_of_the_numpy_only_envs_package_is_the_configs() -> None:
    # metarl.envs stays free of the config (and of torch), so it keeps its own tuple; it must be the Literal's
    from metarl.config import Dataset
    from metarl.envs.fewshot import DATASETS

    assert DATASETS == typing.get_args(Dataset)
