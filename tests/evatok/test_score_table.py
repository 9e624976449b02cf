import glob
import json
import os

import numpy as np
import pytest

from hf_vidtok.evatok.score_table import ScoreTableWriter, load_score_table, score_table_schema

LEVELS, T = (2, 3, 5), 2  # A = 9


def _batch(rng, start, n, lpips=True):
    keys = [f"video_{i:03d}.mp4#0" for i in range(start, start + n)]
    mse = rng.random((n, 9), dtype=np.float32)
    ssim = rng.random((n, 9), dtype=np.float32)
    lp = rng.random((n, 9), dtype=np.float32) if lpips else None
    return keys, list(range(start, start + n)), [7 * i for i in range(start, start + n)], mse, ssim, lp


def test_write_read_round_trip_two_ranks(tmp_path):
    rng = np.random.default_rng(0)
    writers = [ScoreTableWriter(tmp_path, LEVELS, T, "lpips", rank=r, world_size=2, rows_per_shard=3) for r in (0, 1)]
    expected = {}
    for step in range(4):
        for r, w in enumerate(writers):
            b = _batch(rng, 100 * r + 2 * step, 2)
            for i, k in enumerate(b[0]):
                expected[k] = (b[1][i], b[2][i], b[3][i], b[4][i], b[5][i])
            w.add(*b, state={"step": step})
    for w in writers:
        w.flush(state={"step": "end"})
    shards = sorted(glob.glob(str(tmp_path / "data" / "*.parquet")))
    assert [os.path.basename(s) for s in shards] == [
        f"scores-r{r:05d}-{i:05d}.parquet" for r in (0, 1) for i in range(2)
    ]
    table = load_score_table(tmp_path)
    assert table.num_clips == 16 and table.num_assignments == 9
    assert list(table.keys) == sorted(expected)
    assert table.levels == LEVELS and table.num_blocks == T and table.quality_metric == "lpips"
    for i, k in enumerate(table.keys):
        lab, sf, mse, ssim, lp = expected[k]
        assert table.labels[i] == lab and table.start_frames[i] == sf
        np.testing.assert_array_equal(table.mse[i], mse)
        np.testing.assert_array_equal(table.ssim[i], ssim)
        np.testing.assert_array_equal(table.lpips[i], lp)
    np.testing.assert_allclose(table.psnr, -10 * np.log10(table.mse.astype(np.float64)))
    assert table.assignments.shape == (9, 2) and table.lengths.tolist() == [4, 5, 7, 5, 6, 8, 7, 8, 10]
    # completion records and resume helpers
    rec = json.load(open(tmp_path / "progress" / "scores-r00001-00001.json"))
    assert rec["num_rows"] == 4 and rec["state"] == {"step": 3} and rec["world_size"] == 2
    again = ScoreTableWriter(tmp_path, LEVELS, T, "lpips", rank=1, world_size=2, rows_per_shard=3)
    assert again.last_state() == {"step": 3} and again.completed_keys() == set(expected)
    assert ScoreTableWriter(tmp_path, LEVELS, T, "lpips", rank=1, world_size=3).last_state() is None
    assert again._next_index == 2


def test_datasets_reads_shards_and_null_lpips(tmp_path):
    import datasets

    rng = np.random.default_rng(1)
    w = ScoreTableWriter(tmp_path, LEVELS, T, "mse", rows_per_shard=100)
    b = _batch(rng, 0, 4, lpips=False)
    w.add(*b)
    w.flush()
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "data" / "*.parquet"), split="train")
    assert ds.num_rows == 4 and ds[2]["key"] == b[0][2] and ds[2]["lpips"] is None
    np.testing.assert_array_equal(np.asarray(ds[2]["mse"], dtype=np.float32), b[3][2])
    table = load_score_table(glob.glob(str(tmp_path / "data" / "*.parquet"))[0])
    assert table.lpips is None and table.quality_metric == "mse"
    with pytest.raises(ValueError, match="lpips"):
        table.metric("lpips")
    np.testing.assert_array_equal(table.metric(), table.mse)


def test_errors(tmp_path):
    rng = np.random.default_rng(2)
    w = ScoreTableWriter(tmp_path, LEVELS, T, "lpips")
    with pytest.raises(ValueError, match="mse"):
        w.add(["a"], [0], [0], np.zeros((1, 8)), np.zeros((1, 9)))
    b = _batch(rng, 0, 2)
    w.add(*b)
    w.flush()
    with pytest.raises(ValueError, match="quality_metric"):
        ScoreTableWriter(tmp_path, LEVELS, T, "ssim")  # existing table has another metric
    with pytest.raises(ValueError, match="quality_metric"):
        score_table_schema(LEVELS, T, "psnr")
    w.add(*b)  # the same clips again -> a duplicate on load
    w.flush()
    with pytest.raises(ValueError, match="more than once"):
        load_score_table(tmp_path)
    with pytest.raises(ValueError, match="path_or_repo_id"):
        load_score_table(tmp_path / "missing")
    with pytest.raises(ValueError, match="rows_per_shard"):
        ScoreTableWriter(tmp_path / "x", LEVELS, T, rows_per_shard=0)


def test_resume_refuses_other_clip_settings(tmp_path):
    """A rerun into the same folder with other clip settings must not silently keep the old table."""
    rng = np.random.default_rng(3)
    info = {"clips_per_video": 16, "seed": 0, "tokenizer": "/old/place"}
    w = ScoreTableWriter(tmp_path, LEVELS, T, "ssim", extra_metadata=info, resume_keys=("clips_per_video", "seed"))
    w.add(*_batch(rng, 0, 2))
    w.flush()
    # same clip settings (the tokenizer moved: not a resume key) -> resumes, keys already done are known
    moved = {**info, "tokenizer": "/new/place"}
    w2 = ScoreTableWriter(tmp_path, LEVELS, T, "ssim", extra_metadata=moved, resume_keys=("clips_per_video", "seed"))
    assert len(w2.completed_keys()) == 2
    with pytest.raises(ValueError, match=r"clips_per_video=16 there, 32 now"):
        ScoreTableWriter(tmp_path, LEVELS, T, "ssim", extra_metadata={**info, "clips_per_video": 32},
                         resume_keys=("clips_per_video", "seed"))
    with pytest.raises(ValueError, match="resume_keys"):
        ScoreTableWriter(tmp_path / "y", LEVELS, T, "ssim", extra_metadata=info, resume_keys=("fps",))
