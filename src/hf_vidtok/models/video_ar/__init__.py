"""Autoregressive video-token generator (LARP AR, class-conditional and frame prediction).

Importing this package registers ``model_type="video_ar"`` with ``AutoConfig`` / ``AutoModel``.
"""

from transformers import AutoConfig, AutoModel

from .configuration_video_ar import LLAMA_ABS_PRESETS, VideoARGeneratorConfig
from .length_tokens_video_ar import (
    LengthTokenLogitsMask,
    LengthTokenSequence,
    build_length_token_sequence,
    parse_length_token_sequence,
)
from .modeling_video_ar import VideoARGenerator, VideoARPreTrainedModel, class_label_ids
from .sampling_video_ar import logits_to_probs, sample_from_logits, top_k_top_p_filtering

__all__ = [
    "LLAMA_ABS_PRESETS",
    "LengthTokenLogitsMask",
    "LengthTokenSequence",
    "build_length_token_sequence",
    "class_label_ids",
    "parse_length_token_sequence",
    "VideoARGeneratorConfig",
    "VideoARGenerator",
    "VideoARPreTrainedModel",
    "logits_to_probs",
    "sample_from_logits",
    "top_k_top_p_filtering",
]

AutoConfig.register(VideoARGeneratorConfig.model_type, VideoARGeneratorConfig, exist_ok=True)
AutoModel.register(VideoARGeneratorConfig, VideoARGenerator, exist_ok=True)
