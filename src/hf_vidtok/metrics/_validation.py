"""Input checks shared by the metrics (videos are ``(B, C, T, H, W)`` floats in ``[0, 1]``)."""

from __future__ import annotations

import torch

from ..modules.input_checks import check_pixel_values

__all__ = ["check_video", "check_video_pair"]

# Float round-off allowance for the [0, 1] range check (a clamped fp16 decode stays inside it).
_RANGE_TOL = 1e-4


def check_video(name: str, video, *, num_channels: int | None = None, check_range: bool = True) -> torch.Tensor:
    """Validate one ``(B, C, T, H, W)`` float video tensor in ``[0, 1]`` and return it (the models' check,
    :func:`hf_vidtok.modules.input_checks.check_pixel_values`, with a round-off allowance on the range)."""
    shape = None if num_channels is None else (num_channels, None, None, None)
    return check_pixel_values(video, name=name, shape=shape, check_range=check_range, range_tolerance=_RANGE_TOL)


def check_video_pair(pred, target, *, num_channels: int | None = None, check_range: bool = True):
    """Validate ``pred`` and ``target`` and require equal shapes."""
    check_video("pred", pred, num_channels=num_channels, check_range=check_range)
    check_video("target", target, num_channels=num_channels, check_range=check_range)
    if pred.shape != target.shape:
        raise ValueError(f"`pred` and `target` must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    return pred, target
