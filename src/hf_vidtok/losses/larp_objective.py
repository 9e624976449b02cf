"""LARP tokenizer training objectives (official ``lpips_disc_loss``), generator and discriminator."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from ..metrics.lpips_vgg import LPIPS
from .discriminator import convert_official_discriminator_state_dict
from .gan_losses import DISCRIMINATOR_LOSSES, discriminator_loss, generator_adversarial_loss
from .lecam import LeCamRegularizer

__all__ = [
    "LarpGeneratorObjective",
    "LarpGeneratorLossOutput",
    "LarpDiscriminatorObjective",
    "LarpDiscriminatorLossOutput",
    "OFFICIAL_LECAM_WEIGHT",
]

#: ``lecam_weight`` 0.001 is applied twice in the official code (inside the regulariser and
#: again when it is added), so the weight that actually multiplies the LeCam term is 1e-6.
OFFICIAL_LECAM_WEIGHT = 0.001 * 0.001


@dataclass
class LarpGeneratorLossOutput:
    """Total generator loss and its parts (scalars): ``vq_loss`` is the weighted VQ sum (before
    ``vq_weight``), the others are unweighted."""

    loss: torch.Tensor
    pixel_loss: torch.Tensor
    perceptual_loss: torch.Tensor
    adversarial_loss: torch.Tensor
    vq_loss: torch.Tensor
    prior_loss: torch.Tensor


@dataclass
class LarpDiscriminatorLossOutput:
    """Total discriminator loss, its parts (``lecam_loss`` unweighted) and the mean logits."""

    loss: torch.Tensor
    adversarial_loss: torch.Tensor
    lecam_loss: torch.Tensor
    real_logits_mean: torch.Tensor
    fake_logits_mean: torch.Tensor


@contextlib.contextmanager
def _frozen(module: nn.Module | None):
    """Temporarily set ``requires_grad=False`` on ``module``'s parameters (restored after; the graph built
    meanwhile never reaches them)."""
    if module is None:
        yield
        return
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _scalar(value, like: torch.Tensor) -> torch.Tensor:
    if value is None:
        return torch.zeros((), device=like.device, dtype=torch.float32)
    if not isinstance(value, torch.Tensor):
        return torch.tensor(float(value), device=like.device)
    return value.float().mean() if value.numel() != 1 else value.float().reshape(())


class LarpGeneratorObjective(nn.Module):
    """``L_G = w_pix |x - x_hat|_1 + w_lpips LPIPS(x, x_hat) + w_adv softplus(-D(x_hat))
    + w_vq (w_commit commitment + w_codebook codebook + w_entropy entropy) + w_prior prior_loss``.

    Defaults are the official release weights (1.0, 1.0, 0.3, 0.1 x (0.25, 1.0, 0), 0.06); there is no
    adaptive (last-layer gradient) weighting. L1 is averaged over all elements, LPIPS (in float32, outside
    autocast) per frame over all frames (videos ``(B, 3, T, H, W)`` in ``[0, 1]``; the reconstruction is
    used unclamped). The discriminator's parameters are frozen while it scores ``x_hat`` (gradients reach
    only the generator; pass the unwrapped module, not a DDP wrapper). The adversarial term is active when
    ``global_step`` is None or ``>= adversarial_start_step`` (official ``disc_start`` 0; the official
    trainer compares it with the epoch).

    Call as ``objective(pixel_values, model_output)``: any tokenizer output with ``reconstruction`` and the
    unweighted ``commitment_loss`` / ``codebook_loss`` (``entropy_loss``, ``prior_loss`` optional, None = 0)
    works, e.g. ``LarpTokenizerOutput``; or pass ``reconstruction`` and an already weighted ``vq_loss``.
    """

    def __init__(
        self,
        lpips: LPIPS | None,
        discriminator: nn.Module | None = None,
        pixel_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        adversarial_weight: float = 0.3,
        vq_weight: float = 0.1,
        prior_weight: float = 0.06,
        adversarial_start_step: int = 0,
        commitment_weight: float = 0.25,
        codebook_weight: float = 1.0,
        entropy_weight: float = 0.0,
    ):
        super().__init__()
        if perceptual_weight > 0 and lpips is None:
            raise ValueError("`lpips` is required when `perceptual_weight` > 0")
        if adversarial_weight > 0 and discriminator is None:
            raise ValueError("`discriminator` is required when `adversarial_weight` > 0")
        self.lpips = lpips
        self.discriminator = discriminator
        self.pixel_weight, self.perceptual_weight = pixel_weight, perceptual_weight
        self.adversarial_weight, self.vq_weight, self.prior_weight = adversarial_weight, vq_weight, prior_weight
        self.commitment_weight, self.codebook_weight, self.entropy_weight = commitment_weight, codebook_weight, entropy_weight
        self.adversarial_start_step = adversarial_start_step

    def adversarial_active(self, global_step: int | None) -> bool:
        return self.adversarial_weight > 0 and (global_step is None or global_step >= self.adversarial_start_step)

    def weighted_vq_loss(self, model_output) -> torch.Tensor:
        """``w_commit commitment + w_codebook codebook (+ w_entropy entropy)`` of a tokenizer output."""
        vq = self.commitment_weight * model_output.commitment_loss + self.codebook_weight * model_output.codebook_loss
        entropy = getattr(model_output, "entropy_loss", None)
        if self.entropy_weight != 0:
            if entropy is None:
                raise ValueError("`entropy_weight` != 0 but the model output has no `entropy_loss`")
            vq = vq + self.entropy_weight * entropy
        return vq

    def forward(
        self,
        pixel_values: torch.Tensor,
        model_output=None,
        *,
        reconstruction: torch.Tensor | None = None,
        vq_loss: torch.Tensor | None = None,
        prior_loss: torch.Tensor | None = None,
        global_step: int | None = None,
    ) -> LarpGeneratorLossOutput:
        if model_output is not None:
            if reconstruction is not None:
                raise ValueError("give either `model_output` or `reconstruction`, not both")
            reconstruction = model_output.reconstruction
            if vq_loss is None:
                if getattr(model_output, "commitment_loss", None) is not None:
                    vq_loss = self.weighted_vq_loss(model_output)
                else:
                    vq_loss = getattr(model_output, "vq_loss", None)
            prior_loss = getattr(model_output, "prior_loss", None) if prior_loss is None else prior_loss
        if reconstruction is None:
            raise ValueError("`reconstruction` (or `model_output.reconstruction`) is required")
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 5:
            raise ValueError(f"`pixel_values` must be (B, C, T, H, W), got {getattr(pixel_values, 'shape', type(pixel_values))}")
        if reconstruction.shape != pixel_values.shape:
            raise ValueError(
                f"`reconstruction` {tuple(reconstruction.shape)} must match `pixel_values` {tuple(pixel_values.shape)}"
            )
        x, x_hat = pixel_values.float(), reconstruction.float()
        pixel = (x - x_hat).abs().mean()
        zero = torch.zeros((), device=x.device)
        if self.perceptual_weight > 0:
            with torch.autocast(device_type=x.device.type, enabled=False):  # fp32, as the release (perceptual_fp16 off)
                perceptual = self.lpips(x_hat, x).mean()
        else:
            perceptual = zero
        use_adv = self.adversarial_active(global_step)
        if use_adv:
            with _frozen(self.discriminator):
                adversarial = generator_adversarial_loss(self.discriminator(reconstruction))
        else:
            adversarial = zero
        vq, prior = _scalar(vq_loss, x), _scalar(prior_loss, x)
        total = self.pixel_weight * pixel
        if self.perceptual_weight > 0:
            total = total + self.perceptual_weight * perceptual
        if use_adv:
            total = total + self.adversarial_weight * adversarial
        total = total + self.vq_weight * vq + self.prior_weight * prior
        return LarpGeneratorLossOutput(total, pixel, perceptual, adversarial, vq, prior)


class LarpDiscriminatorObjective(nn.Module):
    """Discriminator step: ``loss = d_loss(D(x), D(x_hat.detach())) + lecam_weight * LeCam``.

    ``loss_type`` is ``"ns_smooth"`` (release), ``"ns"`` or ``"hinge"``; the label-smoothing noise
    comes from the ``generator`` argument. ``lecam_weight`` is the **effective** weight: the
    default 1e-6 reproduces the release, whose ``lecam_weight: 0.001`` is applied twice (once
    inside the regulariser, once when it is added). The LeCam EMAs are updated on every call.
    Official discriminator updates happen when ``global_step % update_every == 0``
    (:meth:`is_update_step`, ``d_update_freq`` 5). State-dict keys: ``discriminator.*``,
    ``lecam.lecam_ema_real``, ``lecam.lecam_ema_fake``.
    """

    def __init__(
        self,
        discriminator: nn.Module,
        loss_type: str = "ns_smooth",
        lecam_weight: float = OFFICIAL_LECAM_WEIGHT,
        lecam_decay: float = 0.999,
        update_every: int = 5,
    ):
        super().__init__()
        if loss_type not in DISCRIMINATOR_LOSSES:
            raise ValueError(f"`loss_type` must be one of {sorted(DISCRIMINATOR_LOSSES)}, got {loss_type!r}")
        if update_every < 1:
            raise ValueError(f"`update_every` must be >= 1, got {update_every}")
        self.discriminator = discriminator
        self.loss_type, self.lecam_weight, self.update_every = loss_type, lecam_weight, update_every
        self.lecam = LeCamRegularizer(lecam_decay)

    def is_update_step(self, global_step: int) -> bool:
        return global_step % self.update_every == 0

    def forward(
        self, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
    ) -> LarpDiscriminatorLossOutput:
        """``real`` and ``fake`` (B, C, T, H, W) are scored in one discriminator call on their concatenation."""
        if real.shape != fake.shape:
            raise ValueError(f"`real` {tuple(real.shape)} and `fake` {tuple(fake.shape)} must have the same shape")
        logits = self.discriminator(torch.cat([real.detach(), fake.detach().to(real.dtype)])).float()
        real_logits, fake_logits = logits.chunk(2)
        adv = discriminator_loss(self.loss_type, real_logits, fake_logits, generator=generator)
        if self.lecam_weight > 0:
            reg = self.lecam(real_logits, fake_logits)
        else:
            reg = torch.zeros((), device=adv.device)
        loss = adv + self.lecam_weight * reg
        return LarpDiscriminatorLossOutput(loss, adv, reg, real_logits.detach().mean(), fake_logits.detach().mean())

    def load_official_loss_state_dict(self, loss_state_dict: dict[str, torch.Tensor]) -> None:
        """Load ``loss.sd`` of an official LARP training checkpoint (``discriminator.*`` strictly,
        ``lecam_ema_real`` / ``lecam_ema_fake`` when present; ``perceptual_loss.*`` is ignored)."""
        self.discriminator.load_state_dict(convert_official_discriminator_state_dict(loss_state_dict), strict=True)
        lecam = {k: v for k, v in loss_state_dict.items() if k in ("lecam_ema_real", "lecam_ema_fake")}
        if lecam:
            self.lecam.load_state_dict(lecam, strict=True)

