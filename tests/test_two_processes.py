"""Every training and scoring script under ``accelerate launch --multi_gpu --num_processes 2`` (CPU, gloo: the code
paths of NCCL), on tiny generated videos and tiny models:

* ``train_tokenizer.py`` (EVATok proxy, and LARP) killed with ``kill -9`` of the whole process group after a
  checkpoint and resumed, compared tensor by tensor with an uninterrupted two-process run;
* ``score_assignments.py`` and ``extract_tokens.py`` at two processes give the one-process table / dataset (one clip
  per batch: the same arithmetic in both runs, so bit for bit), each process logging its share;
* ``train_router.py``, the stage-4 ``train_tokenizer.py --router``, ``evaluate_adaptive.py`` and ``train_ar.py``
  (length tokens, and LARP's fixed-length tokens) run a few steps at two processes and write their outputs once;
* webdataset and Parquet shards (``hf_vidtok.data.pack_videos``) are split between the two processes by
  ``files_of_process``: each reads whole shards of its own, together every clip of a one-process read, once.
"""

from __future__ import annotations

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
pytest.importorskip("av")
pytest.importorskip("datasets")
yaml = pytest.importorskip("yaml")

from safetensors.torch import load_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "evatok"))
from evatok_test_helpers import load_script, tiny_evatok_config_kwargs, write_tiny_videos  # noqa: E402

sys.path.pop(0)

LEVELS = (2, 4, 8)
STEP_FLAGS = ["--max_train_steps", "6", "--checkpointing_steps", "2", "--validation_steps", "6", "--logging_steps", "2"]


def _env():
    env = dict(os.environ)
    env.update(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def _launch(script, *args, port_offset=0):
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(29700 + (os.getpid() + port_offset) % 200), str(script), *map(str, args)]


def _run2(script, *args, timeout=240) -> subprocess.CompletedProcess:
    proc = subprocess.run(_launch(REPO / script, *args), env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _tensors(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {p.relative_to(folder).as_posix(): load_file(str(p)) for p in sorted(folder.rglob("*.safetensors"))}


def _recipe(path: Path, **settings) -> str:
    path.write_text(yaml.safe_dump(settings))
    return str(path)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_processes")
    videos = write_tiny_videos(root / "videos", per_class=2, frames=10)  # 4 files: 2 per process
    held_out = write_tiny_videos(root / "held_out", per_class=1, frames=10, seed=7)  # 2 files: 1 per process
    recipe = _recipe(
        root / "proxy.yaml", model_type="evatok_tokenizer",
        model_config=dict(tiny_evatok_config_kwargs(LEVELS), token_levels=list(LEVELS)), assignment_sampling="random",
        assignment_micro_batches=2, train_data_dir=str(videos), validation_data_dir=str(held_out), dataset_layout="folder",
        train_batch_size=2, clips_per_video=2, learning_rate=3e-3, lr_warmup_steps=1, vq_loss_weight=1.0,
        perceptual_weight=0.0, disc_weight=0.1, disc_hidden_size=16, disc_num_heads=2, disc_depth=1, disc_update_freq=2,
        use_ema=True, ema_decay=0.9, num_validation_clips=2, dataloader_num_workers=1, torch_num_threads=1, seed=0,
        report_to="none",
    )
    return root, videos, held_out, recipe


# the tokenizer of tests/training/test_train_tokenizer.py (LARP, 4x16x16 clips, a one-layer prior)
TINY_LARP = dict(
    frame_num=4, input_size=16, patch_size=8, temporal_patch_size=2, encoder_hidden_size=32, decoder_hidden_size=32,
    encoder_num_heads=2, decoder_num_heads=2, encoder_depth=1, decoder_depth=1, bottleneck_token_num=8,
    codebook_size=37, bottleneck_dim=8, prior_name="custom", prior_num_layers=1, prior_num_heads=2,
    prior_hidden_size=16, prior_max_seq_len=8,
)


def _larp_recipe(root: Path, videos: Path, held_out: Path) -> str:
    return _recipe(
        root / "larp.yaml", model_config=TINY_LARP, train_data_dir=str(videos), validation_data_dir=str(held_out),
        dataset_layout="folder", train_batch_size=2, clips_per_video=2, learning_rate=1e-3, lr_warmup_steps=1,
        perceptual_weight=0.0, disc_weight=0.3, disc_hidden_size=16, disc_num_heads=2, disc_depth=1, disc_update_freq=2,
        use_ema=True, ema_decay=0.9, num_validation_clips=2, dataloader_num_workers=1, torch_num_threads=1, seed=3,
        report_to="none",
    )


@pytest.mark.parametrize("model", ["evatok", "larp"])
def test_kill_and_resume_at_two_processes_is_exact(work, model):
    root, videos, held_out, recipe = work
    if model == "larp":
        recipe = _larp_recipe(root, videos, held_out)
    prefix = "proxy" if model == "evatok" else model  # the later tests score and train on the EVATok proxy_full
    full, killed = root / f"{prefix}_full", root / prefix
    _run2("training/train_tokenizer.py", "--config", recipe, *STEP_FLAGS, "--output_dir", full)
    # the killed run pauses after its checkpoint of step 2 (both processes) so that the kill lands mid-run
    pausing = root / f"pausing_train_tokenizer_{model}.py"
    pausing.write_text(
        "import importlib.util, sys, time\n"
        f"spec = importlib.util.spec_from_file_location('tt', {str(REPO / 'training' / 'train_tokenizer.py')!r})\n"
        "tt = sys.modules['tt'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(tt)\n"
        "tt.main(sys.argv[1:], on_checkpoint=lambda step, path: time.sleep(120) if step == 2 else None)\n"
    )
    port_offset = 1 if model == "evatok" else 3
    proc = subprocess.Popen(_launch(pausing, "--config", recipe, *STEP_FLAGS, "--output_dir", killed, port_offset=port_offset),
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 180
    while not ((killed / "latest").is_file() and (killed / "latest").read_text().strip() == "checkpoint-2"):
        assert proc.poll() is None, proc.stderr.read().decode()[-4000:]
        assert time.time() < deadline, "no checkpoint-2 within 180 s"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
    proc.wait()
    assert not (killed / "model.safetensors").exists()
    resumed = _run2("training/train_tokenizer.py", "--config", recipe, *STEP_FLAGS, "--output_dir", killed,
                    "--resume_from_checkpoint", "latest")
    assert "resuming from" in resumed.stderr
    a, b = _tensors(full), _tensors(killed)
    # the final (EMA) weights, the raw weights and every checkpoint module (tokenizer, EMA, discriminator, LeCam)
    assert {"model.safetensors", "non_ema/model.safetensors", "checkpoint-6/tokenizer/model.safetensors",
            "checkpoint-6/tokenizer_ema/model.safetensors", "checkpoint-6/discriminator/model.safetensors"} <= set(a)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys(), name
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)
    # one copy of each model in a checkpoint: its save_pretrained folder, no accelerate model_<i>.safetensors
    checkpoint = sorted(os.listdir(full / "checkpoint-6"))
    assert not [f for f in checkpoint if f.startswith("model")], checkpoint
    assert {"rng_state_0.safetensors", "rng_state_1.safetensors", "tokenizer", "tokenizer_ema", "discriminator"} <= set(checkpoint)
    assert json.loads((full / "eval_results.json").read_text())["psnr"] == json.loads((killed / "eval_results.json").read_text())["psnr"]


def test_scoring_and_extraction_at_two_processes_equal_one_process(work):
    from hf_vidtok.evatok.score_table import load_score_table

    root, videos, held_out, _ = work
    proxy = root / "proxy_full"
    if not proxy.is_dir():
        pytest.fail("run the whole module: this test needs the proxy of test_kill_and_resume_at_two_processes_is_exact[evatok] (a skip here once hid two tests)")
    common = ["--tokenizer_name_or_path", proxy, "--quality_metric", "mse", "--batch_size", "1", "--rows_per_shard", "3"]
    two = _run2("training/score_assignments.py", *common, "--train_data_dir", videos, "--clips_per_video", "2",
                "--output_dir", root / "scores")
    shares = sorted(line.split(" process ")[1].split(" clips")[0] for line in two.stderr.splitlines() if " scored " in line)
    assert shares == ["0 scored 4", "1 scored 4"]  # each process its own two files, nothing twice
    one = load_script("training/score_assignments.py").main(
        [str(a) for a in common] + ["--train_data_dir", str(videos), "--clips_per_video", "2",
                                    "--output_dir", str(root / "scores_one")])
    a, b = load_score_table(root / "scores"), load_score_table(root / "scores_one")
    assert one["num_clips"] == a.num_clips == 8 and list(a.keys) == list(b.keys)
    for name in ("mse", "ssim", "start_frames", "labels"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.metadata["tokenizer_fingerprint"] == b.metadata["tokenizer_fingerprint"] and a.metadata["files"]["with_clips"] == 4
    assert sorted(os.listdir(root / "scores" / "data")) == ["scores-r00000-00000.parquet", "scores-r00000-00001.parquet",
                                                            "scores-r00001-00000.parquet", "scores-r00001-00001.parquet"]
    _run2("training/score_assignments.py", *common, "--train_data_dir", held_out, "--output_dir", root / "scores_held")

    extract = ["--tokenizer_name_or_path", proxy, "--train_data_dir", videos, "--clips_per_video", "2",
               "--assignment", "4,8", "--flip_augment", "--batch_size", "1"]
    two = _run2("training/extract_tokens.py", *extract, "--output_dir", root / "tokens")
    assert sum(" process 0 tokenized" in line or " process 1 tokenized" in line for line in two.stderr.splitlines()) >= 2
    load_script("training/extract_tokens.py").main([str(a) for a in extract] + ["--output_dir", str(root / "tokens_one")])
    import datasets

    ta, tb = datasets.load_from_disk(str(root / "tokens")), datasets.load_from_disk(str(root / "tokens_one"))
    assert len(ta) == len(tb) == 16 and ta.to_dict() == tb.to_dict()
    info = json.loads((root / "tokens" / "token_info.json").read_text())
    assert info["num_processes"] == 2 and info["num_examples"] == 16 and info["skipped_files"] == []
    assert not any(p.name.endswith(".extract-tmp") for p in root.iterdir())


def test_router_final_tokenizer_evaluation_and_ar_at_two_processes(work):
    from hf_vidtok.models.evatok import EvatokTokenizer

    root, videos, held_out, recipe = work
    if not (root / "scores_held").is_dir():
        pytest.fail("run the whole module: this test needs the score tables of test_scoring_and_extraction_at_two_processes_equal_one_process (a skip here once hid two tests)")
    router_recipe = _recipe(
        root / "router.yaml", head_type="quality", listwise_loss_weight=0.5, cache_clips=True,
        model_config=dict(hidden_size=16, num_attention_heads=2, num_hidden_layers=1, patch_size=8, temporal_patch_size=2),
        train_batch_size=2, learning_rate=3e-3, lr_warmup_steps=1, torch_num_threads=1, report_to="none")
    _run2("training/train_router.py", "--config", router_recipe, "--score_table", root / "scores", "--train_data_dir",
          videos, "--validation_score_table", root / "scores_held", *STEP_FLAGS, "--output_dir", root / "router")
    assert (root / "router" / "model.safetensors").is_file() and json.loads((root / "router" / "eval_results.json").read_text())["num_clips"] == 2

    _run2("training/train_tokenizer.py", "--config", recipe, "--router", root / "router", *STEP_FLAGS,
          "--output_dir", root / "final")
    assert EvatokTokenizer.from_pretrained(root / "final").router is not None

    evaluation = _run2("training/evaluate_adaptive.py", "--tokenizer_name_or_path", root / "final", "--score_table",
                       root / "scores_held", "--output_dir", root / "eval")
    assert "process 0 evaluates 1 clips" in evaluation.stderr and "process 1 evaluates 1 clips" in evaluation.stderr
    result = json.loads((root / "eval" / "adaptive_quality_cost.json").read_text())
    assert result["num_clips"] == 2 and {"uniform", "router", "max_reward"} <= set(result["curves"])

    ar_recipe = _recipe(root / "ar.yaml", model_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2),
                        train_batch_size=2, learning_rate=3e-3, lr_warmup_steps=1, num_validation_examples=4,
                        torch_num_threads=1, report_to="none")
    _run2("training/train_ar.py", "--config", ar_recipe, "--token_dataset", root / "tokens", *STEP_FLAGS,
          "--output_dir", root / "ar_length")
    assert json.loads((root / "ar_length" / "config.json").read_text())["token_levels"] == list(LEVELS)
    assert (root / "ar_length" / "checkpoint-6" / "generator" / "model.safetensors").is_file()

    # LARP's fixed-length tokens: a tiny random LarpTokenizer, extraction and the AR generator at two processes
    from hf_vidtok import LarpTokenizer, LarpTokenizerConfig

    torch.manual_seed(0)
    LarpTokenizer(LarpTokenizerConfig(
        frame_num=4, input_size=16, patch_size=8, temporal_patch_size=2, encoder_hidden_size=16, decoder_hidden_size=16,
        encoder_num_heads=2, decoder_num_heads=2, encoder_depth=1, decoder_depth=1, bottleneck_token_num=8,
        codebook_size=37, bottleneck_dim=8, prior_name="custom", prior_num_layers=1, prior_num_heads=2,
        prior_hidden_size=16, prior_max_seq_len=8)).save_pretrained(root / "larp")
    _run2("training/extract_tokens.py", "--tokenizer_name_or_path", root / "larp", "--train_data_dir", videos,
          "--clips_per_video", "2", "--output_dir", root / "larp_tokens")
    _run2("training/train_ar.py", "--config", ar_recipe, "--token_dataset", root / "larp_tokens", *STEP_FLAGS,
          "--output_dir", root / "ar_larp")
    results = json.loads((root / "ar_larp" / "eval_results.json").read_text())
    assert results["step"] == 6 and results["tokens_per_clip"] == 8 and np.isfinite(results["nll"])


SHARD_READER = """
import json, sys
from hf_vidtok.data import files_of_process, load_video_dataset
from hf_vidtok.training.accelerator import distributed_state

state = distributed_state()
out = {}
for layout in ("webdataset", "parquet"):
    ds = load_video_dataset(sys.argv[1] + "/" + layout, layout=layout, num_frames=4, resolution=16, clips_per_video=2,
                            streaming=True, seed=3)
    out[layout] = [[ex["key"], int(ex["start_frame"]), int(ex["label"])]
                   for ex in files_of_process(ds, state.process_index, state.num_processes)]
with open(f"{sys.argv[1]}/clips-{state.process_index}-of-{state.num_processes}.json", "w") as f:
    json.dump(out, f)
"""


def test_two_processes_split_webdataset_and_parquet_shards_without_duplicates(work):
    from hf_vidtok.data import load_video_dataset, pack_videos

    root, videos, _, _ = work
    shards = root / "shards"
    for layout in ("webdataset", "parquet"):  # 4 videos: 3 shards (2 + 1 + 1), uneven across the 2 processes
        pack_videos(videos, shards / layout, format=layout, max_shard_size=1)
        pack_videos(videos, shards / f"{layout}_pairs", format=layout, max_videos_per_shard=2)
    for name in ("webdataset", "parquet"):
        for f in sorted((shards / name / "data").iterdir())[:2]:
            f.unlink()  # keep 2 one-video shards, and a two-video shard from the pairs
        pair = sorted((shards / f"{name}_pairs" / "data").iterdir())[0]
        pair.rename(shards / name / "data" / f"train-99999-{pair.name}")
    script = root / "read_shards.py"
    script.write_text(SHARD_READER)
    _run2(script, shards)
    parts = [json.loads((shards / f"clips-{r}-of-2.json").read_text()) for r in range(2)]
    for layout in ("webdataset", "parquet"):
        ds = load_video_dataset(shards / layout, layout=layout, num_frames=4, resolution=16, clips_per_video=2,
                                streaming=True, seed=3)
        assert ds.num_shards == 3
        full = sorted([ex["key"], int(ex["start_frame"]), int(ex["label"])] for ex in ds)
        mine = [sorted(part[layout]) for part in parts]
        assert mine[0] and mine[1] and sorted(mine[0] + mine[1]) == full, layout
        assert not {k for k, _, _ in mine[0]} & {k for k, _, _ in mine[1]}  # whole videos (shards) per process
