"""EVATok end to end on the sample videos: the tiny four-stage recipe on their training part, measured on their
held-out part (issue: "EVATok end to end on real video"). One command:

    python bench/bench_evatok_end_to_end.py --output_dir outputs/evatok-e2e-tiny

runs, as the README's section "EVATok: adaptive-length tokens in four stages" does, each stage's real script in a
subprocess (each reads the previous stage's outputs by path) and times it:

1. ``proxy``: ``train_tokenizer.py --config training/configs/evatok_tiny_samples.yaml`` (random assignments); it
   writes the time split of the sample videos under ``proxy/sample_data`` (first 75% of every video for training,
   last 25% held out), which every later stage reads;
2. ``score_train`` / ``score_held_out``: ``score_assignments.py`` on the training / held-out clips;
3. ``labels``: ``label_assignments.py`` (labels, reward statistics, the table's curves);
4. ``router``: ``train_router.py --config training/configs/evatok_router_tiny_samples.yaml`` on the training table,
   validated on the held-out table;
5. ``evaluate_proxy``: ``evaluate_adaptive.py`` on the held-out clips with the proxy, the router and the held-out
   table (uniform / router / max-reward curves of the tokenizer the router was trained for);
6. ``final`` (stage 4): ``train_tokenizer.py --config training/configs/evatok_final_tiny_samples.yaml --router``,
   and ``evaluate_final``: the same evaluation of the final tokenizer with the router it ships;
7. ``baseline``: the fixed-length tokenizer of the same recipe (``--assignment_sampling uniform:K``), and
   ``evaluate_baseline``: its uniform curve on the same held-out clips (the paper's comparison at equal tokens);
8. ``tokens`` -> ``ar`` -> ``generate``: the final tokenizer's variable-length tokens of the sample videos
   (``extract_tokens.py`` with the router), a length-token AR model (``train_ar.py``), ``hf-vidtok generate``;
   ``baseline_tokens`` -> ``baseline_ar``: the same for the fixed-length baseline (K tokens per block).

Prints one JSON object per stage (``{"stage", "seconds", "command"}``), then the figures from the evaluation:
router vs uniform quality at equal mean tokens (the router's average budgets), the token saving at equal quality,
and the per-block mean counts. ``--stages`` runs a subset (their inputs must exist from an earlier run).
The tiny recipe's reward metric is SSIM (``--quality_metric``): no perceptual (LPIPS) weights ship offline, and
SSIM, unlike MSE, is not the PSNR the curves also report.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("proxy", "score_train", "score_held_out", "labels", "router", "evaluate_proxy", "final", "evaluate_final",
          "baseline", "evaluate_baseline", "tokens", "ar", "generate", "baseline_tokens", "baseline_ar")


def commands(out: str, args) -> dict:
    """Each stage's command line (run from the repository root)."""
    py = sys.executable
    data = f"{out}/proxy/sample_data"
    extra = shlex.split(args.tokenizer_args or "")  # flags added to the three tokenizer trainings
    score = [py, "training/score_assignments.py", "--tokenizer_name_or_path", f"{out}/proxy", "--train_data_dir", data,
             "--dataset_layout", "csv", "--quality_metric", args.quality_metric, "--batch_size", "8"]
    return {
        "proxy": [py, "training/train_tokenizer.py", "--config", "training/configs/evatok_tiny_samples.yaml",
                  "--output_dir", f"{out}/proxy", *extra],
        "score_train": score + ["--split", "train", "--clips_per_video", str(args.train_clips_per_video),
                                "--output_dir", f"{out}/scores_train"],
        "score_held_out": score + ["--split", "validation", "--clips_per_video", str(args.held_out_clips_per_video),
                                   "--output_dir", f"{out}/scores_held_out"],
        "labels": [py, "training/label_assignments.py", "--score_table", f"{out}/scores_train",
                   "--output_dir", f"{out}/labels"],
        "router": [py, "training/train_router.py", "--config", "training/configs/evatok_router_tiny_samples.yaml",
                   "--no-sample_videos", "--train_data_dir", data, "--score_table", f"{out}/scores_train",
                   "--validation_score_table", f"{out}/scores_held_out",
                   "--reward_stats", f"{out}/labels/reward_stats.json", "--torch_num_threads", str(args.threads),
                   "--output_dir", f"{out}/router"],
        "evaluate_proxy": [py, "training/evaluate_adaptive.py", "--tokenizer_name_or_path", f"{out}/proxy",
                           "--router_name_or_path", f"{out}/router", "--score_table", f"{out}/scores_held_out",
                           "--target_mean_tokens", *args.budgets.split(), "--output_dir", f"{out}/eval_proxy"],
        "final": [py, "training/train_tokenizer.py", "--config", "training/configs/evatok_final_tiny_samples.yaml",
                  "--router", f"{out}/router", "--output_dir", f"{out}/final", *extra],
        "evaluate_final": [py, "training/evaluate_adaptive.py", "--tokenizer_name_or_path", f"{out}/final",
                           "--score_table", f"{out}/scores_held_out", "--target_mean_tokens", *args.budgets.split(),
                           "--output_dir", f"{out}/eval_final"],
        "baseline": [py, "training/train_tokenizer.py", "--config", "training/configs/evatok_tiny_samples.yaml",
                     "--assignment_sampling", f"uniform:{args.baseline_level}", "--output_dir", f"{out}/baseline",
                     *extra],
        "evaluate_baseline": [py, "training/evaluate_adaptive.py", "--tokenizer_name_or_path", f"{out}/baseline",
                              "--data_dir", data, "--dataset_layout", "csv", "--split", "validation",
                              "--clips_per_video", str(args.held_out_clips_per_video), "--no_router",
                              "--output_dir", f"{out}/eval_baseline"],
        "tokens": [py, "training/extract_tokens.py", "--tokenizer_name_or_path", f"{out}/final",
                   "--sample_videos", "--clips_per_video", "16", "--flip_augment",
                   "--output_dir", f"{out}/tokens"],
        "ar": [py, "training/train_ar.py", "--config", "training/configs/ar_tiny_samples.yaml",
               "--token_dataset", f"{out}/tokens", "--output_dir", f"{out}/ar"],
        "generate": [py, "-m", "hf_vidtok.commands", "generate", "bigbuckbunny", "bikes", "carphone_pristine",
                     "--tokenizer", f"{out}/final", "--generator", f"{out}/ar", "--num_videos_per_label", "2",
                     "--no_progress", "--output_dir", f"{out}/samples"],
        "baseline_tokens": [py, "training/extract_tokens.py", "--tokenizer_name_or_path", f"{out}/baseline",
                            "--assignment", ",".join([str(args.baseline_level)] * 2), "--sample_videos",
                            "--clips_per_video", "16", "--flip_augment", "--output_dir", f"{out}/baseline_tokens"],
        "baseline_ar": [py, "training/train_ar.py", "--config", "training/configs/ar_tiny_samples.yaml",
                        "--token_dataset", f"{out}/baseline_tokens", "--output_dir", f"{out}/baseline_ar"],
    }


def figures(eval_json: str) -> list[dict]:
    """The measurement's figures from an ``evaluate_adaptive.py`` JSON."""
    data = json.loads(Path(eval_json).read_text())
    rows = []
    for curve in ("uniform", "router", "max_reward"):
        for p in data["curves"].get(curve, []):
            rows.append({"figure": "point", "curve": curve,
                         **{k: p[k] for k in ("level", "w_q", "target_mean_tokens") if k in p and p[k] is not None},
                         "avg_tokens": p["avg_tokens"], "mean_block_tokens": p["mean_block_tokens"],
                         "psnr": p["mean_psnr"], "ssim": p["mean_ssim"]})
    cmp = data.get("comparisons") or {}
    for eq, sav in zip(cmp.get("equal_tokens", []), cmp.get("equal_quality", [])):
        rows.append({"figure": "router_vs_uniform_at_equal_tokens",
                     **{k: eq[k] for k in ("w_q", "target_mean_tokens") if eq.get(k) is not None},
                     "avg_tokens": eq["avg_tokens"],
                     **{f"{k}_{m}": eq.get(f"{k}_mean_{m}") for m in ("psnr", "ssim") for k in ("router", "uniform", "gap")},
                     **{f"uniform_tokens_at_equal_{m}": sav.get(f"uniform_tokens_mean_{m}") for m in ("psnr", "ssim")},
                     **{f"token_saving_at_equal_{m}": sav.get(f"saving_mean_{m}") for m in ("psnr", "ssim")}})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output_dir", default="outputs/evatok-e2e-tiny")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--quality_metric", default="ssim", choices=["lpips", "mse", "ssim"])
    p.add_argument("--train_clips_per_video", type=int, default=16)
    p.add_argument("--held_out_clips_per_video", type=int, default=32,
                   help="held-out clips per video (random starts; 32 covers about every start of the held-out quarters)")
    p.add_argument("--baseline_level", type=int, default=16,
                   help="tokens per block of the fixed-length baseline tokenizer (trained with uniform:K)")
    p.add_argument("--budgets", default="12 24 48",
                   help="the router's average budgets (mean tokens per clip; budgets are upper bounds, so the ones under "
                        "the router's own choice are where it must drop tokens)")
    p.add_argument("--tokenizer_args", default=None,
                   help="extra flags for the proxy, final and baseline tokenizer trainings, e.g. '--entropy_loss_weight 3'")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads per stage (OMP_NUM_THREADS): more than the free cores of a shared machine thrash")
    args = p.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown `--stages` {unknown}; choose from {STAGES}")
    out = args.output_dir
    os.makedirs(out, exist_ok=True)
    cmds = commands(out, args)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for stage in STAGES:
        if stage not in stages:
            continue
        t0 = time.perf_counter()
        with open(os.path.join(out, f"{stage}.log"), "w", encoding="utf-8") as log:
            proc = subprocess.run(cmds[stage], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        seconds = time.perf_counter() - t0
        print(json.dumps({"stage": stage, "seconds": round(seconds, 1), "returncode": proc.returncode,
                          "command": " ".join(cmds[stage][1:])}), flush=True)
        if proc.returncode:
            raise SystemExit(f"stage {stage} failed (see {out}/{stage}.log)")
    for name in ("ar", "baseline_ar"):
        path = os.path.join(out, name, "eval_results.json")
        if os.path.exists(path):
            res = json.loads(Path(path).read_text())
            print(json.dumps({"ar": name, **{k: res.get(k) for k in (
                "nll", "nll_per_visual_token", "mean_tokens", "mean_generated_tokens")}}), flush=True)
    for name in ("eval_proxy", "eval_final", "eval_baseline"):
        eval_json = os.path.join(out, name, "adaptive_quality_cost.json")
        if os.path.exists(eval_json):
            for row in figures(eval_json):
                print(json.dumps({"evaluation": name, **row}), flush=True)


if __name__ == "__main__":
    main()
