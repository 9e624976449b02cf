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
