"""End-to-end tests of training/train_router.py: a hand-made score table over generated videos whose best
assignment is visible in the clip (its colour), tiny routers, CPU."""

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

from safetensors.torch import load_file  # noqa: E402

from hf_vidtok.evatok.score_table import ScoreTableWriter, load_score_table  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LEVELS, BLOCKS = (2, 4), 2  # A = 4 classes: (2,2) (2,4) (4,2) (4,4)
COLOURS = [(230, 40, 40), (40, 200, 40), (40, 40, 230), (220, 220, 220)]  # video type k -> best class k
TINY_ROUTER = dict(patch_size=8, temporal_patch_size=2, hidden_size=32, num_attention_heads=2, num_hidden_layers=1)


def _load_script():
    name = "train_router_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "training" / "train_router.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _write_video(path: Path, colour, seed: int, num_frames: int = 12, size: int = 32) -> None:
    rng = np.random.default_rng(seed)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(num_frames):
            frame = np.clip(np.array(colour)[None, None] + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _table(folder: Path, videos: list[tuple[str, int]], clips_per_video: int, metadata: dict) -> Path:
    """Score table: class k has LPIPS 0.1 on a type-k video, every other assignment 0.6 (+ small noise), so the
    label at w_q = 1.2 is k; MSE / SSIM follow LPIPS."""
    rng = np.random.default_rng(len(videos))
    writer = ScoreTableWriter(folder, LEVELS, BLOCKS, "lpips", rows_per_shard=1000, extra_metadata=metadata)
    keys, starts, lp = [], [], []
    for name, kind in videos:
        for c in range(clips_per_video):
            keys.append(f"{name}#{c}")
            starts.append(2 * c)
            row = 0.6 + 0.02 * rng.random(4)
            row[kind] = 0.1
            lp.append(row)
    lp = np.asarray(lp, dtype=np.float32)
    writer.add(keys, [-1] * len(keys), starts, mse=lp / 10, ssim=1 - lp, lpips=lp)
    writer.flush()
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("router_data")
    videos = root / "videos"
    (videos / "sub").mkdir(parents=True)
    train, val = [], []
    for kind, colour in enumerate(COLOURS):
        for j in range(3):
            name = f"sub/type{kind}_{j}.mp4"
            _write_video(videos / name, colour, seed=10 * kind + j)
            (train if j < 2 else val).append((name, kind))
    meta = {"num_frames": 4, "frame_stride": 1, "resolution": 16}
    return {
        "videos": videos,
        "train": _table(root / "train_scores", train, 4, meta),  # 32 clips
        "val": _table(root / "val_scores", val, 3, meta),  # 12 clips
    }


def _argv(data, out: Path, *extra: str) -> list[str]:
    cfg = out.parent / f"{out.name}.yaml"
    cfg.write_text("model_config:\n" + "".join(f"  {k}: {v}\n" for k, v in TINY_ROUTER.items()))
    return [
        "--config", str(cfg), "--score_table", str(data["train"]), "--validation_score_table", str(data["val"]),
        "--train_data_dir", str(data["videos"]), "--output_dir", str(out), "--cache_clips", "--train_batch_size", "8",
        "--learning_rate", "2e-3", "--lr_scheduler", "constant", "--adam_weight_decay", "0", "--logging_steps", "10",
        "--checkpointing_steps", "1000", "--validation_steps", "1000", "--seed", "0", "--torch_num_threads", "1",
        "--eval_w_q", "0.4 1.2 2.0", *extra,
    ]


def test_classifier_learns_hand_made_table(data, tmp_path):
    script = _load_script()
    out = tmp_path / "clf"
    results = script.main(_argv(data, out, "--head_type", "classifier", "--max_train_steps", "60"))
    # chance is 1/4 (every class is some clip's label); the colour gives the label away
    assert results["top1"] >= 0.9, results
    assert results["top5"] == 1.0
    assert results["reward_percentile"] >= 0.9 and results["reward_percentile"] > results["best_uniform_percentile"]
    for name in ("config.json", "model.safetensors", "README.md", "eval_results.json", "reward_stats.json",
                 "quality_cost.json", "quality_cost.png", "training_config.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["top1"] == results["top1"] and saved["num_clips"] == 12
    curves = json.loads((out / "quality_cost.json").read_text())
    assert len(curves["curves"]["router"]) == 1 and curves["curves"]["uniform"]
    assert "top-1 accuracy" in (out / "README.md").read_text()
    from transformers import AutoModel

    router = AutoModel.from_pretrained(out)
    assert router.config.head_type == "classifier" and router.config.label_w_q == 1.2
    assert router.config.quality_metric == "lpips" and router.config.token_levels == list(LEVELS)


def test_quality_head_budgets_and_curve(data, tmp_path):
    script = _load_script()
    out = tmp_path / "quality"
    results = script.main(_argv(data, out, "--head_type", "quality", "--max_train_steps", "60",
                                "--listwise_loss_weight", "0.5", "--eval_budgets", "4.5 5 5.5"))
    assert results["reward_percentile"] >= 0.9, results
    assert [b["requested"] for b in results["budgets"]] == [4.5, 5.0, 5.5]
    achieved = [b["achieved"] for b in results["budgets"]]
    for b in results["budgets"]:
        assert b["achieved"] <= b["requested"] + 1e-9 and b["requested"] - b["achieved"] <= min(LEVELS)
    assert achieved[0] < achieved[1] < achieved[2]  # three different average budgets from one router
    tokens = [p["avg_tokens"] for p in results["per_w_q"]]
    assert tokens == sorted(tokens)  # more weight on quality never buys fewer tokens
    curves = json.loads((out / "quality_cost.json").read_text())
    assert len(curves["curves"]["router"]) == 3 and len(curves["curves"]["router_budget"]) == 3


def test_exact_resume(data, tmp_path):
    script = _load_script()
    common = ("--head_type", "quality", "--max_train_steps", "8", "--train_batch_size", "4")
    full = tmp_path / "full"
    script.main(_argv(data, full, *common))
    part = tmp_path / "part"
    first = script.main(_argv(data, part, *common, "--stop_after_steps", "5"))
    assert first == {"stopped_at_step": 5}
    assert not (part / "model.safetensors").exists() and (part / "checkpoint-5" / "router").is_dir()
    script.main(_argv(data, part, *common, "--resume_from_checkpoint", "latest"))
    a, b = load_file(full / "model.safetensors"), load_file(part / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_split_and_batches(data):
    script = _load_script()
    table = load_score_table(data["train"])
    train, held = script.split_table(table, 0.3, seed=0)
    videos = lambda t: {k.rsplit("#", 1)[0] for k in t.keys}  # noqa: E731
    assert videos(train).isdisjoint(videos(held)) and train.num_clips + held.num_clips == table.num_clips
    assert train.lpips.shape == (train.num_clips, 4)
    # batches: pure function of (seed, step, process); processes are disjoint within an epoch
    kw = dict(num_rows=32, batch_size=4, num_processes=2, seed=3)
    epoch = [r for s in range(4) for p in range(2) for r in script.step_rows(s, process_index=p, **kw)]
    assert sorted(epoch) == list(range(32))
    assert script.step_rows(5, process_index=1, **kw) == script.step_rows(5, process_index=1, **kw)
    assert script.step_rows(4, process_index=0, **kw) != script.step_rows(0, process_index=0, **kw)


def test_router_clips_read_a_remote_root_like_the_local_folder(data):
    """RouterClips over the same videos behind an fsspec URL (memory://; a Hub repo is the same code path) gives the
    clips of the local folder; a key missing from the remote listing is refused up front."""
    fsspec = pytest.importorskip("fsspec")
    script = _load_script()
    table = load_score_table(data["val"])
    mem = fsspec.filesystem("memory")
    for path in sorted(data["videos"].rglob("*.mp4")):
        mem.pipe(f"/router-videos/{path.relative_to(data['videos']).as_posix()}", path.read_bytes())
    kw = dict(num_frames=4, frame_stride=1, fps=None, resolution=16)
    local = script.RouterClips(table, str(data["videos"]), **kw)
    remote = script.RouterClips(table, "memory://router-videos", **kw)
    for i in range(len(local)):
        np.testing.assert_array_equal(remote.read(i), local.read(i))
    mem.rm("/router-videos/sub/type0_2.mp4")
    with pytest.raises(ValueError, match="not under 'memory://router-videos'"):
        script.RouterClips(table, "memory://router-videos", **kw)


def test_bad_arguments(data, tmp_path):
    script = _load_script()
    base = _argv(data, tmp_path / "bad", "--max_train_steps", "1")
    with pytest.raises(ValueError, match="soft_label_temperature"):
        script.parse_args(base + ["--head_type", "quality", "--soft_label_temperature", "0.5"])
    with pytest.raises(ValueError, match="label_w_q"):
        script.parse_args(base + ["--label_w_q", "3"])
    with pytest.raises(ValueError, match="eval_budgets"):
        script.parse_args(base + ["--eval_budgets", "-5"])
    with pytest.raises(ValueError, match="exactly one"):
        script.parse_args(base + ["--sample_videos"])
    with pytest.raises(ValueError, match="not under"):
        script.main(base[:base.index("--train_data_dir")] + ["--train_data_dir", str(tmp_path)]
                    + base[base.index("--train_data_dir") + 2 :])


def test_stage4_train_tokenizer_ships_router(tmp_path, monkeypatch):
    """train_tokenizer.py --router: clips get the frozen router's assignments and the saved tokenizer ships the
    router, so from_pretrained(...).encode(video) picks assignments itself."""
    from hf_vidtok import EvatokRouter, EvatokRouterConfig, EvatokTokenizer

    spec = importlib.util.spec_from_file_location("_evatok_train_tests", REPO / "tests" / "training" / "test_train_evatok.py")
    ev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ev)
    root = tmp_path / "videos"
    for split, n in (("train", 4), ("val", 2)):
        for i in range(n):
            ev._larp._write_video(root / split / f"class{i % 2}" / f"v{i}.mp4", 10, 16, phase=i + (10 if split == "val" else 0))
    torch.manual_seed(0)
    router = EvatokRouter(EvatokRouterConfig(
        token_levels=ev.TINY_EVATOK["token_levels"], num_blocks=2, image_size=16, num_frames=4, head_type="classifier",
        label_w_q=1.2, **TINY_ROUTER))
    torch.nn.init.normal_(router.head.weight, std=1.0)
    router.save_pretrained(tmp_path / "router")
    recipe = ev._evatok_recipe(tmp_path, root)
    common = ["--config", str(recipe), "--max_train_steps", "2", "--checkpointing_steps", "10", "--validation_steps", "2",
              "--skip_initial_validation"]
    chosen, trained = [], []  # the router's choices and the assignments the training forward used
    select, forward = EvatokRouter.select, EvatokTokenizer.forward

    def spy_select(self, *a, **k):
        out = select(self, *a, **k)
        chosen.append(out.clone())
        return out

    def spy_forward(self, pixel_values, assignment=None, *a, **k):
        trained.append(torch.as_tensor(assignment).cpu().clone())
        return forward(self, pixel_values, assignment, *a, **k)

    monkeypatch.setattr(EvatokRouter, "select", spy_select)
    monkeypatch.setattr(EvatokTokenizer, "forward", spy_forward)
    ev._run_in_process([*common, "--output_dir", str(tmp_path / "final"), "--router", str(tmp_path / "router")])
    monkeypatch.undo()
    assert len(chosen) == 2  # one choice per training batch (2 steps)
    rows = lambda ts: sorted(map(tuple, torch.cat(ts).tolist()))  # noqa: E731  (micro-batches reorder clips)
    assert rows(trained) == rows(chosen)
    tok = EvatokTokenizer.from_pretrained(tmp_path / "final").eval()
    assert isinstance(tok.router, EvatokRouter)
    for name, value in router.state_dict().items():  # frozen through training
        assert torch.equal(tok.router.state_dict()[name], value), name
    x = torch.rand(5, 3, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(tok.encode(x).token_counts.cpu(), router.eval().select(x))
    with pytest.raises(ValueError, match="--router"):
        ev._load_script().parse_args([*common, "--output_dir", str(tmp_path / "x"), "--router_w_q", "1.0"])


def test_targets_and_evaluation_on_a_synthetic_table():
    """make_targets for both heads (hard and soft labels), and evaluate_router with an oracle quality router."""
    import argparse

    from hf_vidtok import EvatokRouter, EvatokRouterConfig
    from hf_vidtok.evatok.reward import best_assignment, compute_reward_stats, proxy_reward, quality_scores
    from hf_vidtok.evatok.score_table import ScoreTable

    script = _load_script()
    rng = np.random.default_rng(0)
    lp = rng.uniform(0.1, 0.6, (20, 4)).astype(np.float32)
    table = ScoreTable(keys=np.array([f"v{i}.mp4#0" for i in range(20)], dtype=object), labels=np.zeros(20, int),
                       start_frames=np.zeros(20, int), mse=lp / 10, ssim=1 - lp, lpips=lp, levels=LEVELS,
                       num_blocks=BLOCKS)
    stats = compute_reward_stats(lp, LEVELS, BLOCKS, "lpips")
    ns = lambda **k: argparse.Namespace(**{"label_w_q": 1.2, "soft_label_temperature": None, **k})  # noqa: E731
    hard = script.make_targets(table, stats, ns(head_type="classifier"))
    assert torch.equal(hard, best_assignment(proxy_reward(lp, stats, 1.2), stats=stats))
    soft = script.make_targets(table, stats, ns(head_type="classifier", soft_label_temperature=0.5))
    torch.testing.assert_close(soft.sum(-1), torch.ones(20))
    assert torch.equal(soft.argmax(-1), hard)
    quality = script.make_targets(table, stats, ns(head_type="quality"))
    torch.testing.assert_close(quality, quality_scores(lp, stats).float())
    # a router whose predictions are the table itself: top-1 and percentile are exactly 1 at every w_q
    router = EvatokRouter(EvatokRouterConfig(token_levels=LEVELS, num_blocks=BLOCKS, image_size=16, num_frames=4,
                                             head_type="quality", **TINY_ROUTER))
    res = script.evaluate_router(router, quality.double(), table, stats, label_w_q=1.2, eval_w_q=[0.4, 2.0],
                                 budgets=[5.0], with_curves=True)
    assert res["top1"] == 1.0 and res["reward_percentile"] == pytest.approx(1.0)
    assert all(p["reward_percentile"] == pytest.approx(1.0) for p in res["per_w_q"])
    assert res["budgets"][0]["achieved"] <= 5.0 and res["budgets"][0]["requested"] == 5.0
    assert len(res["curves"]["curves"]["router"]) == 2
    assert script.default_budgets(table, stats) == sorted(set(script.default_budgets(table, stats)))
