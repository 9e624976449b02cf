"""Output dataclass of the video pipelines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.utils import BaseOutput

__all__ = ["VideoPipelineOutput"]


@dataclass
class VideoPipelineOutput(BaseOutput):
    """``frames``: np ``(B, T, H, W, C)`` floats in [0, 1] (``output_type="np"``), torch
    ``(B, T, C, H, W)`` (``"pt"``), or a list of B lists of T ``PIL.Image`` (``"pil"``).

    ``num_tokens``: np int64 ``(B,)`` visual tokens each video was generated from (length tokens not
    counted; fixed for LARP). ``token_counts``: np int64 ``(B, num_blocks)`` tokens per temporal block
    (adaptive-length EVATok tokenizers only, else None)."""

    frames: np.ndarray | torch.Tensor | list
    num_tokens: np.ndarray | None = None
    token_counts: np.ndarray | None = None
