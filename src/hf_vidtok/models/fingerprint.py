"""Identity of a model's weights and architecture: what a table, token dataset or audit made with it records.

A path or Hub id names where a model was, not which model it is (folders are retrained in place, Hub repos
get new commits), so artefacts that depend on a model's outputs store :func:`model_fingerprint` and refuse to
mix rows of two different models.
"""

from __future__ import annotations

import hashlib
import json

import torch
from torch import nn

__all__ = ["weights_sha256", "config_sha256", "model_fingerprint"]

#: Config entries that say where or with what a config was written, not what the model is.
_NON_ARCHITECTURE_KEYS = ("transformers_version", "_name_or_path", "_commit_hash")


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 of ``module.state_dict()``: names, dtypes, shapes and bytes, in name order (device-independent)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def config_sha256(config) -> str:
    """SHA-256 of a ``PretrainedConfig``'s dict (sorted keys), without the version / location entries."""
    data = {k: v for k, v in config.to_dict().items() if k not in _NON_ARCHITECTURE_KEYS}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def model_fingerprint(model: nn.Module) -> dict[str, str]:
    """``{"model_type", "config_sha256", "weights_sha256"}`` of a transformers-style model."""
    config = model.config
    return {"model_type": str(getattr(config, "model_type", type(model).__name__)),
            "config_sha256": config_sha256(config), "weights_sha256": weights_sha256(model)}
