"""Fréchet Video Distance with an I3D feature extractor and streaming float64 statistics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._validation import check_video
from .frechet import FrechetStatistics, frechet_distance
from .i3d import I3D_WEIGHTS_NAME, InceptionI3D

__all__ = ["FVD", "preprocess_for_i3d"]


def preprocess_for_i3d(videos: torch.Tensor, size: int | None = 224) -> torch.Tensor:
    """``(B, 3, T, H, W)`` in ``[0, 1]`` -> frames resized to ``size x size`` (bilinear,
    ``align_corners=False``, no antialias; skipped when ``size`` is None or already matching)
    and mapped to ``[-1, 1]`` by ``(x - 0.5) * 2``: the StyleGAN-V protocol that LARP uses."""
    check_video("videos", videos, num_channels=3)
    b, c, t, h, w = videos.shape
    x = videos
    if size is not None and (h, w) != (size, size):
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        frames = F.interpolate(frames.float(), size=(size, size), mode="bilinear", align_corners=False)
        x = frames.reshape(b, t, c, size, size).transpose(1, 2)
    return (x - 0.5) * 2


class FVD(nn.Module):
    """Accumulates I3D features of real and generated videos and returns their FVD.

    ``update(videos, real=True|False)`` takes ``(B, 3, T, H, W)`` in ``[0, 1]`` (``T >= 9``);
    features are the I3D logits averaged over time (400-d), accumulated as float64 raw moments.
    ``gather()`` sums the moments of all Accelerate processes; ``compute()`` returns the
    Fréchet distance (biased covariances). ``update_features`` accepts precomputed features.
    """

    def __init__(self, i3d: InceptionI3D | None = None, resize: int | None = 224):
        super().__init__()
        self.i3d = i3d if i3d is not None else InceptionI3D()
        self.resize = resize
        dim = self.i3d.feature_dim
        self.real_stats = FrechetStatistics(dim)
        self.generated_stats = FrechetStatistics(dim)

    @classmethod
    def from_pretrained(cls, path_or_repo_id, filename: str = I3D_WEIGHTS_NAME, resize: int | None = 224, **kwargs) -> "FVD":
        """Build with :meth:`InceptionI3D.from_pretrained` (local file/folder, or a Hub repo id)."""
        return cls(InceptionI3D.from_pretrained(path_or_repo_id, filename, **kwargs), resize=resize)

    @torch.no_grad()
    def extract_features(self, videos: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` in ``[0, 1]`` -> ``(B, D)`` float32 I3D features."""
        param = next(self.i3d.parameters())
        x = preprocess_for_i3d(videos, self.resize).to(param.device, param.dtype)
        return self.i3d(x).float()

    def update(self, videos: torch.Tensor, real: bool) -> torch.Tensor:
        """Add a batch to the real or generated statistics; returns its features."""
        feats = self.extract_features(videos)
        self.update_features(feats, real=real)
        return feats

    def update_features(self, features: torch.Tensor, real: bool) -> None:
        (self.real_stats if real else self.generated_stats).update(features)

    def gather(self) -> "FVD":
        """Sum both statistics over all processes (Accelerate); call it on every process."""
        self.real_stats.gather()
        self.generated_stats.gather()
        return self

    def compute(self) -> float:
        mu_r, sigma_r = self.real_stats.mean_cov()
        mu_g, sigma_g = self.generated_stats.mean_cov()
        return frechet_distance(mu_g, sigma_g, mu_r, sigma_r)

    def reset(self, real: bool = True, generated: bool = True) -> None:
        """Clear statistics (keep ``real=False`` to reuse fixed real statistics)."""
        if real:
            self.real_stats.reset()
        if generated:
            self.generated_stats.reset()

    def stats_state_dict(self) -> dict[str, torch.Tensor]:
        """Raw moments of both sets (to save and merge partial runs)."""
        sd = {f"real.{k}": v for k, v in self.real_stats.state_dict().items()}
        sd.update({f"generated.{k}": v for k, v in self.generated_stats.state_dict().items()})
        return sd

    def load_stats_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.real_stats.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("real.")})
        self.generated_stats.load_state_dict({k[10:]: v for k, v in state.items() if k.startswith("generated.")})

    def forward(self, videos: torch.Tensor, real: bool) -> torch.Tensor:
        return self.update(videos, real)

