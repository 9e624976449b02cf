"""Labels for any preference and the quality-cost curves of EVATok's assignment strategies (paper Sec. 4.2,
4.5, Figs. 4-5, App. L) from a stage-2 :class:`~hf_vidtok.evatok.score_table.ScoreTable`.

Strategies, each a set of points (average tokens per clip, mean quality over clips):

* ``uniform``: the same level in every block (one point per level);
* ``best_uniform``: per clip the max-reward uniform assignment (one point per w_q);
* ``threshold``: ElasticTok-style shortest assignment meeting a quality threshold (one point per threshold);
* ``max_reward``: the label, i.e. the max-proxy-reward assignment (one point per w_q).

Every point also carries the proxy-reward percentile (Eq. 8) at ``reference_w_q``. Mean PSNR is the mean over
clips of the per-clip PSNR (from each clip's mean MSE). matplotlib is imported only inside the plot function.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Optional, Sequence

import numpy as np
import torch

from .reward import (
    HIGHER_IS_BETTER,
    RewardStats,
    best_assignment,
    best_uniform_assignment,
    compute_reward_stats,
    proxy_reward,
    reward_percentile,
    threshold_assignment,
    uniform_assignment,
)
from .score_table import ScoreTable

__all__ = [
    "DEFAULT_W_Q",
    "label_table",
    "plot_quality_cost_curves",
    "quality_cost_curves",
    "write_quality_cost_curves",
]

logger = logging.getLogger(__name__)

DEFAULT_W_Q = tuple(round(0.4 + 0.2 * i, 1) for i in range(9))  # the paper's search curve: 0.4 .. 2.0


def _stats_for(table: ScoreTable, stats: Optional[RewardStats], quality_metric: Optional[str]) -> RewardStats:
    metric = quality_metric or (stats.quality_metric if stats is not None else table.quality_metric)
    if stats is None:
        return compute_reward_stats(table.metric(metric), table.levels, table.num_blocks, metric)
    if stats.quality_metric != metric:
        raise ValueError(f"`stats` were computed for {stats.quality_metric!r}, not the requested {metric!r}")
    if tuple(stats.levels) != tuple(table.levels) or stats.num_blocks != table.num_blocks:
        raise ValueError(
            f"`stats` are for levels {stats.levels} x {stats.num_blocks} blocks, the table has "
            f"{table.levels} x {table.num_blocks}"
        )
    return stats


def _check_w_q(w_q_values) -> list:
    values = [float(w) for w in w_q_values]
    if not values:
        raise ValueError("`w_q_values` must list at least one preference weight")
    return values


def label_table(
    table: ScoreTable,
    w_q_values: Sequence[float] = (1.2,),
    stats: Optional[RewardStats] = None,
    w_l: Optional[float] = None,
    quality_metric: Optional[str] = None,
) -> dict:
    """Max-proxy-reward labels: ``{w_q: (N,) long class ids}`` (``w_l`` default ``2 - w_q``; ties -> shorter).

    ``stats`` default: :func:`~hf_vidtok.evatok.reward.compute_reward_stats` over the whole table."""
    stats = _stats_for(table, stats, quality_metric)
    scores = table.metric(stats.quality_metric)
    return {w: best_assignment(proxy_reward(scores, stats, w, w_l), stats=stats) for w in _check_w_q(w_q_values)}


def _point(table: ScoreTable, chosen: torch.Tensor, ref_reward: torch.Tensor, **extra) -> dict:
    idx = chosen.numpy()
    rows = np.arange(table.num_clips)
    point = dict(extra)
    point["avg_tokens"] = float(table.lengths[idx].mean())
    for name in ("lpips", "mse", "ssim", "psnr"):
        if name == "lpips" and table.lpips is None:
            continue
        point[f"mean_{name}"] = float(table.metric(name)[rows, idx].astype(np.float64).mean())
    point["reward_percentile"] = reward_percentile(ref_reward, chosen)
    return point


def quality_cost_curves(
    table: ScoreTable,
    stats: Optional[RewardStats] = None,
    w_q_values: Sequence[float] = DEFAULT_W_Q,
    thresholds: Optional[Sequence[float]] = None,
    num_thresholds: int = 21,
    reference_w_q: float = 1.2,
    quality_metric: Optional[str] = None,
) -> dict:
    """Quality-cost curves of uniform, best-uniform, threshold and max-reward assignment (JSON-serialisable).

    ``thresholds`` default: ``num_thresholds`` evenly spaced quantiles (0..1) of the table's quality metric.
    """
    if table.num_clips == 0:
        raise ValueError("`table` has no clips")
    stats = _stats_for(table, stats, quality_metric)
    metric = stats.quality_metric
    scores = table.metric(metric)
    w_q_values = _check_w_q(w_q_values)
    if thresholds is None:
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) or num_thresholds < 2:
            raise ValueError(f"`num_thresholds` must be an int >= 2, got {num_thresholds!r}")
        thresholds = np.quantile(scores.astype(np.float64), np.linspace(0.0, 1.0, num_thresholds))
    # order "strict -> loose": ascending for lower-is-better metrics (lpips, mse), descending otherwise
    thresholds = sorted((float(t) for t in thresholds), reverse=HIGHER_IS_BETTER[metric])
    ref_reward = proxy_reward(scores, stats, reference_w_q)
    curves = {"uniform": [], "best_uniform": [], "threshold": [], "max_reward": []}
    n = table.num_clips
    for level in table.levels:
        cls = uniform_assignment(level, table.levels, table.num_blocks)
        curves["uniform"].append(_point(table, torch.full((n,), cls, dtype=torch.long), ref_reward, level=level))
    for w in w_q_values:
        reward = proxy_reward(scores, stats, w)
        curves["max_reward"].append(
            _point(table, best_assignment(reward, stats=stats), ref_reward, w_q=w, w_l=round(2.0 - w, 10))
        )
        curves["best_uniform"].append(
            _point(table, best_uniform_assignment(reward, stats), ref_reward, w_q=w, w_l=round(2.0 - w, 10))
        )
    for thr in thresholds:
        chosen = threshold_assignment(scores, thr, table.levels, table.num_blocks, metric)
        curves["threshold"].append(_point(table, chosen, ref_reward, threshold=thr))
    return {
        "levels": list(table.levels),
        "num_blocks": table.num_blocks,
        "num_clips": n,
        "quality_metric": metric,
        "reference_w_q": float(reference_w_q),
        "reward_stats": stats.to_dict(),
        "curves": curves,
    }


_STYLE = {
    "uniform": ("o-", "tab:red", "uniform"),
    "best_uniform": ("s--", "tab:orange", "best-uniform (per w_q)"),
    "threshold": ("^-", "tab:green", "threshold"),
    "max_reward": ("D-", "tab:blue", "max proxy reward (per w_q)"),
    "router": ("*-", "tab:purple", "router"),
}


def plot_quality_cost_curves(curves: dict, path) -> str:
    """Draw ``curves`` (from :func:`quality_cost_curves`) as a PNG: mean quality metric and mean PSNR against
    average tokens per clip. Needs matplotlib (``pip install hf_vidtok[plot]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("plotting quality-cost curves needs matplotlib: pip install 'hf_vidtok[plot]'") from e
    metric = curves["quality_metric"]
    panels = [f"mean_{metric}"] + (["mean_psnr"] if metric != "psnr" else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.6), squeeze=False)
    for ax, key in zip(axes[0], panels):
        for name, points in curves["curves"].items():
            if not points:
                continue
            pts = sorted(points, key=lambda p: p["avg_tokens"])
            style, color, label = _STYLE.get(name, ("*-", None, name.replace("_", " ")))  # e.g. a router's points
            ax.plot([p["avg_tokens"] for p in pts], [p[key] for p in pts], style, color=color, label=label, ms=4)
            if name in ("uniform", "max_reward"):
                tag = "level" if name == "uniform" else "w_q"
                for p in pts:
                    ax.annotate(f"{p[tag]:g}", (p["avg_tokens"], p[key]), fontsize=7, color=color,
                                textcoords="offset points", xytext=(3, 3))
        better = "higher" if HIGHER_IS_BETTER[key[len("mean_"):]] else "lower"
        ax.set_xlabel("average tokens per clip")
        ax.set_ylabel(f"{key.replace('_', ' ')} ({better} is better)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(
        f"EVATok quality-cost curves: {curves['num_clips']} clips, levels {curves['levels']} x "
        f"{curves['num_blocks']} blocks, reward on {metric}",
        fontsize=10,
    )
    fig.tight_layout()
    path = os.fspath(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_quality_cost_curves(curves: dict, output_dir, name: str = "quality_cost") -> tuple:
    """Write ``<output_dir>/<name>.json`` and ``<name>.png``; returns both paths. Without matplotlib (the ``plot``
    extra) the JSON is still written and the PNG path is None, with a warning: a run never dies on its plot."""
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(os.fspath(output_dir), f"{name}.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(curves, f, indent=1)
    try:
        png_path = plot_quality_cost_curves(curves, os.path.join(os.fspath(output_dir), f"{name}.png"))
    except ImportError as err:
        logger.warning("%s; wrote %s without its plot", err, json_path)
        png_path = None
    return json_path, png_path
