"""training/train_ar.py end to end on tiny models (CPU): the shipped tiny recipe learns on extracted
sample-video tokens, checkpoints resume exactly from `latest`, frame prediction trains on the fly, and
bad input fails with clear errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ar_training_helpers import NUM_COND_FRAMES, TINY_GENERATOR
from safetensors.torch import load_file

import train_ar

from hf_vidtok.training.token_data import TokenBatchSampler

REPO = Path(__file__).resolve().parents[2]
TINY_RECIPE = REPO / "training" / "configs" / "ar_tiny_samples.yaml"
OFFICIAL_RECIPE = REPO / "training" / "configs" / "larp_ar_ucf101.yaml"


def _recipe(tmp_path: Path, **overrides) -> Path:
    """The shipped tiny recipe with a smaller model (CI time)."""
    recipe = yaml.safe_load(TINY_RECIPE.read_text())
    recipe["model_config"] = {**recipe["model_config"], **TINY_GENERATOR}
    recipe.update(overrides)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_tiny_recipe_on_extracted_tokens_learns_and_saves(tmp_path, token_dataset_dir):
    out = tmp_path / "out"
    results = train_ar.main([
        "--config", str(TINY_RECIPE), "--token_dataset", str(token_dataset_dir), "--output_dir", str(out),
        "--max_train_steps", "40", "--validation_steps", "20", "--checkpointing_steps", "20", "--logging_steps", "10",
        "--checkpoints_total_limit", "1",
    ])
    # the zero-initialised head starts at the uniform NLL ln(37); the loss falls well below it
    assert results["initial_nll"] == pytest.approx(np.log(37), abs=1e-4)
    assert [h["step"] for h in results["history"]] == [0, 20, 40]
    assert results["nll"] < results["initial_nll"] - 1.0
    assert results["history"][1]["nll"] > results["nll"]
    assert np.isfinite(results["train_loss"]) and results["train_loss"] < np.log(37) - 0.5
    assert results["perplexity"] == pytest.approx(np.exp(results["nll"]))
    on_disk = json.loads((out / "eval_results.json").read_text())
    assert on_disk["nll"] == pytest.approx(results["nll"]) and on_disk["step"] == 40
    # checkpoints: pruned to one, `latest` points at it, with the official optimiser settings
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-40"]
    assert (out / "latest").read_text().strip() == "checkpoint-40"
    opt = torch.load(out / "checkpoint-40" / "optimizer.bin", weights_only=True)
    groups = opt["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    assert all(tuple(g["betas"]) == (0.9, 0.95) for g in groups)
    # final model: safetensors + card; a class-conditional generator over the tokenizer's codes
    from hf_vidtok import VideoARGenerator

    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    assert not list(out.glob("*.bin"))
    model = VideoARGenerator.from_pretrained(out).eval()
    cfg = model.config
    assert (cfg.codebook_size, cfg.max_seq_len, cfg.num_classes, cfg.frame_prediction) == (37, 8, 3, False)
    assert cfg.id2label == {0: "bigbuckbunny", 1: "bikes", 2: "carphone_pristine"}
    assert (cfg.hidden_size, cfg.num_hidden_layers) == (64, 2)  # the shipped recipe as it is
    weights = load_file(out / "model.safetensors")
    assert weights["lm_head.weight"].abs().sum() > 0  # trained away from the zero init
    tokens = model.generate(class_labels=[0, 2], cfg_scale=1.5, generator=torch.Generator().manual_seed(0))
    assert tokens.shape == (2, 8) and int(tokens.max()) < 37


def test_resume_from_latest_continues_exactly(tmp_path, token_dataset_dir):
    common = ["--token_dataset", str(token_dataset_dir), "--max_train_steps", "8", "--checkpointing_steps", "4",
              "--validation_steps", "8", "--logging_steps", "2", "--train_batch_size", "4",
              "--learning_rate", "3e-3"]
    full = tmp_path / "full"
    train_ar.main(["--config", str(_recipe(tmp_path)), *common, "--output_dir", str(full)])
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    part = tmp_path / "part"
    stopped = train_ar.main(["--config", str(_recipe(tmp_path)), *common, "--output_dir", str(part), "--stop_after_steps", "3"])
    assert stopped == {"stopped_at_step": 3}
    assert (part / "latest").read_text().strip() == "checkpoint-3" and not (part / "model.safetensors").exists()
    # the checkpoint holds the generator as a save_pretrained folder and nothing that needs full unpickling
    from hf_vidtok import VideoARGenerator
    from hf_vidtok.training import find_unsafe_pickles

    assert VideoARGenerator.from_pretrained(part / "checkpoint-3" / "generator").config.codebook_size == 37
    assert find_unsafe_pickles(part / "checkpoint-3") == []
    AcceleratorState._reset_state(True)
    results = train_ar.main(["--config", str(_recipe(tmp_path)), *common, "--output_dir", str(part),
                             "--resume_from_checkpoint", "latest"])
    assert results["step"] == 8 and [h["step"] for h in results["history"]] == [0, 8]
    a, b = load_file(full / "model.safetensors"), load_file(part / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    assert results["nll"] == json.loads((full / "eval_results.json").read_text())["nll"]


def test_frame_prediction_on_extracted_tokens(tmp_path, token_dataset_dir):
    out = tmp_path / "fp"
    results = train_ar.main([
        "--config", str(_recipe(tmp_path)), "--token_dataset", str(token_dataset_dir), "--frame_prediction",
        "--num_cond_frames", str(NUM_COND_FRAMES), "--max_train_steps", "20", "--validation_steps", "20",
        "--output_dir", str(out),
    ])
    assert results["frame_prediction"] is True and results["num_cond_frames"] == NUM_COND_FRAMES
    assert results["nll"] < results["initial_nll"] - 0.5
    from hf_vidtok import VideoARGenerator

    model = VideoARGenerator.from_pretrained(out).eval()
    assert model.config.frame_prediction and model.config.num_cond_tokens == 9 and model.config.vocab_size == 38
    cond = torch.randint(0, 37, (1, 8), generator=torch.Generator().manual_seed(0))
    assert model.generate(cond_ids=cond, top_k=1).shape == (1, 8)


def test_frame_prediction_with_tokens_on_the_fly(tmp_path, tiny_tokenizer_dir):
    out = tmp_path / "otf"
    results = train_ar.main([
        "--config", str(_recipe(tmp_path, token_dataset=None)), "--sample_videos",
        "--tokenizer_name_or_path", str(tiny_tokenizer_dir), "--frame_prediction", "--num_cond_frames", "3",
        "--clips_per_video", "2", "--train_batch_size", "2", "--max_train_steps", "6", "--validation_steps", "6",
        "--checkpointing_steps", "6", "--num_validation_examples", "4", "--output_dir", str(out),
    ])
    assert results["step"] == 6 and np.isfinite(results["nll"]) and results["num_validation_clips"] == 4
    assert results["validation_data"].startswith("training clips")
    assert (out / "checkpoint-6").is_dir() and (out / "model.safetensors").is_file()
    # the data stream position is checkpointed with the run
    state = json.loads((out / "checkpoint-6" / "training_state.json").read_text())
    assert set(state) == {"progress", "lr_scheduler", "data"}
    assert state["data"]["per_process"][0]["examples_consumed"] == 12  # 6 steps x batch 2


def test_token_batch_sampler_splits_epochs_and_resumes():
    samplers = [TokenBatchSampler(23, 3, process_index=r, num_processes=2, seed=5) for r in range(2)]
    assert samplers[0].batches_per_epoch == 3  # 11 rows per process -> 3 whole batches (drop_last)
    epoch0 = [[samplers[r].next_indices() for _ in range(3)] for r in range(2)]
    rows = [i for batches in epoch0 for b in batches for i in b]
    assert len(rows) == 18 and len(set(rows)) == 18 and all(0 <= i < 23 for i in rows)  # disjoint across processes
    state = samplers[0].state_dict()
    nxt = samplers[0].next_indices()  # epoch 1, reshuffled
    assert samplers[0].epoch == 1 and nxt != epoch0[0][0]
    again = TokenBatchSampler(23, 3, process_index=0, num_processes=2, seed=5)
    again.load_state_dict(state)
    assert again.next_indices() == nxt
    fresh = TokenBatchSampler(23, 3, process_index=0, num_processes=2, seed=5)
    assert [fresh.next_indices() for _ in range(3)] == epoch0[0]  # seeded
    changed = TokenBatchSampler(23, 3, process_index=0, num_processes=1, seed=5)
    changed.load_state_dict(state)  # another process count: restart at the next epoch
    assert (changed.epoch, changed.position) == (1, 0)
    with pytest.raises(ValueError, match="fewer than one batch"):
        TokenBatchSampler(5, 3, num_processes=2)


def _save_generator(path: Path, **kwargs) -> Path:
    from hf_vidtok import VideoARGenerator, VideoARGeneratorConfig

    VideoARGenerator(VideoARGeneratorConfig(**TINY_GENERATOR, **kwargs)).save_pretrained(path)
    return path


def _empty_token_dataset(tmp_path: Path, token_dataset_dir: Path) -> Path:
    import datasets

    ds = datasets.load_from_disk(str(token_dataset_dir)).select([])
    out = tmp_path / "empty_tokens"
    ds.save_to_disk(str(out))
    info = json.loads((token_dataset_dir / "token_info.json").read_text())
    (out / "token_info.json").write_text(json.dumps({**info, "num_examples": 0}))
    return out


@pytest.mark.parametrize(
    "case, match",
    [
        ("codebook", "codebook_size 40 != the tokenizer's codebook_size 37"),
        ("length", "max_seq_len 9 != the tokenizer's 8 tokens"),
        ("pretrained_codebook", "codebook_size 50 != the tokenizer's codebook_size 37"),
        ("fp_generator_for_class_run", "frame-prediction; pass `--frame_prediction`"),
        ("too_few_classes", "3 classes but the generator only 2"),
        ("cond_frames", "--num_cond_frames` 3 does not match the 2 condition frames"),
        ("tokenizer_mismatch", "does not match `--token_dataset`"),
        ("empty", "is empty"),
        ("no_info", "has no token_info.json"),
        ("unwritable", "output_dir.*not writable"),
        ("no_data", "no training data"),
        ("both_data", "either `--token_dataset`"),
    ],
)
def test_clear_errors(tmp_path, token_dataset_dir, tiny_tokenizer_dir, case, match):
    argv = ["--config", str(_recipe(tmp_path)), "--token_dataset", str(token_dataset_dir),
            "--output_dir", str(tmp_path / "out"), "--max_train_steps", "2"]
    if case == "codebook":
        argv = ["--config", str(_recipe(tmp_path, model_config={**TINY_GENERATOR, "codebook_size": 40})), *argv[2:]]
    elif case == "length":
        argv = ["--config", str(_recipe(tmp_path, model_config={**TINY_GENERATOR, "max_seq_len": 9})), *argv[2:]]
    elif case == "pretrained_codebook":
        gen = _save_generator(tmp_path / "gen", codebook_size=50, max_seq_len=8, num_classes=3)
        argv = ["--config", str(_recipe(tmp_path, model_config=None)), *argv[2:], "--pretrained_model_name_or_path", str(gen)]
    elif case == "fp_generator_for_class_run":
        gen = _save_generator(tmp_path / "gen", codebook_size=37, max_seq_len=8, frame_prediction=True)
        argv = ["--config", str(_recipe(tmp_path, model_config=None)), *argv[2:], "--pretrained_model_name_or_path", str(gen)]
    elif case == "too_few_classes":
        gen = _save_generator(tmp_path / "gen", codebook_size=37, max_seq_len=8, num_classes=2)
        argv = ["--config", str(_recipe(tmp_path, model_config=None)), *argv[2:], "--pretrained_model_name_or_path", str(gen)]
    elif case == "cond_frames":
        argv += ["--frame_prediction", "--num_cond_frames", "3"]
    elif case == "tokenizer_mismatch":
        from hf_vidtok import LarpTokenizer, LarpTokenizerConfig
        from ar_training_helpers import TINY_TOKENIZER

        other = tmp_path / "tok41"
        LarpTokenizer(LarpTokenizerConfig(**{**TINY_TOKENIZER, "codebook_size": 41})).save_pretrained(other)
        argv += ["--tokenizer_name_or_path", str(other)]
    elif case == "empty":
        argv[3] = str(_empty_token_dataset(tmp_path, token_dataset_dir))
    elif case == "no_info":
        bare = tmp_path / "bare"
        shutil.copytree(token_dataset_dir, bare)
        os.remove(bare / "token_info.json")
        argv[3] = str(bare)
    elif case == "unwritable":
        (tmp_path / "file").write_text("x")
        argv[5] = str(tmp_path / "file" / "out")
    elif case == "no_data":
        argv = ["--config", str(_recipe(tmp_path, token_dataset=None)), *argv[4:]]
    elif case == "both_data":
        argv += ["--sample_videos", "--tokenizer_name_or_path", str(tiny_tokenizer_dir)]
    with pytest.raises(ValueError, match=match):
        train_ar.main(argv)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_shipped_recipes_parse():
    tiny = train_ar.parse_args(["--config", str(TINY_RECIPE)])
    assert tiny.token_dataset and tiny.model_config["hidden_size"] == 64 and tiny.adam_beta2 == 0.95
    official = train_ar.parse_args(["--config", str(OFFICIAL_RECIPE), "--train_data_dir", "data/ucf101"])
    assert official.model_preset == "llama-abs-LP" and official.train_batch_size * 8 == 64
    assert (official.learning_rate, official.adam_weight_decay, official.adam_beta1, official.adam_beta2) == (6e-4, 0.05, 0.9, 0.95)
    assert (official.lr_warmup_epochs, official.min_lr_mult, official.mixed_precision) == (4, 0.01, "bf16")
    assert official.tokenizer_name_or_path == "hywang66/LARP-L-long-tokenizer"


def test_incomplete_token_dataset_is_a_clear_error(tmp_path, token_dataset_dir):
    import datasets

    out = tmp_path / "zero_shards"
    datasets.load_from_disk(str(token_dataset_dir)).select([]).save_to_disk(str(out))
    shutil.copy(token_dataset_dir / "token_info.json", out / "token_info.json")  # metadata claims clips
    with pytest.raises(ValueError, match="could not be loaded as a `datasets` dataset"):
        train_ar.main(["--config", str(_recipe(tmp_path)), "--token_dataset", str(out), "--output_dir", str(tmp_path / "o")])
