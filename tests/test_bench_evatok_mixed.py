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
import torch

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
    from hf_vidtok.metrics.lpips_vgg import LPIPS
    from hf_vidtok.models.evatok import EvatokRouter, EvatokTokenizer

    env = _env()
    seed_dir, data = tmp_path / "seed0", tmp_path / "data"
    lpips = LPIPS().save_pretrained(tmp_path / "lpips")  # random weights stand in for the real ones
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench_evatok_mixed.py"), "--smoke", "--seed", "0",
                           "--output_dir", str(seed_dir), "--data_dir", str(data), "--lpips_weights", lpips],
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
    # LPIPS in every evaluation (the weights given), not in the score tables (the reward is SSIM)
    # (random LPIPS heads can give negative distances: finite is what holds)
    assert all(math.isfinite(f["mean_lpips"]) for f in results["fixed"]) and results["lpips_weights"] == lpips
    assert math.isfinite(head[0]["gap_lpips"]) and math.isfinite(head[0]["lpips"])
    assert all("lpips" in p for p in results["proxy_uniform"]) and table.lpips is None
    # the reward analysis: the oracle's tokens per category and the metric's gain per token, from the held-out table
    analysis = results["reward_analysis"]
    assert analysis["quality_metric"] == "ssim" and analysis["calibrated_w_q"] == results["calibration"]["w_q"]
    assert list(analysis["oracle_tokens"]) == ["calibrated", "w_q 1.2"]
    for tokens in analysis["oracle_tokens"].values():
        assert set(tokens) == set(CATEGORIES) and all(16 <= v <= 128 for v in tokens.values())
    # the oracle at mean budgets: the budget reached (or the longest assignments), the categories' tokens those of the
    # max-reward choice at the recorded w_q, recomputed here from the table and the reward statistics
    from hf_vidtok.evatok.reward import RewardStats, best_assignment, proxy_reward

    stats = RewardStats.from_dict(json.loads((seed_dir / "labels" / "reward_stats.json").read_text()))
    at_budget = analysis["oracle_at_budget"]
    assert list(at_budget) == ["32", "48", "64", "80", "96"]
    means = [v["mean_tokens"] for v in at_budget.values()]
    # (a budget beyond what the oracle ever spends, even at w_l = 0, leaves the bisection at w_q = 2)
    assert means == sorted(means) and means[0] >= 32, means
    assert all(v["mean_tokens"] >= float(b) or v["w_q"] == 2.0 for b, v in at_budget.items()), at_budget
    for row in at_budget.values():
        chosen = best_assignment(proxy_reward(table.metric("ssim"), stats, row["w_q"]), stats=stats).numpy()
        lengths = table.lengths[chosen]
        assert row["mean_tokens"] == pytest.approx(float(lengths.mean()))
        for c, name in enumerate(CATEGORIES):
            assert row["categories"][name] == pytest.approx(float(lengths[table.labels == c].mean()))
            assert sum(row["category_blocks"][name]) == pytest.approx(row["categories"][name], abs=0.03)
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
    # the reference code: for every level no more bits per block than the proxy's tokens, finite PSNRs per category
    reference = results["reference_codec"]["levels"]
    assert list(reference) == ["4", "8", "16", "32"]
    for k, level in reference.items():
        assert level["bits_per_block"] == int(k) * 8  # a 256-code codebook: 8 bits per token
        assert level["grid"] ** 2 * level["palette_bits"] <= level["bits_per_block"] and level["palette_bits"] <= 12
        for key in ("psnr", "proxy_psnr"):
            assert set(level[key]) == set(CATEGORIES) and all(map(math.isfinite, level[key].values()))
    # block 0 sees the same tokens under block_0_max and uniform_max (block causality)
    for name in CATEGORIES:
        assert carry["block_psnr"]["block_0_max"][name][0] == pytest.approx(carry["block_psnr"]["uniform_max"][name][0], abs=2e-3)
    # the repeat analysis: the standard candidates re-derive reward_analysis's oracle (the same table, statistics of
    # every pair), the repeat suffixes add 4 + 16 + 64 candidates; budgets in the same order
    repeat = results["repeat_analysis"]
    assert repeat["quality_metric"] == "ssim"
    assert (repeat["standard_candidates"], repeat["with_repeats_candidates"]) == (256, 256 + 4 + 16 + 64)
    assert list(repeat["budgets"]) == list(at_budget)
    for budget, row in repeat["budgets"].items():
        assert row["standard"]["categories"] == pytest.approx(at_budget[budget]["categories"])
        assert row["standard"]["mean_tokens"] == pytest.approx(at_budget[budget]["mean_tokens"])
        blocks = row["with_repeats"]["category_blocks"]
        for name in CATEGORIES:  # repeats only at the end: once every clip repeats a block, it repeats every later one
            b = blocks[name]
            assert all(v >= 0 for v in b) and sum(b) == pytest.approx(row["with_repeats"]["categories"][name], abs=0.03)
            assert all(later == 0 for t, v in enumerate(b) if v == 0 for later in b[t:])
        for key in ("standard", "with_repeats"):
            r = row[key]
            assert r["gap_psnr"] == pytest.approx(r["psnr"] - r["uniform_psnr_at_equal_tokens"])
            assert all(map(math.isfinite, (r["psnr"], r["uniform_psnr_at_equal_tokens"])))

    report = subprocess.run([sys.executable, str(REPO / "bench" / "bench_evatok_mixed.py"), "--report", str(seed_dir),
                             "--output_dir", str(tmp_path / "report")], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    summary = json.loads((tmp_path / "report" / "report.json").read_text())["summary"]
    assert summary["seeds"] == [0] and set(summary["categories"]) == set(CATEGORIES)
    assert summary["oracle_categories"]["calibrated"]["still"]["values"] == [
        round(analysis["oracle_tokens"]["calibrated"]["still"], 4)]
    assert summary["gain_per_token"]["fast"]["4->8"]["block_0"] == analysis["gain_per_token"]["fast"]["4->8"]["block_0"]
    for budget, row in at_budget.items():
        assert summary["oracle_at_budget"][budget]["categories"]["fast"]["values"] == [round(row["categories"]["fast"], 4)]
        assert summary["oracle_at_budget"][budget]["seeds_still_below_fast"] == int(row["categories"]["still"] < row["categories"]["fast"])
    assert summary["carry_loss_db"]["still"]["values"] == [round(carry["carry_loss_db"]["still"], 4)]
    assert summary["repeat_analysis"]["48"]["with_repeats"]["gap_psnr"]["values"] == [round(repeat["budgets"]["48"]["with_repeats"]["gap_psnr"], 4)]
    cats = repeat["budgets"]["48"]["with_repeats"]["categories"]
    assert summary["repeat_analysis"]["48"]["with_repeats"]["seeds_still_below_fast"] == int(cats["still"] < cats["fast"])
    assert summary["gap_lpips"]["values"] == [round(head[0]["gap_lpips"], 4)]
    assert summary["reference_codec"]["16"]["psnr"] == reference["16"]["psnr"]
    assert summary["reference_codec"]["16"]["proxy_psnr"]["fast"]["values"] == [round(reference["16"]["proxy_psnr"]["fast"], 4)]
    for png in ("quality_cost.png", "held_out_grid.png"):
        assert (tmp_path / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_clip_size_follows_the_tokenizer_recipe(tmp_path):
    """The benchmark's clips take the recipe's num_frames / image_size, so another resolution builds its own data."""
    bench = _bench()
    assert bench._recipe_clip_size(str(REPO / "training" / "configs" / "evatok_mixed.yaml")) == {
        "num_frames": 16, "resolution": 32, "frame_stride": 1}
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model_config:\n  image_size: 16\n  num_frames: 8\n")
    assert bench._recipe_clip_size(str(recipe)) == {"num_frames": 8, "resolution": 16, "frame_stride": 1}
    recipe.write_text("frame_stride: 4\nmodel_config:\n  image_size: 16\n  num_frames: 4\n")  # frames 0, 4, 8, 12
    assert bench._recipe_clip_size(str(recipe)) == {"num_frames": 13, "resolution": 16, "frame_stride": 4}
    recipe.write_text("model_config:\n  image_size: [16, 32]\n")
    with pytest.raises(ValueError, match="square"):
        bench._recipe_clip_size(str(recipe))
    for bad in ("0", "2.0", "true"):
        recipe.write_text(f"frame_stride: {bad}\nmodel_config:\n  image_size: 16\n")
        with pytest.raises(ValueError, match="frame_stride"):
            bench._recipe_clip_size(str(recipe))


def test_frame_stride_of_the_recipe_reaches_every_stage_that_reads_clips(tmp_path):
    """A recipe with ``frame_stride``: the stages that read clips without the score table's metadata get the flag
    (the tokenizers read it from the recipe itself, the router and the adaptive evaluations from the table); the
    default recipe's commands are unchanged, so runs recorded before keep their signatures. The bench's own clip
    loader reads every S-th frame of the built clips."""
    bench = _bench()
    out, data = str(tmp_path / "seed0"), str(tmp_path / "data")
    plain = bench.stage_commands(bench.build_parser().parse_args(["--output_dir", out, "--data_dir", data]), out)
    assert not any("--frame_stride" in cmd for cmd, _ in plain.values())
    recipe = tmp_path / "r.yaml"
    recipe.write_text((REPO / "training" / "configs" / "evatok_mixed.yaml").read_text()
                      .replace("num_frames: 16", "num_frames: 4").replace("temporal_patch_size: 4", "temporal_patch_size: 1")
                      + "frame_stride: 4\n")
    strided = bench.stage_commands(bench.build_parser().parse_args(
        ["--output_dir", out, "--data_dir", data, "--tokenizer_recipe", str(recipe)]), out)
    flagged = {name for name, (cmd, _) in strided.items() if "--frame_stride" in cmd}
    assert flagged == {"score_train", "score_held_out"} | {f"evaluate_fixed_{k}" for k in (4, 8, 16, 32)}
    for name in flagged:
        cmd = strided[name][0]
        assert cmd[cmd.index("--frame_stride") + 1] == "4"

    from types import SimpleNamespace

    from hf_vidtok.data.mixed_complexity import build_mixed_complexity_dataset

    build_mixed_complexity_dataset(data, num_frames=13, resolution=16, **bench.SMOKE_DATA)
    every = bench._load_clips(data, "validation", SimpleNamespace(num_frames=13, image_size=16))[0]
    strided_clips, labels = bench._load_clips(data, "validation", SimpleNamespace(num_frames=4, image_size=16), 4)
    assert strided_clips.shape == (every.shape[0], 3, 4, 16, 16) and len(labels) == every.shape[0]
    assert torch.equal(strided_clips, every[:, :, ::4])


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


def test_repeat_level_recipe_with_plain_fixed_length_baselines(tmp_path):
    """The shipped repeat-level recipe (token levels [0, 4, 8, 16, 32]) with ``--fixed_recipe`` the plain one: the
    proxy, router and final tokenizer take the 625 assignments, the fixed-length tokenizers have no repeat level, the
    proxy's uniform baseline leaves out the all-repeat assignment, and the figures compare at equal tokens."""
    from hf_vidtok.evatok.score_table import load_score_table
    from hf_vidtok.models.evatok import EvatokRouter, EvatokTokenizer

    seed_dir = tmp_path / "seed0"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench_evatok_mixed.py"), "--smoke", "--seed", "0",
                           "--tokenizer_recipe", "training/configs/evatok_mixed_repeat.yaml",
                           "--fixed_recipe", "training/configs/evatok_mixed.yaml",
                           "--output_dir", str(seed_dir), "--data_dir", str(tmp_path / "data")],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for name in ("proxy", "final"):
        assert EvatokTokenizer.from_pretrained(seed_dir / name).config.token_levels == [0, 4, 8, 16, 32]
    for name in ("fixed_8", "fixed_16"):
        assert EvatokTokenizer.from_pretrained(seed_dir / name).config.token_levels == [4, 8, 16, 32]
    table = load_score_table(seed_dir / "scores_held_out")
    assert EvatokRouter.from_pretrained(seed_dir / "router").config.num_assignments == table.num_assignments == 625
    results = json.loads((seed_dir / "results.json").read_text())
    assert [p["level"] for p in results["proxy_uniform"]] == [4, 8, 16, 32]
    assert [f["level"] for f in results["fixed"]] == [8, 16]
    assert results["repeat_analysis"] == {"skipped": "the tokenizer has a repeat level (0 tokens) of its own"}
    assert results["carry_analysis"]["assignments"]["block_0_max"] == [32, 0, 0, 0]
    for row in results["final_vs_fixed"]:  # the final tokenizer's assignments are from its levels
        assert len(row["mean_block_tokens"]) == 4 and 0 <= row["avg_tokens"] <= 128
    stages = json.loads((seed_dir / "stages.json").read_text())
    assert set(stages["fixed_8"]["signature"]["recipes"]) == {"tokenizer", "router", "fixed"}
    assert set(stages["proxy"]["signature"]["recipes"]) == {"tokenizer", "router"}


def test_fixed_recipe_must_take_the_same_clips(tmp_path):
    bench = _bench()
    recipe = tmp_path / "r.yaml"
    recipe.write_text((REPO / "training" / "configs" / "evatok_mixed.yaml").read_text().replace("image_size: 32", "image_size: 64"))
    with pytest.raises(ValueError, match="--fixed_recipe"):
        bench.main(["--output_dir", str(tmp_path / "o"), "--data_dir", str(tmp_path / "d"), "--fixed_recipe", str(recipe)])
    assert not (tmp_path / "d").exists()  # refused before building anything


def test_data_flags_reach_the_builder(tmp_path, monkeypatch):
    """--clips_per_photograph / --window_fraction reach the benchmark's builder (over the smoke sizes too); a bad
    value is the builder's ValueError, before any stage."""
    import hf_vidtok.data.mixed_complexity as mixed

    bench, seen = _bench(), {}

    class Built(Exception):
        pass

    def fake_build(output_dir, **settings):
        seen.update(settings)
        raise Built

    monkeypatch.setattr(mixed, "build_mixed_complexity_dataset", fake_build)
    args = ["--output_dir", str(tmp_path / "o"), "--data_dir", str(tmp_path / "d")]
    with pytest.raises(Built):
        bench.main(args + ["--clips_per_photograph", "12", "--window_fraction", "0.1", "0.2"])
    assert seen == {"num_frames": 16, "resolution": 32, "clips_per_photograph": 12, "window_fraction": (0.1, 0.2)}
    seen.clear()
    with pytest.raises(Built):
        bench.main(args + ["--smoke", "--clips_per_photograph", "2"])
    assert seen["clips_per_photograph"] == 2 and seen["train_clips_per_video"] == 1
    monkeypatch.undo()
    with pytest.raises(ValueError, match="clips_per_photograph"):
        bench.main(args + ["--clips_per_photograph", "0"])
    assert not (tmp_path / "d").exists()


def _bench():
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import bench_evatok_mixed as bench
    finally:
        sys.path.remove(str(REPO / "bench"))
    return bench


def test_lpips_weights_reach_the_evaluations_and_the_signatures(tmp_path):
    """--lpips_weights: every evaluation gets them, the scoring only with --quality_metric lpips; the signature names
    the weights by content, so a moved file is the same stage and other weights are not."""
    bench = _bench()
    weights = tmp_path / "w" / "lpips_vgg.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"weights one")
    out, data = str(tmp_path / "seed0"), str(tmp_path / "data")
    args = bench.build_parser().parse_args(["--output_dir", out, "--data_dir", data, "--lpips_weights", str(weights)])
    stages = bench.stage_commands(args, out)
    reads = {name for name, (cmd, _) in stages.items() if "--lpips_weights" in cmd}
    assert reads == {"evaluate_proxy", "evaluate_final"} | {f"evaluate_fixed_{k}" for k in (4, 8, 16, 32)}
    for name in reads:
        cmd = stages[name][0]
        assert cmd[cmd.index("--lpips_weights") + 1] == str(weights)
    args_lpips = bench.build_parser().parse_args(["--output_dir", out, "--data_dir", data, "--lpips_weights",
                                                  str(weights), "--quality_metric", "lpips"])
    lpips_stages = bench.stage_commands(args_lpips, out)
    assert {"score_train", "score_held_out"} <= {n for n, (cmd, _) in lpips_stages.items() if "--lpips_weights" in cmd}

    sig = bench._stage_signature(args, out, stages["evaluate_final"][0])
    assert "{lpips}" in sig["argv"] and str(weights) not in " ".join(sig["argv"])
    assert set(sig["recipes"]) == {"tokenizer", "router", "lpips"}
    assert set(bench._stage_signature(args, out, stages["proxy"][0])["recipes"]) == {"tokenizer", "router"}
    moved = tmp_path / "elsewhere.safetensors"
    moved.write_bytes(weights.read_bytes())
    args.lpips_weights = str(moved)
    assert bench._stage_signature(args, out, bench.stage_commands(args, out)["evaluate_final"][0]) == sig
    moved.write_bytes(b"weights two")
    assert bench._stage_signature(args, out, bench.stage_commands(args, out)["evaluate_final"][0]) != sig


def test_lpips_without_weights_or_with_wrong_weights_is_refused(tmp_path):
    bench = _bench()
    out = tmp_path / "seed0"
    with pytest.raises(ValueError, match="--lpips_weights"):
        bench.main(["--output_dir", str(out), "--quality_metric", "lpips"])
    from safetensors.torch import save_file
    import torch

    wrong = tmp_path / "not_lpips.safetensors"
    save_file({"w": torch.zeros(2)}, str(wrong))
    with pytest.raises(ValueError, match="not an hf_vidtok LPIPS file"):
        bench.main(["--output_dir", str(out), "--lpips_weights", str(wrong)])
    assert not out.exists()  # refused before anything was written


def _write_eval(folder: Path, curves: dict, per_clip: dict | None = None):
    folder.mkdir(parents=True)
    (folder / "adaptive_quality_cost.json").write_text(json.dumps({"curves": curves, "num_clips": 2}))
    if per_clip is not None:
        (folder / "adaptive_per_clip.json").write_text(json.dumps(per_clip))


def test_final_figures_with_lpips_compare_at_equal_tokens(tmp_path):
    """LPIPS (a distance: lower is better) is interpolated at equal tokens like PSNR; its gap is final minus fixed and
    the tokens saved at equal LPIPS come from the decreasing fixed-length curve."""
    bench = _bench()
    out = tmp_path / "seed0"
    fixed = {8: (32.0, 20.0, 0.50, 0.40), 16: (64.0, 22.0, 0.60, 0.20)}  # level: tokens, psnr, ssim, lpips
    for k, (tokens, psnr, ssim, lp) in fixed.items():
        _write_eval(out / f"eval_fixed_{k}", {"uniform": [
            {"level": k, "avg_tokens": tokens, "mean_psnr": psnr, "mean_ssim": ssim, "mean_lpips": lp}]})
    router = {"w_q": 1.5, "avg_tokens": 48.0, "mean_block_tokens": [24, 8, 8, 8], "mean_psnr": 21.5, "mean_ssim": 0.56,
              "mean_lpips": 0.25}
    _write_eval(out / "eval_final", {"router": [router], "uniform": []}, {
        "labels": [0, 2], "points": [{"curve": "router", "w_q": 1.5, "block_tokens": [[32, 4, 4, 4], [16, 16, 16, 16]],
                                      "psnr": [21.0, 22.0]}]})
    args = bench.build_parser().parse_args(["--output_dir", str(out), "--fixed_levels", "8", "16"])
    figures = bench._final_figures(args, str(out), 1.5)
    assert [f["mean_lpips"] for f in figures["fixed"]] == [0.40, 0.20]
    (row,) = figures["final_vs_fixed"]
    assert row["fixed_lpips_at_equal_tokens"] == pytest.approx(0.30)  # halfway between 32 and 64 tokens
    assert row["gap_lpips"] == pytest.approx(-0.05)  # better than fixed-length
    assert row["fixed_tokens_at_equal_lpips"] == pytest.approx(56.0)  # 0.25 is 3/4 of the way from 0.40 to 0.20
    assert row["saving_at_equal_lpips"] == pytest.approx(1 - 48 / 56)
    assert row["gap_psnr"] == pytest.approx(0.5) and row["fixed_tokens_at_equal_psnr"] == pytest.approx(56.0)
    assert figures["categories"]["still"]["mean_tokens"] == 44 and figures["categories"]["fast"]["mean_tokens"] == 64
    # without LPIPS in the fixed-length evaluations there is no LPIPS comparison (not a half one)
    (out / "eval_fixed_8" / "adaptive_quality_cost.json").write_text(json.dumps({"curves": {"uniform": [
        {"level": 8, "avg_tokens": 32.0, "mean_psnr": 20.0, "mean_ssim": 0.5}]}}))
    (row,) = bench._final_figures(args, str(out), 1.5)["final_vs_fixed"]
    assert "gap_lpips" not in row and "lpips" not in row and row["gap_ssim"] == pytest.approx(0.01)


def test_kmeans_palette_finds_separated_clusters():
    """The reference code's palette: k-means recovers well-separated colour clusters exactly, deterministically."""
    import torch

    bench = _bench()
    centres = torch.tensor([[0.1, 0.1, 0.1], [0.9, 0.2, 0.2], [0.2, 0.9, 0.2], [0.2, 0.2, 0.9]])
    points = (centres.repeat_interleave(50, 0) + 0.01 * torch.randn(200, 3, generator=torch.Generator().manual_seed(1)))
    palette = bench._kmeans(points, 4)
    assert torch.equal(palette, bench._kmeans(points, 4))  # seeded
    nearest = torch.cdist(centres, palette).min(1).values
    assert nearest.max() < 0.01  # every true centre has a palette colour next to it
    assert bench._kmeans(points[:3], 8).shape == (3, 3)  # never more colours than distinct points
