"""PSNR and SSIM between videos ``(B, C, T, H, W)`` in ``[0, 1]`` (data range 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validation import check_video_pair

__all__ = ["psnr", "ssim", "gaussian_window"]


def _reduce(values: torch.Tensor, reduction: str, name: str = "reduction") -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "none":
        return values
    raise ValueError(f"`{name}` must be 'mean' or 'none', got {reduction!r}")


def psnr(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Peak signal-to-noise ratio with data range 1, as LARP's evaluator computes it.

    The MSE is taken per video (mean over C, T, H, W) and ``PSNR_video = -10 log10(MSE_video)``;
    ``reduction="mean"`` averages the per-video values (the official number), ``"none"``
    returns them as a ``(B,)`` float64 tensor. Identical videos give ``inf``.
    """
    check_video_pair(pred, target)
    mse = (pred.double() - target.double()).pow(2).mean(dim=(1, 2, 3, 4))
    return _reduce(-10.0 * torch.log10(mse), reduction)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64, device=None) -> torch.Tensor:
    """Normalised 1-D gaussian ``(size,)`` centred on the middle tap."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"`window_size` must be a positive odd integer, got {size}")
    if sigma <= 0:
        raise ValueError(f"`sigma` must be > 0, got {sigma}")
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    check_range: bool = True,
) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per frame and channel, averaged per video.

    Standard settings: 11x11 gaussian window with sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``, data
    range 1, statistics over the valid region only (no padding), as ``pytorch_msssim.ssim``
    and ``skimage`` with ``gaussian_weights=True``. Every (channel, frame) plane is one image;
    the SSIM map is averaged over C, T, H, W, which equals LARP's training-time
    ``pytorch_msssim.ssim`` on ``(B*C, T, H, W)``. Computed in float64 for float64 inputs and
    float32 otherwise. Returns the mean over videos or, with ``reduction="none"``, ``(B,)``.
    ``check_range=False`` skips the [0, 1] check (it reads min/max back to the host: a sync in hot loops).
    """
    check_video_pair(pred, target, check_range=check_range)
    b, c, t, h, w = pred.shape
    if h < window_size or w < window_size:
        raise ValueError(f"frames must be at least {window_size}x{window_size} for SSIM, got {h}x{w}")
    dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
    x = pred.to(dtype).reshape(b, c * t, h, w)
    y = target.to(dtype).reshape(b, c * t, h, w)
    g = gaussian_window(window_size, sigma, dtype=dtype, device=pred.device)
    groups = c * t
    kh = g.view(1, 1, window_size, 1).expand(groups, 1, window_size, 1)
    kw = g.view(1, 1, 1, window_size).expand(groups, 1, 1, window_size)

    def blur(z):
        return F.conv2d(F.conv2d(z, kh, groups=groups), kw, groups=groups)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x.pow(2)
    syy = blur(y * y) - mu_y.pow(2)
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = k1**2, k2**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x.pow(2) + mu_y.pow(2) + c1) * (sxx + syy + c2))
    return _reduce(ssim_map.mean(dim=(1, 2, 3)).double(), reduction)
