"""What every hf_vidtok training script shares: accelerator setup, atomic checkpoints with pruning and
exact resume, the LARP learning-rate schedule, per-group LR multipliers, EMA, a resumable sharded clip
stream, YAML recipes merged with command-line flags, and validation helpers.

Optional dependencies (``accelerate``, ``yaml``, ``av``) are imported inside the functions that need
them; install them with ``pip install hf_vidtok[train]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "require_train_extra",
    "load_yaml_config",
    "parse_args_with_config",
    "check_output_dir_writable",
    "setup_accelerator",
    "larp_lr_multiplier",
    "get_lr_scheduler",
    "LR_SCHEDULERS",
    "build_param_groups",
    "ExponentialMovingAverage",
    "TrainingProgress",
    "ShardedClipStream",
    "hf_shard_reader",
    "CHECKPOINT_PREFIX",
    "LATEST_POINTER",
    "list_checkpoints",
    "save_checkpoint",
    "prune_checkpoints",
    "resolve_resume_checkpoint",
    "clean_partial_checkpoints",
    "evaluate_reconstruction",
    "save_side_by_side_video",
    "write_json_atomic",
    "random_flip_clips",
    "gather_object_list",
    "setup_training_logging",
    "run_training",
]

logger = logging.getLogger("hf_vidtok.training")

CHECKPOINT_PREFIX = "checkpoint-"
LATEST_POINTER = "latest"
_COMPLETE_MARKER = "checkpoint_complete.json"
_TMP_PREFIX = ".tmp-checkpoint-"
_OLD_PREFIX = ".old-checkpoint-"


def require_train_extra(module: str):
    """Import an optional training dependency or raise an ImportError naming the pip extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"`{module}` is needed for training; install it with `pip install hf_vidtok[train]`"
        ) from err


# ----------------------------------------------------------------------------------------------- config


def load_yaml_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML recipe into a flat ``dict`` (keys = flag names without ``--``, dashes allowed)."""
    yaml = require_train_extra("yaml")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"`--config`: file {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"`--config`: {path!r} must hold a mapping of flag names to values, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def parse_args_with_config(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    config_flag: str = "config",
    dict_keys: Sequence[str] = (),
) -> argparse.Namespace:
    """Parse ``argv`` with a YAML recipe given by ``--config``: the file's values replace the parser's
    defaults and flags given on the command line override the file. Keys that are not flags of
    ``parser`` (except ``dict_keys``, which are kept as nested mappings) raise ``ValueError``."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument(f"--{config_flag}", default=None)
    known, _ = pre.parse_known_args(argv)
    path = getattr(known, config_flag)
    extras: dict[str, Any] = {key: None for key in dict_keys}
    if path is not None:
        values = load_yaml_config(path)
        dests = {a.dest for a in parser._actions}
        unknown = sorted(k for k in values if k not in dests and k not in dict_keys)
        if unknown:
            raise ValueError(f"`--config` {path!r}: unknown keys {unknown}; valid keys are the script's flags")
        for key in dict_keys:
            if key in values:
                if values[key] is not None and not isinstance(values[key], dict):
                    raise ValueError(f"`--config` {path!r}: `{key}` must be a mapping")
                extras[key] = values.pop(key)
        # Store choices/type-converted values through the parser so YAML and CLI behave alike.
        for action in parser._actions:
            if action.dest in values and action.type is not None and isinstance(values[action.dest], str):
                values[action.dest] = action.type(values[action.dest])
            if action.dest in values and action.choices is not None and values[action.dest] not in action.choices:
                raise ValueError(
                    f"`--config` {path!r}: `{action.dest}` must be one of {list(action.choices)}, got {values[action.dest]!r}"
                )
        parser.set_defaults(**values)
    args = parser.parse_args(argv)
    for key, value in extras.items():
        setattr(args, key, value)
    return args


def check_output_dir_writable(path: str | os.PathLike) -> str:
    """Create ``path`` if needed and check a file can be written there; raise ``ValueError`` otherwise."""
    path = os.path.abspath(os.fspath(path))
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise ValueError(f"`--output_dir` {path!r} is not writable: {err}") from err
    return path


# ------------------------------------------------------------------------------------------ accelerator


def setup_accelerator(
    output_dir: str,
    *,
    gradient_accumulation_steps: int = 1,
    mixed_precision: str | None = None,
    report_to: str | None = None,
    logging_dir: str | None = None,
    cpu: bool = False,
    find_unused_parameters: bool = False,
    dynamo_backend: str | None = None,
):
    """Build an ``accelerate.Accelerator`` writing to ``output_dir``, with explicit (non-automatic)
    checkpoint naming (this module names, prunes and publishes checkpoints itself).

    Multi-process CPU trap (stack.md §4): ``accelerate launch --multi_gpu --num_processes 2`` on a
    machine without GPUs starts 2 processes that each believe they are alone (``DistributedType.NO``),
    so gradients are silently never synchronised. When the launcher's ``WORLD_SIZE`` > 1 and no GPU is
    visible this function asks accelerate for CPU (gloo) mode, and it raises if accelerate still sees
    fewer processes than were launched. (``accelerate launch --cpu --num_processes 2`` starts only ONE
    process and cannot be detected from inside; use ``ACCELERATE_USE_CPU=1 accelerate launch
    --multi_gpu --num_processes 2`` instead.)
    """
    accelerate = require_train_extra("accelerate")
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not torch.cuda.is_available():
        cpu = True
    if report_to in (None, "", "none"):
        report_to = None
    project_config = ProjectConfiguration(
        project_dir=output_dir,
        logging_dir=logging_dir or os.path.join(output_dir, "logs"),
        automatic_checkpoint_naming=False,
    )
    accelerator = accelerate.Accelerator(
        gradient_accumulation_steps=gradient_accumulation_steps,
        mixed_precision=None if mixed_precision in (None, "", "no") else mixed_precision,
        log_with=report_to,
        project_config=project_config,
        cpu=cpu,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
        dynamo_backend=dynamo_backend or "no",
    )
    if world_size > 1 and accelerator.num_processes != world_size:
        raise RuntimeError(
            f"{world_size} processes were launched but accelerate sees {accelerator.num_processes} "
            f"(distributed type {accelerator.distributed_type}); gradients would not be synchronised. On CPU use "
            "`ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N ...`."
        )
    return accelerator


# ------------------------------------------------------------------------------------------ LR schedule


def larp_lr_multiplier(step: int, warmup_steps: int, max_steps: int, min_lr_mult: float = 0.0) -> float:
    """The official LARP ``cosine`` schedule (larp.md §4), stepwise, with ``step`` the 1-based global step.

    ``m + (1 - m) * step / W`` for ``step <= W``, else ``m + (1 - m) * (1 + cos(pi * (step - W) / (S - W))) / 2``
    with ``W = warmup_steps``, ``S = max_steps`` and ``m = min_lr_mult``. Beyond ``S`` it stays at ``m``.
    """
    m = float(min_lr_mult)
    if warmup_steps > 0 and step <= warmup_steps:
        return m + (1.0 - m) * step / warmup_steps
    if max_steps <= warmup_steps:
        return 1.0
    progress = min(max(step - warmup_steps, 0) / (max_steps - warmup_steps), 1.0)
    return m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _linear_multiplier(step, warmup_steps, max_steps, min_lr_mult):
    if warmup_steps > 0 and step <= warmup_steps:
        return min_lr_mult + (1.0 - min_lr_mult) * step / warmup_steps
    if max_steps <= warmup_steps:
        return 1.0
    progress = min(max(step - warmup_steps, 0) / (max_steps - warmup_steps), 1.0)
    return 1.0 - (1.0 - min_lr_mult) * progress


def _constant_with_warmup_multiplier(step, warmup_steps, max_steps, min_lr_mult):
    if warmup_steps > 0 and step <= warmup_steps:
        return min_lr_mult + (1.0 - min_lr_mult) * step / warmup_steps
    return 1.0


LR_SCHEDULERS: dict[str, Callable[[int, int, int, float], float]] = {
    "cosine": larp_lr_multiplier,
    "linear": _linear_multiplier,
    "constant_with_warmup": _constant_with_warmup_multiplier,
    "constant": lambda step, warmup_steps, max_steps, min_lr_mult: 1.0,
}


def get_lr_scheduler(
    name: str, optimizer: torch.optim.Optimizer, warmup_steps: int, max_steps: int, min_lr_mult: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` whose k-th ``step()`` sets every group's lr to ``group_base_lr * f(k + 1)``.

    The offset makes the first optimizer step use the multiplier of global step 1, as the official
    trainer (which increments ``global_step`` before each step). Each param group keeps its own base lr,
    so per-group multipliers (see :func:`build_param_groups`) stay in effect. Step it once per optimizer
    update, not through ``accelerator.prepare`` (which would step it once per process).
    """
    if name not in LR_SCHEDULERS:
        raise ValueError(f"`lr_scheduler` must be one of {sorted(LR_SCHEDULERS)}, got {name!r}")
    if warmup_steps < 0 or max_steps <= 0:
        raise ValueError(f"`lr_warmup_steps` must be >= 0 and `max_train_steps` > 0, got {warmup_steps}, {max_steps}")
    if not 0.0 <= min_lr_mult <= 1.0:
        raise ValueError(f"`min_lr_mult` must be in [0, 1], got {min_lr_mult}")
    fn = LR_SCHEDULERS[name]
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: fn(k + 1, warmup_steps, max_steps, min_lr_mult)
    )


def build_param_groups(
    model: nn.Module,
    learning_rate: float,
    *,
    prior_lr_mult: float = 1.0,
    codebook_lr_mult: float = 1.0,
    prior_prefixes: Sequence[str] = ("prior", "prior_model"),
    codebook_pattern: str = r"(quantizer|regularizer)\.embedding\.weight$",
    weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """Split trainable parameters into ``[main, prior, codebook]`` groups with lrs
    ``learning_rate * {1, prior_lr_mult, codebook_lr_mult}`` (empty groups are dropped). Prior parameters
    are those under a top-level module named in ``prior_prefixes``; codebook ones match
    ``codebook_pattern`` (the official ``emb_lr_mult`` group).

    Why ``prior_lr_mult`` defaults to 1.0: the official trainer builds a prior group at 50x the lr but
    its per-step schedule then overwrites every group's lr with the base lr (larp.md §4, §9.2), so the
    released model's prior was effectively trained at 1x. 1.0 reproduces that; other values now really
    apply because :func:`get_lr_scheduler` scales each group's own base lr.
    """
    if learning_rate <= 0:
        raise ValueError(f"`learning_rate` must be > 0, got {learning_rate}")
    for name, value in (("prior_lr_mult", prior_lr_mult), ("codebook_lr_mult", codebook_lr_mult)):
        if value <= 0:
            raise ValueError(f"`{name}` must be > 0, got {value}")
    codebook_re = re.compile(codebook_pattern)
    main, prior, codebook = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.split(".")[0] in prior_prefixes:
            prior.append(param)
        elif codebook_re.search(name):
            codebook.append(param)
        else:
            main.append(param)
    groups = [
        {"params": main, "lr": learning_rate, "name": "main", "weight_decay": weight_decay},
        {"params": prior, "lr": learning_rate * prior_lr_mult, "name": "prior", "weight_decay": weight_decay},
        {"params": codebook, "lr": learning_rate * codebook_lr_mult, "name": "codebook", "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


# ------------------------------------------------------------------------------------------------- EMA


class ExponentialMovingAverage:
    """EMA of a model's floating-point parameters (float32 shadow copies), checkpointable.

    ``update(model)`` after each optimizer step: ``shadow = decay_t * shadow + (1 - decay_t) * param`` with
    ``decay_t = min(decay, (1 + n) / (10 + n))`` when ``warmup`` (n = number of updates so far), else
    ``decay``. ``copy_to(model)`` writes the averages into a model with the same parameter names.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"`ema_decay` must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.shadow = {
            n: p.detach().float().clone() for n, p in model.named_parameters() if p.dtype.is_floating_point
        }

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        for name, param in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(param.detach().float(), 1.0 - decay)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for name, param in model.named_parameters():
            if name in self.shadow:
                param.copy_(self.shadow[name].to(param.dtype))

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise ValueError(f"EMA state lacks parameters {sorted(missing)[:5]}...")
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
        for name, value in state["shadow"].items():
            if name in self.shadow:
                self.shadow[name].copy_(value)


class TrainingProgress:
    """Loop counters kept in checkpoints: ``global_step`` (optimizer updates done), ``initial_psnr``,
    the validation history and any extra scalars."""

    def __init__(self):
        self.global_step = 0
        self.initial_metrics: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"global_step": self.global_step, "initial_metrics": dict(self.initial_metrics), "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_step = int(state["global_step"])
        self.initial_metrics = dict(state.get("initial_metrics", {}))
        self.history = list(state.get("history", []))


# ------------------------------------------------------------------------------------------ clip stream


def hf_shard_reader(make_dataset: Callable[[int], Any]) -> Callable[[int, int, int], Iterator[dict]]:
    """Adapt a ``datasets`` (streaming) dataset to :class:`ShardedClipStream`.

    ``make_dataset(epoch)`` returns an ``IterableDataset`` (or ``Dataset``) whose shards are files; the
    returned reader iterates shard ``index`` of ``num_shards`` for that epoch. The per-epoch dataset is
    cached, so ``make_dataset`` runs once per epoch and worker.
    """
    cache: dict[int, Any] = {}

    def read(shard_index: int, num_shards: int, epoch: int) -> Iterator[dict]:
        if epoch not in cache:
            cache.clear()
            cache[epoch] = make_dataset(epoch)
        return iter(cache[epoch].shard(num_shards=num_shards, index=shard_index, contiguous=True))

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
    the epoch, the shard position, the number of examples read from that shard and the shards that
    gave no example (:attr:`skipped_files`), plus which logical
    worker comes next, so after :meth:`load_state_dict` a new DataLoader continues exactly with the next
    unseen batch without re-reading earlier files (use ``DataLoader(stream, batch_size=None,
    num_workers=stream.num_workers, generator=torch.Generator())``).

    ``read_shard(shard_index, num_shards, epoch)`` returns an iterator of examples (see
    :func:`hf_shard_reader`).
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
        pos = self._positions.get(stream, {"epoch": 0, "shard_pos": 0, "offset": 0, "bad_shards": []})
        epoch, shard_pos, offset = pos["epoch"], pos["shard_pos"], pos["offset"]
        bad = set(pos.get("bad_shards", []))
        buffer: list[dict] = []
        while True:
            shards = self.shards_for(stream, epoch)
            if not shards:
                return
            produced = 0
            for j in range(shard_pos, len(shards)):
                k = 0
                for example in self.read_shard(shards[j], self.num_shards, epoch):
                    k += 1
                    if k <= offset:
                        continue
                    produced += 1
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
                        }
                        yield batch
                if k == 0:
                    bad.add(shards[j])
                offset = 0
            if produced == 0 and shard_pos == 0:
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
        }
        self._next_logical_worker = (int(state["logical_worker"]) + 1) % self._workers
        self.examples_consumed += int(batch_size or self.batch_size)

    @property
    def epoch(self) -> int:
        """The smallest epoch any of this process's streams is in."""
        return min((p["epoch"] for p in self._positions.values()), default=0)

    @property
    def skipped_files(self) -> int:
        """Distinct files (shards) of this process's consumed stream that yielded no clip."""
        return len({b for p in self._positions.values() for b in p.get("bad_shards", [])})

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
            self.stream_id(w): {"epoch": next_epoch, "shard_pos": 0, "offset": 0, "bad_shards": []}
            for w in range(self._workers)
        }
        self._next_logical_worker = 0


# ------------------------------------------------------------------------------------------ checkpoints


def _step_of(name: str) -> int | None:
    m = re.fullmatch(re.escape(CHECKPOINT_PREFIX) + r"(\d+)", name)
    return int(m.group(1)) if m else None


def list_checkpoints(output_dir: str) -> list[tuple[int, str]]:
    """Complete checkpoints in ``output_dir`` as ``(step, path)`` sorted by step."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        step = _step_of(name)
        path = os.path.join(output_dir, name)
        if step is not None and os.path.isfile(os.path.join(path, _COMPLETE_MARKER)):
            found.append((step, path))
    return sorted(found)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platform dependent
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _fsync_tree(path: str) -> None:
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(root)


def write_json_atomic(path: str, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace`` (never a half-written file)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(directory)


def _write_latest(output_dir: str, name: str) -> None:
    tmp = os.path.join(output_dir, f".{LATEST_POINTER}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(output_dir, LATEST_POINTER))
    _fsync_dir(output_dir)


def clean_partial_checkpoints(output_dir: str) -> list[str]:
    """Remove temporary folders left by a save that was interrupted; returns what was removed."""
    removed = []
    if os.path.isdir(output_dir):
        for name in os.listdir(output_dir):
            if name.startswith((_TMP_PREFIX, _OLD_PREFIX)):
                shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)
                removed.append(name)
    return removed


def prune_checkpoints(output_dir: str, total_limit: int | None, keep: Sequence[str] = ()) -> list[str]:
    """Delete the oldest complete checkpoints so that at most ``total_limit`` remain (never one in ``keep``
    nor the one ``latest`` points at). Returns the deleted paths. Call on the main process only."""
    if total_limit is None:
        return []
    if total_limit < 1:
        raise ValueError(f"`checkpoints_total_limit` must be >= 1, got {total_limit}")
    protected = {os.path.abspath(p) for p in keep}
    latest = _read_latest(output_dir)
    if latest is not None:
        protected.add(os.path.abspath(latest))
    checkpoints = list_checkpoints(output_dir)
    removed = []
    excess = len(checkpoints) - total_limit
    for _, path in checkpoints:
        if excess <= 0:
            break
        if os.path.abspath(path) in protected:
            continue
        # Rename first so a kill mid-delete never leaves a half-deleted "complete" checkpoint.
        doomed = os.path.join(output_dir, _OLD_PREFIX + os.path.basename(path))
        os.rename(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        removed.append(path)
        excess -= 1
    if removed:
        logger.info("pruned checkpoints %s (limit %d)", [os.path.basename(p) for p in removed], total_limit)
    return removed


def save_checkpoint(accelerator, output_dir: str, step: int, total_limit: int | None = None) -> str:
    """``accelerator.save_state`` into ``output_dir/checkpoint-<step>`` atomically, then prune.

    Every process writes into a temporary folder; after a barrier the main process adds a completion
    marker, renames the folder into place and only then moves the ``latest`` pointer (a file holding the
    folder name) with ``os.replace``. A kill at any moment leaves either the previous checkpoint and
    pointer, or the new complete one. The temporary folder must be on a file system shared by all
    processes (as for any multi-node ``save_state``).
    """
    final = os.path.join(output_dir, f"{CHECKPOINT_PREFIX}{step}")
    tmp = os.path.join(output_dir, f"{_TMP_PREFIX}{step}")
    if accelerator.is_main_process:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        os.makedirs(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with open(os.path.join(tmp, _COMPLETE_MARKER), "w", encoding="utf-8") as f:
            json.dump({"step": int(step), "time": time.time(), "num_processes": accelerator.num_processes}, f)
        _fsync_tree(tmp)
        old = None
        if os.path.exists(final):  # re-saving the same step (e.g. after a resume): swap atomically
            old = os.path.join(output_dir, f"{_OLD_PREFIX}{step}")
            if os.path.exists(old):
                shutil.rmtree(old)
            os.rename(final, old)
        os.rename(tmp, final)
        _fsync_dir(output_dir)
        _write_latest(output_dir, os.path.basename(final))
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        prune_checkpoints(output_dir, total_limit, keep=[final])
        logger.info("saved checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final


def _read_latest(output_dir: str) -> str | None:
    pointer = os.path.join(output_dir, LATEST_POINTER)
    if not os.path.isfile(pointer):
        return None
    with open(pointer, encoding="utf-8") as f:
        name = f.read().strip()
    path = os.path.join(output_dir, name)
    if _step_of(name) is None or not os.path.isfile(os.path.join(path, _COMPLETE_MARKER)):
        return None
    return path


def resolve_resume_checkpoint(resume_from: str | None, output_dir: str) -> str | None:
    """The checkpoint folder to resume from, or None.

    ``"latest"``: the folder named by ``output_dir/latest`` (else the complete checkpoint with the
    highest step; None when there is none, so a first run with ``--resume_from_checkpoint latest``
    starts from scratch). A path: it must be a complete checkpoint, else ``ValueError``.
    """
    if resume_from in (None, "", "none"):
        return None
    if resume_from == "latest":
        path = _read_latest(output_dir)
        if path is None:
            found = list_checkpoints(output_dir)
            path = found[-1][1] if found else None
        return path
    path = os.path.abspath(resume_from)
    if not os.path.isdir(path):
        candidate = os.path.join(output_dir, resume_from)
        if os.path.isdir(candidate):
            path = candidate
        else:
            raise ValueError(f"`--resume_from_checkpoint` {resume_from!r} is not a folder")
    if not os.path.isfile(os.path.join(path, _COMPLETE_MARKER)):
        raise ValueError(
            f"`--resume_from_checkpoint` {resume_from!r} is not a complete checkpoint (no {_COMPLETE_MARKER})"
        )
    return path


# ------------------------------------------------------------------------------------------- validation


@torch.no_grad()
def evaluate_reconstruction(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    *,
    metrics: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]],
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    keep_first: int = 0,
) -> tuple[dict[str, float], tuple[torch.Tensor, torch.Tensor] | None]:
    """Reconstruct every clip of ``batches`` (tensors (B, C, T, H, W) in [0, 1]) with ``model`` in eval
    mode (deterministic VQ) and average each ``metrics[name](recon_clamped, clip)`` (per-video values,
    shape (B,) or a scalar batch mean) over all clips. Returns the means and, when ``keep_first`` > 0,
    the first ``keep_first`` (clip, reconstruction) pairs for visualisation. Global RNG is untouched."""
    was_training = model.training
    model.eval()
    sums = {name: 0.0 for name in metrics}
    count = 0
    kept_in, kept_out = [], []
    try:
        with torch.random.fork_rng(devices=[]):
            for clips in batches:
                clips = clips.to(device, non_blocking=True).float()
                with torch.autocast(
                    device_type=torch.device(device).type, dtype=autocast_dtype or torch.float32,
                    enabled=autocast_dtype is not None,
                ):
                    enc = model.encode(clips)
                    recon = model.decode_latents(enc.quantized) if hasattr(model, "decode_latents") else model.decode(enc.indices)
                recon = recon.float().clamp(0, 1)
                n = clips.shape[0]
                for name, fn in metrics.items():
                    value = fn(recon, clips)
                    value = value.float()
                    sums[name] += value.sum().item() if value.dim() > 0 else value.item() * n
                count += n
                if len(kept_in) < keep_first:
                    kept_in.append(clips.cpu())
                    kept_out.append(recon.cpu())
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("validation got no clips (empty validation dataset)")
    results = {name: total / count for name, total in sums.items()}
    results["num_clips"] = count
    pair = None
    if kept_in:
        pair = (torch.cat(kept_in)[:keep_first], torch.cat(kept_out)[:keep_first])
    return results, pair


def save_side_by_side_video(
    original: torch.Tensor, reconstruction: torch.Tensor, path: str, fps: int = 8, scale: int = 1
) -> str:
    """Write an mp4 whose frames show ``original`` (top) above ``reconstruction`` (bottom), clips side by
    side left to right. Inputs (B, C, T, H, W) in [0, 1]; ``scale`` repeats pixels for tiny clips."""
    from .pipelines.video_export import export_to_video

    if original.shape != reconstruction.shape or original.dim() != 5:
        raise ValueError("`original` and `reconstruction` must be (B, C, T, H, W) of equal shape")
    rows = [torch.cat(list(video.float().clamp(0, 1)), dim=-1) for video in (original, reconstruction)]  # (C, T, H, B*W)
    grid = torch.cat(rows, dim=-2)  # (C, T, 2H, B*W)
    if scale > 1:
        grid = grid.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.mp4"
    export_to_video(grid.permute(1, 2, 3, 0).cpu(), tmp, fps=fps, crf=12)  # (T, H, W, C), odd sizes padded
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------ shared by the training scripts

def random_flip_clips(pixel_values: torch.Tensor) -> torch.Tensor:
    """Flip each clip horizontally with probability 1/2 (global RNG, so checkpoints restore it); ``(B, C, T, H, W)``."""
    flip = torch.rand(pixel_values.shape[0]) < 0.5
    if not flip.any():
        return pixel_values
    mask = flip.to(pixel_values.device).view(-1, 1, 1, 1, 1)
    return torch.where(mask, pixel_values.flip(-1), pixel_values)


def gather_object_list(accelerator, obj):
    """All processes' ``obj`` as a list (``[obj]`` on one process)."""
    if accelerator.num_processes == 1:
        return [obj]
    from accelerate.utils import gather_object

    return gather_object([obj])


def setup_training_logging(accelerator):
    """One stderr handler on the ``hf_vidtok`` logger (INFO on the main process, WARNING elsewhere); the
    data builder's per-file summaries are silenced (skipped files stay visible as WARNINGs). Returns a
    function restoring the previous logger settings (main() may run inside a larger program or tests)."""
    names = ("hf_vidtok", "hf_vidtok.data", "accelerate", "datasets", "transformers")
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in names}
    root = logging.getLogger("hf_vidtok")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.propagate = False
    root.setLevel(logging.INFO if accelerator.is_main_process else logging.WARNING)
    for name in names[1:]:
        logging.getLogger(name).setLevel(logging.WARNING)

    def restore():
        root.removeHandler(handler)
        for n, (level, propagate) in saved.items():
            logging.getLogger(n).setLevel(level)
            logging.getLogger(n).propagate = propagate

    return restore


def run_training(args, train_fn: Callable[[Any, Any], Any], **accelerator_kwargs) -> Any:
    """What every training script's ``main`` does around its loop: check the output dir, set torch threads /
    TF32, build the accelerator (``--mixed_precision``, ``--report_to``, ``--compile`` ...), set up logging,
    seed every process identically, remove unfinished checkpoint folders, then ``train_fn(args, accelerator)``."""
    args.output_dir = check_output_dir_writable(args.output_dir)
    if getattr(args, "torch_num_threads", None) is not None:
        torch.set_num_threads(args.torch_num_threads)
    if getattr(args, "allow_tf32", False) and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    accelerator = setup_accelerator(
        args.output_dir,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        report_to=args.report_to,
        logging_dir=args.logging_dir,
        dynamo_backend="inductor" if getattr(args, "compile", False) else None,
        **accelerator_kwargs,
    )
    restore_logging = setup_training_logging(accelerator)
    try:
        from accelerate.utils import set_seed

        set_seed(args.seed)  # same initial weights on every process
        if accelerator.is_main_process:
            removed = clean_partial_checkpoints(args.output_dir)
            if removed:
                logger.warning("removed unfinished checkpoint folders %s", removed)
        return train_fn(args, accelerator)
    finally:
        restore_logging()
