"""Variable-length (EVATok) AR data and training: extract_tokens.py with a router or a fixed assignment
stores each clip's own tokens and counts (and fixed-assignment condition blocks); train_ar.py trains a
length-token generator on them (padded batches, NLL per visual token, mean generated length)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import extract_tokens
import train_ar

from hf_vidtok import EvatokTokenizer, EvatokTokenizerConfig
from hf_vidtok.training.length_token_data import LengthGroupedTokenBatchSampler, length_token_batch

LEVELS = (1, 2, 4)
TINY_EVATOK = dict(
    image_size=16, num_frames=4, patch_size=8, temporal_patch_size=2, token_levels=LEVELS, hidden_size=16,
    num_attention_heads=2, encoder_layers=1, decoder_layers=1, codebook_size=23, code_dim=4, mlp_ratio=2.0,
)


@pytest.fixture(scope="module")
def evatok_dirs(tmp_path_factory):
    from hf_vidtok.models.evatok.configuration_evatok_router import EvatokRouterConfig
    from hf_vidtok.models.evatok.modeling_evatok_router import EvatokRouter

    root = tmp_path_factory.mktemp("evatok")
    torch.manual_seed(0)
    EvatokTokenizer(EvatokTokenizerConfig(**TINY_EVATOK)).save_pretrained(root / "tokenizer")
    router = EvatokRouter(EvatokRouterConfig(
        token_levels=LEVELS, num_blocks=2, image_size=16, num_frames=4, patch_size=8, temporal_patch_size=2,
        hidden_size=16, num_attention_heads=2, num_hidden_layers=1,
    ))
    with torch.no_grad():  # large random weights: different assignments (and lengths) for different clips
        for p in router.parameters():
            if p.dim() > 1:
                p.normal_(std=1.0)
    router.save_pretrained(root / "router")
    common = ["--tokenizer_name_or_path", str(root / "tokenizer"), "--sample_videos", "--clips_per_video", "3",
              "--batch_size", "4", "--seed", "1"]
    extract_tokens.main(common + ["--router_name_or_path", str(root / "router"), "--output_dir", str(root / "c2v")])
    extract_tokens.main(common + ["--frame_prediction", "--num_cond_frames", "2", "--cond_token_counts", "4",
                                  "--assignment", "4,2", "--output_dir", str(root / "fp")])
    return root


def test_extracted_tokens_are_the_clips_tokens_at_their_counts(evatok_dirs):
    import datasets

    from hf_vidtok.data import collate_video_clips, load_video_dataset
    from hf_vidtok.models.evatok.modeling_evatok_router import EvatokRouter
    from hf_vidtok.training.sample_data import sample_video_csv

    info = json.loads((evatok_dirs / "c2v" / "token_info.json").read_text())
    assert info["token_levels"] == list(LEVELS) and info["num_blocks"] == 2 and info["num_tokens"] == 8
    ds = datasets.load_from_disk(str(evatok_dirs / "c2v"))
    counts = np.asarray(ds["token_counts"])
    lengths = np.asarray([len(x) for x in ds["input_ids"]])
    assert np.array_equal(lengths, counts.sum(1)) and len(set(lengths.tolist())) > 1  # the router varies lengths
    assert info["mean_tokens"] == pytest.approx(lengths.mean())
    # recompute the first clips: router counts, then encode at those counts
    csv_dir = evatok_dirs / "csv"
    csv_dir.mkdir(exist_ok=True)
    clips = load_video_dataset(sample_video_csv(str(csv_dir)), layout="csv", split="train", num_frames=4, resolution=16,
                               clips_per_video=3, streaming=True, seed=1)
    batch = collate_video_clips([ex for _, ex in zip(range(4), clips)])["pixel_values"]
    tokenizer = EvatokTokenizer.from_pretrained(evatok_dirs / "tokenizer").eval()
    router = EvatokRouter.from_pretrained(evatok_dirs / "router").eval()
    with torch.no_grad():
        expected_counts = router.select(batch)
        indices = tokenizer.encode(batch, assignment=expected_counts.cpu()).indices
    assert np.array_equal(counts[:4], expected_counts.numpy())
    for b in range(4):
        assert ds[b]["input_ids"] == indices[b, : int(expected_counts[b].sum())].tolist()


def test_frame_prediction_condition_blocks_are_fixed(evatok_dirs):
    import datasets

    info = json.loads((evatok_dirs / "fp" / "token_info.json").read_text())
    assert info["cond_token_counts"] == [4] and info["assignment"] == [4, 2]
    ds = datasets.load_from_disk(str(evatok_dirs / "fp"))
    assert ds.features["cond_ids"].length == 4
    assert (np.asarray(ds["token_counts"]) == [4, 2]).all()
    with pytest.raises(ValueError, match="cond_token_counts"):
        extract_tokens.main(["--tokenizer_name_or_path", str(evatok_dirs / "tokenizer"), "--sample_videos",
                             "--frame_prediction", "--num_cond_frames", "2", "--assignment", "4,2",
                             "--output_dir", str(evatok_dirs / "bad")])
    with pytest.raises(ValueError, match="--assignment"):
        extract_tokens.main(["--tokenizer_name_or_path", str(evatok_dirs / "tokenizer"), "--sample_videos",
                             "--assignment", "3,2", "--output_dir", str(evatok_dirs / "bad")])
    with pytest.raises(ValueError, match="router_name_or_path"):  # no router given and none shipped with the tokenizer
        extract_tokens.main(["--tokenizer_name_or_path", str(evatok_dirs / "tokenizer"), "--sample_videos",
                             "--output_dir", str(evatok_dirs / "bad")])


def test_length_grouped_sampler_groups_lengths_and_resumes():
    lengths = np.asarray([1, 9, 2, 8, 3, 7, 4, 6, 5, 5, 9, 1] * 4)
    a = LengthGroupedTokenBatchSampler(lengths, 4, window=3, seed=3)
    batches = [a.next_indices() for _ in range(a.batches_per_epoch)]
    assert sorted(i for b in batches for i in b) == list(range(48))  # one epoch covers every clip once
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    plain = np.mean([np.ptp(lengths[np.random.default_rng(0).permutation(48)[i : i + 4]]) for i in range(0, 48, 4)])
    assert spread < plain  # similar lengths per batch
    b = LengthGroupedTokenBatchSampler(lengths, 4, window=3, seed=3)
    b.next_indices()
    state = b.state_dict()
    c = LengthGroupedTokenBatchSampler(lengths, 4, window=3, seed=3)
    c.load_state_dict(state)
    assert c.next_indices() == b.next_indices()


def test_train_ar_on_variable_length_tokens(tmp_path, evatok_dirs):
    out = tmp_path / "out"
    results = train_ar.main(["--config", str(_recipe(tmp_path, evatok_dirs / "c2v")), "--output_dir", str(out)])
    info = json.loads((evatok_dirs / "c2v" / "token_info.json").read_text())
    assert results["nll"] < results["initial_nll"] - 0.5
    assert np.isfinite(results["nll_per_visual_token"]) and results["nll_per_visual_token"] > results["nll"]
    assert 2 <= results["mean_generated_tokens"] <= 8 and 2 <= results["mean_tokens"] <= 8
    print("mean tokens (data, validation, generated):", info["mean_tokens"], results["mean_tokens"], results["mean_generated_tokens"])
    from hf_vidtok import VideoARGenerator

    model = VideoARGenerator.from_pretrained(out).eval()
    assert model.config.token_levels == list(LEVELS) and model.config.num_blocks == 2 and model.config.max_seq_len == 10
    seq = model.generate([0, 1, 2], cfg_scale=1.5, generator=torch.Generator().manual_seed(0))
    _, counts = model.parse_generated(seq)
    assert counts.shape == (3, 2) and set(counts.flatten().tolist()) <= set(LEVELS)


def test_train_ar_frame_prediction_on_variable_length_tokens(tmp_path, evatok_dirs):
    results = train_ar.main(["--config", str(_recipe(tmp_path, evatok_dirs / "fp", max_train_steps=10)),
                             "--frame_prediction", "--num_cond_frames", "2", "--output_dir", str(tmp_path / "out")])
    # block 0 is forced to the condition's 4 tokens, block 1 is the generator's choice among the levels
    assert 5 <= results["mean_generated_tokens"] <= 8 and results["mean_tokens"] == pytest.approx(6.0)
    from hf_vidtok import VideoARGenerator

    model = VideoARGenerator.from_pretrained(tmp_path / "out")
    assert model.config.frame_prediction and model.config.num_cond_tokens == 5


def test_length_token_batch_layout():
    from hf_vidtok import VideoARGeneratorConfig

    config = VideoARGeneratorConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, codebook_size=23,
                                    num_classes=3, token_levels=list(LEVELS), num_blocks=2)
    rows = {"input_ids": [np.array([5, 6, 7]), np.array([1, 2, 3, 4, 9, 8])], "token_counts": np.array([[1, 2], [4, 2]]),
            "label": np.array([0, 2])}
    batch = length_token_batch(rows, config)
    assert batch["input_ids"].tolist() == [[23, 5, 24, 6, 7, 23, 23, 23], [25, 1, 2, 3, 4, 24, 9, 8]]
    assert batch["labels"][0].tolist() == [23, 5, 24, 6, 7, -100, -100, -100]
    assert batch["label"].tolist() == [0, 2]


def _recipe(tmp_path, token_dataset, **overrides):
    import yaml

    recipe = dict(
        token_dataset=str(token_dataset), model_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2),
        seed=0, train_batch_size=4, max_train_steps=40, learning_rate=3e-3, lr_scheduler="larp_cosine", lr_warmup_steps=2,
        min_lr_mult=0.1, torch_num_threads=1, num_validation_examples=8, checkpointing_steps=40, validation_steps=40,
        logging_steps=10, report_to="none",
    )
    recipe.update(overrides)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path
