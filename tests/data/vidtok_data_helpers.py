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
    frames=None,
    frame_pts=None,
    packet_shift=0,
) -> Path:
    """Encode frames ``frame_content(0..n-1)`` (or the RGB uint8 ``frames``); ``pts_ms`` gives explicit
    (variable) timestamps in ms, ``frame_pts`` timestamps in frames (gaps make AVI write empty "drop
    frame" chunks), ``packet_shift`` moves every packet that many frames earlier (MP4/MOV then write an
    edit list that hides the frames before 0)."""
    path = Path(path)
    if frames is not None:
        n, h, w = len(frames), frames[0].shape[0], frames[0].shape[1]
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

    def mux(packets):
        for p in packets:
            if packet_shift and p.pts is not None:
                shift = int(packet_shift / (p.time_base * rate))
                p.pts, p.dts = p.pts - shift, p.dts - shift
            c.mux(p)

    for i in range(n):
        f = av.VideoFrame.from_ndarray(frames[i] if frames is not None else frame_content(i, h, w), format="rgb24")
        if pts_ms is not None:
            f.pts, f.time_base = int(pts_ms[i]), fractions.Fraction(1, 1000)
        elif frame_pts is not None:
            f.pts = int(frame_pts[i])
        mux(s.encode(f))
    mux(s.encode())
    if a is not None:
        _mux_silence(c, a, int(8000 * n / rate))
    c.close()
    return path


def _mux_silence(container, stream, samples: int) -> None:
    af = av.AudioFrame.from_ndarray(np.zeros((1, samples), np.float32), format="fltp", layout="mono")
    af.sample_rate, af.pts = 8000, 0
    for p in [*stream.encode(af), *stream.encode()]:
        container.mux(p)


def write_audio_only(path) -> Path:
    c = av.open(str(path), "w")
    _mux_silence(c, c.add_stream("aac", rate=8000), 4000)
    c.close()
    return Path(path)


def full_decode(path) -> list:
    """Reference: every frame of a plain sequential decode, as RGB uint8."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def tolerant_decode(path) -> list:
    """Reference for damaged files, written here with PyAV alone: decode packet by packet as FFmpeg's
    command line does (a packet the decoder rejects is dropped, a demuxer error ends the stream) and
    keep the frames the decoder does not flag as corrupt, as RGB uint8."""
    out = []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type, stream.codec_context.thread_count = "SLICE", 1
        frames = []
        try:
            for packet in c.demux(stream):
                if packet.size:
                    try:
                        frames += packet.decode()
                    except av.FFmpegError:
                        pass
        except av.FFmpegError:
            pass
        try:
            frames += stream.codec_context.decode(None)
        except av.FFmpegError:
            pass
        out = [f.to_ndarray(format="rgb24") for f in frames if not f.is_corrupt]
    return out


def _video_packets(path) -> list:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(video=0) if p.size]


def cut_in_packet(src, dst, k: int) -> Path:
    """Copy ``src`` cut in the middle of the data of its ``k``-th video packet (a download that stopped)."""
    data, payload = Path(src).read_bytes(), _video_packets(src)[k]
    at = data.find(payload)
    assert at >= 0 and data.find(payload, at + 1) < 0, "packet payload not unique in the file"
    Path(dst).write_bytes(data[: at + len(payload) // 2])
    return Path(dst)


def garble_last_packets(src, dst, m: int, seed: int = 0) -> Path:
    """Copy ``src`` with the payloads of its last ``m`` video packets overwritten by random bytes (the
    container structure stays intact: damaged data, not a damaged file layout)."""
    data = bytearray(Path(src).read_bytes())
    rng = np.random.default_rng(seed)
    for payload in _video_packets(src)[-m:]:
        at = data.find(payload)
        assert at >= 0 and data.find(payload, at + 1) < 0, "packet payload not unique in the file"
        data[at : at + len(payload)] = rng.integers(0, 256, len(payload), dtype=np.uint8).tobytes()
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


H264_GOP10 = {"bf": "2", "g": "10", "keyint_min": "10", "sc_threshold": "0"}
FASTSTART = {"movflags": "+faststart"}
AVI_GAP_PTS = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22]  # 20 frames over 23 slots


def make_partial_files(folder, frames=None) -> dict:
    """Files whose header promises more than decodes, one per real-world case; returns
    name -> (frames that decode, frames the header declares or 0, reason fragment logged at INFO).

    ``frames`` (RGB uint8 list, default ``frame_content``) is the content; the counts below are for
    the default 20 (30 for the cut / garbled sources) frames.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "_src"
    tmp.mkdir(exist_ok=True)
    content = (lambda n: None) if frames is None else (lambda n: list(frames[:n]))
    out = {}
    # 1. H.264 .mov/.mp4 whose sample table lists one frame more than plays (an edit list hides it)
    for ext in ("mov", "mp4"):
        write_video(folder / f"edit_list.{ext}", n=20, frames=content(20), options=H264_GOP10, packet_shift=1)
        out[f"edit_list.{ext}"] = (19, 20, "the header declares 20 frames, 19 decode")
    # 2. VP9 / MPEG-4 .avi whose frame count includes empty "drop frame" chunks
    for name, codec in (("gaps_vp9.avi", "libvpx-vp9"), ("gaps_mpeg4.avi", "mpeg4")):
        write_video(folder / name, codec, n=20, frames=content(20), options={"g": "10"}, frame_pts=AVI_GAP_PTS)
        out[name] = (20, 23, "the header declares 23 frames, 20 decode")
    # 3. a download cut in the middle of a GOP (Cinepak .avi, H.264 .mp4 with B-frames, .mkv)
    sources = {
        "cut_cinepak.avi": (write_video(tmp / "cinepak.avi", "cinepak", n=30, frames=content(30), pix_fmt="rgb24", options={"g": "10"}), 4, 5, 30),
        "cut_h264.mp4": (write_video(tmp / "h264.mp4", n=30, frames=content(30), options=H264_GOP10, container_options=FASTSTART), 15, 15, 30),
        "cut_h264.mkv": (write_video(tmp / "h264.mkv", n=30, frames=content(30), options=H264_GOP10), 15, 15, 0),
    }
    for name, (src, k, usable, declared) in sources.items():
        cut_in_packet(src, folder / name, k)
        reason = f"the header declares {declared} frames, {usable} decode" if declared else "the data ends at 0.60s of the declared 1.20s"
        out[name] = (usable, declared, reason)
    # 4. the last packets are garbage (H.264 .mp4, MPEG-4 .avi)
    for name, src in (
        ("garbage_tail_h264.mp4", write_video(tmp / "g_h264.mp4", n=30, frames=content(30), options=H264_GOP10, container_options=FASTSTART)),
        ("garbage_tail_mpeg4.avi", write_video(tmp / "g_mpeg4.avi", "mpeg4", n=30, frames=content(30), options={"g": "10"})),
    ):
        garble_last_packets(src, folder / name, 3)
        out[name] = (27, 30, "the header declares 30 frames, 27 decode")
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    return out


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
    good = write_video(folder / "_tmp_trunc.mp4", n=40)  # index (moov) at the end: cut off with the tail
    data = good.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: int(len(data) * 0.6)])
    good.unlink()
    good = write_video(folder / "_tmp_garbage.mp4", n=10, options=H264_GOP10, container_options=FASTSTART)
    garble_last_packets(good, folder / "all_packets_garbage.mp4", 10)
    good.unlink()
    write_video(folder / "too_short.mp4", n=2)
    (folder / "dangling_link.mp4").symlink_to(folder / "deleted_video.mp4")
    return {
        "dangling_link.mp4": "file not found",
        "zero_bytes.mp4": "empty",
        "random_bytes.mp4": "not a readable video",
        "text.avi": "not a readable video",
        "audio_only.m4a.mp4": "no video stream",
        "truncated.mp4": "not a readable video",
        "all_packets_garbage.mp4": "no decodable frames",
        "too_short.mp4": "too short",
    }


VFR_PTS_MS = np.cumsum([0] + [40, 10, 70, 33, 20] * 4)[:20]


def write_class_folder(root) -> dict:
    """A tiny ``folder``-layout dataset for the source tests: two classes, 7 good videos of three codecs and several
    lengths (a dotted file name, a nested sub-folder), one file that is not a video, one too short for 8-frame clips,
    and ``captions.csv`` listing every file with a caption. Returns ``{"root", "csv", "good", "broken"}``."""
    root = Path(root)
    specs = {
        "busy/a.mp4": ("libx264", 24, {"bf": "2", "g": "6"}, None),
        "busy/my.clip.v2.mp4": ("libx264", 31, {"bf": "2", "g": "6"}, None),
        "busy/sub/deep.webm": ("libvpx-vp9", 19, {"g": "6"}, "webm"),
        "calm/b.avi": ("mjpeg", 22, {}, None),
        "calm/c.mp4": ("libx264", 40, {"g": "10"}, None),
        "calm/d.mp4": ("libx264", 17, {"bf": "1"}, None),
        "calm/e.webm": ("libvpx-vp9", 26, {"g": "6"}, "webm"),
    }
    for i, (rel, (codec, n, opts, fmt)) in enumerate(specs.items()):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        frames = [np.roll(frame_content(j + 7 * i), i, axis=1) for j in range(n)]
        write_video(root / rel, codec, frames=frames, options=opts, fmt=fmt,
                    pix_fmt="yuvj420p" if codec == "mjpeg" else "yuv420p")
    (root / "calm" / "not_a_video.mp4").write_text("this is not a video\n" * 20)
    write_video(root / "busy" / "short.mp4", n=2)
    names = sorted([*specs, "calm/not_a_video.mp4", "busy/short.mp4"])
    with open(root / "captions.csv", "w") as f:
        f.write("path,label,caption\n")
        for rel in names:
            f.write(f"{rel},{rel.split('/')[0]},a {rel.split('/')[0]} scene ({Path(rel).stem})\n")
    return {"root": root, "csv": root / "captions.csv", "good": sorted(specs), "broken": ["busy/short.mp4", "calm/not_a_video.mp4"]}
