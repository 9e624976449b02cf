"""Variable-length (EVATok) tokens for AR training: extraction with a frozen :class:`EvatokTokenizer`
(counts from a router or a fixed assignment), storage with per-block counts, length-grouped batches and
batches in the generator's length-token layout.

A variable-length token dataset (``training/extract_tokens.py`` with an EVATok tokenizer) has one row per
clip: ``input_ids`` (a variable-length int32 list: the clip's ``sum(token_counts)`` ids, block-major),
``token_counts`` (``num_blocks`` int32), ``label``, optionally ``cond_ids`` (frame prediction: the tokens
of the condition blocks at the fixed ``cond_token_counts``), and the provenance columns; its
``token_info.json`` adds ``token_levels``, ``num_blocks``, ``cond_token_counts`` and ``mean_tokens``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..models.video_ar.length_tokens_video_ar import build_length_token_sequence
from .token_data import TokenBatchSampler, condition_clips

__all__ = [
    "is_evatok_tokenizer",
    "load_frozen_evatok",
    "load_frozen_router",
    "parse_assignment",
    "choose_token_counts",
    "tokenize_clips_adaptive",
    "length_token_features",
    "length_token_batch",
    "LengthGroupedTokenBatchSampler",
    "evaluate_length_token_nll",
]


def is_evatok_tokenizer(name_or_path: str, revision: str | None = None) -> bool:
    """Whether the config at ``name_or_path`` is an EVATok tokenizer (``model_type="evatok_tokenizer"``)."""
    from transformers import AutoConfig

    import hf_vidtok  # noqa: F401  (registers the model types)

    try:
        config = AutoConfig.from_pretrained(name_or_path, revision=revision)
    except (OSError, ValueError):
        return False
    return getattr(config, "model_type", None) == "evatok_tokenizer"


def load_frozen_evatok(name_or_path: str, *, revision: str | None = None, device="cpu"):
    """``EvatokTokenizer.from_pretrained`` in eval mode (deterministic VQ) without gradients."""
    from ..models.evatok.modeling_evatok import EvatokTokenizer

    tokenizer = EvatokTokenizer.from_pretrained(name_or_path, revision=revision)
    return tokenizer.eval().requires_grad_(False).to(device)


def load_frozen_router(name_or_path: str, *, revision: str | None = None, device="cpu"):
    """``EvatokRouter.from_pretrained`` in eval mode without gradients."""
    from ..models.evatok.modeling_evatok_router import EvatokRouter

    router = EvatokRouter.from_pretrained(name_or_path, revision=revision)
    return router.eval().requires_grad_(False).to(device)


def parse_assignment(value: str | None, levels, num_blocks: int, flag: str = "--assignment") -> tuple[int, ...] | None:
    """``"router"`` / None -> None (the router chooses); ``"c1,c2,..."`` -> a fixed assignment of
    ``num_blocks`` counts from ``levels``."""
    if value is None or str(value).strip().lower() == "router":
        return None
    try:
        counts = tuple(int(v) for v in str(value).split(","))
    except ValueError:
        raise ValueError(f"`{flag}` must be 'router' or comma-separated counts, got {value!r}") from None
    if len(counts) != num_blocks or any(c not in levels for c in counts):
        raise ValueError(f"`{flag}` must hold {num_blocks} counts from {list(levels)}, got {value!r}")
    return counts


@torch.no_grad()
def choose_token_counts(pixel_values, *, assignment=None, router=None, cond_token_counts=None) -> torch.Tensor:
    """Per-clip counts ``(B, num_blocks)`` (CPU long): the fixed ``assignment``, or the router's choice
    (restricted to assignments starting with ``cond_token_counts`` when given)."""
    batch = pixel_values.shape[0]
    if assignment is not None:
        if cond_token_counts is not None and tuple(assignment[: len(cond_token_counts)]) != tuple(cond_token_counts):
            raise ValueError(
                f"the assignment {tuple(assignment)} must start with the condition blocks' counts {tuple(cond_token_counts)}"
            )
        return torch.tensor(assignment, dtype=torch.long).expand(batch, -1).clone()
    if router is None:
        raise ValueError("give a fixed assignment or a router (`--router_name_or_path`)")
    prefix = None if cond_token_counts is None else list(cond_token_counts)
    x = pixel_values.to(router.device, router.dtype)
    return router.select(x, allowed_prefix=prefix).long().cpu()


@torch.no_grad()
def tokenize_clips_adaptive(
    tokenizer,
    pixel_values: torch.Tensor,
    token_counts: torch.Tensor,
    *,
    num_cond_frames: int | None = None,
    cond_token_counts=None,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Token ids of ``pixel_values (B, C, T, H, W)`` in [0, 1] at ``token_counts (B, num_blocks)``: a
    list of B int32 arrays (``sum(token_counts[b])`` ids each) and, with ``num_cond_frames``, the
    ``(B, sum(cond_token_counts))`` int32 ids of the condition blocks (first frames repeated to the clip
    length, encoded at ``cond_token_counts`` + the smallest level for the other blocks)."""
    if tokenizer.training:
        raise ValueError("the tokenizer must be in eval mode (deterministic VQ); call `.eval()`")
    device = tokenizer.device
    counts = token_counts.cpu().long()
    with torch.autocast(device_type=device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        x = pixel_values.to(device).float()
        indices = tokenizer.encode(x, assignment=counts).indices.cpu()
        cond = None
        if num_cond_frames is not None:
            cfg = tokenizer.config
            if cond_token_counts is None:
                raise ValueError("frame prediction with an EVATok tokenizer needs `cond_token_counts`")
            fill = (min(cfg.token_levels),) * (cfg.num_blocks - len(cond_token_counts))
            ctx = condition_clips(x, num_cond_frames)
            cond_idx = tokenizer.encode(ctx, assignment=tuple(cond_token_counts) + fill).indices
            cond = cond_idx[:, : sum(cond_token_counts)].cpu().numpy().astype(np.int32)
    totals = counts.sum(1).tolist()
    ids = [indices[b, :n].numpy().astype(np.int32) for b, n in enumerate(totals)]
    return ids, cond


def length_token_features(class_names: list[str], num_blocks: int, num_cond_tokens: int | None):
    """The ``datasets.Features`` of a variable-length token dataset."""
    import datasets

    feats = {
        "input_ids": datasets.Sequence(datasets.Value("int32")),
        "token_counts": datasets.Sequence(datasets.Value("int32"), length=num_blocks),
        "label": datasets.ClassLabel(names=class_names) if class_names else datasets.Value("int64"),
    }
    if num_cond_tokens is not None:
        feats["cond_ids"] = datasets.Sequence(datasets.Value("int32"), length=num_cond_tokens)
    feats.update(path=datasets.Value("string"), key=datasets.Value("string"), clip_index=datasets.Value("int32"),
                 start_frame=datasets.Value("int32"), flipped=datasets.Value("bool"))
    return datasets.Features(feats)


def length_token_batch(rows: dict[str, Any], config, device=None) -> dict[str, torch.Tensor]:
    """Rows of a variable-length token dataset -> ``input_ids`` / ``labels`` / ``attention_mask`` ``(B, S)``
    in the generator's length-token layout (right padding, labels -100 there), ``token_counts (B, T)``,
    ``label (B,)`` and ``cond_ids (B, n)`` (frame prediction) as long tensors on ``device``."""
    counts = torch.as_tensor(np.asarray([np.asarray(c) for c in rows["token_counts"]]), dtype=torch.long)
    seqs = [np.asarray(s) for s in rows["input_ids"]]
    indices = torch.full((len(seqs), max((len(s) for s in seqs), default=0)), -1, dtype=torch.long)
    for b, s in enumerate(seqs):
        indices[b, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    seq = build_length_token_sequence(indices, counts, config)
    out = {"input_ids": seq.input_ids, "labels": seq.labels, "attention_mask": seq.attention_mask, "token_counts": counts,
           "label": torch.as_tensor(np.asarray(rows["label"]), dtype=torch.long)}
    if rows.get("cond_ids") is not None:
        out["cond_ids"] = torch.as_tensor(np.asarray([np.asarray(c) for c in rows["cond_ids"]]), dtype=torch.long)
    return {k: v.to(device) for k, v in out.items()} if device is not None else out


class LengthGroupedTokenBatchSampler(TokenBatchSampler):
    """:class:`TokenBatchSampler` whose batches hold clips of similar lengths (less padding): each epoch's
    seeded permutation is cut into windows of ``window`` batches, sorted by length inside each window (stable),
    cut into batches, and the batches of the epoch are shuffled (seeded). Same resumable state."""

    def __init__(self, lengths, batch_size: int, *, window: int = 16, **kwargs):
        self.lengths = torch.as_tensor(np.asarray(lengths), dtype=torch.long)
        self.window = int(window)
        super().__init__(len(self.lengths), batch_size, **kwargs)

    def _order(self, epoch: int) -> list[int]:
        order = torch.as_tensor(super()._order(epoch), dtype=torch.long)
        order = order[: self.batches_per_epoch * self.batch_size]
        span = self.window * self.batch_size
        parts = []
        for start in range(0, len(order), span):
            chunk = order[start : start + span]
            parts.append(chunk[torch.argsort(self.lengths[chunk], stable=True)])
        grouped = torch.cat(parts) if parts else order
        batches = grouped.view(-1, self.batch_size)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch + 7919)
        return batches[torch.randperm(len(batches), generator=g)].reshape(-1).tolist()


@torch.no_grad()
def evaluate_length_token_nll(model, val: dict[str, torch.Tensor], *, batch_size: int, device, autocast_dtype=None):
    """Teacher-forced sums over a length-token validation set (``length_token_batch`` output, on CPU):
    ``{"nll_sum", "correct", "tokens", "visual_tokens", "generated_tokens"...}`` where ``tokens`` counts
    every supervised id (length + visual) and ``visual_tokens`` the codebook ids only."""
    was_training = model.training
    model.eval()
    codebook = model.config.codebook_size
    sums = {"nll_sum": 0.0, "correct": 0.0, "tokens": 0.0, "visual_tokens": 0.0, "clips": float(val["input_ids"].shape[0])}
    try:
        with torch.random.fork_rng(devices=[]):
            for i in range(0, val["input_ids"].shape[0], batch_size):
                ids = val["input_ids"][i : i + batch_size].to(device)
                labels = val["labels"][i : i + batch_size].to(device)
                cond = ({"cond_ids": val["cond_ids"][i : i + batch_size].to(device)} if "cond_ids" in val
                        else {"class_labels": val["label"][i : i + batch_size].to(device)})
                with torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype or torch.float32,
                                    enabled=autocast_dtype is not None):
                    logits = model(input_ids=ids, **cond).logits.float()
                valid = labels != -100
                nll = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")
                sums["nll_sum"] += nll.item()
                sums["correct"] += ((logits.argmax(-1) == labels) & valid).sum().item()
                sums["tokens"] += valid.sum().item()
                sums["visual_tokens"] += (valid & (labels < codebook)).sum().item()
    finally:
        model.train(was_training)
    return sums
