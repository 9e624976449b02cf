"""The EVATok stage-2 score table: per clip, the proxy tokenizer's quality under every candidate assignment.

Storage: Parquet shards under ``<dir>/data/`` that ``datasets.load_dataset("parquet", data_files=...)``
reads. One row per clip:

* ``key`` (string): unique clip id (``<relative video path>#<clip index>``),
* ``label`` (int64): the clip's class label, -1 if none; ``start_frame`` (int64),
* ``mse`` / ``ssim`` / ``lpips``: fixed-size float32 lists of length A = m^T in class order
  (:mod:`hf_vidtok.evatok.assignments`); ``lpips`` is null when no VGG weights were given.

Schema metadata (bytes keys): ``levels`` (JSON list), ``num_blocks``, ``quality_metric`` (the metric the
labels use by default) and ``hf_vidtok`` (JSON with free-form run information).

:class:`ScoreTableWriter` writes one process's shards atomically (temporary file + ``os.replace``) and a JSON
completion record per shard (rows, keys digest, stream position), so a killed run resumes without losing or
repeating a clip. :func:`load_score_table` reads a file, a folder or a Hub dataset repo into numpy arrays.

``pyarrow`` / ``huggingface_hub`` are imported inside the functions that need them.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from .assignments import candidate_assignments, normalize_levels

__all__ = ["METRICS", "QUALITY_METRICS", "SCORE_TABLE_INFO", "ScoreTable", "ScoreTableWriter", "load_score_table", "score_table_schema"]

METRICS = ("mse", "ssim", "lpips")
QUALITY_METRICS = ("lpips", "mse", "ssim")
DATA_DIR = "data"
RECORDS_DIR = "progress"
#: The table's summary written by ``score_assignments.py`` beside ``data/``: run settings, the tokenizer's
#: fingerprint and the video files that were skipped or read partly (``files``).
SCORE_TABLE_INFO = "score_table.json"
_SHARD = "scores-r{rank:05d}-{index:05d}"


def _check_metric(quality_metric: str) -> str:
    if quality_metric not in QUALITY_METRICS:
        raise ValueError(f"`quality_metric` must be one of {QUALITY_METRICS}, got {quality_metric!r}")
    return quality_metric


def score_table_schema(levels, num_blocks: int, quality_metric: str = "lpips", extra: Optional[dict] = None):
    """The ``pyarrow.Schema`` of a score table (see the module docstring)."""
    import pyarrow as pa

    levels = normalize_levels(levels)
    num_classes = int(candidate_assignments(levels, num_blocks).shape[0])
    scores = pa.list_(pa.float32(), num_classes)
    fields = [
        pa.field("key", pa.string(), nullable=False),
        pa.field("label", pa.int64(), nullable=False),
        pa.field("start_frame", pa.int64(), nullable=False),
        pa.field("mse", scores, nullable=False),
        pa.field("ssim", scores, nullable=False),
        pa.field("lpips", scores, nullable=True),
    ]
    meta = {
        "levels": json.dumps(list(levels)),
        "num_blocks": str(int(num_blocks)),
        "quality_metric": _check_metric(quality_metric),
        "hf_vidtok": json.dumps(extra or {}, sort_keys=True),
    }
    return pa.schema(fields, metadata=meta)


def _atomic_write_json(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _keys_digest(keys: Sequence[str]) -> str:
    return hashlib.blake2b("\n".join(keys).encode("utf-8"), digest_size=16).hexdigest()


def _shard_files(root: str) -> list:
    return sorted(glob.glob(os.path.join(root, DATA_DIR, "*.parquet")))


class ScoreTableWriter:
    """Appends scored clips of one process (``rank``) and writes them as Parquet shards of ``rows_per_shard``.

    A shard only appears (atomically) when complete, followed by its completion record
    ``progress/<shard>.json`` holding ``num_rows``, a digest of its keys, ``world_size`` and the caller's
    ``state`` (e.g. the data stream's ``state_dict()`` after the shard's last clip). Rows not yet flushed are
    lost by a kill and simply re-scored on resume; stale temporary files are removed by :meth:`cleanup`.
    ``extra_metadata`` (JSON-able dict) is stored in the schema; its ``resume_keys`` (the settings that decide which
    clips are scored) must equal those of a table already in ``output_dir``, else ``ValueError``: a rerun with other
    clips must not continue, and silently keep, the old table.
    """

    def __init__(
        self,
        output_dir,
        levels,
        num_blocks: int,
        quality_metric: str = "lpips",
        *,
        rank: int = 0,
        world_size: int = 1,
        rows_per_shard: int = 256,
        extra_metadata: Optional[dict] = None,
        resume_keys: Sequence[str] = (),
    ):
        import pyarrow as pa  # noqa: F401  (fail early without the dependency)

        if isinstance(rows_per_shard, bool) or not isinstance(rows_per_shard, int) or rows_per_shard < 1:
            raise ValueError(f"`rows_per_shard` must be a positive int, got {rows_per_shard!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"`rank` must be in [0, world_size={world_size}), got {rank}")
        self.output_dir = os.fspath(output_dir)
        self.levels = normalize_levels(levels)
        self.num_blocks = int(num_blocks)
        self.num_classes = len(self.levels) ** self.num_blocks
        self.schema = score_table_schema(self.levels, self.num_blocks, quality_metric, extra_metadata)
        self.extra_metadata, self.resume_keys = dict(extra_metadata or {}), tuple(resume_keys)
        unknown = [k for k in self.resume_keys if k not in self.extra_metadata]
        if unknown:
            raise ValueError(f"`resume_keys` {unknown} are not keys of `extra_metadata`")
        self.rank, self.world_size, self.rows_per_shard = rank, world_size, rows_per_shard
        os.makedirs(os.path.join(self.output_dir, DATA_DIR), exist_ok=True)
        os.makedirs(os.path.join(self.output_dir, RECORDS_DIR), exist_ok=True)
        self._check_existing_schema()
        self._rows: dict = {name: [] for name in ("key", "label", "start_frame", *METRICS)}
        self._next_index = 1 + max(
            [int(os.path.basename(p).split("-")[2].split(".")[0]) for p in self._own_shards()], default=-1
        )

    # ---- resume helpers -------------------------------------------------------------------------
    def _own_shards(self) -> list:
        return sorted(glob.glob(os.path.join(self.output_dir, DATA_DIR, f"scores-r{self.rank:05d}-*.parquet")))

    def _check_existing_schema(self) -> None:
        import pyarrow.parquet as pq

        for path in _shard_files(self.output_dir)[:1]:
            meta = pq.read_schema(path).metadata or {}
            for k in (b"levels", b"num_blocks", b"quality_metric"):
                if meta.get(k) != self.schema.metadata[k]:
                    raise ValueError(
                        f"{self.output_dir!r} already holds a score table with {k.decode()}="
                        f"{meta.get(k, b'?').decode()}, not {self.schema.metadata[k].decode()}: use another output_dir"
                    )
            # a resumed run must draw the same clips: settings that change them cannot continue an old table
            old = json.loads((meta.get(b"hf_vidtok") or b"{}").decode())
            changed = {k: (old[k], self.extra_metadata[k]) for k in self.resume_keys
                       if k in old and old[k] != self.extra_metadata[k]}
            if changed:
                detail = ", ".join(f"{k}={a!r} there, {b!r} now" for k, (a, b) in changed.items())
                raise ValueError(
                    f"{self.output_dir!r} already holds a score table made with other settings ({detail}): "
                    "use another output_dir (or remove that one) to score with the new settings or tokenizer"
                )

    def cleanup(self) -> None:
        """Remove this rank's temporary files left by a killed run (call before writing)."""
        for sub in (DATA_DIR, RECORDS_DIR):
            for p in glob.glob(os.path.join(self.output_dir, sub, f"scores-r{self.rank:05d}-*.tmp-*")):
                os.remove(p)

    def completed_keys(self) -> set:
        """Keys of every complete shard in ``output_dir`` (all ranks): the clips a resumed run must skip."""
        import pyarrow.parquet as pq

        keys: set = set()
        for path in _shard_files(self.output_dir):
            keys.update(pq.read_table(path, columns=["key"]).column("key").to_pylist())
        return keys

    def last_state(self) -> Optional[Any]:
        """The ``state`` of this rank's newest completion record written with the same ``world_size``."""
        for path in sorted(self._own_shards(), reverse=True):
            name = os.path.splitext(os.path.basename(path))[0]
            rec_path = os.path.join(self.output_dir, RECORDS_DIR, name + ".json")
            if os.path.exists(rec_path):
                with open(rec_path, encoding="utf-8") as f:
                    rec = json.load(f)
                return rec.get("state") if rec.get("world_size") == self.world_size else None
        return None

    # ---- writing --------------------------------------------------------------------------------
    @property
    def num_pending(self) -> int:
        return len(self._rows["key"])

    def add(self, keys, labels, start_frames, mse, ssim, lpips=None, state: Optional[Any] = None) -> list:
        """Append a batch: ``keys`` (B,) str, ``labels``/``start_frames`` (B,) ints, metrics (B, A) arrays/tensors
        (``lpips`` None when not computed). Flushes full shards; returns the paths written (maybe none).
        ``state`` is stored in the completion record of a shard that this call completes."""
        keys = [str(k) for k in keys]
        b = len(keys)
        arrays = {}
        for name, value in (("mse", mse), ("ssim", ssim), ("lpips", lpips)):
            if value is None:
                if name != "lpips":
                    raise ValueError(f"`{name}` scores are required")
                arrays[name] = [None] * b
                continue
            arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float32)
            if arr.shape != (b, self.num_classes):
                raise ValueError(f"`{name}` must have shape ({b}, {self.num_classes}), got {arr.shape}")
            arrays[name] = list(arr)
        labels, start_frames = [int(v) for v in labels], [int(v) for v in start_frames]
        if len(labels) != b or len(start_frames) != b:
            raise ValueError(f"`labels` and `start_frames` must have {b} entries like `keys`")
        self._rows["key"] += keys
        self._rows["label"] += labels
        self._rows["start_frame"] += start_frames
        for name in METRICS:
            self._rows[name] += arrays[name]
        written = []
        if self.num_pending >= self.rows_per_shard:
            written.append(self.flush(state))
        return written

    def flush(self, state: Optional[Any] = None) -> Optional[str]:
        """Write all pending rows as one shard (+ completion record); returns its path (None if nothing pending)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.num_pending:
            return None
        cols = []
        for f in self.schema:
            values = self._rows[f.name]
            if f.name in METRICS:
                if all(v is None for v in values):
                    cols.append(pa.nulls(len(values), type=f.type))
                    continue
                if any(v is None for v in values):
                    raise ValueError(f"`{f.name}` given for some clips of a shard but not for others")
                flat = pa.array(np.stack(values).reshape(-1), type=pa.float32())
                cols.append(pa.FixedSizeListArray.from_arrays(flat, self.num_classes))
            else:
                cols.append(pa.array(values, type=f.type))
        table = pa.Table.from_arrays(cols, schema=self.schema)
        name = _SHARD.format(rank=self.rank, index=self._next_index)
        path = os.path.join(self.output_dir, DATA_DIR, name + ".parquet")
        tmp = f"{path}.tmp-{os.getpid()}"
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        record = {
            "shard": name,
            "num_rows": table.num_rows,
            "keys_digest": _keys_digest(self._rows["key"]),
            "rank": self.rank,
            "world_size": self.world_size,
            "state": state,
        }
        _atomic_write_json(os.path.join(self.output_dir, RECORDS_DIR, name + ".json"), record)
        self._next_index += 1
        self._rows = {k: [] for k in self._rows}
        return path


@dataclass
class ScoreTable:
    """A loaded score table (rows sorted by ``keys``): metrics are float32 ``(N, A)`` numpy arrays in class order."""

    keys: np.ndarray
    labels: np.ndarray
    start_frames: np.ndarray
    mse: np.ndarray
    ssim: np.ndarray
    lpips: Optional[np.ndarray]
    levels: tuple
    num_blocks: int
    quality_metric: str = "lpips"
    metadata: dict = field(default_factory=dict)

    @property
    def num_clips(self) -> int:
        return int(self.keys.shape[0])

    @property
    def num_assignments(self) -> int:
        return len(self.levels) ** self.num_blocks

    @property
    def assignments(self) -> np.ndarray:
        """(A, T) int64 token counts in class order."""
        return candidate_assignments(self.levels, self.num_blocks).numpy()

    @property
    def lengths(self) -> np.ndarray:
        """(A,) int64 total token counts."""
        return self.assignments.sum(axis=1)

    @property
    def psnr(self) -> np.ndarray:
        """(N, A) float64 clip PSNR in dB for [0, 1] videos, from the clip's mean MSE (per-video convention)."""
        return -10.0 * np.log10(np.maximum(self.mse.astype(np.float64), 1e-30))

    def metric(self, name: Optional[str] = None) -> np.ndarray:
        """(N, A) values of ``name`` (``lpips``/``mse``/``ssim``/``psnr``; default: ``quality_metric``)."""
        name = name or self.quality_metric
        if name == "psnr":
            return self.psnr
        if name not in METRICS:
            raise ValueError(f"`name` must be one of {METRICS + ('psnr',)}, got {name!r}")
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"this score table has no {name!r} scores (scored without VGG weights)")
        return value


def _resolve_files(path_or_repo_id, revision=None, token=None) -> tuple[list, Optional[str]]:
    """The Parquet files of a table and its folder (None for a single file)."""
    path = os.fspath(path_or_repo_id)
    if os.path.isfile(path):
        return [path], None
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True))
        if not files:
            raise ValueError(f"`path_or_repo_id` {path!r} is a folder without .parquet files")
        return files, path
    if path.count("/") != 1 or path.startswith((".", "/")):
        raise ValueError(f"`path_or_repo_id` {path!r} is neither an existing file/folder nor a Hub repo id 'owner/name'")
    from huggingface_hub import snapshot_download

    local = snapshot_download(path, repo_type="dataset", revision=revision, token=token,
                              allow_patterns=["*.parquet", SCORE_TABLE_INFO])
    return _resolve_files(local)


def load_score_table(path_or_repo_id, *, revision: Optional[str] = None, token=None) -> ScoreTable:
    """Read a score table from a Parquet file, a folder of shards or a Hub dataset repo id.

    Raises ``ValueError`` when shards disagree on levels / blocks / metric or a clip key appears twice.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    files, folder = _resolve_files(path_or_repo_id, revision=revision, token=token)
    tables, meta = [], None
    for path in files:
        t = pq.read_table(path)
        m = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items() if k.decode() in
             ("levels", "num_blocks", "quality_metric", "hf_vidtok")}
        for k in ("levels", "num_blocks", "quality_metric"):
            if k not in m:
                raise ValueError(f"{path!r} is not an hf_vidtok score table (no {k!r} in its schema metadata)")
        if meta is None:
            meta = m
        elif any(m[k] != meta[k] for k in ("levels", "num_blocks", "quality_metric")):
            raise ValueError(f"score-table shards disagree: {path!r} has {m}, the first shard {meta}")
        tables.append(t.replace_schema_metadata(None))
    table = pa.concat_tables(tables)
    levels = normalize_levels(json.loads(meta["levels"]))
    num_blocks = int(meta["num_blocks"])
    num_classes = len(levels) ** num_blocks
    keys = np.asarray(table.column("key").to_pylist(), dtype=object)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    if keys.size > 1 and (keys[1:] == keys[:-1]).any():
        dup = keys[1:][keys[1:] == keys[:-1]][:3].tolist()
        raise ValueError(f"score table lists clips more than once (e.g. {dup})")

    def _scores(name):
        col = table.column(name)
        if col.null_count == len(col):
            return None
        if col.null_count:
            raise ValueError(f"column {name!r} is null for some clips only")
        flat = col.combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return np.ascontiguousarray(flat.reshape(-1, num_classes)[order], dtype=np.float32)

    return ScoreTable(
        keys=keys,
        labels=table.column("label").to_numpy()[order].astype(np.int64),
        start_frames=table.column("start_frame").to_numpy()[order].astype(np.int64),
        mse=_scores("mse"),
        ssim=_scores("ssim"),
        lpips=_scores("lpips"),
        levels=levels,
        num_blocks=num_blocks,
        quality_metric=meta["quality_metric"],
        metadata=_metadata(meta, folder),
    )


def _metadata(schema_meta: dict, folder: Optional[str]) -> dict:
    """The run information of the schema, plus the file counts of the folder's ``score_table.json``."""
    metadata = json.loads(schema_meta.get("hf_vidtok") or "{}")
    info_path = None if folder is None else os.path.join(folder, SCORE_TABLE_INFO)
    if info_path is not None and os.path.isfile(info_path):
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
        if "files" in info:
            metadata["files"] = info["files"]
    return metadata
