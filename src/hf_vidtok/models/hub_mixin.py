"""What every hf_vidtok model adds to transformers' ``PreTrainedModel`` Hub methods (one mixin, first in the bases).

* ``from_pretrained`` recognises an **official LARP export** (the ``PyTorchModelHubMixin`` format of the official
  Hub repos: ``config.json`` without ``model_type`` + ``model.safetensors`` or ``pytorch_model.bin``, read with
  ``weights_only=True``), in a local folder or a Hub repo, and returns the exactly converted model (the converter
  of ``models/*/convert_*_original_to_hf.py``: every official key consumed, every parameter filled). An official
  export of another kind (an AR model given to ``LarpTokenizer``) raises a ``ValueError`` naming the right class.
* ``from_pretrained`` of an hf_vidtok folder is **strict**: weights that do not fit the architecture (missing,
  unexpected or differently shaped keys) raise :class:`WeightsMismatchError` naming the keys, where transformers
  would log a report and return a partly random model. ``strict=False`` is the explicit opt-in to transformers'
  behaviour.
* ``save_pretrained`` also writes the hf_vidtok model card (``README.md``: library ``hf_vidtok``, usage snippet,
  the results of an ``eval_results.json`` next to the folder), keeping a hand-written ``README.md``;
  ``save_pretrained(..., push_to_hub=True)`` and ``push_to_hub`` publish with that card
  (:func:`hf_vidtok.hub.push_to_hub`), wherever they run from. transformers' own versions write its generic card
  (``library_name: transformers``, "[More Information Needed]").

The card code (:mod:`hf_vidtok.hub`, huggingface_hub + Jinja2) and the converters are imported inside the methods:
the model modules keep importing only torch / transformers / safetensors.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from typing import Any, ClassVar

import torch

__all__ = ["OFFICIAL_EXPORT_CLASSES", "HubMixin", "WeightsMismatchError", "official_export_config"]

logger = logging.getLogger(__name__)

# official export kind -> (converter module, hf_vidtok class that loads it)
OFFICIAL_EXPORT_CLASSES = {
    "tokenizer": ("hf_vidtok.models.larp.convert_larp_original_to_hf", "LarpTokenizer"),
    "ar": ("hf_vidtok.models.video_ar.convert_larp_ar_original_to_hf", "VideoARGenerator"),
}
_DOWNLOAD_KWARGS = ("revision", "subfolder", "cache_dir", "token", "local_files_only", "force_download")
# Loading settings diffusers / accelerate pass to every transformers component; an official export has one
# safetensors or bin file, so they change nothing there (a non-default value that would matter is refused).
# (model.safetensors is read when present, else pytorch_model.bin with weights_only=True).
_IGNORED_LOADING_KWARGS = (
    "low_cpu_mem_usage", "max_memory", "offload_folder", "offload_state_dict", "use_safetensors", "disable_mmap",
    "variant", "proxies", "trust_remote_code", "_from_auto", "_from_pipeline", "weights_only",
    "ignore_mismatched_sizes",
)
_MAX_LISTED_KEYS = 20


class WeightsMismatchError(ValueError):
    """Weights that do not fit the model's architecture (missing, unexpected or differently shaped keys)."""


def _drop_load_report(record: logging.LogRecord) -> bool:
    """Logging filter: drop transformers' "LOAD REPORT" table (a strict load raises with the keys instead)."""
    return "LOAD REPORT" not in str(record.msg)


def _listed(keys) -> str:
    keys = sorted(str(k) for k in keys)
    more = f" ... (+{len(keys) - _MAX_LISTED_KEYS} more)" if len(keys) > _MAX_LISTED_KEYS else ""
    return f"{keys[:_MAX_LISTED_KEYS]}{more}"


def official_export_config(pretrained_model_name_or_path, **download_kwargs) -> tuple[str, dict] | None:
    """``(kind, config dict)`` when ``pretrained_model_name_or_path`` (+ ``subfolder``) holds an official LARP export
    (see :func:`hf_vidtok.models.convert_utils.official_export_kind`), else None (also when no ``config.json`` can be
    found: ``from_pretrained`` then reports that itself)."""
    from .convert_utils import official_export_kind

    if pretrained_model_name_or_path is None:
        return None
    path = os.fspath(pretrained_model_name_or_path)
    subfolder = download_kwargs.get("subfolder") or ""
    if os.path.isdir(path):
        config_path = os.path.join(path, subfolder, "config.json")
        if not os.path.isfile(config_path):
            return None
    elif os.path.exists(path):
        return None
    else:
        from transformers.utils import cached_file

        try:
            config_path = cached_file(
                path, "config.json", _raise_exceptions_for_missing_entries=False,
                **{k: v for k, v in download_kwargs.items() if k in _DOWNLOAD_KWARGS},
            )  # fmt: skip
        except (OSError, ValueError):
            return None
        if config_path is None:
            return None
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    kind = official_export_kind(config)
    return None if kind is None else (kind, config)


class HubMixin:
    """Put first in the bases of an hf_vidtok ``PreTrainedModel`` subclass (see the module docstring).

    ``_official_export_kind``: the official export kind the class loads (``"tokenizer"``, ``"ar"``) or None.
    """

    _official_export_kind: ClassVar[str | None] = None

    # ------------------------------------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, strict: bool = True, **kwargs):
        """transformers' ``from_pretrained``, plus official LARP exports and strict weights (module docstring).

        Args:
            pretrained_model_name_or_path: an hf_vidtok folder / Hub repo id, or an official LARP export (folder or
                Hub repo id; ``LarpTokenizer``: tokenizer exports such as ``hywang66/LARP-L-long-tokenizer``,
                ``VideoARGenerator``: AR exports).
            strict: raise :class:`WeightsMismatchError` when the weights do not fit the architecture (default);
                ``False`` keeps transformers' behaviour (a report, missing weights freshly initialised). Official
                exports always load strictly.
            kwargs: transformers' ``from_pretrained`` arguments. For official exports: ``revision``, ``subfolder``,
                ``cache_dir``, ``token``, ``local_files_only``, ``force_download``, ``dtype``/``torch_dtype``,
                ``device_map`` (a device), and the converter's own options (``drop_prior`` for tokenizers,
                ``id2label`` for AR models).
        """
        download = {k: kwargs[k] for k in _DOWNLOAD_KWARGS if k in kwargs}
        official = official_export_config(pretrained_model_name_or_path, **download)
        if official is not None:
            return cls._from_official_export(pretrained_model_name_or_path, official[0], model_args, kwargs)
        output_loading_info = kwargs.pop("output_loading_info", False)
        if not strict:
            return super().from_pretrained(
                pretrained_model_name_or_path, *model_args, output_loading_info=output_loading_info, **kwargs
            )
        allow_mismatched = kwargs.pop("ignore_mismatched_sizes", False)
        report_logger = logging.getLogger("transformers.modeling_utils")
        report_logger.addFilter(_drop_load_report)  # the error below names the keys
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *model_args, output_loading_info=True, ignore_mismatched_sizes=True,
                **kwargs,
            )  # fmt: skip
        finally:
            report_logger.removeFilter(_drop_load_report)
        problems = []
        if info.get("missing_keys"):
            problems.append(f"{len(info['missing_keys'])} missing (would be random): {_listed(info['missing_keys'])}")
        if info.get("unexpected_keys"):
            problems.append(f"{len(info['unexpected_keys'])} unexpected: {_listed(info['unexpected_keys'])}")
        if info.get("mismatched_keys") and not allow_mismatched:
            shapes = [f"{k} (checkpoint {tuple(a)} vs model {tuple(b)})" for k, a, b in info["mismatched_keys"]]
            problems.append(f"{len(shapes)} with another shape: {_listed(shapes)}")
        if problems:
            raise WeightsMismatchError(
                f"{cls.__name__}.from_pretrained({os.fspath(pretrained_model_name_or_path)!r}): the weights do not fit "
                f"the architecture of its config.json: " + "; ".join(problems)
                + ". Pass strict=False to load them anyway (missing weights are then freshly initialised)."
            )
        return (model, info) if output_loading_info else model

    @classmethod
    def _from_official_export(cls, path, kind: str, model_args: tuple, kwargs: dict[str, Any]):
        module_name, class_name = OFFICIAL_EXPORT_CLASSES[kind]
        if cls._official_export_kind != kind:
            raise ValueError(
                f"{os.fspath(path)!r} is an official LARP {'tokenizer' if kind == 'tokenizer' else 'AR generator'} "
                f"export: load it with {class_name}.from_pretrained, not {cls.__name__}.from_pretrained"
            )
        if model_args:
            raise TypeError(f"{cls.__name__}.from_pretrained of an official export takes no positional model arguments")
        kwargs = dict(kwargs)
        download = {k: kwargs.pop(k) for k in _DOWNLOAD_KWARGS if k in kwargs}
        output_loading_info = kwargs.pop("output_loading_info", False)
        dtype = kwargs.pop("dtype", None)
        dtype = kwargs.pop("torch_dtype", None) if dtype is None else dtype
        device_map = kwargs.pop("device_map", None)
        if kwargs.get("variant") is not None:
            raise ValueError(f"official exports have no weight variants, got variant={kwargs['variant']!r}")
        for name in _IGNORED_LOADING_KWARGS:
            kwargs.pop(name, None)
        converter = importlib.import_module(module_name)
        try:
            model = converter.load_original_model(os.fspath(path), **download, **kwargs)
        except TypeError as err:
            raise TypeError(f"{cls.__name__}.from_pretrained of an official export: {err}") from None
        if dtype not in (None, "auto"):
            if isinstance(dtype, str):
                dtype = getattr(torch, dtype)
            model = model.to(dtype)
        if device_map is not None:
            if not isinstance(device_map, (str, torch.device, int)) or device_map == "auto":
                raise ValueError(f"official exports load on one device: `device_map` must be a device, got {device_map!r}")
            model = model.to(device_map)
        model.config._name_or_path = os.fspath(path)
        if output_loading_info:
            info = {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}
            return model, info
        return model

    # ------------------------------------------------------------------------------------------------ saving
    def save_pretrained(self, save_directory, *args, push_to_hub: bool = False, model_card: bool = True, **kwargs):
        """transformers' ``save_pretrained`` plus the hf_vidtok model card in ``README.md`` (a ``README.md`` not
        written by hf_vidtok is kept; ``model_card=False`` writes none). With ``push_to_hub=True`` the folder is
        then published with :func:`hf_vidtok.hub.publish_folder` (``repo_id``, default the folder name;
        ``commit_message``, ``private``, ``token``, ``create_pr``, ``revision``)."""
        from hf_vidtok.hub.publishing import card_and_publish, pop_push_kwargs

        hub = pop_push_kwargs(save_directory, kwargs) if push_to_hub else None
        super().save_pretrained(save_directory, *args, **kwargs)
        is_main_process = args[0] if args else kwargs.get("is_main_process", True)
        if is_main_process:
            return card_and_publish(save_directory, hub, model_card)
        return None

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: bool | str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        max_shard_size: int | str | None = None,
        tags: list[str] | None = None,
        **card_kwargs: Any,
    ):
        """Upload the model with its hf_vidtok model card in one commit (:func:`hf_vidtok.hub.push_to_hub`; the
        same arguments as transformers' ``push_to_hub``, plus ``eval_results``, ``training_config``, ``license``,
        ``datasets``, ``base_model`` ... for the card). ``max_shard_size`` is accepted for compatibility (hf_vidtok
        models are saved unsharded). Returns ``huggingface_hub.CommitInfo``."""
        from hf_vidtok.hub.publishing import push_to_hub

        del max_shard_size
        return push_to_hub(
            self, repo_id, commit_message=commit_message, commit_description=commit_description, private=private,
            token=token, revision=revision, create_pr=create_pr, tags=tags, **card_kwargs,
        )  # fmt: skip
