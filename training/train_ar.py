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

Checkpoints (``checkpoint-<step>/generator/`` is a ``save_pretrained`` folder), resume
(``--resume_from_checkpoint latest``), pruning, YAML recipes and logging follow ``training/train_tokenizer.py``
(``hf_vidtok.training``). The run ends with ``save_pretrained`` (safetensors), a model card and
``eval_results.json`` (teacher-forced NLL of the held-out tokens).

Variable-length (EVATok) token datasets (``extract_tokens.py`` with an EVATok tokenizer) train a
length-token generator (``token_levels`` / ``num_blocks`` from the data): per block a length token then its
visual tokens, right-padded batches of similar lengths (``LengthGroupedTokenBatchSampler``) with -100
labels on the padding, loss on length and visual tokens; validation adds the NLL per visual token (total
NLL / visual tokens) and the mean length the generator samples (``mean_generated_tokens``, next to the
data's ``mean_tokens``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.logging import get_logger

from hf_vidtok import VideoARGenerator, VideoARGeneratorConfig
from hf_vidtok.data import ShardedClipStream, hf_shard_reader, random_flip_clips
from hf_vidtok.models.video_ar import LLAMA_ABS_PRESETS
from hf_vidtok.training import (
    CheckpointState,
    TrainingProgress,
    autocast_dtype,
    bare_model,
    checkpoint_or_stop,
    end_stopped_run,
    get_lr_scheduler,
    init_trackers,
    load_checkpoint,
    reduce_sums,
    run_training,
    write_json_atomic,
)
from hf_vidtok.training import arguments as targs
from hf_vidtok.training.length_token_data import (
    LengthGroupedTokenBatchSampler,
    evaluate_length_token_nll,
    length_token_batch,
)
from hf_vidtok.training.sample_data import sample_video_csv
from hf_vidtok.training.threads import set_torch_num_threads
from hf_vidtok.training.token_data import (
    TokenBatchSampler,
    TokenSpec,
    check_num_cond_frames,
    check_token_batch,
    load_frozen_tokenizer,
    load_token_dataset,
    token_columns,
    tokenize_clips,
)

logger = get_logger("hf_vidtok.train_ar")

__all__ = ["build_parser", "parse_args", "check_generator", "evaluate_nll", "main"]

CHECKPOINT_FOLDERS = {"model": "generator"}


# ----------------------------------------------------------------------------------------------- flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None, help="YAML recipe; its keys are these flags (plus `model_config`, a mapping of VideoARGeneratorConfig arguments)")
    targs.add_model_arguments(p, "VideoARGenerator")
    m = p.add_argument_group("generator")
    m.add_argument("--model_preset", default="llama-abs-LP", choices=sorted(LLAMA_ABS_PRESETS), help="official size when training from scratch (overridden by `model_config`)")
    m.add_argument("--class_dropout_prob", type=float, default=None, help="probability of the null class in training (default: the model config's, 0.1)")
    m.add_argument("--frame_prediction", action="store_true", help="condition on the first --num_cond_frames frames instead of a class")
    m.add_argument("--num_cond_frames", type=int, default=5)
    t = p.add_argument_group("tokens")
    t.add_argument("--token_dataset", default=None, help="dataset written by training/extract_tokens.py (the fast path)")
    t.add_argument("--validation_token_dataset", default=None, help="held-out dataset written by extract_tokens.py")
    t.add_argument("--tokenizer_name_or_path", default=None, help="frozen LarpTokenizer for tokens on the fly (and validation clips)")
    t.add_argument("--tokenizer_revision", default=None)
    t.add_argument("--tokenizer_repo_id", default=None, help="Hub id of the tokenizer named in the model card (default: --tokenizer_name_or_path when it is not a local folder)")
    targs.add_data_arguments(p)
    p.add_argument("--validation_split", default="test")
    p.add_argument("--num_validation_examples", type=int, default=64, help="clips whose NLL is evaluated")
    targs.add_optimization_arguments(p, learning_rate=6e-4, adam_betas=(0.9, 0.95), weight_decay=0.05, train_batch_size=8,
                                     max_train_steps=None)
    o = p.add_argument_group("generator optimization")
    o.add_argument("--num_train_epochs", type=float, default=None, help="epochs when --max_train_steps is not given")
    o.add_argument("--lr_warmup_epochs", type=float, default=None, help="warmup in epochs (official: 4); overrides --lr_warmup_steps")
    o.add_argument("--gradient_checkpointing", action="store_true")
    targs.add_runtime_arguments(p, compile_help="torch.compile the generator")
    p.set_defaults(output_dir="outputs/larp-ar")
    targs.add_checkpointing_arguments(p, checkpointing_steps=1000, validation_steps=1000)
    targs.add_tracking_arguments(p, project_name="hf_vidtok-larp-ar")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = targs.parse_args_with_config(build_parser(), argv, dict_keys=["model_config"])
    targs.validate_args(args, model_sources=("pretrained_model_name_or_path", "original_model_name_or_path", "model_config"))
    if args.num_train_epochs is not None and args.num_train_epochs <= 0:
        raise ValueError(f"`--num_train_epochs` must be positive, got {args.num_train_epochs}")
    if args.max_train_steps is None and args.num_train_epochs is None:
        raise ValueError("give `--max_train_steps` or `--num_train_epochs`")
    if args.lr_warmup_epochs is not None and args.lr_warmup_epochs < 0:
        raise ValueError(f"`--lr_warmup_epochs` must be >= 0, got {args.lr_warmup_epochs}")
    if args.class_dropout_prob is not None and not 0.0 <= args.class_dropout_prob < 1.0:
        raise ValueError(f"`--class_dropout_prob` must be in [0, 1), got {args.class_dropout_prob}")
    on_the_fly = args.sample_videos or args.train_data_dir is not None
    if args.token_dataset is not None and on_the_fly:
        raise ValueError("give either `--token_dataset` (extracted tokens) or videos (`--train_data_dir`/`--sample_videos`), not both")
    if args.token_dataset is None and not on_the_fly:
        raise ValueError("no training data: give `--token_dataset` (from extract_tokens.py) or `--train_data_dir`/`--sample_videos`")
    if on_the_fly and not args.tokenizer_name_or_path:
        raise ValueError("tokens on the fly need the frozen tokenizer: give `--tokenizer_name_or_path`")
    if args.validation_data_dir is not None and not args.tokenizer_name_or_path:
        raise ValueError("`--validation_data_dir` needs `--tokenizer_name_or_path` to tokenize the clips")
    return args


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
        if spec.token_levels is not None:  # length-token layout: the longest sequence is the default max_seq_len
            kwargs.update(token_levels=spec.token_levels, num_blocks=spec.num_blocks, max_seq_len=None)
            if spec.frame_prediction:
                kwargs["num_cond_tokens"] = sum(spec.cond_token_counts) + 1
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
    if spec.token_levels is not None:
        if config.token_levels != spec.token_levels or config.num_blocks != spec.num_blocks:
            raise ValueError(
                f"generator token_levels {config.token_levels} / num_blocks {config.num_blocks} != the tokens' "
                f"{spec.token_levels} / {spec.num_blocks} ({source})"
            )
        if config.max_seq_len < spec.num_blocks + spec.num_tokens:
            raise ValueError(f"generator max_seq_len {config.max_seq_len} < the longest length-token sequence "
                             f"{spec.num_blocks + spec.num_tokens} ({source})")
        if spec.frame_prediction and config.num_cond_tokens != sum(spec.cond_token_counts) + 1:
            raise ValueError(f"generator num_cond_tokens {config.num_cond_tokens} != {sum(spec.cond_token_counts)} "
                             "condition tokens + separator")
    elif config.is_variable_length:
        raise ValueError(f"the generator is variable-length (token_levels) but the tokens are fixed-length ({source})")
    elif config.max_seq_len != spec.num_tokens:
        raise ValueError(
            f"generator max_seq_len {config.max_seq_len} != the tokenizer's {spec.num_tokens} tokens per clip ({source})"
        )
    if config.frame_prediction != spec.frame_prediction:
        kind = "frame-prediction" if config.frame_prediction else "class-conditional"
        raise ValueError(
            f"the generator is {kind}; {'pass' if config.frame_prediction else 'drop'} `--frame_prediction`"
        )
    if spec.frame_prediction and spec.token_levels is None and config.num_cond_tokens != spec.num_tokens + 1:
        raise ValueError(
            f"generator num_cond_tokens {config.num_cond_tokens} != {spec.num_tokens} condition tokens + separator"
        )
    if not spec.frame_prediction and spec.class_names and len(spec.class_names) > config.num_classes:
        raise ValueError(
            f"the data has {len(spec.class_names)} classes but the generator only {config.num_classes} (num_classes)"
        )


# ------------------------------------------------------------------------------------------ on the fly


def _sample_csvs(args) -> str:
    return sample_video_csv(os.path.join(args.output_dir, "sample_data"))


def _video_dataset(args, data_dir, layout, split, *, streaming: bool, seed: int, clips_per_video: int, spec_tok):
    from hf_vidtok.data import load_video_dataset

    return load_video_dataset(
        data_dir, layout=layout, split=split, num_frames=spec_tok.num_frames, resolution=spec_tok.image_size,
        frame_stride=args.frame_stride, clips_per_video=clips_per_video, streaming=streaming, seed=seed,
    )


def _collate(examples):
    from hf_vidtok.data import collate_video_clips

    return collate_video_clips(examples)


def build_clip_stream(args, accelerator, tok_config) -> tuple[ShardedClipStream, int, list[str]]:
    from accelerate.utils import gather_object

    def make_dataset(epoch: int):
        return _video_dataset(args, args.train_data_dir, args.dataset_layout, args.train_split, streaming=True,
                              seed=args.seed + epoch, clips_per_video=args.clips_per_video, spec_tok=tok_config)

    probe = make_dataset(0)
    class_names = list(probe.features["label"].names)
    stream = ShardedClipStream(
        hf_shard_reader(make_dataset), probe.num_shards, batch_size=args.train_batch_size, collate_fn=_collate,
        process_index=accelerator.process_index, num_processes=accelerator.num_processes,
        num_workers=args.dataloader_num_workers, seed=args.seed, shuffle=True,
        gather_fn=lambda obj: gather_object([obj]),
    )
    return stream, probe.num_shards * args.clips_per_video, class_names


def _tokenize_batch(tokenizer, pixel_values, spec: TokenSpec, autocast) -> dict[str, np.ndarray | torch.Tensor]:
    ids, cond = tokenize_clips(tokenizer, pixel_values, num_cond_frames=spec.num_cond_frames, autocast_dtype=autocast)
    return {"input_ids": ids, "cond_ids": cond}


# ------------------------------------------------------------------------------------------- validation


def build_validation_tokens(args, spec: TokenSpec, train_ds, tokenizer, tok_config, autocast) -> tuple[dict, str]:
    """All validation clips as tensors ``input_ids (V, N)``, ``label (V,)``, ``cond_ids (V, N)`` and a
    description of where they come from."""
    k = args.num_validation_examples
    if spec.token_levels is not None:
        return _length_validation_tokens(args, spec, train_ds)
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


def _length_validation_tokens(args, spec: TokenSpec, train_ds) -> tuple[dict, str]:
    """Variable-length validation rows (held-out token dataset, else the first training rows) as raw rows;
    laid out for the generator in ``_train`` (``length_token_batch``)."""
    if args.validation_data_dir is not None:
        raise ValueError("variable-length tokens validate on `--validation_token_dataset` (extract it with extract_tokens.py)")
    ds, source = train_ds, "training tokens (no held-out data given)"
    if args.validation_token_dataset is not None:
        ds, vspec = load_token_dataset(args.validation_token_dataset, frame_prediction=spec.frame_prediction,
                                       num_cond_frames=args.num_cond_frames, flag="--validation_token_dataset")
        if (vspec.codebook_size, vspec.token_levels, vspec.num_blocks) != (spec.codebook_size, spec.token_levels, spec.num_blocks):
            raise ValueError("`--validation_token_dataset` has another codebook / token_levels / num_blocks than the training tokens")
        source = f"held-out tokens ({args.validation_token_dataset})"
    return ds[: min(args.num_validation_examples, len(ds))], source


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
    variable = "labels" in val
    evaluate = evaluate_length_token_nll if variable else evaluate_nll
    sums = evaluate(bare_model(accelerator, model), val, batch_size=args.validation_batch_size or args.train_batch_size,
                    device=accelerator.device, autocast_dtype=autocast)
    if variable:
        sums["generated_tokens"] = _generated_tokens(bare_model(accelerator, model), val, args, accelerator.device)
    total = reduce_sums(accelerator, sums)
    nll_sum, correct, tokens, clips = (total[k] for k in ("nll_sum", "correct", "tokens", "clips"))
    if tokens == 0:
        raise ValueError("validation got no clips")
    nll = nll_sum / tokens
    metrics = {"nll": nll, "perplexity": math.exp(min(nll, 80.0)), "bits_per_token": nll / math.log(2),
               "token_accuracy": correct / tokens, "num_clips": int(clips)}
    if variable:  # NLL per visual token: the clip's total code length (length tokens included) per visual token
        metrics["nll_per_visual_token"] = nll_sum / max(total["visual_tokens"], 1.0)
        metrics["mean_tokens"] = total["visual_tokens"] / max(clips, 1.0)
        metrics["mean_generated_tokens"] = total["generated_tokens"] / max(clips, 1.0)
    return metrics


@torch.no_grad()
def _generated_tokens(model, val, args, device) -> float:
    """Visual tokens the generator samples for the validation conditions (seeded; global RNG untouched)."""
    if val["input_ids"].shape[0] == 0:
        return 0.0
    gen = torch.Generator(device=device).manual_seed(args.seed)
    if "cond_ids" in val:  # frame prediction: the condition blocks' counts are fixed, as in extraction
        cond = {"cond_ids": val["cond_ids"].to(device), "forced_prefix": val["forced_prefix"].to(device)}
    else:
        cond = {"class_labels": val["label"].to(device)}
    sequences = model.generate(**cond, generator=gen)
    return float(model.parse_generated(sequences)[1].sum())


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None, *, on_checkpoint: Callable[[int, str], None] | None = None) -> dict[str, Any]:
    """Run the script; ``on_checkpoint(step, folder)`` is called after every saved checkpoint."""
    return run_training(parse_args(argv), lambda a, acc: _train(a, acc, on_checkpoint))


def _train(args, accelerator, on_checkpoint=None) -> dict[str, Any]:
    autocast = autocast_dtype(args.mixed_precision)
    if args.frame_prediction and args.num_cond_frames < 1:
        raise ValueError(f"`--num_cond_frames` must be >= 1, got {args.num_cond_frames}")

    # ---- tokens: extracted dataset or frozen tokenizer on the fly
    tokenizer = tok_config = None
    if args.tokenizer_name_or_path:
        tokenizer = load_frozen_tokenizer(args.tokenizer_name_or_path, revision=args.tokenizer_revision,
                                             device=accelerator.device)
        tok_config = tokenizer.config
        if args.frame_prediction:
            check_num_cond_frames(args.num_cond_frames, tok_config.num_frames)
    train_ds = stream = sampler = None
    if args.token_dataset is not None:
        train_ds, spec = load_token_dataset(args.token_dataset, frame_prediction=args.frame_prediction,
                                            num_cond_frames=args.num_cond_frames)
        if tok_config is not None and (tok_config.codebook_size, tok_config.bottleneck_token_num) != (spec.codebook_size, spec.num_tokens):
            raise ValueError(
                f"`--tokenizer_name_or_path` (codebook {tok_config.codebook_size}, {tok_config.bottleneck_token_num} "
                f"tokens) does not match `--token_dataset` (codebook {spec.codebook_size}, {spec.num_tokens} tokens)"
            )
        sampler_kwargs = dict(process_index=accelerator.process_index, num_processes=accelerator.num_processes, seed=args.seed)
        if spec.token_levels is not None:  # variable-length: batches of similar lengths
            lengths = np.asarray(train_ds["token_counts"]).sum(1)
            sampler = LengthGroupedTokenBatchSampler(lengths, args.train_batch_size, **sampler_kwargs)
        else:
            sampler = TokenBatchSampler(len(train_ds), args.train_batch_size, **sampler_kwargs)
        clips_per_epoch = len(train_ds)
        source = f"`--token_dataset` {args.token_dataset}"
        logger.info("process %d of %d: %d of the %d token rows per epoch, batches of %d", accelerator.process_index,
                    accelerator.num_processes, sampler.batches_per_epoch * args.train_batch_size, len(train_ds),
                    args.train_batch_size, main_process_only=False)
    else:
        if args.sample_videos:
            args.train_data_dir, args.dataset_layout, args.train_split = _sample_csvs(args), "csv", "train"
        stream, clips_per_epoch, class_names = build_clip_stream(args, accelerator, tok_config)
        logger.info("process %d of %d: %d of the %d training files per epoch", accelerator.process_index,
                    accelerator.num_processes, stream.files_per_epoch(), stream.num_shards, main_process_only=False)
        spec = TokenSpec(tok_config.codebook_size, tok_config.bottleneck_token_num, class_names, args.frame_prediction,
                         args.num_cond_frames if args.frame_prediction else None, args.tokenizer_name_or_path)
        source = f"`--tokenizer_name_or_path` {args.tokenizer_name_or_path}"

    # ---- generator
    model = build_generator(args, spec)
    set_torch_num_threads(args.torch_num_threads, [model] + ([tokenizer] if tokenizer is not None else []))
    check_generator(model.config, spec, source)
    gen_config = model.config
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
    lr_scheduler = get_lr_scheduler(args.lr_scheduler, optimizer, args.lr_warmup_steps, args.max_train_steps, args.min_lr_mult)
    model, optimizer = accelerator.prepare(model, optimizer)
    progress = TrainingProgress()
    CheckpointState(accelerator, models={CHECKPOINT_FOLDERS["model"]: model},
                    states={"progress": progress, "lr_scheduler": lr_scheduler, "data": sampler if sampler is not None else stream})
    load_checkpoint(accelerator, args.resume_from_checkpoint, args.output_dir)
    init_trackers(accelerator, args, args.tracker_project_name)

    val, eval_source = build_validation_tokens(args, spec, train_ds, tokenizer, tok_config, autocast)
    if spec.token_levels is not None:
        val = length_token_batch(val, gen_config)
        if spec.frame_prediction:
            val["forced_prefix"] = val["token_counts"][:, : len(spec.cond_token_counts)]
        check_token_batch({"label": val["label"].numpy()}, spec, num_classes, "validation tokens")
    else:
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
        if sampler is not None and spec.token_levels is not None:
            return length_token_batch(train_ds[sampler.next_indices()], gen_config, accelerator.device)
        if sampler is not None:
            rows = train_ds[sampler.next_indices()]
            batch = {k: rows[k] for k in token_columns(spec.frame_prediction)}
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
            pixel_values = random_flip_clips(pixel_values)
        tok = _tokenize_batch(tokenizer, pixel_values, spec, autocast)
        return {"input_ids": tok["input_ids"], "cond_ids": tok["cond_ids"], "label": labels.to(accelerator.device)}

    from tqdm.auto import tqdm

    bar = tqdm(total=args.max_train_steps, initial=progress.global_step, desc="steps", disable=not accelerator.is_main_process)
    t0, steps_timed, steps_this_run = time.perf_counter(), 0, 0
    loss_sum = torch.zeros((), device=accelerator.device)
    loss_count = 0
    last_eval: dict[str, Any] | None = None
    train_loss = None
    while progress.global_step < args.max_train_steps:
        step = progress.global_step + 1
        for _ in range(args.gradient_accumulation_steps):
            batch = next_batch()
            ids = batch["input_ids"]
            cond = {"cond_ids": batch["cond_ids"]} if spec.frame_prediction else {"class_labels": batch["label"]}
            with accelerator.accumulate(model):
                loss = model(input_ids=ids, labels=batch.get("labels", ids), **cond).loss
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
            mean = accelerator.reduce(loss_sum, reduction="mean").item() / loss_count
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
        if checkpoint_or_stop(accelerator, args, step, steps_this_run, on_checkpoint):
            bar.close()
            return end_stopped_run(accelerator, progress.global_step, steps_this_run)
    bar.close()
    accelerator.wait_for_everyone()

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
            **{k: last_eval[k] for k in ("nll_per_visual_token", "mean_tokens", "mean_generated_tokens") if k in last_eval},
            "codebook_size": spec.codebook_size,
            "frame_prediction": spec.frame_prediction,
            "num_cond_frames": spec.num_cond_frames,
            "tokenizer": spec.tokenizer,
            "history": progress.history,
        }
        final = bare_model(accelerator, model)
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
        write_json_atomic(os.path.join(args.output_dir, "eval_results.json"), results)
        summary = {k: results[k] for k in ("step", "initial_nll", "nll", "perplexity", "token_accuracy", "mean_tokens",
                                           "mean_generated_tokens") if results.get(k) is not None}
        print(json.dumps({"output_dir": args.output_dir, **summary}), flush=True)
        if args.push_to_hub:
            publish_folder(args.output_dir, args.hub_model_id, private=args.hub_private,
                           ignore_patterns=["checkpoint-*", "sample_data/*", "logs/*"], tokenizer_repo_id=tokenizer_repo)
    accelerator.end_training()
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
