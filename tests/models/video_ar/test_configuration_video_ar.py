"""VideoARGeneratorConfig: release defaults, vocabulary layout, validation, serialisation."""

import pytest
import torch
from transformers import AutoConfig, AutoModel

from hf_vidtok.models.video_ar import VideoARGenerator, VideoARGeneratorConfig


def test_release_defaults_and_vocabulary_layout():
    c = VideoARGeneratorConfig()
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (1280, 30, 20, 3584)
    assert (c.codebook_size, c.vocab_size, c.output_vocab_size, c.max_seq_len) == (8192, 8192, 8192, 1024)
    assert c.num_cond_tokens == 1 and c.num_positions == 1024 and c.null_class_id == 101
    assert c.separator_token_id is None and len(c.id2label) == 101
    fp = VideoARGeneratorConfig(frame_prediction=True)
    assert fp.num_cond_tokens == 1025 and fp.separator_token_id == 8192 and fp.vocab_size == 8193
    assert fp.output_vocab_size == 8192 and fp.num_positions == 2048


@pytest.mark.parametrize("frame_prediction,expected", [(False, 631_975_680), (True, 633_157_120)])
def test_release_parameter_count(frame_prediction, expected):
    with torch.device("meta"):
        model = VideoARGenerator(VideoARGeneratorConfig(frame_prediction=frame_prediction))
    assert sum(p.numel() for p in model.parameters()) == expected


def test_special_tokens_extend_the_vocabulary():
    c = VideoARGeneratorConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, codebook_size=37, max_seq_len=9,
        num_classes=3, special_token_ids={"len_1": 37, "len_2": 38}, output_vocab_size=39,
    )
    assert c.vocab_size == 39 and c.output_vocab_size == 39 and c.special_token_ids == {"len_1": 37, "len_2": 38}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(hidden_size=30, num_attention_heads=4), "divisible"),
        (dict(num_attention_heads=4, num_key_value_heads=3, hidden_size=32), "num_key_value_heads"),
        (dict(codebook_size=0), "codebook_size"),
        (dict(max_seq_len=0), "max_seq_len"),
        (dict(num_classes=0), "num_classes"),
        (dict(num_cond_tokens=2), "num_cond_tokens"),
        (dict(separator_token_id=5), "separator_token_id"),
        (dict(frame_prediction=True, separator_token_id=3), "separator"),
        (dict(vocab_size=10, codebook_size=37), "vocab_size"),
        (dict(output_vocab_size=40, codebook_size=37), "output_vocab_size"),
        (dict(token_dropout=1.5), "token_dropout"),
        (dict(num_classes=3, id2label={0: "a"}), "id2label"),
    ],
)
def test_invalid_configs_raise(kwargs, match):
    base = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, codebook_size=37, max_seq_len=9)
    with pytest.raises(ValueError, match=match):
        VideoARGeneratorConfig(**{**base, **kwargs})


def test_dict_roundtrip_and_auto_registration(tmp_path):
    c = VideoARGeneratorConfig(
        hidden_size=24, num_hidden_layers=1, num_attention_heads=3, codebook_size=37, max_seq_len=7,
        num_classes=3, id2label={0: "cat", 1: "dog", 2: "eel"},
    )
    c.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, VideoARGeneratorConfig)
    drop = {"_name_or_path"}
    assert {k: v for k, v in loaded.to_dict().items() if k not in drop} == {
        k: v for k, v in c.to_dict().items() if k not in drop
    }
    assert loaded.id2label == {0: "cat", 1: "dog", 2: "eel"}
    assert type(AutoModel.from_config(loaded)) is VideoARGenerator
