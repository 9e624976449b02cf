"""hf_vidtok.data: PyAV clip reading, torch transforms, a ``datasets`` builder and collation.

Data flow: video file (local, remote, or bytes from a shard) --``read_video_clip``--> uint8 ``(T, H, W, 3)``
--transforms--> float ``(C, T, H, W)`` in [0, 1] --``collate_video_clips``--> ``pixel_values (B, C, T, H, W)``.
``load_video_dataset`` wraps the ``VideoClips`` builder (``folder``, ``ucf101``, ``csv`` layouts of video files;
``webdataset`` and ``parquet`` shards of video bytes, :mod:`.shards`), local or remote (Hub dataset repos, ``hf://``
and other fsspec URLs, :mod:`.locations`); ``pack_videos`` writes such shards (``hf-vidtok pack``).
Warnings about skipped files go to the ``hf_vidtok.data`` logger. The builder needs ``datasets``
and reading needs ``av`` (``pip install hf_vidtok[train]``); both are imported only when used.
"""

from .collate import collate_video_clips
from .layouts import LAYOUTS, VideoEntry, VideoListing, canonical_split, list_videos
from .sample_videos import SAMPLE_VIDEO_NAMES, sample_videos
from .transforms import (
    VideoClipTransform,
    center_crop,
    random_flip_clips,
    random_horizontal_flip,
    repeat_to_num_frames,
    resize_crop_uint8,
    resize_short_side,
    resized_shape,
    to_float_clip,
)
from .video_source import VideoSource
from .video_reader import (
    VIDEO_EXTENSIONS,
    BrokenVideoError,
    VideoFile,
    VideoIndex,
    clip_frame_indices,
    probe_cache_dir,
    probe_video,
    read_video_clip,
)

from .clip_stream import ShardedClipStream, hf_shard_reader

_BUILDER_NAMES = ("VideoClips", "VideoClipsConfig", "VideoFileCounts", "count_video_files", "files_of_process",
                  "load_video_dataset")
_LAZY = {name: "builder" for name in _BUILDER_NAMES} | {
    "ShardEntry": "shards", "ShardVideo": "shards", "iter_shard_videos": "shards", "list_shards": "shards",
    "pack_videos": "packing", "DataLocation": "locations", "resolve_location": "locations",
    "is_remote_location": "locations",
}


def __getattr__(name):  # PEP 562: import the datasets / fsspec / pyarrow based modules only when they are used
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BrokenVideoError",
    "DataLocation",
    "LAYOUTS",
    "SAMPLE_VIDEO_NAMES",
    "ShardEntry",
    "ShardVideo",
    "ShardedClipStream",
    "VIDEO_EXTENSIONS",
    "VideoClipTransform",
    "VideoClips",
    "VideoClipsConfig",
    "VideoEntry",
    "VideoFile",
    "VideoFileCounts",
    "VideoIndex",
    "VideoListing",
    "VideoSource",
    "canonical_split",
    "center_crop",
    "clip_frame_indices",
    "collate_video_clips",
    "count_video_files",
    "files_of_process",
    "hf_shard_reader",
    "is_remote_location",
    "iter_shard_videos",
    "list_shards",
    "list_videos",
    "load_video_dataset",
    "pack_videos",
    "probe_cache_dir",
    "probe_video",
    "random_flip_clips",
    "random_horizontal_flip",
    "repeat_to_num_frames",
    "read_video_clip",
    "resize_crop_uint8",
    "resize_short_side",
    "resized_shape",
    "resolve_location",
    "sample_videos",
    "to_float_clip",
]
