"""training/score_assignments.py: end to end on tiny videos, and a killed + resumed run == an uninterrupted one."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("accelerate")
pytest.importorskip("av")
evatok = pytest.importorskip("hf_vidtok.models.evatok")

from evatok_test_helpers import REPO, load_script, tiny_evatok_config_kwargs, write_tiny_videos  # noqa: E402

from hf_vidtok.evatok.score_table import load_score_table  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    videos = write_tiny_videos(root / "videos")
    torch.manual_seed(0)
    tok = evatok.EvatokTokenizer(evatok.EvatokTokenizerConfig(**tiny_evatok_config_kwargs()))
    tok.save_pretrained(root / "tokenizer")
    return root, videos, tok.eval()


def _args(root, videos, out, *extra):
    return ["--tokenizer_name_or_path", str(root / "tokenizer"), "--train_data_dir", str(videos),
            "--quality_metric", "mse", "--clips_per_video", "2", "--batch_size", "2", "--rows_per_shard", "3",
            "--output_dir", str(out), *extra]


def test_scores_match_direct_scoring_and_resume_is_exact(setup, tmp_path):
    root, videos, tok = setup
    script = load_script("training/score_assignments.py")
    full = tmp_path / "full"
    result = script.main(_args(root, videos, full))
    table = load_score_table(full)
    assert result["num_clips"] == table.num_clips == 12  # 6 files x 2 clips
    assert table.levels == (2, 4, 8) and table.num_blocks == 2 and table.lpips is None
    assert sorted(set(k.split("#")[1] for k in table.keys)) == ["0", "1"]
    assert sorted(set(k.split("#")[0] for k in table.keys)) == [f"{c}/v{i}.mp4" for c in ("busy", "calm") for i in range(3)]
    assert set(table.labels.tolist()) == {0, 1} and (table.labels[:6] == 0).all()  # busy < calm
    assert (root / "tokenizer").exists() and os.path.exists(full / "README.md")
    card = open(full / "README.md").read()
    assert "data/*.parquet" in card and "EVATok stage-2 score table" in card

    # the stored scores are those of the prefix tree on the decoded clip
    from hf_vidtok.data import load_video_dataset
    from hf_vidtok.evatok.scoring import score_assignments

    ds = load_video_dataset(videos, num_frames=4, resolution=16, clips_per_video=2, streaming=True)
    ex = next(iter(ds))
    x = torch.from_numpy(np.asarray(ex["video"]))[None].permute(0, 4, 1, 2, 3).float() / 255
    key = ex["key"] + "#0"
    i = list(table.keys).index(key)
    ref = score_assignments(tok, x)
    np.testing.assert_allclose(table.mse[i], ref.mse[0].numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(table.ssim[i], ref.ssim[0].numpy(), rtol=1e-6, atol=1e-7)
    assert table.start_frames[i] == ex["start_frame"]

    # killed after 3 batches (one complete shard of 4 clips, 2 clips pending and lost), then resumed
    part = tmp_path / "part"
    cmd = [sys.executable, str(REPO / "training" / "score_assignments.py"), *_args(root, videos, part)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd + ["--stop_after_batches", "3"], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(os.listdir(part / "data")) == ["scores-r00000-00000.parquet"]
    assert load_score_table(part).num_clips == 4
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumes its stream" in second.stderr
    resumed = load_score_table(part)  # raises on a clip scored twice
    assert list(resumed.keys) == list(table.keys)
    for name in ("labels", "start_frames"):
        assert np.array_equal(getattr(resumed, name), getattr(table, name))
    for name in ("mse", "ssim"):
        np.testing.assert_allclose(getattr(resumed, name), getattr(table, name), rtol=1e-6, atol=1e-7)
    # a third run finds everything done and scores nothing
    third = script.main(_args(root, videos, part))
    assert third["clips_scored"] == 0 and third["num_clips"] == 12


def test_skipped_files_are_stored_and_another_tokenizer_cannot_resume(setup, tmp_path):
    """Unreadable files are counted in score_table.json, the loaded table's metadata and the card; the table
    records the tokenizer's fingerprint, and a rerun into the same folder with other weights is refused."""
    import json
    import shutil

    root, videos, tok = setup
    data = tmp_path / "videos"
    shutil.copytree(videos, data)
    (data / "calm" / "broken.mp4").write_bytes(b"not a video")
    (data / "busy" / "empty.mp4").write_bytes(b"")
    script = load_script("training/score_assignments.py")
    out = tmp_path / "scores"
    result = script.main(_args(root, data, out))
    assert result["num_clips"] == 12 and result["files"]["skipped"] == 2 and result["files"]["with_clips"] == 6
    info = json.loads((out / "score_table.json").read_text())
    assert sorted(info["files"]["skipped_files"]) == [str(data / "busy" / "empty.mp4"), str(data / "calm" / "broken.mp4")]
    assert info["tokenizer_fingerprint"]["weights_sha256"] == result_sha(tok)
    table = load_score_table(out)
    assert table.metadata["files"]["skipped"] == 2 and table.metadata["tokenizer_fingerprint"] == info["tokenizer_fingerprint"]
    card = (out / "README.md").read_text()
    assert "6 gave clips, 2 skipped" in card and "broken.mp4" in card and info["tokenizer_fingerprint"]["weights_sha256"] in card
    # the same folder again with other weights (same path): refused, nothing mixed in
    other = evatok.EvatokTokenizer(tok.config)
    other.save_pretrained(tmp_path / "other")
    args = _args(root, data, out)
    args[args.index("--tokenizer_name_or_path") + 1] = str(tmp_path / "other")
    with pytest.raises(ValueError, match="tokenizer_fingerprint"):
        script.main(args)
    assert load_score_table(out).num_clips == 12


def test_scoring_webdataset_shards_killed_and_resumed_equals_the_folder_table(setup, tmp_path):
    """The tiny videos packed into webdataset shards (3 per shard, plus a member that is not a video): scoring them,
    killed and resumed in the middle of a tar shard, gives the table of the folder (same keys, starts, labels and scores), and the bad
    member is counted as skipped."""
    import io
    import json
    import tarfile

    from hf_vidtok.data import pack_videos

    root, videos, _ = setup
    shards = tmp_path / "shards"
    pack_videos(videos, shards, format="webdataset", max_videos_per_shard=3)
    first = sorted((shards / "data").iterdir())[0]
    with tarfile.open(first, "a") as tar:
        info = tarfile.TarInfo("busy/junk.mp4")
        info.size = 400
        tar.addfile(info, io.BytesIO(b"\x01" * 400))
    script = load_script("training/score_assignments.py")
    folder = script.main(_args(root, videos, tmp_path / "folder"))
    args = _args(root, shards, tmp_path / "part", "--dataset_layout", "webdataset")
    cmd = [sys.executable, str(REPO / "training" / "score_assignments.py"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first_run = subprocess.run(cmd + ["--stop_after_batches", "3"], env=env, capture_output=True, text=True, timeout=600)
    assert first_run.returncode == 0, first_run.stderr[-3000:]
    assert load_score_table(tmp_path / "part").num_clips == 4  # 2 of the first tar shard's 3 videos: resumes inside it
    second = script.main(args)
    assert second["clips_scored"] == 8 and second["files"]["skipped"] == 1
    a, b = load_score_table(tmp_path / "part"), load_score_table(tmp_path / "folder")
    assert folder["num_clips"] == a.num_clips == 12 and list(a.keys) == list(b.keys)
    for name in ("labels", "start_frames"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for name in ("mse", "ssim"):  # the same clips through the same code: equal up to float32 rounding across runs
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, atol=1e-7)
    skipped = json.loads((tmp_path / "part" / "score_table.json").read_text())["files"]["skipped_files"]
    assert list(skipped) == [f"{first}#busy/junk.mp4"]


def result_sha(model):
    from hf_vidtok.models.fingerprint import weights_sha256

    return weights_sha256(model)


def test_bad_arguments(setup, tmp_path):
    root, videos, _ = setup
    script = load_script("training/score_assignments.py")
    with pytest.raises(ValueError, match="lpips_weights"):
        script.parse_args(["--tokenizer_name_or_path", "x", "--train_data_dir", "y", "--output_dir", "z"])
    with pytest.raises(ValueError, match="batch_size"):
        script.parse_args(_args(root, videos, tmp_path, "--batch_size", "0"))
    with pytest.raises(ValueError, match="num_frames"):
        script.main(_args(root, videos, tmp_path / "o", "--num_frames", "6"))


def test_push_to_hub_and_load_back(tmp_path, monkeypatch):
    """The table + card go to a (fake, local) Hub dataset repo and load_score_table reads it back by repo id."""
    sys.path.insert(0, str(REPO / "tests" / "hub"))
    try:
        from fake_hub import FakeHub, hub_environment
    finally:
        sys.path.pop(0)
    from hf_vidtok.evatok.score_table import ScoreTableWriter

    rng = np.random.default_rng(0)
    out = tmp_path / "scores"
    w = ScoreTableWriter(out, (1, 2), 2, "ssim", rows_per_shard=2)
    w.add(["a#0", "b#0", "c#0"], [0, 1, -1], [0, 3, 5], rng.random((3, 4)), rng.random((3, 4)))
    w.flush()
    script = load_script("training/score_assignments.py")
    info = {"tokenizer": "tok", "data": "videos", "num_frames": 4, "resolution": 16, "num_clips": 3,
            "levels": [1, 2], "num_blocks": 2, "quality_metric": "ssim"}
    script.write_dataset_card(str(out), info, "user/evatok-scores")
    server = FakeHub()
    try:
        with hub_environment(server, tmp_path / "cache"):
            script.push_to_hub(str(out), "user/evatok-scores")
            files = server.files("user/evatok-scores")
            assert sorted(files) == ["README.md", "data/scores-r00000-00000.parquet"]  # progress/ stays local
            assert b"pretty_name: EVATok stage-2 score table" in files["README.md"]
    finally:
        server.close()
    # the fake Hub serves no dataset downloads: materialise the pushed files as snapshot_download would
    snapshot = tmp_path / "snapshot"
    for name, data in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_bytes(data)
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs["repo_type"], kwargs["allow_patterns"]))
        return str(snapshot)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    table = load_score_table("user/evatok-scores")
    assert calls == [("user/evatok-scores", "dataset", ["*.parquet", "score_table.json"])]
    local = load_score_table(out)
    assert list(table.keys) == list(local.keys) == ["a#0", "b#0", "c#0"]
    np.testing.assert_array_equal(table.ssim, local.ssim)
    assert table.labels.tolist() == [0, 1, -1] and table.quality_metric == "ssim"
