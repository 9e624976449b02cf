#!/usr/bin/env python
"""Train or fine-tune a LARP or EVATok video tokenizer with Accelerate.

    accelerate launch training/train_tokenizer.py --config training/configs/larp_l_ucf101_k600.yaml
    python training/train_tokenizer.py --config training/configs/larp_tiny_samples.yaml --output_dir outputs/tiny

Recipe (larp.md §2, §4): L1 + LPIPS + non-saturating GAN with a transformer discriminator (updated every
``--disc_update_freq`` steps, its own Adam), LeCam, the VQ losses and the prior's latent CE with
scheduled sampling (``hf_vidtok.losses.LarpGeneratorObjective`` / ``LarpDiscriminatorObjective``);
warmup + cosine to ``--min_lr_mult`` (stepwise); optional EMA (diffusers ``EMAModel``), gradient
clipping, mixed precision and ``torch.compile``. Flags override the ``--config`` YAML recipe.

Choices where the official code has quirks (larp.md §9), each reproducing the recipe's effect:
* ``--prior_lr_mult`` really scales the prior's lr; its default 1.0 is what the official trainer
  effectively did (its 50x group was overwritten by the schedule every step).
* ``--lecam_weight`` is the effective weight (official 0.001 applied twice = 1e-6).
* ``--disc_start_step`` counts optimizer steps (official compared an epoch counter; both 0 in the release).
* Validation uses argmax VQ (deterministic); the official evaluator passes ``--det`` as well. The held-out
  clips are drawn with a fixed seed (not ``--seed``), so runs with different seeds are compared on the
  same clips; validation also reports codebook usage (a collapse shows as it falls).

EVATok (``--model_type evatok_tokenizer``, recipes ``evatok_*.yaml``): every clip gets an assignment from
``--assignment_sampling`` (``random``: stage 1, uniform over all candidates; ``uniform:K``), drawn from a
generator seeded by (seed, process, step, accumulation index), so resuming replays the same assignments;
each batch is sorted by total tokens and run in ``--assignment_micro_batches`` micro-batches (less padding).
Stage 4 (``--router PATH_OR_ID``): every clip's assignment is the frozen router's choice for that clip
(``--router_w_q`` for a quality-head router), and the router is attached to the tokenizer, so every saved
folder ships it and ``EvatokTokenizer.from_pretrained(folder).encode(video)`` picks assignments itself.
Losses: ``hf_vidtok.losses.EvatokGeneratorObjective`` (the LARP terms, VQ + entropy, optional V-JEPA 2
alignment); the discriminator step runs after the micro-batches on the whole batch. Validation reports the
default assignment's metrics and ``psnr_uniform_<K>`` / ``ssim_uniform_<K>`` for every level K.

Every ``checkpoint-<step>/`` holds ``tokenizer/``, ``tokenizer_ema/`` and ``discriminator/``
(``save_pretrained``) besides the optimizer states; resume with ``--resume_from_checkpoint latest``.
Multi-process on CPU: ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 ...``
(``--cpu --num_processes 2`` starts a single process; see ``hf_vidtok.training.setup_accelerator``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.logging import get_logger

from hf_vidtok import EvatokTokenizer, LarpTokenizer, LarpTokenizerConfig
from hf_vidtok.data import ShardedClipStream, hf_shard_reader, random_flip_clips
from hf_vidtok.losses import DISCRIMINATOR_LOSSES, LarpDiscriminatorObjective, LarpGeneratorObjective
from hf_vidtok.models.larp import LarpPriorLossSettings
from hf_vidtok.training import (
    CheckpointState,
    TrainingProgress,
    autocast_dtype,
    bare_model,
    checkpoint_or_stop,
    codebook_usage,
    end_stopped_run,
    evaluate_reconstruction,
    get_lr_scheduler,
    init_trackers,
    load_checkpoint,
    reduce_sums,
    run_training,
    save_side_by_side_video,
    write_json_atomic,
)
from hf_vidtok.training import arguments as targs
from hf_vidtok.training.assignment_sampling import (
    length_sorted_micro_batches,
    parse_assignment_sampling,
    static_padded_length,
)
from hf_vidtok.training.sample_data import sample_video_splits
from hf_vidtok.training.threads import set_torch_num_threads

logger = get_logger("hf_vidtok.train_tokenizer")

#: Checkpoint sub-folders (``save_pretrained``) of the trained modules.
CHECKPOINT_FOLDERS = {"model": "tokenizer", "ema": "tokenizer_ema", "discriminator": "discriminator"}
#: Seed of the held-out clip selection: fixed, so that every training seed is validated on the same clips.
VALIDATION_SEED = 0


# ----------------------------------------------------------------------------------------------- flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None, help="YAML recipe; its keys are these flags (plus `model_config`, a mapping of LarpTokenizerConfig arguments)")
    targs.add_model_arguments(p, "hf_vidtok LarpTokenizer")
    p.add_argument("--config_name", default=None, help="LarpTokenizerConfig json (file or folder) for training from scratch")
    p.add_argument("--model_type", default="larp_tokenizer", choices=["larp_tokenizer", "evatok_tokenizer"],
                   help="tokenizer family of --model_config / --config_name / --pretrained_model_name_or_path")
    targs.add_data_arguments(p)
    d = p.add_argument_group("tokenizer data")
    d.add_argument("--validation_split", default=None, help="split of --validation_data_dir (default: the first of validation, test, train that it has)")
    d.add_argument("--validation_dataset_layout", default=None, help="layout of --validation_data_dir (default: --dataset_layout)")
    d.add_argument("--sample_validation_fraction", type=float, default=0.25, help="with --sample_videos: the last fraction of every sample video's frames is held out for validation")
    d.add_argument("--sample_validation_video", default=None, help="with --sample_videos: hold out this whole sample video (stem) instead of a time split")
    d.add_argument("--resolution", type=int, default=None, help="clip size (default: the model's image_size)")
    d.add_argument("--num_frames", type=int, default=None, help="frames per clip (default: the model's num_frames)")
    d.add_argument("--num_validation_clips", type=int, default=64)
    d.add_argument("--validation_clips_per_video", type=int, default=1)
    targs.add_optimization_arguments(p, learning_rate=1e-4, adam_betas=(0.5, 0.9), weight_decay=0.0, train_batch_size=16,
                                     max_train_steps=1000)
    o = p.add_argument_group("tokenizer optimization")
    o.add_argument("--scale_lr", action="store_true", help="multiply the lrs by processes x batch x accumulation / 128 (the official global batch)")
    o.add_argument("--prior_lr_mult", type=float, default=1.0, help="lr multiplier of the prior (1.0 = the official effective behaviour)")
    o.add_argument("--codebook_lr_mult", type=float, default=1.0)
    o.add_argument("--use_ema", action="store_true")
    o.add_argument("--ema_decay", type=float, default=0.9999)
    targs.add_runtime_arguments(p, compile_help="torch.compile the tokenizer and discriminator")
    p.set_defaults(output_dir="outputs/larp-tokenizer")
    l = p.add_argument_group("losses (run settings; older config.json files held the VQ and prior ones)")
    l.add_argument("--pixel_loss_weight", type=float, default=1.0)
    l.add_argument("--perceptual_weight", type=float, default=1.0)
    l.add_argument("--lpips_model_name_or_path", default=None, help="LPIPS-VGG safetensors (file, folder or Hub id) for the loss and validation")
    l.add_argument("--i3d_model_name_or_path", default=None, help="I3D safetensors for validation FVD")
    l.add_argument("--vq_loss_weight", type=float, default=0.1)
    l.add_argument("--commitment_loss_weight", type=float, default=0.25, help="beta of the VQ loss (inside --vq_loss_weight)")
    l.add_argument("--codebook_loss_weight", type=float, default=1.0, help="inside --vq_loss_weight")
    l.add_argument("--entropy_loss_weight", type=float, default=0.0, help="VQ entropy loss, inside --vq_loss_weight (0 in the release)")
    l.add_argument("--entropy_loss_temperature", type=float, default=0.01)
    l.add_argument("--prior_loss_weight", type=float, default=0.06)
    defaults = LarpPriorLossSettings()
    l.add_argument("--prior_n_rounds", type=int, default=defaults.n_rounds, help="scheduled-sampling rounds of the prior's latent CE")
    l.add_argument("--prior_use_mix_ss", action=argparse.BooleanOptionalAction, default=defaults.use_mix_ss)
    l.add_argument("--prior_mix_ss_max_ratio", type=float, default=defaults.mix_ss_max_ratio)
    l.add_argument("--prior_mix_ss_peak_steps_ratio", type=float, default=defaults.mix_ss_peak_steps_ratio)
    l.add_argument("--prior_avg_loss_over_rounds", action=argparse.BooleanOptionalAction, default=defaults.avg_loss_over_rounds)
    l.add_argument("--prior_no_grad_before_last_round", action=argparse.BooleanOptionalAction, default=defaults.no_grad_before_last_round)
    l.add_argument("--prior_latent_ce_temperature", type=float, default=defaults.latent_ce_temperature)
    l.add_argument("--disc_weight", type=float, default=0.3, help="weight of the generator's adversarial loss (0 disables the GAN)")
    l.add_argument("--disc_loss", default="ns_smooth", choices=sorted(DISCRIMINATOR_LOSSES))
    l.add_argument("--disc_update_freq", type=int, default=5)
    l.add_argument("--disc_start_step", type=int, default=0)
    l.add_argument("--disc_learning_rate", type=float, default=3e-5)
    l.add_argument("--lecam_weight", type=float, default=1e-6, help="effective LeCam weight (official 0.001 applied twice)")
    l.add_argument("--lecam_decay", type=float, default=0.999)
    l.add_argument("--disc_hidden_size", type=int, default=512)
    l.add_argument("--disc_num_heads", type=int, default=8)
    l.add_argument("--disc_depth", type=int, default=12)
    e = p.add_argument_group("EVATok (--model_type evatok_tokenizer)")
    e.add_argument("--assignment_sampling", default="random",
                   help="'random' (stage 1: every clip draws its assignment uniformly from all candidates) or 'uniform:K'")
    e.add_argument("--router", default=None,
                   help="stage 4: EvatokRouter folder or Hub id; each clip's assignment is its choice (replaces "
                        "--assignment_sampling) and the saved tokenizer ships it")
    e.add_argument("--router_w_q", type=float, default=None,
                   help="preference w_q of a quality-head --router (default: its config's default_w_q)")
    e.add_argument("--assignment_micro_batches", type=int, default=1,
                   help="run every batch sorted by total tokens in this many micro-batches (less padding)")
    e.add_argument("--alignment_model_name_or_path", default=None, help="V-JEPA 2 checkpoint (folder or Hub id): turns the alignment loss on")
    e.add_argument("--alignment_weight", type=float, default=0.7)
    e.add_argument("--alignment_input_size", type=int, default=None, help="V-JEPA 2 input size (default: its crop_size)")
    e.add_argument("--alignment_feature_layer", type=int, default=-1)
    targs.add_checkpointing_arguments(p, checkpointing_steps=500, validation_steps=500)
    v = p.add_argument_group("tokenizer validation")
    v.add_argument("--skip_initial_validation", action="store_true")
    v.add_argument("--video_fps", type=int, default=8)
    v.add_argument("--num_validation_videos", type=int, default=4, help="clips shown in the reconstruction mp4")
    targs.add_tracking_arguments(p, project_name="hf_vidtok-larp")
    p.add_argument("--ddp_find_unused_parameters", action="store_true")
    p.add_argument("--record_seen_clips", action="store_true", help="write each process's training clips (path, start frame) and a hash of its final weights to output_dir/data_audit/")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = targs.parse_args_with_config(build_parser(), argv, dict_keys=["model_config"])
    targs.validate_args(args, model_sources=("pretrained_model_name_or_path", "original_model_name_or_path",
                                             "config_name", "model_config"))
    if not args.sample_videos and args.train_data_dir is None:
        raise ValueError("`--train_data_dir` is required (or `--sample_videos` for the bundled sample videos)")
    if args.router is not None and args.model_type != "evatok_tokenizer":
        raise ValueError("`--router` needs `--model_type evatok_tokenizer`")
    if args.router_w_q is not None and args.router is None:
        raise ValueError("`--router_w_q` needs `--router`")
    prior_loss_settings(args)  # validates the prior flags
    return args


def prior_loss_settings(args) -> LarpPriorLossSettings:
    return LarpPriorLossSettings(
        n_rounds=args.prior_n_rounds, use_mix_ss=args.prior_use_mix_ss, mix_ss_max_ratio=args.prior_mix_ss_max_ratio,
        mix_ss_peak_steps_ratio=args.prior_mix_ss_peak_steps_ratio, avg_loss_over_rounds=args.prior_avg_loss_over_rounds,
        no_grad_before_last_round=args.prior_no_grad_before_last_round, latent_ce_temperature=args.prior_latent_ce_temperature,
    )


# ----------------------------------------------------------------------------------------------- model


def build_model(args) -> LarpTokenizer | EvatokTokenizer:
    cls = EvatokTokenizer if args.model_type == "evatok_tokenizer" else LarpTokenizer
    if args.pretrained_model_name_or_path:
        model = cls.from_pretrained(args.pretrained_model_name_or_path, revision=args.revision)
    elif args.original_model_name_or_path:
        if cls is not LarpTokenizer:
            raise ValueError("`--original_model_name_or_path` loads official LARP checkpoints only")
        from hf_vidtok.models.larp.convert_larp_original_to_hf import load_original_model

        model = load_original_model(args.original_model_name_or_path)
    else:
        if args.config_name:
            config = cls.config_class.from_pretrained(args.config_name)
        else:
            config = cls.config_class(**(args.model_config or {}))
        model = cls(config)
    if getattr(args, "router", None):  # stage 4: the frozen router lives in the tokenizer (checkpoints ship it)
        from hf_vidtok.models.evatok import EvatokRouter
        from hf_vidtok.models.evatok.modeling_evatok_router import attach_router

        attach_router(model, EvatokRouter.from_pretrained(args.router))
    model.train()
    return model


def build_discriminator(args, config: LarpTokenizerConfig):
    """The official transformer discriminator sized for the tokenizer's clips (None when the GAN is off)."""
    if args.disc_weight <= 0:
        return None
    from hf_vidtok.losses import TransformerDiscriminator

    return TransformerDiscriminator(
        in_channels=config.in_channels, hidden_size=args.disc_hidden_size, num_heads=args.disc_num_heads,
        depth=args.disc_depth, temporal_patch_size=config.temporal_patch_size, patch_size=config.patch_size,
        input_size=config.image_size, num_frames=config.num_frames,
    )


def build_lpips(path: str | None, device):
    if path is None:
        return None
    from hf_vidtok.metrics import LPIPS

    lpips = LPIPS.from_pretrained(path).to(device).eval()
    lpips.requires_grad_(False)
    return lpips


# ------------------------------------------------------------------------------------------------ data


def _dataset_kwargs(args, split: str, seed: int, clips_per_video: int) -> dict:
    return dict(layout=args.dataset_layout, split=split, num_frames=args.num_frames, resolution=args.resolution,
                frame_stride=args.frame_stride, clips_per_video=clips_per_video, streaming=True, seed=seed)


def _default_validation_split(args) -> str:
    """The held-out split: the first of validation / test / train present in --validation_data_dir
    (train only when it is a different folder than the training data)."""
    from hf_vidtok.data import list_videos

    layout = args.validation_dataset_layout or args.dataset_layout
    available = list_videos(layout, args.validation_data_dir, split=None).splits
    candidates = ["validation", "test"]
    if os.path.abspath(str(args.validation_data_dir)) != os.path.abspath(str(args.train_data_dir)):
        candidates.append("train")
    for split in candidates:
        if available.get(split):
            return split
    raise ValueError(
        f"no held-out split in {args.validation_data_dir!r} (has {sorted(available)}): give `--validation_data_dir` "
        "with videos not used for training, or `--validation_split`"
    )


def build_train_stream(args, accelerator) -> ShardedClipStream:
    from accelerate.utils import gather_object

    from hf_vidtok.data import collate_video_clips, load_video_dataset

    def make_dataset(epoch: int):
        return load_video_dataset(args.train_data_dir, **_dataset_kwargs(args, args.train_split, args.seed + epoch, args.clips_per_video))

    def collate(examples):
        batch = collate_video_clips(examples)
        batch["clip_ids"] = [f"{ex.get('path')}@{ex.get('start_frame')}" for ex in examples]
        return batch

    return ShardedClipStream(
        hf_shard_reader(make_dataset), make_dataset(0).num_shards, batch_size=args.train_batch_size, collate_fn=collate,
        process_index=accelerator.process_index, num_processes=accelerator.num_processes,
        num_workers=args.dataloader_num_workers, seed=args.seed, shuffle=True,
        gather_fn=lambda obj: gather_object([obj]),
    )


def load_validation_clips(args, accelerator) -> list[torch.Tensor]:
    """This process's share of the held-out clips as uint8 batches (kept in memory, same every time). The
    files are shuffled and the clip starts drawn with :data:`VALIDATION_SEED`, whatever ``--seed`` is."""
    from hf_vidtok.data import collate_video_clips, load_video_dataset

    kwargs = _dataset_kwargs(args, args.validation_split, VALIDATION_SEED, args.validation_clips_per_video)
    kwargs["layout"] = args.validation_dataset_layout or args.dataset_layout
    ds = load_video_dataset(args.validation_data_dir, shuffle=True, **kwargs)
    clips = []
    for example in ds:
        clips.append(example)
        if len(clips) >= args.num_validation_clips:
            break
    if not clips:
        raise ValueError(f"the validation data ({args.validation_data_dir!r}, split {args.validation_split!r}) holds no clips")
    mine = clips[accelerator.process_index :: accelerator.num_processes]
    bs = args.validation_batch_size or args.train_batch_size
    return [(collate_video_clips(mine[i : i + bs])["pixel_values"] * 255).round().to(torch.uint8) for i in range(0, len(mine), bs)]


def check_batch(pixel_values: torch.Tensor, config: LarpTokenizerConfig, where: str) -> None:
    expected = (config.in_channels, config.num_frames, config.image_size, config.image_size)
    if pixel_values.dim() != 5 or tuple(pixel_values.shape[1:]) != expected:
        raise ValueError(
            f"{where} clips have shape {tuple(pixel_values.shape)} but the tokenizer expects (B, C, T, H, W) = "
            f"(B, {', '.join(map(str, expected))}); make `--num_frames`/`--resolution` match the model config "
            f"(num_frames={config.num_frames}, image_size={config.image_size})"
        )


# ------------------------------------------------------------------------------------------- the step


@dataclass
class Components:
    model: Any
    optimizer: Any
    lr_scheduler: Any
    generator_objective: LarpGeneratorObjective
    discriminator: Any = None
    disc_optimizer: Any = None
    disc_lr_scheduler: Any = None
    discriminator_objective: LarpDiscriminatorObjective | None = None
    ema: Any = None
    prior_loss_settings: LarpPriorLossSettings | None = None
    assignment_sampler: Any = None  # EVATok
    alignment: Any = None  # EVATok: VJepa2Alignment (prepared)


def build_alignment(args, config):
    """The V-JEPA 2 alignment loss module (None without ``--alignment_model_name_or_path``)."""
    if args.alignment_model_name_or_path is None or args.alignment_weight <= 0:
        return None
    from hf_vidtok.losses import VJepa2Alignment

    return VJepa2Alignment(args.alignment_model_name_or_path, decoder_hidden_size=config.hidden_size,
                           temporal_patch_size=config.temporal_patch_size, input_size=args.alignment_input_size,
                           feature_layer=args.alignment_feature_layer)


def build_components(args, accelerator, model: LarpTokenizer) -> Components:
    """Optimizers, schedules, discriminator, objectives and EMA, prepared with ``accelerator``."""
    lr, disc_lr = args.learning_rate, args.disc_learning_rate
    if args.scale_lr:
        factor = accelerator.num_processes * args.train_batch_size * args.gradient_accumulation_steps / 128
        lr, disc_lr = lr * factor, disc_lr * factor
    evatok = isinstance(model, EvatokTokenizer)
    config = model.config  # `model` is DDP-wrapped after `prepare` on several processes
    alignment = build_alignment(args, config) if evatok else None
    if evatok:  # one group (+ the alignment projector)
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": args.adam_weight_decay}]
        if alignment is not None:
            groups.append({"params": alignment.trainable_parameters(), "weight_decay": args.adam_weight_decay})
    else:
        groups = model.optimizer_param_groups(lr, prior_lr_mult=args.prior_lr_mult, codebook_lr_mult=args.codebook_lr_mult,
                                              weight_decay=args.adam_weight_decay)
    betas = (args.adam_beta1, args.adam_beta2)
    optimizer = torch.optim.Adam(groups, lr=lr, betas=betas, eps=args.adam_epsilon)
    lr_scheduler = get_lr_scheduler(args.lr_scheduler, optimizer, args.lr_warmup_steps, args.max_train_steps, args.min_lr_mult)
    disc = build_discriminator(args, config)
    ema = None
    if args.use_ema:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(model.parameters(), decay=args.ema_decay)
    disc_opt = disc_sched = d_objective = None
    if disc is not None:
        disc_opt = torch.optim.Adam(disc.parameters(), lr=disc_lr, betas=betas, eps=args.adam_epsilon)
        disc_sched = get_lr_scheduler(args.lr_scheduler, disc_opt, args.lr_warmup_steps, args.max_train_steps, args.min_lr_mult)
        model, optimizer, disc, disc_opt = accelerator.prepare(model, optimizer, disc, disc_opt)
        d_objective = LarpDiscriminatorObjective(disc, loss_type=args.disc_loss, lecam_weight=args.lecam_weight,
                                                 lecam_decay=args.lecam_decay, update_every=args.disc_update_freq)
        d_objective.lecam.to(accelerator.device)
    else:
        model, optimizer = accelerator.prepare(model, optimizer)
    if ema is not None:
        ema.to(accelerator.device)
    if alignment is not None:
        alignment = accelerator.prepare(alignment.to(accelerator.device))
    lpips = None
    if args.perceptual_weight > 0:
        if args.lpips_model_name_or_path is None:
            raise ValueError(
                "`--perceptual_weight` > 0 needs LPIPS weights: give `--lpips_model_name_or_path` (see "
                "hf_vidtok.metrics.convert_lpips_weights) or set `--perceptual_weight 0`"
            )
        lpips = build_lpips(args.lpips_model_name_or_path, accelerator.device)
    if evatok:
        from hf_vidtok.losses import EvatokGeneratorObjective

        vq = args.vq_loss_weight
        g_objective = EvatokGeneratorObjective(
            lpips, None if disc is None else bare_model(accelerator, disc), alignment=alignment,
            pixel_weight=args.pixel_loss_weight, perceptual_weight=args.perceptual_weight,
            adversarial_weight=max(args.disc_weight, 0.0), commitment_weight=vq * args.commitment_loss_weight,
            codebook_weight=vq * args.codebook_loss_weight, entropy_weight=vq * args.entropy_loss_weight,
            alignment_weight=args.alignment_weight, adversarial_start_step=args.disc_start_step,
        )
        sampler = parse_assignment_sampling(args.assignment_sampling, config.token_levels, config.num_blocks)
        return Components(model, optimizer, lr_scheduler, g_objective, disc, disc_opt, disc_sched, d_objective, ema,
                          None, sampler, alignment)
    g_objective = LarpGeneratorObjective(
        lpips, None if disc is None else bare_model(accelerator, disc), pixel_weight=args.pixel_loss_weight,
        perceptual_weight=args.perceptual_weight, adversarial_weight=max(args.disc_weight, 0.0),
        vq_weight=args.vq_loss_weight, prior_weight=args.prior_loss_weight, adversarial_start_step=args.disc_start_step,
        commitment_weight=args.commitment_loss_weight, codebook_weight=args.codebook_loss_weight,
        entropy_weight=args.entropy_loss_weight,
    )
    return Components(model, optimizer, lr_scheduler, g_objective, disc, disc_opt, disc_sched, d_objective, ema,
                      prior_loss_settings(args))


def discriminator_step(args, accelerator, c: Components, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """One discriminator update on ``real`` clips and detached reconstructions ``fake``; returns its logs."""
    with accelerator.autocast():
        d_out = c.discriminator_objective(real, fake)
    accelerator.backward(d_out.loss)
    if accelerator.sync_gradients and args.max_grad_norm > 0:
        accelerator.clip_grad_norm_(c.discriminator.parameters(), args.max_grad_norm)
    c.disc_optimizer.step()
    c.disc_optimizer.zero_grad(set_to_none=True)
    return {"d_loss": d_out.loss.detach(), "logits_real": d_out.real_logits_mean, "logits_fake": d_out.fake_logits_mean}


def train_step(args, accelerator, c: Components, pixel_values: torch.Tensor, global_step: int,
               accum_index: int = 0) -> dict[str, torch.Tensor]:
    """One micro-batch of the LARP recipe; ``global_step`` is the 1-based optimizer step it belongs to.
    Returns detached loss terms."""
    if c.assignment_sampler is not None:
        return train_step_evatok(args, accelerator, c, pixel_values, global_step, accum_index)
    logs: dict[str, torch.Tensor] = {}
    models = (c.model,) if c.discriminator is None else (c.model, c.discriminator)
    with accelerator.accumulate(*models):
        # under torch.compile a python step number would be specialised (one recompile per step); a 0-dim
        # tensor keeps the scheduled-sampling ratio dynamic
        step_arg = torch.tensor(float(global_step), dtype=torch.float64) if args.torch_compile else global_step
        out = c.model(pixel_values, global_step=step_arg, max_steps=args.max_train_steps,
                      prior_loss_settings=c.prior_loss_settings,
                      entropy_loss_temperature=args.entropy_loss_temperature if args.entropy_loss_weight else None)
        gan_on = c.generator_objective.adversarial_active(global_step)
        d = c.discriminator_objective
        if gan_on and d.is_update_step(global_step):  # the discriminator sees detached reconstructions
            logs.update(discriminator_step(args, accelerator, c, pixel_values, out.reconstruction.detach()))
        with accelerator.autocast():
            g_out = c.generator_objective(pixel_values, out, global_step=global_step)
        logs.update(l1=g_out.pixel_loss.detach(), vq_loss=g_out.vq_loss.detach())
        if c.generator_objective.perceptual_weight > 0:
            logs["lpips"] = g_out.perceptual_loss.detach()
        if gan_on:
            logs["g_adv"] = g_out.adversarial_loss.detach()
        if out.prior_loss is not None:
            logs.update(prior_loss=out.prior_loss.detach(), prior_top1_acc=out.prior_top1_acc.detach())
        logs["loss"] = g_out.loss.detach()
        accelerator.backward(g_out.loss)
        if accelerator.sync_gradients and args.max_grad_norm > 0:
            logs["grad_norm"] = accelerator.clip_grad_norm_(c.model.parameters(), args.max_grad_norm).detach()
        c.optimizer.step()
        c.optimizer.zero_grad(set_to_none=True)
    return logs


def assignment_generator(args, accelerator, global_step: int, accum_index: int) -> torch.Generator:
    """CPU generator of one batch's assignments, a function of (seed, process, step, accumulation index)."""
    seed = ((args.seed * 1_000_003 + accelerator.process_index) * 1_000_003 + global_step) * 1_009 + accum_index
    return torch.Generator().manual_seed(seed % (2**63))


def train_step_evatok(args, accelerator, c: Components, pixel_values: torch.Tensor, global_step: int,
                      accum_index: int) -> dict[str, torch.Tensor]:
    """One batch of the EVATok recipe: per-clip assignments, length-sorted micro-batches (gradients weighted by
    their share of the batch), then the discriminator step on the whole batch's detached reconstructions."""
    import contextlib

    b = pixel_values.shape[0]
    router = bare_model(accelerator, c.model).router if getattr(args, "router", None) else None
    if router is not None:  # stage 4: the frozen router's choice per clip (to the host: one sync per batch)
        assignment = router.select(pixel_values, w_q=args.router_w_q).cpu()
    else:
        assignment = c.assignment_sampler.sample(b, assignment_generator(args, accelerator, global_step, accum_index))
    groups = length_sorted_micro_batches(assignment, min(args.assignment_micro_batches, b))
    models = (c.model,) if c.discriminator is None else (c.model, c.discriminator)
    # --torch_compile: the model is compiled whole (fullgraph); the assignment tensor is not read on the host
    # inside the graph, so the padded length comes from here (a few static widths instead of max_tokens)
    multiple = max(bare_model(accelerator, c.model).config.token_levels) if args.torch_compile else None
    sums: dict[str, torch.Tensor] = {}
    with accelerator.accumulate(*models):
        recs = torch.empty_like(pixel_values)
        for i, idx in enumerate(groups):
            idx_dev = idx.to(pixel_values.device)
            x = pixel_values[idx_dev]
            last = i == len(groups) - 1
            sync = contextlib.nullcontext() if last else accelerator.no_sync(c.model)
            with sync:
                width = None if multiple is None else static_padded_length(assignment[idx], multiple)
                out = c.model(x, assignment[idx], output_align_hidden_states=c.alignment is not None, max_length=width)
                with accelerator.autocast():
                    g_out = c.generator_objective(x, out, global_step=global_step)
                accelerator.backward(g_out.loss * (len(idx) / b))
            recs[idx_dev] = out.reconstruction.detach().to(recs.dtype)
            share = len(idx) / b
            terms = {"loss": g_out.loss, "l1": g_out.pixel_loss, "vq_loss": g_out.vq_loss, "entropy": g_out.entropy_loss,
                     "tokens": assignment[idx].sum(1).float().mean()}
            if c.generator_objective.perceptual_weight > 0:
                terms["lpips"] = g_out.perceptual_loss
            if c.alignment is not None:
                terms["align"] = g_out.alignment_loss
            if c.generator_objective.adversarial_active(global_step):
                terms["g_adv"] = g_out.adversarial_loss
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float().cpu() * share
        logs = dict(sums)
        d = c.discriminator_objective
        if c.generator_objective.adversarial_active(global_step) and d.is_update_step(global_step):
            logs.update(discriminator_step(args, accelerator, c, pixel_values, recs))
        if accelerator.sync_gradients and args.max_grad_norm > 0:
            params = [p for g in c.optimizer.param_groups for p in g["params"]]
            logs["grad_norm"] = accelerator.clip_grad_norm_(params, args.max_grad_norm).detach()
        c.optimizer.step()
        c.optimizer.zero_grad(set_to_none=True)
    return logs


class FixedAssignmentView(torch.nn.Module):
    """An EVATok tokenizer seen as a fixed-length one (``encode(x)`` / ``decode_latents(q)`` with one
    assignment for every clip), for the shared validation code."""

    def __init__(self, model: EvatokTokenizer, assignment):
        super().__init__()
        self.model, self.assignment = model, tuple(int(k) for k in assignment)

    def encode(self, pixel_values):
        return self.model.encode(pixel_values, self.assignment)

    def decode_latents(self, quantized):
        return self.model.decode_latents(quantized, self.assignment)


# ------------------------------------------------------------------------------------------ validation


def validation_metrics(args, device):
    from hf_vidtok.metrics import psnr, ssim

    metrics = {
        "psnr": lambda x, y: psnr(x, y, reduction="none"),
        "ssim": lambda x, y: ssim(x, y, reduction="none"),
    }
    if args.lpips_model_name_or_path:
        lpips = build_lpips(args.lpips_model_name_or_path, device)
        metrics["lpips"] = lambda x, y: lpips(x.float(), y.float())  # (B,) per-video mean over frames
    return metrics


def run_validation(args, accelerator, c: Components, batches, step: int, metrics) -> dict[str, float]:
    """PSNR / SSIM (/ LPIPS / FVD) and codebook usage of the (EMA) model on the held-out clips, over all
    processes; the main process also writes the side-by-side mp4."""
    model = bare_model(accelerator, c.model)
    if c.ema is not None:
        c.ema.store(model.parameters())
        c.ema.copy_to(model.parameters())
    fvd = None
    if args.i3d_model_name_or_path:
        from hf_vidtok.metrics import FVD

        fvd = FVD.from_pretrained(args.i3d_model_name_or_path).to(accelerator.device)
    codebook_size = model.config.codebook_size
    eval_model, levels = model, {}
    if isinstance(model, EvatokTokenizer):  # the default assignment, and every uniform level
        eval_model = FixedAssignmentView(model, model.config.default_assignment)
        levels = {k: FixedAssignmentView(model, (k,) * model.config.num_blocks) for k in model.config.token_levels}
    try:
        floats = [b.float() / 255 for b in batches]
        if floats:
            res, pair = evaluate_reconstruction(
                eval_model, floats, metrics=metrics, device=accelerator.device, autocast_dtype=autocast_dtype(args.mixed_precision),
                keep_first=args.num_validation_videos if accelerator.is_main_process else 0, codebook_size=codebook_size,
            )
        else:  # fewer held-out clips than processes: this one has none
            res = {**{k: 0.0 for k in metrics}, "num_clips": 0,
                   "code_counts": torch.zeros(codebook_size, dtype=torch.long, device=accelerator.device)}
            pair = None
        for k, view in levels.items():
            level_res = evaluate_reconstruction(view, floats, metrics=metrics, device=accelerator.device,
                                                autocast_dtype=autocast_dtype(args.mixed_precision))[0] if floats else {}
            res.update({f"{name}_uniform_{k}": level_res.get(name, 0.0) for name in metrics})
        if fvd is not None:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                model.eval()
                for clips in floats:
                    clips = clips.to(accelerator.device)
                    fvd.update(clips, real=True)
                    fvd.update(eval_model.decode_latents(eval_model.encode(clips).quantized).clamp(0, 1), real=False)
                model.train()
    finally:
        if c.ema is not None:
            c.ema.restore(model.parameters())
    counts = accelerator.reduce(res.pop("code_counts"), reduction="sum")
    total = reduce_sums(accelerator, res)
    out = {k: v / total["num_clips"] for k, v in total.items() if k != "num_clips"}
    out["num_clips"] = int(total["num_clips"])
    out.update(codebook_usage(counts))
    if fvd is not None:
        if accelerator.num_processes > 1:
            fvd.gather()
        out["rfvd"] = float(fvd.compute())
    if accelerator.is_main_process and pair is not None:
        scale = max(1, 128 // pair[0].shape[-1])
        path = save_side_by_side_video(pair[0], pair[1], os.path.join(args.output_dir, "validation", f"reconstruction_step_{step}.mp4"),
                                       fps=args.video_fps, scale=scale)
        save_side_by_side_video(pair[0], pair[1], os.path.join(args.output_dir, "reconstruction.mp4"), fps=args.video_fps, scale=scale)
        out["video"] = os.path.relpath(path, args.output_dir)
    return out


def write_eval_results(args, progress: TrainingProgress, step: int, metrics: dict[str, float]) -> dict:
    initial = progress.initial_metrics
    results = {
        "step": step,
        **{k: v for k, v in metrics.items() if k != "video"},
        "initial_psnr": initial.get("psnr"),
        "initial_ssim": initial.get("ssim"),
        "psnr_gain": None if initial.get("psnr") is None else metrics["psnr"] - initial["psnr"],
        "num_validation_clips": metrics.get("num_clips"),
        "validation_data": "held-out clips",
        "resolution": args.resolution,
        "num_frames": args.num_frames,
        "history": progress.history,
    }
    write_json_atomic(os.path.join(args.output_dir, "eval_results.json"), results)
    return results


def write_data_audit(args, accelerator, c: Components, seen: list[str]) -> str:
    """``data_audit/rank<i>.json``: the clips this process trained on and a SHA-256 of its weights."""
    from hf_vidtok.models.fingerprint import weights_sha256

    folder = os.path.join(args.output_dir, "data_audit")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"rank{accelerator.process_index}.json")
    write_json_atomic(path, {"process_index": accelerator.process_index, "num_processes": accelerator.num_processes,
                             "clips": seen, "weights_sha256": weights_sha256(bare_model(accelerator, c.model))})
    return path


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None, *, on_checkpoint: Callable[[int, str], None] | None = None) -> dict[str, Any]:
    """Run the script; ``on_checkpoint(step, folder)`` is called after every saved checkpoint."""
    args = parse_args(argv)
    return run_training(args, lambda a, acc: _train(a, acc, on_checkpoint), find_unused_parameters=args.ddp_find_unused_parameters,
                        dynamo_fullgraph=args.model_type == "evatok_tokenizer")


def _train(args, accelerator, on_checkpoint=None) -> dict[str, Any]:
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    model = build_model(args)
    set_torch_num_threads(args.torch_num_threads, [model])
    config = model.config
    args.num_frames = config.num_frames if args.num_frames is None else args.num_frames
    args.resolution = config.image_size if args.resolution is None else args.resolution
    if args.num_frames != config.num_frames:
        raise ValueError(f"`--num_frames` {args.num_frames} does not match the model's num_frames {config.num_frames}")
    if args.resolution != config.image_size:
        raise ValueError(f"`--resolution` {args.resolution} does not match the model's image_size {config.image_size}")
    if args.sample_videos:  # written once per output folder (the first process of each machine; reused after)
        with accelerator.local_main_process_first():
            args.train_data_dir, args.validation_data_dir = sample_video_splits(
                os.path.join(args.output_dir, "sample_data"), resolution=args.resolution, num_frames=args.num_frames,
                validation_fraction=args.sample_validation_fraction, validation_video=args.sample_validation_video,
            )
        args.dataset_layout, args.validation_dataset_layout = "csv", "csv"
        args.train_split, args.validation_split = "train", "train"
    if args.validation_data_dir is None:
        args.validation_data_dir = args.train_data_dir
    if args.validation_split is None:
        args.validation_split = _default_validation_split(args)

    stream = build_train_stream(args, accelerator)
    logger.info("process %d of %d: %d of the %d training files per epoch, %d clips per step",
                accelerator.process_index, accelerator.num_processes, stream.files_per_epoch(), stream.num_shards,
                args.train_batch_size * args.gradient_accumulation_steps, main_process_only=False)
    c = build_components(args, accelerator, model)
    # identical initial weights came from the shared seed; from here on each process draws its own VQ samples,
    # flips and scheduled-sampling masks (official: seed + rank)
    set_seed(args.seed, device_specific=True)
    progress = TrainingProgress()
    folders = CHECKPOINT_FOLDERS
    models = {folders["model"]: c.model}
    states: dict[str, Any] = {"progress": progress, "lr_scheduler": c.lr_scheduler, "data_stream": stream}
    modules = {}
    if c.discriminator is not None:
        models[folders["discriminator"]] = c.discriminator
        states["disc_lr_scheduler"] = c.disc_lr_scheduler
        modules["lecam"] = c.discriminator_objective.lecam
    if c.alignment is not None:
        modules["alignment_projector"] = bare_model(accelerator, c.alignment).projector
    CheckpointState(accelerator, models=models, modules=modules, states=states,
                    emas={} if c.ema is None else {folders["ema"]: (c.ema, folders["model"])})
    load_checkpoint(accelerator, args.resume_from_checkpoint, args.output_dir)
    init_trackers(accelerator, args, args.tracker_project_name)

    val_batches = load_validation_clips(args, accelerator)
    for b in val_batches:
        check_batch(b, config, "validation")
    metrics = validation_metrics(args, accelerator.device)
    last_eval: dict[str, Any] | None = None
    if progress.global_step == 0 and not args.skip_initial_validation:
        initial = run_validation(args, accelerator, c, val_batches, 0, metrics)
        progress.initial_metrics = {k: v for k, v in initial.items() if isinstance(v, float)}
        progress.history.append({"step": 0, **progress.initial_metrics})
        logger.info("initial validation: %s", initial)
        accelerator.log({f"validation/{k}": v for k, v in progress.initial_metrics.items()}, step=0)

    loader = torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=args.dataloader_num_workers,
        generator=torch.Generator().manual_seed(args.seed),  # never touch the global RNG
        persistent_workers=False,
    )
    bar = tqdm(total=args.max_train_steps, initial=progress.global_step, desc="steps", disable=not accelerator.is_main_process)
    data_iter = iter(loader)
    t0, steps_timed, steps_this_run = time.perf_counter(), 0, 0
    first = True
    reported_skips = 0
    seen: list[str] | None = [] if args.record_seen_clips else None
    while progress.global_step < args.max_train_steps:
        step = progress.global_step + 1
        for accum_index in range(args.gradient_accumulation_steps):
            try:
                batch = next(data_iter)
            except StopIteration:
                raise ValueError(
                    f"the training data ({args.train_data_dir!r}) yielded no clips for process "
                    f"{accelerator.process_index}: every file was skipped as unreadable or too short"
                ) from None
            pixel_values = batch["pixel_values"]
            if first:
                check_batch(pixel_values, config, "training")
                first = False
            stream.mark_consumed(batch["stream_state"], pixel_values.shape[0])
            if seen is not None:
                seen.extend(batch["clip_ids"])
            pixel_values = pixel_values.to(accelerator.device, non_blocking=True)
            if args.random_flip:
                pixel_values = random_flip_clips(pixel_values)
            logs = train_step(args, accelerator, c, pixel_values, step, accum_index)
        c.lr_scheduler.step()
        if c.disc_lr_scheduler is not None:
            with warnings.catch_warnings():  # D steps only every disc_update_freq steps; its lr follows every step
                warnings.filterwarnings("ignore", message=r".*lr_scheduler.step\(\)` before `optimizer.step\(\)`")
                c.disc_lr_scheduler.step()
        if c.ema is not None:
            c.ema.step(bare_model(accelerator, c.model).parameters())
        progress.global_step = step
        steps_timed += 1
        steps_this_run += 1
        bar.update(1)
        if step % args.logging_steps == 0 or step == args.max_train_steps:
            elapsed = time.perf_counter() - t0
            running = {k: v.float().item() for k, v in logs.items()}
            if not math.isfinite(running["loss"]):
                raise FloatingPointError(f"non-finite training loss {running['loss']} at step {step}")
            record = {f"train/{k}": v for k, v in running.items()}
            record["train/lr"] = c.optimizer.param_groups[0]["lr"]
            record["train/steps_per_s"] = steps_timed / max(elapsed, 1e-9)
            record["data/epoch"] = stream.epoch
            record["data/skipped_files"] = stream.skipped_files
            accelerator.log(record, step=step)
            if stream.skipped_files > reported_skips:
                reported_skips = stream.skipped_files
                logger.warning("process %d: %d training video file(s) skipped so far (unreadable or too short)",
                               accelerator.process_index, reported_skips, main_process_only=False)
            bar.set_postfix(loss=f"{running['loss']:.4f}", lr=f"{record['train/lr']:.2e}")
            t0, steps_timed = time.perf_counter(), 0
        if step % args.validation_steps == 0 or step == args.max_train_steps:
            last_eval = run_validation(args, accelerator, c, val_batches, step, metrics)
            last_eval["skipped_train_files"] = int(reduce_sums(accelerator, {"n": stream.skipped_files})["n"])
            entry = {"step": step, **{k: v for k, v in last_eval.items() if isinstance(v, float)}}
            progress.history.append(entry)
            accelerator.log({f"validation/{k}": v for k, v in entry.items() if k != "step"}, step=step)
            if accelerator.is_main_process:
                write_eval_results(args, progress, step, last_eval)
            logger.info("step %d validation: %s", step, last_eval)
        if checkpoint_or_stop(accelerator, args, step, steps_this_run, on_checkpoint):
            bar.close()
            return end_stopped_run(accelerator, progress.global_step, steps_this_run)
    bar.close()
    accelerator.wait_for_everyone()
    if seen is not None:
        write_data_audit(args, accelerator, c, seen)
    results: dict[str, Any] = {}
    if accelerator.is_main_process:
        eval_path = os.path.join(args.output_dir, "eval_results.json")
        if last_eval is not None:
            results = write_eval_results(args, progress, progress.global_step, last_eval)
        elif os.path.exists(eval_path):  # resumed at the final step: the last validation is on disk
            with open(eval_path, encoding="utf-8") as f:
                results = json.load(f)
        final = bare_model(accelerator, c.model)
        if c.ema is not None:
            final.save_pretrained(os.path.join(args.output_dir, "non_ema"))
            c.ema.copy_to(final.parameters())
        from hf_vidtok.hub.publishing import publish_folder, save_pretrained_with_card

        card_results = {k: v for k, v in results.items() if k != "history"}
        save_pretrained_with_card(final, args.output_dir, eval_results=card_results, training_config=vars(args),
                                  repo_id=args.hub_model_id)
        # save_pretrained_with_card writes the card's view of the results; keep the full file
        write_json_atomic(eval_path, results)
        summary = {k: results.get(k) for k in ("step", "initial_psnr", "psnr", "psnr_gain", "ssim", "lpips", "rfvd",
                                               "codebook_usage", "codebook_perplexity", "skipped_train_files")
                   if results.get(k) is not None}
        print(json.dumps({"output_dir": args.output_dir, **summary}), flush=True)
        if args.push_to_hub:
            publish_folder(args.output_dir, args.hub_model_id, private=args.hub_private,
                           ignore_patterns=["checkpoint-*", "sample_data/*", "logs/*", "non_ema/*"])
    accelerator.end_training()
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
