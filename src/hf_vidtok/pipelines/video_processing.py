"""Conversions at the pipeline edge: ``(B, C, T, H, W)`` in [0, 1] -> np / pt / PIL frames."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["postprocess_video", "OUTPUT_TYPES"]

OUTPUT_TYPES = ("np", "pt", "pil")


def postprocess_video(video: torch.Tensor, output_type: str = "np"):
    """Clamp ``video (B, C, T, H, W)`` to [0, 1] and convert it.

    ``"np"`` -> float32 ``(B, T, H, W, C)``; ``"pt"`` -> float ``(B, T, C, H, W)``; ``"pil"`` -> list of B
    lists of T RGB ``PIL.Image``.
    """
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}")
    if video.dim() != 5:
        raise ValueError(f"`video` must be (B, C, T, H, W), got shape {tuple(video.shape)}")
    video = video.float().clamp(0, 1)
    if output_type == "pt":
        return video.permute(0, 2, 1, 3, 4).contiguous()
    frames = video.permute(0, 2, 3, 4, 1).cpu().numpy()
    if output_type == "np":
        return frames
    from PIL import Image

    as_uint8 = (frames * 255).round().astype(np.uint8)
    return [[Image.fromarray(f if f.shape[-1] == 3 else f[..., 0]) for f in clip] for clip in as_uint8]
