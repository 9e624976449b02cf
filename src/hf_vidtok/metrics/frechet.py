"""Fréchet distance between gaussians and streaming feature statistics (float64).

The distance follows the official LARP / TF-GAN code: ``||mu_1 - mu_2||^2 + tr(S_1 + S_2) -
2 tr(sqrt(sqrt(S_1) S_2 sqrt(S_1)))`` with both matrix square roots taken by SVD (singular
values below 1e-10 are left as they are), all in float64.
"""

from __future__ import annotations

import torch

__all__ = ["symmetric_matrix_sqrt", "trace_sqrt_product", "frechet_distance", "FrechetStatistics"]


def symmetric_matrix_sqrt(mat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Square root of a symmetric PSD matrix via SVD: ``U diag(sqrt(s)) V^T`` (TF-GAN style)."""
    u, s, vh = torch.linalg.svd(mat.double())
    si = torch.where(s < eps, s, s.sqrt())
    return (u * si.unsqueeze(0)) @ vh


def trace_sqrt_product(sigma: torch.Tensor, sigma_v: torch.Tensor) -> torch.Tensor:
    """``tr(sqrt(sigma @ sigma_v))`` computed as ``tr(sqrt(sqrt(sigma) sigma_v sqrt(sigma)))``."""
    sqrt_sigma = symmetric_matrix_sqrt(sigma)
    return torch.trace(symmetric_matrix_sqrt(sqrt_sigma @ sigma_v.double() @ sqrt_sigma))


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` in float64."""
    mu1, mu2, sigma1, sigma2 = (torch.as_tensor(t).double() for t in (mu1, mu2, sigma1, sigma2))
    if mu1.dim() != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"`mu1` and `mu2` must be vectors of equal length, got {tuple(mu1.shape)} and {tuple(mu2.shape)}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"`sigma1` and `sigma2` must be ({d}, {d}), got {tuple(sigma1.shape)} and {tuple(sigma2.shape)}")
    diff = (mu1 - mu2).pow(2).sum()
    return float(diff + torch.trace(sigma1) + torch.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


class FrechetStatistics:
    """Running float64 sums of features and their outer products.

    ``update(features (N, D))`` adds a batch; :meth:`mean_cov` returns ``mu = sum f / n`` and the
    **biased** covariance ``sum f f^T / n - mu mu^T`` (as the official code). Sums from several
    processes or runs combine exactly with :meth:`merge` / :meth:`gather` (Accelerate).
    """

    def __init__(self, dim: int):
        if dim < 1:
            raise ValueError(f"`dim` must be >= 1, got {dim}")
        self.dim = dim
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.sum = torch.zeros(self.dim, dtype=torch.float64)
        self.sum_outer = torch.zeros(self.dim, self.dim, dtype=torch.float64)

    def update(self, features: torch.Tensor) -> None:
        if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[1] != self.dim:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"`features` must be a (N, {self.dim}) tensor, got {shape}")
        f = features.detach().to("cpu", torch.float64)
        self.count += f.shape[0]
        self.sum += f.sum(dim=0)
        self.sum_outer += f.T @ f

    def merge(self, other: "FrechetStatistics") -> "FrechetStatistics":
        if other.dim != self.dim:
            raise ValueError(f"cannot merge statistics of dim {other.dim} into dim {self.dim}")
        self.count += other.count
        self.sum += other.sum
        self.sum_outer += other.sum_outer
        return self

    def mean_cov(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.count < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, have {self.count}")
        mu = self.sum / self.count
        return mu, self.sum_outer / self.count - torch.outer(mu, mu)

    def gather(self) -> "FrechetStatistics":
        """Sum the statistics of all processes (in place) with ``accelerate.utils.gather``.

        A no-op in a single process. Every process must call it (collective operation).
        """
        try:
            from accelerate import PartialState
            from accelerate.utils import gather
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("FrechetStatistics.gather needs accelerate: pip install hf_vidtok[train]") from e
        state = PartialState()
        if state.num_processes == 1:
            return self
        device = state.device
        count = torch.tensor([float(self.count)], dtype=torch.float64, device=device)
        self.count = int(round(float(gather(count).sum())))
        self.sum = gather(self.sum.to(device).unsqueeze(0)).sum(dim=0).cpu()
        self.sum_outer = gather(self.sum_outer.to(device).unsqueeze(0)).sum(dim=0).cpu()
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"count": torch.tensor(self.count, dtype=torch.int64), "sum": self.sum.clone(), "sum_outer": self.sum_outer.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if tuple(state["sum"].shape) != (self.dim,) or tuple(state["sum_outer"].shape) != (self.dim, self.dim):
            raise ValueError(f"state does not match dim {self.dim}")
        self.count = int(state["count"])
        self.sum = state["sum"].to(torch.float64).clone()
        self.sum_outer = state["sum_outer"].to(torch.float64).clone()
