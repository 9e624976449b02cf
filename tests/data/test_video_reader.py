import dataclasses
import fractions
import logging
from pathlib import Path

import numpy as np
import pytest

from hf_vidtok.data import BrokenVideoError, VideoFile, clip_frame_indices, probe_video, read_video_clip
from hf_vidtok.data import video_reader
from vidtok_data_helpers import (
    FASTSTART,
    H264_GOP10,
    VFR_PTS_MS,
    cut_in_packet,
    full_decode,
    make_broken_files,
    make_partial_files,
    nearest_source_frame,
    tolerant_decode,
    write_video,
)

PARTIAL_NAMES = [
    "edit_list.mov", "edit_list.mp4", "gaps_vp9.avi", "gaps_mpeg4.avi", "cut_cinepak.avi", "cut_h264.mp4",
    "cut_h264.mkv", "garbage_tail_h264.mp4", "garbage_tail_mpeg4.avi",
]  # fmt: skip

N = 20  # frames in every codec video


def test_every_codec_is_frame_exact(codec_videos):
    """Clips (any start, stride, order, repeats) equal the same frames of a full sequential decode."""
    assert len(codec_videos) >= 18  # all encoders of the plan exist in PyAV's FFmpeg (Theora excepted)
    rng = np.random.default_rng(0)
    for name, path in codec_videos.items():
        ref = full_decode(path)
        assert len(ref) == N, name
        # the decode order is presentation order: frame i shows source frame i
        assert [nearest_source_frame(f, N) for f in ref] == list(range(N)), name
        with VideoFile(path) as video:
            assert len(video) == N, name
            for start, stride, num in [(0, 1, 4), (N - 5, 1, 5), (7, 3, 4), (13, 1, 1), (5, 2, 6)]:
                clip = video.read_frames(np.arange(num) * stride + start)
                want = np.stack([ref[start + k * stride] for k in range(num)])
                np.testing.assert_array_equal(clip, want, err_msg=f"{name} start={start} stride={stride}")
            idx = rng.integers(0, N, size=6)  # unsorted, with possible repeats, after earlier seeks
            np.testing.assert_array_equal(video.read_frames(idx), np.stack([ref[i] for i in idx]), err_msg=name)
        clip = read_video_clip(path, 4, frame_stride=2, start=9)
        np.testing.assert_array_equal(clip, np.stack(ref[9:17:2]), err_msg=name)


def test_index_modes(codec_videos):
    assert probe_video(codec_videos["h264_bframes.mp4"]).exact_seek
    assert probe_video(codec_videos["mpeg4_bframes.avi"]).exact_seek
    raw = probe_video(codec_videos["raw_stream.h264"])  # no container timestamps: decode and count
    assert not raw.exact_seek and raw.num_frames == N
    odd = probe_video(codec_videos["odd_size.avi"])
    assert (odd.width, odd.height) == (33, 17)
    assert read_video_clip(codec_videos["odd_size.avi"], 2, start=0).shape == (2, 17, 33, 3)


def test_seeks_instead_of_decoding_from_start(tmp_path, monkeypatch):
    path = write_video(tmp_path / "long.mp4", n=60, options={"bf": "2", "g": "8", "keyint_min": "8", "sc_threshold": "0"})
    ref = full_decode(path)
    starts = []
    original = VideoFile._decode_forward

    def spy(self, container, stream, wanted, pos_of, key_pos):
        starts.append(key_pos)
        return original(self, container, stream, wanted, pos_of, key_pos)

    monkeypatch.setattr(VideoFile, "_decode_forward", spy)
    clip = read_video_clip(path, 3, start=53)
    np.testing.assert_array_equal(clip, np.stack(ref[53:56]))
    assert starts and 40 <= starts[-1] <= 53  # decoding began at the key frame before frame 53


def test_padding_repeats_last_frame(codec_videos):
    path = codec_videos["h264_bframes.mp4"]
    ref = full_decode(path)
    clip = read_video_clip(path, 8, start=16)  # frames 16..19, then 4 copies of frame 19
    np.testing.assert_array_equal(clip, np.stack(ref[16:20] + [ref[19]] * 4))
    long = read_video_clip(path, 30, start=None, rng=0)  # longer than the video: starts at 0
    np.testing.assert_array_equal(long[:N], np.stack(ref))
    np.testing.assert_array_equal(long[N:], np.stack([ref[-1]] * 10))


def test_random_start_is_seeded_and_in_range(codec_videos):
    index = probe_video(codec_videos["vp9.webm"])
    a = [clip_frame_indices(index, 4, frame_stride=2, rng=np.random.default_rng(s))[0] for s in range(40)]
    b = [clip_frame_indices(index, 4, frame_stride=2, rng=s)[0] for s in range(40)]
    assert a == b
    assert min(a) >= 0 and max(a) <= N - 7 and len(set(a)) > 5
    np.testing.assert_array_equal(clip_frame_indices(index, 3, frame_stride=2, start=4), [4, 6, 8])
    with pytest.raises(TypeError, match="rng"):
        clip_frame_indices(index, 4, rng="seed")
    with pytest.raises(ValueError, match="start=20"):
        clip_frame_indices(index, 4, start=20)
    with pytest.raises(ValueError, match="num_frames"):
        clip_frame_indices(index, 0)
    with pytest.raises(ValueError, match="frame_stride"):
        clip_frame_indices(index, 2, frame_stride=0)
    with pytest.raises(ValueError, match="fps"):
        clip_frame_indices(index, 2, fps=-1)


@pytest.mark.parametrize("name", ["h264_vfr.mkv", "h264_vfr.mp4"])
def test_variable_frame_rate_and_fps_resampling(codec_videos, name):
    path = codec_videos[name]
    index = probe_video(path)
    times = index.frame_times()
    np.testing.assert_allclose(times, (VFR_PTS_MS - VFR_PTS_MS[0]) / 1000.0, atol=1e-3)
    # fps=20 from frame 2 (t=50 ms): the frame on screen at 50, 100, 150, ... ms
    idx = clip_frame_indices(index, 6, fps=20, start=2)
    t = 0.050 + np.arange(6) * 0.05
    expected = [int(np.nonzero(VFR_PTS_MS / 1000.0 <= tk + 1e-9)[0][-1]) for tk in t]
    np.testing.assert_array_equal(idx, expected)
    ref = full_decode(path)
    np.testing.assert_array_equal(read_video_clip(path, 6, fps=20, start=2), np.stack([ref[i] for i in expected]))


def test_odd_rate_metadata_native_frames(codec_videos):
    path = codec_videos["ntsc_rate.mp4"]
    index = probe_video(path)
    assert abs(index.frame_rate - 30000 / 1001) < 1e-3
    np.testing.assert_allclose(index.frame_times()[:3], [0, 1001 / 30000, 2002 / 30000], atol=1e-4)
    clip = read_video_clip(path, 5, start=3)
    np.testing.assert_array_equal(clip, np.stack(full_decode(path)[3:8]))


def test_broken_files_raise_broken_video_error(tmp_path):
    reasons = make_broken_files(tmp_path)
    reasons.pop("too_short.mp4")  # too short is a dataset policy (min_frames); the reader pads it
    for name, fragment in reasons.items():
        with pytest.raises(BrokenVideoError, match=fragment) as info:
            read_video_clip(tmp_path / name, 4, start=0)
        assert info.value.path.endswith(name)
        assert isinstance(info.value, ValueError)
    with pytest.raises(BrokenVideoError, match="file not found"):
        probe_video(tmp_path / "missing.mp4")
    clip = read_video_clip(tmp_path / "too_short.mp4", 4, start=0)
    np.testing.assert_array_equal(clip[1], clip[3])


def test_cut_containers_give_the_frames_that_decode(tmp_path):
    """A file cut short (a download that stopped) is read as far as it decodes, frame-exactly."""
    for name, codec, opts in [("a.avi", "mpeg4", {}), ("b.mkv", "libvpx-vp9", {}), ("c.webm", "libvpx", {})]:
        good = write_video(tmp_path / ("good_" + name), codec, n=30, options=opts)
        data = good.read_bytes()
        bad = tmp_path / name
        bad.write_bytes(data[: int(len(data) * 0.7)])
        ref = tolerant_decode(bad)
        assert 0 < len(ref) < 30, name
        with VideoFile(bad) as video:
            assert len(video) == len(ref) and video.index.partial, name
            idx = [0, len(ref) // 2, len(ref) - 1]
            np.testing.assert_array_equal(video.read_frames(idx), np.stack([ref[i] for i in idx]), err_msg=name)


@pytest.fixture(scope="module")
def partial_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("partial")
    return folder, make_partial_files(folder)


@pytest.mark.parametrize("name", PARTIAL_NAMES)
def test_over_declared_headers_read_the_frames_that_decode(partial_files, name, caplog):
    """Each real-world case: the usable frames are those a tolerant decode gives, the mismatch is logged
    once at INFO, clips are drawn among the decodable frames and seeking stays exact."""
    folder, expected = partial_files
    path = folder / name
    usable, declared, reason = expected[name]
    ref = tolerant_decode(path)
    assert len(ref) == usable
    with caplog.at_level(logging.DEBUG, logger="hf_vidtok.data"):
        video = VideoFile(path)
        again = VideoFile(path)  # cached: probed (and logged) once
    assert len(video) == len(again) == usable
    assert video.index.declared_frames == declared and video.index.partial.startswith(reason)
    mine = [r for r in caplog.records if r.name == "hf_vidtok.data" and r.levelno >= logging.INFO]
    assert [(r.levelname, r.getMessage()) for r in mine] == [
        ("INFO", f"{path}: {reason}; using the {usable} frames that decode")
    ]
    with video:
        for start, num in [(0, 3), (usable - 4, 4), (usable // 2, 2), (usable - 1, 1)]:
            start = max(start, 0)
            np.testing.assert_array_equal(video.read_frames(range(start, start + num)), np.stack(ref[start : start + num]))
        rng = np.random.default_rng(0)
        starts = [video.read_clip(4, rng=rng)[0] for _ in range(12)]  # drawn among the decodable frames only
        assert max(starts) <= usable - 4 and len(set(starts)) > 1
        idx = rng.integers(0, usable, size=5)
        np.testing.assert_array_equal(video.read_frames(idx), np.stack([ref[i] for i in idx]))
        with pytest.raises(ValueError, match="frame indices"):
            video.read_frames([usable])
    again.close()


def test_probe_is_cheap_and_cached(tmp_path, monkeypatch):
    """A clean file costs a demux plus its last GOP (no full decode); a damaged one one full decode;
    afterwards neither is demuxed nor decoded again: not in this process, nor (disk cache) in another."""
    clean = write_video(tmp_path / "clean.mp4", n=60, options=H264_GOP10)
    cut = cut_in_packet(write_video(tmp_path / "src.mp4", n=30, options=H264_GOP10, container_options=FASTSTART), tmp_path / "cut.mp4", 15)
    calls = {"scan": 0, "full": 0, "frames": 0}
    scan, full, decode = video_reader._scan_packets, video_reader._index_by_decoding, video_reader._decode

    def count(name, fn):
        def wrapped(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapped

    def counting_decode(*a, **k):
        for frame in decode(*a, **k):
            calls["frames"] += 1
            yield frame

    monkeypatch.setattr(video_reader, "_scan_packets", count("scan", scan))
    monkeypatch.setattr(video_reader, "_index_by_decoding", count("full", full))
    monkeypatch.setattr(video_reader, "_decode", counting_decode)
    assert len(VideoFile(clean)) == 60
    assert calls["scan"] == 1 and calls["full"] == 0 and calls["frames"] <= 12  # the last GOP only
    assert len(VideoFile(cut)) == 15
    assert calls["scan"] == 2 and calls["full"] == 1
    before = dict(calls)
    for path in (clean, cut):
        assert len(VideoFile(path)) in (60, 15)  # in-process cache
    video_reader._cache.clear()  # a new process: the disk cache answers
    assert len(VideoFile(clean)) == 60 and VideoFile(cut).index.partial == "the header declares 30 frames, 15 decode"
    assert calls == before
    files = list(Path(video_reader.probe_cache_dir()).rglob("*.json"))
    assert files and max(f.stat().st_size for f in files) < 2000  # run-length timestamps: tiny
    cached = video_reader._cached_probe(str(clean))
    fresh = probe_video(clean, use_cache=False)
    np.testing.assert_array_equal(cached.pts, fresh.pts)
    np.testing.assert_array_equal(cached.keyframe_pts, fresh.keyframe_pts)
    assert dataclasses.replace(cached, pts=None, keyframe_pts=None) == dataclasses.replace(fresh, pts=None, keyframe_pts=None)
    # broken files are cached too; the disk cache can be turned off
    (tmp_path / "empty.mp4").write_bytes(b"")
    scans = calls["scan"]
    for _ in range(2):
        with pytest.raises(BrokenVideoError, match="empty"):
            VideoFile(tmp_path / "empty.mp4")
    assert calls["scan"] == scans + 1
    monkeypatch.setenv(video_reader.PROBE_CACHE_ENV, "0")
    assert video_reader.probe_cache_dir() is None
    video_reader._cache.clear()
    assert len(VideoFile(clean)) == 60 and calls["scan"] == scans + 2


def test_index_cache_follows_file_changes(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, n=10)
    assert probe_video(path).num_frames == 10
    assert len(VideoFile(path)) == 10
    write_video(path, n=14)
    import os

    os.utime(path, ns=(0, 10**9))  # a different mtime/size invalidates the cached index
    assert len(VideoFile(path)) == 14


def test_reindex_when_timestamps_do_not_match_decoder(codec_videos, monkeypatch):
    """A packet index that disagrees with the decoder output is detected and rebuilt by decoding."""
    path = codec_videos["h264_bframes.mp4"]
    ref = full_decode(path)
    video = VideoFile(path)
    bogus = video.index.pts.copy()
    bogus[5:] += 1  # shift timestamps: decoded frames will not match the index
    video.index = video_reader.VideoIndex(
        video.index.path, bogus, video.index.keyframe_pts, video.index.time_base,
        video.index.frame_rate, video.index.width, video.index.height, True,
    )
    np.testing.assert_array_equal(video.read_frames([12, 3]), np.stack([ref[12], ref[3]]))
    np.testing.assert_array_equal(video.index.pts, probe_video(path).pts)
    video.close()


def test_sample_videos_seek_exactly():
    from hf_vidtok.data import sample_videos

    bikes = sample_videos()[1]  # 640x272, 250 frames, several key frames
    ref = full_decode(bikes)
    assert len(ref) == 250
    with VideoFile(bikes, num_threads=0) as video:
        for start in (0, 101, 236):
            np.testing.assert_array_equal(video.read_frames(range(start, start + 4)), np.stack(ref[start : start + 4]))


def test_bad_arguments(codec_videos):
    with pytest.raises(ValueError, match="num_threads"):
        VideoFile(codec_videos["vp8.webm"], num_threads=-1)
    with VideoFile(codec_videos["vp8.webm"]) as video:
        with pytest.raises(ValueError, match="indices"):
            video.read_frames([N])
        with pytest.raises(ValueError, match="at least one"):
            video.read_frames([])
    with pytest.raises(TypeError, match="start"):
        read_video_clip(codec_videos["vp8.webm"], 2, start=1.5)
    assert fractions.Fraction(probe_video(codec_videos["vp8.webm"]).time_base) > 0


def test_unseekable_file_falls_back_to_decoding_from_start(codec_videos, monkeypatch):
    import av

    path = codec_videos["vp9.webm"]
    ref = full_decode(path)
    video = VideoFile(path)

    class NoSeek:
        def __init__(self, container):
            self._c = container
            self.streams = container.streams

        def seek(self, *args, **kwargs):
            raise av.error.PermissionError(1, "seeking refused")

        def decode(self, *args, **kwargs):
            return self._c.decode(*args, **kwargs)

        def demux(self, *args, **kwargs):
            return self._c.demux(*args, **kwargs)

        def close(self):
            self._c.close()

    original = video_reader._open
    monkeypatch.setattr(video_reader, "_open", lambda p: NoSeek(original(p)))
    np.testing.assert_array_equal(video.read_frames([15, 16]), np.stack(ref[15:17]))
    assert not video.index.seekable and video.index.exact_seek
    np.testing.assert_array_equal(video.read_frames([18]), ref[18][None])
    monkeypatch.undo()
    video_reader._cache.clear()
    video.close()
