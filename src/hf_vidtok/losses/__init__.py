"""LARP training losses: transformer discriminator, GAN losses, LeCam, the generator objective.

Uses :class:`hf_vidtok.metrics.LPIPS` as the perceptual loss.
"""

from .discriminator import TransformerDiscriminator, convert_official_discriminator_state_dict
from .evatok_objective import EvatokGeneratorLossOutput, EvatokGeneratorObjective, semantic_discriminator_loss
from .gan_losses import (
    DISCRIMINATOR_LOSSES,
    discriminator_loss,
    generator_adversarial_loss,
    hinge_discriminator_loss,
    non_saturating_discriminator_loss,
    ns_smooth_discriminator_loss,
)
from .larp_objective import (
    OFFICIAL_LECAM_WEIGHT,
    LarpDiscriminatorLossOutput,
    LarpDiscriminatorObjective,
    LarpGeneratorLossOutput,
    LarpGeneratorObjective,
)
from .lecam import LeCamRegularizer
from .videomae_discriminator import BatchNormLocal, VideoMAEDiscriminator, hinge_generator_loss
from .vjepa2_alignment import VJepa2Alignment

__all__ = [
    "TransformerDiscriminator",
    "convert_official_discriminator_state_dict",
    "DISCRIMINATOR_LOSSES",
    "discriminator_loss",
    "generator_adversarial_loss",
    "hinge_discriminator_loss",
    "non_saturating_discriminator_loss",
    "ns_smooth_discriminator_loss",
    "LeCamRegularizer",
    "LarpGeneratorObjective",
    "LarpGeneratorLossOutput",
    "LarpDiscriminatorObjective",
    "LarpDiscriminatorLossOutput",
    "OFFICIAL_LECAM_WEIGHT",
    "VJepa2Alignment",
    "VideoMAEDiscriminator",
    "BatchNormLocal",
    "hinge_generator_loss",
    "EvatokGeneratorObjective",
    "EvatokGeneratorLossOutput",
    "semantic_discriminator_loss",
]
