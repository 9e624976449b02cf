"""``datasets`` builder that turns video files into fixed-size training clips, and its entry point.

``VideoClips`` is a ``datasets.GeneratorBasedBuilder`` shipped in the package (no loading script),
with configs ``folder``, ``ucf101`` and ``csv`` (video files, see :mod:`hf_vidtok.data.layouts`) and
``webdataset`` and ``parquet`` (videos stored as bytes in shards, see :mod:`hf_vidtok.data.shards`). The data
may lie in a local folder, a Hub dataset repo or behind any fsspec URL (:mod:`hf_vidtok.data.locations`):
remote files are read as seekable remote files and shards streamed, nothing is downloaded whole. Each example:

* ``video``: uint8 ``(num_frames, resolution, resolution, 3)`` (short-side resize + center crop),
* ``label``: ``ClassLabel`` (-1 when the layout gives none), ``path``: the source file (absolute),
* ``key``: the file's dataset key (its path relative to the dataset root: the same wherever the data lies),
* ``start_frame``: index of the clip's first source frame (``caption`` too for the ``csv`` and shard layouts).

Clip starts are drawn from ``numpy.random.default_rng([seed, hash(file key)])``, where the key is the
file's path relative to the dataset root (see :class:`~hf_vidtok.data.VideoEntry`), never its absolute
path: a seed gives the same clips in map-style and streaming mode, on any number of workers or
nodes, and wherever the data (or the output folder) lies: the same videos in a local folder, a Hub repo,
webdataset shards or Parquet bytes give the same clips. In streaming mode every video file (or every shard file
of the shard layouts) is a shard of the dataset.

A file is read as far as it decodes (see :mod:`hf_vidtok.data.video_reader`): files whose header
declares other frame counts than what decodes give clips from the decodable frames and are counted
as *partial*. Only files with no usable video (empty, not a video, no video stream, nothing decodes,
fewer frames than ``min_frames``) are skipped, with one WARNING each on the ``hf_vidtok.data``
logger. When an iteration (or a worker's share of it) ends, the counts of files read, partial and
skipped are logged. A video in a shard counts as a file, named ``<shard>#<member>``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Optional

import numpy as np

try:
    import datasets
    from datasets.iterable_dataset import ExamplesIterable
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "hf_vidtok.data's dataset builder needs `datasets`: `pip install hf_vidtok[train]`."
    ) from e

from .layouts import LAYOUTS, SHARD_LAYOUTS, canonical_split, list_videos
from .shards import ShardEntry, iter_shard_videos, list_shards, shard_label
from .transforms import resize_crop_uint8
from .video_reader import BrokenVideoError, VideoFile
from .video_source import VideoSource

__all__ = ["VideoClipsConfig", "VideoClips", "VideoFileCounts", "count_video_files", "files_of_process", "load_video_dataset"]

logger = logging.getLogger("hf_vidtok.data")

# Bump when the bytes a given config produces change (cache directories include it).
_FORMAT_VERSION = "2"


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _positive_int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class VideoFileCounts:
    """Files the builder read in this process while :func:`count_video_files` was active: ``skipped`` and
    ``partial`` map a file's path to the reason (a file read twice, e.g. by a resumed stream, counts once)."""

    def __init__(self):
        self.skipped: dict[str, str] = {}
        self.partial: dict[str, str] = {}

    def to_dict(self) -> dict:
        return {"skipped": dict(sorted(self.skipped.items())), "partial": dict(sorted(self.partial.items()))}

    def update(self, state: Optional[dict]) -> None:
        """Add the files of a saved :meth:`to_dict` (a resumed run continues counting)."""
        for name in ("skipped", "partial"):
            getattr(self, name).update((state or {}).get(name) or {})


_ACTIVE_COUNTS: list = []
#: Folders (``os.pathsep``-separated) where processes started inside ``count_video_files(worker_processes=True)``
#: append what they skip; the environment carries it into DataLoader workers (fork or spawn).
COUNTS_DIR_ENV = "HF_VIDTOK_VIDEO_COUNTS_DIR"


def _share_count(kind: str, path: str, reason: str) -> None:
    for folder in filter(None, os.environ.get(COUNTS_DIR_ENV, "").split(os.pathsep)):
        try:
            with open(os.path.join(folder, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps([kind, path, reason]) + "\n")
        except OSError as e:  # the collecting block has ended (its folder is gone): nothing to add to
            logger.debug("could not share a %s video count in %s (%s)", kind, folder, e)


@contextlib.contextmanager
def count_video_files(*, worker_processes: bool = False):
    """Record, while the block runs, every video file the builder skips or reads only partly in this process
    (``with count_video_files() as counts: for ex in ds: ...``; then ``counts.skipped`` / ``counts.partial``).
    The builder also logs them, but a long run must be able to store its counts (score tables, token datasets).
    With ``worker_processes=True`` the files skipped in DataLoader worker processes started inside the block
    count too (they are added when the block ends); otherwise workers keep their own counts."""
    counts = VideoFileCounts()
    _ACTIVE_COUNTS.append(counts)
    shared = tempfile.mkdtemp(prefix="hf_vidtok_counts_") if worker_processes else None
    old = os.environ.get(COUNTS_DIR_ENV)
    if shared:
        os.environ[COUNTS_DIR_ENV] = shared if not old else old + os.pathsep + shared
    try:
        yield counts
    finally:
        _ACTIVE_COUNTS.remove(counts)
        if shared:
            if old is None:
                os.environ.pop(COUNTS_DIR_ENV, None)
            else:
                os.environ[COUNTS_DIR_ENV] = old
            for name in sorted(os.listdir(shared)):
                with open(os.path.join(shared, name), encoding="utf-8") as f:
                    for line in f:
                        kind, path, reason = json.loads(line)
                        getattr(counts, kind)[path] = reason
            shutil.rmtree(shared, ignore_errors=True)


class FileStats:
    """Counts the files of one pass: skipped ones (one WARNING each), partial ones, and a summary."""

    def __init__(self, split: Optional[str] = None):
        self.split = split
        self.files = 0
        self.skipped: list = []
        self.partial: list = []

    def skip(self, path: str, reason: str) -> None:
        self.skipped.append((path, reason))
        for counts in _ACTIVE_COUNTS:
            counts.skipped[path] = reason
        _share_count("skipped", path, reason)
        logger.warning("Skipping video file %r: %s", path, reason)

    def add_partial(self, path: str, reason: str) -> None:
        self.partial.append((path, reason))
        for counts in _ACTIVE_COUNTS:
            counts.partial[path] = reason
        _share_count("partial", path, reason)

    def report(self) -> None:
        where = f" of split {self.split!r}" if self.split else ""
        partial = (
            f" ({len(self.partial)} partial: fewer frames decode than their headers declare)" if self.partial else ""
        )
        if self.skipped and self.files > 1:  # for a single file its own warning says it all
            logger.warning(
                "Skipped %d of %d video files%s (each reported above); %d files gave clips%s.",
                len(self.skipped), self.files, where, self.files - len(self.skipped), partial,
            )
        else:
            logger.info(
                "Read %d video files%s: %d skipped, %d partial.", self.files, where, len(self.skipped), len(self.partial)
            )


class _VideoExamplesIterable(ExamplesIterable):
    """ExamplesIterable that logs the skip summary when an iteration over its files ends."""

    @classmethod
    def _wrap(cls, it: ExamplesIterable) -> "_VideoExamplesIterable":
        return cls(it.generate_examples_fn, it.kwargs, it.generate_more_kwargs_fn, it.sleep_on_threads_shutdown)

    def __iter__(self):
        stats = FileStats(self.kwargs.get("split"))
        inner = copy.copy(self)  # shares the live state dict, so checkpointing keeps working
        inner.generate_examples_fn = functools.partial(self.generate_examples_fn, stats=stats)
        yield from ExamplesIterable.__iter__(inner)
        stats.report()

    def shuffle_data_sources(self, generator):
        return self._wrap(super().shuffle_data_sources(generator))

    def shard_data_sources(self, num_shards, index, contiguous=True):
        return self._wrap(super().shard_data_sources(num_shards, index, contiguous=contiguous))

    def reshard_data_sources(self):
        return self._wrap(super().reshard_data_sources())


@dataclass
class VideoClipsConfig(datasets.BuilderConfig):
    """Config of :class:`VideoClips`; ``name`` is the layout (``folder``, ``ucf101`` or ``csv``).

    ``data_dir``: dataset root (or CSV file(s) for ``csv``); ``split``: build only this split
    (None: all); ``num_frames``/``frame_stride``/``fps``: clip sampling (see
    :func:`~hf_vidtok.data.read_video_clip`); ``resolution``: output side; ``clips_per_video``: clips
    drawn per file; ``seed``: clip sampling seed; ``min_frames``: files with fewer frames that
    decode are skipped as too short (None: ``max(1, num_frames // 2)``; shorter clips are padded by
    repeating the last frame); ``fold``/``split_dir``: UCF-101 split files; ``video_root``: base of
    relative paths; ``extensions``: video file suffixes for ``folder``; ``decode_threads``: FFmpeg
    threads per file; ``shuffle_files``: permute the file order with ``seed`` (a shuffle with
    no example buffer, so a stream's ``state_dict`` resumes exactly); ``storage_options``: fsspec options for
    remote data; ``class_names``: the classes of a shard layout (default: its dataset card, else its labels).
    """

    split: Optional[str] = None
    num_frames: int = 16
    resolution: int = 128
    frame_stride: int = 1
    fps: Optional[float] = None
    clips_per_video: int = 1
    seed: int = 0
    min_frames: Optional[int] = None
    fold: int = 1
    split_dir: Optional[str] = None
    video_root: Optional[str] = None
    extensions: Optional[tuple] = None
    decode_threads: int = 1
    shuffle_files: bool = False
    storage_options: Optional[dict] = None
    class_names: Optional[tuple] = None

    def __post_init__(self):
        super().__post_init__()
        self.validate()

    def validate(self) -> None:
        """Check every field (``datasets`` sets overrides after ``__post_init__``, so the builder re-runs this)."""
        if self.name not in LAYOUTS:
            raise ValueError(f"layout (config name) must be one of {LAYOUTS}, got {self.name!r}")
        for field_name in ("num_frames", "resolution", "frame_stride", "clips_per_video"):
            _positive_int(field_name, getattr(self, field_name))
        if self.min_frames is not None:
            _positive_int("min_frames", self.min_frames)
        if self.fps is not None and (isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or self.fps <= 0):
            raise ValueError(f"fps must be None or a positive number, got {self.fps!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        if isinstance(self.decode_threads, bool) or not isinstance(self.decode_threads, int) or self.decode_threads < 0:
            raise ValueError(f"decode_threads must be an int >= 0, got {self.decode_threads!r}")
        if self.split is not None:
            self.split = canonical_split(self.split)
        if self.storage_options is not None and not isinstance(self.storage_options, dict):
            raise TypeError(
                f"storage_options must be a dict of fsspec options, got {type(self.storage_options).__name__}"
            )
        if self.class_names is not None and self.name not in SHARD_LAYOUTS:
            raise ValueError(f"class_names is for the shard layouts {SHARD_LAYOUTS}; the {self.name} layout takes the "
                             "classes from its folders or CSV")

    @property
    def effective_min_frames(self) -> int:
        return self.min_frames if self.min_frames is not None else max(1, self.num_frames // 2)


class VideoClips(datasets.GeneratorBasedBuilder):
    """Videos -> clips (see the module docstring). Configs: ``folder``, ``ucf101``, ``csv``, ``webdataset``, ``parquet``.

    Example: ``VideoClips(config_name="folder", data_dir=d, num_frames=16).as_streaming_dataset("train")``;
    most users call :func:`load_video_dataset`.
    """

    BUILDER_CONFIG_CLASS = VideoClipsConfig
    BUILDER_CONFIGS = [VideoClipsConfig(name=layout) for layout in LAYOUTS]
    DEFAULT_CONFIG_NAME = "folder"
    DEFAULT_WRITER_BATCH_SIZE = 8  # a clip is ~0.8 MB at 16x128x128: keep Arrow write batches small
    VERSION = datasets.Version("1.0.0")

    def _listing(self):
        if getattr(self, "_cached_listing", None) is None:
            cfg = self.config
            if cfg.data_dir is None:
                raise ValueError("VideoClips needs data_dir (a directory, or CSV file(s) for the csv layout)")
            if cfg.name in SHARD_LAYOUTS:
                self._cached_listing = list_shards(
                    cfg.name, cfg.data_dir, split=cfg.split, storage_options=cfg.storage_options,
                    class_names=None if cfg.class_names is None else list(cfg.class_names),
                )
            else:
                self._cached_listing = list_videos(
                    cfg.name, cfg.data_dir, split=cfg.split, fold=cfg.fold, split_dir=cfg.split_dir,
                    video_root=cfg.video_root, extensions=cfg.extensions, storage_options=cfg.storage_options,
                )
        return self._cached_listing

    def _info(self) -> datasets.DatasetInfo:
        cfg = self.config
        cfg.validate()
        listing = self._listing()
        feats = {
            "video": datasets.Array4D(shape=(cfg.num_frames, cfg.resolution, cfg.resolution, 3), dtype="uint8"),
            "label": datasets.ClassLabel(names=list(listing.class_names)),
            "path": datasets.Value("string"),
            "key": datasets.Value("string"),
            "start_frame": datasets.Value("int32"),
        }
        if cfg.name == "csv" or cfg.name in SHARD_LAYOUTS:
            feats["caption"] = datasets.Value("string")
        return datasets.DatasetInfo(
            description=f"Video clips ({cfg.name} layout) read with PyAV by hf_vidtok.data.",
            features=datasets.Features(feats),
        )

    def _split_generators(self, dl_manager):
        listing = self._listing()
        wanted = [self.config.split] if self.config.split else list(listing.splits)
        gens = []
        for split in wanted:
            if split not in listing.splits:
                raise ValueError(
                    f"split {split!r} is not available in {self.config.data_dir!r} "
                    f"({self.config.name} layout); available: {sorted(listing.splits)}"
                )
            entries = listing.splits[split]
            if not entries:
                raise ValueError(f"split {split!r} of {self.config.data_dir!r} lists no video files")
            entries = list(entries)
            if self.config.shuffle_files:
                order = np.random.default_rng([self.config.seed, _stable_hash(split)]).permutation(len(entries))
                entries = [entries[i] for i in order]
            gens.append(datasets.SplitGenerator(name=split, gen_kwargs={"entries": entries, "split": split}))
        return gens

    def _get_examples_iterable_for_split(self, split_generator):
        return _VideoExamplesIterable(
            self._generate_examples,
            split_generator.gen_kwargs,
            generate_more_kwargs_fn=getattr(self, "_generate_more_gen_kwargs", None),
        )

    def _read_clips(self, source, key: str) -> tuple:
        """``([(start_frame, uint8 video)] for all clips of one video, partial reason)``; raises for a
        video without a clip. Starts are drawn among the frames that decode, seeded by the video's ``key``.
        ``source``: a local path or a :class:`~hf_vidtok.data.VideoSource`."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, _stable_hash(key)])
        with VideoFile(source, num_threads=cfg.decode_threads) as video:
            n = len(video)  # the frames that decode
            if n < cfg.effective_min_frames:
                raise BrokenVideoError(
                    video.path, f"too short: {n} frame(s), fewer than min_frames={cfg.effective_min_frames}"
                )
            partial = video.index.partial
            clip_idx = [
                video.clip_indices(cfg.num_frames, frame_stride=cfg.frame_stride, fps=cfg.fps, rng=rng)
                for _ in range(cfg.clips_per_video)
            ]
            frames = video.read_frames(np.concatenate(clip_idx))  # one decoding pass for all clips
        out = []
        for c, idx in enumerate(clip_idx):
            clip = frames[c * cfg.num_frames : (c + 1) * cfg.num_frames]
            out.append((int(idx[0]), resize_crop_uint8(clip, cfg.resolution)))
        return out, partial

    def _videos(self, entries):
        """``(source, path, key, label, caption, problem)`` for every video of ``entries`` (files or shards);
        ``source`` is a local path, a :class:`~hf_vidtok.data.VideoSource`, or a callable making one."""
        cfg = self.config
        class_names = None
        for entry in entries:
            if isinstance(entry, ShardEntry):
                if class_names is None:
                    class_names = list(self._listing().class_names)
                for v in iter_shard_videos(entry, cfg.storage_options):
                    source = None if v.data is None else VideoSource.from_bytes(v.data, name=v.name)
                    yield source, v.name, v.key, shard_label(v.labels, class_names), v.caption, v.problem
            elif "://" in entry.path or "::" in entry.path:  # a remote file, read through a seekable remote file
                # without a size from the listing, VideoSource.from_url asks for it (inside the caller's try)
                source = functools.partial(VideoSource.from_url, entry.path, size=entry.size, version=entry.version,
                                           storage_options=cfg.storage_options)
                yield source, entry.path, entry.key, entry.label, entry.caption, None
            else:
                yield entry.path, entry.path, entry.key, entry.label, entry.caption, None

    def _generate_examples(self, entries, split=None, stats: Optional[FileStats] = None):
        own_stats = stats is None
        if own_stats:
            stats = FileStats(split)
        with_caption = self.config.name == "csv" or self.config.name in SHARD_LAYOUTS
        for source, path, key, label, caption, problem in self._videos(entries):
            stats.files += 1
            if problem is not None:
                stats.skip(path, problem)
                continue
            try:
                clips, partial = self._read_clips(source() if callable(source) else source, key)
            except BrokenVideoError as e:
                stats.skip(path, e.reason)
                continue
            except Exception as e:  # noqa: BLE001 - a bad file must never stop a run
                stats.skip(path, f"unreadable ({type(e).__name__}: {e})")
                continue
            if partial:
                stats.add_partial(path, partial)
            for c, (start, video) in enumerate(clips):
                example = {"video": video, "label": label, "path": path, "key": key, "start_frame": start}
                if with_caption:
                    example["caption"] = caption
                yield f"{key}#{c}", example
        if own_stats:
            stats.report()


def files_of_process(ds, process_index: int, num_processes: int):
    """The part of a streaming clip dataset that one of ``num_processes`` processes reads: whole shards (a video
    file, or a tar / Parquet file of the shard layouts), every ``num_processes``-th one, so no clip is read twice
    and a file's clips stay together (unlike ``datasets.distributed.split_dataset_by_node``, which makes every
    process read every file when the file count is not a multiple of the process count). ``ValueError`` when
    there are fewer shards than processes."""
    if num_processes == 1:
        return ds
    if ds.num_shards < num_processes:
        raise ValueError(
            f"{ds.num_shards} shards (video files, or tar / Parquet files) cannot be shared by {num_processes} "
            "processes: use fewer processes, or pack the videos into more shards"
        )
    return ds.shard(num_shards=num_processes, index=process_index, contiguous=False)


def _fingerprint(listing, layout: str) -> str:
    """Hash of the file list (paths, labels, sizes, mtimes or remote versions): a changed dataset gets a new cache."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{_FORMAT_VERSION}|{layout}|{listing.class_names}".encode())
    for split in sorted(listing.splits):
        for e in listing.splits[split]:
            if getattr(e, "size", None) is not None:  # remote files and shards: what their listing gave
                meta = f"{e.size}:{e.version}"
            else:
                try:
                    st = os.stat(e.path)
                    meta = f"{st.st_size}:{st.st_mtime_ns}"
                except OSError:
                    meta = "missing"
            h.update(f"{split}|{e.path}|{getattr(e, 'label', '')}|{e.key}|{getattr(e, 'caption', '')}|{meta}\n".encode())
    return h.hexdigest()


def load_video_dataset(
    data_dir,
    *,
    layout: str = "folder",
    split: str = "train",
    num_frames: int = 16,
    resolution: int = 128,
    frame_stride: int = 1,
    fps: Optional[float] = None,
    clips_per_video: int = 1,
    streaming: bool = False,
    seed: int = 0,
    shuffle: bool = False,
    shuffle_buffer_size: Optional[int] = None,
    min_frames: Optional[int] = None,
    fold: int = 1,
    split_dir=None,
    video_root=None,
    extensions=None,
    decode_threads: int = 1,
    cache_dir=None,
    num_proc: Optional[int] = None,
    storage_options: Optional[dict] = None,
    class_names=None,
):
    """Load video clips from ``data_dir`` as a ``datasets.Dataset`` (or ``IterableDataset``).

    Examples hold ``video`` (uint8 ``(num_frames, resolution, resolution, 3)``), ``label``
    (``ClassLabel``), ``path``, ``key`` (the path relative to the dataset root, which seeds the clip
    starts) and ``start_frame`` (plus ``caption`` for ``layout="csv"``).
    ``data_dir``: a local folder or file, a Hub dataset repo id (``owner/name``), an ``hf://datasets/...`` path
    or any fsspec URL (``storage_options`` go to fsspec; ``filecache::`` before the URL keeps a local copy of what
    is read), see :mod:`hf_vidtok.data.locations`.
    ``layout``: ``"folder"``, ``"ucf101"`` or ``"csv"`` (video files, see :mod:`hf_vidtok.data.layouts`),
    ``"webdataset"`` (``.tar`` shards) or ``"parquet"`` (a column of video bytes), see
    :mod:`hf_vidtok.data.shards` (``class_names``: their classes when no dataset card names them);
    ``split``: ``"train"``, ``"validation"``/``"val"`` or ``"test"`` (UCF-101's validation is its
    test list). ``streaming=True`` decodes on the fly (no Arrow cache; one shard per video file or shard file,
    so :func:`files_of_process` and DataLoader workers share them without duplicates);
    otherwise clips are decoded once into an Arrow cache in ``cache_dir`` (``num_proc`` processes)
    and returned with the numpy format for ``video``. ``shuffle`` shuffles with ``seed``: map-style
    rows, or in streaming mode the file order plus, when ``shuffle_buffer_size`` is set, a buffer
    of that many clips (``datasets`` drops the buffered clips when a stream resumes from its
    ``state_dict``; without a buffer the resume is exact). The same ``seed`` gives the same clips
    in both modes. See :class:`VideoClipsConfig` for the other arguments.
    Raises ``ValueError`` up front for a wrong layout/split, a missing directory or split file, or
    a CSV without a ``path`` column.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    split = canonical_split(split)
    if layout == "ucf101" and split == "validation":
        split = "test"  # UCF-101 has train/test lists only; LARP validates on testlist01
    if shuffle_buffer_size is not None:
        shuffle_buffer_size = _positive_int("shuffle_buffer_size", shuffle_buffer_size)
    if num_proc is not None:
        _positive_int("num_proc", num_proc)
    if extensions is not None:
        extensions = tuple([extensions] if isinstance(extensions, str) else extensions)
    if class_names is not None:
        if isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names):
            raise TypeError("class_names must be a list of str")
        class_names = tuple(class_names)
        if layout not in SHARD_LAYOUTS:
            raise ValueError(f"class_names is for the shard layouts {SHARD_LAYOUTS}, not the {layout} layout")
    if layout in SHARD_LAYOUTS:
        listing = list_shards(layout, data_dir, split=split, storage_options=storage_options,
                              class_names=None if class_names is None else list(class_names))
    else:
        listing = list_videos(
            layout, data_dir, split=split, fold=fold, split_dir=split_dir, video_root=video_root,
            extensions=extensions, storage_options=storage_options,
        )
    if split not in listing.splits:
        raise ValueError(
            f"split {split!r} is not available in {os.fspath(data_dir)!r} ({layout} layout); "
            f"available: {sorted(listing.splits)}"
        )
    if not listing.splits[split]:
        raise ValueError(f"split {split!r} of {os.fspath(data_dir)!r} lists no video files")
    builder = VideoClips(
        config_name=layout,
        cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        hash=_fingerprint(listing, layout),
        data_dir=os.fspath(data_dir),
        split=split,
        num_frames=num_frames,
        resolution=resolution,
        frame_stride=frame_stride,
        fps=None if fps is None else float(fps),
        clips_per_video=clips_per_video,
        seed=seed,
        min_frames=min_frames,
        fold=fold,
        split_dir=None if split_dir is None else os.fspath(split_dir),
        video_root=None if video_root is None else os.fspath(video_root),
        extensions=extensions,
        decode_threads=decode_threads,
        shuffle_files=bool(shuffle and streaming),
        storage_options=storage_options,
        class_names=class_names,
    )
    builder._cached_listing = listing
    if streaming:
        ds = builder.as_streaming_dataset(split=split)
        if shuffle and shuffle_buffer_size is not None and shuffle_buffer_size > 1:
            ds = ds.shuffle(seed=seed, buffer_size=shuffle_buffer_size)
        return ds
    builder.download_and_prepare(num_proc=num_proc)
    ds = builder.as_dataset(split=split)
    ds = ds.with_format("numpy", columns=["video"], output_all_columns=True, dtype=np.uint8)
    if shuffle:
        ds = ds.shuffle(seed=seed)
    return ds
