"""Shared helpers of the EVATok stage-2 tests (imported through sys.path, set in conftest.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def load_script(relative_path: str):
    """Import a repo script (``training/x.py``, ``bench/x.py``) as a module, without touching sys.path."""
    path = REPO / relative_path
    name = "evatok_test_" + path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def synthetic_table(num_clips=40, levels=(2, 4, 8), num_blocks=3, seed=0, lpips=True):
    """A ScoreTable whose errors fall with the tokens of each block, by clip- and block-specific amounts."""
    from hf_vidtok.evatok.assignments import candidate_assignments
    from hf_vidtok.evatok.score_table import ScoreTable

    rng = np.random.default_rng(seed)
    a = candidate_assignments(levels, num_blocks).numpy().astype(np.float64)  # (A, T)
    difficulty = rng.uniform(0.2, 1.0, (num_clips, 1, num_blocks))
    block_err = difficulty / np.sqrt(a)[None]  # (N, A, T)
    mse = (0.02 * block_err).mean(-1)
    lp = (0.5 * block_err + 0.01 * rng.random(block_err.shape)).mean(-1)
    ssim = 1.0 - (0.3 * block_err).mean(-1)
    return ScoreTable(
        keys=np.asarray([f"clip_{i:03d}#0" for i in range(num_clips)], dtype=object),
        labels=np.arange(num_clips) % 3,
        start_frames=np.zeros(num_clips, dtype=np.int64),
        mse=mse.astype(np.float32),
        ssim=ssim.astype(np.float32),
        lpips=lp.astype(np.float32) if lpips else None,
        levels=tuple(levels),
        num_blocks=num_blocks,
        quality_metric="lpips" if lpips else "mse",
    )


def write_tiny_videos(root, classes=("calm", "busy"), per_class=3, frames=10, size=(24, 32), seed=0):
    """``root/<class>/<i>.mp4`` tiny H.264 videos of moving noise (the ``folder`` layout); returns root."""
    import av

    rng = np.random.default_rng(seed)
    root = Path(root)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = rng.integers(0, 256, (size[0], size[1] * 2, 3), dtype=np.uint8)
            with av.open(str(root / name / f"v{i}.mp4"), "w") as out:
                s = out.add_stream("libx264", rate=10)
                s.width, s.height, s.pix_fmt = size[1], size[0], "yuv420p"
                for f in range(frames):
                    shift = f * (1 + c * 2)
                    img = np.ascontiguousarray(np.roll(base, shift, axis=1)[:, : size[1]])
                    for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                        out.mux(packet)
                for packet in s.encode():
                    out.mux(packet)
    return root


def tiny_evatok_config_kwargs(levels=(2, 4, 8), num_frames=4):
    """A tiny EvatokTokenizerConfig (16x16 frames, 4x4 patches, 2 frames per block)."""
    return dict(
        image_size=16, num_frames=num_frames, patch_size=4, temporal_patch_size=2, token_levels=levels,
        hidden_size=24, num_attention_heads=2, encoder_layers=2, decoder_layers=2, codebook_size=37, code_dim=4,
        align_decoder_layer=1,
    )
