"""Frame-exact video clip reading with PyAV.

A file is first *probed*: its packets are demuxed (no decoding) to list the presentation
timestamps of every frame and the key frames. Frame ``i`` is the ``i``-th frame of a full
sequential decode, i.e. the ``i``-th smallest presentation timestamp. A clip read then seeks to
the last key frame at or before the first wanted frame and decodes forward, matching frames by
timestamp, so B-frame reordering and variable frame rates give exact indices. Every seek is
checked (the decoder must deliver consecutive frames starting at or before the first wanted
frame); when a check fails the reader seeks to an earlier key frame, and in the end decodes from
the start, counting frames. Frames are returned as ``uint8`` arrays ``(T, H, W, 3)`` (RGB).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Sequence, Union

import numpy as np

__all__ = [
    "VIDEO_EXTENSIONS",
    "BrokenVideoError",
    "VideoIndex",
    "VideoFile",
    "probe_video",
    "clip_frame_indices",
    "read_video_clip",
]

logger = logging.getLogger("hf_vidtok.data")

VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".ogv", ".ogg", ".mpg", ".mpeg",
    ".flv", ".wmv", ".3gp", ".ts", ".mts", ".m2ts", ".gif",
)  # fmt: skip

RngLike = Union[None, int, np.random.Generator]


def _import_av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "Reading videos needs PyAV: `pip install hf_vidtok[train]` (or `pip install av`)."
        ) from e
    return av


class BrokenVideoError(ValueError):
    """A video file that cannot give a clip: empty, truncated, not a video, undecodable, too short.

    ``path`` names the file and ``reason`` says what is wrong with it.
    """

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class VideoIndex:
    """What a probe learned about a file (no pixels).

    ``pts``: presentation timestamps of all frames, sorted (frame ``i`` has ``pts[i]``), in units
    of ``time_base``; ``keyframe_pts``: sorted timestamps of the key frames; ``exact_seek``: False
    when timestamps are missing or repeated, in which case frames are located by decoding from the
    start and counting. ``frame_rate`` is only used for files without usable timestamps.
    """

    path: str
    pts: np.ndarray
    keyframe_pts: np.ndarray
    time_base: Optional[Fraction]
    frame_rate: float
    width: int
    height: int
    exact_seek: bool
    seekable: bool = True

    @property
    def num_frames(self) -> int:
        return int(len(self.pts))

    def frame_times(self) -> np.ndarray:
        """Presentation time of each frame in seconds, relative to the first frame."""
        if self.exact_seek and self.time_base is not None and self.num_frames:
            return (self.pts - self.pts[0]).astype(np.float64) * float(self.time_base)
        return np.arange(self.num_frames, dtype=np.float64) / self.frame_rate


def _frame_rate(stream) -> float:
    for attr in ("average_rate", "guessed_rate", "base_rate"):
        try:
            rate = getattr(stream, attr)
        except Exception:  # noqa: BLE001 - odd metadata must not break a read
            rate = None
        if rate is not None and float(rate) > 0 and np.isfinite(float(rate)) and float(rate) < 1000:
            return float(rate)
    return 25.0


def _open(path: str):
    av = _import_av()
    if not os.path.exists(path):
        raise BrokenVideoError(path, "file not found")
    if not os.path.isfile(path):
        raise BrokenVideoError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise BrokenVideoError(path, "empty file (0 bytes)")
    try:
        container = av.open(path, mode="r", metadata_errors="ignore")
    except Exception as e:  # noqa: BLE001 - any open failure means "not a readable video"
        raise BrokenVideoError(
            path, f"not a readable video: truncated, corrupt or not a video ({type(e).__name__}: {e})"
        ) from e
    if not container.streams.video:
        container.close()
        raise BrokenVideoError(path, "no video stream (not a video file)")
    return container


def probe_video(path: Union[str, os.PathLike]) -> VideoIndex:
    """Demux ``path`` (without decoding) and return its :class:`VideoIndex`.

    Raises :class:`BrokenVideoError` for a missing, empty, unreadable, truncated or frameless file.
    """
    path = os.fspath(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        vindex = stream.index
        tb = stream.time_base
        pts: list = []
        keys: list = []
        n_corrupt = 0
        stream_end: dict = {}
        try:
            for packet in container.demux():
                if packet.pts is None and packet.dts is None and packet.size == 0:
                    continue  # flush packet at EOF
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is not None and packet.time_base is not None:
                    end = float((ts + (packet.duration or 0)) * packet.time_base)
                    si = packet.stream_index
                    stream_end[si] = max(stream_end.get(si, end), end)
                if packet.stream_index != vindex:
                    continue
                if packet.is_discard:
                    continue  # outside the edit list: the decoder drops it
                if packet.size == 0:
                    continue  # AVI "drop frame" placeholders: the decoder outputs nothing
                n_corrupt += bool(packet.is_corrupt)
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except Exception as e:  # noqa: BLE001
            raise BrokenVideoError(path, f"truncated or corrupt data ({type(e).__name__}: {e})") from e
        n = len(pts)
        if n == 0:
            raise BrokenVideoError(path, "too short: the video stream holds no frames")
        if n_corrupt:
            raise BrokenVideoError(path, f"truncated or corrupt: {n_corrupt} damaged packet(s)")
        declared = int(stream.frames or 0)
        if declared > 0 and n < declared:
            raise BrokenVideoError(path, f"truncated: {n} of the {declared} declared frames are present")
        duration = container.duration  # microseconds, from the header (max over streams)
        if duration and stream_end:
            rate = _frame_rate(stream)
            present = max(stream_end.values()) - float(container.start_time or 0) / 1e6
            missing = duration / 1e6 - present
            if missing > max(2.5 / rate, 0.02 * duration / 1e6):
                raise BrokenVideoError(
                    path, f"truncated: data ends at {present:.2f}s of a declared {duration / 1e6:.2f}s"
                )
        exact = all(p is not None for p in pts) and tb is not None
        if exact:
            arr = np.asarray(pts, dtype=np.int64)
            arr.sort()
            exact = bool(np.all(np.diff(arr) > 0))
        if exact:
            key_arr = np.unique(np.asarray([k for k in keys if k is not None], dtype=np.int64))
            if len(key_arr) == 0 or key_arr[0] != arr[0]:
                key_arr = np.unique(np.concatenate([arr[:1], key_arr]))  # always allow "from the start"
        else:
            arr = np.arange(n, dtype=np.int64)
            key_arr = arr[:1]
        ctx = stream.codec_context
        return VideoIndex(
            path=path,
            pts=arr,
            keyframe_pts=key_arr,
            time_base=Fraction(tb) if tb is not None else None,
            frame_rate=_frame_rate(stream),
            width=int(ctx.width or 0),
            height=int(ctx.height or 0),
            exact_seek=exact,
        )
    finally:
        container.close()


_CACHE_SIZE = 1024
_cache: "OrderedDict[tuple, VideoIndex]" = OrderedDict()
_cache_lock = threading.Lock()


def _cached_probe(path: str) -> VideoIndex:
    try:
        st = os.stat(path)
        key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    except OSError:
        return probe_video(path)  # raises the right BrokenVideoError
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    index = probe_video(path)
    _store(key, index)
    return index


def _store(key, index: VideoIndex) -> None:
    with _cache_lock:
        _cache[key] = index
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def _as_rng(rng: RngLike) -> np.random.Generator:
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def clip_frame_indices(
    index: VideoIndex,
    num_frames: int,
    *,
    frame_stride: int = 1,
    fps: Optional[float] = None,
    start: Optional[int] = None,
    rng: RngLike = None,
) -> np.ndarray:
    """Source frame indices ``(num_frames,)`` of a clip of ``index``'s video.

    Native rate (``fps=None``): frames ``start, start + frame_stride, ...``. With ``fps``, the clip is
    resampled in time: output frame ``k`` shows the source frame on screen at time
    ``t(start) + k * frame_stride / fps`` (this follows variable frame rates). ``start=None`` draws a
    uniformly random start from ``rng`` among the starts whose clip fits in the video (0 when none
    does). Positions past the end repeat the last frame, as the official LARP loader pads.
    """
    num_frames = _check_positive_int("num_frames", num_frames)
    frame_stride = _check_positive_int("frame_stride", frame_stride)
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0):
        raise ValueError(f"fps must be None or a positive number, got {fps!r}")
    n = index.num_frames
    if n == 0:
        raise BrokenVideoError(index.path, "too short: the video stream holds no frames")
    if fps is None:
        span = (num_frames - 1) * frame_stride + 1
        max_start = max(n - span, 0)
    else:
        times = index.frame_times()
        span_s = (num_frames - 1) * frame_stride / float(fps)
        max_start = max(int(np.searchsorted(times, times[-1] - span_s + 1e-9, side="right")) - 1, 0)
    if start is None:
        start = int(_as_rng(rng).integers(0, max_start + 1))
    else:
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
            raise TypeError(f"start must be None or an int frame index, got {type(start).__name__}")
        if not 0 <= start < n:
            raise ValueError(f"start={start} is out of range for {index.path!r}, which has {n} frames")
        start = int(start)
    if fps is None:
        idx = start + frame_stride * np.arange(num_frames, dtype=np.int64)
    else:
        t = times[start] + np.arange(num_frames, dtype=np.float64) * (frame_stride / float(fps))
        idx = np.searchsorted(times, t + 1e-9, side="right").astype(np.int64) - 1
    return np.clip(idx, 0, n - 1)


class VideoFile:
    """An open video file that reads frames by index, frame-exactly (see the module docstring).

    ``num_threads``: FFmpeg decoding threads (0 lets FFmpeg choose; 1, the default, suits
    DataLoader workers). Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: Union[str, os.PathLike], *, num_threads: int = 1):
        self.path = os.fspath(path)
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
            raise ValueError(f"num_threads must be an int >= 0, got {num_threads!r}")
        self.num_threads = num_threads
        self.index = _cached_probe(self.path)
        self._container = None

    # -- context management -------------------------------------------------------------------
    def __enter__(self) -> "VideoFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __len__(self) -> int:
        return self.index.num_frames

    # -- decoding -----------------------------------------------------------------------------
    def _stream(self):
        if self._container is None:
            self._container = _open(self.path)
            stream = self._container.streams.video[0]
            stream.thread_type = "AUTO" if self.num_threads != 1 else "SLICE"
            stream.codec_context.thread_count = self.num_threads
        return self._container, self._container.streams.video[0]

    def _reopen(self):
        self.close()
        return self._stream()

    def clip_indices(self, num_frames: int, **kwargs) -> np.ndarray:
        """See :func:`clip_frame_indices`."""
        return clip_frame_indices(self.index, num_frames, **kwargs)

    def read_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 ``(len(indices), H, W, 3)``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("indices must hold at least one frame index")
        n = self.index.num_frames
        if idx.min() < 0 or idx.max() >= n:
            raise ValueError(f"frame indices must lie in [0, {n}) for {self.path!r}, got {idx.min()}..{idx.max()}")
        wanted = sorted(set(int(i) for i in idx))
        try:
            frames = None
            if self.index.exact_seek and self.index.seekable:
                frames = self._read_by_seeking(wanted)
                if frames == "no-seek":  # the demuxer cannot seek this file: decode from the start
                    self._update_index(dataclasses.replace(self.index, seekable=False))
                    frames = None
                if frames is None:  # the timestamps do not describe what the decoder outputs
                    logger.debug("%s: seek verification failed, indexing by a full decode", self.path)
                    self._reindex_by_decoding()
                    if self.index.num_frames < n:  # fewer frames decode than the demuxer listed: pad
                        idx = np.minimum(idx, self.index.num_frames - 1)
                        wanted = sorted(set(int(i) for i in idx))
                    if self.index.exact_seek:
                        frames = self._read_by_seeking(wanted)
                        frames = None if frames == "no-seek" else frames
            if frames is None:
                frames = self._read_sequential(wanted)
        except BrokenVideoError:
            raise
        except Exception as e:  # noqa: BLE001 - FFmpeg errors on damaged data
            raise BrokenVideoError(self.path, f"decoding failed ({type(e).__name__}: {e})") from e
        return np.stack([frames[int(i)] for i in idx])

    def _read_by_seeking(self, wanted: list) -> Optional[dict]:
        """Decode ``wanted`` (sorted frame indices) by seeking.

        Returns the frames, None when the index does not match the decoder's output, or "no-seek"
        when the demuxer refuses to seek.
        """
        pts = self.index.pts
        keys = self.index.keyframe_pts
        pos_of = {int(p): i for i, p in enumerate(pts)}
        first = wanted[0]
        k = int(np.searchsorted(keys, pts[first], side="right")) - 1
        container, stream = self._stream()
        while k >= 0:
            key_pts = int(keys[k])
            key_pos = pos_of.get(key_pts, 0)
            if k == 0 and key_pos == 0:
                container, stream = self._reopen()  # decode from the very start, no seek needed
            else:
                try:
                    container.seek(key_pts, backward=True, any_frame=False, stream=stream)
                except Exception:  # noqa: BLE001 - e.g. a non-seekable stream
                    return "no-seek"
            result = self._decode_forward(container, stream, wanted, pos_of, key_pos)
            if result == "overshoot":
                k -= 1
                continue
            return result
        return None

    def _decode_forward(self, container, stream, wanted, pos_of, key_pos):
        out: dict = {}
        targets = set(wanted)
        last = wanted[-1]
        expected = None
        for frame in container.decode(stream):
            if frame.pts is None or int(frame.pts) not in pos_of:
                return None
            pos = pos_of[int(frame.pts)]
            if pos < key_pos:
                continue  # leading frames of an open GOP, or frames before the key frame
            if expected is None:
                if pos > wanted[0]:
                    return "overshoot"
            elif pos != expected:
                return None  # a missing or reordered frame: indices would not be exact
            expected = pos + 1
            if pos in targets:
                out[pos] = frame.to_ndarray(format="rgb24")
            if pos >= last:
                return out
        if expected is None:
            return "overshoot"
        # The decoder ended before the last wanted frame although the demuxer listed it.
        raise BrokenVideoError(self.path, f"truncated: decoding stopped at frame {expected} of {len(pos_of)}")

    def _read_sequential(self, wanted: list) -> dict:
        container, stream = self._reopen()
        targets = set(wanted)
        last = wanted[-1]
        out: dict = {}
        pos = -1
        for pos, frame in enumerate(container.decode(stream)):
            if pos in targets:
                out[pos] = frame.to_ndarray(format="rgb24")
            if pos >= last:
                break
        if pos < 0:
            raise BrokenVideoError(self.path, "no decodable frames")
        if pos < last:
            raise BrokenVideoError(self.path, f"truncated: only {pos + 1} of {self.index.num_frames} frames decode")
        return out

    def _reindex_by_decoding(self) -> None:
        """Replace the packet-based index by the timestamps the decoder actually outputs."""
        container, stream = self._reopen()
        pts, keys = [], []
        for frame in container.decode(stream):
            pts.append(frame.pts)
            if frame.key_frame and frame.pts is not None:
                keys.append(frame.pts)
        old = self.index
        exact = bool(pts) and all(p is not None for p in pts)
        if exact:
            arr = np.asarray(pts, dtype=np.int64)
            exact = bool(np.all(np.diff(arr) > 0))  # output order must be presentation order
        if exact:
            key_arr = np.unique(np.concatenate([arr[:1], np.asarray(keys, dtype=np.int64)]))
        else:
            arr = np.arange(len(pts), dtype=np.int64)
            key_arr = arr[:1]
        if len(arr) == 0:
            raise BrokenVideoError(self.path, "no decodable frames")
        self._update_index(
            VideoIndex(old.path, arr, key_arr, old.time_base, old.frame_rate, old.width, old.height, exact, old.seekable)
        )

    def _update_index(self, index: VideoIndex) -> None:
        self.index = index
        try:
            st = os.stat(self.path)
            _store((os.path.realpath(self.path), st.st_size, st.st_mtime_ns), index)
        except OSError:
            pass

    def read_clip(
        self,
        num_frames: int,
        *,
        frame_stride: int = 1,
        fps: Optional[float] = None,
        start: Optional[int] = None,
        rng: RngLike = None,
    ) -> tuple:
        """``(start_frame, frames)``: a clip as in :func:`read_video_clip` and the index it starts at."""
        idx = self.clip_indices(num_frames, frame_stride=frame_stride, fps=fps, start=start, rng=rng)
        return int(idx[0]), self.read_frames(idx)


def read_video_clip(
    path: Union[str, os.PathLike],
    num_frames: int,
    *,
    frame_stride: int = 1,
    fps: Optional[float] = None,
    start: Optional[int] = None,
    rng: RngLike = None,
    num_threads: int = 1,
) -> np.ndarray:
    """Read a clip of ``num_frames`` frames from ``path`` as uint8 ``(num_frames, H, W, 3)`` RGB.

    ``frame_stride`` takes every n-th frame; ``fps`` resamples to that frame rate (``None``: native
    frames); ``start`` is the first source frame (``None``: uniformly random from ``rng``, an int
    seed or ``numpy.random.Generator``). Clips running past the end repeat the last frame. Seeks to
    the clip; frame ``i`` is exactly the ``i``-th frame of a full decode. Raises
    :class:`BrokenVideoError` (a ``ValueError``) for files that cannot give a clip.
    ``num_threads``: FFmpeg decoding threads (0: FFmpeg's choice).
    """
    with VideoFile(path, num_threads=num_threads) as video:
        return video.read_clip(num_frames, frame_stride=frame_stride, fps=fps, start=start, rng=rng)[1]
