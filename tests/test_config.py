from pathlib import Path

import pytest

from utils.config import ConfigError, load_config, to_dict
from utils.schema import BaseConfig


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_repo_configs_load_and_inherit():
    cfg, raw = load_config("egs/tta/prepare/synthcaps.json", BaseConfig)
    assert cfg.audio.segment_seconds == 2.56 and cfg.audio.target_frames == 256
    assert cfg.audio.n_mels == 64 and cfg.train.batch_size == 8  # from config/base.json
    assert raw["data"]["datasets"] == ["SynthCaps"]
    assert to_dict(cfg)["audio"]["hop_length"] == 160


def test_overrides_are_typed_and_recorded():
    cfg, raw = load_config("egs/tta/prepare/synthcaps.json", BaseConfig, ["train.batch_size=3", "data.datasets=['A','B']"])
    assert cfg.train.batch_size == 3 and cfg.data.datasets == ["A", "B"]
    assert raw["train"]["batch_size"] == 3


def test_misspelled_key_names_closest(tmp_path):
    child = write(tmp_path / "c.json", '{base_config: "config/base.json", train: {batch_sise: 2}}')
    with pytest.raises(ConfigError, match=r"^train: unknown key 'batch_sise'; did you mean 'batch_size'") as err:
        load_config(child, BaseConfig)  # the key path first, then the files (it read "base.json.train" before)
    assert str(err.value).endswith(f"(config: {child} <- config/base.json)")


def test_wrong_type_names_expected(tmp_path):
    with pytest.raises(ConfigError, match=r"train.batch_size: expected int, got str"):
        load_config("config/base.json", BaseConfig, ["train.batch_size=big"])
    with pytest.raises(ConfigError, match=r"not one of \['no', 'fp16', 'bf16'\]; did you mean 'bf16'"):
        load_config("config/base.json", BaseConfig, ["train.mixed_precision=bf61"])


def test_missing_required_and_cycles(tmp_path):
    write(tmp_path / "a.json", '{base_config: "b.json"}')
    write(tmp_path / "b.json", '{base_config: "a.json"}')
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.json", BaseConfig)
    write(tmp_path / "lone.json", "{seed: 1}")
    with pytest.raises(ConfigError, match="required key 'model_type' is missing"):
        load_config(tmp_path / "lone.json", BaseConfig)


def test_cross_field_check_reported_as_config_error():
    with pytest.raises(ConfigError, match="Nyquist"):
        load_config("config/base.json", BaseConfig, ["audio.fmax=12000"])
    from models.tta.audioldm.task import AudioLDMTask

    with pytest.raises(ConfigError, match="unet has no text input"):
        load_config("config/audioldm.json", AudioLDMTask.Config, ["unet.attention_levels=[false,false,false]"])


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config("config/base.json", BaseConfig, ["train.batch_size"])
