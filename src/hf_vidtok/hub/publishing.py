"""Saving and publishing hf_vidtok models and pipelines with their model card (safetensors only).

One path: :func:`save_pretrained_with_card` writes a folder (the object's own ``save_pretrained`` +
``README.md`` card + ``eval_results.json`` / ``training_config.json``), :func:`publish_folder` uploads a
folder with ``HfApi.upload_folder`` (one commit; training leftovers excluded by ``ignore_patterns``, pickled
weights refused), and :func:`push_to_hub` is the two in a row through a temporary folder.

The models' and pipelines' own ``save_pretrained`` / ``push_to_hub`` come here too
(:class:`hf_vidtok.models.hub_mixin.HubMixin`, :class:`hf_vidtok.hub.pipeline_mixin.PipelineHubMixin`):
transformers' and diffusers' versions would write a generic card (``library_name: transformers`` /
``diffusers``), found from the working directory or the remote repo. :func:`write_model_card` is what their
``save_pretrained`` adds.
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from huggingface_hub import HfApi, ModelCard
from huggingface_hub.utils import HFValidationError, filter_repo_objects, validate_repo_id

from .eval_results import load_eval_results
from .model_card import AUTO_CARD_MARKER, TRAINING_CONFIG_NAME, create_model_card, load_training_config

__all__ = [
    "PICKLE_PATTERNS",
    "PUBLISH_IGNORE_PATTERNS",
    "check_repo_id",
    "check_safetensors_only",
    "publish_folder",
    "push_to_hub",
    "save_pretrained_with_card",
    "save_weights_file",
    "write_model_card",
    "card_and_publish",
    "pop_push_kwargs",
]

logger = logging.getLogger(__name__)

# Weight formats that are never published (pickle-based).
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
# Training leftovers never uploaded from a folder (`upload_folder` ignore patterns, fnmatch on the relative
# path, where `*` also matches `/`); `latest` is the checkpoint pointer of the training scripts.
PUBLISH_IGNORE_PATTERNS = (
    "checkpoint-*",
    "*/checkpoint-*",
    "latest",
    ".*",
    "*/.*",
    "__pycache__/*",
    "*/__pycache__/*",
    "*.lock",
    "logs/*",
    "runs/*",
)


def _is_pipeline(obj: Any) -> bool:
    return hasattr(obj, "components") and hasattr(obj, "register_modules")


def check_repo_id(repo_id: Any) -> str:
    """``repo_id`` if it is a valid ``name`` or ``namespace/name`` (``huggingface_hub.utils.validate_repo_id``),
    else ``ValueError``."""
    if not isinstance(repo_id, str):
        raise ValueError(f"`repo_id` must be a string like 'user/name', got {type(repo_id).__name__}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"`repo_id` {repo_id!r} is not a Hub repo id: {err}") from None
    return repo_id


def _uploaded_files(folder: Path, ignore_patterns: Iterable[str]) -> list[str]:
    """The relative paths ``upload_folder(..., ignore_patterns=...)`` uploads from ``folder``."""
    paths = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*")) if p.is_file()]
    return list(filter_repo_objects(paths, ignore_patterns=[*PUBLISH_IGNORE_PATTERNS, *ignore_patterns]))


def check_safetensors_only(folder: str | os.PathLike, ignore_patterns: Iterable[str] = ()) -> list[str]:
    """Relative paths of the ``.safetensors`` files that publishing ``folder`` uploads; ``ValueError`` if a
    pickled weight file (``.bin``/``.pt``/``.pth``/``.ckpt``/``.pkl``) would be uploaded too."""
    files = _uploaded_files(Path(folder), ignore_patterns)
    pickled = [rel for rel in files if any(fnmatch.fnmatch(rel.rsplit("/", 1)[-1], p) for p in PICKLE_PATTERNS)]
    if pickled:
        raise ValueError(f"{folder} holds pickled weight files {pickled}; hf_vidtok publishes safetensors only")
    return [rel for rel in files if rel.endswith(".safetensors")]


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def _raw_eval_results(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """The results as written (validated by :func:`load_eval_results`), to copy next to the weights."""
    load_eval_results(source)  # validates (finite metrics, JSON object)
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    path = path / "eval_results.json" if path.is_dir() else path
    data = json.loads(path.read_text(encoding="utf-8"))
    return data[-1] if isinstance(data, list) else data


def _load_card(model_card: ModelCard | str | os.PathLike) -> ModelCard:
    return model_card if isinstance(model_card, ModelCard) else ModelCard.load(Path(model_card))


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
    # the card is written below (with the results); hf_vidtok objects would otherwise write one first
    card_off = {"model_card": False} if "model_card" in inspect.signature(obj.save_pretrained).parameters else {}
    if _is_pipeline(obj):
        obj.save_pretrained(save_directory, safe_serialization=True, **card_off)
    else:
        obj.save_pretrained(save_directory, **card_off)
    check_safetensors_only(save_directory)
    results = train = None
    if eval_results is not None:
        results = _raw_eval_results(eval_results)
        _write_json(save_directory / "eval_results.json", results)
    if training_config is not None:
        train = load_training_config(training_config)
        _write_json(save_directory / TRAINING_CONFIG_NAME, train)
    if model_card is None:
        card = create_model_card(obj, repo_id=repo_id, eval_results=results, training_config=train, **card_kwargs)
    else:
        card = _load_card(model_card)
    card.save(save_directory / "README.md")
    return card


# ``save_pretrained(..., push_to_hub=True, **kwargs)`` arguments that go to the upload, not to the save
PUSH_KWARGS = ("commit_message", "private", "token", "create_pr", "revision")


def pop_push_kwargs(save_directory: str | os.PathLike, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the upload arguments of ``save_pretrained(..., push_to_hub=True, **kwargs)`` from ``kwargs`` and return
    them, with ``repo_id`` (default: the folder's name)."""
    hub = {k: kwargs.pop(k) for k in PUSH_KWARGS if k in kwargs}
    hub["repo_id"] = kwargs.pop("repo_id", os.path.basename(os.path.normpath(os.fspath(save_directory))))
    return hub


def card_and_publish(save_directory: str | os.PathLike, hub: dict[str, Any] | None, model_card: bool = True):
    """What the models' and pipelines' ``save_pretrained`` do after saving: the hf_vidtok card (when ``model_card`` or
    publishing) and, with ``hub`` (from :func:`pop_push_kwargs`), the upload. Returns ``CommitInfo`` or None."""
    hub = dict(hub or {})
    if model_card or hub:
        write_model_card(save_directory, repo_id=hub.get("repo_id"))
    if not hub:
        return None
    return publish_folder(save_directory, hub.pop("repo_id"), **hub)


def write_model_card(folder: str | os.PathLike, repo_id: str | None = None) -> ModelCard | None:
    """Write the hf_vidtok card of the saved model or pipeline in ``folder`` to ``folder/README.md`` (results from
    an ``eval_results.json`` in the folder or its parent) and return it. A ``README.md`` that hf_vidtok did not
    generate is the user's: it is kept and None is returned (also, with a warning, when Jinja2 is missing)."""
    readme = Path(folder) / "README.md"
    if readme.is_file() and AUTO_CARD_MARKER not in readme.read_text(encoding="utf-8"):
        return None
    try:
        card = create_model_card(folder, repo_id=repo_id)
    except ImportError as err:  # Jinja2 (the `hub` extra) is missing
        logger.warning("no model card written to %s: %s", folder, err)
        return None
    card.save(readme)
    return card


def _prepare_repo(api: HfApi, repo_id: str, *, private: bool | None, revision: str | None, create_pr: bool) -> str:
    repo_id = api.create_repo(check_repo_id(repo_id), private=private, exist_ok=True).repo_id
    if revision is not None and not create_pr and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    return repo_id


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
    regenerate_card: bool = False,
    ignore_patterns: Iterable[str] = (),
    **card_kwargs: Any,
):
    """Upload a saved model or pipeline folder (``config.json`` or ``model_index.json`` + safetensors) to
    ``repo_id`` in one commit (``HfApi.upload_folder``), with its model card.

    The card is ``model_card`` when given; else the folder's own ``README.md`` when it was written by hand
    (kept as is); else (no README, one generated by hf_vidtok, or ``regenerate_card=True``) a new card for
    ``repo_id`` with results from ``eval_results`` or the ``eval_results.json`` found in the folder or its
    parent, and the training configuration found the same way. A new or given card is written to the
    folder's ``README.md`` first, so the folder and the repo hold the same card. Pickled weights make it
    fail; training leftovers (:data:`PUBLISH_IGNORE_PATTERNS`) and files matching ``ignore_patterns``
    (fnmatch on the path relative to ``folder``) are not uploaded. Returns ``CommitInfo``.
    """
    check_repo_id(repo_id)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    if not (folder / "config.json").is_file() and not (folder / "model_index.json").is_file():
        raise FileNotFoundError(
            f"{folder} holds neither config.json nor model_index.json: not a saved model or pipeline"
        )
    ignore = [*PUBLISH_IGNORE_PATTERNS, *ignore_patterns]
    if not check_safetensors_only(folder, ignore_patterns):
        raise FileNotFoundError(f"{folder} holds no .safetensors weights")

    readme = folder / "README.md"
    if model_card is not None:
        _load_card(model_card).save(readme)
    elif regenerate_card or not readme.is_file() or AUTO_CARD_MARKER in readme.read_text(encoding="utf-8"):
        create_model_card(
            folder, repo_id=repo_id, eval_results=eval_results, training_config=training_config, **card_kwargs
        ).save(readme)
    api = HfApi(endpoint=endpoint, token=token)
    repo_id = _prepare_repo(api, repo_id, private=private, revision=revision, create_pr=create_pr)
    logger.info("publishing %s to %s", folder, repo_id)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        revision=revision,
        commit_message=commit_message or f"Upload {folder.name} with hf_vidtok",
        commit_description=commit_description,
        create_pr=create_pr,
        ignore_patterns=ignore,
    )


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
    :func:`save_pretrained_with_card` into a temporary folder, then :func:`publish_folder`.

    ``revision`` is a branch (created from ``main`` when missing). Returns ``huggingface_hub.CommitInfo``.
    """
    check_repo_id(repo_id)
    if not hasattr(obj, "save_pretrained"):
        raise TypeError(f"expected a model or pipeline with save_pretrained, got {type(obj).__name__}")
    with tempfile.TemporaryDirectory(prefix="hf_vidtok_push_") as tmp:
        card = save_pretrained_with_card(
            obj,
            tmp,
            eval_results=eval_results,
            training_config=training_config,
            repo_id=repo_id,
            model_card=model_card,
            **card_kwargs,
        )
        return publish_folder(
            tmp,
            repo_id,
            private=private,
            revision=revision,
            commit_message=commit_message or f"Upload {type(obj).__name__} with hf_vidtok",
            commit_description=commit_description,
            token=token,
            create_pr=create_pr,
            endpoint=endpoint,
            model_card=card,
        )


def save_weights_file(
    model, output: str | os.PathLike, default_filename: str, *, push_to_hub: str | None = None
) -> str:
    """Save a converted metric network (LPIPS, I3D) with ``model.save_pretrained(folder, filename=...)``
    (``output`` is a folder, or a ``.safetensors`` file path) and, with ``push_to_hub``, upload the file to
    the root of that repo (``HfApi.upload_file``). Returns the local path."""
    output = os.fspath(output)
    if output.endswith(".safetensors"):
        out_dir, filename = os.path.dirname(output) or ".", os.path.basename(output)
    else:
        out_dir, filename = output, default_filename
    path = model.save_pretrained(out_dir, filename=filename)
    print(f"wrote {path}")
    if push_to_hub:
        api = HfApi()
        repo_id = api.create_repo(check_repo_id(push_to_hub), exist_ok=True).repo_id
        api.upload_file(path_or_fileobj=path, path_in_repo=filename, repo_id=repo_id)
    return path
