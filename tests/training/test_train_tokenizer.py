"""End-to-end tests of training/train_tokenizer.py on tiny models and tiny generated videos (CPU)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("accelerate")
av = pytest.importorskip("av")
yaml = pytest.importorskip("yaml")

from safetensors.torch import load_file  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "training" / "train_tokenizer.py"

TINY_MODEL = dict(
    frame_num=4, input_size=16, patch_size=8, temporal_patch_size=2, encoder_hidden_size=32, decoder_hidden_size=32,
    encoder_num_heads=2, decoder_num_heads=2, encoder_depth=1, decoder_depth=1, bottleneck_token_num=8,
    codebook_size=37, bottleneck_dim=8, prior_name="custom", prior_num_layers=1, prior_num_heads=2,
    prior_hidden_size=16, prior_max_seq_len=8,
)


def _load_script():
    spec = importlib.util.spec_from_file_location("train_tokenizer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_tokenizer"] = module
    spec.loader.exec_module(module)
    return module


def _write_video(path: Path, num_frames: int, size: int, phase: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for t in range(num_frames):
            frame = np.stack(
                [0.5 + 0.4 * np.sin(0.3 * x + 0.2 * y + 0.5 * t + phase + 2 * c) for c in range(3)], -1
            )
            img = av.VideoFrame.from_ndarray((frame * 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(img):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def video_root(tmp_path_factory) -> Path:
    """train/<class>/*.mp4 (6 videos) and val/<class>/*.mp4 (2 videos), 10 frames of 16x16 (32x32 for `big`)."""
    root = tmp_path_factory.mktemp("videos")
    for i in range(6):
        _write_video(root / "train" / f"class{i % 2}" / f"v{i}.mp4", 10, 16, phase=i)
    for i in range(2):
        _write_video(root / "val" / f"class{i}" / f"w{i}.mp4", 10, 16, phase=10 + i)
    for i in range(2):
        _write_video(root / "big" / "class0" / f"b{i}.mp4", 10, 32, phase=i)
    (root / "empty" / "class0").mkdir(parents=True)
    for i in range(2):
        _write_video(root / "withbad" / "class0" / f"good{i}.mp4", 10, 16, phase=20 + i)
    (root / "withbad" / "class0" / "zero_bytes.mp4").write_bytes(b"")
    (root / "withbad" / "class0" / "not_a_video.mp4").write_text("hello")
    return root


def _recipe(tmp_path: Path, video_root: Path, **overrides) -> Path:
    recipe = dict(
        model_config=TINY_MODEL,
        train_data_dir=str(video_root / "train"),
        validation_data_dir=str(video_root / "val"),
        dataset_layout="folder",
        train_batch_size=2,
        max_train_steps=4,
        learning_rate=1e-3,
        lr_warmup_steps=1,
        perceptual_weight=0.0,
        disc_weight=0.3,
        disc_update_freq=2,
        disc_hidden_size=16,
        disc_num_heads=2,
        disc_depth=1,
        num_validation_clips=2,
        checkpointing_steps=1,
        validation_steps=2,
        logging_steps=1,
        output_dir=str(tmp_path / "out"),
        seed=3,
    )
    recipe.update(overrides)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _reset_accelerate():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)


def _run_in_process(argv):
    module = _load_script()
    try:
        return module.main(argv)
    finally:
        _reset_accelerate()


def _env(**extra):
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"})
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------- tests


def test_few_step_run_learns_saves_and_prunes(tmp_path, video_root):
    recipe = _recipe(tmp_path, video_root)
    out = tmp_path / "out"
    results = _run_in_process(["--config", str(recipe), "--checkpoints_total_limit", "2", "--use_ema", "--ema_decay", "0.5"])
    # losses were finite and validation ran at steps 0, 2 and 4
    assert [h["step"] for h in results["history"]] == [0, 2, 4]
    assert results["step"] == 4 and np.isfinite(results["psnr"]) and np.isfinite(results["initial_psnr"])
    assert 0.0 <= results["ssim"] <= 1.0
    on_disk = json.loads((out / "eval_results.json").read_text())
    assert {"step", "psnr", "ssim", "initial_psnr"} <= set(on_disk)
    assert (out / "reconstruction.mp4").is_file() and (out / "validation" / "reconstruction_step_4.mp4").is_file()
    # pruning kept the newest two checkpoints; `latest` points at the last
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    assert (out / "latest").read_text().strip() == "checkpoint-4"
    assert not list(out.glob(".tmp-*"))
    # the final tokenizer (EMA weights) was saved with a card; the raw weights beside it
    from hf_vidtok import LarpTokenizer, LarpTokenizerConfig

    final = LarpTokenizer.from_pretrained(out)
    raw = LarpTokenizer.from_pretrained(out / "non_ema")
    assert (out / "README.md").is_file() and "model.safetensors" in os.listdir(out)
    torch.manual_seed(3)
    initial = LarpTokenizer(LarpTokenizerConfig(**TINY_MODEL))
    changed = [
        n for n, p in raw.state_dict().items() if not torch.equal(p, initial.state_dict()[n])
    ]
    assert "encoder_queries" in changed and "quantizer.embedding.weight" in changed and len(changed) > 10
    assert not torch.equal(final.state_dict()["output_layer.linear.weight"], raw.state_dict()["output_layer.linear.weight"])
    # validation records codebook usage (a collapse shows): fraction of the 37 codes used and their perplexity
    assert 0 < results["codebook_usage"] <= 1 and 1 <= results["codebook_perplexity"] <= 37
    assert all("codebook_usage" in h for h in results["history"])
    ckpt = out / "checkpoint-4"
    names = set(os.listdir(ckpt))
    # save_pretrained folders of the tokenizer, its EMA and the discriminator; both optimizers; RNG, LeCam and
    # the loop / stream / scheduler states in open formats
    assert {"tokenizer", "tokenizer_ema", "discriminator", "optimizer.bin", "optimizer_1.bin", "rng_state_0.safetensors",
            "lecam.safetensors", "training_state.json"} <= names
    assert set(json.loads((ckpt / "training_state.json").read_text())) == {
        "progress", "lr_scheduler", "disc_lr_scheduler", "data_stream"}
    from hf_vidtok.losses import TransformerDiscriminator
    from hf_vidtok.training import find_unsafe_pickles

    assert find_unsafe_pickles(ckpt) == []  # resuming never needs full unpickling
    from_ckpt = LarpTokenizer.from_pretrained(ckpt / "tokenizer")
    assert all(torch.equal(v, raw.state_dict()[k]) for k, v in from_ckpt.state_dict().items())
    ema_ckpt = LarpTokenizer.from_pretrained(ckpt / "tokenizer_ema")
    assert all(torch.equal(v, final.state_dict()[k]) for k, v in ema_ckpt.state_dict().items())
    assert TransformerDiscriminator.from_pretrained(ckpt / "discriminator").fc.weight.shape == (1, 16)


def test_kill_and_resume_is_bit_exact(tmp_path, video_root):
    common = ["--max_train_steps", "6", "--checkpointing_steps", "3", "--validation_steps", "6"]
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    recipe = _recipe(tmp_path, video_root, disc_update_freq=2)
    full = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--config", str(recipe), "--output_dir", str(full_dir), *common],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    # the killed run pauses after each checkpoint through main()'s `on_checkpoint` callback
    pausing = (
        "import importlib.util, sys, time; spec = importlib.util.spec_from_file_location('tt', sys.argv[1]); "
        "tt = sys.modules['tt'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(tt); "
        "tt.main(sys.argv[2:], on_checkpoint=lambda step, path: time.sleep(60))"
    )
    killed = subprocess.Popen(
        [sys.executable, "-c", pausing, str(SCRIPT), "--config", str(recipe), "--output_dir", str(killed_dir), *common],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.time() + 90
    pointer = killed_dir / "latest"
    while time.time() < deadline and not (pointer.is_file() and pointer.read_text().strip() == "checkpoint-3"):
        assert killed.poll() is None, killed.stderr.read().decode()[-3000:]
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not (killed_dir / "model.safetensors").exists()  # it really died before the end
    resumed = subprocess.run(
        [sys.executable, str(SCRIPT), "--config", str(recipe), "--output_dir", str(killed_dir), *common,
         "--resume_from_checkpoint", "latest"],
        env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert full.wait(timeout=120) == 0, full.stderr.read().decode()[-3000:]
    a = load_file(str(full_dir / "model.safetensors"))
    b = load_file(str(killed_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    for name in ("discriminator", "tokenizer"):
        da = load_file(str(full_dir / "checkpoint-6" / name / "model.safetensors"))
        db = load_file(str(killed_dir / "checkpoint-6" / name / "model.safetensors"))
        assert da.keys() == db.keys() and all(torch.equal(da[k], db[k]) for k in da)
    ra = json.loads((full_dir / "eval_results.json").read_text())
    rb = json.loads((killed_dir / "eval_results.json").read_text())
    assert ra["psnr"] == rb["psnr"] and ra["initial_psnr"] == rb["initial_psnr"]


def test_finetune_from_converted_official_checkpoint(tmp_path, video_root, larp_fixture_dir):
    from hf_vidtok import LarpTokenizer

    from hf_vidtok.metrics import LPIPS

    from hf_vidtok.models.larp.convert_larp_original_to_hf import load_original_model

    official = load_original_model(str(larp_fixture_dir))
    torch.manual_seed(0)
    lpips_path = LPIPS().save_pretrained(tmp_path / "lpips")  # random weights stand in for the real ones
    recipe = _recipe(
        tmp_path, video_root, model_config=None, original_model_name_or_path=str(larp_fixture_dir),
        train_data_dir=str(video_root / "big"), validation_data_dir=str(video_root / "big"), validation_split="train",
        num_frames=8, resolution=32, max_train_steps=2, disc_weight=0.0, checkpointing_steps=100,
        validation_steps=2, learning_rate=1e-4, perceptual_weight=1.0, lpips_model_name_or_path=str(lpips_path),
    )
    results = _run_in_process(["--config", str(recipe)])
    tuned = LarpTokenizer.from_pretrained(tmp_path / "out")
    assert tuned.config.bottleneck_token_num == official.config.bottleneck_token_num == 64
    assert tuned.prior is not None  # the converted prior was kept and trained
    before, after = official.state_dict(), tuned.state_dict()
    assert before.keys() == after.keys()
    diffs = {k: (after[k] - before[k]).abs().max().item() for k in before}
    assert 0 < max(diffs.values()) < 0.05  # fine-tuned: moved, but only by a couple of small steps
    assert np.isfinite(results["psnr"]) and np.isfinite(results["initial_psnr"])
    assert np.isfinite(results["lpips"]) and [h["step"] for h in results["history"]] == [0, 2]


def test_bad_files_are_skipped_and_counted(tmp_path, video_root):
    recipe = _recipe(tmp_path, video_root, train_data_dir=str(video_root / "withbad"), max_train_steps=3,
                     disc_weight=0.0, checkpointing_steps=100, validation_steps=3)
    results = _run_in_process(["--config", str(recipe)])
    assert results["step"] == 3 and np.isfinite(results["psnr"])
    assert results["skipped_train_files"] == 2  # the zero-byte file and the text file, each counted once


@pytest.mark.parametrize(
    "case, overrides, match",
    [
        ("empty", {"train_data_dir": "EMPTY"}, "no video files|empty"),
        ("frames", {"num_frames": 8}, "num_frames"),
        ("unwritable", {"output_dir": "BLOCKED"}, "output_dir"),
        ("missing_lpips", {"perceptual_weight": 1.0}, "lpips_model_name_or_path"),
        ("no_held_out_split", {"validation_data_dir": "TRAIN"}, "held-out"),
    ],
)
def test_clear_errors(tmp_path, video_root, case, overrides, match):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    subs = {"EMPTY": str(video_root / "empty"), "BLOCKED": str(blocker / "out"), "TRAIN": str(video_root / "train")}
    overrides = {k: subs.get(v, v) if isinstance(v, str) else v for k, v in overrides.items()}
    recipe = _recipe(tmp_path, video_root, **overrides)
    with pytest.raises(ValueError, match=match):
        _run_in_process(["--config", str(recipe)])


def test_two_cpu_processes_split_clips_and_agree(tmp_path, video_root):
    recipe = _recipe(tmp_path, video_root, max_train_steps=3, checkpointing_steps=2, validation_steps=3,
                     disc_update_freq=1, clips_per_video=2)
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(29500 + os.getpid() % 1000),
        str(SCRIPT), "--config", str(recipe), "--output_dir", str(out), "--record_seen_clips",
    ]
    proc = subprocess.run(cmd, env=_env(ACCELERATE_USE_CPU="1"), capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-4000:]
    audits = [json.loads((out / "data_audit" / f"rank{r}.json").read_text()) for r in range(2)]
    assert [a["num_processes"] for a in audits] == [2, 2]
    clips0, clips1 = audits[0]["clips"], audits[1]["clips"]
    assert len(clips0) == len(clips1) == 6  # 3 steps x batch 2 on each rank
    files0 = {c.split("@")[0] for c in clips0}
    files1 = {c.split("@")[0] for c in clips1}
    assert files0.isdisjoint(files1)  # 6 files, 3 per rank per epoch: no file seen by both ranks
    assert audits[0]["weights_sha256"] == audits[1]["weights_sha256"]
    assert (out / "model.safetensors").is_file() and (out / "checkpoint-2" / "rng_state_1.safetensors").is_file()


def test_shipped_recipes_parse_into_valid_configs():
    from hf_vidtok import LarpTokenizerConfig

    module = _load_script()
    large = module.parse_args(["--config", str(REPO / "training" / "configs" / "larp_l_ucf101_k600.yaml"),
                               "--train_data_dir", "data/train.csv"])
    config = LarpTokenizerConfig(**large.model_config)
    # the released LARP-L-long architecture and recipe (larp.md §1.1, §2, §4)
    assert (config.frame_num, config.input_size, config.bottleneck_token_num, config.codebook_size) == (16, 128, 1024, 8192)
    assert (config.encoder_depth, config.encoder_hidden_size, config.prior_num_layers, config.prior_hidden_size) == (12, 768, 12, 384)
    assert (large.learning_rate, large.disc_learning_rate, large.adam_beta1, large.adam_beta2) == (1e-4, 3e-5, 0.5, 0.9)
    assert (large.disc_weight, large.vq_loss_weight, large.prior_loss_weight, large.lecam_weight) == (0.3, 0.1, 0.06, 1e-6)
    assert (large.commitment_loss_weight, large.codebook_loss_weight, large.entropy_loss_weight) == (0.25, 1.0, 0.0)
    from hf_vidtok.models.larp import LarpPriorLossSettings

    assert module.prior_loss_settings(large) == LarpPriorLossSettings()  # the release's scheduled sampling
    assert (large.disc_update_freq, large.min_lr_mult, large.prior_lr_mult, large.max_grad_norm) == (5, 0.01, 1.0, 0.0)
    assert (large.disc_hidden_size, large.disc_num_heads, large.disc_depth) == (512, 8, 12)
    assert large.train_batch_size * 8 == 128 and large.lr_warmup_steps * 150 == large.max_train_steps * 8
    tiny = module.parse_args(["--config", str(REPO / "training" / "configs" / "larp_tiny_samples.yaml")])
    assert tiny.sample_videos and tiny.perceptual_weight == 0.0
    small = LarpTokenizerConfig(**tiny.model_config)
    assert small.num_frames == 8 and small.image_size == 32
