"""EVATok tokenizer training objective (Eq. 2): the LARP pixel / LPIPS / PatchGAN terms, the VQ terms with
the entropy loss, the V-JEPA 2 alignment and the optional VideoMAE semantic discriminator.

``L_G = w_pix L1 + w_lpips LPIPS + w_adv GAN(D_patch) + (w_commit commit + w_codebook codebook
+ gamma entropy) + lambda L_align + w_sem hinge_G(D_sem)``, with the paper's gamma = 0.02 and lambda = 0.7;
the other weights follow LARP's release (pixel 1, LPIPS 1, GAN 0.3, commitment 0.25, codebook 1) and
GigaTok's semantic discriminator (0.5); all are constructor arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .gan_losses import hinge_discriminator_loss
from .larp_objective import LarpGeneratorObjective, _frozen
from .videomae_discriminator import VideoMAEDiscriminator, hinge_generator_loss
from .vjepa2_alignment import VJepa2Alignment

__all__ = ["EvatokGeneratorObjective", "EvatokGeneratorLossOutput", "semantic_discriminator_loss"]


@dataclass
class EvatokGeneratorLossOutput:
    """Total generator loss and its unweighted parts (scalars; absent terms are 0)."""

    loss: torch.Tensor
    pixel_loss: torch.Tensor
    perceptual_loss: torch.Tensor
    adversarial_loss: torch.Tensor
    vq_loss: torch.Tensor
    commitment_loss: torch.Tensor
    codebook_loss: torch.Tensor
    entropy_loss: torch.Tensor
    alignment_loss: torch.Tensor
    semantic_adversarial_loss: torch.Tensor


def semantic_discriminator_loss(discriminator: VideoMAEDiscriminator, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator step of the semantic discriminator: hinge loss on ``D(real)`` and ``D(fake.detach())``."""
    return hinge_discriminator_loss(discriminator(real.detach()), discriminator(fake.detach()))


class EvatokGeneratorObjective(nn.Module):
    """Generator (tokenizer) loss of an :class:`~hf_vidtok.models.evatok.EvatokTokenizerOutput`.

    Args:
        lpips: :class:`hf_vidtok.metrics.LPIPS` (required when ``perceptual_weight > 0``).
        discriminator: the PatchGAN (``TransformerDiscriminator``; required when ``adversarial_weight > 0``).
        alignment: a :class:`VJepa2Alignment` (optional; the model output must then carry
            ``align_hidden_states``: call the tokenizer with ``output_align_hidden_states=True``).
        semantic_discriminator: a :class:`VideoMAEDiscriminator` (optional).
        pixel_weight, perceptual_weight, adversarial_weight, commitment_weight, codebook_weight,
        entropy_weight, alignment_weight, semantic_weight: the weights (defaults in the module docstring).
        adversarial_start_step, semantic_start_step: the GAN terms are active from these steps on.

    ``forward(pixel_values, model_output, global_step=None) -> EvatokGeneratorLossOutput``. Discriminators
    are frozen while they score the reconstruction; gradients reach the tokenizer (and the alignment
    projector).
    """

    def __init__(
        self,
        lpips=None,
        discriminator: nn.Module | None = None,
        alignment: VJepa2Alignment | None = None,
        semantic_discriminator: VideoMAEDiscriminator | None = None,
        pixel_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        adversarial_weight: float = 0.3,
        commitment_weight: float = 0.25,
        codebook_weight: float = 1.0,
        entropy_weight: float = 0.02,
        alignment_weight: float = 0.7,
        semantic_weight: float = 0.5,
        adversarial_start_step: int = 0,
        semantic_start_step: int = 0,
    ):
        super().__init__()
        if alignment_weight > 0 and alignment is None:
            alignment_weight = 0.0
        if semantic_weight > 0 and semantic_discriminator is None:
            semantic_weight = 0.0
        self.pixel_objective = LarpGeneratorObjective(
            lpips,
            discriminator,
            pixel_weight=pixel_weight,
            perceptual_weight=perceptual_weight,
            adversarial_weight=adversarial_weight,
            vq_weight=1.0,
            prior_weight=0.0,
            adversarial_start_step=adversarial_start_step,
        )
        self.alignment = alignment
        self.semantic_discriminator = semantic_discriminator
        self.commitment_weight, self.codebook_weight, self.entropy_weight = commitment_weight, codebook_weight, entropy_weight
        self.alignment_weight, self.semantic_weight = alignment_weight, semantic_weight
        self.semantic_start_step = semantic_start_step

    @property
    def perceptual_weight(self) -> float:
        return self.pixel_objective.perceptual_weight

    def adversarial_active(self, global_step: int | None) -> bool:
        """Whether the PatchGAN term is on at ``global_step``."""
        return self.pixel_objective.adversarial_active(global_step)

    def forward(self, pixel_values: torch.Tensor, model_output, global_step: int | None = None) -> EvatokGeneratorLossOutput:
        for name in ("reconstruction", "commitment_loss", "codebook_loss", "entropy_loss"):
            if getattr(model_output, name, None) is None:
                raise ValueError(f"`model_output.{name}` is required (an EvatokTokenizerOutput)")
        commitment = model_output.commitment_loss.float()
        codebook = model_output.codebook_loss.float()
        entropy = model_output.entropy_loss.float()
        vq = self.commitment_weight * commitment + self.codebook_weight * codebook + self.entropy_weight * entropy
        base = self.pixel_objective(
            pixel_values, reconstruction=model_output.reconstruction, vq_loss=vq, global_step=global_step
        )
        zero = torch.zeros((), device=base.loss.device)
        total = base.loss
        alignment = zero
        if self.alignment_weight > 0:
            hidden = getattr(model_output, "align_hidden_states", None)
            if hidden is None:
                raise ValueError(
                    "the alignment loss needs `model_output.align_hidden_states`: call the tokenizer with "
                    "`output_align_hidden_states=True`"
                )
            alignment = self.alignment(hidden, pixel_values)
            total = total + self.alignment_weight * alignment
        semantic = zero
        if self.semantic_weight > 0 and (global_step is None or global_step >= self.semantic_start_step):
            with _frozen(self.semantic_discriminator.heads):
                semantic = hinge_generator_loss(self.semantic_discriminator(model_output.reconstruction))
            total = total + self.semantic_weight * semantic
        return EvatokGeneratorLossOutput(
            loss=total,
            pixel_loss=base.pixel_loss,
            perceptual_loss=base.perceptual_loss,
            adversarial_loss=base.adversarial_loss,
            vq_loss=vq,
            commitment_loss=commitment,
            codebook_loss=codebook,
            entropy_loss=entropy,
            alignment_loss=alignment,
            semantic_adversarial_loss=semantic,
        )
