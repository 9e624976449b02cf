"""Representation alignment (REPA) of tokenizer decoder features with a frozen V-JEPA 2 encoder (EVATok Eq. 1).

``L_align = -mean_n cos(phi(f_dec^n), f_vjepa^n)``: ``f_dec`` is one decoder layer's 3-D features
``(B, T_lat, h, w, D)``, ``phi`` a trainable MLP (GigaTok's REPA projector: D -> 4D -> 4D -> r * D_t, SiLU)
followed by a depatchify-like reshape that splits every latent frame into the ``r`` V-JEPA 2 tubelets it
covers, and ``f_vjepa`` the frozen encoder's patch features of the same clip. The weight (0.7 in the
paper) is applied by the training objective.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..modules.input_checks import check_pixel_values

__all__ = ["VJepa2Alignment", "IMAGENET_DEFAULT_MEAN", "IMAGENET_DEFAULT_STD", "normalize_video", "resize_video"]

#: ``VJEPA2VideoProcessor`` normalises with the ImageNet *default* mean / std.
IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)


def resize_video(pixel_values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (differentiable) spatial resize of ``(B, C, T, H, W)`` frames to ``size = (H', W')``."""
    b, c, t, h, w = pixel_values.shape
    if (h, w) == tuple(size):
        return pixel_values
    frames = pixel_values.transpose(1, 2).reshape(b * t, c, h, w)
    frames = F.interpolate(frames, size=tuple(size), mode="bilinear", align_corners=False, antialias=False)
    return frames.reshape(b, t, c, *size).transpose(1, 2)


def normalize_video(pixel_values: torch.Tensor, mean, std) -> torch.Tensor:
    """``(x - mean) / std`` per channel of ``(B, C, T, H, W)``."""
    shape = (1, -1, 1, 1, 1)
    mean = torch.tensor(mean, device=pixel_values.device, dtype=pixel_values.dtype).view(shape)
    std = torch.tensor(std, device=pixel_values.device, dtype=pixel_values.dtype).view(shape)
    return (pixel_values - mean) / std


def check_video(pixel_values, channels: int = 3) -> None:
    """Raise unless ``pixel_values`` is a floating ``(B, channels, T, H, W)`` tensor (the models' check,
    :func:`hf_vidtok.modules.input_checks.check_pixel_values`, without the range: reconstructions are unclamped)."""
    check_pixel_values(pixel_values, shape=(channels, None, None, None), check_range=False)


class _FrozenBackboneMixin:
    """Keeps ``self.backbone`` frozen and in eval mode whatever ``train()`` is called with."""

    def _freeze_backbone(self):
        self.backbone.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()
        return self

    def trainable_parameters(self):
        """Parameters to optimise (everything except the frozen backbone)."""
        return [p for n, p in self.named_parameters() if not n.startswith("backbone.") and p.requires_grad]


class VJepa2Alignment(_FrozenBackboneMixin, nn.Module):
    """Frozen ``transformers.VJEPA2Model`` + trainable projector; ``forward(decoder_hidden_states,
    pixel_values) -> loss`` (negative mean cosine similarity, scalar float32).

    Args:
        model_name_or_path: local folder or Hub id of a V-JEPA 2 checkpoint (e.g.
            ``facebook/vjepa2-vitl-fpc64-256``); loaded with ``crop_size=input_size`` so that its 3-D RoPE
            grid matches the resized clips (a plain load at another size runs with wrong positions).
        decoder_hidden_size: width D of the tokenizer decoder.
        temporal_patch_size: frames per latent frame of the tokenizer (4); must be a multiple of V-JEPA 2's
            tubelet size (2), the ratio being how many V-JEPA 2 feature frames each latent frame is split into.
        input_size: square size the clips are resized to before V-JEPA 2 (default: the checkpoint's
            ``crop_size``; the paper's 256 for 128 px clips keeps a 16x16 grid = the tokenizer's).
        feature_layer: -1 = ``last_hidden_state`` (after the final LayerNorm), ``i`` >= 0 =
            ``hidden_states[i]`` (0 = patch embeddings, i = layer i before the LayerNorm).
        projector_hidden_size: inner width of the projector (default ``4 * decoder_hidden_size``).
        backbone_dtype: dtype of the frozen encoder (e.g. ``torch.bfloat16``); features are cast to float32.
        **from_pretrained_kwargs: passed to ``VJEPA2Model.from_pretrained`` (``revision``, ``local_files_only`` ...).

    ``decoder_hidden_states`` is ``(B, T_lat, h, w, D)`` (``EvatokTokenizerOutput.align_hidden_states``);
    V-JEPA 2's grid ``(T / tubelet, S / patch, S / patch)`` must have a multiple of ``T_lat`` frames and a
    spatial grid equal to ``(h, w)`` or dividing it (then the projection is average-pooled).
    """

    def __init__(
        self,
        model_name_or_path: str,
        decoder_hidden_size: int,
        temporal_patch_size: int = 4,
        input_size: int | None = None,
        feature_layer: int = -1,
        projector_hidden_size: int | None = None,
        backbone_dtype: torch.dtype | None = None,
        **from_pretrained_kwargs,
    ):
        super().__init__()
        from transformers import VJEPA2Model

        if input_size is not None:
            from_pretrained_kwargs["crop_size"] = int(input_size)
        if backbone_dtype is not None:
            from_pretrained_kwargs["dtype"] = backbone_dtype
        self.backbone = VJEPA2Model.from_pretrained(model_name_or_path, **from_pretrained_kwargs)
        # the predictor (~22M parameters for ViT-L) is never used: skip_predictor=True
        self.backbone.predictor = None
        self._freeze_backbone()
        cfg = self.backbone.config
        self.input_size = int(cfg.crop_size)
        self.tubelet_size, self.patch_size = int(cfg.tubelet_size), int(cfg.patch_size)
        self.target_hidden_size = int(cfg.hidden_size)
        num_layers = int(cfg.num_hidden_layers)
        if not (feature_layer == -1 or 0 <= feature_layer <= num_layers):
            raise ValueError(f"`feature_layer` must be -1 or in [0, {num_layers}], got {feature_layer}")
        self.feature_layer = int(feature_layer)
        self.decoder_hidden_size = int(decoder_hidden_size)
        inner = 4 * self.decoder_hidden_size if projector_hidden_size is None else int(projector_hidden_size)
        if temporal_patch_size % self.tubelet_size:
            raise ValueError(
                f"`temporal_patch_size` ({temporal_patch_size}) must be a multiple of V-JEPA 2's tubelet size "
                f"({self.tubelet_size})"
            )
        self.temporal_patch_size = int(temporal_patch_size)
        self.split_ratio = self.temporal_patch_size // self.tubelet_size
        self.projector = nn.Sequential(
            nn.Linear(self.decoder_hidden_size, inner),
            nn.SiLU(),
            nn.Linear(inner, inner),
            nn.SiLU(),
            nn.Linear(inner, self.split_ratio * self.target_hidden_size),
        )

    @torch.no_grad()
    def target_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """V-JEPA 2 features of ``pixel_values (B, C, T, H, W)`` in [0, 1] -> ``(B, T/tubelet, S/p, S/p, D_t)`` float32."""
        check_video(pixel_values)
        dtype = next(self.backbone.parameters()).dtype
        x = resize_video(pixel_values.float(), (self.input_size, self.input_size))
        x = normalize_video(x, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
        out = self.backbone(
            pixel_values_videos=x.transpose(1, 2).to(dtype),
            skip_predictor=True,
            output_hidden_states=self.feature_layer != -1,
        )
        feat = out.last_hidden_state if self.feature_layer == -1 else out.hidden_states[self.feature_layer]
        grid = self.input_size // self.patch_size
        return feat.float().reshape(x.shape[0], x.shape[2] // self.tubelet_size, grid, grid, -1)

    def project(self, decoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """``phi``: ``(B, T_lat, h, w, D)`` -> ``(B, T_lat * r, h, w, D_t)`` (each latent frame split in ``r``)."""
        b, t, h, w, _ = decoder_hidden_states.shape
        ratio = self.split_ratio
        y = self.projector(decoder_hidden_states.to(self.projector[0].weight.dtype))
        y = y.view(b, t, h, w, ratio, self.target_hidden_size).permute(0, 1, 4, 2, 3, 5)
        return y.reshape(b, t * ratio, h, w, self.target_hidden_size)

    def forward(self, decoder_hidden_states: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(decoder_hidden_states) or decoder_hidden_states.dim() != 5:
            raise ValueError(
                "`decoder_hidden_states` must be (B, T_lat, h, w, D) (EvatokTokenizerOutput.align_hidden_states), "
                f"got {getattr(decoder_hidden_states, 'shape', type(decoder_hidden_states))}"
            )
        if decoder_hidden_states.shape[-1] != self.decoder_hidden_size:
            raise ValueError(
                f"`decoder_hidden_states` width must be {self.decoder_hidden_size}, got {decoder_hidden_states.shape[-1]}"
            )
        check_video(pixel_values)
        if pixel_values.shape[0] != decoder_hidden_states.shape[0]:
            raise ValueError("`pixel_values` and `decoder_hidden_states` must have the same batch size")
        b, t_lat, h, w, _ = decoder_hidden_states.shape
        ratio = self.split_ratio
        if pixel_values.shape[2] != t_lat * self.temporal_patch_size:
            raise ValueError(
                f"`pixel_values` has {pixel_values.shape[2]} frames but the decoder features cover {t_lat} latent "
                f"frames of {self.temporal_patch_size}"
            )
        target = self.target_features(pixel_values)
        grid = target.shape[2]
        if h % grid or w % grid:
            raise ValueError(
                f"V-JEPA 2's {grid}x{grid} feature grid (input_size {self.input_size}) must equal or divide the "
                f"decoder's {h}x{w} grid"
            )
        pred = self.project(decoder_hidden_states).float()
        if (h, w) != (grid, grid):
            pred = F.adaptive_avg_pool2d(pred.permute(0, 1, 4, 2, 3).flatten(0, 1), (grid, grid))
            pred = pred.view(b, t_lat * ratio, -1, grid, grid).permute(0, 1, 3, 4, 2)
        return -F.cosine_similarity(pred, target, dim=-1).mean()
