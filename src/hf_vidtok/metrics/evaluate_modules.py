"""``evaluate``-compatible wrappers (optional extra: ``pip install hf_vidtok[evaluate]``).

Instantiate the classes directly (``evaluate.load`` needs the Hub)::

    metric = PSNRMetric()
    for real, fake in loader:                      # (B, C, T, H, W) in [0, 1]
        metric.add_batch(predictions=fake, references=real)
    metric.compute()                               # {"psnr": ...}

Videos are reduced to small per-video records as they arrive (a score for PSNR/SSIM/LPIPS, the
I3D feature vectors for FVD), so evaluate's Arrow cache and its multi-process merging
(``num_process`` / ``process_id``) only handle those. For PSNR/SSIM/LPIPS the stored
``predictions`` column holds the per-video score and ``references`` a weight of 1.
"""

from __future__ import annotations

import numpy as np
import torch

try:
    import datasets
    import evaluate
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("hf_vidtok.metrics.evaluate_modules needs `evaluate`: pip install hf_vidtok[evaluate]") from e

from .frechet import FrechetStatistics, frechet_distance
from .fvd import FVD
from .image_quality import psnr, ssim
from .lpips_vgg import LPIPS

__all__ = ["PSNRMetric", "SSIMMetric", "LPIPSMetric", "FVDMetric"]

_CITATION_LARP = "Wang et al., LARP: Tokenizing Videos with a Learned Autoregressive Generative Prior, ICLR 2025."


def _as_video_tensor(name: str, value) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"`{name}` must be a (B, C, T, H, W) tensor or array, got {type(value).__name__}")
    return value


class _PerVideoScoreMetric(evaluate.Metric):
    _name = "score"
    _description = ""

    def _info(self):
        return evaluate.MetricInfo(
            description=self._description,
            citation=_CITATION_LARP,
            inputs_description="predictions, references: (B, C, T, H, W) float videos in [0, 1]",
            features=datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}),
        )

    def _scores(self, predictions: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define _scores (abstract base of the per-video metrics)")

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Score a batch of videos and store the per-video scores."""
        pred = _as_video_tensor("predictions", predictions)
        ref = _as_video_tensor("references", references)
        with torch.no_grad():
            scores = self._scores(pred, ref).double().cpu()
        super().add_batch(predictions=scores.tolist(), references=[1.0] * len(scores), **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one ``(C, T, H, W)`` video pair."""
        self.add_batch(predictions=_as_video_tensor("prediction", prediction)[None], references=_as_video_tensor("reference", reference)[None])

    def _compute(self, predictions, references):
        scores, weights = np.asarray(predictions, dtype=np.float64), np.asarray(references, dtype=np.float64)
        return {self._name: float((scores * weights).sum() / weights.sum())}


class PSNRMetric(_PerVideoScoreMetric):
    """Mean over videos of the per-video PSNR (data range 1), see :func:`hf_vidtok.metrics.psnr`."""

    _name, _description = "psnr", "Mean over videos of -10 log10(MSE_video), data range 1."

    def _scores(self, predictions, references):
        return psnr(predictions, references, reduction="none")


class SSIMMetric(_PerVideoScoreMetric):
    """Mean per-video SSIM (11x11 gaussian, sigma 1.5), see :func:`hf_vidtok.metrics.ssim`."""

    _name, _description = "ssim", "SSIM per frame and channel (11x11 gaussian window, sigma 1.5), averaged."

    def _scores(self, predictions, references):
        return ssim(predictions, references, reduction="none")


class LPIPSMetric(_PerVideoScoreMetric):
    """Mean LPIPS (VGG) over all frames. Pass ``lpips=LPIPS.from_pretrained(...)``."""

    _name, _description = "lpips", "LPIPS (VGG, v0.1) per frame, averaged over frames and videos."

    def __init__(self, lpips: LPIPS, **kwargs):
        if not isinstance(lpips, LPIPS):
            raise TypeError(f"`lpips` must be an hf_vidtok.metrics.LPIPS, got {type(lpips).__name__}")
        self.lpips_model = lpips
        super().__init__(**kwargs)

    def _scores(self, predictions, references):
        device = next(self.lpips_model.parameters()).device
        return self.lpips_model(predictions.to(device), references.to(device))


class FVDMetric(evaluate.Metric):
    """FVD between generated (``predictions``) and real (``references``) videos.

    Pass ``fvd=FVD.from_pretrained(...)``. Each batch is turned into I3D features at once; only
    those (400 floats per video) are stored. ``compute`` returns ``{"fvd": ...}``.
    """

    def __init__(self, fvd: FVD, **kwargs):
        if not isinstance(fvd, FVD):
            raise TypeError(f"`fvd` must be an hf_vidtok.metrics.FVD, got {type(fvd).__name__}")
        self.fvd_model = fvd
        super().__init__(**kwargs)

    def _info(self):
        seq = datasets.Sequence(datasets.Value("float64"))
        return evaluate.MetricInfo(
            description="Frechet distance between I3D (Kinetics-400) logit features of generated and real videos.",
            citation="Unterthiner et al., Towards Accurate Generative Models of Video, 2018. " + _CITATION_LARP,
            inputs_description="predictions (generated), references (real): (B, 3, T, H, W) in [0, 1], T >= 9",
            features=datasets.Features({"predictions": seq, "references": seq}),
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Extract I3D features of a batch of generated and real videos and store them."""
        gen = self.fvd_model.extract_features(_as_video_tensor("predictions", predictions)).double().cpu()
        real = self.fvd_model.extract_features(_as_video_tensor("references", references)).double().cpu()
        if len(gen) != len(real):
            raise ValueError(f"`predictions` and `references` must hold the same number of videos, got {len(gen)} and {len(real)}")
        super().add_batch(predictions=gen.numpy(), references=real.numpy(), **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one generated / real ``(3, T, H, W)`` video pair."""
        self.add_batch(predictions=_as_video_tensor("prediction", prediction)[None], references=_as_video_tensor("reference", reference)[None])

    def _compute(self, predictions, references):
        gen, real = torch.as_tensor(np.asarray(predictions)), torch.as_tensor(np.asarray(references))
        stats_g, stats_r = FrechetStatistics(gen.shape[1]), FrechetStatistics(real.shape[1])
        stats_g.update(gen)
        stats_r.update(real)
        mu_g, sigma_g = stats_g.mean_cov()
        mu_r, sigma_r = stats_r.mean_cov()
        return {"fvd": frechet_distance(mu_g, sigma_g, mu_r, sigma_r)}
