"""Configuration of the EVATok router (stage 3): a ViT-S-size video classifier over candidate assignments."""

from __future__ import annotations

import math
import operator

from transformers import PretrainedConfig

from ...evatok.assignments import normalize_levels
from ...evatok.reward import HIGHER_IS_BETTER, length_stats

__all__ = ["EvatokRouterConfig", "ROUTER_HEAD_TYPES", "ROUTER_QUALITY_LOSSES", "ROUTER_PRESETS"]

ROUTER_HEAD_TYPES = ("classifier", "quality")
ROUTER_QUALITY_LOSSES = ("mse", "huber")
#: Size presets (``EvatokRouterConfig(**ROUTER_PRESETS[name])``). ``paper``: ViT-S on the 16x128x128 clip with
#: 4x8x8 patches (1024 patch tokens, 21.8M; 30% of the paper-size tokenizer's encode FLOPs). ``fast``: the
#: clip resampled to 64 px (256 patch tokens) and 6 layers (11.2M; 3.5% of the encode FLOPs, the <= 5% target;
#: bench/bench_router.py). ``paper_64px``: ViT-S 12 layers on 64 px (7.5%).
ROUTER_PRESETS = {
    "paper": {},
    "fast": {"image_size": 64, "num_hidden_layers": 6},
    "paper_64px": {"image_size": 64},
}


class EvatokRouterConfig(PretrainedConfig):
    r"""Architecture and selection defaults of an :class:`EvatokRouter`.

    The router reads a clip ``(B, C, num_frames, image_size, image_size)`` in ``[0, 1]`` (other sizes are
    resampled when ``resize_input``), embeds ``(temporal_patch_size, patch_size, patch_size)`` tubelets with a
    fixed 3-D sin-cos table, prepends a learned [CLS] token, runs ``num_hidden_layers`` pre-norm ViT blocks
    and maps the final [CLS] state to one score per candidate assignment of ``token_levels`` x ``num_blocks``
    (``A = m^T``, class order of :mod:`hf_vidtok.evatok.assignments`).

    Args:
        token_levels (`tuple[int]`): strictly ascending per-block token counts (paper: 32 .. 512).
        num_blocks (`int`): temporal blocks T of the tokenizer the router serves (paper: 4).
        head_type (`str`): ``"classifier"`` (paper: logits trained with cross-entropy on the stage-2 labels of
            one preference) or ``"quality"`` (predicts the signed z-scored quality ``Q`` of every assignment,
            as :func:`hf_vidtok.evatok.reward.quality_scores`, so any preference / cap / budget can be applied
            after training).
        image_size, num_frames (`int`): the router's input grid. patch_size, temporal_patch_size (`int`):
            tubelet size (paper tokenizer: 4x8x8). in_channels (`int`).
        resize_input (`bool`): resample clips of another size to the input grid (trilinear) instead of raising.
        hidden_size (`int`, 384), num_attention_heads (`int`, 6), num_hidden_layers (`int`, 12): ViT-S width,
            heads and depth (12 layers = 21.8M parameters with the paper's 625 classes; 11 layers = 20.0M, the
            paper reports 19.9M). mlp_ratio (`float`), qkv_bias (`bool`), layer_norm_eps (`float`).
        initializer_range (`float`): std of the truncated-normal init of the [CLS] token and the head.
        label_smoothing (`float`): classifier cross-entropy label smoothing.
        quality_loss (`str`): ``"mse"`` or ``"huber"`` (delta ``huber_delta``) regression loss of the quality head,
            applied to the clip mean and, scaled by the batch's within-clip target spread, to the deviations of
            the clip's assignments from it (both parts weigh alike; see ``EvatokRouter._regression_loss``).
        listwise_loss_weight (`float`): weight of the quality head's auxiliary listwise loss (ListNet): per
            sample ``w_q ~ U[listwise_w_q_min, listwise_w_q_max]``, the KL divergence from the table's reward
            distribution ``softmax((w_q * Q - (2 - w_q) * L~) / listwise_temperature)`` to the same distribution
            of the predicted ``Q^``; minimal when ``Q^`` is the table's quality up to a per-clip shift.
        default_w_q (`float`): preference used by ``select()`` of a quality head when no other objective is
            given (paper default 1.2, ``w_l = 2 - w_q``).
        label_w_q (`float`, optional): preference the classifier's labels were computed with (recorded by
            ``train_router.py``; ``select(w_q=...)`` of a classifier must match it).
        quality_metric (`str`, optional), quality_mean, quality_std (`float`, optional): the
            :class:`~hf_vidtok.evatok.reward.RewardStats` the quality targets were made with, so
            ``Q = sign * (metric - quality_mean) / quality_std`` (``sign = -1`` for ``lpips`` / ``mse``, ``+1`` for
            ``ssim`` / ``psnr``: higher Q is better). Needed for ``select(quality_target=...)`` in metric units.
        length_mean, length_std (`float`, optional): the normalisation ``L~ = (L - length_mean) / length_std`` of
            Eq. 7; default: mean and population std of ``L(a)`` over the uniform candidate set (793.6 / 349.14
            for the paper's set, as :func:`hf_vidtok.evatok.reward.length_stats`).

    Example:
        >>> from hf_vidtok.models.evatok import EvatokRouterConfig, EvatokRouter
        >>> config = EvatokRouterConfig(token_levels=(2, 4, 8), num_blocks=2, image_size=16, num_frames=4,
        ...     patch_size=8, temporal_patch_size=2, hidden_size=32, num_attention_heads=2, num_hidden_layers=1,
        ...     head_type="quality")
        >>> router = EvatokRouter(config)
    """

    model_type = "evatok_router"

    def __init__(
        self,
        token_levels=(32, 64, 128, 256, 512),
        num_blocks: int = 4,
        head_type: str = "classifier",
        image_size: int = 128,
        num_frames: int = 16,
        patch_size: int = 8,
        temporal_patch_size: int = 4,
        in_channels: int = 3,
        resize_input: bool = True,
        hidden_size: int = 384,
        num_attention_heads: int = 6,
        num_hidden_layers: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        layer_norm_eps: float = 1e-6,
        initializer_range: float = 0.02,
        label_smoothing: float = 0.0,
        quality_loss: str = "mse",
        huber_delta: float = 1.0,
        listwise_loss_weight: float = 0.0,
        listwise_w_q_min: float = 0.4,
        listwise_w_q_max: float = 2.0,
        listwise_temperature: float = 1.0,
        default_w_q: float = 1.2,
        label_w_q: float | None = None,
        quality_metric: str | None = None,
        quality_mean: float | None = None,
        quality_std: float | None = None,
        length_mean: float | None = None,
        length_std: float | None = None,
        **kwargs,
    ):
        self.token_levels = list(normalize_levels(token_levels))
        self.num_blocks = _int(num_blocks, "num_blocks")
        self.head_type = head_type
        self.image_size = _int(image_size, "image_size")
        self.num_frames = _int(num_frames, "num_frames")
        self.patch_size = _int(patch_size, "patch_size")
        self.temporal_patch_size = _int(temporal_patch_size, "temporal_patch_size")
        self.in_channels = _int(in_channels, "in_channels")
        self.resize_input = bool(resize_input)
        self.hidden_size = _int(hidden_size, "hidden_size")
        self.num_attention_heads = _int(num_attention_heads, "num_attention_heads")
        self.num_hidden_layers = _int(num_hidden_layers, "num_hidden_layers", minimum=0)
        self.mlp_ratio = float(mlp_ratio)
        self.qkv_bias = bool(qkv_bias)
        self.layer_norm_eps = float(layer_norm_eps)
        self.initializer_range = float(initializer_range)
        self.label_smoothing = float(label_smoothing)
        self.quality_loss = quality_loss
        self.huber_delta = float(huber_delta)
        self.listwise_loss_weight = float(listwise_loss_weight)
        self.listwise_w_q_min = float(listwise_w_q_min)
        self.listwise_w_q_max = float(listwise_w_q_max)
        self.listwise_temperature = float(listwise_temperature)
        self.default_w_q = float(default_w_q)
        self.label_w_q = None if label_w_q is None else float(label_w_q)
        self.quality_metric = quality_metric
        self.quality_mean = None if quality_mean is None else float(quality_mean)
        self.quality_std = None if quality_std is None else float(quality_std)
        self.length_mean = None if length_mean is None else float(length_mean)
        self.length_std = None if length_std is None else float(length_std)
        super().__init__(**kwargs)
        self._validate()

    # ------------------------------------------------------------------------------------------ derived

    @property
    def num_assignments(self) -> int:
        """``A = m^T`` candidate assignments (= classes)."""
        return len(self.token_levels) ** self.num_blocks

    @property
    def grid(self) -> tuple[int, int, int]:
        """Patch grid ``(T/pt, H/p, W/p)``."""
        return (
            self.num_frames // self.temporal_patch_size,
            self.image_size // self.patch_size,
            self.image_size // self.patch_size,
        )

    @property
    def num_patches(self) -> int:
        return math.prod(self.grid)

    def length_stats(self) -> tuple[float, float]:
        """``(length_mean, length_std)`` of Eq. 7, defaulting to the uniform candidate set (exact, float64)."""
        mean, std = length_stats(self.token_levels, self.num_blocks)
        mean = mean if self.length_mean is None else self.length_mean
        std = std if self.length_std is None else self.length_std
        if std == 0.0:  # a single level: every assignment has the same length
            std = 1.0
        return mean, std

    # ------------------------------------------------------------------------------------------- checks

    def _validate(self):
        if self.head_type not in ROUTER_HEAD_TYPES:
            raise ValueError(f"`head_type` must be one of {ROUTER_HEAD_TYPES}, got {self.head_type!r}")
        if self.quality_loss not in ROUTER_QUALITY_LOSSES:
            raise ValueError(f"`quality_loss` must be one of {ROUTER_QUALITY_LOSSES}, got {self.quality_loss!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"`image_size` ({self.image_size}) must be divisible by `patch_size` ({self.patch_size})")
        if self.num_frames % self.temporal_patch_size:
            raise ValueError(
                f"`num_frames` ({self.num_frames}) must be divisible by `temporal_patch_size` ({self.temporal_patch_size})"
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` ({self.num_attention_heads})"
            )
        if self.hidden_size % 4:
            raise ValueError(f"`hidden_size` must be divisible by 4 (3-D sin-cos table), got {self.hidden_size}")
        for name in ("mlp_ratio", "layer_norm_eps", "initializer_range", "huber_delta", "listwise_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1), got {self.label_smoothing}")
        if self.listwise_loss_weight < 0:
            raise ValueError(f"`listwise_loss_weight` must be >= 0, got {self.listwise_loss_weight}")
        if not 0.0 <= self.listwise_w_q_min <= self.listwise_w_q_max <= 2.0:
            raise ValueError(
                "`listwise_w_q_min` <= `listwise_w_q_max` must lie in [0, 2] (w_l = 2 - w_q), got "
                f"{self.listwise_w_q_min}, {self.listwise_w_q_max}"
            )
        for name in ("default_w_q", "label_w_q"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 2.0:
                raise ValueError(f"`{name}` must be in [0, 2] (w_l = 2 - w_q), got {value}")
        if self.quality_metric is not None and self.quality_metric not in HIGHER_IS_BETTER:
            raise ValueError(f"`quality_metric` must be one of {tuple(HIGHER_IS_BETTER)}, got {self.quality_metric!r}")
        if self.quality_std is not None and not self.quality_std > 0:
            raise ValueError(f"`quality_std` must be positive, got {self.quality_std}")
        if self.length_std is not None and not self.length_std > 0:
            raise ValueError(f"`length_std` must be positive, got {self.length_std}")


def _int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be an int, got a bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__}") from None
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    return value

