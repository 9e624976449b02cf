"""What the hf_vidtok pipelines add to diffusers' ``DiffusionPipeline`` Hub methods (first in the bases:
``class ClassToVideoPipeline(PipelineHubMixin, DiffusionPipeline)``).

* ``from_pretrained`` accepts Hub repo ids: diffusers refuses repos whose ``model_index.json`` names components of
  a library other than diffusers/transformers, although it loads the same folder from disk, so a repo id is fetched
  with :func:`~hf_vidtok.hub.loading.resolve_pipeline_folder` first. Components are loaded by their classes'
  ``from_pretrained``, so a pipeline folder whose ``tokenizer/`` or ``generator/`` holds an official LARP export
  loads too (:mod:`hf_vidtok.models.hub_mixin`).
* ``save_pretrained`` writes safetensors and the hf_vidtok pipeline card (``README.md``; a hand-written one is
  kept), ``push_to_hub`` publishes with that card (:func:`hf_vidtok.hub.push_to_hub`), wherever it runs from.
  diffusers' versions write its generic card (``library_name: diffusers``).
"""

from __future__ import annotations

import os
from typing import Any

from .loading import resolve_pipeline_folder

__all__ = ["PipelineHubMixin"]


class PipelineHubMixin:
    """Hub methods of the hf_vidtok ``DiffusionPipeline`` subclasses (see the module docstring)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any):
        """A pipeline from a folder written by ``save_pretrained`` (``model_index.json`` + ``tokenizer/`` +
        ``generator/``) or a Hub repo id; component objects given as keyword arguments replace the saved ones."""
        folder = resolve_pipeline_folder(
            pretrained_model_name_or_path,
            revision=kwargs.pop("revision", None),
            cache_dir=kwargs.pop("cache_dir", None),
            token=kwargs.pop("token", None),
            local_files_only=kwargs.pop("local_files_only", False),
            force_download=kwargs.pop("force_download", False),
        )
        if not os.path.isfile(os.path.join(folder, "model_index.json")):
            raise FileNotFoundError(
                f"{os.fspath(pretrained_model_name_or_path)!r} has no model_index.json: it is not a pipeline folder. "
                f"Make one with {cls.__name__}(tokenizer=..., generator=...).save_pretrained(dir) or "
                "`hf-vidtok pipeline --tokenizer ... --generator ... --output dir`"
            )
        return super().from_pretrained(folder, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, *args, push_to_hub: bool = False,
                        model_card: bool = True, **kwargs: Any):  # fmt: skip
        """diffusers' ``save_pretrained`` (safetensors) plus the hf_vidtok pipeline card in ``README.md`` (kept when
        hand-written; ``model_card=False`` writes none). With ``push_to_hub=True`` the folder is then published
        (``repo_id``, default the folder name; ``commit_message``, ``private``, ``token``, ``create_pr``,
        ``revision``)."""
        from .publishing import card_and_publish, pop_push_kwargs

        hub = pop_push_kwargs(save_directory, kwargs) if push_to_hub else None
        if kwargs.get("safe_serialization") is False:
            raise ValueError("hf_vidtok pipelines are saved as safetensors only (`safe_serialization=False` refused)")
        super().save_pretrained(os.fspath(save_directory), *args, **kwargs)
        return card_and_publish(save_directory, hub, model_card)

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        create_pr: bool = False,
        safe_serialization: bool = True,
        variant: str | None = None,
        *,
        revision: str | None = None,
        **card_kwargs: Any,
    ):
        """Upload the pipeline with its hf_vidtok card in one commit (:func:`hf_vidtok.hub.push_to_hub`; diffusers'
        arguments plus ``revision`` and the card's ``eval_results``, ``training_config``, ``license`` ...).
        Returns ``huggingface_hub.CommitInfo``."""
        from .publishing import push_to_hub

        if not safe_serialization:
            raise ValueError("hf_vidtok pipelines are saved as safetensors only (`safe_serialization=False` refused)")
        if variant is not None:
            raise ValueError(f"hf_vidtok pipelines have no weight variants, got variant={variant!r}")
        return push_to_hub(self, repo_id, commit_message=commit_message, private=private, token=token,
                           create_pr=create_pr, revision=revision, **card_kwargs)  # fmt: skip
