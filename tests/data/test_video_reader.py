import fractions

import numpy as np
import pytest

from hf_vidtok.data import BrokenVideoError, VideoFile, clip_frame_indices, probe_video, read_video_clip
from hf_vidtok.data import video_reader
from vidtok_data_helpers import VFR_PTS_MS, full_decode, make_broken_files, nearest_source_frame, write_video

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


def test_truncated_containers_are_detected(tmp_path):
    for name, codec, opts in [("a.avi", "mpeg4", {}), ("b.mkv", "libvpx-vp9", {}), ("c.webm", "libvpx", {})]:
        good = write_video(tmp_path / ("good_" + name), codec, n=30, options=opts)
        data = good.read_bytes()
        bad = tmp_path / name
        bad.write_bytes(data[: int(len(data) * 0.7)])
        with pytest.raises(BrokenVideoError, match="truncated|not a readable"):
            VideoFile(bad).read_frames([0])


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
