"""EVATok end to end through the real scripts, at the smallest sizes, on generated videos (CPU).

Each stage runs its script's ``main(argv)`` (the CLI's for ``hf-vidtok generate``) and reads the previous stage's
outputs by path:

    train_tokenizer.py (stage 1 proxy, random assignments) -> score_assignments.py (stage 2: training and held-out
    tables) -> label_assignments.py (labels, reward statistics, curves) -> train_router.py (stage 3: the table, its
    clips, the reward statistics) -> evaluate_adaptive.py (held-out curves of the proxy) -> train_tokenizer.py
    --router (stage 4, the final tokenizer ships the router) -> evaluate_adaptive.py (the final tokenizer with its own
    router) -> extract_tokens.py (variable-length tokens) -> train_ar.py (length tokens) -> hf-vidtok generate
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("accelerate")
av = pytest.importorskip("av")
pytest.importorskip("pyarrow")
pytest.importorskip("matplotlib")
yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[1]
LEVELS = (2, 4, 8)


def _helpers():
    """tests/evatok's helpers (tiny videos and tokenizer sizes, script loading), imported by path."""
    spec = importlib.util.spec_from_file_location("evatok_test_helpers", REPO / "tests" / "evatok" / "evatok_test_helpers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _helpers()


def _run(relative: str, argv):
    """``main(argv)`` of a script in this process; the next one builds its own Accelerator."""
    from accelerate.state import AcceleratorState

    try:
        return helpers.load_script(relative).main(argv)
    finally:
        AcceleratorState._reset_state(True)


def _recipe(path: Path, **settings) -> str:
    path.write_text(yaml.safe_dump(settings))
    return str(path)


TOKENIZER_RECIPE = dict(
    model_type="evatok_tokenizer", model_config=dict(helpers.tiny_evatok_config_kwargs(LEVELS), token_levels=list(LEVELS)),
    assignment_sampling="random", assignment_micro_batches=2, dataset_layout="folder", train_batch_size=4,
    max_train_steps=40, learning_rate=3e-3, lr_warmup_steps=2, vq_loss_weight=1.0, entropy_loss_weight=0.02,
    perceptual_weight=0.0, disc_weight=0.0, num_validation_clips=2, checkpointing_steps=1000, validation_steps=1000,
    logging_steps=10, torch_num_threads=1, seed=0, report_to="none",
)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_evatok_chain(tmp_path, capsys):
    from hf_vidtok.evatok.score_table import load_score_table
    from hf_vidtok.models.evatok import EvatokRouter, EvatokTokenizer

    # generated videos: two classes of moving noise, slow and fast (folder layout, labels from the folders)
    videos = helpers.write_tiny_videos(tmp_path / "videos", per_class=3, frames=10)
    held_out = helpers.write_tiny_videos(tmp_path / "held_out", per_class=1, frames=10, seed=7)
    data = dict(train_data_dir=str(videos), validation_data_dir=str(held_out))

    # stage 1: the proxy tokenizer, every clip under its own random assignment
    proxy = tmp_path / "proxy"
    res = _run("training/train_tokenizer.py", ["--config", _recipe(tmp_path / "proxy.yaml", **TOKENIZER_RECIPE, **data),
                                                "--output_dir", str(proxy)])
    # it learns in 40 steps; at these sizes it learns the clips' colours, not yet to use more tokens for more detail
    # (codebook perplexity ~1): this test checks that every stage runs and feeds the next, not the adaptive gain
    assert res["psnr"] > res["initial_psnr"] + 1.0
    assert all(np.isfinite(res[f"psnr_uniform_{k}"]) for k in LEVELS)

    # stage 2: scores of every assignment of the training clips and of the held-out clips
    common = ["--tokenizer_name_or_path", str(proxy), "--quality_metric", "mse", "--batch_size", "4"]
    _run("training/score_assignments.py", common + ["--train_data_dir", str(videos), "--clips_per_video", "2",
                                                    "--output_dir", str(tmp_path / "scores")])
    _run("training/score_assignments.py", common + ["--train_data_dir", str(held_out),
                                                    "--output_dir", str(tmp_path / "scores_held_out")])
    table = load_score_table(tmp_path / "scores")
    assert table.num_clips == 12 and table.levels == LEVELS and table.num_blocks == 2
    assert table.quality_metric == "mse" and table.lpips is None and table.metadata["tokenizer"] == str(proxy)

    # labels, reward statistics and the table's quality-cost curves
    labels = _run("training/label_assignments.py", ["--score_table", str(tmp_path / "scores"), "--w_q", "0.8", "1.2",
                                                    "--output_dir", str(tmp_path / "labels")])
    assert json.loads(Path(labels["curves_json"]).read_text())["num_clips"] == 12
    stats = json.loads((tmp_path / "labels" / "reward_stats.json").read_text())
    assert stats["quality_metric"] == "mse" and stats["levels"] == list(LEVELS)

    # stage 3: a quality-head router on the table and its clips, with the labelling run's reward statistics
    router_dir = tmp_path / "router"
    router_recipe = _recipe(
        tmp_path / "router.yaml", head_type="quality", listwise_loss_weight=0.5, cache_clips=True,
        model_config=dict(hidden_size=32, num_attention_heads=2, num_hidden_layers=1, patch_size=8, temporal_patch_size=2),
        train_batch_size=4, max_train_steps=30, learning_rate=3e-3, lr_warmup_steps=2, checkpointing_steps=1000,
        validation_steps=1000, logging_steps=10, torch_num_threads=1, report_to="none")
    _run("training/train_router.py", ["--config", router_recipe, "--score_table", str(tmp_path / "scores"),
                                      "--train_data_dir", str(videos), "--validation_score_table",
                                      str(tmp_path / "scores_held_out"), "--reward_stats",
                                      str(tmp_path / "labels" / "reward_stats.json"), "--output_dir", str(router_dir)])
    router = EvatokRouter.from_pretrained(router_dir)
    assert router.config.head_type == "quality" and router.config.token_levels == list(LEVELS)
    assert router.config.quality_metric == "mse" and router.config.quality_mean == pytest.approx(stats["quality_mean"])
    assert json.loads((router_dir / "eval_results.json").read_text())["num_clips"] == 2

    # held-out evaluation of the proxy: tokenizer, router and held-out table by path, clip settings from the table
    out = _run("training/evaluate_adaptive.py", [
        "--tokenizer_name_or_path", str(proxy), "--router_name_or_path", str(router_dir), "--score_table",
        str(tmp_path / "scores_held_out"), "--w_q", "0.8", "1.2", "1.6", "--output_dir", str(tmp_path / "eval_proxy")])
    assert Path(out["png"]).is_file() and out["num_clips"] == 2 and out["data_dir"] == str(held_out)
    assert [p["avg_tokens"] for p in out["curves"]["uniform"]] == [2.0 * k for k in LEVELS]
    for p in out["curves"]["max_reward"]:  # the proxy made the table: its reconstructions reproduce the scores
        assert p["mean_mse"] == pytest.approx(p["table_mean_mse"], rel=1e-4)
    budgets = [p for p in out["curves"]["router"] if "target_mean_tokens" in p]
    assert [p["target_mean_tokens"] for p in budgets] == [8.0] and budgets[0]["avg_tokens"] <= 8.0

    # stage 4: the final tokenizer, trained from scratch with the frozen router's assignments, ships the router
    final = tmp_path / "final"
    recipe = {**TOKENIZER_RECIPE, **data}
    del recipe["assignment_sampling"]
    res = _run("training/train_tokenizer.py", ["--config", _recipe(tmp_path / "final.yaml", **recipe),
                                                "--router", str(router_dir), "--output_dir", str(final)])
    assert res["psnr"] > res["initial_psnr"] + 1.0
    shipped = EvatokTokenizer.from_pretrained(final).router
    assert shipped is not None
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), router.state_dict().values()))

    # the final tokenizer with its own router on the held-out clips (oracle: the proxy's table)
    out = _run("training/evaluate_adaptive.py", [
        "--tokenizer_name_or_path", str(final), "--score_table", str(tmp_path / "scores_held_out"),
        "--target_mean_tokens", "8", "12", "--output_dir", str(tmp_path / "eval_final")])
    assert "(own router)" in out["router"] and set(out["curves"]) == {"uniform", "router", "max_reward"}
    assert [p["avg_tokens"] <= p["target_mean_tokens"] for p in out["curves"]["router"] if "target_mean_tokens" in p] == [True] * 2

    # variable-length tokens of the final tokenizer (its shipped router's counts per clip), a length-token AR model, videos
    tokens = tmp_path / "tokens"
    _run("training/extract_tokens.py", ["--tokenizer_name_or_path", str(final), "--train_data_dir", str(videos),
                                        "--clips_per_video", "2", "--batch_size", "4", "--output_dir", str(tokens)])
    info = json.loads((tokens / "token_info.json").read_text())
    assert info["token_levels"] == list(LEVELS) and info["num_blocks"] == 2 and 4 <= info["mean_tokens"] <= 16
    ar = tmp_path / "ar"
    ar_recipe = _recipe(tmp_path / "ar.yaml", token_dataset=str(tokens), seed=0, train_batch_size=4, max_train_steps=40,
                        model_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2),
                        learning_rate=3e-3, lr_scheduler="larp_cosine", lr_warmup_steps=2, min_lr_mult=0.1,
                        torch_num_threads=1, num_validation_examples=8, checkpointing_steps=1000,
                        validation_steps=1000, logging_steps=10, report_to="none")
    res = _run("training/train_ar.py", ["--config", ar_recipe, "--output_dir", str(ar)])
    assert res["nll"] < res["initial_nll"] and 4 <= res["mean_generated_tokens"] <= 16

    from hf_vidtok.commands.main import main as cli

    capsys.readouterr()
    assert cli(["generate", "busy", "calm", "--tokenizer", str(final), "--generator", str(ar), "--seed", "0",
                "--no_progress", "--output_dir", str(tmp_path / "samples")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["videos"]) == 2
    for path in printed["videos"]:
        with av.open(path) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 4 and frames[0].shape[:2] == (16, 16)
