"""bench/bench_evatok_mixed.py --smoke: the mixed-complexity benchmark's build and the whole recipe (proxy, scores,
labels, router, calibration, final tokenizer, fixed-length tokenizers, evaluations, report) at a few steps: every
stage's output loads and the figures have the shapes and categories the README table reads."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("accelerate")
pytest.importorskip("av")
pytest.importorskip("skimage")
pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parents[1]
CATEGORIES = ["still", "slow", "fast", "cut", "video"]


def test_smoke_run_and_report(tmp_path):
    from hf_vidtok.evatok.score_table import load_score_table
    from hf_vidtok.models.evatok import EvatokRouter, EvatokTokenizer

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    seed_dir, data = tmp_path / "seed0", tmp_path / "data"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench_evatok_mixed.py"), "--smoke", "--seed", "0",
                           "--output_dir", str(seed_dir), "--data_dir", str(data)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    stages = {line["stage"] for line in lines if "stage" in line}
    assert {"data", "proxy", "fixed_8", "fixed_16", "score_train", "score_held_out", "labels", "router", "calibrate",
            "final", "evaluate_proxy", "evaluate_final", "evaluate_fixed_8", "evaluate_fixed_16"} <= stages

    # every stage's output loads
    for name in ("proxy", "final", "fixed_8", "fixed_16"):
        tok = EvatokTokenizer.from_pretrained(seed_dir / name)
        assert tok.config.num_blocks == 4 and tok.config.token_levels == [4, 8, 16, 32]
    assert EvatokTokenizer.from_pretrained(seed_dir / "final").router is not None
    router = EvatokRouter.from_pretrained(seed_dir / "router")
    table = load_score_table(seed_dir / "scores_held_out")
    assert router.config.num_assignments == table.num_assignments == 256
    assert set(table.labels.tolist()) == set(range(5))  # every category is held out

    results = json.loads((seed_dir / "results.json").read_text())
    assert set(results["categories"]) == set(CATEGORIES)
    for cat in results["categories"].values():
        assert len(cat["mean_block_tokens"]) == 4 and 16 <= cat["mean_tokens"] <= 128
    assert [f["level"] for f in results["fixed"]] == [8, 16]
    head = [r for r in results["final_vs_fixed"] if r["headline"]]
    assert len(head) == 1 and head[0]["w_q"] == results["calibration"]["w_q"]
    assert results["num_held_out_clips"] == table.num_clips
    # the reward analysis: the oracle's tokens per category and the metric's gain per token, from the held-out table
    analysis = results["reward_analysis"]
    assert analysis["quality_metric"] == "ssim" and analysis["calibrated_w_q"] == results["calibration"]["w_q"]
    assert list(analysis["oracle_tokens"]) == ["calibrated", "w_q 1.2"]
    for tokens in analysis["oracle_tokens"].values():
        assert set(tokens) == set(CATEGORIES) and all(16 <= v <= 128 for v in tokens.values())
    assert set(analysis["gain_per_token"]) == set(CATEGORIES)
    for steps in analysis["gain_per_token"].values():
        assert list(steps) == ["4->8", "8->16", "16->32"]
        assert all(set(v) == {"block_0", "every_block"} and all(map(math.isfinite, v.values())) for v in steps.values())

    report = subprocess.run([sys.executable, str(REPO / "bench" / "bench_evatok_mixed.py"), "--report", str(seed_dir),
                             "--output_dir", str(tmp_path / "report")], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    summary = json.loads((tmp_path / "report" / "report.json").read_text())["summary"]
    assert summary["seeds"] == [0] and set(summary["categories"]) == set(CATEGORIES)
    assert summary["oracle_categories"]["calibrated"]["still"]["values"] == [
        round(analysis["oracle_tokens"]["calibrated"]["still"], 4)]
    assert summary["gain_per_token"]["fast"]["4->8"]["block_0"] == analysis["gain_per_token"]["fast"]["4->8"]["block_0"]
    for png in ("quality_cost.png", "held_out_grid.png"):
        assert (tmp_path / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
