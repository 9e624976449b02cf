"""Tiny random hf_vidtok models for the hub and CLI tests (built in the test, nothing downloaded)."""

from __future__ import annotations

import re

import torch

__all__ = [
    "CLASS_NAMES",
    "extract_python_snippet",
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
