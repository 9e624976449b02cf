"""A resumable stream of collated clip batches over a sharded dataset (one shard = one video file, or one tar /
Parquet file of videos).

:class:`ShardedClipStream` deals the shards of each epoch to every (process, DataLoader worker) and
records, per consumed batch, exactly where it stands, so a training run resumes with the next unseen
batch (no data replayed, no file re-read). :func:`hf_shard_reader` adapts a ``datasets`` streaming
dataset (``hf_vidtok.data.load_video_dataset``) to it. ``torch.utils.data.IterableDataset`` plus
``datasets``' ``shard`` cannot do this alone: their ``state_dict`` does not cover the per-process
dealing, worker round-robin and the bad-file bookkeeping the trainers report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

__all__ = ["ShardedClipStream", "hf_shard_reader"]

logger = logging.getLogger(__name__)


class _CountedShard:
    """The examples of one shard; once exhausted, ``skipped`` names the videos the builder skipped in it.

    Iterated with ``IterableDataset.iter(batch_size=1)``, not ``iter(dataset)``: inside a DataLoader worker
    ``datasets`` would split the (one-shard) dataset again among the workers, and every worker but the first
    would get nothing. The stream has already dealt this shard to this worker."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.skipped: list[str] | None = None

    def __iter__(self) -> Iterator[dict]:
        from .builder import count_video_files

        with count_video_files() as counts:
            if hasattr(self.dataset, "iter"):
                for batch in self.dataset.iter(batch_size=1):
                    yield {name: values[0] for name, values in batch.items()}
            else:  # a map-style Dataset: no worker splitting
                yield from self.dataset
        self.skipped = sorted(counts.skipped)


def hf_shard_reader(make_dataset: Callable[[int], Any]) -> Callable[[int, int, int], Iterable[dict]]:
    """Adapt a ``datasets`` (streaming) dataset to :class:`ShardedClipStream`.

    ``make_dataset(epoch)`` returns an ``IterableDataset`` (or ``Dataset``) whose shards are files (video files,
    or tar / Parquet shards); the returned reader iterates shard ``index`` of ``num_shards`` for that epoch and,
    once exhausted, names in ``.skipped`` the videos of the shard the builder skipped (unreadable, too short). The
    per-epoch dataset is cached, so ``make_dataset`` runs once per epoch and worker.
    """
    cache: dict[int, Any] = {}

    def read(shard_index: int, num_shards: int, epoch: int) -> Iterable[dict]:
        if epoch not in cache:
            cache.clear()
            cache[epoch] = make_dataset(epoch)
        return _CountedShard(cache[epoch].shard(num_shards=num_shards, index=shard_index, contiguous=True))

    return read


class ShardedClipStream(torch.utils.data.IterableDataset):
    """Endless, resumable stream of collated batches from a dataset made of shards (one shard = one file).

    Each epoch the shards are permuted (seeded by ``seed`` and the epoch) and dealt round-robin to
    ``num_processes * num_workers`` logical streams (rank fastest), so within an epoch every shard is read
    by exactly one (process, DataLoader worker) and no clip is duplicated. Each stream batches its own
    examples (``collate_fn``) and moves to its next epoch on its own, so processes never wait for each
    other's data. A stream whose whole epoch yields no example stops (its files are all bad).

    Every batch carries ``batch["stream_state"]``; pass it to :meth:`mark_consumed` when the batch is
    used. :meth:`state_dict` (gathered over processes when ``gather_fn`` is given) records, per stream,
    the epoch, the shard position, the number of examples read from that shard and what was skipped
    (:attr:`skipped_files`: the videos a shard's reader reports as skipped, see :func:`hf_shard_reader`, and
    the shards that gave no example without such a report), plus which logical
    worker comes next, so after :meth:`load_state_dict` a new DataLoader continues exactly with the next
    unseen batch without re-reading earlier files (use ``DataLoader(stream, batch_size=None,
    num_workers=stream.num_workers, generator=torch.Generator())``).

    ``read_shard(shard_index, num_shards, epoch)`` returns an iterable of examples, which may name the videos
    it skipped in a ``skipped`` attribute once exhausted (see :func:`hf_shard_reader`).
    """

    def __init__(
        self,
        read_shard: Callable[[int, int, int], Iterable[dict]],
        num_shards: int,
        *,
        batch_size: int,
        collate_fn: Callable[[list[dict]], dict],
        process_index: int = 0,
        num_processes: int = 1,
        num_workers: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        gather_fn: Callable[[Any], list] | None = None,
    ):
        super().__init__()
        if num_shards <= 0:
            raise ValueError("the training dataset is empty: it holds no video files (0 shards)")
        if num_shards < num_processes:
            raise ValueError(
                f"the training dataset has {num_shards} files but {num_processes} processes; each process needs at "
                "least one file"
            )
        if batch_size <= 0:
            raise ValueError(f"`train_batch_size` must be positive, got {batch_size}")
        self.read_shard = read_shard
        self.num_shards = int(num_shards)
        self.batch_size = int(batch_size)
        self.collate_fn = collate_fn
        self.process_index = int(process_index)
        self.num_processes = int(num_processes)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.gather_fn = gather_fn
        self._positions: dict[int, dict[str, int]] = {}
        self._next_logical_worker = 0
        self.examples_consumed = 0

    @property
    def _workers(self) -> int:
        return max(1, self.num_workers)

    def stream_id(self, logical_worker: int) -> int:
        return logical_worker * self.num_processes + self.process_index

    def shards_for(self, stream: int, epoch: int) -> list[int]:
        """The shard indices (in reading order) that ``stream`` reads in ``epoch``."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.num_shards, generator=g).tolist()
        else:
            order = list(range(self.num_shards))
        return order[stream :: self.num_processes * self._workers]

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        physical = 0 if info is None else info.id
        if info is not None and info.num_workers != self._workers:
            raise ValueError(
                f"ShardedClipStream was built for {self._workers} workers but the DataLoader has {info.num_workers}"
            )
        logical = (physical + self._next_logical_worker) % self._workers
        stream = self.stream_id(logical)
        pos = self._positions.get(stream, {"epoch": 0, "shard_pos": 0, "offset": 0, "bad_shards": [], "bad_files": []})
        epoch, shard_pos, offset = pos["epoch"], pos["shard_pos"], pos["offset"]
        bad = set(pos.get("bad_shards", []))
        bad_files = set(pos.get("bad_files", []))
        buffer: list[dict] = []
        while True:
            shards = self.shards_for(stream, epoch)
            if not shards:
                return
            read = 0  # examples read in this pass over the epoch, including those skipped as already consumed
            for j in range(shard_pos, len(shards)):
                k = 0
                reading = self.read_shard(shards[j], self.num_shards, epoch)
                for example in reading:
                    k += 1
                    read += 1
                    if k <= offset:
                        continue
                    buffer.append(example)
                    if len(buffer) == self.batch_size:
                        batch = self.collate_fn(buffer)
                        buffer = []
                        batch["stream_state"] = {
                            "stream": stream,
                            "logical_worker": logical,
                            "epoch": epoch,
                            "shard_pos": j,
                            "offset": k,
                            "bad_shards": sorted(bad),
                            "bad_files": sorted(bad_files),
                        }
                        yield batch
                reported = getattr(reading, "skipped", None)
                if reported is not None:
                    bad_files.update(reported)
                elif k == 0:
                    bad.add(shards[j])
                offset = 0
            # a whole epoch without a single readable example (a resumed epoch whose remaining examples were
            # all consumed before the checkpoint read some: it just moves on to the next epoch)
            if read == 0 and shard_pos == 0:
                logger.error(
                    "data stream %d (process %d) read %d files in epoch %d and got no clip; it stops",
                    stream, self.process_index, len(shards), epoch,
                )
                return
            epoch, shard_pos = epoch + 1, 0

    def mark_consumed(self, state: dict[str, int], batch_size: int | None = None) -> None:
        """Record that the batch carrying ``state`` (its ``stream_state``) was used for training."""
        stream = int(state["stream"])
        self._positions[stream] = {
            "epoch": int(state["epoch"]),
            "shard_pos": int(state["shard_pos"]),
            "offset": int(state["offset"]),
            "bad_shards": [int(b) for b in state.get("bad_shards", [])],
            "bad_files": [str(b) for b in state.get("bad_files", [])],
        }
        self._next_logical_worker = (int(state["logical_worker"]) + 1) % self._workers
        self.examples_consumed += int(batch_size or self.batch_size)

    def files_per_epoch(self, epoch: int = 0) -> int:
        """How many files (shards) this process reads in ``epoch`` (all its DataLoader workers together)."""
        return sum(len(self.shards_for(self.stream_id(w), epoch)) for w in range(self._workers))

    @property
    def epoch(self) -> int:
        """The smallest epoch any of this process's streams is in."""
        return min((p["epoch"] for p in self._positions.values()), default=0)

    @property
    def skipped_files(self) -> int:
        """Distinct videos of this process's consumed stream that were skipped (named by the shard reader), plus the
        shards that yielded no clip without naming what they skipped."""
        shards = {b for p in self._positions.values() for b in p.get("bad_shards", [])}
        return len(shards) + len({b for p in self._positions.values() for b in p.get("bad_files", [])})

    def local_state_dict(self) -> dict[str, Any]:
        return {
            "positions": {int(k): dict(v) for k, v in self._positions.items()},
            "next_logical_worker": self._next_logical_worker,
            "examples_consumed": self.examples_consumed,
            "num_processes": self.num_processes,
            "num_workers": self._workers,
            "num_shards": self.num_shards,
            "seed": self.seed,
        }

    def state_dict(self) -> dict[str, Any]:
        local = self.local_state_dict()
        per_process = self.gather_fn(local) if self.gather_fn is not None else [local]
        return {"per_process": per_process}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        per_process = state["per_process"]
        mine = per_process[self.process_index] if self.process_index < len(per_process) else None
        layout_same = (
            mine is not None
            and len(per_process) == self.num_processes
            and mine["num_workers"] == self._workers
            and mine["num_shards"] == self.num_shards
            and mine["seed"] == self.seed
        )
        if layout_same:
            self._positions = {int(k): dict(v) for k, v in mine["positions"].items()}
            self._next_logical_worker = int(mine["next_logical_worker"])
            self.examples_consumed = int(mine["examples_consumed"])
            return
        # Different number of processes / workers / files: restart at the next epoch boundary.
        epochs = [p["epoch"] for proc in per_process for p in proc["positions"].values()]
        next_epoch = (max(epochs) + 1) if epochs else 0
        logger.warning(
            "the data layout changed since the checkpoint (processes, workers, files or seed); the stream restarts "
            "at epoch %d",
            next_epoch,
        )
        self._positions = {
            self.stream_id(w): {"epoch": next_epoch, "shard_pos": 0, "offset": 0, "bad_shards": [], "bad_files": []}
            for w in range(self._workers)
        }
        self._next_logical_worker = 0
