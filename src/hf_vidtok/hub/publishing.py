"""Saving and publishing hf_vidtok models and pipelines with their model card (safetensors only).

transformers' ``PreTrainedModel.push_to_hub`` and diffusers' ``DiffusionPipeline.push_to_hub`` write a
generic card (``library_name: transformers`` / ``diffusers``) over the one a model folder carries, and the
diffusers one has no ``revision``. The functions here save through the objects' own ``save_pretrained``
(safetensors + ``config.json`` or ``model_index.json``), add the hf_vidtok card, check that no pickled
weights are in the folder, and upload everything in one commit with ``HfApi``.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from huggingface_hub import CommitOperationAdd, HfApi, ModelCard

from .eval_results import load_eval_results
from .model_card import AUTO_CARD_MARKER, create_model_card, find_training_config, load_training_config

__all__ = [
    "PICKLE_PATTERNS",
    "HubPublishMixin",
    "check_safetensors_only",
    "publish_folder",
    "push_model_to_hub",
    "push_pipeline_to_hub",
    "push_to_hub",
    "save_pretrained_with_card",
]

logger = logging.getLogger(__name__)

# Weight formats that are never published (pickle-based).
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
# Training leftovers never published from a folder (`latest` is the checkpoint pointer of the training scripts).
_SKIP_PATTERNS = ("checkpoint-*", "latest", ".*", "__pycache__", "*.lock", "logs", "runs")


def _is_pipeline(obj: Any) -> bool:
    return hasattr(obj, "components") and hasattr(obj, "register_modules")


def _check_repo_id(repo_id: Any) -> str:
    if not isinstance(repo_id, str) or not repo_id.strip() or repo_id.count("/") > 1 or repo_id.strip("/") != repo_id:
        raise ValueError(f"`repo_id` must look like 'name' or 'user/name', got {repo_id!r}")
    return repo_id


def check_safetensors_only(folder: str | os.PathLike) -> list[str]:
    """Relative paths of the weight files in ``folder``; raises ``ValueError`` if any pickled weight file
    (``.bin``/``.pt``/``.pth``/``.ckpt``/``.pkl``) is present outside ``checkpoint-*`` folders."""
    folder = Path(folder)
    weights, pickled = [], []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        if _skipped(rel):
            continue
        if any(fnmatch.fnmatch(path.name, p) for p in PICKLE_PATTERNS):
            pickled.append(rel)
        elif path.suffix == ".safetensors":
            weights.append(rel)
    if pickled:
        raise ValueError(f"{folder} holds pickled weight files {pickled}; hf_vidtok publishes safetensors only")
    return weights


def _skipped(rel: str) -> bool:
    parts = rel.split("/")
    return any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in _SKIP_PATTERNS)


def save_pretrained_with_card(
    obj: Any,
    save_directory: str | os.PathLike,
    *,
    eval_results: str | os.PathLike | Mapping[str, Any] | None = None,
    training_config: str | os.PathLike | Mapping[str, Any] | Any | None = None,
    repo_id: str | None = None,
    model_card: ModelCard | str | os.PathLike | None = None,
    **card_kwargs: Any,
) -> ModelCard:
    """``obj.save_pretrained(save_directory)`` (safetensors only) plus ``README.md`` (the model card),
    ``eval_results.json`` and ``training_config.json`` when given. Returns the card.

    ``obj`` is a LarpTokenizer / VideoARGenerator (transformers ``save_pretrained``) or an hf_vidtok
    pipeline (diffusers ``save_pretrained(safe_serialization=True)``). ``model_card`` replaces the
    generated card (a ``ModelCard`` or a path to a README); ``card_kwargs`` go to :func:`create_model_card`.
    """
    if not hasattr(obj, "save_pretrained"):
        raise TypeError(f"expected a model or pipeline with save_pretrained, got {type(obj).__name__}")
    save_directory = Path(save_directory)
    save_directory.mkdir(parents=True, exist_ok=True)
    if _is_pipeline(obj):
        obj.save_pretrained(save_directory, safe_serialization=True)
    else:
        obj.save_pretrained(save_directory)
    check_safetensors_only(save_directory)
    results = None
    if eval_results is not None:
        raw = _raw_eval_results(eval_results)
        (save_directory / "eval_results.json").write_text(json.dumps(raw, indent=2, sort_keys=True, default=str) + "\n")
        results = raw
    train = None
    if training_config is not None:
        train = load_training_config(training_config)
        (save_directory / "training_config.json").write_text(
            json.dumps(train, indent=2, sort_keys=True, default=str) + "\n"
        )
    if model_card is None:
        card = create_model_card(obj, repo_id=repo_id, eval_results=results, training_config=train, **card_kwargs)
    elif isinstance(model_card, ModelCard):
        card = model_card
    else:
        card = ModelCard.load(Path(model_card))
    card.save(save_directory / "README.md")
    return card


def _raw_eval_results(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """The results as written (validated by :func:`load_eval_results`), to copy next to the weights."""
    load_eval_results(source)  # validates (finite metrics, JSON object)
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    path = path / "eval_results.json" if path.is_dir() else path
    data = json.loads(path.read_text(encoding="utf-8"))
    return data[-1] if isinstance(data, list) else data


def _prepare_repo(api: HfApi, repo_id: str, *, private: bool | None, revision: str | None, create_pr: bool) -> str:
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if revision is not None and not create_pr and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    return repo_id


def push_to_hub(
    obj: Any,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    token: str | bool | None = None,
    create_pr: bool = False,
    endpoint: str | None = None,
    eval_results: str | os.PathLike | Mapping[str, Any] | None = None,
    training_config: str | os.PathLike | Mapping[str, Any] | Any | None = None,
    model_card: ModelCard | str | os.PathLike | None = None,
    **card_kwargs: Any,
):
    """Upload a LarpTokenizer, VideoARGenerator or hf_vidtok pipeline to ``repo_id`` in one commit:
    safetensors weights, ``config.json`` / ``model_index.json``, the model card (``README.md``) and, when
    given, ``eval_results.json`` and ``training_config.json``.

    ``revision`` is a branch (created from ``main`` when missing). Returns ``huggingface_hub.CommitInfo``.
    """
    _check_repo_id(repo_id)
    api = HfApi(endpoint=endpoint, token=token)
    repo_id = _prepare_repo(api, repo_id, private=private, revision=revision, create_pr=create_pr)
    with tempfile.TemporaryDirectory(prefix="hf_vidtok_push_") as tmp:
        save_pretrained_with_card(
            obj,
            tmp,
            eval_results=eval_results,
            training_config=training_config,
            repo_id=repo_id,
            model_card=model_card,
            **card_kwargs,
        )
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=tmp,
            revision=revision,
            commit_message=commit_message or f"Upload {type(obj).__name__} with hf_vidtok",
            commit_description=commit_description,
            create_pr=create_pr,
        )


# Explicit names for the two families; same behaviour.
def push_model_to_hub(model: Any, repo_id: str, **kwargs: Any):
    """:func:`push_to_hub` for a LarpTokenizer or VideoARGenerator (what the training scripts'
    ``--push_to_hub`` call)."""
    if _is_pipeline(model):
        raise TypeError("push_model_to_hub expects a model; use push_pipeline_to_hub for pipelines")
    return push_to_hub(model, repo_id, **kwargs)


def push_pipeline_to_hub(pipeline: Any, repo_id: str, **kwargs: Any):
    """:func:`push_to_hub` for a ClassToVideoPipeline or FramePredictionPipeline (one diffusers folder)."""
    if not _is_pipeline(pipeline):
        raise TypeError(f"push_pipeline_to_hub expects a diffusers pipeline, got {type(pipeline).__name__}")
    return push_to_hub(pipeline, repo_id, **kwargs)


def publish_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    token: str | bool | None = None,
    create_pr: bool = False,
    endpoint: str | None = None,
    eval_results: str | os.PathLike | Mapping[str, Any] | None = None,
    training_config: str | os.PathLike | Mapping[str, Any] | Any | None = None,
    model_card: ModelCard | str | os.PathLike | None = None,
    regenerate_card: bool | None = None,
    ignore_patterns: Iterable[str] = (),
    **card_kwargs: Any,
):
    """Upload a saved model or pipeline folder (``config.json`` or ``model_index.json`` + safetensors) to
    ``repo_id`` in one commit, with its model card.

    The card is ``model_card`` when given; else the folder's own ``README.md`` when it was written by hand
    (kept as is); else (no README, one generated by hf_vidtok, or ``regenerate_card=True``) a new card for
    ``repo_id`` with results from ``eval_results`` or the ``eval_results.json`` found in the folder or its
    parent, and the training configuration found the same way. Pickled weights make it fail; training
    leftovers (``checkpoint-*``, ``latest``, hidden files, ``logs``/``runs``) and files matching ``ignore_patterns``
    (fnmatch on the path relative to ``folder``) are not uploaded. Returns ``CommitInfo``.
    """
    _check_repo_id(repo_id)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    if not (folder / "config.json").is_file() and not (folder / "model_index.json").is_file():
        raise FileNotFoundError(
            f"{folder} holds neither config.json nor model_index.json: not a saved model or pipeline"
        )
    skip = tuple(ignore_patterns)
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not _skipped(rel) and not any(fnmatch.fnmatch(rel, p) for p in skip):
            files.append((rel, path))
    pickled = [rel for rel, path in files if any(fnmatch.fnmatch(path.name, p) for p in PICKLE_PATTERNS)]
    if pickled:
        raise ValueError(f"{folder} holds pickled weight files {pickled}; hf_vidtok publishes safetensors only")
    if not any(rel.endswith(".safetensors") for rel, _ in files):
        raise FileNotFoundError(f"{folder} holds no .safetensors weights")

    readme = folder / "README.md"
    if model_card is not None:
        card = model_card if isinstance(model_card, ModelCard) else ModelCard.load(Path(model_card))
    elif readme.is_file() and not regenerate_card and AUTO_CARD_MARKER not in readme.read_text(encoding="utf-8"):
        card = None  # a hand-written card: upload as it is
    else:
        card = create_model_card(
            folder,
            repo_id=repo_id,
            eval_results=eval_results,
            training_config=training_config if training_config is not None else find_training_config(folder),
            **card_kwargs,
        )
    operations = [
        CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(path))
        for rel, path in files
        if not (rel == "README.md" and card is not None)
    ]
    if card is not None:
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode("utf-8")))
    api = HfApi(endpoint=endpoint, token=token)
    repo_id = _prepare_repo(api, repo_id, private=private, revision=revision, create_pr=create_pr)
    logger.info("publishing %d files from %s to %s", len(operations), folder, repo_id)
    return api.create_commit(
        repo_id=repo_id,
        operations=operations,
        commit_message=commit_message or f"Upload {folder.name} with hf_vidtok",
        commit_description=commit_description,
        revision=revision,
        create_pr=create_pr,
    )


class HubPublishMixin:
    """Gives a model or pipeline class a ``push_to_hub`` that writes the hf_vidtok card.

    Put it first in the bases (``class LarpTokenizer(HubPublishMixin, LarpPreTrainedModel)``) so it
    overrides transformers'/diffusers' ``push_to_hub``; ``save_pretrained`` is unchanged.
    """

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        revision: str | None = None,
        commit_message: str | None = None,
        commit_description: str | None = None,
        token: str | bool | None = None,
        create_pr: bool = False,
        eval_results: str | os.PathLike | Mapping[str, Any] | None = None,
        training_config: str | os.PathLike | Mapping[str, Any] | Any | None = None,
        model_card: ModelCard | str | os.PathLike | None = None,
        **card_kwargs: Any,
    ):
        """Upload safetensors weights, config and the hf_vidtok model card to ``repo_id`` (see
        :func:`hf_vidtok.hub.push_to_hub`); returns ``CommitInfo``."""
        return push_to_hub(
            self,
            repo_id,
            private=private,
            revision=revision,
            commit_message=commit_message,
            commit_description=commit_description,
            token=token,
            create_pr=create_pr,
            eval_results=eval_results,
            training_config=training_config,
            model_card=model_card,
            **card_kwargs,
        )
