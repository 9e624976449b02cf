"""Input checks shared by the metrics (videos are ``(B, C, T, H, W)`` floats in ``[0, 1]``)."""

from __future__ import annotations

import torch

__all__ = ["check_video", "check_video_pair"]

# Float round-off allowance for the [0, 1] range check (a clamped fp16 decode stays inside it).
_RANGE_TOL = 1e-4


def check_video(name: str, video, *, num_channels: int | None = None, check_range: bool = True) -> torch.Tensor:
    """Validate one ``(B, C, T, H, W)`` float video tensor in ``[0, 1]`` and return it."""
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape (B, C, T, H, W), got {type(video).__name__}")
    if video.dim() != 5:
        raise ValueError(f"`{name}` must have shape (B, C, T, H, W) (5 dims), got shape {tuple(video.shape)}")
    if not video.is_floating_point():
        raise TypeError(f"`{name}` must be a floating point tensor in [0, 1], got dtype {video.dtype}")
    if num_channels is not None and video.shape[1] != num_channels:
        raise ValueError(f"`{name}` must have {num_channels} channels in dim 1, got shape {tuple(video.shape)}")
    if video.numel() == 0:
        raise ValueError(f"`{name}` is empty: shape {tuple(video.shape)}")
    if check_range:
        lo, hi = float(video.min()), float(video.max())
        if not (lo >= -_RANGE_TOL and hi <= 1 + _RANGE_TOL):
            raise ValueError(f"`{name}` must hold values in [0, 1], got min {lo:.4g} and max {hi:.4g}")
    return video


def check_video_pair(pred, target, *, num_channels: int | None = None, check_range: bool = True):
    """Validate ``pred`` and ``target`` and require equal shapes."""
    check_video("pred", pred, num_channels=num_channels, check_range=check_range)
    check_video("target", target, num_channels=num_channels, check_range=check_range)
    if pred.shape != target.shape:
        raise ValueError(f"`pred` and `target` must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    return pred, target
