"""Model cards, publishing and Hub loading for hf_vidtok models and pipelines (huggingface_hub only).

- :func:`create_model_card` builds a ``huggingface_hub.ModelCard`` from the templates in
  ``hf_vidtok/hub/model_cards/`` (text) and the typed configs, ``eval_results.json`` and the training
  configuration (facts). Needs Jinja2: ``pip install "hf_vidtok[hub]"``.
- Publishing, one path: :func:`save_pretrained_with_card` writes a folder, :func:`publish_folder` uploads a
  folder (``HfApi.upload_folder``), :func:`push_to_hub` does both for an object.
- Datasets: :func:`video_dataset_card` (the card of shards packed by ``hf-vidtok pack``) and
  :func:`publish_dataset_folder` (a folder -> a Hub dataset repo).
- Loading: :func:`resolve_file` (one weights file from a path or repo id) and :class:`PipelineHubMixin`
  (pipelines from Hub repo ids, which diffusers refuses for custom components; their ``save_pretrained`` /
  ``push_to_hub`` write the hf_vidtok card, as the models' do through ``hf_vidtok.models.hub_mixin``).
"""

from .dataset_card import publish_dataset_folder, video_dataset_card
from .eval_results import METRICS, load_eval_results, normalize_eval_results
from .loading import resolve_file, resolve_pipeline_folder
from .model_card import (
    AUTO_CARD_MARKER,
    KINDS,
    LOCAL_MODEL_PATH,
    TEMPLATES_DIR,
    create_model_card,
    describe,
    find_training_config,
    load_training_config,
    model_kind,
    template_path,
)
from .pipeline_mixin import PipelineHubMixin
from .publishing import (
    check_repo_id,
    check_safetensors_only,
    publish_folder,
    push_to_hub,
    save_pretrained_with_card,
    save_weights_file,
    write_model_card,
)

__all__ = [
    "AUTO_CARD_MARKER",
    "KINDS",
    "LOCAL_MODEL_PATH",
    "METRICS",
    "TEMPLATES_DIR",
    "PipelineHubMixin",
    "check_repo_id",
    "check_safetensors_only",
    "create_model_card",
    "describe",
    "find_training_config",
    "load_eval_results",
    "load_training_config",
    "model_kind",
    "normalize_eval_results",
    "publish_dataset_folder",
    "publish_folder",
    "push_to_hub",
    "resolve_file",
    "resolve_pipeline_folder",
    "save_pretrained_with_card",
    "template_path",
    "save_weights_file",
    "video_dataset_card",
    "write_model_card",
]
