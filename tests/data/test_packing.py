"""pack_videos: folder / CSV -> webdataset or Parquet shards holding every decodable video's unchanged bytes and key."""

import json
import tarfile

import pytest

datasets = pytest.importorskip("datasets")
pq = pytest.importorskip("pyarrow.parquet")

from hf_vidtok.data import pack_videos  # noqa: E402
from hf_vidtok.data.packing import parse_size  # noqa: E402


def _tar_members(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_webdataset_shards_hold_the_files_bytes_keys_and_labels(class_folder, tmp_path):
    root = class_folder["root"]
    out = tmp_path / "wds"
    summary = pack_videos(root, out, format="webdataset", max_videos_per_shard=3)
    train = summary["splits"]["train"]
    assert summary["class_names"] == ["busy", "calm"] and list(summary["splits"]) == ["train"]
    assert train["videos"] == 8 and train["shards"] == 3  # 7 good + the 2-frame one (decodes); 3 + 3 + 2 per shard
    assert [f["path"] for f in train["files"]] == [f"data/train-0000{i}-of-00003.tar" for i in range(3)]
    assert [f["videos"] for f in train["files"]] == [3, 3, 2]
    assert train["codecs"] == {"h264": 5, "mjpeg": 1, "vp9": 2} and train["classes"] == {"busy": 4, "calm": 4}
    assert train["frames"] == 24 + 31 + 19 + 22 + 40 + 17 + 26 + 2
    assert train["duration_s"]["total"] == pytest.approx(train["frames"] / 25, abs=1e-3)  # 25 fps files
    assert train["duration_s"]["max"] == pytest.approx(40 / 25) and train["duration_s"]["min"] == pytest.approx(2 / 25)
    assert list(summary["skipped"]) == [str(root / "calm" / "not_a_video.mp4")]
    members = {}
    for f in train["files"]:
        members.update(_tar_members(out / f["path"]))
    # webdataset sample names: the key without its extension, dots of the stem replaced (the first dot starts the ext)
    assert members["busy/my_clip_v2.mp4"] == (root / "busy" / "my.clip.v2.mp4").read_bytes()
    assert json.loads(members["busy/my_clip_v2.json"]) == {"key": "busy/my.clip.v2.mp4", "label": 0, "class_name": "busy"}
    assert members["calm/b.cls"] == b"1" and members["busy/sub/deep.webm"] == (root / "busy/sub/deep.webm").read_bytes()
    # deterministic: the same videos give byte-identical shards
    again = pack_videos(root, tmp_path / "wds2", format="webdataset", max_videos_per_shard=3)
    for f in again["splits"]["train"]["files"]:
        assert (tmp_path / "wds2" / f["path"]).read_bytes() == (out / f["path"]).read_bytes()


def test_parquet_shards_are_datasets_parquet_with_video_structs(class_folder, tmp_path):
    root = class_folder["root"]
    out = tmp_path / "pq"
    summary = pack_videos(class_folder["csv"], out, format="parquet", layout="csv", max_shard_size="1GB")
    assert summary["splits"]["train"]["shards"] == 1 and summary["dataset_info"]["features"]
    path = out / summary["splits"]["train"]["files"][0]["path"]
    assert pq.ParquetFile(path).metadata.num_row_groups == 1  # 8 videos: one group of ROWS_PER_GROUP
    # datasets reads the files with its own Parquet loader, features (ClassLabel names, Video) from the schema
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train").cast_column("video", datasets.Video(decode=False))
    assert ds.features["label"].names == ["busy", "calm"]
    rows = {r["key"]: r for r in ds}
    assert sorted(rows) == sorted(class_folder["good"] + ["busy/short.mp4"])
    assert rows["calm/e.webm"]["video"] == {"bytes": (root / "calm/e.webm").read_bytes(), "path": "calm/e.webm"}
    assert rows["calm/e.webm"]["label"] == 1 and rows["calm/e.webm"]["caption"] == "a calm scene (e)"


def test_shard_size_limit_and_refusals(class_folder, tmp_path):
    root = class_folder["root"]
    tiny = pack_videos(root, tmp_path / "one_each", format="parquet", max_shard_size=1)  # each video alone
    assert tiny["splits"]["train"]["shards"] == 8
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="never overwrites"):
        pack_videos(root, tmp_path / "used")
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="format must be one of"):
        pack_videos(root, tmp_path / "a", format="zip")
    with pytest.raises(ValueError, match="layout must be one of"):
        pack_videos(root, tmp_path / "b", layout="webdataset")
    with pytest.raises(ValueError, match="max_shard_size"):
        pack_videos(root, tmp_path / "c", max_shard_size="lots")
    with pytest.raises(ValueError, match="max_videos_per_shard"):
        pack_videos(root, tmp_path / "d", max_videos_per_shard=0)
    with pytest.raises(ValueError, match="no videos for split"):
        pack_videos(root, tmp_path / "e", splits=["test"])
    assert parse_size("2kB") == 2000 and parse_size("1KiB") == 1024 and parse_size("77") == 77 and parse_size(5) == 5
    with pytest.raises(ValueError, match="positive"):
        parse_size(0)


def test_packing_a_remote_folder_gives_the_same_shards(class_folder, tmp_path):
    """Videos behind an fsspec URL (memory://; a Hub repo is the same code path) pack into the local folder's shards."""
    fsspec = pytest.importorskip("fsspec")
    root = class_folder["root"]
    mem = fsspec.filesystem("memory")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        mem.pipe(f"/pack-remote/{path.relative_to(root).as_posix()}", path.read_bytes())
    local = pack_videos(root, tmp_path / "local", max_videos_per_shard=4)
    remote = pack_videos("memory://pack-remote", tmp_path / "remote", max_videos_per_shard=4)
    assert [f["path"] for f in remote["splits"]["train"]["files"]] == [f["path"] for f in local["splits"]["train"]["files"]]
    for f in local["splits"]["train"]["files"]:
        assert (tmp_path / "remote" / f["path"]).read_bytes() == (tmp_path / "local" / f["path"]).read_bytes()
    assert list(remote["skipped"]) == ["memory://pack-remote/calm/not_a_video.mp4"]


def test_tar_members_are_plain_files_without_owner(class_folder, tmp_path):
    out = tmp_path / "wds"
    summary = pack_videos(class_folder["root"], out, splits="train")
    with tarfile.open(out / summary["splits"]["train"]["files"][0]["path"]) as tar:
        infos = tar.getmembers()
    assert infos and all(m.isreg() and m.mtime == 0 and m.uid == 0 and m.uname == "" and m.mode == 0o644 for m in infos)
