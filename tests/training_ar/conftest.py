"""Fixtures of the AR training tests: a tiny random LARP tokenizer and the sample-video tokens it
extracts once per session (frame-prediction tokens, so both training modes can use them)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("accelerate")
pytest.importorskip("datasets")
pytest.importorskip("av")
pytest.importorskip("yaml")

HERE = Path(__file__).resolve().parent
TRAINING = HERE.parents[1] / "training"
for _path in (TRAINING, HERE):  # the training scripts and ar_training_helpers
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from ar_training_helpers import CLIPS_PER_VIDEO, NUM_COND_FRAMES, TINY_TOKENIZER  # noqa: E402


@pytest.fixture(autouse=True)
def _reset_accelerate():
    """Each in-process run builds its own Accelerator; forget the previous one's global state."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    import torch

    from hf_vidtok import LarpTokenizer, LarpTokenizerConfig

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tokenizer")
    LarpTokenizer(LarpTokenizerConfig(**TINY_TOKENIZER)).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def token_dataset_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    import extract_tokens

    out = tmp_path_factory.mktemp("tokens") / "fp"
    extract_tokens.main([
        "--tokenizer_name_or_path", str(tiny_tokenizer_dir), "--sample_videos", "--clips_per_video", str(CLIPS_PER_VIDEO),
        "--frame_prediction", "--num_cond_frames", str(NUM_COND_FRAMES), "--flip_augment", "--batch_size", "8",
        "--output_dir", str(out), "--seed", "1",
    ])
    return out
