"""LARP's transformer video discriminator (``models/loss.py: TransformerDiscriminator``)."""

from __future__ import annotations

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from ..modules.attention import TransformerBlock
from ..modules.patch_embed import PatchEmbed3D
from ..modules.position_embeddings import sincos_3d, sincos_table

__all__ = ["TransformerDiscriminator", "convert_official_discriminator_state_dict"]


class _BlockStack(nn.Module):
    """Holds ``blocks`` so keys read ``transformer_encoder.blocks.<i>.*`` as in the official code."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.blocks = nn.ModuleList([TransformerBlock(dim, num_heads, mlp_ratio, layer_norm_eps=1e-5) for _ in range(depth)])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class TransformerDiscriminator(nn.Module, PyTorchModelHubMixin, library_name="hf_vidtok", tags=["larp", "discriminator"]):
    """ViT discriminator on whole clips: ``(B, C, T, H, W)`` in ``[0, 1]`` -> logits ``(B, 1)``.

    Tubelet embedding (``x_embedder.proj``, kernel = stride = ``(temporal_patch_size,
    patch_size, patch_size)``) + fixed 3-D sin-cos buffer ``encoder_pos_embed`` ``(1, N, D)``,
    a learned ``cls_token`` prepended, ``depth`` pre-norm blocks (``transformer_encoder.blocks``,
    timm key names, LayerNorm eps 1e-5, qkv without bias), the class token through
    ``norm_final`` (LayerNorm eps 1e-6) and ``fc`` (D -> 1). Parameter names equal the official
    ones, so ``loss.sd`` of an official training checkpoint loads after stripping
    ``discriminator.`` (see :func:`convert_official_discriminator_state_dict`). The release used
    ``hidden_size=512, num_heads=8, depth=12, patch_size=8, temporal_patch_size=4,
    input_size=128, num_frames=16`` (38,205,953 parameters), the defaults here.
    """

    def __init__(
        self,
        hidden_size: int = 512,
        num_heads: int = 8,
        depth: int = 12,
        mlp_ratio: float = 4.0,
        patch_size: int = 8,
        temporal_patch_size: int = 4,
        input_size: int = 128,
        num_frames: int = 16,
        in_channels: int = 3,
    ):
        super().__init__()
        if hidden_size % num_heads != 0:
            raise ValueError(f"`hidden_size` ({hidden_size}) must be divisible by `num_heads` ({num_heads})")
        if hidden_size % 4 != 0:
            raise ValueError(f"`hidden_size` must be divisible by 4 for the 3-D sin-cos table, got {hidden_size}")
        if input_size % patch_size != 0:
            raise ValueError(f"`input_size` ({input_size}) must be divisible by `patch_size` ({patch_size})")
        if num_frames % temporal_patch_size != 0:
            raise ValueError(f"`num_frames` ({num_frames}) must be divisible by `temporal_patch_size` ({temporal_patch_size})")
        self.hidden_size, self.input_size, self.num_frames, self.in_channels = hidden_size, input_size, num_frames, in_channels
        grid, grid_t = input_size // patch_size, num_frames // temporal_patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.register_buffer("encoder_pos_embed", sincos_table(sincos_3d(hidden_size, grid, grid_t)), persistent=True)
        self.x_embedder = PatchEmbed3D(in_channels, hidden_size, patch_size, temporal_patch_size)
        self.transformer_encoder = _BlockStack(hidden_size, depth, num_heads, mlp_ratio)
        self.norm_final = nn.LayerNorm(hidden_size, eps=1e-6)
        self.fc = nn.Linear(hidden_size, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official init: xavier-uniform Linear weights with zero bias, xavier-uniform patch
        kernel (viewed 2-D) and class token, LayerNorm 1 / 0."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.xavier_uniform_(self.cls_token)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        expected = (self.in_channels, self.num_frames, self.input_size, self.input_size)
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 5 or tuple(pixel_values.shape[1:]) != expected:
            shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
            raise ValueError(f"`pixel_values` must be (B, {', '.join(map(str, expected))}), got {shape}")
        x = self.x_embedder(pixel_values.to(self.cls_token.dtype)) + self.encoder_pos_embed
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.transformer_encoder(x)
        return self.fc(self.norm_final(x[:, 0]))


def convert_official_discriminator_state_dict(loss_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``loss.sd`` of an official LARP training checkpoint -> :class:`TransformerDiscriminator`
    state dict (keys under ``discriminator.``; LeCam buffers and ``perceptual_loss.*`` are
    left out). Keys already without the prefix are passed through."""
    prefix = "discriminator."
    if any(k.startswith(prefix) for k in loss_state_dict):
        return {k[len(prefix):]: v for k, v in loss_state_dict.items() if k.startswith(prefix)}
    return dict(loss_state_dict)
