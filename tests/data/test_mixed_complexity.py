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


def test_window_fraction_sets_the_scale_of_every_category(built):
    """``window_fraction`` draws every photograph window's side in that share of the photograph's short side (the
    same for every category), is recorded in the settings only when set, and is checked."""
    from hf_vidtok.data.mixed_complexity import WINDOW_FRACTION, _load_photograph, clip_recipes

    _, manifest = built
    assert "window_fraction" not in json.loads(json.dumps(manifest["settings"]))  # the default: not recorded
    photographs = ("astronaut", "camera", "chelsea", "moon")
    kw = dict(num_frames=12, resolution=24, clips_per_photograph=2, clips_per_video=1, seed=0,
              video_lengths={"bigbuckbunny": 100, "bikes": 100, "carphone_pristine": 100}, photographs=photographs)
    short = {p: min(_load_photograph(p).shape[-2:]) for p in photographs}
    for fraction in ((0.1, 0.16), WINDOW_FRACTION):
        for split in ("train", "validation"):
            shares = [r.size / short[r.source] for r in clip_recipes(split, window_fraction=fraction, **kw)
                      if r.category != "video"]
            assert len(shares) % 8 == 0 and shares and max(shares) <= fraction[1] + 1e-9
            # smaller only where the whole path would not fit (fast pans); the still ones draw from the range
            assert min(shares) >= 0.5 * fraction[0]
    assert all(r1.size < r2.size for r1, r2 in zip(clip_recipes("train", window_fraction=(0.1, 0.16), **kw),
                                                   clip_recipes("train", **kw)) if r1.category == "still")
    for bad in ((0.2, 0.1), (0.0, 0.5), (0.5, 1.5), (0.3,)):
        with pytest.raises(ValueError, match="window_fraction"):
            build_mixed_complexity_dataset("unused", **SMALL, window_fraction=bad)
    with pytest.raises(TypeError, match="window_fraction"):
        build_mixed_complexity_dataset("unused", **SMALL, window_fraction="small")
