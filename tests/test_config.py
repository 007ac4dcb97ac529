"""Tests for asr.config: YAML files and dotted overrides over the dataclass defaults, coercion, unknown keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from asr.config import (
    EncoderConfig,
    FeatureConfig,
    TokenizerConfig,
    TrainConfig,
    from_dict,
    load_config,
    to_dict,
)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
CONF_FILES = sorted(CONF_DIR.glob("**/*.yaml")) + sorted(CONF_DIR.glob("**/*.yml"))


def test_conf_dir_has_yaml():
    assert CONF_FILES, f"no YAML under {CONF_DIR}"


def test_no_file_and_no_overrides_give_the_dataclass_defaults():
    assert load_config() == TrainConfig()
    assert from_dict(TrainConfig, {}) == TrainConfig()
    # default_factory: instances do not share nested configs
    cfg, other = TrainConfig(), TrainConfig()
    other.model.encoder.cell = "gru"
    other.data.speed_perturb.append(0.9)
    assert cfg.model.encoder.cell == "lstm" and cfg.data.speed_perturb == []


def _leaves(values: dict, prefix: str = "") -> dict:
    """Nested dict -> {dotted key: value}."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@pytest.mark.parametrize("path", CONF_FILES, ids=lambda p: str(p.relative_to(CONF_DIR)))
def test_every_conf_file_loads(path):
    raw = _leaves(yaml.safe_load(path.read_text()) or {})
    built = _leaves(to_dict(load_config(path)))
    defaults = _leaves(to_dict(TrainConfig()))
    for key, value in built.items():
        # every value in the file made it into the config; untouched keys keep their defaults
        assert value == raw.get(key, defaults[key]), key
    assert set(raw) <= set(built)
    assert load_config(path, ["epochs=3"]).epochs == 3


def test_dotted_overrides():
    cfg = load_config(CONF_DIR / "an4.yaml", ["model.encoder.cell=gru", "epochs=3", "tokenizer.kind=bpe"])
    assert cfg.model.encoder.cell == "gru"
    assert cfg.epochs == 3
    assert cfg.tokenizer.kind == "bpe"
    assert cfg.model.encoder.num_layers == 3  # siblings from the file survive
    cfg = load_config(None, [" model.encoder.bidirectional = false", "optim.lr=0.0005", "model.encoder.hidden_size=8"])
    assert cfg.model.encoder.bidirectional is False
    assert cfg.optim.lr == 0.0005
    assert cfg.model.encoder.hidden_size == 8
    # later overrides win; a value may contain "="
    assert load_config(None, ["epochs=3", "epochs=5"]).epochs == 5
    assert load_config(None, ["tokenizer.kind=a=b"]).tokenizer.kind == "a=b"


@pytest.mark.parametrize(
    "override, name",
    [
        ("epoch=3", "epoch"),
        ("model.encoder.cells=gru", "model.encoder.cells"),
        ("model.encoders.cell=gru", "model.encoders"),
        ("optim.schedule.kind=cosine", "optim.schedule"),
    ],
)
def test_unknown_key_names_full_dotted_key(override, name):
    with pytest.raises(ValueError) as err:
        load_config(CONF_DIR / "an4.yaml", [override])
    assert f"'{name}'" in str(err.value)


def test_unknown_key_in_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  encoder:\n    hidden: 12\n")
    with pytest.raises(ValueError, match=r"'model\.encoder\.hidden'"):
        load_config(path)


@pytest.mark.parametrize(
    "override, name",
    [
        ("epochs=abc", "epochs"),
        ("epochs=2.5", "epochs"),
        ("epochs=true", "epochs"),  # bool is not an int here
        ("optim.lr=fast", "optim.lr"),
        ("model.encoder.bidirectional=1", "model.encoder.bidirectional"),
        ("tokenizer.kind=5", "tokenizer.kind"),
        ("model.features.num_mels=[80]", "model.features.num_mels"),
    ],
)
def test_wrong_type_raises(override, name):
    with pytest.raises(ValueError) as err:
        load_config(None, [override])
    assert name in str(err.value)


def test_section_must_be_mapping():
    with pytest.raises(ValueError, match="model"):
        from_dict(TrainConfig, {"model": 3})
    with pytest.raises(ValueError):
        from_dict(TrainConfig, ["epochs", 3])


def test_override_without_equals_raises():
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["epochs"])


def test_int_accepted_for_float():
    cfg = load_config(None, ["optim.lr=1", "data.max_duration=60", "model.features.win_ms=25"])
    for value, expected in ((cfg.optim.lr, 1.0), (cfg.data.max_duration, 60.0), (cfg.model.features.win_ms, 25.0)):
        assert type(value) is float and value == expected
    built = from_dict(FeatureConfig, {"hop_ms": 10})
    assert type(built.hop_ms) is float
    with pytest.raises(ValueError):
        from_dict(FeatureConfig, {"hop_ms": True})  # bool is not a number here


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("model.encoder.bidirectional=false", "model.encoder.bidirectional", False),
        ("model.encoder.bidirectional=yes", "model.encoder.bidirectional", True),  # YAML 1.1 booleans
        ("optim.lr=2e-4", "optim.lr", 2e-4),  # a string to YAML 1.1, a float to the config
        ("optim.grad_clip=5", "optim.grad_clip", 5.0),
        ("data.speed_perturb=[0.9, 1.1]", "data.speed_perturb", [0.9, 1.1]),
        ("data.speed_perturb=[1, 2]", "data.speed_perturb", [1.0, 2.0]),
        ("data.speed_perturb=[]", "data.speed_perturb", []),
        ("device=cpu", "device", "cpu"),
    ],
)
def test_yaml_values_coerced_to_field_types(override, key, expected):
    value = load_config(None, [override])
    for part in key.split("."):
        value = getattr(value, part)
    assert value == expected and type(value) is type(expected)
    if isinstance(expected, list):
        assert all(type(v) is float for v in value)


@pytest.mark.parametrize(
    "override, name",
    [
        ("data.speed_perturb=0.9", "data.speed_perturb"),
        ("data.speed_perturb=[0.9, fast]", "data.speed_perturb[1]"),
        ("tokenizer.kind=null", "tokenizer.kind"),
        ("model.encoder=lstm", "model.encoder"),
    ],
)
def test_wrong_yaml_shape_names_the_key(override, name):
    with pytest.raises(ValueError) as err:
        load_config(None, [override])
    assert name in str(err.value)


def test_to_dict_from_dict_roundtrip():
    for cfg in (
        TrainConfig(),
        load_config(CONF_DIR / "an4.yaml", ["model.encoder.cell=rnn", "optim.lr=0.01", "seed=7"]),
    ):
        values = to_dict(cfg)
        assert isinstance(values["model"]["encoder"], dict)
        assert yaml.safe_load(yaml.safe_dump(values)) == values  # plain YAML-able data
        back = from_dict(TrainConfig, values)
        assert back == cfg
        assert to_dict(back) == values
    enc = EncoderConfig(cell="gru", projection_size=128)
    assert from_dict(EncoderConfig, dataclasses.asdict(enc)) == enc
    assert from_dict(TokenizerConfig, to_dict(TokenizerConfig(kind="bpe", vocab_size=40))).vocab_size == 40


# ---------------------------------------------------------------- YAML and override edge cases


def test_exponent_float_override():
    assert load_config(None, ["optim.lr=1e-3"]).optim.lr == 1e-3


def test_override_below_scalar_is_value_error():
    with pytest.raises(ValueError, match="epochs"):
        load_config(CONF_DIR / "an4.yaml", ["epochs.value=3"])


def test_override_into_empty_section(tmp_path):
    path = tmp_path / "empty_section.yaml"
    path.write_text("model:\nepochs: 2\n")
    assert load_config(path, ["model.encoder.cell=gru"]).model.encoder.cell == "gru"
