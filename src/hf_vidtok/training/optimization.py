"""Learning-rate schedules of the training scripts.

Every name of ``diffusers.optimization.get_scheduler`` (``linear``, ``cosine``, ``constant``,
``constant_with_warmup``, ...) is available as is. The one custom schedule is ``larp_cosine``, the
official LARP schedule: its linear warmup starts at ``min_lr_mult`` (not at 0) and its cosine ends at
``min_lr_mult`` (not at 0), and the first optimizer step already uses the multiplier of step 1 (the
official trainer increments its step before updating). ``diffusers``' schedules always warm up from 0
and decay to 0, so they cannot express it; it is a plain ``LambdaLR``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["LARP_SCHEDULER", "LR_SCHEDULERS", "larp_lr_multiplier", "get_lr_scheduler"]

LARP_SCHEDULER = "larp_cosine"
#: Names accepted by ``--lr_scheduler``: LARP's plus diffusers' (``piecewise_constant`` needs rules, left out).
LR_SCHEDULERS = (LARP_SCHEDULER, "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")


def larp_lr_multiplier(step: int, warmup_steps: int, max_steps: int, min_lr_mult: float = 0.0) -> float:
    """The official LARP multiplier at 1-based global ``step`` (larp.md §4).

    ``m + (1 - m) * step / W`` for ``step <= W``, else ``m + (1 - m) * (1 + cos(pi * (step - W) / (S - W))) / 2``
    with ``W = warmup_steps``, ``S = max_steps`` and ``m = min_lr_mult``. Beyond ``S`` it stays at ``m``.
    """
    m = float(min_lr_mult)
    if warmup_steps > 0 and step <= warmup_steps:
        return m + (1.0 - m) * step / warmup_steps
    if max_steps <= warmup_steps:
        return 1.0
    progress = min(max(step - warmup_steps, 0) / (max_steps - warmup_steps), 1.0)
    return m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * progress))


def get_lr_scheduler(
    name: str, optimizer: torch.optim.Optimizer, warmup_steps: int, max_steps: int, min_lr_mult: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` scaling every param group's own base lr (per-group multipliers survive).

    ``larp_cosine``: the k-th ``step()`` sets ``base_lr * larp_lr_multiplier(k + 1, ...)``. Any other name
    goes to ``diffusers.optimization.get_scheduler`` (``min_lr_mult`` does not apply to those). Step it
    once per optimizer update, not through ``accelerator.prepare`` (which would step it once per process).
    """
    if name not in LR_SCHEDULERS:
        raise ValueError(f"`lr_scheduler` must be one of {list(LR_SCHEDULERS)}, got {name!r}")
    if warmup_steps < 0 or max_steps <= 0:
        raise ValueError(f"`lr_warmup_steps` must be >= 0 and `max_train_steps` > 0, got {warmup_steps}, {max_steps}")
    if not 0.0 <= min_lr_mult <= 1.0:
        raise ValueError(f"`min_lr_mult` must be in [0, 1], got {min_lr_mult}")
    if name == LARP_SCHEDULER:
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: larp_lr_multiplier(k + 1, warmup_steps, max_steps, min_lr_mult)
        )
    from diffusers.optimization import get_scheduler

    return get_scheduler(name, optimizer, num_warmup_steps=warmup_steps, num_training_steps=max_steps)
