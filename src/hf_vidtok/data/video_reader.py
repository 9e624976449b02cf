"""Frame-exact video clip reading with PyAV that follows the data, not the header.

A file is first *probed*: its packets are demuxed (no decoding) to list the presentation
timestamps of every frame and the key frames, and its last group of pictures is decoded to check
that the file's end really decodes. When the container disagrees with its packets (fewer packets
than the header declares, damaged packets, data that stops before the declared duration, a demuxer
error) or the end does not decode, the file is indexed by one full decode instead. Either way the
usable frames are exactly the intact frames a plain sequential decode outputs, where, as FFmpeg's
command line does, a packet the decoder rejects is dropped instead of ending the decode (and frames
the decoder flags as corrupt are left out). Frame ``i`` is the ``i``-th of them (the ``i``-th
smallest presentation timestamp).

Files whose header declares more (or fewer) frames than decode are usable: the mismatch is logged
once, at INFO on the ``hf_vidtok.data`` logger, when the file is probed, and recorded in
:attr:`VideoIndex.partial`. Only files where nothing decodes raise :class:`BrokenVideoError`.

A clip read seeks to the last key frame at or before the first wanted frame and decodes forward,
matching frames by timestamp, so B-frame reordering and variable frame rates give exact indices.
Every seek is checked (the decoder must deliver consecutive frames starting at or before the first
wanted frame); when a check fails the file is re-indexed by a full decode, and reads fall back to
decoding from the start, counting frames. Frames are returned as ``uint8`` arrays ``(T, H, W, 3)``
(RGB).

Besides local paths, every reader takes in-memory bytes or a :class:`~hf_vidtok.data.VideoSource` (bytes, or a
file behind an fsspec URL such as ``hf://datasets/...``): PyAV decodes from a file object, nothing is written.

Probe cache: what a probe learns is kept in process (keyed by the file's real path, size and
modification time; a :class:`~hf_vidtok.data.VideoSource` by its ``cache_key``: a hash of the bytes, or the
URL, size and version of a remote file) and in a small JSON file per video under :func:`probe_cache_dir`
(``$HF_VIDTOK_PROBE_CACHE``, default ``<datasets cache>/hf_vidtok_probes``; set the variable to
``0`` to turn the disk cache off), so later epochs, DataLoader workers and runs neither demux nor
decode a file again until it changes. Files that cannot give frames are cached too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Sequence, Union

import numpy as np

from .video_source import VideoSource

__all__ = [
    "VIDEO_EXTENSIONS",
    "PROBE_CACHE_ENV",
    "BrokenVideoError",
    "VideoIndex",
    "VideoFile",
    "probe_video",
    "probe_cache_dir",
    "clip_frame_indices",
    "read_video_clip",
]

logger = logging.getLogger("hf_vidtok.data")

VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".ogv", ".ogg", ".mpg", ".mpeg",
    ".flv", ".wmv", ".3gp", ".ts", ".mts", ".m2ts", ".gif",
)  # fmt: skip

#: Environment variable naming the probe cache folder (``0``/``off``/empty: no disk cache).
PROBE_CACHE_ENV = "HF_VIDTOK_PROBE_CACHE"
# Bump when what a probe computes changes: cached probes of other versions are ignored.
_PROBE_VERSION = 2

RngLike = Union[None, int, np.random.Generator]
#: What the readers take: a local path, the bytes of a video file, or a :class:`VideoSource`.
VideoLike = Union[str, os.PathLike, bytes, bytearray, memoryview, VideoSource]


def _import_av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "Reading videos needs PyAV: `pip install hf_vidtok[train]` (or `pip install av`)."
        ) from e
    return av


class BrokenVideoError(ValueError):
    """A video file that cannot give a clip: empty, not a video, no video stream, nothing decodes.

    ``path`` names the file and ``reason`` says what is wrong with it.
    """

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class VideoIndex:
    """What a probe learned about a file (no pixels).

    ``pts``: presentation timestamps of all usable (decodable) frames, sorted (frame ``i`` has
    ``pts[i]``), in units of ``time_base``; ``keyframe_pts``: sorted timestamps of the key frames;
    ``exact_seek``: False when timestamps are missing or repeated, in which case frames are located
    by decoding from the start and counting. ``frame_rate`` is only used for files without usable
    timestamps. ``declared_frames``: the frame count in the container header (0: none);
    ``partial``: why the header and the decodable frames disagree ("" when they agree).
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
    declared_frames: int = 0
    partial: str = ""

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


def _as_source(video: VideoLike) -> Union[str, VideoSource]:
    """A local path (str) or a :class:`VideoSource`; TypeError for anything else."""
    if isinstance(video, VideoSource):
        return video
    if isinstance(video, (bytes, bytearray, memoryview)):
        return VideoSource.from_bytes(video)
    if isinstance(video, (str, os.PathLike)):
        return os.fspath(video)
    raise TypeError(f"video must be a path, bytes or a VideoSource, got {type(video).__name__}")


def _name(src: Union[str, VideoSource]) -> str:
    return src.name if isinstance(src, VideoSource) else src


class _SourceContainer:
    """A PyAV container over a file object it opened: ``close`` closes both (PyAV leaves the file open)."""

    def __init__(self, container, fileobj):
        self._container, self._fileobj = container, fileobj

    def __getattr__(self, name):
        return getattr(self._container, name)

    def close(self) -> None:
        try:
            self._container.close()
        finally:
            self._fileobj.close()


def _open_source(src: VideoSource):
    av = _import_av()
    if src.size == 0:
        raise BrokenVideoError(src.name, "empty file (0 bytes)")
    try:
        fileobj = src.open()
    except Exception as e:  # noqa: BLE001 - a missing remote file, a refused connection, ...
        raise BrokenVideoError(src.name, f"cannot be opened ({type(e).__name__}: {e})") from e
    try:
        container = av.open(fileobj, mode="r", metadata_errors="ignore")
    except Exception as e:  # noqa: BLE001 - any open failure means "not a readable video"
        fileobj.close()
        raise BrokenVideoError(
            src.name, f"not a readable video: truncated, corrupt or not a video ({type(e).__name__}: {e})"
        ) from e
    return _SourceContainer(container, fileobj)


def _open(path: Union[str, VideoSource]):
    if isinstance(path, VideoSource):
        container = _open_source(path)
        if not container.streams.video:
            container.close()
            raise BrokenVideoError(path.name, "no video stream (not a video file)")
        return container
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


def _open_single_threaded(path: Union[str, VideoSource]):
    """``_open`` with one decoding thread: the frames a damaged file gives do not depend on threads."""
    container = _open(path)
    stream = container.streams.video[0]
    stream.thread_type = "SLICE"
    stream.codec_context.thread_count = 1
    return container, stream


def _decode(container, stream):
    """The intact frames of ``stream`` in output order, like ``container.decode(stream)``, but tolerant.

    Hand-written because PyAV's decode raises on the first packet the decoder rejects (and on a
    demuxer error), while FFmpeg's command line and players drop that packet and go on: a rejected
    packet is skipped, a demuxer error ends the stream, and the decoder is then drained. Frames the
    decoder flags as corrupt (damage it concealed, whose pixels depend on where decoding started)
    are not frames of the video: they are dropped too.
    """
    av = _import_av()
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the end-of-file packet, or an AVI "drop frame" placeholder (decodes to nothing)
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue  # damaged data: FFmpeg conceals what it can and moves on
            for frame in frames:
                if not frame.is_corrupt:
                    yield frame
    except av.FFmpegError:
        pass  # the demuxer gave up (a cut or damaged file): keep what the decoder holds
    try:
        frames = stream.codec_context.decode(None)  # drain the frames still in the decoder
    except av.FFmpegError:
        return
    for frame in frames:
        if not frame.is_corrupt:
            yield frame


def _strictly_increasing(values) -> bool:
    return bool(values) and all(v is not None for v in values) and bool(np.all(np.diff(np.asarray(values, np.int64)) > 0))


# ------------------------------------------------------------------------------------------- probe
@dataclass
class _PacketScan:
    """What demuxing (without decoding) found: the packet index and what disagrees with the header."""

    index: VideoIndex
    listed: int  # frame packets (not discarded, not empty)
    damage: Optional[str]  # why the packets cannot be trusted (None: they can)
    short: str  # "" or how the data stops before the header's duration


def _scan_packets(path: Union[str, VideoSource]) -> _PacketScan:
    container = _open(path)
    try:
        stream = container.streams.video[0]
        vindex = stream.index
        tb = stream.time_base
        pts: list = []
        keys: list = []
        n_corrupt = n_discard = n_empty = 0
        stream_end: dict = {}
        damage = None
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
                    n_discard += 1  # outside the edit list: the decoder drops it
                    continue
                if packet.size == 0:
                    n_empty += 1  # AVI "drop frame" placeholders: the decoder outputs nothing
                    continue
                n_corrupt += bool(packet.is_corrupt)
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except Exception as e:  # noqa: BLE001 - a cut or damaged file: keep what came before
            damage = f"the demuxer stopped after {len(pts)} frames ({type(e).__name__}: {e})"
        n = len(pts)
        declared = max(int(stream.frames or 0), 0)
        if damage is None and n_corrupt:
            damage = f"{n_corrupt} damaged packet(s)"
        if damage is None and declared and n + n_discard + n_empty < declared:
            damage = f"{n} of the {declared} declared frames are present"
        short = ""
        duration = container.duration  # microseconds, from the header (max over streams)
        if duration and stream_end:
            rate = _frame_rate(stream)
            present = max(stream_end.values()) - float(container.start_time or 0) / 1e6
            if duration / 1e6 - present > max(2.5 / rate, 0.02 * duration / 1e6):
                short = f"the data ends at {present:.2f}s of the declared {duration / 1e6:.2f}s"
                damage = damage or short
        exact = tb is not None and _strictly_increasing(sorted(pts)) if all(p is not None for p in pts) else False
        if exact:  # packets come in decoding order: frame i is the i-th smallest timestamp
            arr = np.sort(np.asarray(pts, dtype=np.int64))
            key_arr = np.unique(np.asarray([k for k in keys if k is not None], dtype=np.int64))
            if len(key_arr) == 0 or key_arr[0] != arr[0]:
                key_arr = np.unique(np.concatenate([arr[:1], key_arr]))  # always allow "from the start"
        else:
            arr = np.arange(n, dtype=np.int64)
            key_arr = arr[:1]
        ctx = stream.codec_context
        index = VideoIndex(
            path=_name(path),
            pts=arr,
            keyframe_pts=key_arr,
            time_base=Fraction(tb) if tb is not None else None,
            frame_rate=_frame_rate(stream),
            width=int(ctx.width or 0),
            height=int(ctx.height or 0),
            exact_seek=exact,
            declared_frames=declared,
        )
        return _PacketScan(index, n, damage, short)
    finally:
        container.close()


def _index_by_decoding(index: VideoIndex, src: Union[str, VideoSource, None] = None) -> VideoIndex:
    """``index`` rebuilt from the timestamps a full (tolerant, single-threaded) decode outputs (of ``src``, default
    the file at ``index.path``)."""
    container, stream = _open_single_threaded(index.path if src is None else src)
    try:
        pts = [frame.pts for frame in _decode(container, stream)]
    finally:
        container.close()
    if not pts:
        raise BrokenVideoError(index.path, "no decodable frames: not one frame of the video stream decodes")
    if index.exact_seek and _strictly_increasing(pts):  # output order must be presentation order
        arr = np.asarray(pts, dtype=np.int64)
        # seek targets: the demuxer's key frames among the frames that decode (seeks are verified anyway)
        key_arr = np.union1d(arr[:1], np.intersect1d(index.keyframe_pts, arr))
        return dataclasses.replace(index, pts=arr, keyframe_pts=key_arr)
    arr = np.arange(len(pts), dtype=np.int64)
    return dataclasses.replace(index, pts=arr, keyframe_pts=arr[:1], exact_seek=False)


_NO_SEEK = "the file cannot be seeked"


def _tail_damage(index: VideoIndex, src: Union[str, VideoSource]) -> Optional[str]:
    """None when the last group of pictures decodes exactly as the packets list it, else why not
    (:data:`_NO_SEEK` when the demuxer refuses to seek)."""
    video = VideoFile._from_index(index, src)
    try:
        result = video._read_by_seeking([index.num_frames - 1])
    except Exception as e:  # noqa: BLE001 - FFmpeg errors on damaged data
        return f"decoding its end failed ({type(e).__name__}: {e})"
    finally:
        video.close()
    if result == "no-seek":
        return _NO_SEEK
    if result is None:
        return "its last frames do not decode as listed"
    return None


def probe_video(path: VideoLike, *, use_cache: bool = True) -> VideoIndex:
    """Index the frames of ``path`` (a local path, bytes or a :class:`VideoSource`) that decode (see the module
    docstring) as a :class:`VideoIndex`.

    Cheap: a demux plus the decode of the last group of pictures (a full decode only for damaged
    files), cached in process and on disk (``use_cache=False`` probes afresh and stores nothing).
    A header that declares other frame counts or durations than what decodes is logged once at
    INFO and recorded in ``partial``. Raises :class:`BrokenVideoError` for a missing, empty or
    unreadable file, one without a video stream, or one where no frame decodes.
    """
    path = _as_source(path)
    if use_cache:
        return _cached_probe(path)
    scan = _scan_packets(path)
    index = scan.index
    if index.num_frames == 0 and scan.damage is None:
        raise BrokenVideoError(_name(path), "no frames: the video stream holds no frames")
    damage = scan.damage
    if damage is None and index.exact_seek:
        damage = _tail_damage(index, path)
        if damage == _NO_SEEK:
            index = dataclasses.replace(index, seekable=False)
    if damage is not None or not index.exact_seek:
        if damage is not None:
            logger.debug("%s: %s; indexing the frames that decode by a full decode", _name(path), damage)
        index = _index_by_decoding(index, path)
    usable = index.num_frames
    if index.declared_frames:
        partial = f"the header declares {index.declared_frames} frames, {usable} decode" if index.declared_frames != usable else ""
    elif usable < scan.listed:
        partial = f"{usable} of the {scan.listed} frames in the file decode"
    else:
        partial = scan.short
    if partial:
        logger.info("%s: %s; using the %d frames that decode", _name(path), partial, usable)
    return dataclasses.replace(index, partial=partial)


# ------------------------------------------------------------------------------------ probe cache
_CACHE_SIZE = 4096
_cache: "OrderedDict[tuple, Union[VideoIndex, str]]" = OrderedDict()  # key -> index, or reason it is broken
_cache_lock = threading.Lock()


def probe_cache_dir() -> Optional[str]:
    """Folder of the on-disk probe cache: ``$HF_VIDTOK_PROBE_CACHE``, else ``hf_vidtok_probes`` in the
    ``datasets`` cache (``$HF_DATASETS_CACHE`` or ``$HF_HOME/datasets``); None when turned off."""
    value = os.environ.get(PROBE_CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off", "false", "no", "none") else os.path.expanduser(value)
    base = os.environ.get("HF_DATASETS_CACHE")
    if not base:
        from huggingface_hub import constants

        base = os.path.join(constants.HF_HOME, "datasets")
    return os.path.join(os.path.expanduser(base), "hf_vidtok_probes")


def _file_key(path: Union[str, VideoSource]) -> Optional[tuple]:
    """``(identity, size, version)`` of a video for the probe cache (version None: not cached on disk)."""
    if isinstance(path, VideoSource):
        return path.cache_key
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), int(st.st_size), int(st.st_mtime_ns))


def _runs(values: np.ndarray) -> list:
    """``[first, [[step, count], ...]]``: an arithmetic run (constant frame rate) takes one pair."""
    values = np.asarray(values, dtype=np.int64)
    steps = np.diff(values)
    runs: list = []
    for step in steps.tolist():
        if runs and runs[-1][0] == step:
            runs[-1][1] += 1
        else:
            runs.append([step, 1])
    return [int(values[0]), runs]


def _from_runs(obj) -> np.ndarray:
    first, runs = obj
    steps = [np.full(count, step, dtype=np.int64) for step, count in runs]
    return np.concatenate([[first], *steps]).astype(np.int64).cumsum() if steps else np.asarray([first], np.int64)


def _sidecar_path(key: tuple) -> Optional[str]:
    folder = probe_cache_dir()
    if folder is None or key[2] is None:
        return None
    digest = hashlib.blake2b(f"{_PROBE_VERSION}\0{key[0]}\0{key[1]}\0{key[2]}".encode(), digest_size=16).hexdigest()
    return os.path.join(folder, digest[:2], digest + ".json")


def _encode(key: tuple, value: Union[VideoIndex, str]) -> dict:
    record = {"version": _PROBE_VERSION, "path": key[0], "size": key[1], "mtime_ns": key[2]}
    if isinstance(value, str):
        record["broken"] = value
        return record
    record.update(
        pts=_runs(value.pts), keyframe_pts=_runs(value.keyframe_pts),
        time_base=None if value.time_base is None else str(value.time_base), frame_rate=value.frame_rate,
        width=value.width, height=value.height, exact_seek=value.exact_seek, seekable=value.seekable,
        declared_frames=value.declared_frames, partial=value.partial,
    )
    return record


def _decode_record(record: dict, key: tuple, path: str) -> Union[VideoIndex, str, None]:
    if [record.get("version"), record.get("path"), record.get("size"), record.get("mtime_ns")] != [_PROBE_VERSION, *key]:
        return None  # another file (hash collision) or another version
    if "broken" in record:
        return str(record["broken"])
    tb = record["time_base"]
    return VideoIndex(
        path=path, pts=_from_runs(record["pts"]), keyframe_pts=_from_runs(record["keyframe_pts"]),
        time_base=None if tb is None else Fraction(tb), frame_rate=float(record["frame_rate"]),
        width=int(record["width"]), height=int(record["height"]), exact_seek=bool(record["exact_seek"]),
        seekable=bool(record["seekable"]), declared_frames=int(record["declared_frames"]), partial=str(record["partial"]),
    )


def _load(key: tuple, path: str) -> Union[VideoIndex, str, None]:
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
    if hit is None:
        sidecar = _sidecar_path(key)
        if sidecar is None or not os.path.isfile(sidecar):
            return None
        try:
            with open(sidecar, encoding="utf-8") as f:
                hit = _decode_record(json.load(f), key, path)
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.debug("ignoring unreadable probe cache file %s (%s)", sidecar, e)
            return None
        if hit is None:
            return None
        _remember(key, hit)
    if isinstance(hit, VideoIndex) and hit.path != path:
        hit = dataclasses.replace(hit, path=path)  # the same file reached by another name
    return hit


def _remember(key: tuple, value: Union[VideoIndex, str]) -> None:
    with _cache_lock:
        _cache[key] = value
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def _store(key: tuple, value: Union[VideoIndex, str]) -> None:
    """Keep ``value`` in process and write it (atomically) to the disk cache when there is one."""
    _remember(key, value)
    sidecar = _sidecar_path(key)
    if sidecar is None:
        return
    try:
        os.makedirs(os.path.dirname(sidecar), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(sidecar), suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_encode(key, value), f)
        os.replace(tmp, sidecar)
    except OSError as e:  # a read-only or full disk: the in-process cache still works
        logger.debug("could not write the probe cache file %s (%s)", sidecar, e)


def _cached_probe(path: Union[str, VideoSource]) -> VideoIndex:
    key = _file_key(path)
    if key is None:
        return probe_video(path, use_cache=False)  # raises the right BrokenVideoError
    hit = _load(key, _name(path))
    if isinstance(hit, str):
        raise BrokenVideoError(_name(path), hit)
    if hit is not None:
        return hit
    try:
        index = probe_video(path, use_cache=False)
    except BrokenVideoError as e:
        _store(key, e.reason)
        raise
    _store(key, index)
    return index


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

    ``path``: a local path, the bytes of a video file or a :class:`VideoSource` (``.path`` is then its name).
    ``num_threads``: FFmpeg decoding threads (0 lets FFmpeg choose; 1, the default, suits
    DataLoader workers). ``len(video)`` is the number of frames that decode. Use as a context
    manager, or call :meth:`close`.
    """

    def __init__(self, path: VideoLike, *, num_threads: int = 1):
        self.source = _as_source(path)
        self.path = _name(self.source)
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
            raise ValueError(f"num_threads must be an int >= 0, got {num_threads!r}")
        self.num_threads = num_threads
        self.index = _cached_probe(self.source)
        self._container = None

    @classmethod
    def _from_index(cls, index: VideoIndex, src: Union[str, VideoSource, None] = None) -> "VideoFile":
        """A single-threaded reader over ``index`` as given (no probe, no cache) of ``src`` (default ``index.path``)."""
        video = cls.__new__(cls)
        video.source = index.path if src is None else src
        video.path, video.num_threads, video.index, video._container = index.path, 1, index, None
        return video

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
            self._container = _open(self.source)
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
                    self._update_index(_index_by_decoding(self.index, self.source))
                    if self.index.num_frames < n:  # fewer frames decode than the index listed: pad
                        idx = np.minimum(idx, self.index.num_frames - 1)
                        wanted = sorted(set(int(i) for i in idx))
                    if self.index.exact_seek and self.index.seekable:
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
        for frame in _decode(container, stream):
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
        return None  # the decoder ended before the last wanted frame although the index lists it

    def _read_sequential(self, wanted: list) -> dict:
        container, stream = self._reopen()
        targets = set(wanted)
        last = wanted[-1]
        out: dict = {}
        pos = -1
        for pos, frame in enumerate(_decode(container, stream)):
            if pos in targets:
                out[pos] = frame.to_ndarray(format="rgb24")
            if pos >= last:
                break
        if pos < 0:
            raise BrokenVideoError(self.path, "no decodable frames")
        if pos < last:
            raise BrokenVideoError(self.path, f"only {pos + 1} of {self.index.num_frames} indexed frames decode")
        return out

    def _update_index(self, index: VideoIndex) -> None:
        self.index = index
        key = _file_key(self.source)
        if key is not None:
            _store(key, index)

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
    path: VideoLike,
    num_frames: int,
    *,
    frame_stride: int = 1,
    fps: Optional[float] = None,
    start: Optional[int] = None,
    rng: RngLike = None,
    num_threads: int = 1,
) -> np.ndarray:
    """Read a clip of ``num_frames`` frames from ``path`` (a local path, the bytes of a video file or a
    :class:`VideoSource`) as uint8 ``(num_frames, H, W, 3)`` RGB.

    ``frame_stride`` takes every n-th frame; ``fps`` resamples to that frame rate (``None``: native
    frames); ``start`` is the first source frame (``None``: uniformly random from ``rng``, an int
    seed or ``numpy.random.Generator``), among the frames that decode. Clips running past the end
    repeat the last frame. Seeks to the clip; frame ``i`` is exactly the ``i``-th frame of a full
    decode. Raises :class:`BrokenVideoError` (a ``ValueError``) for files that cannot give a clip.
    ``num_threads``: FFmpeg decoding threads (0: FFmpeg's choice).
    """
    with VideoFile(path, num_threads=num_threads) as video:
        return video.read_clip(num_frames, frame_stride=frame_stride, fps=fps, start=start, rng=rng)[1]
