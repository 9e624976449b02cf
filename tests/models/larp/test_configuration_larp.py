"""LarpTokenizerConfig: architecture only (old run settings still load), aliases, auto_map."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from hf_vidtok import LarpTokenizer, LarpTokenizerConfig
from hf_vidtok.models.larp.configuration_larp import LEGACY_RUN_SETTINGS

TINY = dict(
    frame_num=4, input_size=16, patch_size=8, temporal_patch_size=2, encoder_hidden_size=32, decoder_hidden_size=32,
    encoder_num_heads=2, decoder_num_heads=2, encoder_depth=1, decoder_depth=1, bottleneck_token_num=8,
    codebook_size=37, bottleneck_dim=8, prior_name=None,
)


def test_num_frames_and_image_size_alias_the_official_names():
    config = LarpTokenizerConfig(**{**TINY, "frame_num": 8, "input_size": 32})
    assert (config.num_frames, config.image_size) == (8, 32)
    aliased = LarpTokenizerConfig(**{k: v for k, v in TINY.items() if k not in ("frame_num", "input_size")},
                                  num_frames=8, image_size=32)
    assert (aliased.frame_num, aliased.input_size) == (8, 32)
    stored = aliased.to_dict()
    assert stored["frame_num"] == 8 and stored["input_size"] == 32 and "num_frames" not in stored


def test_old_config_with_run_settings_still_loads(tmp_path, caplog):
    torch.manual_seed(0)
    model = LarpTokenizer(LarpTokenizerConfig(**TINY))
    model.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    old = json.loads(path.read_text())
    old.update(commitment_loss_weight=0.25, entropy_loss_weight=0.1, prior_mix_ss_max_ratio=0.5, prior_n_rounds=2)
    path.write_text(json.dumps(old))
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_info()
    try:
        with caplog.at_level(logging.INFO):
            loaded = LarpTokenizer.from_pretrained(tmp_path)
    finally:
        hf_logging.set_verbosity_warning()
    assert not any(hasattr(loaded.config, k) for k in LEGACY_RUN_SETTINGS)
    assert "ignoring run settings" in caplog.text
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert not set(LEGACY_RUN_SETTINGS) & set(LarpTokenizerConfig(**TINY).to_dict())


def test_saved_config_has_an_auto_map_that_loads_the_model(tmp_path):
    torch.manual_seed(0)
    model = LarpTokenizer(LarpTokenizerConfig(**TINY)).eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {"AutoConfig": "configuration_larp.LarpTokenizerConfig",
                                  "AutoModel": "modeling_larp.LarpTokenizer"}
    assert (tmp_path / "modeling_larp.py").is_file() and (tmp_path / "configuration_larp.py").is_file()
    # the remote-code path a plain transformers user takes (trust_remote_code): the copied files load
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    cls = get_class_from_dynamic_module(config["auto_map"]["AutoModel"], str(tmp_path))
    remote = cls.from_pretrained(tmp_path).eval()
    x = torch.rand(1, 3, 4, 16, 16)
    with torch.no_grad():
        assert torch.equal(remote.encode(x).indices, model.encode(x).indices)


@pytest.mark.parametrize("name", ["configuration_video_ar.VideoARGeneratorConfig"])
def test_video_ar_config_auto_map(tmp_path, name):
    from hf_vidtok import VideoARGeneratorConfig

    VideoARGeneratorConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, codebook_size=37,
                           max_seq_len=8, num_classes=3).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["auto_map"]["AutoConfig"] == name


def test_video_ar_model_auto_map_loads_from_the_copied_files(tmp_path):
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    from hf_vidtok import VideoARGenerator, VideoARGeneratorConfig

    torch.manual_seed(0)
    model = VideoARGenerator(VideoARGeneratorConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                    codebook_size=37, max_seq_len=8, num_classes=3)).eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {"AutoConfig": "configuration_video_ar.VideoARGeneratorConfig",
                                  "AutoModel": "modeling_video_ar.VideoARGenerator"}
    cls = get_class_from_dynamic_module(config["auto_map"]["AutoModel"], str(tmp_path))
    remote = cls.from_pretrained(tmp_path).eval()
    for a, b in zip(model.state_dict().values(), remote.state_dict().values()):
        assert torch.equal(a, b)
    ids = torch.tensor([[3, 5, 7]])
    with torch.no_grad():
        assert torch.equal(model(ids, class_labels=torch.tensor([1])).logits, remote(ids, class_labels=torch.tensor([1])).logits)
