"""Fixtures for tests/data (videos are written by vidtok_data_helpers)."""

from __future__ import annotations

import fractions
import sys
from pathlib import Path

import pytest

pytest.importorskip("av")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: make the helpers importable

from vidtok_data_helpers import CODECS, VFR_PTS_MS, av, write_class_folder, write_video  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _probe_cache_in_tmp(tmp_path_factory):
    """The on-disk probe cache of these tests lives in a temporary folder (workers inherit it)."""
    import os

    from hf_vidtok.data import video_reader

    old = os.environ.get(video_reader.PROBE_CACHE_ENV)
    os.environ[video_reader.PROBE_CACHE_ENV] = str(tmp_path_factory.mktemp("probe_cache"))
    yield
    if old is None:
        os.environ.pop(video_reader.PROBE_CACHE_ENV, None)
    else:
        os.environ[video_reader.PROBE_CACHE_ENV] = old


@pytest.fixture(scope="session")
def codec_videos(tmp_path_factory) -> dict:
    """name -> path for every codec in CODECS that this PyAV build can encode (20 frames each)."""
    d = tmp_path_factory.mktemp("codecs")
    out = {}
    for name, (fmt, codec, pix_fmt, opts) in CODECS.items():
        try:
            av.codec.Codec(codec, "w")
        except Exception:  # noqa: BLE001 - encoder missing from this FFmpeg build
            continue
        out[name] = write_video(d / name, codec, pix_fmt=pix_fmt, options=opts, fmt=fmt)
    # variable frame rate (irregular timestamps) in two containers, with B-frames
    out["h264_vfr.mkv"] = write_video(d / "h264_vfr.mkv", options={"bf": "2", "g": "6"}, pts_ms=VFR_PTS_MS)
    out["h264_vfr.mp4"] = write_video(d / "h264_vfr.mp4", options={"bf": "2", "g": "6"}, pts_ms=VFR_PTS_MS)
    # odd frame-rate metadata (NTSC 30000/1001), an odd resolution, and a stream without timestamps
    out["ntsc_rate.mp4"] = write_video(d / "ntsc_rate.mp4", rate=fractions.Fraction(30000, 1001), options={"bf": "2"})
    out["odd_size.avi"] = write_video(d / "odd_size.avi", "mjpeg", h=17, w=33, pix_fmt="yuvj444p")
    out["raw_stream.h264"] = write_video(d / "raw_stream.h264", options={"bf": "2", "g": "6"}, fmt="h264")
    out["with_audio.mp4"] = write_video(d / "with_audio.mp4", options={"bf": "2"}, audio=True)
    return out


@pytest.fixture(scope="session")
def class_folder(tmp_path_factory) -> dict:
    """Two classes of tiny videos of three codecs plus a broken and a too-short file (see write_class_folder)."""
    return write_class_folder(tmp_path_factory.mktemp("class_folder") / "videos")
