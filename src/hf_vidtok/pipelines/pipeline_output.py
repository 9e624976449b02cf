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
    ``(B, T, C, H, W)`` (``"pt"``), or a list of B lists of T ``PIL.Image`` (``"pil"``)."""

    frames: np.ndarray | torch.Tensor | list
