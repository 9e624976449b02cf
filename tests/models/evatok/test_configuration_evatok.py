import pytest
from transformers import AutoConfig

from hf_vidtok import EvatokTokenizerConfig


def test_defaults_are_the_paper_tokenizer():
    c = EvatokTokenizerConfig()
    assert c.model_type == "evatok_tokenizer"
    assert (c.num_frames, c.image_hw, c.temporal_patch_size, c.patch_size) == (16, (128, 128), 4, 8)
    assert c.num_blocks == 4 and c.patch_grid == (16, 16) and c.patches_per_block == 256
    assert c.token_levels == [32, 64, 128, 256, 512] and c.codebook_size == 16384
    assert c.code_dim == 8 and c.vq_l2_normalized and c.max_tokens == 2048
    assert c.default_assignment == [256, 256, 256, 256]
    assert not any("weight" in key for key in c.to_dict())  # loss weights live in the objective


def test_dict_and_auto_config_round_trip(tmp_path):
    c = EvatokTokenizerConfig(image_size=(16, 24), num_frames=6, patch_size=4, temporal_patch_size=2,
                              token_levels=(1, 4, 16), default_assignment=(16, 1, 4), hidden_size=28,
                              num_attention_heads=2, encoder_layers=1, decoder_layers=2, codebook_size=37)
    assert c.image_hw == (16, 24) and c.patch_grid == (4, 6) and c.num_blocks == 3
    c.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, EvatokTokenizerConfig)
    strip = lambda d: {k: v for k, v in d.items() if k != "_name_or_path"}  # noqa: E731
    assert strip(loaded.to_dict()) == strip(c.to_dict())
    assert EvatokTokenizerConfig.from_dict(c.to_dict()).default_assignment == [16, 1, 4]


def test_default_assignment_falls_back_to_smallest_level():
    c = EvatokTokenizerConfig(image_size=8, num_frames=4, patch_size=4, temporal_patch_size=2, token_levels=(8,),
                              hidden_size=16, num_attention_heads=2)
    assert c.patches_per_block == 4 and c.default_assignment == [8, 8]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_frames=15), "num_frames"),
        (dict(image_size=100), "image_size"),
        (dict(image_size=(128, 128, 3)), "image_size"),
        (dict(hidden_size=770), "hidden_size"),
        (dict(token_levels=(32, 48)), "token_levels"),
        (dict(token_levels=(64, 32)), "token_levels"),
        (dict(token_levels=(32, 1024)), "token_levels"),
        (dict(token_levels=()), "token_levels"),
        (dict(token_levels=512), "token_levels"),
        (dict(default_assignment=(256, 256)), "default_assignment"),
        (dict(default_assignment=(256, 256, 256, 100)), "default_assignment"),
        (dict(align_decoder_layer=9), "align_decoder_layer"),
        (dict(encoder_layers=0), "encoder_layers"),
        (dict(codebook_size=0), "codebook_size"),
        (dict(patch_size=0), "patch_size"),
        (dict(entropy_loss_temperature=0.0), "entropy_loss_temperature"),
        (dict(decoder_query_init="mean"), "decoder_query_init"),
    ],
)
def test_invalid_configs_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        EvatokTokenizerConfig(**kwargs)
