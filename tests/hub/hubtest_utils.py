"""Tiny random hf_vidtok models for the hub and CLI tests (built in the test, nothing downloaded)."""

from __future__ import annotations

import re

import torch

__all__ = [
    "CLASS_NAMES",
    "EVATOK_LEVELS",
    "assert_same_weights",
    "extract_python_snippet",
    "tiny_evatok_router",
    "tiny_evatok_tokenizer",
    "tiny_generator",
    "tiny_pipeline",
    "tiny_tokenizer",
    "TOKENIZER_KWARGS",
]

CLASS_NAMES = ["ApplyEyeMakeup", "Biking", "JumpRope"]
TOKENIZER_KWARGS = dict(
    frame_num=4,
    input_size=16,
    patch_size=8,
    temporal_patch_size=2,
    encoder_hidden_size=32,
    decoder_hidden_size=32,
    encoder_num_heads=2,
    decoder_num_heads=2,
    encoder_depth=1,
    decoder_depth=1,
    bottleneck_token_num=8,
    codebook_size=37,
    bottleneck_dim=8,
    prior_name=None,
)


def tiny_tokenizer(seed: int = 0):
    from hf_vidtok import LarpTokenizer, LarpTokenizerConfig

    torch.manual_seed(seed)
    return LarpTokenizer(LarpTokenizerConfig(**TOKENIZER_KWARGS)).eval()


def tiny_generator(seed: int = 0, frame_prediction: bool = False):
    from hf_vidtok.models.video_ar import VideoARGenerator, VideoARGeneratorConfig

    torch.manual_seed(seed)
    kwargs = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, codebook_size=37, max_seq_len=8)
    if frame_prediction:
        config = VideoARGeneratorConfig(frame_prediction=True, **kwargs)
    else:
        config = VideoARGeneratorConfig(num_classes=len(CLASS_NAMES), id2label=dict(enumerate(CLASS_NAMES)), **kwargs)
    model = VideoARGenerator(config).eval()
    # The official init zeroes the output head (every logit equal); give it weights so samples differ.
    with torch.no_grad():
        model.get_output_embeddings().weight.normal_(0.0, 0.5)
    return model


def tiny_pipeline(seed: int = 0):
    from hf_vidtok.pipelines import ClassToVideoPipeline

    return ClassToVideoPipeline(tokenizer=tiny_tokenizer(seed), generator=tiny_generator(seed))


def extract_python_snippet(card_text: str) -> str:
    """The first ```python block of a model card."""
    match = re.search(r"```python\n(.*?)```", card_text, re.DOTALL)
    if match is None:
        raise AssertionError("the card has no ```python block")
    return match.group(1)


# EVATok: 4 frames of 16 x 16 in 2 temporal blocks, levels 2 / 4 / 8 tokens per block (9 candidate assignments).
EVATOK_LEVELS = (2, 4, 8)


def tiny_evatok_router(seed: int = 0, head_type: str = "quality"):
    from hf_vidtok import EvatokRouter, EvatokRouterConfig

    torch.manual_seed(seed)
    extra = {"quality_metric": "lpips", "quality_mean": 0.3, "quality_std": 0.1} if head_type == "quality" else {"label_w_q": 1.2}
    config = EvatokRouterConfig(
        token_levels=EVATOK_LEVELS, num_blocks=2, image_size=16, num_frames=4, patch_size=8, temporal_patch_size=2,
        hidden_size=32, num_attention_heads=2, num_hidden_layers=1, head_type=head_type, **extra,
    )  # fmt: skip
    router = EvatokRouter(config).eval()
    # The head starts at zero (every assignment scores the same); give it weights so choices differ per clip.
    with torch.no_grad():
        router.head.weight.normal_(0.0, 0.5)
    return router


def tiny_evatok_tokenizer(seed: int = 0, router: bool = False):
    from hf_vidtok import EvatokTokenizer, EvatokTokenizerConfig
    from hf_vidtok.models.evatok.modeling_evatok_router import attach_router

    torch.manual_seed(seed)
    config = EvatokTokenizerConfig(
        image_size=16, num_frames=4, patch_size=4, temporal_patch_size=2, token_levels=EVATOK_LEVELS,
        hidden_size=24, num_attention_heads=2, encoder_layers=1, decoder_layers=1, codebook_size=37, code_dim=4,
        align_decoder_layer=1,
    )  # fmt: skip
    tokenizer = EvatokTokenizer(config).eval()
    if router:
        attach_router(tokenizer, tiny_evatok_router(seed))
    return tokenizer


def assert_same_weights(a, b):
    """Two models hold exactly the same state dict."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
