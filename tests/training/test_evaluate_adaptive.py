"""training/evaluate_adaptive.py on tiny random EVATok models saved to a temporary folder: the uniform, router and
max-reward-oracle curves hold the values a direct computation gives, the oracle dominates uniform assignment on the
scored clips, the JSON schema and the PNG; bad inputs."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("accelerate")
pytest.importorskip("av")
pytest.importorskip("pyarrow")
pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parents[2]
LEVELS = (2, 4, 8)
ROUTER = dict(token_levels=LEVELS, num_blocks=2, image_size=16, num_frames=4, patch_size=8, temporal_patch_size=2,
              hidden_size=32, num_attention_heads=2, num_hidden_layers=1, head_type="quality")


def _helpers():
    """tests/evatok's helpers (tiny videos and tokenizer sizes, script loading), imported by path."""
    spec = importlib.util.spec_from_file_location("evatok_test_helpers", REPO / "tests" / "evatok" / "evatok_test_helpers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _helpers()


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from hf_vidtok.models.evatok import EvatokRouter, EvatokRouterConfig, EvatokTokenizer, EvatokTokenizerConfig

    root = tmp_path_factory.mktemp("evaluate_adaptive")
    videos = helpers.write_tiny_videos(root / "videos", per_class=2)
    torch.manual_seed(0)
    tok = EvatokTokenizer(EvatokTokenizerConfig(**helpers.tiny_evatok_config_kwargs(LEVELS))).eval()
    tok.save_pretrained(root / "tokenizer")
    torch.manual_seed(1)
    router = EvatokRouter(EvatokRouterConfig(**ROUTER)).eval()
    router.save_pretrained(root / "router")
    # the score table of the same clips, by the real stage-2 script
    helpers.load_script("training/score_assignments.py").main(
        ["--tokenizer_name_or_path", str(root / "tokenizer"), "--train_data_dir", str(videos), "--quality_metric", "mse",
         "--clips_per_video", "2", "--batch_size", "4", "--output_dir", str(root / "scores")])
    script = helpers.load_script("training/evaluate_adaptive.py")
    result = script.main(
        ["--tokenizer_name_or_path", str(root / "tokenizer"), "--router_name_or_path", str(root / "router"),
         "--score_table", str(root / "scores"), "--w_q", "0.6", "1.2", "2.0", "--batch_size", "5",
         "--output_dir", str(root / "eval")])
    return root, videos, tok, router, result


def _clips(videos, clips_per_video=2, num_frames=4):
    """The held-out clips in key order, read independently of the script."""
    from hf_vidtok.data import load_video_dataset

    ds = load_video_dataset(videos, num_frames=num_frames, resolution=16, clips_per_video=clips_per_video, streaming=True)
    items, last, count = [], None, -1
    for ex in ds:
        count = count + 1 if ex["key"] == last else 0
        last = ex["key"]
        items.append((f"{ex['key']}#{count}", torch.from_numpy(np.asarray(ex["video"])).permute(3, 0, 1, 2).float() / 255))
    items.sort(key=lambda kv: kv[0])
    return [k for k, _ in items], torch.stack([v for _, v in items])


def test_json_schema_png_and_uniform_points(setup):
    root, videos, tok, _, result = setup
    out = root / "eval"
    data = json.loads((out / "adaptive_quality_cost.json").read_text())
    png = (out / "adaptive_quality_cost.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert data["num_clips"] == 8 and data["levels"] == list(LEVELS) and data["num_blocks"] == 2
    assert data["quality_metric"] == "mse" and data["router_head"] == "quality"
    assert set(data["curves"]) == {"uniform", "router", "max_reward"}
    for points in data["curves"].values():
        for p in points:
            assert {"avg_tokens", "mean_block_tokens", "mean_psnr", "mean_ssim", "mean_mse"} <= set(p)
            assert len(p["mean_block_tokens"]) == 2 and math.isclose(sum(p["mean_block_tokens"]), p["avg_tokens"])
            assert "mean_lpips" not in p and "rfvd" not in p
    # uniform: exactly k tokens per block for every clip, counted from the tokenizer's output
    uniform = data["curves"]["uniform"]
    assert [p["level"] for p in uniform] == list(LEVELS)
    assert [p["avg_tokens"] for p in uniform] == [2.0 * k for k in LEVELS]
    assert [p["mean_block_tokens"] for p in uniform] == [[float(k)] * 2 for k in LEVELS]
    # and the qualities a direct reconstruction gives
    from hf_vidtok.metrics import psnr, ssim

    keys, x = _clips(videos)
    assert len(keys) == 8
    for p in uniform:
        with torch.no_grad():
            recon = tok(x, assignment=(p["level"],) * 2).reconstruction.clamp(0, 1)
        assert p["mean_psnr"] == pytest.approx(float(psnr(recon, x)), rel=1e-5)
        assert p["mean_ssim"] == pytest.approx(float(ssim(recon, x)), rel=1e-5)
        assert p["mean_mse"] == pytest.approx(float((recon.double() - x.double()).pow(2).mean()), rel=1e-5)
    # distinct (clip, assignment) pairs are reconstructed once: at most 8 clips x 9 assignments
    assert data["num_reconstructions"] <= 8 * len(LEVELS) ** 2 and result["png"].endswith(".png")


def test_router_points_are_the_routers_selections(setup):
    root, videos, _, router, _ = setup
    data = json.loads((root / "eval" / "adaptive_quality_cost.json").read_text())
    _, x = _clips(videos)
    with torch.no_grad():
        scores = router(x).scores
    points = data["curves"]["router"]
    by_w = {p["w_q"]: p for p in points if "w_q" in p}
    assert sorted(by_w) == [0.6, 1.2, 2.0]
    for w, p in by_w.items():
        counts = router.select_from_scores(scores, w_q=w)
        assert p["avg_tokens"] == pytest.approx(float(counts.sum(1).double().mean()))
        assert p["mean_block_tokens"] == pytest.approx(counts.double().mean(0).tolist())
    # default budgets: the uniform totals strictly inside the range (2 x 4 tokens); mean at or under the target
    budgets = [p for p in points if "target_mean_tokens" in p]
    assert [p["target_mean_tokens"] for p in budgets] == [8.0]
    for p in budgets:
        counts = router.select_from_scores(scores, target_mean_tokens=p["target_mean_tokens"])
        assert p["avg_tokens"] == pytest.approx(float(counts.sum(1).double().mean())) and p["avg_tokens"] <= 8.0
    rows = data["comparisons"]["equal_tokens"]
    assert len(rows) == len(points)
    for row, p in zip(rows, points):
        u = np.interp(p["avg_tokens"], [q["avg_tokens"] for q in data["curves"]["uniform"]],
                      [q["mean_psnr"] for q in data["curves"]["uniform"]])
        assert row["uniform_mean_psnr"] == pytest.approx(u) and row["gap_mean_psnr"] == pytest.approx(p["mean_psnr"] - u)


def test_the_tokenizers_own_router_is_the_default(setup, tmp_path):
    """A stage-4 tokenizer ships its router: without --router_name_or_path the router curve is the same."""
    from hf_vidtok.models.evatok import EvatokTokenizer
    from hf_vidtok.models.evatok.modeling_evatok_router import attach_router

    root, videos, _, router, _ = setup
    tok = EvatokTokenizer.from_pretrained(root / "tokenizer")
    attach_router(tok, router).save_pretrained(tmp_path / "final")
    script = helpers.load_script("training/evaluate_adaptive.py")
    argv = ["--data_dir", str(videos), "--clips_per_video", "2", "--w_q", "1.2", "--target_mean_tokens", "9"]
    own = script.main(argv + ["--tokenizer_name_or_path", str(tmp_path / "final"), "--output_dir", str(tmp_path / "a")])
    given = script.main(argv + ["--tokenizer_name_or_path", str(root / "tokenizer"), "--router_name_or_path",
                                str(root / "router"), "--output_dir", str(tmp_path / "b")])
    assert "(own router)" in own["router"] and len(own["curves"]["router"]) == 2
    assert own["curves"]["router"] == given["curves"]["router"]
    assert own["curves"]["router"][1]["avg_tokens"] <= 9.0


def test_oracle_matches_the_table_and_dominates_uniform(setup):
    from hf_vidtok.evatok.assignments import uniform_class_ids
    from hf_vidtok.evatok.score_table import load_score_table

    root, _, _, _, _ = setup
    data = json.loads((root / "eval" / "adaptive_quality_cost.json").read_text())
    table = load_score_table(root / "scores")
    uni_table = table.mse[:, uniform_class_ids(LEVELS, 2).numpy()].astype(np.float64).mean(0)  # (m,)
    oracle = data["curves"]["max_reward"]
    assert [p["w_q"] for p in oracle] == [0.6, 1.2, 2.0]
    for p in oracle:
        # the evaluated tokenizer made the table: the reconstructions reproduce the stored scores
        assert p["mean_mse"] == pytest.approx(p["table_mean_mse"], rel=1e-4)
        # an argmax of w_q Q - w_l L over a superset of the uniform assignments: at least as good as every
        # uniform assignment that spends no more tokens on average
        for u, table_u in zip(data["curves"]["uniform"], uni_table):
            if u["avg_tokens"] <= p["avg_tokens"]:
                assert p["table_mean_mse"] <= table_u + 1e-12
                assert p["mean_mse"] <= u["mean_mse"] * (1 + 1e-5)
    assert oracle[-1]["avg_tokens"] >= oracle[0]["avg_tokens"]  # more weight on quality, more tokens


def test_interpolation_helpers():
    script = helpers.load_script("training/evaluate_adaptive.py")
    uniform = [{"avg_tokens": 8.0, "mean_psnr": 20.0, "mean_mse": 0.01},
               {"avg_tokens": 16.0, "mean_psnr": 22.0, "mean_mse": 0.006},
               {"avg_tokens": 32.0, "mean_psnr": 23.0, "mean_mse": 0.005}]
    assert script.interpolate_at_tokens(uniform, "mean_psnr", 12.0) == pytest.approx(21.0)
    assert script.interpolate_at_tokens(uniform, "mean_psnr", 40.0) is None
    assert script.tokens_at_quality(uniform, "mean_psnr", 22.5) == pytest.approx(24.0)
    assert script.tokens_at_quality(uniform, "mean_mse", 0.008) == pytest.approx(12.0)  # lower is better
    assert script.tokens_at_quality(uniform, "mean_psnr", 19.0) is None  # the cheapest uniform is already better
    assert script.tokens_at_quality(uniform, "mean_psnr", 24.0) is None  # never reached
    curves = {"uniform": uniform, "router": [{"w_q": 1.2, "avg_tokens": 12.0, "mean_psnr": 22.0, "mean_mse": 0.007}]}
    cmp = script.compare_to_uniform(curves, ["mean_psnr", "mean_mse"])
    assert cmp["equal_tokens"][0]["gap_mean_psnr"] == pytest.approx(1.0)
    assert cmp["equal_tokens"][0]["gap_mean_mse"] == pytest.approx(0.007 - 0.008)
    assert cmp["equal_quality"][0]["uniform_tokens_mean_psnr"] == pytest.approx(16.0)
    assert cmp["equal_quality"][0]["saving_mean_psnr"] == pytest.approx(0.25)


def test_lpips_and_rfvd_with_given_weights(tmp_path):
    """LPIPS and rFVD (tiny random VGG / I3D saved to tmp) on a 10-frame tokenizer, uniform points only."""
    from hf_vidtok.metrics import FVD, LPIPS, InceptionI3D
    from hf_vidtok.models.evatok import EvatokTokenizer, EvatokTokenizerConfig

    videos = helpers.write_tiny_videos(tmp_path / "videos", per_class=2, frames=12)
    torch.manual_seed(0)
    tok = EvatokTokenizer(EvatokTokenizerConfig(**helpers.tiny_evatok_config_kwargs((2, 4), num_frames=10))).eval()
    tok.save_pretrained(tmp_path / "tokenizer")
    lpips_path = LPIPS().save_pretrained(tmp_path / "lpips")
    g = torch.Generator().manual_seed(2)
    i3d = InceptionI3D(width_divisor=16)
    for name, t in i3d.state_dict().items():  # He-normal kernels keep the signal alive through depth
        if name.endswith("conv3d.weight"):
            t.copy_(torch.randn(t.shape, generator=g) * math.sqrt(2.0 / t[0].numel()))
    i3d_path = i3d.save_pretrained(tmp_path / "i3d")
    script = helpers.load_script("training/evaluate_adaptive.py")
    script.main(["--tokenizer_name_or_path", str(tmp_path / "tokenizer"), "--no_router", "--data_dir", str(videos),
                 "--lpips_weights", str(lpips_path), "--i3d_weights", str(i3d_path),
                 "--output_dir", str(tmp_path / "eval")])
    data = json.loads((tmp_path / "eval" / "adaptive_quality_cost.json").read_text())
    assert set(data["curves"]) == {"uniform"} and data["comparisons"] is None
    keys, x = _clips(videos, clips_per_video=1, num_frames=10)
    lp = LPIPS.from_pretrained(lpips_path)
    fvd = FVD.from_pretrained(i3d_path)
    assert [p["avg_tokens"] for p in data["curves"]["uniform"]] == [10.0, 20.0]
    assert all(p["rfvd"] >= 0 and math.isfinite(p["mean_lpips"]) for p in data["curves"]["uniform"])  # random VGG heads
    p = data["curves"]["uniform"][0]  # recomputed directly for one level
    with torch.no_grad():
        recon = tok(x, assignment=(p["level"],) * 5).reconstruction.clamp(0, 1)
        assert p["mean_lpips"] == pytest.approx(float(lp(recon, x).double().mean()), rel=1e-5)
    fvd.update(x, real=True)
    fvd.update(recon, real=False)
    assert p["rfvd"] == pytest.approx(fvd.compute(), rel=1e-4, abs=1e-6)


def test_bad_inputs(setup, tmp_path):
    root, videos, _, _, _ = setup
    script = helpers.load_script("training/evaluate_adaptive.py")
    base = ["--tokenizer_name_or_path", str(root / "tokenizer"), "--output_dir", str(tmp_path / "out")]
    # clips the table never scored (a third clip per video)
    with pytest.raises(ValueError, match="not in the score table"):
        script.main(base + ["--no_router", "--score_table", str(root / "scores"), "--clips_per_video", "3"])
    # same keys, other clips (another sampling seed moves the start frames)
    with pytest.raises(ValueError, match="start at other frames"):
        script.main(base + ["--no_router", "--score_table", str(root / "scores"), "--seed", "5"])
    with pytest.raises(ValueError, match="needs `--lpips_weights`"):
        script.main(base + ["--no_router", "--score_table", str(root / "scores"), "--quality_metric", "lpips"])
    with pytest.raises(ValueError, match="w_q"):
        script.main(base + ["--data_dir", str(videos), "--w_q", "2.5"])
    with pytest.raises(ValueError, match="target_mean_tokens"):
        script.main(base + ["--data_dir", str(videos), "--target_mean_tokens", "0"])
    with pytest.raises(ValueError, match="data_dir"):
        script.main(base + ["--no_router"])
    with pytest.raises(ValueError, match="not an EvatokRouter"):
        script.main(base + ["--data_dir", str(videos), "--router_name_or_path", str(tmp_path / "nothing")])
    with pytest.raises(SystemExit):
        script.main(base + ["--data_dir", str(videos), "--quality_metric", "psnr"])
