"""Local path or Hub repo id -> local files: the one place hf_vidtok resolves where weights live.

- :func:`resolve_file`: one file (a metric's weights): a file path as it is, else transformers'
  ``cached_file`` (a local folder, or the Hub download cache, also offline with ``HF_HUB_OFFLINE=1``).
- :func:`resolve_pipeline_folder` (used by :class:`~hf_vidtok.hub.pipeline_mixin.PipelineHubMixin`): a pipeline folder. diffusers'
  ``DiffusionPipeline.from_pretrained("user/repo")`` refuses repos whose ``model_index.json`` names
  components from a library other than diffusers/transformers (``ValueError: generator/hf_vidtok....py as
  defined in model_index.json does not exist ...``), although it loads the same folder from disk. So a repo
  id is first fetched with ``snapshot_download`` (safetensors and JSON only) and the snapshot folder loaded.

Models (tokenizers, generators) need none of this: ``AutoModel.from_pretrained(path_or_repo_id,
subfolder=...)`` resolves them (official LARP exports: :mod:`hf_vidtok.models.hub_mixin`).
"""

from __future__ import annotations

import os
from huggingface_hub import constants, snapshot_download

__all__ = ["PIPELINE_FILE_PATTERNS", "resolve_file", "resolve_pipeline_folder"]

# What a pipeline folder needs (never pickled weights).
PIPELINE_FILE_PATTERNS = ["model_index.json", "*/config.json", "*/*.safetensors", "*/*.safetensors.index.json", "*.md"]


def resolve_file(
    path_or_repo_id: str | os.PathLike,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
) -> str:
    """A local path for ``filename``: ``path_or_repo_id`` is the file itself, a folder holding it, or a Hub
    repo id (downloaded through ``transformers.utils.cached_file``; only this case touches the network).

    Raises ``FileNotFoundError`` for a folder without ``filename`` and for a path that does not exist and is
    not a valid repo id (``huggingface_hub.utils.validate_repo_id``), ``OSError`` when the repo or its file
    cannot be found.
    """
    if not isinstance(path_or_repo_id, (str, os.PathLike)):
        raise TypeError(f"`path_or_repo_id` must be a path or a Hub repo id, got {type(path_or_repo_id).__name__}")
    path = os.fspath(path_or_repo_id)
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, filename)):
            raise FileNotFoundError(f"no `{filename}` in folder {path!r}")
        return os.path.join(path, filename)
    from huggingface_hub.utils import HFValidationError, validate_repo_id
    from transformers.utils import cached_file

    try:
        validate_repo_id(path)
    except HFValidationError:
        raise FileNotFoundError(f"{path!r} is neither an existing file/folder nor a Hub repo id") from None

    return cached_file(path, filename, revision=revision, cache_dir=cache_dir, token=token)


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
