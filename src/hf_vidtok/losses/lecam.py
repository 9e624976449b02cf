"""LeCam regularisation (Tseng et al. 2021) with EMA buffers, as in LARP's discriminator loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LeCamRegularizer"]


class LeCamRegularizer(nn.Module):
    """``reg = relu(mean D(x) - ema_fake)^2 + relu(ema_real - mean D(x_hat))^2``.

    Buffers ``lecam_ema_real`` / ``lecam_ema_fake`` (scalars, start at 0) are the official
    names. ``forward`` computes ``reg`` with the current EMAs and then (when ``update_ema``)
    moves them towards the batch means with ``decay`` (0.999), in float32 and without gradient.
    The returned value is **unweighted**; the caller multiplies it by its LeCam weight.
    """

    def __init__(self, decay: float = 0.999):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"`decay` must be in [0, 1), got {decay}")
        self.decay = decay
        self.register_buffer("lecam_ema_real", torch.zeros(()))
        self.register_buffer("lecam_ema_fake", torch.zeros(()))

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor, update_ema: bool = True) -> torch.Tensor:
        real_mean, fake_mean = real_logits.float().mean(), fake_logits.float().mean()
        reg = F.relu(real_mean - self.lecam_ema_fake).pow(2) + F.relu(self.lecam_ema_real - fake_mean).pow(2)
        if update_ema:
            with torch.no_grad():
                self.lecam_ema_real.mul_(self.decay).add_((1 - self.decay) * real_mean.detach())
                self.lecam_ema_fake.mul_(self.decay).add_((1 - self.decay) * fake_mean.detach())
        return reg

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # official checkpoints may store the EMAs with shape (1,); accept any single-element tensor
        for name in ("lecam_ema_real", "lecam_ema_fake"):
            key = prefix + name
            if key in state_dict and state_dict[key].numel() == 1:
                state_dict[key] = state_dict[key].reshape(()).float()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
