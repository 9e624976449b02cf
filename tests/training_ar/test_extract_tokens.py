"""training/extract_tokens.py: the saved token dataset holds exactly the deterministic tokens of the clips
(and, for frame prediction, of the repeated first frames); bad input fails clearly."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from ar_training_helpers import CLIPS_PER_VIDEO, NUM_COND_FRAMES

import extract_tokens

from hf_vidtok.training.token_data import condition_clips


def test_condition_clips_repeat_the_last_context_frame():
    x = torch.arange(2 * 3 * 5 * 2 * 2, dtype=torch.float32).reshape(2, 3, 5, 2, 2)
    cond = condition_clips(x, 2)
    assert cond.shape == x.shape
    torch.testing.assert_close(cond[:, :, :2], x[:, :, :2], rtol=0, atol=0)
    for t in range(2, 5):
        torch.testing.assert_close(cond[:, :, t], x[:, :, 1], rtol=0, atol=0)
    for bad in (0, 5, 7):
        with pytest.raises(ValueError, match="num_cond_frames"):
            condition_clips(x, bad)


def test_condition_matches_the_frame_prediction_pipeline():
    """Training conditions exactly as FramePredictionPipeline does at inference."""
    pytest.importorskip("diffusers")
    from hf_vidtok.pipelines import repeat_to_num_frames

    x = torch.rand(3, 3, 6, 4, 4, generator=torch.Generator().manual_seed(0))
    for n in (1, 3, 5):
        torch.testing.assert_close(condition_clips(x, n), repeat_to_num_frames(x[:, :, :n], 6), rtol=0, atol=0)


def test_saved_tokens_are_the_deterministic_tokens_of_the_clips(token_dataset_dir, tiny_tokenizer_dir):
    import datasets

    from hf_vidtok import LarpTokenizer
    from hf_vidtok.data import collate_video_clips, load_video_dataset, sample_videos

    info = json.loads((token_dataset_dir / "token_info.json").read_text())
    assert info["codebook_size"] == 37 and info["num_tokens"] == 8 and info["frame_prediction"] is True
    assert info["num_cond_frames"] == NUM_COND_FRAMES and info["vq"] == "deterministic"
    assert info["class_names"] == ["bigbuckbunny", "bikes", "carphone_pristine"]
    n = len(sample_videos()) * CLIPS_PER_VIDEO
    assert info["num_examples"] == 2 * n  # plus the flipped copies

    ds = datasets.load_from_disk(str(token_dataset_dir))
    assert len(ds) == 2 * n
    assert ds.features["label"].names == info["class_names"]
    assert ds.features["input_ids"].length == 8 and ds.features["cond_ids"].length == 8
    ids = np.asarray(ds["input_ids"])
    cond = np.asarray(ds["cond_ids"])
    assert ds.features["input_ids"].feature.dtype == "int32" and ids.shape == (2 * n, 8) and ids.min() >= 0 and ids.max() < 37
    flipped = np.asarray(ds["flipped"])
    assert flipped.sum() == n

    # the same clips, read again, encoded by the tokenizer directly
    tokenizer = LarpTokenizer.from_pretrained(str(tiny_tokenizer_dir)).eval()
    csv = token_dataset_dir.parent / "check.csv"
    csv.write_text("path,label\n" + "".join(f"{v},{v.stem}\n" for v in sample_videos()))
    clips = list(load_video_dataset(str(csv), layout="csv", split="train", num_frames=4, resolution=16,
                                    clips_per_video=CLIPS_PER_VIDEO, streaming=True, seed=1))
    assert len(clips) == n
    x = collate_video_clips(clips)["pixel_values"]
    with torch.no_grad():
        expect_ids = tokenizer.encode(x).indices.numpy()
        expect_flip = tokenizer.encode(x.flip(-1)).indices.numpy()
        repeated = torch.cat([x[:, :, :NUM_COND_FRAMES], x[:, :, NUM_COND_FRAMES - 1 : NUM_COND_FRAMES].expand(-1, -1, 4 - NUM_COND_FRAMES, -1, -1)], 2)
        expect_cond = tokenizer.encode(repeated).indices.numpy()
    key = {(p, s, f): i for i, (p, s, f) in enumerate(zip(ds["path"], ds["start_frame"], flipped))}
    order = [key[(str(c["path"]), int(c["start_frame"]), False)] for c in clips]
    order_f = [key[(str(c["path"]), int(c["start_frame"]), True)] for c in clips]
    np.testing.assert_array_equal(ids[order], expect_ids)
    np.testing.assert_array_equal(ids[order_f], expect_flip)
    np.testing.assert_array_equal(cond[order], expect_cond)
    np.testing.assert_array_equal(np.asarray(ds["label"])[order], [int(c["label"]) for c in clips])
    assert not np.array_equal(ids[order], ids[order_f])  # the flip changed some tokens


def _argv(tokenizer_dir, out, *extra):
    return ["--tokenizer_name_or_path", str(tokenizer_dir), "--sample_videos", "--clips_per_video", "1",
            "--output_dir", str(out), *extra]


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--frame_prediction", "--num_cond_frames", "4"], "num_cond_frames"),
        (["--resolution", "32"], "do not match the tokenizer"),
        (["--batch_size", "0"], "batch_size"),
    ],
)
def test_bad_arguments_raise(tmp_path, tiny_tokenizer_dir, extra, match):
    with pytest.raises(ValueError, match=match):
        extract_tokens.main(_argv(tiny_tokenizer_dir, tmp_path / "out", *extra))


def test_missing_tokenizer_unwritable_output_and_empty_data(tmp_path, tiny_tokenizer_dir):
    with pytest.raises(ValueError, match="tokenizer_name_or_path"):
        extract_tokens.main(_argv(tmp_path / "nope", tmp_path / "out"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="output_dir.*not writable"):
        extract_tokens.main(_argv(tiny_tokenizer_dir, blocker / "out"))
    # a CSV whose only video is unreadable: no clips at all
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 10)
    csv = tmp_path / "train.csv"
    csv.write_text(f"path,label\n{bad},a\n")
    out = tmp_path / "empty"
    with pytest.raises(ValueError, match="yielded no clips"):
        extract_tokens.main(["--tokenizer_name_or_path", str(tiny_tokenizer_dir), "--train_data_dir", str(csv),
                             "--dataset_layout", "csv", "--output_dir", str(out)])
    assert not (out / "token_info.json").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".extract-")]  # scratch removed


def test_videos_skipped_in_dataloader_workers_are_recorded(tmp_path, tiny_tokenizer_dir):
    """With DataLoader workers (each reads its own files), token_info.json lists every skipped video."""
    import av

    good = []
    for i in range(2):
        path = tmp_path / f"good{i}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=8)
            stream.width = stream.height = 16
            stream.pix_fmt = "yuv420p"
            for t in range(6):
                frame = np.full((16, 16, 3), 30 * t + 60 * i, np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        good.append(path)
    bad = [tmp_path / "bad.mp4", tmp_path / "empty.mp4"]
    bad[0].write_bytes(b"not a video" * 10)
    bad[1].write_bytes(b"")
    csv = tmp_path / "train.csv"
    csv.write_text("path,label\n" + "".join(f"{p},a\n" for p in [good[0], bad[0], good[1], bad[1]]))
    info = extract_tokens.main(["--tokenizer_name_or_path", str(tiny_tokenizer_dir), "--train_data_dir", str(csv),
                                "--dataset_layout", "csv", "--dataloader_num_workers", "2", "--output_dir",
                                str(tmp_path / "out")])
    assert info["num_examples"] == 2 and info["skipped_files"] == sorted(str(p) for p in bad)
    assert json.loads((tmp_path / "out" / "token_info.json").read_text())["skipped_files"] == info["skipped_files"]
