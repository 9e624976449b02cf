"""Semantic discriminator on a frozen VideoMAE (EVATok Sec. 3.4, final tokenizers).

A frozen ``transformers.VideoMAEModel`` is tapped at several depths; every tap gets a small trainable 1-D
conv head over its token sequence that outputs one logit per token (the StyleGAN-T / VAR ``DinoDisc``
design GigaTok uses: Conv1d k=1 + BatchNormLocal + LeakyReLU, a circular Conv1d k=9 residual block,
Conv1d to 1 channel). Only the backbone's *parameters* are frozen: fakes back-propagate through it to
the tokenizer. Losses: hinge for the discriminator (:func:`hinge_discriminator_loss`), ``-mean D(x_hat)``
for the generator (:func:`hinge_generator_loss`).
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from torch import nn

from .gan_losses import hinge_discriminator_loss
from .vjepa2_alignment import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, _FrozenBackboneMixin, check_video
from .vjepa2_alignment import normalize_video, resize_video

__all__ = ["VideoMAEDiscriminator", "BatchNormLocal", "hinge_generator_loss", "hinge_discriminator_loss"]


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge-GAN generator loss ``-mean D(x_hat)``."""
    return -fake_logits.float().mean()


class BatchNormLocal(nn.Module):
    """Batch norm over ``(virtual batch, length)`` of ``(B, C, L)`` with batch statistics in train and eval
    (StyleGAN-T): the batch is split into ``ceil(B / virtual_batch_size)`` equal groups when possible."""

    def __init__(self, num_features: int, virtual_batch_size: int = 8, eps: float = 1e-5):
        super().__init__()
        self.virtual_batch_size, self.eps = int(virtual_batch_size), eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, length = x.shape
        groups = -(-b // self.virtual_batch_size)
        if b % groups:
            groups = 1
        y = x.float().view(groups, b // groups, c, length)
        mean = y.mean(dim=(1, 3), keepdim=True)
        var = y.var(dim=(1, 3), keepdim=True, unbiased=False)
        y = ((y - mean) / torch.sqrt(var + self.eps)).view(b, c, length).to(x.dtype)
        return y * self.weight[None, :, None] + self.bias[None, :, None]


class _DiscHead(nn.Module):
    def __init__(self, in_channels: int, channels: int, kernel_size: int, virtual_batch_size: int):
        super().__init__()
        self.proj = nn.Conv1d(in_channels, channels, kernel_size=1)
        self.norm1 = BatchNormLocal(channels, virtual_batch_size)
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, padding_mode="circular")
        self.norm2 = BatchNormLocal(channels, virtual_batch_size)
        self.out = nn.Conv1d(channels, 1, kernel_size=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.norm1(self.proj(x)))
        h = h + self.act(self.norm2(self.conv(h)))
        return self.out(h).squeeze(1)


class VideoMAEDiscriminator(_FrozenBackboneMixin, nn.Module):
    """``forward(pixel_values (B, C, T, H, W) in [0, 1]) -> logits (B, N)``: per-token logits of every tap,
    concatenated (N = taps x VideoMAE tokens).

    Args:
        model_name_or_path: local folder or Hub id of a VideoMAE checkpoint (e.g. ``MCG-NJU/videomae-base``).
        key_layers: taps into ``hidden_states`` (0 = embeddings, i = after layer i); default (0, 3, 6, 9, 12)
            for a 12-layer backbone (any depth: the values must be <= its number of layers).
        kernel_size: width of the circular residual conv of every head (9).
        head_channels: width of every head (64).
        virtual_batch_size: BatchNormLocal group size (8).
        image_mean, image_std: normalisation; default: the checkpoint's ``preprocessor_config.json`` when it
            has one, else the ImageNet default (0.485, 0.456, 0.406 / 0.229, 0.224, 0.225).
        gradient_checkpointing: non-reentrant checkpointing of the backbone layers (fakes need its activations).
        **from_pretrained_kwargs: passed to ``VideoMAEModel.from_pretrained``.

    Clips are resized (bilinear, differentiable) to the backbone's ``image_size`` (its fixed sin-cos positions
    are built for it); the frame count must equal its ``num_frames``.
    """

    def __init__(
        self,
        model_name_or_path: str,
        key_layers=(0, 3, 6, 9, 12),
        kernel_size: int = 9,
        head_channels: int = 64,
        virtual_batch_size: int = 8,
        image_mean=None,
        image_std=None,
        gradient_checkpointing: bool = False,
        **from_pretrained_kwargs,
    ):
        super().__init__()
        from transformers import VideoMAEModel

        self.backbone = VideoMAEModel.from_pretrained(model_name_or_path, **from_pretrained_kwargs)
        self._freeze_backbone()
        if gradient_checkpointing:
            self.backbone.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        cfg = self.backbone.config
        self.image_size, self.num_frames = int(cfg.image_size), int(cfg.num_frames)
        layers = int(cfg.num_hidden_layers)
        key_layers = tuple(int(k) for k in key_layers)
        if not key_layers or any(k < 0 or k > layers for k in key_layers):
            raise ValueError(f"`key_layers` must be non-empty values in [0, {layers}] (backbone depth), got {key_layers}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd and positive, got {kernel_size}")
        self.key_layers = key_layers
        if image_mean is None or image_std is None:
            mean, std = self._checkpoint_normalisation(model_name_or_path, from_pretrained_kwargs)
            image_mean = mean if image_mean is None else image_mean
            image_std = std if image_std is None else image_std
        self.image_mean, self.image_std = tuple(float(v) for v in image_mean), tuple(float(v) for v in image_std)
        self.heads = nn.ModuleList(
            [_DiscHead(cfg.hidden_size, head_channels, kernel_size, virtual_batch_size) for _ in key_layers]
        )

    @staticmethod
    def _checkpoint_normalisation(model_name_or_path, kwargs):
        """(mean, std) from the checkpoint's ``preprocessor_config.json`` (local or cached Hub file), else ImageNet."""
        from transformers.utils import cached_file

        try:
            path = cached_file(
                model_name_or_path,
                "preprocessor_config.json",
                revision=kwargs.get("revision"),
                local_files_only=kwargs.get("local_files_only", False),
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
            )
        except OSError:
            path = None
        if path:
            with open(path) as f:
                cfg = json.load(f)
            if "image_mean" in cfg and "image_std" in cfg:
                return cfg["image_mean"], cfg["image_std"]
        return IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    def features(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """Backbone hidden states at ``key_layers``: each ``(B, N, D)``; differentiable w.r.t. the input."""
        check_video(pixel_values)
        if pixel_values.shape[2] != self.num_frames:
            raise ValueError(
                f"`pixel_values` must have {self.num_frames} frames (the VideoMAE config's num_frames), "
                f"got {pixel_values.shape[2]}"
            )
        dtype = next(self.backbone.parameters()).dtype
        x = resize_video(pixel_values, (self.image_size, self.image_size))
        x = normalize_video(x, self.image_mean, self.image_std)
        out = self.backbone(pixel_values=x.transpose(1, 2).to(dtype), output_hidden_states=True)
        return [out.hidden_states[k] for k in self.key_layers]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        head_dtype = self.heads[0].proj.weight.dtype
        logits = [head(f.to(head_dtype).transpose(1, 2)) for head, f in zip(self.heads, self.features(pixel_values))]
        return torch.cat(logits, dim=1)
