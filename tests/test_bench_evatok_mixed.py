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


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_smoke_run_and_report(tmp_path):
    from hf_vidtok.evatok.score_table import load_score_table
    from hf_vidtok.models.evatok import EvatokRouter, EvatokTokenizer

    env = _env()
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

    # the carry analysis: the proxy's PSNR per block and category at three assignments, and the carry loss
    carry = results["carry_analysis"]
    assert carry["assignments"] == {"uniform_min": [4] * 4, "block_0_max": [32, 4, 4, 4], "uniform_max": [32] * 4}
    for per_category in carry["block_psnr"].values():
        assert set(per_category) == set(CATEGORIES)
        assert all(len(v) == 4 and all(map(math.isfinite, v)) for v in per_category.values())
    for name, loss in carry["carry_loss_db"].items():
        blocks = carry["block_psnr"]["block_0_max"][name]
        assert loss == pytest.approx(blocks[0] - sum(blocks[1:]) / 3)
    # block 0 sees the same tokens under block_0_max and uniform_max (block causality)
    for name in CATEGORIES:
        assert carry["block_psnr"]["block_0_max"][name][0] == pytest.approx(carry["block_psnr"]["uniform_max"][name][0], abs=2e-3)

    report = subprocess.run([sys.executable, str(REPO / "bench" / "bench_evatok_mixed.py"), "--report", str(seed_dir),
                             "--output_dir", str(tmp_path / "report")], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    summary = json.loads((tmp_path / "report" / "report.json").read_text())["summary"]
    assert summary["seeds"] == [0] and set(summary["categories"]) == set(CATEGORIES)
    assert summary["oracle_categories"]["calibrated"]["still"]["values"] == [
        round(analysis["oracle_tokens"]["calibrated"]["still"], 4)]
    assert summary["gain_per_token"]["fast"]["4->8"]["block_0"] == analysis["gain_per_token"]["fast"]["4->8"]["block_0"]
    assert summary["carry_loss_db"]["still"]["values"] == [round(carry["carry_loss_db"]["still"], 4)]
    for png in ("quality_cost.png", "held_out_grid.png"):
        assert (tmp_path / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_clip_size_follows_the_tokenizer_recipe(tmp_path):
    """The benchmark's clips take the recipe's num_frames / image_size, so another resolution builds its own data."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import bench_evatok_mixed as bench
    finally:
        sys.path.remove(str(REPO / "bench"))
    assert bench._recipe_clip_size(str(REPO / "training" / "configs" / "evatok_mixed.yaml")) == {"num_frames": 16,
                                                                                              "resolution": 32}
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model_config:\n  image_size: 16\n  num_frames: 8\n")
    assert bench._recipe_clip_size(str(recipe)) == {"num_frames": 8, "resolution": 16}
    recipe.write_text("model_config:\n  image_size: [16, 32]\n")
    with pytest.raises(ValueError, match="square"):
        bench._recipe_clip_size(str(recipe))


def test_proxy_only_stops_after_the_proxy_stages(tmp_path):
    """--proxy_only: stages 1-3 and the proxy's evaluation, their figures, no final or fixed-length tokenizer; the
    report refuses such a run."""
    env, seed_dir = _env(), tmp_path / "seed1"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench_evatok_mixed.py"), "--smoke", "--proxy_only",
                           "--seed", "1", "--output_dir", str(seed_dir), "--data_dir", str(tmp_path / "data")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert {line["stage"] for line in lines if "stage" in line} == {
        "data", "proxy", "score_train", "score_held_out", "labels", "router", "calibrate", "evaluate_proxy"}
    assert not (seed_dir / "final").exists() and not list(seed_dir.glob("fixed_*"))
    figures = {line["figure"]: line for line in lines if "figure" in line}
    results = json.loads((seed_dir / "results.json").read_text())
    assert not {"fixed", "final_vs_fixed", "final_uniform", "categories"} & set(results)
    assert results["seed"] == 1 and results["proxy"] and results["proxy_uniform"]
    oracle = results["reward_analysis"]["oracle_tokens"]["calibrated"]
    assert set(oracle) == set(CATEGORIES) and figures["oracle_categories"]["still"] == oracle["still"]
    assert figures["carry_loss_db"]["fast"] == results["carry_analysis"]["carry_loss_db"]["fast"]
    assert results["data_dir"] == str(tmp_path / "data") and results["data_settings"]["resolution"] == 32
    report = subprocess.run([sys.executable, str(REPO / "bench" / "bench_evatok_mixed.py"), "--report", str(seed_dir),
                             "--output_dir", str(tmp_path / "report")], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert report.returncode != 0 and "--proxy_only" in report.stderr

    # the folders moved elsewhere: the done stages are the same stages (nothing runs again, same figures)
    stages = json.loads((seed_dir / "stages.json").read_text())
    assert stages["score_train"]["signature"]["argv"][-1] == "{out}/scores_train"
    moved, moved_data = tmp_path / "moved" / "seed1", tmp_path / "moved" / "data"
    moved.parent.mkdir()
    (tmp_path / "data").rename(moved_data)
    seed_dir.rename(moved)
    again = subprocess.run([sys.executable, str(REPO / "bench" / "bench_evatok_mixed.py"), "--smoke", "--proxy_only",
                            "--seed", "1", "--output_dir", str(moved), "--data_dir", str(moved_data)],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    lines = [json.loads(line) for line in again.stdout.splitlines() if line.startswith("{")]
    assert {line["stage"] for line in lines if "stage" in line} == {"data"}
    assert json.loads((moved / "results.json").read_text())["reward_analysis"] == results["reward_analysis"]
    # other settings in the same folder are refused, naming the stages they would mix with
    other = subprocess.run([sys.executable, str(REPO / "bench" / "bench_evatok_mixed.py"), "--smoke", "--proxy_only",
                            "--seed", "1", "--quality_metric", "mse", "--output_dir", str(moved), "--data_dir",
                            str(moved_data)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert other.returncode != 0 and "ValueError" in other.stderr
    # (the scores, and every done stage that read them)
    assert ("['score_train', 'score_held_out', 'labels', 'router', 'calibrate', 'evaluate_proxy']" in other.stderr
            and "--output_dir" in other.stderr)
    assert json.loads((moved / "stages.json").read_text()) == stages
