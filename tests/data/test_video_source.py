"""VideoSource: videos decoded from bytes in memory or a seekable fsspec file give the frames of the local file, and
the probe cache keys them by content hash / URL + version, never by a path that does not exist."""

import json
from pathlib import Path

import numpy as np
import pytest

from hf_vidtok.data import BrokenVideoError, VideoFile, VideoSource, probe_video, read_video_clip, video_reader
from vidtok_data_helpers import write_video

fsspec = pytest.importorskip("fsspec")


@pytest.fixture
def clip_file(tmp_path):
    return write_video(tmp_path / "v.mp4", n=30, options={"bf": "2", "g": "6"})


def test_bytes_and_remote_file_give_the_frames_of_the_file(clip_file, tmp_path):
    data = clip_file.read_bytes()
    fs = fsspec.filesystem("memory")
    fs.pipe("/vs/v.mp4", data)
    sources = [data, VideoSource.from_bytes(data, name="shard.tar#v.mp4"), VideoSource.from_url("memory://vs/v.mp4")]
    ref = read_video_clip(clip_file, 7, start=11)
    for src in sources:
        np.testing.assert_array_equal(read_video_clip(src, 7, start=11), ref)
        with VideoFile(src) as video:
            assert len(video) == 30
            np.testing.assert_array_equal(video.read_frames([29, 0, 12]), VideoFile(clip_file).read_frames([29, 0, 12]))
    assert VideoFile(sources[1]).path == "shard.tar#v.mp4"
    url = VideoSource.from_url("memory://vs/v.mp4")
    assert url.size == len(data) and url.cache_key[0] == "memory://vs/v.mp4" and url.cache_key[2] is not None


def test_probe_cache_keys_bytes_by_content_and_skips_unversioned_urls(tmp_path):
    data = write_video(tmp_path / "own.mp4", n=27, options={"g": "5"}).read_bytes()  # content no other test probes
    video_reader._cache.clear()
    cache_dir = Path(video_reader.probe_cache_dir())
    before = set(cache_dir.rglob("*.json"))
    a = VideoSource.from_bytes(data, name="first#v.mp4")
    b = VideoSource.from_bytes(bytearray(data), name="second#v.mp4")
    assert a.cache_key == b.cache_key and a.cache_key[0].startswith("blake2b:")
    probe_video(a)
    written = set(cache_dir.rglob("*.json")) - before
    assert len(written) == 1
    record = json.loads(next(iter(written)).read_text())
    assert record["path"] == a.cache_key[0] and record["size"] == len(data)  # not a path: a content hash
    video_reader._cache.clear()
    assert probe_video(b).path == "second#v.mp4"  # answered by the disk cache under the other name
    # a remote file without a version: in-process cache only
    fs = fsspec.filesystem("memory")
    fs.pipe("/unversioned/v.mp4", data)
    src = VideoSource.from_url("memory://unversioned/v.mp4", size=len(data), version=None)
    before = set(cache_dir.rglob("*.json"))
    assert len(VideoFile(src)) == 27
    assert set(cache_dir.rglob("*.json")) == before


def test_bad_sources_raise_broken_video_or_type_errors(tmp_path):
    with pytest.raises(BrokenVideoError, match="empty"):
        VideoFile(b"")
    with pytest.raises(BrokenVideoError, match="not a readable video") as err:
        VideoFile(VideoSource.from_bytes(b"no video here", name="s.tar#x.mp4"))
    assert err.value.path == "s.tar#x.mp4"
    missing = VideoSource.from_url("memory://nowhere/x.mp4", size=10, version="1")
    with pytest.raises(BrokenVideoError, match="cannot be opened"):
        VideoFile(missing)
    with pytest.raises(TypeError, match="path, bytes or a VideoSource"):
        VideoFile(42)
    with pytest.raises(TypeError, match="bytes"):
        VideoSource.from_bytes("text")
    with pytest.raises(ValueError, match="exactly one"):
        VideoSource(name="x", cache_key=("x", 1, None))
