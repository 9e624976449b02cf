"""Resolve a weights file from a local path or (only when asked) a Hugging Face Hub repo id."""

from __future__ import annotations

import os

import torch
from safetensors.torch import load_file

__all__ = ["resolve_weights_file", "load_safetensors_with_metadata", "save_converted_weights"]


def resolve_weights_file(
    path_or_repo_id: str | os.PathLike,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
) -> str:
    """Return a local path for ``filename``.

    ``path_or_repo_id`` may be a ``.safetensors`` file, a folder holding ``filename``, or a Hub
    repo id (``"user/name"``); only the last case touches the network (through
    ``huggingface_hub.hf_hub_download``, so ``HF_HUB_OFFLINE=1`` and the local cache apply).
    """
    if not isinstance(path_or_repo_id, (str, os.PathLike)):
        raise TypeError(f"`path_or_repo_id` must be a path or a Hub repo id, got {type(path_or_repo_id).__name__}")
    path = os.fspath(path_or_repo_id)
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        candidate = os.path.join(path, filename)
        if not os.path.isfile(candidate):
            raise FileNotFoundError(f"no `{filename}` in folder {path!r}")
        return candidate
    looks_local = path.startswith((".", "/", "~")) or path.endswith(".safetensors") or path.count("/") != 1
    if looks_local:
        raise FileNotFoundError(f"{path!r} is neither an existing file/folder nor a Hub repo id of the form 'user/name'")
    from huggingface_hub import hf_hub_download

    return hf_hub_download(path, filename, revision=revision, cache_dir=cache_dir, token=token)


def load_safetensors_with_metadata(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load every tensor of a safetensors file (CPU) and its string metadata."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        metadata = dict(f.metadata() or {})
    return load_file(path), metadata


def save_converted_weights(model, output: str, default_filename: str, push_to_hub: str | None = None) -> str:
    """Save a converted metric network with ``model.save_pretrained(folder, filename=...)`` (``output`` is a
    folder, or a ``.safetensors`` file path) and optionally upload the file to the Hub repo ``push_to_hub``."""
    if output.endswith(".safetensors"):
        out_dir, filename = os.path.dirname(output) or ".", os.path.basename(output)
    else:
        out_dir, filename = output, default_filename
    path = model.save_pretrained(out_dir, filename=filename)
    print(f"wrote {path}")
    if push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(push_to_hub, exist_ok=True)
        api.upload_file(path_or_fileobj=path, path_in_repo=filename, repo_id=push_to_hub)
    return path
