"""hf_vidtok.data.mixed_complexity: the mixed-complexity benchmark, built offline from real photographs and videos."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("skimage")
pytest.importorskip("skvideo")

from hf_vidtok.data import VideoFile  # noqa: E402
from hf_vidtok.data.mixed_complexity import (  # noqa: E402
    CATEGORIES,
    HELD_OUT_PHOTOGRAPHS,
    MANIFEST,
    PHOTOGRAPHS,
    ClipRecipe,
    build_mixed_complexity_dataset,
    render_clip,
)

SMALL = dict(num_frames=12, resolution=24, clips_per_photograph=1, train_clips_per_video=2, held_out_clips_per_video=2)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    return root / "a", build_mixed_complexity_dataset(str(root / "a"), **SMALL)


def _rows(folder: Path, split: str) -> list[dict]:
    with open(folder / f"{split}.csv", newline="") as f:
        return list(csv.DictReader(f))


def _frames(folder: Path, rel: str) -> np.ndarray:
    with VideoFile(str(folder / rel)) as vf:
        return vf.read_frames(range(len(vf)))


def test_categories_counts_and_split_by_source(built):
    folder, manifest = built
    train, held = _rows(folder, "train"), _rows(folder, "validation")
    n_train_photos = len(PHOTOGRAPHS) - len(HELD_OUT_PHOTOGRAPHS)
    assert manifest["counts"]["train"] == {"still": n_train_photos, "slow": n_train_photos, "fast": n_train_photos,
                                           "cut": n_train_photos, "video": 4}
    assert manifest["counts"]["validation"] == {c: len(HELD_OUT_PHOTOGRAPHS) for c in CATEGORIES[:4]} | {"video": 2}
    for rows in (train, held):
        assert all(int(r["label"]) == CATEGORIES.index(r["class"]) for r in rows)
    # no photograph or video on both sides (a cut's second photograph included)
    clips = manifest["clips"]
    sources = {split: {c["source"] for c in clips if c["split"] == split} | {c["second"]["source"] for c in clips
                                                                               if c["split"] == split and c["second"]}
               for split in ("train", "validation")}
    assert sources["train"].isdisjoint(sources["validation"])
    assert set(HELD_OUT_PHOTOGRAPHS) <= sources["validation"] and "carphone_pristine" in sources["validation"]


def test_difficulty_is_known_by_construction(built):
    folder, manifest = built
    motion = {c: [] for c in CATEGORIES}
    for clip in manifest["clips"]:
        frames = _frames(folder, clip["path"]).astype(np.float64)
        assert frames.shape == (12, 24, 24, 3)
        steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # mean change per frame
        if clip["category"] == "still":
            assert steps.max() == 0.0  # a held frame: every frame is the first one
        if clip["category"] == "cut":
            cut = clip["cut_frame"]
            assert steps[cut - 1] > 3 * max(np.delete(steps, cut - 1).max(), 0.5)  # one jump, at the cut
        motion[clip["category"]].append(np.median(steps))
    assert np.mean(motion["fast"]) > 2 * np.mean(motion["slow"]) > 0


def test_loadable_by_the_csv_layout_and_written_once_reproducibly(built, tmp_path):
    from hf_vidtok.data import load_video_dataset

    folder, manifest = built
    ds = load_video_dataset(str(folder), layout="csv", split="validation", num_frames=12, resolution=24)
    assert ds.features["label"].names == list(CATEGORIES)
    assert len(ds) == sum(manifest["counts"]["validation"].values())
    first = ds[0]
    row = next(r for r in _rows(folder, "validation") if r["path"] == first["key"])
    assert first["label"] == int(row["label"]) and first["start_frame"] == 0
    np.testing.assert_array_equal(first["video"], _frames(folder, row["path"]))
    # the same settings elsewhere: the same bytes; the same folder again: reused, nothing rewritten
    again = build_mixed_complexity_dataset(str(tmp_path / "b"), **SMALL)
    assert again["files"] == manifest["files"]
    assert hashlib.sha256((tmp_path / "b" / "train.csv").read_bytes()).hexdigest() == manifest["files"]["train.csv"]
    stamp = (folder / MANIFEST).stat().st_mtime_ns
    assert build_mixed_complexity_dataset(str(folder), **SMALL)["files"] == manifest["files"]
    assert (folder / MANIFEST).stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="already holds data"):
        build_mixed_complexity_dataset(str(folder), **{**SMALL, "resolution": 16})
    with pytest.raises(ValueError, match="num_frames"):
        build_mixed_complexity_dataset(str(tmp_path / "c"), **{**SMALL, "num_frames": 0})
    with pytest.raises(ValueError, match="photographs"):
        build_mixed_complexity_dataset(str(tmp_path / "c"), **SMALL, photographs=("astronaut", "brick", "moon"))
    with pytest.raises(ValueError, match="photographs"):
        build_mixed_complexity_dataset(str(tmp_path / "c"), **SMALL, photographs=("astronaut", "lena", "moon", "text"))
    assert json.loads((folder / MANIFEST).read_text())["categories"] == list(CATEGORIES)


def test_render_clip_pans_the_photograph():
    """A pan of 1 output pixel per frame moves the content by one pixel per frame (away from the borders)."""
    recipe = ClipRecipe("x", "slow", "camera", center=(256.0, 256.0), size=128.0, velocity=(4.0, 0.0))
    frames = render_clip(recipe, 6, 32).astype(np.float64)
    shifted = np.abs(frames[1:, :, :-1] - frames[:-1, :, 1:]).mean()  # frame t+1 = frame t moved left by 1 px
    unshifted = np.abs(frames[1:] - frames[:-1]).mean()
    assert shifted < 0.25 * unshifted
