"""The README recipe's data path draws the same clips wherever the data and the outputs lie.

Runs the tokenizer training script's own data preparation (pre-resized lossless copies of the sample videos
under ``--output_dir``, CSVs listing them relative to their folder) and its training clip stream and held-out
clips, once from each of two working directories with the README's relative ``--output_dir``, and
compares what they draw bit for bit.
"""

import importlib.util
import itertools
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("datasets")
pytest.importorskip("accelerate")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "training" / "train_tokenizer.py"
RECIPE = REPO / "training" / "configs" / "larp_tiny_samples.yaml"  # the README's main job


def _load_script():
    name = "hf_vidtok_train_tokenizer_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _recipe_data(script, workdir: Path, num_batches: int) -> dict:
    """What the training run of the README recipe would train and validate on, from ``workdir``."""
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        args = script.parse_args(["--config", str(RECIPE), "--output_dir", "outputs/larp-tiny"])
        assert args.sample_videos
        args.output_dir = os.path.abspath(args.output_dir)  # as the script's run_training does
        # the data steps of the script's _train, in its order
        config = script.build_model(args).config
        args.num_frames, args.resolution = config.num_frames, config.image_size
        args.train_data_dir, args.validation_data_dir = script.sample_video_splits(
            os.path.join(args.output_dir, "sample_data"), resolution=args.resolution, num_frames=args.num_frames,
            validation_fraction=args.sample_validation_fraction, validation_video=args.sample_validation_video,
        )
        args.dataset_layout, args.validation_dataset_layout = "csv", "csv"
        args.train_split, args.validation_split = "train", "train"
        accelerator = SimpleNamespace(process_index=0, num_processes=1)
        stream = script.build_train_stream(args, accelerator)
        batches = list(itertools.islice(iter(stream), num_batches))
        validation = script.load_validation_clips(args, accelerator)
        sample_dir = Path(args.output_dir).resolve() / "sample_data"
        return {
            "pixels": [b["pixel_values"].numpy() for b in batches],
            # clip ids name the file by absolute path: compare them relative to the output folder
            "clips": [[cid.replace(str(sample_dir), "<sample_data>") for cid in b["clip_ids"]] for b in batches],
            "validation": [v.numpy() for v in validation],
            "files": {p.relative_to(sample_dir).as_posix(): p.read_bytes() for p in sorted(sample_dir.rglob("*.mkv"))},
            "csv": (sample_dir / "train.csv").read_text(),
        }
    finally:
        os.chdir(cwd)


def test_readme_recipe_draws_identical_clips_from_two_directories(tmp_path):
    script = _load_script()
    first = tmp_path / "first_checkout"
    second = tmp_path / "somewhere" / "else" / "entirely"
    for d in (first, second):
        d.mkdir(parents=True)
    a = _recipe_data(script, first, num_batches=3)
    b = _recipe_data(script, second, num_batches=3)
    assert a["csv"] == b["csv"] and str(first) not in a["csv"]  # the CSVs list paths relative to their folder
    assert a["files"].keys() == b["files"].keys() and len(a["files"]) == 6  # 3 videos x (train, validation)
    assert a["files"] == b["files"]  # the pre-resized copies are byte-identical
    assert a["clips"] == b["clips"]  # same files, same start frames, same order
    starts = {cid.rsplit("@", 1)[1] for batch in a["clips"] for cid in batch}
    assert len(starts) > 3  # the starts really are drawn (not all 0)
    assert len(a["pixels"]) == 3 and a["pixels"][0].shape == (8, 3, 8, 32, 32)
    for x, y in zip(a["pixels"], b["pixels"]):
        np.testing.assert_array_equal(x, y)
    assert len(a["validation"]) == len(b["validation"]) > 0
    for x, y in zip(a["validation"], b["validation"]):
        np.testing.assert_array_equal(x, y)


def test_readme_recipe_trains_identical_weights_in_two_folders(tmp_path):
    """The README's main job (a few steps of it), run as written from two working directories: same weights."""
    import subprocess

    from safetensors.torch import load_file

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    weights = []
    for workdir in (tmp_path / "a", tmp_path / "b" / "deeper"):
        workdir.mkdir(parents=True)
        proc = subprocess.run(
            [sys.executable, str(SCRIPT), "--config", str(RECIPE), "--output_dir", "outputs/larp-tiny",
             "--max_train_steps", "6", "--validation_steps", "6", "--checkpointing_steps", "3", "--num_validation_clips", "6"],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        weights.append(load_file(str(workdir / "outputs" / "larp-tiny" / "model.safetensors")))
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 10
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
