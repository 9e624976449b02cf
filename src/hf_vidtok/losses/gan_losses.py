"""Adversarial losses on discriminator logits (any shape, usually ``(B, 1)``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "ns_smooth_discriminator_loss",
    "non_saturating_discriminator_loss",
    "hinge_discriminator_loss",
    "generator_adversarial_loss",
    "discriminator_loss",
    "DISCRIMINATOR_LOSSES",
]


def _abs_normal(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    noise = torch.randn(like.shape, generator=generator, device=device, dtype=torch.float32)
    return noise.abs().to(like.device)


def ns_smooth_discriminator_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    generator: torch.Generator | None = None,
    smoothing: float = 0.15,
    real_min: float = 0.7,
    fake_max: float = 0.3,
) -> torch.Tensor:
    """LARP's ``ns_smooth``: BCE-with-logits with one-sided noisy label smoothing.

    Real targets ``1 - smoothing * |N(0, 1)|`` clamped to ``>= real_min``, fake targets
    ``smoothing * |N(0, 1)|`` clamped to ``<= fake_max`` (noise for the real targets is drawn
    first, then for the fake ones, from ``generator``); returns ``BCE_real + BCE_fake`` (means).
    """
    real_t = (1 - smoothing * _abs_normal(real_logits, generator)).clamp(min=real_min)
    fake_t = (smoothing * _abs_normal(fake_logits, generator)).clamp(max=fake_max)
    real_loss = F.binary_cross_entropy_with_logits(real_logits.float(), real_t)
    fake_loss = F.binary_cross_entropy_with_logits(fake_logits.float(), fake_t)
    return real_loss + fake_loss


def non_saturating_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, generator=None) -> torch.Tensor:
    """``mean softplus(-D(x)) + mean softplus(D(x_hat))`` (plain BCE with hard 1/0 targets)."""
    return F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, generator=None) -> torch.Tensor:
    """``mean relu(1 - D(x)) + mean relu(1 + D(x_hat))``.

    Summed like ``ns_smooth`` (taming-transformers halves the same sum); the LARP release
    configuration does not use the hinge loss.
    """
    return F.relu(1 - real_logits.float()).mean() + F.relu(1 + fake_logits.float()).mean()


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``-mean log sigmoid(D(x_hat)) = mean softplus(-D(x_hat))``."""
    return F.softplus(-fake_logits.float()).mean()


DISCRIMINATOR_LOSSES = {
    "ns_smooth": ns_smooth_discriminator_loss,
    "ns": non_saturating_discriminator_loss,
    "hinge": hinge_discriminator_loss,
}


def discriminator_loss(loss_type: str, real_logits, fake_logits, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dispatch on ``loss_type`` in ``DISCRIMINATOR_LOSSES`` (``"ns_smooth"``, ``"ns"``, ``"hinge"``)."""
    if loss_type not in DISCRIMINATOR_LOSSES:
        raise ValueError(f"`loss_type` must be one of {sorted(DISCRIMINATOR_LOSSES)}, got {loss_type!r}")
    return DISCRIMINATOR_LOSSES[loss_type](real_logits, fake_logits, generator=generator)
