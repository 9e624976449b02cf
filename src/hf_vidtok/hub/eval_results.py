"""Reading the ``eval_results.json`` that training and evaluation write, for model cards."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

__all__ = ["METRICS", "MetricSpec", "load_eval_results", "metric_keys", "metric_spec", "normalize_eval_results"]


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is shown: model-index ``type``, display ``name``, and whether higher is better."""

    type: str
    name: str
    higher_is_better: bool
    description: str


# Canonical metric keys in the order cards list them.
METRICS: dict[str, MetricSpec] = {
    "psnr": MetricSpec("psnr", "PSNR", True, "dB, mean over videos of -10 log10(MSE), data range 1"),
    "ssim": MetricSpec("ssim", "SSIM", True, "11x11 gaussian window (sigma 1.5), mean over frames"),
    "lpips": MetricSpec("lpips", "LPIPS", False, "VGG, mean over frames"),
    "rfvd": MetricSpec("fvd", "rFVD", False, "reconstruction FVD (I3D logits), reconstructions vs inputs"),
    "gfvd": MetricSpec("fvd", "gFVD", False, "generation FVD (I3D logits), samples vs real clips"),
    "fp_fvd": MetricSpec("fvd", "FP-FVD", False, "frame-prediction FVD, predicted vs real clips"),
    "nll": MetricSpec("nll", "NLL", False, "AR generator: mean next-token negative log-likelihood (nats)"),
    "perplexity": MetricSpec("perplexity", "Perplexity", False, "AR generator: exp(NLL)"),
    # EVATok router (training/train_router.py), against the score table's max-reward labels at `label_w_q`
    "top1": MetricSpec("accuracy", "Top-1 accuracy", True, "router: label is its best-ranked assignment (fraction)"),
    "top5": MetricSpec("accuracy", "Top-5 accuracy", True, "router: label among its 5 best-ranked assignments (fraction)"),
    "reward_percentile": MetricSpec(
        "reward_percentile", "Proxy-reward percentile", True, "router: Eq. 8 percentile of its choice's reward (fraction)"
    ),
    "avg_tokens": MetricSpec("avg_tokens", "Average tokens per clip", False, "tokens of the chosen assignments, mean over clips"),
}
# Per-level and per-choice metrics whose keys carry a parameter: `psnr_uniform_<K>` (training/train_tokenizer.py,
# every block at K tokens) and `mean_<metric>` (training/train_router.py, score-table metric of the router's choice).
_UNIFORM_KEY = re.compile(r"^(psnr|ssim|lpips)_uniform_(\d+)$")
_CHOICE_KEY = re.compile(r"^mean_(psnr|ssim|lpips|mse)$")
_HIGHER = {"psnr": True, "ssim": True, "lpips": False, "mse": False}

# Protocol fields shown on the card, as the training scripts and `hf-vidtok evaluate` write them.
_PROTOCOL_KEYS = (
    "step",
    "initial_psnr",
    "initial_ssim",
    "dataset",
    "dataset_split",
    "num_videos",
    "num_samples",
    "num_frames",
    "resolution",
    "frame_stride",
    "cfg_scale",
    "guidance_scale",
    "temperature",
    "top_k",
    "top_p",
    "seed",
    "num_cond_frames",
    "hardware",
    "train_time_s",
    "wall_time_s",
    "tokens_per_clip",
    # training/train_router.py
    "head_type",
    "label_w_q",
    "label_avg_tokens",
    "best_uniform_percentile",
    "score_table",
    "per_w_q",
    "budgets",
)
# What training/train_tokenizer.py, train_ar.py and train_router.py call some of them.
_TRAINING_NAMES = {
    "num_validation_clips": "num_videos",
    "validation_data": "dataset",
    "num_clips": "num_videos",
    "global_step": "step",
}


def metric_spec(key: str) -> MetricSpec | None:
    """How metric ``key`` of ``eval_results.json`` is shown, or None when ``key`` is not a metric: the keys of
    :data:`METRICS`, ``<psnr|ssim|lpips>_uniform_<K>`` (EVATok tokenizer, every block at K tokens) and
    ``mean_<psnr|ssim|lpips|mse>`` (EVATok router, the score-table metric of the router's choices)."""
    if key in METRICS:
        return METRICS[key]
    match = _UNIFORM_KEY.match(key)
    if match:
        base, level = METRICS[match.group(1)], int(match.group(2))
        return MetricSpec(
            base.type, f"{base.name} (uniform {level}/block)", base.higher_is_better,
            f"every block at {level} tokens; {base.description}",
        )
    match = _CHOICE_KEY.match(key)
    if match:
        name = match.group(1)
        return MetricSpec(
            name, f"{name.upper()} at the router's choice", _HIGHER[name],
            "router: score-table metric of its chosen assignments, mean over clips",
        )
    return None


def metric_keys(results: Mapping[str, Any]) -> list[str]:
    """The metric keys of ``results`` in card order: :data:`METRICS` order, then the per-level ones by metric
    and level, then the router's ``mean_<metric>``."""
    fixed = [key for key in METRICS if key in results]

    def order(key: str):
        match = _UNIFORM_KEY.match(key)
        return (0, list(_HIGHER).index(match.group(1)), int(match.group(2))) if match else (1, key, 0)

    extra = [key for key in results if key not in METRICS and metric_spec(key) is not None]
    return fixed + sorted(extra, key=order)


def load_eval_results(source: str | os.PathLike | Mapping[str, Any] | None) -> dict[str, Any]:
    """Read evaluation results from a path to a JSON file (or a folder holding ``eval_results.json``),
    or take a mapping as it is, and return the normalised dict (see :func:`normalize_eval_results`).

    ``None`` gives ``{}``. A JSON list (a history of validations) is read as its last entry.
    """
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return normalize_eval_results(source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"`eval_results` must be a dict, a path to a JSON file or None, got {type(source).__name__}")
    path = Path(source)
    if path.is_dir():
        path = path / "eval_results.json"
    if not path.is_file():
        raise FileNotFoundError(f"`eval_results`: no such file: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"`eval_results`: {path} is not valid JSON ({err.msg} at line {err.lineno})") from None
    if isinstance(data, list):
        if not data:
            raise ValueError(f"`eval_results`: {path} holds an empty list")
        data = data[-1]
    if not isinstance(data, dict):
        raise ValueError(f"`eval_results`: {path} must hold a JSON object, got {type(data).__name__}")
    return normalize_eval_results(data)


def normalize_eval_results(results: Mapping[str, Any], *, fvd_key: str | None = None) -> dict[str, Any]:
    """The card's view of ``eval_results.json``: the metrics of :data:`METRICS` (plus a bare ``fvd``, kept as
    ``fvd`` unless ``fvd_key`` says which FVD it is), which must be finite numbers, and the protocol fields
    (``step``, ``dataset``, ``dataset_split``, ``num_videos``, ``num_frames``, ``resolution``, ...); the
    training scripts' ``num_validation_clips`` / ``validation_data`` are read as ``num_videos`` /
    ``dataset`` (train_router.py's ``num_clips`` / ``global_step`` as ``num_videos`` / ``step``). Metrics
with a parameter (see :func:`metric_spec`) are kept too. Other keys (histories, losses) are left out."""
    if not isinstance(results, Mapping):
        raise TypeError(f"`eval_results` must be a mapping, got {type(results).__name__}")
    out: dict[str, Any] = {}
    for key, value in results.items():
        if metric_spec(key) is not None or key == "fvd":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
                raise ValueError(f"`eval_results`: metric {key!r} must be a finite number, got {value!r}")
            out[fvd_key if key == "fvd" and fvd_key else key] = float(value)
        elif key in _PROTOCOL_KEYS and value is not None:
            out[key] = value
    for name, key in _TRAINING_NAMES.items():
        if results.get(name) is not None:
            out.setdefault(key, results[name])
    return out
