"""Extracted token datasets: written once by ``training/extract_tokens.py`` with a frozen tokenizer, read
by ``training/train_ar.py`` for many epochs.

A token dataset is a ``datasets`` folder (``save_to_disk``) with one row per clip (``input_ids (N,)``
int32, ``label``, optional ``cond_ids (N,)``, ``path``, ``start_frame``, ``flipped``) plus
``token_info.json`` describing the tokenizer, codebook, token count and classes.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.transforms import repeat_to_num_frames
from ..models.larp import LarpTokenizer

__all__ = [
    "TOKEN_INFO_FILE",
    "TOKEN_FORMAT",
    "TOKEN_FORMAT_VERSION",
    "TokenSpec",
    "TokenBatchSampler",
    "load_frozen_tokenizer",
    "check_num_cond_frames",
    "condition_clips",
    "tokenize_clips",
    "token_features",
    "read_token_info",
    "load_token_dataset",
    "check_token_batch",
]

logger = logging.getLogger(__name__)

TOKEN_INFO_FILE = "token_info.json"
TOKEN_FORMAT = "hf_vidtok-ar-tokens"
TOKEN_FORMAT_VERSION = 1


# ------------------------------------------------------------------------------------------ tokenizing


def load_frozen_tokenizer(name_or_path: str, *, revision: str | None = None, device="cpu") -> LarpTokenizer:
    """``LarpTokenizer.from_pretrained`` in eval mode with deterministic (argmax) VQ and no gradients."""
    try:
        tokenizer = LarpTokenizer.from_pretrained(name_or_path, revision=revision)
    except (OSError, ValueError) as err:
        raise ValueError(f"`--tokenizer_name_or_path` {name_or_path!r} is not a loadable LarpTokenizer: {err}") from err
    tokenizer.set_vq_eval_deterministic(True)
    tokenizer.eval().requires_grad_(False)
    return tokenizer.to(device)


def check_num_cond_frames(num_cond_frames: int, num_frames: int) -> None:
    if not 1 <= num_cond_frames < num_frames:
        raise ValueError(
            f"`--num_cond_frames` must be in [1, {num_frames - 1}] (fewer than the clip's {num_frames} frames), "
            f"got {num_cond_frames}"
        )


def condition_clips(pixel_values: torch.Tensor, num_cond_frames: int) -> torch.Tensor:
    """The official frame-prediction condition: the first ``num_cond_frames`` frames of
    ``pixel_values (B, C, T, H, W)`` with the last of them repeated to ``T`` frames."""
    t = pixel_values.shape[2]
    check_num_cond_frames(num_cond_frames, t)
    return repeat_to_num_frames(pixel_values[:, :, :num_cond_frames], t)


@torch.no_grad()
def tokenize_clips(
    tokenizer: LarpTokenizer,
    pixel_values: torch.Tensor,
    *,
    num_cond_frames: int | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token ids ``(B, N)`` of ``pixel_values (B, C, T, H, W)`` in [0, 1] with deterministic VQ, and,
    when ``num_cond_frames`` is given, the condition ids ``(B, N)`` of the repeated first frames (one
    ``encode`` call on ``[clips ; conditions]``, as the official FP trainer). The tokenizer must be in
    eval mode (training-mode VQ samples codes)."""
    if tokenizer.training:
        raise ValueError("the tokenizer must be in eval mode (deterministic VQ); call `.eval()`")
    cfg = tokenizer.config
    expected = (cfg.in_channels, cfg.num_frames, cfg.image_size, cfg.image_size)
    if pixel_values.dim() != 5 or tuple(pixel_values.shape[1:]) != expected:
        raise ValueError(
            f"clips have shape {tuple(pixel_values.shape)} but the tokenizer expects (B, C, T, H, W) = (B, "
            f"{', '.join(map(str, expected))}); make `--num_frames`/`--resolution` match the tokenizer config"
        )
    batch = pixel_values.shape[0]
    x = pixel_values
    if num_cond_frames is not None:
        x = torch.cat([pixel_values, condition_clips(pixel_values, num_cond_frames)])
    device = tokenizer.device
    x = x.to(device, non_blocking=True).float()
    with torch.autocast(device_type=device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        indices = tokenizer.encode(x).indices.long()
    if num_cond_frames is None:
        return indices, None
    return indices[:batch], indices[batch:]


def token_features(num_tokens: int, class_names: list[str], frame_prediction: bool):
    """The ``datasets.Features`` of a token dataset."""
    import datasets

    feats = {
        "input_ids": datasets.Sequence(datasets.Value("int32"), length=num_tokens),
        "label": datasets.ClassLabel(names=class_names) if class_names else datasets.Value("int64"),
    }
    if frame_prediction:
        feats["cond_ids"] = datasets.Sequence(datasets.Value("int32"), length=num_tokens)
    feats.update(path=datasets.Value("string"), key=datasets.Value("string"), clip_index=datasets.Value("int32"),
                 start_frame=datasets.Value("int32"), flipped=datasets.Value("bool"))
    return datasets.Features(feats)


# ------------------------------------------------------------------------------------------- reading


def read_token_info(dataset_dir: str) -> dict[str, Any]:
    """The ``token_info.json`` written next to a saved token dataset."""
    path = os.path.join(dataset_dir, TOKEN_INFO_FILE)
    if not os.path.isfile(path):
        raise ValueError(
            f"`--token_dataset` {dataset_dir!r} has no {TOKEN_INFO_FILE}; write it with training/extract_tokens.py"
        )
    with open(path, encoding="utf-8") as f:
        info = json.load(f)
    if info.get("format") != TOKEN_FORMAT:
        raise ValueError(f"`--token_dataset` {dataset_dir!r}: {TOKEN_INFO_FILE} is not an {TOKEN_FORMAT} file")
    return info


@dataclass
class TokenSpec:
    """What the tokens are: codebook size, tokens per clip, classes, frame-prediction conditioning;
    variable-length (EVATok) tokens add ``token_levels``, ``num_blocks``, the condition blocks' counts and
    the mean tokens per clip (``num_tokens`` is then the maximum)."""

    codebook_size: int
    num_tokens: int
    class_names: list[str]
    frame_prediction: bool
    num_cond_frames: int | None
    tokenizer: str | None
    token_levels: list[int] | None = None
    num_blocks: int | None = None
    cond_token_counts: list[int] | None = None
    mean_tokens: float | None = None


def token_columns(frame_prediction: bool, variable_length: bool = False) -> list[str]:
    return ["input_ids", "label"] + (["token_counts"] if variable_length else []) + (["cond_ids"] if frame_prediction else [])


def load_token_dataset(path: str, *, frame_prediction: bool, num_cond_frames: int, flag: str = "--token_dataset"):
    """``(dataset (numpy format), TokenSpec)`` for a folder written by extract_tokens.py, checked."""
    import datasets

    if not os.path.isdir(path):
        raise ValueError(f"`{flag}` {path!r} is not a folder")
    info = read_token_info(path)
    if info.get("num_examples") == 0:
        raise ValueError(f"`{flag}` {path!r} is empty (0 clips)")
    try:
        ds = datasets.load_from_disk(path)
    except (FileNotFoundError, ValueError, IndexError) as err:  # IndexError: datasets on a 0-shard folder
        raise ValueError(f"`{flag}` {path!r} could not be loaded as a `datasets` dataset (empty or incomplete?): {err!r}") from err
    if len(ds) == 0:
        raise ValueError(f"`{flag}` {path!r} is empty (0 clips)")
    if frame_prediction:
        if not info.get("frame_prediction") or "cond_ids" not in ds.column_names:
            raise ValueError(
                f"`{flag}` {path!r} has no condition tokens; extract it with `extract_tokens.py --frame_prediction`"
            )
        if info.get("num_cond_frames") != num_cond_frames:
            raise ValueError(
                f"`--num_cond_frames` {num_cond_frames} does not match the {info.get('num_cond_frames')} condition "
                f"frames of `{flag}` {path!r}"
            )
    spec = TokenSpec(
        codebook_size=int(info["codebook_size"]), num_tokens=int(info["num_tokens"]),
        class_names=list(info.get("class_names") or []), frame_prediction=frame_prediction,
        num_cond_frames=num_cond_frames if frame_prediction else None, tokenizer=info.get("tokenizer"),
        token_levels=info.get("token_levels"), num_blocks=info.get("num_blocks"),
        cond_token_counts=info.get("cond_token_counts") if frame_prediction else None, mean_tokens=info.get("mean_tokens"),
    )
    columns = token_columns(frame_prediction, spec.token_levels is not None)
    return ds.with_format("numpy", columns=columns), spec


def check_token_batch(batch: dict[str, np.ndarray], spec: TokenSpec, num_classes: int | None, where: str) -> None:
    """Token ids in ``[0, codebook_size)`` of length ``num_tokens``; labels of a class model in range."""
    for key in ("input_ids", "cond_ids"):
        if key not in batch or batch[key] is None:
            continue
        ids = np.asarray(batch[key])
        if ids.ndim != 2 or ids.shape[1] != spec.num_tokens:
            raise ValueError(f"{where}: `{key}` must be (B, {spec.num_tokens}), got {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= spec.codebook_size):
            raise ValueError(
                f"{where}: `{key}` holds ids in [{ids.min()}, {ids.max()}], outside the codebook [0, {spec.codebook_size})"
            )
    if num_classes is not None:
        labels = np.asarray(batch["label"])
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{where}: class labels must be in [0, {num_classes - 1}] for the class-conditional generator, got "
                f"[{labels.min()}, {labels.max()}] (-1 = unlabelled clip; use labelled data or --frame_prediction)"
            )


class TokenBatchSampler:
    """Resumable, seeded batches of row indices of an extracted token dataset for one process.

    Each epoch the rows are permuted (seed, epoch) and dealt round-robin to the processes, each process's
    share truncated to whole batches (``drop_last``), so all processes take the same number of steps.
    ``state_dict`` (JSON) holds the epoch and the position in it (checkpointed with the run).
    """

    def __init__(self, size: int, batch_size: int, *, process_index: int = 0, num_processes: int = 1, seed: int = 0):
        self.size, self.batch_size = int(size), int(batch_size)
        self.process_index, self.num_processes, self.seed = int(process_index), int(num_processes), int(seed)
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"the token dataset has {self.size} clips, fewer than one batch per process "
                f"({self.batch_size} x {self.num_processes} processes)"
            )
        self.epoch, self.position = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return (self.size // self.num_processes) // self.batch_size

    def _order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.size, generator=g)
        return perm[self.process_index :: self.num_processes].tolist()

    def next_indices(self) -> list[int]:
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        order = self._order(self.epoch)
        start = self.position * self.batch_size
        self.position += 1
        return order[start : start + self.batch_size]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "size": self.size, "batch_size": self.batch_size,
                "num_processes": self.num_processes, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        same = all(state.get(k) == getattr(self, k) for k in ("size", "batch_size", "num_processes", "seed"))
        if same:
            self.epoch, self.position = int(state["epoch"]), int(state["position"])
        else:
            logger.warning("the token data layout changed since the checkpoint; restarting at epoch %d", state["epoch"] + 1)
            self.epoch, self.position = int(state["epoch"]) + 1, 0
