"""Shard layouts: splits and class names of tar / Parquet shards, webdataset sample grouping, and damaged members,
rows and archives skipped and counted like bad files while every good video still gives its clips."""

import io
import json
import tarfile

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from hf_vidtok.data import (  # noqa: E402
    count_video_files, list_shards, load_video_dataset, read_video_clip, resize_crop_uint8,
)
from hf_vidtok.data.shards import ShardEntry, iter_shard_videos, shard_label  # noqa: E402
from vidtok_data_helpers import write_video  # noqa: E402

T, R = 8, 8


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("shard_videos")
    return {name: write_video(d / f"{name}.mp4", n=n, options={"bf": "2", "g": "6"}).read_bytes()
            for name, n in (("a", 20), ("b", 26), ("c", 14))}


def _tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _clips(ds):
    return [(ex["key"], int(ex["label"]), int(ex["start_frame"]), ex["caption"], np.asarray(ex["video"])) for ex in ds]


def test_splits_come_from_paths_and_files_are_shards(tmp_path, videos):
    for rel in ("train/x.tar", "data/validation-00000-of-00001.tar", "data/test_0.tar", "misc.tar", "val/y.tar"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        _tar(tmp_path / rel, [("k.mp4", videos["a"]), ("k.cls", b"0")])
    (tmp_path / ".hidden.tar").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a shard")
    listing = list_shards("webdataset", tmp_path)
    assert {s: [e.key for e in entries] for s, entries in listing.splits.items()} == {
        "train": ["misc.tar", "train/x.tar"], "validation": ["data/validation-00000-of-00001.tar", "val/y.tar"],
        "test": ["data/test_0.tar"]}
    assert all(isinstance(e, ShardEntry) and e.size > 0 for entries in listing.splits.values() for e in entries)
    assert listing.class_names == ["0"]  # integer labels without a card: "0".."max"
    single = list_shards("webdataset", tmp_path / "misc.tar", split="test")
    assert list(single.splits) == ["test"] and single.splits["test"][0].key == "misc.tar"
    with pytest.raises(ValueError, match="holds no .parquet files"):
        list_shards("parquet", tmp_path)
    with pytest.raises(ValueError, match="shard layout must be one of"):
        list_shards("folder", tmp_path)


def test_class_names_from_card_parquet_schema_or_a_label_scan(tmp_path, videos):
    card = tmp_path / "card"
    card.mkdir()
    _tar(card / "s.tar", [("k.mp4", videos["a"]), ("k.cls", b"1")])
    (card / "README.md").write_text("---\nhf_vidtok:\n  class_names: [walk, run]\n---\n# x\n")
    assert list_shards("webdataset", card).class_names == ["walk", "run"]
    features = tmp_path / "features"  # a card in datasets' own format
    features.mkdir()
    _tar(features / "s.tar", [("k.mp4", videos["a"])])
    info = datasets.DatasetInfo(features=datasets.Features({"cls": datasets.ClassLabel(names=["x", "y", "z"])}))
    (features / "README.md").write_text("---\n" + __import__("yaml").safe_dump({"dataset_info": info._to_yaml_dict()})
                                        + "---\n")
    assert list_shards("webdataset", features).class_names == ["x", "y", "z"]
    names = tmp_path / "names"  # string labels, found by scanning the label members only
    names.mkdir()
    _tar(names / "s.tar", [("a.mp4", videos["a"]), ("a.json", b'{"label": "run"}'),
                           ("b.mp4", videos["b"]), ("b.cls", b"jump")])
    assert list_shards("webdataset", names).class_names == ["jump", "run"]
    schema = tmp_path / "schema"  # Parquet written by datasets: the ClassLabel travels in the schema
    schema.mkdir()
    datasets.Dataset.from_dict(
        {"video": [{"bytes": videos["a"], "path": "/abs/clip.mp4"}], "label": [2]},
        features=datasets.Features({"video": datasets.Video(), "label": datasets.ClassLabel(names=["p", "q", "r"])}),
    ).to_parquet(str(schema / "train-0.parquet"))
    listing = list_shards("parquet", schema)
    assert listing.class_names == ["p", "q", "r"]
    (video,) = iter_shard_videos(listing.splits["train"][0])
    assert video.key == "clip.mp4" and video.data == videos["a"] and shard_label(video.labels, listing.class_names) == 2
    assert list_shards("parquet", schema, class_names=["only"]).class_names == ["only"]


def test_shard_label_rules():
    names = ["cat", "dog"]
    assert shard_label({"label": "1"}, names) == 1 and shard_label({"label": "1.0"}, names) == 1
    assert shard_label({"label": "7"}, names) == -1 and shard_label({"label": "-1"}, names) == -1
    assert shard_label({"label": "dog"}, names) == 1 and shard_label({"class": "cat"}, names) == 0
    assert shard_label({}, names) == -1 and shard_label({"label": "", "action": "dog"}, names) == 1


def test_damaged_tar_members_are_skipped_and_counted(tmp_path, videos, caplog):
    path = _tar(tmp_path / "mixed.tar", [
        ("good/a.mp4", videos["a"]), ("good/a.json", json.dumps({"key": "orig/a.mp4", "label": 1, "caption": "hi"}).encode()),
        ("bad.mp4", b"\x00" * 600), ("bad.cls", b"0"),                      # bytes that are not a video
        ("novideo.json", b'{"label": 0}'),                                   # a sample without a video member
        ("badjson.mp4", videos["b"]), ("badjson.json", b"{not json"),        # damaged metadata
        ("c.mp4", videos["c"]), ("c.txt", b"a caption from txt"),
    ])
    ds = load_video_dataset(path, layout="webdataset", num_frames=T, resolution=R, streaming=True, seed=4,
                            class_names=["x", "y"])
    with count_video_files() as counts:
        clips = _clips(ds)
    assert [(k, lab, cap) for k, lab, _, cap, _ in clips] == [("orig/a.mp4", 1, "hi"), ("c.mp4", -1, "a caption from txt")]
    assert sorted(counts.skipped) == [f"{path}#bad.mp4", f"{path}#badjson.mp4", f"{path}#novideo"]
    assert "not a readable video" in counts.skipped[f"{path}#bad.mp4"]
    assert "no video member" in counts.skipped[f"{path}#novideo"] and "json" in counts.skipped[f"{path}#badjson.mp4"]
    # the good members give exactly the clips their bytes give
    for (_, _, start, _, clip), data in zip(clips, (videos["a"], videos["c"])):
        np.testing.assert_array_equal(clip, resize_crop_uint8(read_video_clip(data, T, start=start), R))


def test_a_cut_tar_keeps_what_precedes_the_damage(tmp_path, videos):
    whole = _tar(tmp_path / "whole.tar", [("a.mp4", videos["a"]), ("b.mp4", videos["b"]), ("c.mp4", videos["c"])]).read_bytes()
    cut = tmp_path / "cut.tar"
    with tarfile.open(tmp_path / "whole.tar") as tar:  # where b.mp4's data starts depends on a.mp4's size and padding
        b_data = tar.getmember("b.mp4").offset_data
    cut.write_bytes(whole[: b_data + 200])  # a.mp4 whole, b.mp4 cut in its data
    ds = load_video_dataset(cut, layout="webdataset", num_frames=T, resolution=R, streaming=True)
    with count_video_files() as counts:
        keys = [ex["key"] for ex in ds]
    assert keys == ["a.mp4"]
    ((name, reason),) = counts.skipped.items()
    assert name == f"{cut}#b.mp4" and "damaged" in reason


def test_parquet_rows_without_video_bytes_are_skipped_and_counted(tmp_path, videos):
    table = pa.table({"key": ["v/a.mp4", "v/none.mp4", "v/junk.mp4", "v/c.mp4"],
                      "video": [videos["a"], None, b"junk" * 100, videos["c"]],
                      "label": ["walk", "run", "run", "walk"], "caption": ["one", "", "", "four"]})
    pq.write_table(table, tmp_path / "train-00000.parquet", row_group_size=2)
    (tmp_path / "train-00001.parquet").write_bytes(b"PAR1 not really")
    ds = load_video_dataset(tmp_path, layout="parquet", num_frames=T, resolution=R, clips_per_video=2, streaming=True)
    assert ds.num_shards == 2 and ds.features["label"].names == ["run", "walk"]
    with count_video_files() as counts:
        clips = _clips(ds)
    assert [(k, lab, cap) for k, lab, _, cap, _ in clips] == [("v/a.mp4", 1, "one")] * 2 + [("v/c.mp4", 1, "four")] * 2
    first = str(tmp_path / "train-00000.parquet")
    assert sorted(counts.skipped) == [f"{first}#1", f"{first}#2", f"{tmp_path / 'train-00001.parquet'}#<file>"]
    assert "empty video cell" in counts.skipped[f"{first}#1"]
