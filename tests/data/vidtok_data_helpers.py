"""Helpers for tests/data: small test videos written with PyAV (many codecs, VFR, no timestamps) and broken files."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np

H, W = 24, 32  # tiny, even (yuv420p codecs need even sizes)


def frame_content(i: int, h: int = H, w: int = W) -> np.ndarray:
    """Frame ``i``: flat, well separated colours plus a gradient, so lossy codecs keep frames apart."""
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (i * 53) % 256
    img[..., 1] = ((i * 101) % 256 + np.linspace(0, 40, w)[None, :]).clip(0, 255).astype(np.uint8)
    img[..., 2] = (255 - (i * 29) % 256)
    return img


# name -> (container format or None, codec, pix_fmt, encoder options)
CODECS = {
    "h264_bframes.mp4": (None, "libx264", "yuv420p", {"bf": "2", "g": "6", "keyint_min": "6", "sc_threshold": "0"}),
    "h264.mov": (None, "libx264", "yuv420p", {"bf": "2", "g": "6"}),
    "hevc.mkv": (None, "libx265", "yuv420p", {"x265-params": "log-level=none:bframes=2:keyint=6:min-keyint=6"}),
    "mpeg4_bframes.avi": (None, "mpeg4", "yuv420p", {"bf": "2", "g": "6"}),
    "msmpeg4.avi": (None, "msmpeg4", "yuv420p", {"g": "6"}),
    "mjpeg.avi": (None, "mjpeg", "yuvj420p", {}),
    "cinepak.avi": (None, "cinepak", "rgb24", {"g": "6"}),
    "mpeg4.mov": (None, "mpeg4", "yuv420p", {"bf": "1", "g": "6"}),
    "vp8.webm": (None, "libvpx", "yuv420p", {"g": "6"}),
    "vp9.webm": (None, "libvpx-vp9", "yuv420p", {"g": "6"}),
    "vp9.mkv": (None, "libvpx-vp9", "yuv420p", {"g": "6"}),
    "vp8.ogv": (None, "libvpx", "yuv420p", {"g": "6"}),  # no Theora encoder in PyAV's FFmpeg build
    "mpeg2.mpg": (None, "mpeg2video", "yuv420p", {"bf": "2", "g": "6"}),
}


def write_video(
    path,
    codec="libx264",
    *,
    n=20,
    h=H,
    w=W,
    rate=25,
    pix_fmt="yuv420p",
    options=None,
    pts_ms=None,
    fmt=None,
    container_options=None,
    audio=False,
) -> Path:
    """Encode frames ``frame_content(0..n-1)``; ``pts_ms`` gives explicit (variable) timestamps in ms."""
    path = Path(path)
    c = av.open(str(path), "w", format=fmt, options=container_options or {})
    s = c.add_stream(codec, rate=None if pts_ms is not None else rate, options=options or {})
    s.width, s.height, s.pix_fmt = w, h, pix_fmt
    if pts_ms is not None:
        tb = fractions.Fraction(1, 1000)
        s.time_base = tb
        s.codec_context.time_base = tb
    a = None
    if audio:
        a = c.add_stream("aac", rate=8000)
    for i in range(n):
        f = av.VideoFrame.from_ndarray(frame_content(i, h, w), format="rgb24")
        if pts_ms is not None:
            f.pts, f.time_base = int(pts_ms[i]), fractions.Fraction(1, 1000)
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    if a is not None:
        samples = int(8000 * n / rate)
        af = av.AudioFrame.from_ndarray(np.zeros((1, samples), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 8000, 0
        for p in a.encode(af):
            c.mux(p)
        for p in a.encode():
            c.mux(p)
    c.close()
    return path


def write_audio_only(path) -> Path:
    c = av.open(str(path), "w")
    a = c.add_stream("aac", rate=8000)
    af = av.AudioFrame.from_ndarray(np.zeros((1, 4000), np.float32), format="fltp", layout="mono")
    af.sample_rate, af.pts = 8000, 0
    for p in a.encode(af):
        c.mux(p)
    for p in a.encode():
        c.mux(p)
    c.close()
    return Path(path)


def full_decode(path) -> list:
    """Reference: every frame of a plain sequential decode, as RGB uint8."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def nearest_source_frame(img: np.ndarray, n: int) -> int:
    ref = np.stack([frame_content(i, *img.shape[:2]) for i in range(n)]).astype(np.float32)
    return int(((ref - img.astype(np.float32)) ** 2).mean(axis=(1, 2, 3)).argmin())


def make_broken_files(folder) -> dict:
    """Broken files named like videos; returns name -> expected reason fragment."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero_bytes.mp4").write_bytes(b"")
    (folder / "random_bytes.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (folder / "text.avi").write_text("this is not a video\n" * 50)
    write_audio_only(folder / "audio_only.m4a.mp4")
    good = write_video(folder / "_tmp_trunc.mp4", n=40, container_options={"movflags": "+faststart"})
    data = good.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: int(len(data) * 0.6)])
    good.unlink()
    write_video(folder / "too_short.mp4", n=2)
    (folder / "dangling_link.mp4").symlink_to(folder / "deleted_video.mp4")
    return {
        "dangling_link.mp4": "file not found",
        "zero_bytes.mp4": "empty",
        "random_bytes.mp4": "not a readable video",
        "text.avi": "not a readable video",
        "audio_only.m4a.mp4": "no video stream",
        "truncated.mp4": "truncated",
        "too_short.mp4": "too short",
    }


VFR_PTS_MS = np.cumsum([0] + [40, 10, 70, 33, 20] * 4)[:20]
