"""Tokenizer / generator pairing of the video pipelines: fixed-length (LARP) or adaptive-length (EVATok).

* :func:`check_components`: a :class:`~hf_vidtok.LarpTokenizer` needs a fixed-length generator with
  ``max_seq_len == bottleneck_token_num``; an :class:`~hf_vidtok.EvatokTokenizer` needs a
  variable-length (length-token) generator with the same ``token_levels`` and ``num_blocks``; both
  need the same codebook size.
* :func:`decode_generated`: generated sequences -> videos ``(B, C, T, H, W)`` (each clip decoded with
  its own ``token_counts``) and the visual tokens per sample.
"""

from __future__ import annotations

import torch

from ..models.evatok.modeling_evatok import EvatokTokenizer
from ..models.larp.modeling_larp import LarpTokenizer
from ..models.video_ar.modeling_video_ar import VideoARGenerator
from .pipeline_output import VideoPipelineOutput

__all__ = ["check_components", "decode_generated", "is_adaptive", "pipeline_output"]


def is_adaptive(tokenizer) -> bool:
    """True for an EVATok (adaptive-length) tokenizer."""
    return isinstance(tokenizer, EvatokTokenizer)


def check_components(tokenizer, generator) -> None:
    """Raise ``TypeError`` / ``ValueError`` unless ``tokenizer`` can decode what ``generator`` samples."""
    if not isinstance(tokenizer, (LarpTokenizer, EvatokTokenizer)):
        raise TypeError(f"`tokenizer` must be a LarpTokenizer or an EvatokTokenizer, got {type(tokenizer).__name__}")
    if not isinstance(generator, VideoARGenerator):
        raise TypeError(f"`generator` must be a VideoARGenerator, got {type(generator).__name__}")
    tc, gc = tokenizer.config, generator.config
    if gc.codebook_size != tc.codebook_size:
        raise ValueError(f"generator codebook_size {gc.codebook_size} != tokenizer codebook_size {tc.codebook_size}")
    if is_adaptive(tokenizer):
        if not gc.is_variable_length:
            raise ValueError(
                "an EvatokTokenizer needs a variable-length generator (config.token_levels / num_blocks), "
                "got a fixed-length one"
            )
        if list(gc.token_levels) != list(tc.token_levels) or gc.num_blocks != tc.num_blocks:
            raise ValueError(
                f"generator token_levels {gc.token_levels} / num_blocks {gc.num_blocks} != tokenizer "
                f"token_levels {list(tc.token_levels)} / num_blocks {tc.num_blocks}"
            )
        return
    if gc.is_variable_length:
        raise ValueError("a variable-length (length-token) generator needs an EvatokTokenizer, got a LarpTokenizer")
    if gc.max_seq_len != tc.bottleneck_token_num:
        raise ValueError(
            f"generator max_seq_len {gc.max_seq_len} != tokenizer bottleneck_token_num {tc.bottleneck_token_num}"
        )


def decode_generated(tokenizer, generator, sequences: torch.Tensor):
    """Decode :meth:`VideoARGenerator.generate` output.

    Returns ``(video (B, C, T, H, W) unclamped, num_tokens (B,) long, token_counts (B, num_blocks) | None)``;
    ``num_tokens`` counts visual tokens (length tokens excluded).
    """
    tokenizer = tokenizer.eval()
    if not is_adaptive(tokenizer):
        video = tokenizer.decode(sequences.to(tokenizer.device))
        num_tokens = torch.full((sequences.shape[0],), sequences.shape[1], dtype=torch.long)
        return video, num_tokens, None
    indices, token_counts = generator.parse_generated(sequences)
    token_counts = token_counts.cpu()  # host counts: the tokenizer pads each length group tightly
    video = tokenizer.decode(indices.to(tokenizer.device), token_counts)
    return video, token_counts.sum(1), token_counts


def pipeline_output(frames, num_tokens: torch.Tensor, token_counts: torch.Tensor | None, return_dict: bool = True):
    """:class:`VideoPipelineOutput` with numpy token counts, or ``(frames,)`` when not ``return_dict``."""
    if not return_dict:
        return (frames,)
    counts = None if token_counts is None else token_counts.numpy()
    return VideoPipelineOutput(frames=frames, num_tokens=num_tokens.numpy(), token_counts=counts)
