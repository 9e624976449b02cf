#!/usr/bin/env python
"""EVATok stage 2, labelling: max-proxy-reward assignments for any preferences, and quality-cost curves.

    python training/label_assignments.py --score_table outputs/scores --output_dir outputs/labels \\
        --w_q 0.4 0.8 1.2 1.6 2.0
    python training/label_assignments.py --score_table user/evatok-webvid-scores --stats train_stats.json ...

Reads a score table (folder, Parquet file or Hub dataset id; see ``hf_vidtok.evatok.score_table``) and writes:

* ``labels.parquet``: ``key`` plus one int64 column ``assignment_wq<w_q>`` (class id, ties -> shorter) per w_q;
  schema metadata ``levels``, ``num_blocks``, ``quality_metric``, ``reward_stats`` (JSON);
* ``reward_stats.json``: the z-score statistics used (pass it as ``--stats`` to label another split alike);
* ``quality_cost.json`` / ``quality_cost.png``: uniform, best-uniform, threshold and max-reward curves
  (average tokens vs mean LPIPS / MSE / SSIM / PSNR, plus the Eq. 8 reward percentile at ``--reference_w_q``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

logger = logging.getLogger("hf_vidtok.label_assignments")


def build_parser() -> argparse.ArgumentParser:
    from hf_vidtok.evatok.curves import DEFAULT_W_Q

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--score_table", required=True, help="score-table folder, Parquet file or Hub dataset repo id")
    p.add_argument("--revision", default=None, help="Hub revision of --score_table")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--w_q", type=float, nargs="+", default=list(DEFAULT_W_Q), help="quality weights (w_l = 2 - w_q)")
    p.add_argument("--quality_metric", default=None, choices=["lpips", "mse", "ssim"],
                   help="metric of the reward (default: the table's quality_metric)")
    p.add_argument("--stats", default=None, help="reward_stats.json to reuse (default: computed from this table)")
    p.add_argument("--stats_samples", type=int, default=None,
                   help="random (clip, assignment) pairs for the quality mean/std (default: all pairs)")
    p.add_argument("--seed", type=int, default=0, help="seed of --stats_samples")
    p.add_argument("--num_thresholds", type=int, default=21, help="points of the threshold curve")
    p.add_argument("--reference_w_q", type=float, default=1.2, help="w_q of the reward percentile in the curves")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hf_vidtok.evatok.curves import label_table, quality_cost_curves, write_quality_cost_curves
    from hf_vidtok.evatok.reward import RewardStats, compute_reward_stats
    from hf_vidtok.evatok.score_table import load_score_table

    table = load_score_table(args.score_table, revision=args.revision)
    metric = args.quality_metric or table.quality_metric
    if args.stats:
        with open(args.stats, encoding="utf-8") as f:
            stats = RewardStats.from_dict(json.load(f))
    else:
        stats = compute_reward_stats(
            table.metric(metric), table.levels, table.num_blocks, metric, num_samples=args.stats_samples, seed=args.seed
        )
    os.makedirs(args.output_dir, exist_ok=True)
    labels = label_table(table, args.w_q, stats=stats, quality_metric=metric)
    columns = {"key": pa.array(table.keys.tolist(), type=pa.string())}
    for w, lab in labels.items():
        columns[f"assignment_wq{w:g}"] = pa.array(lab.numpy(), type=pa.int64())
    meta = {
        "levels": json.dumps(list(table.levels)),
        "num_blocks": str(table.num_blocks),
        "quality_metric": metric,
        "reward_stats": json.dumps(stats.to_dict()),
    }
    labels_path = os.path.join(args.output_dir, "labels.parquet")
    pq.write_table(pa.table(columns).replace_schema_metadata(meta), labels_path)
    with open(os.path.join(args.output_dir, "reward_stats.json"), "w", encoding="utf-8") as f:
        json.dump(stats.to_dict(), f, indent=1)
    curves = quality_cost_curves(
        table, stats, args.w_q, num_thresholds=args.num_thresholds, reference_w_q=args.reference_w_q
    )
    json_path, png_path = write_quality_cost_curves(curves, args.output_dir)
    for p in curves["curves"]["max_reward"]:
        logger.info("w_q %.2f: %.1f tokens/clip, reward percentile at w_q %.2f: %.4f",
                    p["w_q"], p["avg_tokens"], args.reference_w_q, p["reward_percentile"])
    logger.info("wrote %s, %s, %s for %d clips", labels_path, json_path, png_path, table.num_clips)
    return {"labels": labels_path, "curves_json": json_path, "curves_png": png_path}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
