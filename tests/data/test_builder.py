import io
import logging
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

datasets = pytest.importorskip("datasets")

from hf_vidtok.data import (  # noqa: E402
    VideoClips,
    collate_video_clips,
    load_video_dataset,
    read_video_clip,
    resize_crop_uint8,
    sample_videos,
)
from vidtok_data_helpers import (  # noqa: E402
    full_decode,
    make_broken_files,
    make_partial_files,
    tolerant_decode,
    write_video,
)

T, R = 8, 8  # clip frames, resolution
GOOD_PER_CLASS = {
    "cats": ["h264_bframes.mp4", "mpeg4_bframes.avi", "msmpeg4.avi", "mjpeg.avi", "h264.mov", "vp9.webm", "h264_vfr.mkv"],
    "dogs": ["cinepak.avi", "mpeg4.mov", "vp8.webm", "vp9.mkv", "vp8.ogv", "mpeg2.mpg", "hevc.mkv", "ntsc_rate.mp4", "odd_size.avi"],
}


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory, codec_videos):
    """16 good videos of many codecs in two class folders, with 6 broken files mixed in."""
    root = tmp_path_factory.mktemp("folder_ds")
    for cls, names in GOOD_PER_CLASS.items():
        (root / cls).mkdir()
        for name in names:
            shutil.copy(codec_videos[name], root / cls / name)
    reasons = make_broken_files(root / "dogs")
    (root / "cats" / "README.txt").write_text("not a video extension: ignored, not skipped")
    return root, reasons


def _key(ex):
    return (ex["path"], int(ex["start_frame"]))


def _hf_records(caplog):
    return [r for r in caplog.records if r.name == "hf_vidtok.data" and r.levelno == logging.WARNING]


def test_streaming_skips_each_broken_file_once_and_keeps_every_good_one(video_folder, caplog):
    root, reasons = video_folder
    ds = load_video_dataset(root, num_frames=T, resolution=R, clips_per_video=2, streaming=True, seed=3)
    assert isinstance(ds, datasets.IterableDataset)
    assert ds.num_shards == 16 + len(reasons)  # shards = files
    assert ds.features["label"].names == ["cats", "dogs"]
    with caplog.at_level(logging.WARNING, logger="hf_vidtok.data"):
        examples = list(ds)
    n_good = sum(len(v) for v in GOOD_PER_CLASS.values())
    assert len(examples) == 2 * n_good
    counts = Counter(Path(ex["path"]).name for ex in examples)
    assert set(counts) == {n for v in GOOD_PER_CLASS.values() for n in v} and set(counts.values()) == {2}
    records = _hf_records(caplog)
    for name, fragment in reasons.items():
        mine = [r for r in records if name in r.getMessage()]
        assert len(mine) == 1, (name, [r.getMessage() for r in records])
        assert fragment in mine[0].getMessage()
    summary = [r.getMessage() for r in records if r.getMessage().startswith("Skipped")]
    assert summary == [
        f"Skipped {len(reasons)} of {n_good + len(reasons)} video files of split 'train' (each reported above); "
        f"{n_good} files gave clips."
    ]
    for ex in examples:
        assert ex["video"].shape == (T, R, R, 3) and ex["video"].dtype == np.uint8
        assert ex["label"] == (0 if "/cats/" in ex["path"] else 1)
        assert ex["key"] == Path(ex["path"]).relative_to(root).as_posix()
        # frame-exact: the stored clip is the resized clip read at start_frame
        want = resize_crop_uint8(read_video_clip(ex["path"], T, start=ex["start_frame"]), R)
        np.testing.assert_array_equal(ex["video"], want)


def _records(caplog, level):
    return [r for r in caplog.records if r.name == "hf_vidtok.data" and r.levelno == level]


def test_partial_files_give_clips_and_broken_ones_are_skipped(tmp_path, caplog):
    """Every real-world over-declared case gives its clips from the frames that decode (one INFO line
    each, counted as partial); only files without a usable video are skipped (one WARNING each)."""
    root = tmp_path / "data"
    partial = make_partial_files(root / "partial")
    reasons = make_broken_files(root / "broken")
    with caplog.at_level(logging.INFO, logger="hf_vidtok.data"):
        examples = list(load_video_dataset(root, num_frames=6, resolution=R, clips_per_video=3, streaming=True, seed=4))
    assert len(examples) == 3 * len(partial) == 27
    assert Counter(Path(ex["path"]).name for ex in examples) == {name: 3 for name in partial}
    infos = [r.getMessage() for r in _records(caplog, logging.INFO)]
    for name, (usable, _, reason) in partial.items():
        assert [m for m in infos if name in m] == [f"{root / 'partial' / name}: {reason}; using the {usable} frames that decode"]
    warnings = [r.getMessage() for r in _records(caplog, logging.WARNING)]
    for name, fragment in reasons.items():
        mine = [m for m in warnings if f"{name}'" in m]
        assert len(mine) == 1 and fragment in mine[0], (name, warnings)
    assert warnings[-1] == (
        f"Skipped {len(reasons)} of {len(reasons) + 9} video files of split 'train' (each reported above); "
        "9 files gave clips (9 partial: fewer frames decode than their headers declare)."
    )
    refs = {name: tolerant_decode(root / "partial" / name) for name in partial}
    for ex in examples:  # drawn among the frames that decode, frame-exactly (5 frames: padded to 6)
        name = Path(ex["path"]).name
        start, usable = int(ex["start_frame"]), partial[name][0]
        assert 0 <= start <= max(usable - 6, 0)
        want = np.stack([refs[name][min(start + k, usable - 1)] for k in range(6)])
        np.testing.assert_array_equal(ex["video"], resize_crop_uint8(want, R))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hf_vidtok.data"):  # map-style: the same clips, probes cached
        ds = load_video_dataset(root, num_frames=6, resolution=R, clips_per_video=3, seed=4, cache_dir=tmp_path / "c")
    assert sorted(_key(ex) for ex in ds) == sorted(_key(ex) for ex in examples)
    assert not [m for m in (r.getMessage() for r in _records(caplog, logging.INFO)) if "frames that decode" in m]


@pytest.fixture(scope="module")
def real_over_declared_folder(tmp_path_factory):
    """18 videos made from the real sample videos (first 30 frames, 48x32), each with a header that
    declares more frames (or a longer duration) than decode: the six real-world cases x 3 videos."""
    root = tmp_path_factory.mktemp("real_over_declared")
    expected = {}
    for src in sample_videos():
        frames = [resize_crop_uint8(f[None], 32)[0] for f in full_decode(src)[:30]]
        frames = [np.ascontiguousarray(np.concatenate([f, f[:, :16]], axis=1)) for f in frames]  # 32x48
        made = make_partial_files(root / src.stem, frames=frames)
        for name in ("edit_list.mov", "gaps_vp9.avi", "cut_cinepak.avi", "cut_h264.mp4", "cut_h264.mkv", "garbage_tail_h264.mp4"):
            expected[f"{src.stem}/{name}"] = made[name][1]
        for name in set(made) - {n.split("/")[1] for n in expected}:
            (root / src.stem / name).unlink()
    return root, expected


def test_real_videos_with_over_declared_headers_all_stream(real_over_declared_folder, caplog):
    root, declared = real_over_declared_folder
    with caplog.at_level(logging.INFO, logger="hf_vidtok.data"):
        examples = list(load_video_dataset(root, num_frames=4, resolution=R, clips_per_video=2, streaming=True, seed=0))
    by_file = Counter(Path(ex["path"]).relative_to(root).as_posix() for ex in examples)
    assert by_file == {key: 2 for key in declared} and len(declared) == 18  # every file streams
    assert not _records(caplog, logging.WARNING)
    assert _records(caplog, logging.INFO)[-1].getMessage() == "Read 18 video files of split 'train': 0 skipped, 18 partial."
    for key, n_declared in declared.items():
        usable = len(tolerant_decode(root / key))
        assert 0 < usable and (n_declared == 0 or usable < n_declared), key
        assert all(int(ex["start_frame"]) <= usable - 4 for ex in examples if ex["path"].endswith(key))


def test_map_style_equals_streaming_for_the_same_seed(video_folder, tmp_path, caplog):
    root, reasons = video_folder
    kw = dict(num_frames=T, resolution=R, clips_per_video=2, seed=5)
    stream_examples = list(load_video_dataset(root, streaming=True, **kw))
    stream = {_key(ex): ex["video"] for ex in stream_examples}  # two clips of a file may share a start
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hf_vidtok.data"):
        ds = load_video_dataset(root, cache_dir=tmp_path, **kw)
    assert isinstance(ds, datasets.Dataset)
    assert len([r for r in _hf_records(caplog) if "Skipping" in r.getMessage()]) == len(reasons)
    assert len(ds) == len(stream_examples) == 32
    assert sorted(_key(ex) for ex in ds) == sorted(_key(ex) for ex in stream_examples)
    ex0 = ds[0]
    assert isinstance(ex0["video"], np.ndarray) and ex0["video"].dtype == np.uint8 and isinstance(ex0["label"], int)
    for ex in ds:
        np.testing.assert_array_equal(ex["video"], stream[_key(ex)])
    # a second call reuses the Arrow cache; another seed draws other clips
    again = load_video_dataset(root, cache_dir=tmp_path, **kw)
    assert again.cache_files == ds.cache_files
    other = sorted(_key(ex) for ex in load_video_dataset(root, streaming=True, **{**kw, "seed": 6}))
    assert len(other) == 32 and other != sorted(_key(ex) for ex in stream_examples)


def test_nodes_and_workers_split_files_without_duplicates(video_folder):
    from datasets.distributed import split_dataset_by_node

    root, _ = video_folder
    ds = load_video_dataset(root, num_frames=T, resolution=R, streaming=True, seed=0)
    full = sorted(_key(ex) for ex in ds)
    for world in (2, 4, 23):  # 23 shards (files): 23 splits by shards, 2 and 4 by examples
        parts = [[_key(ex) for ex in split_dataset_by_node(ds, rank=r, world_size=world)] for r in range(world)]
        merged = [k for p in parts for k in p]
        assert sorted(merged) == full and len(set(merged)) == len(merged), world
        assert sum(map(bool, parts)) == min(world, 16)  # nodes given only broken files get nothing
    parts = [[_key(ex) for ex in split_dataset_by_node(ds, rank=r, world_size=3, strategy="shards")] for r in range(3)]
    assert sorted(k for p in parts for k in p) == full  # uneven shard counts, each file read once
    singles = [[_key(ex) for ex in ds.shard(num_shards=ds.num_shards, index=i)] for i in range(ds.num_shards)]
    assert sorted(k for p in singles for k in p) == full and max(len({k[0] for k in p}) for p in singles) == 1
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, collate_fn=lambda b: [_key(e) for e in b])
    seen = [k for batch in loader for k in batch]
    assert sorted(seen) == full and len(set(seen)) == len(seen)


def test_stream_state_dict_resumes_exactly(video_folder):
    from datasets.distributed import split_dataset_by_node

    root, _ = video_folder

    def make():
        ds = load_video_dataset(root, num_frames=T, resolution=R, clips_per_video=2, streaming=True, seed=1, shuffle=True)
        return split_dataset_by_node(ds, rank=1, world_size=2)

    full = [_key(ex) for ex in make()]
    assert len(full) == 16  # every other one of the 32 clips
    ds = make()
    it = iter(ds)
    head = [_key(next(it)) for _ in range(7)]
    state = ds.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    tail = [_key(ex) for ex in resumed]
    assert head + tail == full


def test_shuffle_is_seeded(video_folder):
    root, _ = video_folder
    kw = dict(num_frames=T, resolution=R, streaming=True, seed=2)
    plain = [_key(ex) for ex in load_video_dataset(root, **kw)]
    for buffer in (None, 8):  # file order only (exact resume), or files plus a clip buffer
        a = [_key(ex) for ex in load_video_dataset(root, shuffle=True, shuffle_buffer_size=buffer, **kw)]
        b = [_key(ex) for ex in load_video_dataset(root, shuffle=True, shuffle_buffer_size=buffer, **kw)]
        assert a == b and sorted(a) == sorted(plain) and a != plain
        c = [_key(ex) for ex in load_video_dataset(root, shuffle=True, shuffle_buffer_size=buffer, **{**kw, "seed": 9})]
        assert c != a


def test_too_short_policy(tmp_path, caplog):
    (tmp_path / "c").mkdir()
    write_video(tmp_path / "c" / "two.mp4", n=2)
    write_video(tmp_path / "c" / "six.mp4", n=6)
    with caplog.at_level(logging.WARNING, logger="hf_vidtok.data"):
        default = list(load_video_dataset(tmp_path, num_frames=T, resolution=R, streaming=True))
    assert [Path(e["path"]).name for e in default] == ["six.mp4"]  # 6 >= T // 2: padded
    assert "too short: 2 frame(s), fewer than min_frames=4" in caplog.text
    ex = default[0]
    np.testing.assert_array_equal(ex["video"][5], ex["video"][7])  # padding repeats the last frame
    padded = list(load_video_dataset(tmp_path, num_frames=T, resolution=R, streaming=True, min_frames=1))
    assert sorted(Path(e["path"]).name for e in padded) == ["six.mp4", "two.mp4"]


def test_ucf101_and_csv_layouts_end_to_end(tmp_path, codec_videos):
    root = tmp_path / "UCF101"
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 Archery\r\n2 YoYo\r\n")
    (lists / "trainlist01.txt").write_text("Archery/v_Archery_g01_c01.avi 1\r\nYoYo/v_YoYo_g01_c01.avi 2\r\nYoYo/v_YoYo_g02_c01.avi 2\r\n")
    (lists / "testlist01.txt").write_text("YoYo/v_YoYo_g03_c01.avi\r\n")
    copies = [
        ("Archery/v_Archery_g01_c01.avi", "mpeg4_bframes.avi"),
        ("YoYo/v_YoYo_g01_c01.avi", "msmpeg4.avi"),
        ("YoYo/v_YoYo_g03_c01.avi", "mjpeg.avi"),
    ]
    for rel, src in copies:
        (root / "UCF-101" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(codec_videos[src], root / "UCF-101" / rel)  # v_YoYo_g02_c01.avi is listed but missing
    train = list(load_video_dataset(root, layout="ucf101", num_frames=T, resolution=R, streaming=True))
    assert sorted((Path(e["path"]).name, e["label"]) for e in train) == [("v_Archery_g01_c01.avi", 0), ("v_YoYo_g01_c01.avi", 1)]
    val = load_video_dataset(root, layout="ucf101", split="validation", num_frames=T, resolution=R, cache_dir=tmp_path / "cache")
    assert val.features["label"].names == ["Archery", "YoYo"] and [e["label"] for e in val] == [1]

    csv_path = tmp_path / "clips.csv"
    csv_path.write_text(
        "id,path,action,label,caption\n"
        f"0,{codec_videos['vp9.webm']},YoYo,1,spins\n1,{codec_videos['vp8.ogv']},Archery,0,aims\n"
    )
    ds = load_video_dataset(csv_path, layout="csv", num_frames=T, resolution=R, cache_dir=tmp_path / "cache")
    assert ds.features["label"].names == ["Archery", "YoYo"]
    assert sorted((e["caption"], e["label"]) for e in ds) == [("aims", 0), ("spins", 1)]


def test_dataloader_collate_gives_training_batches(video_folder):
    root, _ = video_folder
    ds = load_video_dataset(root, num_frames=T, resolution=R, streaming=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_video_clips)
    batch = next(iter(loader))
    assert batch["pixel_values"].shape == (4, 3, T, R, R) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].dtype == torch.long and batch["labels"].shape == (4,)


def test_real_sample_videos_stream(tmp_path):
    (tmp_path / "samples").mkdir()
    for p in sample_videos():
        (tmp_path / "samples" / p.name).symlink_to(p)
    ds = load_video_dataset(tmp_path, num_frames=4, resolution=32, frame_stride=2, streaming=True, seed=0)
    exs = list(ds)
    assert len(exs) == 3 and all(e["video"].shape == (4, 32, 32, 3) and e["video"].std() > 5 for e in exs)


def test_up_front_errors(video_folder, tmp_path):
    root, _ = video_folder
    with pytest.raises(ValueError, match="layout must be one of"):
        load_video_dataset(root, layout="kinetics")
    with pytest.raises(ValueError, match="not an existing directory"):
        load_video_dataset(tmp_path / "nope")
    with pytest.raises(ValueError, match="split 'test' is not available"):
        load_video_dataset(root, split="test", streaming=True)
    with pytest.raises(ValueError, match="split must be one of"):
        load_video_dataset(root, split="dev")
    bad = tmp_path / "bad.csv"
    bad.write_text("file\nx.mp4\n")
    with pytest.raises(ValueError, match="no 'path' column"):
        load_video_dataset(bad, layout="csv", streaming=True)
    with pytest.raises(ValueError, match="num_frames"):
        load_video_dataset(root, num_frames=0, streaming=True)
    with pytest.raises(ValueError, match="classInd.txt"):
        load_video_dataset(root, layout="ucf101", streaming=True)
    with pytest.raises(ValueError, match="data_dir"):
        VideoClips(config_name="folder")


# ------------------------------------------------------------------ data where it lives: Hub, fsspec, shards
def _clip_records(ds):
    return [(ex["key"], int(ex["label"]), int(ex["start_frame"]), np.asarray(ex["video"]).tobytes()) for ex in ds]


@pytest.fixture(scope="module")
def packed(class_folder, tmp_path_factory):
    """The class folder packed as webdataset (2 videos per shard) and Parquet (3 per shard) shards, with cards."""
    from hf_vidtok.data import pack_videos
    from hf_vidtok.hub import video_dataset_card

    out = {}
    for fmt, per_shard in (("webdataset", 2), ("parquet", 3)):
        folder = tmp_path_factory.mktemp(fmt)
        summary = pack_videos(class_folder["root"], folder, format=fmt, max_videos_per_shard=per_shard)
        video_dataset_card(summary, str(folder)).save(folder / "README.md")
        out[fmt] = folder
    return out


def _upload(hub, folder, repo_id):
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset")


def test_same_clips_from_a_folder_a_hub_repo_fsspec_webdataset_and_parquet(class_folder, packed, hub, tmp_path,
                                                                         monkeypatch):
    """The same videos give identical clips (keys, labels, starts, pixels) wherever and however they are stored."""
    import fsspec

    kw = dict(num_frames=T, resolution=R, clips_per_video=2, streaming=True, seed=5)
    ref = _clip_records(load_video_dataset(class_folder["root"], **kw))
    assert len(ref) == 14 and {r[0] for r in ref} == set(class_folder["good"])  # short.mp4 and not_a_video skipped
    _upload(hub, class_folder["root"], "user/vids-folder")
    _upload(hub, packed["webdataset"], "user/vids-wds")
    _upload(hub, packed["parquet"], "user/vids-parquet")
    mem = fsspec.filesystem("memory")
    for path in sorted(p for p in class_folder["root"].rglob("*") if p.is_file()):
        mem.pipe(f"/same-clips/{path.relative_to(class_folder['root']).as_posix()}", path.read_bytes())
    sources = [
        ("user/vids-folder", "folder"), ("hf://datasets/user/vids-folder", "folder"), ("memory://same-clips", "folder"),
        (packed["webdataset"], "webdataset"), ("user/vids-wds", "webdataset"),
        (packed["parquet"], "parquet"), ("hf://datasets/user/vids-parquet/data", "parquet"),
        (f"filecache::hf://datasets/user/vids-wds", "webdataset"),
    ]
    for data_dir, layout in sources:
        opts = {"filecache": {"cache_storage": str(tmp_path / "fc")}} if str(data_dir).startswith("filecache") else None
        ds = load_video_dataset(data_dir, layout=layout, storage_options=opts, **kw)
        assert ds.features["label"].names == ["busy", "calm"], data_dir
        assert _clip_records(ds) == ref, data_dir
    assert hub.range_requests > 0  # remote files were read in ranges, not downloaded whole
    assert any((tmp_path / "fc").iterdir())  # the local cache the user asked for holds the shards read
    # the pushed Parquet repo is a plain `datasets` dataset too: its own streaming loader, features from the card
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub.endpoint)
    rows = datasets.load_dataset("user/vids-parquet", split="train", streaming=True)
    assert rows.features["label"].names == ["busy", "calm"]
    rows = rows.cast_column("video", datasets.Video(decode=False))
    assert {r["key"]: r["video"]["bytes"] for r in rows} == {
        rel: (class_folder["root"] / rel).read_bytes() for rel in [*class_folder["good"], "busy/short.mp4"]}
    # a CSV with captions: its webdataset packing carries them
    from hf_vidtok.data import pack_videos

    pack_videos(class_folder["csv"], tmp_path / "csv_wds", layout="csv")
    a = [(ex["key"], ex["start_frame"], ex["caption"]) for ex in load_video_dataset(class_folder["csv"], layout="csv", **kw)]
    b = [(ex["key"], ex["start_frame"], ex["caption"]) for ex in load_video_dataset(tmp_path / "csv_wds", layout="webdataset", **kw)]
    assert a == b and a[0][2].startswith("a busy scene")


def test_shards_split_across_processes_and_workers_without_duplicates(packed):
    from hf_vidtok.data import files_of_process

    for fmt, shards in (("webdataset", 4), ("parquet", 3)):
        ds = load_video_dataset(packed[fmt], layout=fmt, num_frames=T, resolution=R, clips_per_video=2, streaming=True)
        assert ds.num_shards == shards
        full = sorted((ex["key"], ex["start_frame"]) for ex in ds)
        parts = [[(ex["key"], ex["start_frame"]) for ex in files_of_process(ds, r, 2)] for r in range(2)]
        assert sorted(parts[0] + parts[1]) == full and not {k for k, _ in parts[0]} & {k for k, _ in parts[1]}
        loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2,
                                             collate_fn=lambda b: [(e["key"], e["start_frame"]) for e in b])
        seen = [k for batch in loader for k in batch]
        assert sorted(seen) == full  # as a multiset: two clips of a video may share a start, none is read twice
    with pytest.raises(ValueError, match="3 shards .* cannot be shared by 4 processes"):
        files_of_process(ds, 0, 4)


def test_shard_stream_resumes_exactly_mid_shard(packed):
    from hf_vidtok.data import files_of_process

    def make():
        ds = load_video_dataset(packed["webdataset"], layout="webdataset", num_frames=T, resolution=R, clips_per_video=2,
                                streaming=True, seed=3, shuffle=True)
        return files_of_process(ds, 1, 2)

    full = [(ex["key"], ex["start_frame"]) for ex in make()]
    ds = make()
    it = iter(ds)
    head = [(lambda ex: (ex["key"], ex["start_frame"]))(next(it)) for _ in range(3)]  # inside the first shard
    resumed = make()
    resumed.load_state_dict(ds.state_dict())
    assert head + [(ex["key"], ex["start_frame"]) for ex in resumed] == full


def test_sharded_clip_stream_over_tar_shards_counts_bad_members_and_resumes(packed, tmp_path):
    from hf_vidtok.data import ShardedClipStream, hf_shard_reader

    shutil.copytree(packed["webdataset"], tmp_path / "wds")
    first = sorted((tmp_path / "wds" / "data").iterdir())[0]
    with tarfile.open(first) as tar:  # replace the first shard's second video by junk bytes
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    video_members = [m.name for m, _ in members if not m.name.endswith((".json", ".cls"))]
    with tarfile.open(first, "w") as tar:
        for m, data in members:
            data = b"junk" * 50 if m.name == video_members[1] else data
            m.size = len(data)
            tar.addfile(m, io.BytesIO(data))

    def make_dataset(epoch):
        return load_video_dataset(tmp_path / "wds", layout="webdataset", num_frames=T, resolution=R, streaming=True,
                                  seed=epoch)

    def stream():
        return ShardedClipStream(hf_shard_reader(make_dataset), 4, batch_size=2, num_workers=2, seed=0,
                                 collate_fn=lambda exs: {"ids": [(e["key"], e["start_frame"]) for e in exs]})

    def batches(s, n):
        loader = torch.utils.data.DataLoader(s, batch_size=None, num_workers=2, generator=torch.Generator())
        out = []
        for batch in loader:
            s.mark_consumed(batch["stream_state"])
            out.append((batch["stream_state"]["logical_worker"], batch["ids"]))
            if len(out) == n:
                break
        return out

    whole = stream()
    full = batches(whole, 8)  # 6 clips per epoch (4 shards dealt to 2 worker streams): batches run into epoch 1
    assert [w for w, _ in full] == [0, 1] * 4  # both DataLoader workers read their own shards
    good = {"busy/a.mp4", "busy/sub/deep.webm", "calm/b.avi", "calm/c.mp4", "calm/d.mp4", "calm/e.webm"}
    assert {k for _, ids in full for k, _ in ids} == good  # my.clip.v2.mp4 is the junk member
    assert whole.skipped_files == 2  # the junk member and the too-short video, named by the reader, counted once
    part = stream()
    head = batches(part, 2)
    state = part.state_dict()
    resumed = stream()
    resumed.load_state_dict(state)
    assert head + batches(resumed, 6) == full


def test_count_video_files_collects_what_dataloader_workers_skip(class_folder):
    from hf_vidtok.data import count_video_files

    ds = load_video_dataset(class_folder["root"], num_frames=T, resolution=R, streaming=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=lambda b: len(b))
    with count_video_files(worker_processes=True) as counts:
        assert sum(loader) == 7
    assert sorted(counts.skipped) == [str(class_folder["root"] / rel) for rel in class_folder["broken"]]
    with count_video_files() as local:  # without it, the workers keep their counts
        sum(loader)
    assert local.skipped == {}
