"""EVATok proxy reward (paper Sec. 3.2, App. H Eq. 5-7), label selection, baselines (Sec. 4.5) and Eq. 8.

R(x, a) = w_q * Q(x, a) - w_l * L~(a),   w_l = 2 - w_q by default,

* Q = sign * (s(x, a) - mean_s) / std_s: the z-scored quality metric s, signed so that higher Q is better
  (``sign = -1`` for ``lpips`` and ``mse``, ``+1`` for ``ssim`` and ``psnr``). The paper's Eq. 6 as extracted
  has no minus sign for LPIPS; a larger reward must mean better quality, so the sign is corrected here.
  mean_s / std_s are taken over random (clip, assignment) pairs (:func:`compute_reward_stats`).
* L~ = (L(a) - mean_L) / std_L with mean/std of the total length over the candidate set (uniform draw):
  793.6 / 349.14 for the paper's 5 levels x 4 blocks.

Inputs are ``(N, A)`` score matrices in class order (numpy or torch); results are torch tensors.
Standard deviations are population ones (``ddof = 0``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import torch

from .assignments import assignment_lengths, normalize_levels, uniform_class_ids

__all__ = [
    "HIGHER_IS_BETTER",
    "RewardStats",
    "best_assignment",
    "best_uniform_assignment",
    "compute_reward_stats",
    "length_stats",
    "proxy_reward",
    "quality_scores",
    "reward_percentile",
    "threshold_assignment",
    "uniform_assignment",
]

HIGHER_IS_BETTER = {"lpips": False, "mse": False, "ssim": True, "psnr": True}


def _metric_sign(quality_metric: str) -> float:
    if quality_metric not in HIGHER_IS_BETTER:
        raise ValueError(f"`quality_metric` must be one of {tuple(HIGHER_IS_BETTER)}, got {quality_metric!r}")
    return 1.0 if HIGHER_IS_BETTER[quality_metric] else -1.0


def _as_scores(scores, num_classes: Optional[int] = None, name: str = "scores") -> torch.Tensor:
    t = torch.as_tensor(scores)
    if not (t.dtype.is_floating_point):
        raise TypeError(f"`{name}` must be a float array of shape (N, A), got dtype {t.dtype}")
    if t.dim() != 2 or (num_classes is not None and t.shape[1] != num_classes):
        want = "(N, A)" if num_classes is None else f"(N, {num_classes})"
        raise ValueError(f"`{name}` must have shape {want}, got {tuple(t.shape)}")
    return t.double()


_LENGTH_STATS: dict = {}


def length_stats(levels, num_blocks: int) -> tuple:
    """(mean, std) of the total token count over all candidates: (793.6, 349.14) for the paper's set.

    Memoised per (levels, num_blocks): the values are Python floats, computed once on the CPU, so code traced by
    ``torch.compile`` (the router's selection) reads constants instead of reducing a tensor."""
    key = (tuple(normalize_levels(levels)), int(num_blocks))
    if key not in _LENGTH_STATS:
        with torch.device("cpu"):  # also inside a meta-device context (``from_pretrained`` builds models there)
            lengths = assignment_lengths(levels, num_blocks).double()
            _LENGTH_STATS[key] = (float(lengths.mean()), float(lengths.std(unbiased=False)))
    return _LENGTH_STATS[key]


@dataclass(frozen=True)
class RewardStats:
    """Z-score statistics of the proxy reward (JSON-serialisable with :meth:`to_dict`)."""

    levels: tuple
    num_blocks: int
    quality_metric: str
    quality_mean: float
    quality_std: float
    length_mean: float
    length_std: float

    def __post_init__(self):
        object.__setattr__(self, "levels", normalize_levels(self.levels))
        _metric_sign(self.quality_metric)
        if not (self.quality_std > 0 and self.length_std > 0):
            raise ValueError(
                f"RewardStats needs positive standard deviations, got quality_std={self.quality_std}, "
                f"length_std={self.length_std} (a single level, or constant scores?)"
            )

    @property
    def num_classes(self) -> int:
        return len(self.levels) ** self.num_blocks

    @property
    def lengths(self) -> torch.Tensor:
        """(A,) long total token counts in class order."""
        return assignment_lengths(self.levels, self.num_blocks)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["levels"] = list(self.levels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RewardStats":
        return cls(**{k: (tuple(v) if k == "levels" else v) for k, v in d.items()})


def compute_reward_stats(
    scores,
    levels,
    num_blocks: int,
    quality_metric: str = "lpips",
    num_samples: Optional[int] = None,
    seed: int = 0,
) -> RewardStats:
    """Statistics for the reward from a score matrix ``scores`` (N, A) of ``quality_metric``.

    Quality mean/std over ``num_samples`` (clip, assignment) pairs drawn uniformly with replacement (seeded),
    or over all N x A pairs when ``num_samples`` is None; length mean/std from :func:`length_stats`.
    """
    levels = normalize_levels(levels)
    s = _as_scores(scores, len(levels) ** num_blocks)
    if not torch.isfinite(s).all():
        raise ValueError("`scores` contains NaN or infinite values")
    if num_samples is not None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
            raise ValueError(f"`num_samples` must be None or an int >= 2, got {num_samples!r}")
        g = torch.Generator().manual_seed(seed)
        flat = s.reshape(-1)
        s = flat[torch.randint(flat.numel(), (num_samples,), generator=g)]
    lm, ls = length_stats(levels, num_blocks)
    return RewardStats(
        levels=levels,
        num_blocks=num_blocks,
        quality_metric=quality_metric,
        quality_mean=float(s.mean()),
        quality_std=float(s.std(unbiased=False)),
        length_mean=lm,
        length_std=ls,
    )


def quality_scores(scores, stats: RewardStats) -> torch.Tensor:
    """Q (N, A) float64: signed z-score of ``stats.quality_metric`` (higher = better quality)."""
    s = _as_scores(scores, stats.num_classes)
    return _metric_sign(stats.quality_metric) * (s - stats.quality_mean) / stats.quality_std


def _weights(w_q: float, w_l: Optional[float]) -> tuple:
    if isinstance(w_q, bool) or not isinstance(w_q, (int, float)) or not math.isfinite(w_q):
        raise TypeError(f"`w_q` must be a finite number, got {w_q!r}")
    w_l = 2.0 - float(w_q) if w_l is None else w_l
    if isinstance(w_l, bool) or not isinstance(w_l, (int, float)) or not math.isfinite(w_l):
        raise TypeError(f"`w_l` must be a finite number or None, got {w_l!r}")
    return float(w_q), float(w_l)


def proxy_reward(scores, stats: RewardStats, w_q: float = 1.2, w_l: Optional[float] = None) -> torch.Tensor:
    """R (N, A) float64 = w_q * Q - w_l * L~ (``w_l`` defaults to ``2 - w_q``)."""
    w_q, w_l = _weights(w_q, w_l)
    lengths = (stats.lengths.double() - stats.length_mean) / stats.length_std
    return w_q * quality_scores(scores, stats) - w_l * lengths


def _argmax_ties_shorter(values: torch.Tensor, lengths: torch.Tensor, candidates: Optional[torch.Tensor] = None):
    """Row-wise argmax of ``values`` (N, A); exact ties go to the shorter assignment, then the lower class id."""
    if candidates is not None:
        values = values.masked_fill(~candidates, -math.inf)
    best = values.max(dim=1, keepdim=True).values
    key = torch.where(values == best, lengths.to(values), torch.full_like(values, math.inf))
    return key.argmin(dim=1)  # first minimum: lowest class id among equally short ties


def best_assignment(reward, lengths=None, stats: Optional[RewardStats] = None) -> torch.Tensor:
    """Max-proxy-reward class per clip (N,) long; ties -> shorter. Give ``lengths`` (A,) or ``stats``."""
    r = _as_scores(reward, name="reward")
    if lengths is None:
        if stats is None:
            raise ValueError("best_assignment needs `lengths` (A,) or `stats`")
        lengths = stats.lengths
    lengths = torch.as_tensor(lengths)
    if lengths.shape != (r.shape[1],):
        raise ValueError(f"`lengths` must have shape ({r.shape[1]},), got {tuple(lengths.shape)}")
    return _argmax_ties_shorter(r, lengths)


def uniform_assignment(level: int, levels, num_blocks: int) -> int:
    """Class id of the uniform assignment (level, ..., level)."""
    levels = normalize_levels(levels)
    if level not in levels:
        raise ValueError(f"`level` must be one of {levels}, got {level!r}")
    return int(uniform_class_ids(levels, num_blocks)[levels.index(level)])


def best_uniform_assignment(reward, stats: RewardStats) -> torch.Tensor:
    """Per clip the max-reward assignment among the m uniform ones (App. L "best-uniform"): (N,) long class ids."""
    r = _as_scores(reward, stats.num_classes, name="reward")
    uni = uniform_class_ids(stats.levels, stats.num_blocks)
    candidates = torch.zeros(stats.num_classes, dtype=torch.bool)
    candidates[uni] = True
    return _argmax_ties_shorter(r, stats.lengths, candidates.expand_as(r))


def threshold_assignment(scores, threshold: float, levels, num_blocks: int, quality_metric: str = "lpips"):
    """ElasticTok-style baseline (Sec. 4.5): per clip the shortest assignment whose score meets ``threshold``
    (``lpips``/``mse`` <= threshold, ``ssim``/``psnr`` >= threshold); among equally short qualifying assignments
    the best-scoring one (the paper leaves this open). If none qualifies: the longest (max level everywhere).
    Returns (N,) long class ids."""
    levels = normalize_levels(levels)
    s = _as_scores(scores, len(levels) ** num_blocks)
    sign = _metric_sign(quality_metric)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold):
        raise TypeError(f"`threshold` must be a number, got {threshold!r}")
    ok = (sign * s) >= sign * float(threshold)
    lengths = assignment_lengths(levels, num_blocks).double()
    # lexicographic key: integer length minus a within-clip quality rank in [0, 1) (best quality = largest)
    quality_rank = (sign * s).argsort(dim=1).argsort(dim=1).double() / s.shape[1]  # in [0, 1)
    key = torch.where(ok, lengths - quality_rank, torch.full_like(s, math.inf))
    choice = key.argmin(dim=1)
    longest = int(lengths.argmax())  # the last class: max level in every block
    return torch.where(ok.any(dim=1), choice, torch.full_like(choice, longest))


def reward_percentile(reward, chosen) -> float:
    """Eq. 8: (E[R(a_eval)] - E[R(a_worst)]) / (E[R(a_best)] - E[R(a_worst)]) over clips, in [0, 1].

    ``reward`` (N, A), ``chosen`` (N,) class ids of the evaluated strategy. Returns 1.0 when every assignment
    has the same expected reward (every strategy is then optimal)."""
    r = _as_scores(reward, name="reward")
    chosen = torch.as_tensor(chosen, dtype=torch.long)
    if chosen.shape != (r.shape[0],):
        raise ValueError(f"`chosen` must have shape ({r.shape[0]},), got {tuple(chosen.shape)}")
    if chosen.numel() and (int(chosen.min()) < 0 or int(chosen.max()) >= r.shape[1]):
        raise ValueError(f"`chosen` class ids must lie in [0, {r.shape[1]})")
    e_eval = r.gather(1, chosen[:, None]).mean()
    e_best, e_worst = r.max(dim=1).values.mean(), r.min(dim=1).values.mean()
    den = float(e_best - e_worst)
    return 1.0 if den == 0.0 else float((e_eval - e_worst) / den)
