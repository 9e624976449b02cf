"""The bare model behind accelerate's wrappers (DDP, ``torch.compile``), shared by the accelerator setup and the
checkpoint code (kept apart from both so that neither imports the other at module level)."""

from __future__ import annotations

__all__ = ["bare_model"]


def bare_model(accelerator, model):
    """``model`` without accelerate's wrappers, the ``torch.compile`` one included (``accelerator.unwrap_model``
    keeps that by default): the model's own class, methods and state-dict keys (no ``_orig_mod.`` prefix)."""
    return accelerator.unwrap_model(model, keep_torch_compile=False)
