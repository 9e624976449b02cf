import math

import numpy as np
import pytest
import torch

from hf_vidtok.metrics import psnr, ssim
from hf_vidtok.metrics.image_quality import gaussian_window


def _videos(b=2, c=3, t=3, h=17, w=19, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, t, h, w, generator=g, dtype=torch.float64)


# ----------------------------------------------------------------------------------- PSNR
def test_psnr_identical_is_inf():
    x = _videos()
    assert torch.isinf(psnr(x, x))


def test_psnr_constant_offset():
    x = _videos() * 0.8
    assert psnr(x + 0.1, x).item() == pytest.approx(20.0, abs=1e-9)  # mse = 0.01


def test_psnr_is_mean_of_per_video_values():
    x = _videos() * 0.5
    y = x.clone()
    y[0] += 0.1  # mse 1e-2 -> 20 dB
    y[1] += 0.01  # mse 1e-4 -> 40 dB
    per_video = psnr(y, x, reduction="none")
    assert per_video.shape == (2,)
    assert per_video.tolist() == pytest.approx([20.0, 40.0], abs=1e-9)
    assert psnr(y, x).item() == pytest.approx(30.0, abs=1e-9)  # not 10 log10(1 / mean mse)


def test_psnr_hand_computed():
    x = torch.zeros(1, 1, 1, 2, 2)
    y = torch.tensor([0.0, 0.5, 0.0, 0.0]).view(1, 1, 1, 2, 2)  # mse = 0.0625
    assert psnr(y, x).item() == pytest.approx(-10 * math.log10(0.0625), rel=1e-12)


@pytest.mark.parametrize("fn", [psnr, ssim])
def test_bad_inputs(fn):
    x = _videos(h=12, w=12)
    with pytest.raises(ValueError, match="same shape"):
        fn(x, x[:, :, :2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fn(x * 2, x)
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        fn(x[0], x[0])
    with pytest.raises(TypeError, match="torch.Tensor"):
        fn(x.numpy(), x)
    with pytest.raises(TypeError, match="floating-point"):
        fn((x * 255).to(torch.uint8), (x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="reduction"):
        fn(x, x, reduction="sum")


# ----------------------------------------------------------------------------------- SSIM
def _ssim_reference(a: np.ndarray, b: np.ndarray, size=11, sigma=1.5) -> float:
    """Direct per-window SSIM of one grayscale image pair (valid windows), float64."""
    coords = np.arange(size) - (size - 1) / 2
    g = np.exp(-(coords**2) / (2 * sigma**2))
    win = np.outer(g, g)
    win /= win.sum()
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for i in range(a.shape[0] - size + 1):
        for j in range(a.shape[1] - size + 1):
            pa, pb = a[i : i + size, j : j + size], b[i : i + size, j : j + size]
            ma, mb = (win * pa).sum(), (win * pb).sum()
            va = (win * (pa - ma) ** 2).sum()
            vb = (win * (pb - mb) ** 2).sum()
            cov = (win * (pa - ma) * (pb - mb)).sum()
            vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_identical_is_one():
    x = _videos()
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_direct_window_formula():
    x = _videos(b=2, c=2, t=2, h=14, w=13, seed=1)
    y = (x + 0.2 * _videos(b=2, c=2, t=2, h=14, w=13, seed=2)).clamp(0, 1)
    ours = ssim(y, x, reduction="none")
    for bi in range(2):
        ref = np.mean(
            [_ssim_reference(y[bi, c, t].numpy(), x[bi, c, t].numpy()) for c in range(2) for t in range(2)]
        )
        assert ours[bi].item() == pytest.approx(ref, abs=1e-10)


def test_ssim_constant_offset_only_changes_luminance():
    x = torch.full((1, 1, 1, 11, 11), 0.4, dtype=torch.float64)
    x[..., ::2, :] = 0.6
    y = x + 0.1  # same variance and covariance: SSIM = luminance term of the window means
    win = gaussian_window(11, 1.5)
    mu = float((torch.outer(win, win) * x[0, 0, 0]).sum())
    c1 = 0.01**2
    expected = (2 * mu * (mu + 0.1) + c1) / (mu**2 + (mu + 0.1) ** 2 + c1)
    assert ssim(y, x).item() == pytest.approx(expected, abs=1e-12)


def test_ssim_float32_close_to_float64_and_small_frames_rejected():
    x = _videos(seed=3)
    y = (x + 0.05).clamp(0, 1)
    assert ssim(y.float(), x.float()).item() == pytest.approx(ssim(y, x).item(), abs=1e-5)
    small = _videos(h=10, w=20)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(small, small)
    with pytest.raises(ValueError, match="window_size"):
        ssim(x, x, window_size=4)
