"""Reading the ``eval_results.json`` that training and evaluation write, for model cards."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

__all__ = ["METRICS", "MetricSpec", "load_eval_results", "normalize_eval_results"]


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
}

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
)
# What training/train_tokenizer.py and train_ar.py call two of them.
_TRAINING_NAMES = {"num_validation_clips": "num_videos", "validation_data": "dataset"}


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
    ``dataset``. Other keys (histories, losses) are left out."""
    if not isinstance(results, Mapping):
        raise TypeError(f"`eval_results` must be a mapping, got {type(results).__name__}")
    out: dict[str, Any] = {}
    for key, value in results.items():
        if key in METRICS or key == "fvd":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
                raise ValueError(f"`eval_results`: metric {key!r} must be a finite number, got {value!r}")
            out[fvd_key if key == "fvd" and fvd_key else key] = float(value)
        elif key in _PROTOCOL_KEYS and value is not None:
            out[key] = value
    for name, key in _TRAINING_NAMES.items():
        if results.get(name) is not None:
            out.setdefault(key, results[name])
    return out
