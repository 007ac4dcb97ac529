"""Tests for asr.config: dataclass defaults, from_dict/to_dict, load_config with dotted overrides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from asr.config import (
    DataConfig,
    EncoderConfig,
    FeatureConfig,
    ModelConfig,
    OptimConfig,
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


def test_defaults_build():
    cfg = TrainConfig()
    assert isinstance(cfg.model, ModelConfig) and isinstance(cfg.optim, OptimConfig)
    assert (cfg.model.features.sample_rate, cfg.model.features.num_mels) == (16000, 80)
    assert cfg.model.encoder.cell == "lstm" and cfg.tokenizer.kind == "char"
    assert cfg.epochs == 40
    # default_factory: instances do not share nested configs
    other = TrainConfig()
    other.model.encoder.cell = "gru"
    assert cfg.model.encoder.cell == "lstm"
    assert load_config() == TrainConfig()
    assert from_dict(TrainConfig, {}) == TrainConfig()


@pytest.mark.parametrize("path", CONF_FILES, ids=lambda p: str(p.relative_to(CONF_DIR)))
def test_every_conf_file_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, TrainConfig)
    raw = yaml.safe_load(path.read_text()) or {}
    flat = to_dict(cfg)

    def check(values: dict, built: dict, prefix: str = "") -> None:
        for key, value in values.items():
            if isinstance(value, dict):
                check(value, built[key], f"{prefix}{key}.")
            else:
                assert built[key] == value, f"{prefix}{key}"

    check(raw, flat)  # every value in the file made it into the config
    assert load_config(path, ["epochs=3"]).epochs == 3


def test_an4_values():
    cfg = load_config(CONF_DIR / "an4.yaml")
    assert cfg.model.subsampling.kind == "stack" and cfg.model.subsampling.factor == 3
    assert cfg.data.max_duration == 60.0
    assert cfg.data.num_buckets == DataConfig().num_buckets  # untouched keys keep defaults


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
