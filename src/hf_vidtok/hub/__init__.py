"""Model cards and publishing for hf_vidtok models and pipelines (huggingface_hub only).

- :func:`create_model_card` builds a ``huggingface_hub.ModelCard`` (metadata, ``model-index`` results from
  ``eval_results.json``, usage, training configuration, intended use, citations) from the templates in
  ``hf_vidtok/hub/model_cards/``.
- :func:`push_to_hub` / :func:`push_model_to_hub` / :func:`push_pipeline_to_hub` upload an object with its card;
  :func:`publish_folder` uploads a saved folder; :func:`save_pretrained_with_card` saves one locally.
- :class:`HubPublishMixin` (models) and :class:`PipelineHubMixin` (pipelines: also loads Hub repo ids, which
  diffusers refuses for custom components) give the classes a ``push_to_hub`` that writes this card.
"""

from .eval_results import METRICS, load_eval_results, normalize_eval_results
from .loading import PipelineHubMixin, resolve_pipeline_folder
from .model_card import (
    AUTO_CARD_MARKER,
    KINDS,
    TEMPLATES_DIR,
    create_model_card,
    create_model_card_for_folder,
    describe,
    find_training_config,
    load_training_config,
    model_kind,
    template_path,
)
from .publishing import (
    HubPublishMixin,
    check_safetensors_only,
    publish_folder,
    push_model_to_hub,
    push_pipeline_to_hub,
    push_to_hub,
    save_pretrained_with_card,
)

__all__ = [
    "AUTO_CARD_MARKER",
    "KINDS",
    "METRICS",
    "TEMPLATES_DIR",
    "HubPublishMixin",
    "PipelineHubMixin",
    "check_safetensors_only",
    "create_model_card",
    "create_model_card_for_folder",
    "describe",
    "find_training_config",
    "load_eval_results",
    "load_training_config",
    "model_kind",
    "normalize_eval_results",
    "publish_folder",
    "push_model_to_hub",
    "push_pipeline_to_hub",
    "push_to_hub",
    "resolve_pipeline_folder",
    "save_pretrained_with_card",
    "template_path",
]
