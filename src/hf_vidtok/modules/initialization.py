"""ViT-style parameter initialisation shared by the EVATok tokenizer and router."""

from torch import nn
from transformers import initialization as init


def init_vit_module(module: nn.Module, std: float) -> bool:
    """Truncated-normal ``Linear`` / ``Conv3d`` weights (``std``), zero biases, unit LayerNorms.

    Returns True when ``module`` was one of those types (so callers can handle their own types after it).
    """
    if isinstance(module, (nn.Linear, nn.Conv3d)):
        init.trunc_normal_(module.weight, std=std)
        if module.bias is not None:
            init.zeros_(module.bias)
        return True
    if isinstance(module, nn.LayerNorm):
        init.ones_(module.weight)
        init.zeros_(module.bias)
        return True
    return False
