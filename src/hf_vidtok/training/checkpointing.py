"""Training checkpoints: ``output_dir/checkpoint-<step>/`` folders written atomically, pruned, resumed exactly.

A checkpoint holds what ``accelerator.save_state`` writes for the optimizers (``optimizer*.bin``,
plain tensors, loadable with ``torch.load(weights_only=True)``) and, through accelerate's save/load-state
pre-hooks (:class:`CheckpointState`), everything else in open formats:

* ``save_pretrained`` folders of the trained models (``tokenizer/``, ``discriminator/``, ``generator/`` ...)
  and their EMA (``tokenizer_ema/`` + ``ema_state.json``), so ``LarpTokenizer.from_pretrained(
  "out/checkpoint-N/tokenizer")`` works;
* ``<name>.safetensors`` for small modules with buffers (e.g. LeCam's EMAs);
* ``training_state.json``: loop progress, data-stream positions, LR-scheduler states;
* ``rng_state_<process>.safetensors`` / ``.json``: every process's torch / CUDA / numpy / python RNG.

Nothing is pickled: accelerate's ``register_for_checkpointing`` would write ``custom_checkpoint_*.pkl``
and reload it with ``weights_only=False`` (a downloaded checkpoint could run code), and its
``random_states_*.pkl`` needs numpy globals; :func:`save_checkpoint` replaces the latter by the RNG files.
:func:`find_unsafe_pickles` lists any file of a folder that ``torch.load(weights_only=True)`` rejects.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .unwrap import bare_model

__all__ = [
    "CHECKPOINT_PREFIX",
    "LATEST_POINTER",
    "TRAINING_STATE_FILE",
    "TrainingProgress",
    "CheckpointState",
    "list_checkpoints",
    "save_checkpoint",
    "checkpoint_or_stop",
    "end_stopped_run",
    "prune_checkpoints",
    "resolve_resume_checkpoint",
    "load_checkpoint",
    "clean_partial_checkpoints",
    "write_json_atomic",
    "find_unsafe_pickles",
    "quiet_hf_progress",
]

CHECKPOINT_PREFIX = "checkpoint-"
LATEST_POINTER = "latest"
TRAINING_STATE_FILE = "training_state.json"
EMA_STATE_FILE = "ema_state.json"
_COMPLETE_MARKER = "checkpoint_complete.json"
_TMP_PREFIX = ".tmp-checkpoint-"
_OLD_PREFIX = ".old-checkpoint-"
_WEIGHTS = "model.safetensors"


logger = logging.getLogger(__name__)  # called on chosen processes, also without an Accelerator


class TrainingProgress:
    """Loop counters kept in checkpoints: ``global_step`` (optimizer updates done), the initial validation
    metrics and the validation history (JSON-serialisable)."""

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


# ---------------------------------------------------------------------------------------- state hooks


def _safetensors_device(device) -> str:
    """``safetensors.torch.load_file``'s device string: it rejects indexed CPU devices such as ``cpu:0``
    (what accelerate reports for each process of a multi-process CPU run)."""
    device = torch.device(device)
    return "cpu" if device.type == "cpu" else str(device)


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda_{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return tensors, {"numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
                     "python": [version, list(internal), gauss]}


def _set_rng_state(tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda_{i}"] for i in range(len(tensors) - 1) if f"cuda_{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    name, keys, pos, has_gauss, cached = values["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = values["python"]
    random.setstate((version, tuple(internal), gauss))


class CheckpointState:
    """Registers accelerate save/load-state pre-hooks that put a run's state into a checkpoint folder in
    open formats (see the module docstring) and restore it bit-exactly.

    Args:
        accelerator: the run's ``Accelerator``.
        models: folder name -> model returned by ``accelerator.prepare`` (has ``save_pretrained``); its
            weights go to ``<folder>/`` instead of accelerate's ``model*.safetensors``.
        emas: folder name -> ``(diffusers.training_utils.EMAModel, folder of the model it averages)``.
        modules: file stem -> small ``nn.Module`` whose ``state_dict`` is saved as ``<stem>.safetensors``.
        states: key -> object with JSON-serialisable ``state_dict()`` / ``load_state_dict()`` (called on every
            process, so a state may gather over processes) stored in ``training_state.json``.
    """

    def __init__(
        self,
        accelerator,
        *,
        models: Mapping[str, nn.Module],
        emas: Mapping[str, tuple[Any, str]] | None = None,
        modules: Mapping[str, nn.Module] | None = None,
        states: Mapping[str, Any] | None = None,
    ):
        self.accelerator = accelerator
        self.models = dict(models)
        self.emas = dict(emas or {})
        self.modules = dict(modules or {})
        self.states = dict(states or {})
        for folder, (_, source) in self.emas.items():
            if source not in self.models:
                raise ValueError(f"EMA folder {folder!r} averages {source!r}, which is not one of the models {list(self.models)}")
        self._handles = [
            accelerator.register_save_state_pre_hook(self._save_hook),
            accelerator.register_load_state_pre_hook(self._load_hook),
        ]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def _folder_of(self, model) -> str | None:
        """The folder of ``model`` as accelerate lists it: accelerate keeps the bare module in its model list
        while ``prepare`` returned a DDP wrapper, so both sides are compared unwrapped."""
        unwrap = functools.partial(bare_model, self.accelerator)
        bare = unwrap(model)
        for folder, candidate in self.models.items():
            if unwrap(candidate) is bare:
                return folder
        return None

    def _ema_state_dict(self, ema, model: nn.Module) -> dict[str, torch.Tensor]:
        state = dict(model.state_dict())
        named = [name for name, _ in model.named_parameters()]
        if len(named) != len(ema.shadow_params):
            raise ValueError(f"the EMA holds {len(ema.shadow_params)} tensors but the model has {len(named)} parameters")
        state.update({name: shadow.detach() for name, shadow in zip(named, ema.shadow_params)})
        return state

    def _save_hook(self, models: list, weights: list, output_dir: str) -> None:
        acc = self.accelerator
        for i in reversed(range(len(models))):
            if self._folder_of(models[i]) is not None:
                weights.pop(i)  # saved below with save_pretrained instead of model_<i>.safetensors
        states = {key: obj.state_dict() for key, obj in self.states.items()}  # every process (may gather)
        tensors, values = _rng_state()
        save_file(tensors, os.path.join(output_dir, f"rng_state_{acc.process_index}.safetensors"))
        with open(os.path.join(output_dir, f"rng_state_{acc.process_index}.json"), "w", encoding="utf-8") as f:
            json.dump(values, f)
        if not acc.is_main_process:
            return
        with quiet_hf_progress():  # no "Writing model shards" bar inside the training bar
            for folder, model in self.models.items():
                bare_model(acc, model).save_pretrained(os.path.join(output_dir, folder))
            for folder, (ema, source) in self.emas.items():
                model = bare_model(acc, self.models[source])
                model.save_pretrained(os.path.join(output_dir, folder), state_dict=self._ema_state_dict(ema, model))
        for folder, (ema, source) in self.emas.items():
            scalars = {k: v for k, v in ema.state_dict().items() if k != "shadow_params"}
            with open(os.path.join(output_dir, folder, EMA_STATE_FILE), "w", encoding="utf-8") as f:
                json.dump(scalars, f, indent=2)
        for stem, module in self.modules.items():
            save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()},
                      os.path.join(output_dir, f"{stem}.safetensors"))
        with open(os.path.join(output_dir, TRAINING_STATE_FILE), "w", encoding="utf-8") as f:
            json.dump(states, f, indent=2)

    def _load_hook(self, models: list, input_dir: str) -> None:
        acc = self.accelerator
        state_path = os.path.join(input_dir, TRAINING_STATE_FILE)
        if not os.path.isfile(state_path):
            raise ValueError(
                f"`--resume_from_checkpoint` {input_dir!r} has no {TRAINING_STATE_FILE}: it was not written by this "
                "version of the training scripts"
            )
        for i in reversed(range(len(models))):
            folder = self._folder_of(models[i])
            if folder is not None:
                weights = load_file(os.path.join(input_dir, folder, _WEIGHTS), device=_safetensors_device(acc.device))
                bare_model(acc, models[i]).load_state_dict(weights, strict=True)
                models.pop(i)  # accelerate must not look for model_<i>.safetensors
        for folder, (ema, source) in self.emas.items():
            weights = load_file(os.path.join(input_dir, folder, _WEIGHTS))
            names = [name for name, _ in bare_model(acc, self.models[source]).named_parameters()]
            with open(os.path.join(input_dir, folder, EMA_STATE_FILE), encoding="utf-8") as f:
                scalars = json.load(f)
            shadow = [weights[n].to(device=s.device, dtype=s.dtype) for n, s in zip(names, ema.shadow_params)]
            ema.load_state_dict({**scalars, "shadow_params": shadow})
        for stem, module in self.modules.items():
            module.load_state_dict(load_file(os.path.join(input_dir, f"{stem}.safetensors"),
                                             device=_safetensors_device(acc.device)))
        with open(state_path, encoding="utf-8") as f:
            states = json.load(f)
        for key, obj in self.states.items():
            obj.load_state_dict(states[key])
        rng = os.path.join(input_dir, f"rng_state_{acc.process_index}")
        if os.path.isfile(rng + ".safetensors"):
            with open(rng + ".json", encoding="utf-8") as f:
                _set_rng_state(load_file(rng + ".safetensors"), json.load(f))
        else:  # resumed by more processes than wrote the checkpoint: this one keeps its seeded RNG
            logger.info("no RNG state for process %d in %s (fewer processes wrote it); its RNG keeps its seed",
                        acc.process_index, input_dir)


@contextlib.contextmanager
def quiet_hf_progress():
    """transformers' and diffusers' progress bars ("Loading weights", "Writing model shards", "Loading pipeline
    components") off for the duration of a save or load inside a training loop; the previous switches come back on
    exit, so the user's own bars and later calls are untouched."""
    import transformers

    was_on = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    diffusers_logging = None
    try:
        from diffusers.utils import logging as diffusers_logging

        diffusers_was_on = diffusers_logging.is_progress_bar_enabled()
        diffusers_logging.disable_progress_bar()
    except ImportError:  # diffusers is optional here
        diffusers_logging = None
    try:
        yield
    finally:
        if was_on:
            transformers.utils.logging.enable_progress_bar()
        if diffusers_logging is not None and diffusers_was_on:
            diffusers_logging.enable_progress_bar()


def find_unsafe_pickles(folder: str | os.PathLike) -> list[str]:
    """Files under ``folder`` (relative paths) ending in ``.pkl``/``.bin``/``.pt``/``.pth``/``.ckpt`` that
    ``torch.load(weights_only=True)`` refuses, i.e. that only full (code-running) unpickling could read."""
    unsafe = []
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            if not name.endswith((".pkl", ".bin", ".pt", ".pth", ".ckpt")):
                continue
            path = os.path.join(root, name)
            try:
                torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - any refusal means the file needs full unpickling
                unsafe.append(os.path.relpath(path, folder))
    return sorted(unsafe)


# ------------------------------------------------------------------------------------ atomic folders


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
    # the RNG is in rng_state_<i>.* (CheckpointState); accelerate's pickle of it would need numpy globals
    rng_pickle = os.path.join(tmp, f"random_states_{accelerator.process_index}.pkl")
    if os.path.exists(rng_pickle):
        os.remove(rng_pickle)
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


def checkpoint_or_stop(accelerator, args, step: int, steps_this_run: int, on_checkpoint=None) -> bool:
    """The end of a training step in every script: save ``checkpoint-<step>`` every ``--checkpointing_steps``
    and when ``--stop_after_steps`` steps of this run are done (then return True: the loop stops, to be
    continued with ``--resume_from_checkpoint latest``). ``on_checkpoint(step, folder)`` runs after each save."""
    stop_after = getattr(args, "stop_after_steps", None)
    stop_now = stop_after is not None and steps_this_run >= stop_after and step < args.max_train_steps
    if step % args.checkpointing_steps == 0 or stop_now:
        path = save_checkpoint(accelerator, args.output_dir, step, args.checkpoints_total_limit)
        if on_checkpoint is not None:
            on_checkpoint(step, path)
    return stop_now


def end_stopped_run(accelerator, global_step: int, steps_this_run: int) -> dict:
    """Close a run stopped by ``--stop_after_steps`` (all processes synchronised, trackers ended); returns
    ``{"stopped_at_step": step}``."""
    accelerator.wait_for_everyone()
    logger.info("stopped after %d steps of this run at step %d; continue with --resume_from_checkpoint latest",
                steps_this_run, global_step)
    accelerator.end_training()
    return {"stopped_at_step": global_step}


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


def load_checkpoint(accelerator, resume_from: str | None, output_dir: str) -> str | None:
    """Resolve ``--resume_from_checkpoint`` (:func:`resolve_resume_checkpoint`) and ``accelerator.load_state``
    it (the :class:`CheckpointState` hooks restore the rest). Returns the folder, or None for a new run."""
    path = resolve_resume_checkpoint(resume_from, output_dir)
    if path is not None:
        logger.info("resuming from %s", path)
        with open(os.path.join(path, _COMPLETE_MARKER), encoding="utf-8") as f:
            saved_processes = json.load(f).get("num_processes", accelerator.num_processes)
        if saved_processes != accelerator.num_processes and accelerator.is_main_process:
            logger.warning(
                "%s was written by %d processes and is resumed by %d: the weights, optimizer, schedule and step "
                "continue exactly, the data streams restart at their next epoch (every clip still once per epoch) and "
                "processes without a saved RNG state keep their seed; the run is no longer bit-identical to one "
                "that kept %d processes", path, saved_processes, accelerator.num_processes, saved_processes)
        accelerator.load_state(path)
    elif resume_from:
        logger.info("no checkpoint found for `%s`; starting a new run", resume_from)
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
