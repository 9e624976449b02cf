import numpy as np
import pytest
import torch

from hf_vidtok.data import collate_video_clips, to_float_clip


def _ex(seed, label=None, size=8, t=3):
    video = np.random.default_rng(seed).integers(0, 256, (t, size, size, 3), dtype=np.uint8)
    ex = {"video": video, "path": f"v{seed}.mp4", "start_frame": 0}
    if label is not None:
        ex["label"] = label
    return ex


def test_collate_shapes_values_and_labels():
    exs = [_ex(0, 2), _ex(1, np.int64(5)), {**_ex(2), "video": torch.from_numpy(_ex(2)["video"]), "label": torch.tensor(1)}]
    batch = collate_video_clips(exs)
    assert set(batch) == {"pixel_values", "labels"}
    pv = batch["pixel_values"]
    assert pv.shape == (3, 3, 3, 8, 8) and pv.dtype == torch.float32
    assert 0 <= pv.min() and pv.max() <= 1
    torch.testing.assert_close(pv[1], to_float_clip(exs[1]["video"]))
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [2, 5, 1]
    assert collate_video_clips([_ex(3)])["labels"].tolist() == [-1]  # no label -> -1


def test_collate_resize_and_flip():
    exs = [_ex(0, 0, size=8), _ex(1, 1, size=12)]
    with pytest.raises(ValueError, match="resolution"):
        collate_video_clips(exs)
    batch = collate_video_clips(exs, resolution=6)
    assert batch["pixel_values"].shape == (2, 3, 3, 6, 6)
    plain = collate_video_clips([_ex(0, 0)])["pixel_values"]
    g = torch.Generator().manual_seed(0)
    flips = [collate_video_clips([_ex(0, 0)], random_flip=True, generator=g)["pixel_values"] for _ in range(10)]
    kinds = {torch.equal(f, plain.flip(-1)) for f in flips}
    assert kinds == {True, False}
    assert all(torch.equal(f, plain) or torch.equal(f, plain.flip(-1)) for f in flips)


def test_collate_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        collate_video_clips([])
    with pytest.raises(ValueError, match="'video'"):
        collate_video_clips([{"label": 1}])
    with pytest.raises(TypeError, match="label"):
        collate_video_clips([{**_ex(0), "label": "cat"}])
