"""Patch embeddings for videos laid out as ``(B, C, T, H, W)``."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PatchEmbed3D", "FramePatchEmbed", "build_patch_embed"]


class PatchEmbed3D(nn.Module):
    """Tubelet embedding: ``Conv3d(kernel = stride = (pt, p, p))``.

    Input ``(B, C, T, H, W)`` -> tokens ``(B, T/pt * H/p * W/p, D)`` in (t, h, w) row-major order
    (t slowest, w fastest). Parameter names (``proj.weight``, ``proj.bias``) match the official
    LARP ``PatchEmbed3D``.
    """

    def __init__(self, in_channels: int, hidden_size: int, patch_size: int, temporal_patch_size: int, bias=True):
        super().__init__()
        self.patch_size = patch_size
        self.temporal_patch_size = temporal_patch_size
        k = (temporal_patch_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_channels, hidden_size, kernel_size=k, stride=k, bias=bias)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.proj(pixel_values)
        return x.flatten(2).transpose(1, 2)


class FramePatchEmbed(nn.Module):
    """Per-frame 2-D patch embedding (temporal patch 1): ``Conv2d`` applied to every frame.

    Input ``(B, C, T, H, W)`` -> tokens ``(B, T * H/p * W/p, D)`` in (t, h, w) order. Parameter
    names (``proj.weight`` of shape ``(D, C, p, p)``) follow timm's ``PatchEmbed``, which the
    official ``VideoPatchEmbed`` uses when ``temporal_patch_size == 1``.
    """

    def __init__(self, in_channels: int, hidden_size: int, patch_size: int, bias=True):
        super().__init__()
        self.patch_size = patch_size
        self.temporal_patch_size = 1
        self.proj = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # A Conv2d applied per frame equals a Conv3d with a (1, p, p) kernel: use conv3d so the
        # frames never need a transpose/copy.
        w = self.proj.weight.unsqueeze(2)
        x = nn.functional.conv3d(pixel_values, w, self.proj.bias, stride=(1, self.patch_size, self.patch_size))
        return x.flatten(2).transpose(1, 2)


def build_patch_embed(in_channels, hidden_size, patch_size, temporal_patch_size, bias=True) -> nn.Module:
    """The official choice: per-frame 2-D embedding for temporal patch 1, tubelets otherwise."""
    if temporal_patch_size == 1:
        return FramePatchEmbed(in_channels, hidden_size, patch_size, bias=bias)
    return PatchEmbed3D(in_channels, hidden_size, patch_size, temporal_patch_size, bias=bias)
