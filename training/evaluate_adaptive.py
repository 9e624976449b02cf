#!/usr/bin/env python
"""EVATok on held-out clips: quality-cost curves of uniform, router and max-reward-oracle assignments.

    python training/evaluate_adaptive.py --tokenizer_name_or_path outputs/evatok-final-tiny \\
        --router_name_or_path outputs/evatok-router-tiny --score_table outputs/evatok-scores-heldout-tiny \\
        --output_dir outputs/evatok-eval-tiny
    accelerate launch training/evaluate_adaptive.py ... --lpips_weights PATH_OR_ID --i3d_weights PATH_OR_ID

Every held-out clip is reconstructed by the tokenizer (eval mode, deterministic VQ) under the assignments of
three strategies, each a set of points (mean tokens per clip, mean quality over clips):

* ``uniform``: every level of the tokenizer in every block (one point per level);
* ``router``: the router's choice per preference ``--w_q`` (quality head; a classifier serves only its own
  preference) and per average budget ``--target_mean_tokens`` (one length multiplier for the whole held-out
  set, found by the router's bisection: the achieved mean is at or under the target);
* ``max_reward``: the oracle, per clip the max-proxy-reward assignment of the score table for each ``--w_q``
  (``hf_vidtok.evatok.reward``; table made by ``score_assignments.py`` on the same clips), i.e. the labels.

Tokens are counted from the tokenizer's output (``attention_mask`` / ``token_counts``), so every point also
reports the per-block mean counts. Quality: mean PSNR (per clip from its MSE), SSIM and MSE always; LPIPS with
``--lpips_weights``; rFVD (I3D, per strategy point) with ``--i3d_weights``. Each distinct (clip, assignment)
pair is reconstructed once, whatever strategies pick it.

Clip settings (data folder, layout, split, frames, stride, fps, size, clips per video, seed) default to the score
table's metadata, so the oracle is evaluated on exactly the scored clips; keys are ``<dataset key>#<clip index>``
as in ``score_assignments.py``. The router defaults to the tokenizer's own (a stage-4 tokenizer ships it,
``tokenizer.router``). ``--quality_metric {lpips,mse,ssim}`` is the reward metric of the
oracle (default: the table's) with the same meaning as in ``score_assignments.py``, ``label_assignments.py`` and
``train_router.py``; the router keeps the metric it was trained on (``config.quality_metric``).

Writes ``<output_dir>/adaptive_quality_cost.json`` (curves, per-block means, the router-vs-uniform comparisons at
equal mean tokens and the token saving at equal quality, by linear interpolation of the uniform curve) and
``adaptive_quality_cost.png`` (drawn by :func:`hf_vidtok.evatok.curves.plot_quality_cost_curves`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

logger = logging.getLogger("hf_vidtok.evaluate_adaptive")

__all__ = ["build_parser", "parse_args", "interpolate_at_tokens", "tokens_at_quality", "compare_to_uniform", "main"]

OUTPUT_NAME = "adaptive_quality_cost"
#: Per clip metrics and whether higher is better (``rfvd`` is per strategy point).
LOWER_IS_BETTER = {"mse": True, "psnr": False, "ssim": False, "lpips": True, "rfvd": True}
CLIP_FLAGS = {  # flag -> (score-table metadata key, fallback)
    "data_dir": ("data", None),
    "dataset_layout": ("layout", "folder"),
    "split": ("split", "train"),
    "num_frames": ("num_frames", None),
    "resolution": ("resolution", None),
    "frame_stride": ("frame_stride", 1),
    "fps": ("fps", None),
    "clips_per_video": ("clips_per_video", 1),
    "seed": ("seed", 0),
}


# ----------------------------------------------------------------------------------------------- flags


def build_parser() -> argparse.ArgumentParser:
    from hf_vidtok.evatok.curves import DEFAULT_W_Q

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("--tokenizer_name_or_path", required=True, help="EvatokTokenizer folder or Hub id (the final or the proxy one)")
    a("--revision", default=None)
    a("--router_name_or_path", default=None, help="EvatokRouter folder or Hub id (default: the tokenizer's own router)")
    a("--router_revision", default=None)
    a("--no_router", action="store_true", help="evaluate uniform (and oracle) assignments only")
    a("--score_table", default=None, help="stage-2 score table of the same held-out clips (folder, Parquet file or Hub dataset id)")
    a("--score_table_revision", default=None)
    g = p.add_argument_group("clips (default: the score table's metadata)")
    g.add_argument("--data_dir", default=None,
                   help="held-out videos (folder, UCF-101 root, CSV or shards; local, Hub dataset repo or fsspec URL)")
    g.add_argument("--dataset_layout", default=None, choices=["folder", "ucf101", "csv", "webdataset", "parquet"])
    g.add_argument("--split", default=None)
    g.add_argument("--num_frames", type=int, default=None, help="default: the tokenizer's num_frames")
    g.add_argument("--resolution", type=int, default=None, help="default: the tokenizer's image_size")
    g.add_argument("--frame_stride", type=int, default=None)
    g.add_argument("--fps", type=float, default=None)
    g.add_argument("--clips_per_video", type=int, default=None)
    g.add_argument("--seed", type=int, default=None, help="clip sampling seed")
    g.add_argument("--max_clips", type=int, default=None, help="evaluate at most this many clips per process")
    g = p.add_argument_group("strategies and metrics")
    g.add_argument("--quality_metric", default=None, choices=["lpips", "mse", "ssim"],
                   help="reward metric of the oracle (default: the score table's)")
    g.add_argument("--reward_stats", default=None,
                   help="reward_stats.json for the oracle (default: the router's statistics when it is a quality head "
                        "trained on the same metric, else computed from the evaluated rows of the table)")
    g.add_argument("--w_q", type=float, nargs="+", default=list(DEFAULT_W_Q), help="preferences (w_l = 2 - w_q)")
    g.add_argument("--target_mean_tokens", type=float, nargs="+", default=None,
                   help="average budgets of the router (default: the uniform totals strictly between the shortest "
                        "and the longest uniform assignment)")
    g.add_argument("--lpips_weights", default=None, help="hf_vidtok LPIPS safetensors file/folder/Hub id (adds LPIPS)")
    g.add_argument("--i3d_weights", default=None, help="hf_vidtok I3D safetensors file/folder/Hub id (adds rFVD; >= 9 frames)")
    g = p.add_argument_group("run")
    g.add_argument("--batch_size", type=int, default=8, help="reconstructions per tokenizer call")
    g.add_argument("--per_clip", action="store_true",
                   help="also write adaptive_per_clip.json: every point's per-clip counts per block, PSNR and SSIM "
                        "(aligned with its `keys`; with the score table's `labels`)")
    g.add_argument("--mixed_precision", default="no", choices=["no", "bf16", "fp16"], help="autocast for the tokenizer")
    g.add_argument("--torch_num_threads", type=int, default=None,
                   help="intra-op CPU threads of each process (default: from the model size, hf_vidtok.training.threads)")
    g.add_argument("--output_dir", required=True)
    return p


def parse_args(argv=None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    for name in ("batch_size", "num_frames", "resolution", "frame_stride", "clips_per_video", "max_clips"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"`--{name}` must be positive, got {value}")
    if args.fps is not None and args.fps <= 0:
        raise ValueError(f"`--fps` must be positive, got {args.fps}")
    if any(not 0.0 <= w <= 2.0 for w in args.w_q):
        raise ValueError(f"`--w_q` values must lie in [0, 2] (w_l = 2 - w_q), got {args.w_q}")
    if args.target_mean_tokens is not None and any(t <= 0 for t in args.target_mean_tokens):
        raise ValueError(f"`--target_mean_tokens` must be positive token counts, got {args.target_mean_tokens}")
    if args.no_router and args.router_name_or_path:
        raise ValueError("give `--router_name_or_path` or `--no_router`, not both")
    if args.quality_metric is not None and not args.score_table:
        raise ValueError("`--quality_metric` is the reward metric of the oracle: it needs `--score_table`")
    return args


# ------------------------------------------------------------------------------------- loading models


def _load_tokenizer(args, device):
    from hf_vidtok.training.length_token_data import load_frozen_evatok

    try:
        return load_frozen_evatok(args.tokenizer_name_or_path, revision=args.revision, device=device)
    except (OSError, ValueError) as e:
        raise ValueError(f"`--tokenizer_name_or_path` {args.tokenizer_name_or_path!r} is not an EvatokTokenizer: {e}") from e


def _load_router(args, tok, device):
    """The router named by ``--router_name_or_path``, else the tokenizer's own (stage 4: ``tokenizer.router``, nested
    in its config), else None. Checked against the tokenizer's levels and blocks."""
    from hf_vidtok.models.evatok import EvatokRouter
    from hf_vidtok.training.length_token_data import load_frozen_router

    if args.no_router:
        return None
    if args.router_name_or_path:
        try:
            router = load_frozen_router(args.router_name_or_path, revision=args.router_revision, device=device)
        except (OSError, ValueError) as e:
            raise ValueError(f"`--router_name_or_path` {args.router_name_or_path!r} is not an EvatokRouter: {e}") from e
    elif isinstance(getattr(tok, "router", None), EvatokRouter):
        router = tok.router
    else:
        logger.warning("no router given and %s ships none: evaluating uniform and oracle assignments only",
                       args.tokenizer_name_or_path)
        return None
    c, tc = router.config, tok.config
    if c.num_blocks != tc.num_blocks or not set(c.token_levels) <= set(tc.token_levels):
        raise ValueError(
            f"the router serves levels {list(c.token_levels)} x {c.num_blocks} blocks; the tokenizer has levels "
            f"{list(tc.token_levels)} x {tc.num_blocks} blocks"
        )
    return router.eval().requires_grad_(False).to(device)


def _clip_settings(args, tok, table) -> None:
    """Fill unset clip flags from the score table's metadata, then from the tokenizer / defaults."""
    meta = table.metadata if table is not None else {}
    for flag, (key, fallback) in CLIP_FLAGS.items():
        if getattr(args, flag) is None:
            setattr(args, flag, meta.get(key, fallback))
    size = tok.config.image_size
    size = size[0] if isinstance(size, (list, tuple)) else size
    args.num_frames = args.num_frames or tok.config.num_frames
    args.resolution = args.resolution or size
    if (args.num_frames, args.resolution) != (tok.config.num_frames, size):
        raise ValueError(
            f"`--num_frames`/`--resolution` ({args.num_frames}, {args.resolution}) must match the tokenizer "
            f"({tok.config.num_frames}, {size})"
        )
    if args.data_dir is None:
        raise ValueError("`--data_dir` is required (the score table's metadata names no data folder)")


def _stream(args, rank: int, world: int):
    from hf_vidtok.data import files_of_process, load_video_dataset

    ds = load_video_dataset(
        args.data_dir, layout=args.dataset_layout, split=args.split, num_frames=args.num_frames,
        resolution=args.resolution, frame_stride=args.frame_stride, fps=args.fps,
        clips_per_video=args.clips_per_video, seed=args.seed, streaming=True,
    )
    return files_of_process(ds, rank, world)


def iter_clip_batches(args, rank: int, world: int, device):
    """Yield ``(keys, start frames, pixel_values (B, C, T, H, W) float in [0, 1])`` of this process's clips, keys
    ``<dataset key>#<clip index in the file>`` (the score table's keys)."""
    import numpy as np
    import torch

    def batch():
        return keys, starts, torch.from_numpy(np.stack(videos)).to(device).permute(0, 4, 1, 2, 3).float().div_(255)

    keys, starts, videos = [], [], []
    last, count, seen = None, -1, 0
    for ex in _stream(args, rank, world):
        count = count + 1 if ex["key"] == last else 0
        last = ex["key"]
        keys.append(f"{ex['key']}#{count}")
        starts.append(int(ex["start_frame"]))
        videos.append(np.asarray(ex["video"]))
        seen += 1
        done = args.max_clips is not None and seen >= args.max_clips
        if len(keys) == args.batch_size or done:
            yield batch()
            keys, starts, videos = [], [], []
        if done:
            return
    if keys:
        yield batch()


# ------------------------------------------------------------------------------------------- strategies


def _oracle_stats(args, table, metric, router):
    """RewardStats of the oracle: ``--reward_stats``, else a quality-head router's (same metric), else the table's."""
    from hf_vidtok.evatok.reward import RewardStats, compute_reward_stats

    if args.reward_stats:
        with open(args.reward_stats, encoding="utf-8") as f:
            stats = RewardStats.from_dict(json.load(f))
        if stats.quality_metric != metric:
            raise ValueError(f"`--reward_stats` are for {stats.quality_metric!r}, the oracle uses {metric!r}")
        return stats, "reward_stats"
    c = getattr(router, "config", None)
    if (c is not None and c.head_type == "quality" and c.quality_metric == metric and c.quality_std
            and list(c.token_levels) == list(table.levels)):
        mean, std = c.length_stats()
        return RewardStats(table.levels, table.num_blocks, metric, c.quality_mean, c.quality_std, mean, std), "router"
    return compute_reward_stats(table.metric(metric), table.levels, table.num_blocks, metric), "score_table"


def select_strategies(keys, starts, tok, router, router_scores, table, args, metric):
    """``[(curve, point facts, (N, T) long assignments in the order of keys)]`` of all strategy points."""
    import numpy as np
    import torch

    from hf_vidtok.evatok.assignments import candidate_assignments
    from hf_vidtok.evatok.reward import best_assignment, proxy_reward

    n, t = len(keys), tok.config.num_blocks
    points = [("uniform", {"level": int(k)}, torch.full((n, t), int(k), dtype=torch.long)) for k in tok.config.token_levels]
    if router is not None:
        c = router.config
        prefs = list(args.w_q) if c.head_type == "quality" else [c.label_w_q]
        for w in prefs:
            counts = router.select_from_scores(router_scores) if w is None else router.select_from_scores(router_scores, w_q=w)
            points.append(("router", {"w_q": None if w is None else float(w)}, counts.cpu()))
        for target in _budgets(args, router):
            counts = router.select_from_scores(router_scores, target_mean_tokens=float(target))
            points.append(("router", {"target_mean_tokens": float(target)}, counts.cpu()))
    if table is not None:
        stats, source = _oracle_stats(args, table, metric, router)
        rows = _table_rows(table, keys, starts)
        scores = table.metric(metric)[rows]
        cand = candidate_assignments(table.levels, table.num_blocks)
        for w in args.w_q:
            cls = best_assignment(proxy_reward(scores, stats, w), stats=stats)
            table_value = float(scores[np.arange(n), cls.numpy()].astype(np.float64).mean())
            points.append(("max_reward", {"w_q": float(w), f"table_mean_{metric}": table_value, "reward_stats": source},
                           cand[cls]))
    return points


def _budgets(args, router) -> list:
    if args.target_mean_tokens is not None:
        return list(args.target_mean_tokens)
    levels, t = router.config.token_levels, router.config.num_blocks
    return [float(k * t) for k in levels[1:-1]]


def _table_rows(table, keys, starts):
    """Rows of ``table`` for the clips ``keys`` (their start frames must match: same clips, not just same names)."""
    import numpy as np

    index = {k: i for i, k in enumerate(table.keys.tolist())}
    hint = ("score the same clips (same data folder, layout, split, frames, stride, fps, clips per video and seed) "
            "or drop `--score_table`")
    missing = [k for k in keys if k not in index]
    if missing:
        raise ValueError(f"{len(missing)} evaluated clip(s) are not in the score table, e.g. {missing[:3]}: {hint}")
    rows = np.asarray([index[k] for k in keys], dtype=np.int64)
    moved = [k for k, r, s in zip(keys, rows, starts) if int(table.start_frames[r]) != s]
    if moved:
        raise ValueError(f"{len(moved)} clip(s) start at other frames than in the score table, e.g. {moved[:3]}: {hint}")
    return rows


# ------------------------------------------------------------------------------------------ evaluation


class PairMetrics:
    """Reconstructs (clip, assignment) pairs and returns, per pair: tokens, per-block counts and per-clip metrics
    (MSE, SSIM, LPIPS via :class:`hf_vidtok.evatok.scoring.BlockQualityMetric` on the clamped reconstruction, the
    values the score table holds) plus I3D features when rFVD is on."""

    def __init__(self, tok, lpips=None, fvd=None, autocast_dtype=None, batch_size: int = 8):
        from hf_vidtok.evatok.scoring import BlockQualityMetric

        self.tok, self.fvd, self.batch_size = tok, fvd, batch_size
        self.metric = BlockQualityMetric(lpips)
        self.autocast_dtype = autocast_dtype

    def __call__(self, pixel_values, pairs):
        """``pairs``: list of (clip row, assignment tuple). Returns a list of dicts in the order of ``pairs``."""
        import torch

        order = sorted(range(len(pairs)), key=lambda i: sum(pairs[i][1]))  # similar lengths share a call
        results = [None] * len(pairs)
        device = pixel_values.device
        for s in range(0, len(order), self.batch_size):
            chunk = order[s : s + self.batch_size]
            rows = torch.tensor([pairs[i][0] for i in chunk], device=device)
            counts = torch.tensor([pairs[i][1] for i in chunk], dtype=torch.long)
            x = pixel_values[rows]
            with torch.no_grad(), torch.autocast(device_type=device.type, dtype=self.autocast_dtype or torch.float32,
                                                 enabled=self.autocast_dtype is not None):
                out = self.tok(x, assignment=counts)
            recon = out.reconstruction.float().clamp(0, 1)
            values = self.metric(recon, x).double().cpu()  # (B, M): mse, ssim[, lpips]
            tokens = out.attention_mask.sum(1).cpu()
            block = out.token_counts.cpu()
            feats = self.fvd.extract_features(recon).double().cpu() if self.fvd is not None else None
            for j, i in enumerate(chunk):
                res = {"tokens": int(tokens[j]), "block_tokens": block[j].tolist()}
                res.update({name: float(values[j, m]) for m, name in enumerate(self.metric.names)})
                if feats is not None:
                    res["i3d"] = feats[j]
                results[i] = res
        return results


def _frechet(real, fake) -> float:
    from hf_vidtok.metrics import FrechetStatistics, frechet_distance

    stats = []
    for feats in (real, fake):
        s = FrechetStatistics(feats.shape[1])
        s.update(feats)
        stats.append(s.mean_cov())
    return frechet_distance(stats[1][0], stats[1][1], stats[0][0], stats[0][1])


def _point(curve, facts, assignments, keys, pair_results, real_feats):
    """Aggregate the pair results of one strategy point over the clips."""
    import numpy as np
    import torch

    per_clip = [pair_results[(k, tuple(a))] for k, a in zip(keys, assignments.tolist())]
    point = dict(facts)
    point["avg_tokens"] = float(np.mean([r["tokens"] for r in per_clip]))
    point["mean_block_tokens"] = np.mean([r["block_tokens"] for r in per_clip], axis=0).tolist()
    mse = np.asarray([r["mse"] for r in per_clip])
    point["mean_mse"] = float(mse.mean())
    point["mean_psnr"] = float((-10.0 * np.log10(np.maximum(mse, 1e-30))).mean())
    point["mean_ssim"] = float(np.mean([r["ssim"] for r in per_clip]))
    if "lpips" in per_clip[0]:
        point["mean_lpips"] = float(np.mean([r["lpips"] for r in per_clip]))
    if real_feats is not None:
        point["rfvd"] = _frechet(real_feats, torch.stack([r["i3d"] for r in per_clip]))
    return point


def _write_per_clip(output_dir, points, keys, pair_results, table) -> str:
    """``adaptive_per_clip.json``: the clip keys (and the table's labels for them), then for every strategy point
    the per-clip per-block counts, PSNR and SSIM in the order of ``keys``."""
    import numpy as np

    labels = None
    if table is not None:
        index = {k: i for i, k in enumerate(table.keys.tolist())}
        labels = [int(table.labels[index[k]]) if k in index else -1 for k in keys]
    out = {"keys": list(keys), "labels": labels, "points": []}
    for curve, facts, assign in points:
        per_clip = [pair_results[(k, tuple(a))] for k, a in zip(keys, assign.tolist())]
        mse = np.asarray([r["mse"] for r in per_clip])
        out["points"].append({
            "curve": curve, **{k: v for k, v in facts.items() if not k.startswith("table_")},
            "block_tokens": [r["block_tokens"] for r in per_clip],
            "psnr": (-10.0 * np.log10(np.maximum(mse, 1e-30))).tolist(),
            "ssim": [r["ssim"] for r in per_clip],
        })
    path = os.path.join(output_dir, "adaptive_per_clip.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f)
    return path


# ------------------------------------------------------------------------------------------ comparisons


def _sorted_curve(points, key):
    pts = sorted((p["avg_tokens"], p[key]) for p in points if key in p)
    return [p[0] for p in pts], [p[1] for p in pts]


def interpolate_at_tokens(points, key: str, tokens: float):
    """The uniform curve's ``key`` at ``tokens`` mean tokens (piecewise linear in tokens); None outside its range."""
    xs, ys = _sorted_curve(points, key)
    if not xs or tokens < xs[0] - 1e-9 or tokens > xs[-1] + 1e-9:
        return None
    import numpy as np

    return float(np.interp(tokens, xs, ys))


def tokens_at_quality(points, key: str, value: float):
    """The fewest mean tokens at which the (piecewise linear) uniform curve reaches quality ``value`` of ``key``;
    None when its cheapest point already exceeds it (no saving defined) or it never reaches it."""
    xs, ys = _sorted_curve(points, key)
    sign = -1.0 if LOWER_IS_BETTER[key.replace("mean_", "")] else 1.0
    v = [sign * y for y in ys]
    target = sign * value
    if not xs or v[0] >= target:
        return None
    for i in range(1, len(xs)):
        if v[i] >= target:
            frac = (target - v[i - 1]) / (v[i] - v[i - 1])
            return float(xs[i - 1] + frac * (xs[i] - xs[i - 1]))
    return None


def compare_to_uniform(curves: dict, keys) -> dict:
    """For each router point: the uniform quality at the router's mean tokens (gap = router - uniform, in the
    metric's units: positive is better for PSNR/SSIM, negative for MSE/LPIPS/rFVD) and the uniform's mean tokens at
    the router's quality (saving = 1 - router tokens / uniform tokens). Between two uniform levels the linear
    interpolation is exactly what a mix of clips at those two levels achieves (means of tokens and of per-clip
    quality are both linear in the mixing share), so it is a realisable uniform-only baseline, not an estimate."""
    uniform = curves["uniform"]
    out = {"equal_tokens": [], "equal_quality": []}
    for p in curves.get("router", []):
        tag = {k: p[k] for k in ("w_q", "target_mean_tokens") if k in p}
        row = {**tag, "avg_tokens": p["avg_tokens"]}
        sav = {**tag, "avg_tokens": p["avg_tokens"]}
        for key in keys:
            if key not in p:
                continue
            u = interpolate_at_tokens(uniform, key, p["avg_tokens"])
            row[f"router_{key}"], row[f"uniform_{key}"] = p[key], u
            row[f"gap_{key}"] = None if u is None else p[key] - u
            ut = tokens_at_quality(uniform, key, p[key])
            sav[f"uniform_tokens_{key}"] = ut
            sav[f"saving_{key}"] = None if ut is None else 1.0 - p["avg_tokens"] / ut
        out["equal_tokens"].append(row)
        out["equal_quality"].append(sav)
    return out


# ------------------------------------------------------------------------------------------------ main


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import torch
    from accelerate.utils import gather_object

    from hf_vidtok.training.accelerator import distributed_state, end_distributed
    from hf_vidtok.training.threads import set_torch_num_threads

    from hf_vidtok.evatok.curves import write_quality_cost_curves
    from hf_vidtok.evatok.score_table import load_score_table

    state = distributed_state()
    rank, world, device = state.process_index, state.num_processes, state.device
    t0 = time.perf_counter()
    tok = _load_tokenizer(args, device)
    router = _load_router(args, tok, device)
    set_torch_num_threads(args.torch_num_threads, [tok] + ([router] if router is not None else []))
    table = load_score_table(args.score_table, revision=args.score_table_revision) if args.score_table else None
    if table is not None:
        if table.num_blocks != tok.config.num_blocks or not set(table.levels) <= set(tok.config.token_levels):
            raise ValueError(
                f"the score table has levels {list(table.levels)} x {table.num_blocks} blocks; the tokenizer "
                f"{list(tok.config.token_levels)} x {tok.config.num_blocks}"
            )
    metric = args.quality_metric or (table.quality_metric if table is not None else None)
    if metric is None:
        metric = router.config.quality_metric if router is not None and router.config.quality_metric else "mse"
    if metric == "lpips" and not args.lpips_weights:
        raise ValueError("`--quality_metric lpips` needs `--lpips_weights` (LPIPS of the reconstructions; or pick mse / ssim)")
    if table is not None:
        table.metric(metric)  # raises when the table lacks it
    _clip_settings(args, tok, table)
    lpips = fvd = None
    if args.lpips_weights:
        from hf_vidtok.metrics import LPIPS

        lpips = LPIPS.from_pretrained(args.lpips_weights).to(device)
    if args.i3d_weights:
        from hf_vidtok.metrics import FVD

        if args.num_frames < 9:
            raise ValueError(f"rFVD needs clips of at least 9 frames (I3D), got {args.num_frames}")
        fvd = FVD.from_pretrained(args.i3d_weights).to(device)  # frames resized to 224 (StyleGAN-V protocol)
    autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.mixed_precision)

    # pass 1: keys (and router scores) of every clip
    mine = []
    for keys, starts, pixels in iter_clip_batches(args, rank, world, device):
        scores = None
        if router is not None:
            with torch.no_grad():
                scores = router(pixels).scores.double().cpu()
        mine.append((keys, starts, scores))
    logger.info("process %d evaluates %d clips", rank, sum(len(k) for k, _, _ in mine))
    parts = gather_object(mine)
    keys = [k for ks, _, _ in parts for k in ks]
    starts = [s for _, ss, _ in parts for s in ss]
    if not keys:
        raise ValueError(f"no clips in `--data_dir` {args.data_dir!r} (split {args.split!r})")
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate clip keys: the data stream yields a clip twice")
    order = sorted(range(len(keys)), key=keys.__getitem__)
    keys, starts = [keys[i] for i in order], [starts[i] for i in order]
    router_scores = torch.cat([s for _, _, s in parts])[order].to(device) if router is not None else None
    t_select = time.perf_counter()
    points = select_strategies(keys, starts, tok, router, router_scores, table, args, metric)
    t_select = time.perf_counter() - t_select
    needed = {}
    for _, _, assign in points:
        for k, a in zip(keys, assign.tolist()):
            needed.setdefault(k, set()).add(tuple(a))

    # pass 2: reconstruct every distinct (clip, assignment) pair of this process's clips once
    recon = PairMetrics(tok, lpips, fvd, autocast, args.batch_size)
    mine, real = [], []
    for batch_keys, _, pixels in iter_clip_batches(args, rank, world, device):
        pairs = [(r, a) for r, k in enumerate(batch_keys) for a in sorted(needed[k])]
        results = recon(pixels, pairs)
        mine.extend(((batch_keys[r], a), res) for (r, a), res in zip(pairs, results))
        if fvd is not None:
            real.extend(zip(batch_keys, fvd.extract_features(pixels).double().cpu()))
    pair_results = dict(gather_object(mine))
    real_feats = None
    if fvd is not None:
        real_by_key = dict(gather_object(real))
        real_feats = torch.stack([real_by_key[k] for k in keys])
    result = {"num_pairs": len(pair_results)}
    if state.is_main_process:
        curves = {"uniform": [], "router": [], "max_reward": []}
        for curve, facts, assign in points:
            curves[curve].append(_point(curve, facts, assign, keys, pair_results, real_feats))
        if not curves["router"]:
            del curves["router"]
        if not curves["max_reward"]:
            del curves["max_reward"]
        quality_keys = ["mean_psnr", "mean_ssim", "mean_mse"] + (["mean_lpips"] if lpips is not None else []) + (
            ["rfvd"] if fvd is not None else [])
        c = tok.config
        result = {
            "tokenizer": args.tokenizer_name_or_path,
            "router": None if router is None else (args.router_name_or_path or f"{args.tokenizer_name_or_path} (own router)"),
            "router_head": None if router is None else router.config.head_type,
            "score_table": args.score_table,
            "data_dir": args.data_dir,
            "split": args.split,
            "num_clips": len(keys),
            "num_frames": args.num_frames,
            "resolution": args.resolution,
            "levels": list(c.token_levels),
            "num_blocks": c.num_blocks,
            "quality_metric": metric,
            "num_reconstructions": len(pair_results),
            "curves": curves,
            "comparisons": compare_to_uniform(curves, quality_keys) if "router" in curves else None,
            "seconds": {"total": time.perf_counter() - t0, "selection": t_select},
        }
        os.makedirs(args.output_dir, exist_ok=True)
        if args.per_clip:
            result["per_clip_json"] = _write_per_clip(args.output_dir, points, keys, pair_results, table)
        json_path, png_path = write_quality_cost_curves(result, args.output_dir, OUTPUT_NAME)
        result["json"], result["png"] = json_path, png_path
        for curve, pts in curves.items():
            for p in pts:
                tag = ", ".join(f"{k} {p[k]:g}" for k in ("level", "w_q", "target_mean_tokens") if p.get(k) is not None)
                logger.info("%-10s %-28s %7.1f tokens  PSNR %.3f  SSIM %.4f  blocks %s", curve, tag, p["avg_tokens"],
                            p["mean_psnr"], p["mean_ssim"], [round(b, 1) for b in p["mean_block_tokens"]])
        logger.info("wrote %s and %s (%d clips, %d reconstructions)", json_path, png_path, len(keys), len(pair_results))
    end_distributed(state)
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
