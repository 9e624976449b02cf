"""Loading hf_vidtok pipelines from the Hub by repo id.

diffusers' ``DiffusionPipeline.from_pretrained("user/repo")`` refuses repos whose ``model_index.json``
names components from a library other than diffusers/transformers (``ValueError: tokenizer/hf_vidtok....py
as defined in model_index.json does not exist ...``), although it loads the same folder from disk. So a
repo id is first downloaded (or found in the cache, also with ``HF_HUB_OFFLINE=1``) with
``snapshot_download`` and the local snapshot folder is loaded.
"""

from __future__ import annotations

import os
from typing import Any

from huggingface_hub import constants, snapshot_download

__all__ = ["PIPELINE_FILE_PATTERNS", "PipelineHubMixin", "resolve_pipeline_folder"]

# What a pipeline folder needs (never pickled weights).
PIPELINE_FILE_PATTERNS = ["model_index.json", "*/config.json", "*/*.safetensors", "*/*.safetensors.index.json", "*.md"]


def resolve_pipeline_folder(
    pretrained_model_name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
) -> str:
    """A local pipeline folder for a folder path or a Hub repo id (downloaded into the Hub cache, safetensors
    and JSON only; served from the cache when offline)."""
    path = os.fspath(pretrained_model_name_or_path)
    if os.path.isdir(path):
        return path
    return snapshot_download(
        path,
        revision=revision,
        cache_dir=cache_dir,
        token=token,
        local_files_only=local_files_only or constants.is_offline_mode(),
        force_download=force_download,
        allow_patterns=PIPELINE_FILE_PATTERNS,
    )


class PipelineHubMixin:
    """For hf_vidtok ``DiffusionPipeline`` subclasses: ``from_pretrained`` accepts Hub repo ids (see the module
    docstring) and ``push_to_hub`` writes the hf_vidtok model card (:func:`hf_vidtok.hub.push_to_hub`).

    Put it first in the bases: ``class ClassToVideoPipeline(PipelineHubMixin, DiffusionPipeline)``.
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any):
        folder = resolve_pipeline_folder(
            pretrained_model_name_or_path,
            revision=kwargs.pop("revision", None),
            cache_dir=kwargs.pop("cache_dir", None),
            token=kwargs.pop("token", None),
            local_files_only=kwargs.pop("local_files_only", False),
            force_download=kwargs.pop("force_download", False),
        )
        return super().from_pretrained(folder, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any):
        """Upload the pipeline folder (safetensors only) with the hf_vidtok card; keyword arguments as
        :func:`hf_vidtok.hub.push_to_hub` (``private``, ``revision``, ``commit_message``, ``eval_results`` ...)."""
        from .publishing import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)
