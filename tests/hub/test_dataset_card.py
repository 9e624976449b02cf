"""video_dataset_card: the card of packed shards (YAML datasets and hf_vidtok read back, counts in the body), and
publish_dataset_folder to the fake Hub."""

import pytest
from huggingface_hub import DatasetCard

from hf_vidtok.hub import publish_dataset_folder, video_dataset_card


def _summary(fmt="webdataset", skipped=2):
    split = {
        "videos": 7, "shards": 3, "bytes": 2_500_000, "frames": 180,
        "duration_s": {"total": 7.2, "min": 0.68, "mean": 1.03, "max": 1.6},
        "codecs": {"h264": 5, "vp9": 2}, "classes": {"busy": 3, "calm": 4}, "files": [],
    }
    return {
        "format": fmt, "layout": "folder", "source": "/data/videos", "class_names": ["busy", "calm"],
        "max_shard_size": 100_000_000, "splits": {"train": split, "validation": {**split, "videos": 2, "shards": 1}},
        "skipped": {f"/data/videos/bad{i}.mp4": "not a readable video" for i in range(skipped)},
    }


def test_card_yaml_and_body():
    card = video_dataset_card(_summary(), "you/videos")
    data = card.data.to_dict()
    assert data["hf_vidtok"] == {"layout": "webdataset", "class_names": ["busy", "calm"], "num_videos": 9}
    assert data["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train-*.tar"}, {"split": "validation", "path": "data/validation-*.tar"}]}]
    assert data["size_categories"] == "n<1K" and "webdataset" in data["tags"]
    assert data["task_categories"] == ["video-classification"]
    text = str(card)
    assert "| train | 7 | 3 | 2.5 MB | 180 | 7.2 s | 0.68 / 1.03 / 1.60 s |" in text
    assert "Codecs: h264 (10), vp9 (4)." in text and "busy (6), calm (8)" in text
    assert "Skipped files (nothing decodes): 2." in text and "- `/data/videos/bad1.mp4`: not a readable video" in text
    assert 'load_video_dataset("you/videos", layout="webdataset", split="train"' in text
    reloaded = DatasetCard(text)  # the text parses back to the same metadata
    assert reloaded.data.to_dict()["hf_vidtok"]["class_names"] == ["busy", "calm"]


def test_card_lists_at_most_50_skipped_files_and_parquet_features():
    summary = _summary("parquet", skipped=53)
    summary["dataset_info"] = {"features": [{"name": "key", "dtype": "string"}]}
    card = video_dataset_card(summary, "/local/folder", title="My videos")
    text = str(card)
    assert text.count("- `/data/videos/bad") == 50 and "... and 3 more" in text
    assert card.data.to_dict()["dataset_info"] == {"features": [{"name": "key", "dtype": "string"}]}
    assert "data/train-*.parquet" in text and "# My videos" in text


def test_publish_dataset_folder_to_the_fake_hub(hub, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-00000-of-00001.tar").write_bytes(b"shard")
    (tmp_path / "notes.tmp").write_text("left out")
    video_dataset_card(_summary(), "user/packed").save(tmp_path / "README.md")
    info = publish_dataset_folder(tmp_path, "user/packed", allow_patterns=["README.md", "data/*"])
    files = hub.files("user/packed")
    assert sorted(files) == ["README.md", "data/train-00000-of-00001.tar"] and files["data/train-00000-of-00001.tar"] == b"shard"
    assert info.oid == hub.repos["user/packed"].branches["main"]
    with pytest.raises(FileNotFoundError):
        publish_dataset_folder(tmp_path / "missing", "user/packed")
