"""What the converters of official checkpoints share (``models/*/convert_*_original_to_hf.py``).

Every converter module exposes the same API:

- ``load_original_files(path_or_repo_id, revision=None) -> (official_config: dict, state_dict)``
- ``convert_config(official_config, ...) -> <Model>Config``
- ``convert_state_dict(state_dict, model) -> dict`` (renamed keys; raises :class:`ConversionError`)
- ``load_original_model(path_or_repo_id, revision=None, ..., **download_kwargs) -> <Model>`` in eval mode, loaded
  strictly (``download_kwargs``: ``subfolder``, ``cache_dir``, ``token``, ``local_files_only``, ``force_download``)
- ``main(argv)``: ``--input --output [--revision] [--push_to_hub REPO]``

:func:`official_export_kind` tells an official export's ``config.json`` from an hf_vidtok one; the models'
``from_pretrained`` use it to load official exports through these converters
(:mod:`hf_vidtok.models.hub_mixin`).

and raises :class:`ConversionError` (a ``ValueError``) for anything it cannot convert exactly: an
unsupported setting, an official key that is not consumed, a parameter that is not filled, a shape or a
fixed table that differs.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterable, Mapping

import torch

__all__ = [
    "OFFICIAL_EXPORT_FILES",
    "ConversionError",
    "check_coverage",
    "conversion_parser",
    "load_official_export",
    "official_export_kind",
    "load_strict",
    "run_conversion",
    "save_converted",
]

# What an official ``save_pretrained``/``PyTorchModelHubMixin`` export holds (never other pickles).
OFFICIAL_EXPORT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")


class ConversionError(ValueError):
    """An official checkpoint that cannot be converted exactly (unsupported setting, key coverage, shapes)."""


# ``model_type`` of the official LARP_AR ``ModelArgs`` (a field of its config.json, not a transformers model type).
OFFICIAL_AR_MODEL_TYPES = ("class_cond",)


def official_export_kind(config: Mapping) -> str | None:
    """``"tokenizer"`` (official ``LARPTokenizer``: no ``model_type``, a ``bottleneck``), ``"ar"`` (official
    ``LARP_AR``: ``asdict(ModelArgs)``, with ``n_layer`` / ``dim`` and a ``model_type`` of ``class_cond`` or none) or
    None (an hf_vidtok or other ``config.json``) for the dict of a ``config.json``."""
    if not isinstance(config, Mapping):
        return None
    model_type = config.get("model_type")
    if model_type is None and ("bottleneck" in config or "bottleneck_token_num" in config):
        return "tokenizer"
    if (model_type is None or model_type in OFFICIAL_AR_MODEL_TYPES) and ("n_layer" in config or "dim" in config):
        return "ar"
    return None


def _read_config(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        try:
            config = json.load(f)
        except json.JSONDecodeError as err:
            raise ConversionError(f"{path} is not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(config, dict):
        raise ConversionError(f"{path} must hold a JSON object")
    return config


def load_official_export(
    path_or_repo_id: str | os.PathLike,
    revision: str | None = None,
    *,
    subfolder: str = "",
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
) -> tuple[dict, dict]:
    """``(config.json as a dict, state dict)`` of an official export: a local folder or a Hub repo id
    (downloaded with ``snapshot_download``, JSON and weights only; ``subfolder`` inside either). ``model.safetensors``
    is preferred; ``pytorch_model.bin`` is read with ``torch.load(weights_only=True)``."""
    path = os.fspath(path_or_repo_id)
    subfolder = subfolder or ""
    if os.path.isdir(path):
        folder = os.path.join(path, subfolder) if subfolder else path
    elif os.path.exists(path):
        raise ConversionError(f"`path_or_repo_id` must be a folder or a Hub repo id, got the file {path!r}")
    else:
        from huggingface_hub import constants, snapshot_download

        prefix = f"{subfolder.strip('/')}/" if subfolder else ""
        root = snapshot_download(
            path,
            revision=revision,
            allow_patterns=[prefix + name for name in OFFICIAL_EXPORT_FILES],
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only or constants.is_offline_mode(),
            force_download=force_download,
        )
        folder = os.path.join(root, subfolder) if subfolder else root
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise ConversionError(f"no config.json in {folder!r}: not an official export")
    config = _read_config(config_path)
    safetensors_path = os.path.join(folder, "model.safetensors")
    bin_path = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(safetensors_path):
        from safetensors.torch import load_file

        return config, load_file(safetensors_path)
    if os.path.isfile(bin_path):
        return config, torch.load(bin_path, map_location="cpu", weights_only=True)
    raise ConversionError(f"no model.safetensors or pytorch_model.bin in {folder!r}")


def check_coverage(
    converted: Mapping[str, torch.Tensor],
    model: torch.nn.Module,
    *,
    unconsumed: Iterable[str] = (),
    errors: Iterable[str] = (),
    optional: Callable[[str], bool] | None = None,
    what: str = "checkpoint",
) -> None:
    """Raise :class:`ConversionError` listing official keys not consumed, model keys not filled (except
    those ``optional`` accepts), shape mismatches and the other ``errors``; else return None."""
    expected = model.state_dict()
    unconsumed, errors = sorted(unconsumed), list(errors)
    for key, value in converted.items():
        if key not in expected:
            unconsumed.append(key)
        elif tuple(value.shape) != tuple(expected[key].shape):
            errors.append(f"shape mismatch for {key}: official {tuple(value.shape)} vs model {tuple(expected[key].shape)}")
    missing = sorted(k for k in expected if k not in converted and not (optional and optional(k)))
    lines = []
    if unconsumed:
        lines.append(f"{len(unconsumed)} official keys not consumed: {unconsumed[:20]}")
    if missing:
        lines.append(f"{len(missing)} hf_vidtok parameters not filled: {missing[:20]}")
    lines.extend(errors[:20])
    if lines:
        raise ConversionError(f"{what} conversion failed:\n  " + "\n  ".join(lines))


def load_strict(model: torch.nn.Module, converted: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """``model.load_state_dict(converted, strict=True)`` and eval mode (``converted`` covers every key:
    check it with :func:`check_coverage` first)."""
    model.load_state_dict(dict(converted), strict=True)
    return model.eval()


def conversion_parser(description: str) -> argparse.ArgumentParser:
    """The converters' shared command line: ``--input --output --revision --push_to_hub``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--input", required=True, help="official export folder or Hub repo id")
    parser.add_argument("--output", required=True, help="output folder (safetensors + config.json + README.md)")
    parser.add_argument("--revision", default=None, help="Hub revision of --input")
    parser.add_argument("--push_to_hub", default=None, metavar="REPO", help="also upload the converted model")
    return parser


def save_converted(
    model, output: str | os.PathLike, *, source: str | os.PathLike, push_to_hub: str | None = None
) -> dict:
    """``save_pretrained(output)`` with the hf_vidtok model card (``base_model`` = ``source`` when it is a Hub
    repo id) and, with ``push_to_hub``, the same folder uploaded there. Returns a JSON-able summary."""
    from ..hub.publishing import publish_folder, save_pretrained_with_card

    base_model = None if os.path.exists(source) else os.fspath(source)
    save_pretrained_with_card(model, output, repo_id=push_to_hub, base_model=base_model)
    summary = {"output": os.fspath(output), "parameters": sum(p.numel() for p in model.parameters())}
    if push_to_hub:
        info = publish_folder(output, push_to_hub, base_model=base_model)
        summary.update(pushed_to=push_to_hub, commit=info.oid)
    return summary


def run_conversion(parser: argparse.ArgumentParser, argv, load: Callable[[argparse.Namespace], object]) -> dict:
    """Parse ``argv``, ``load(args)`` the official model, save (and push) it; print and return the summary."""
    args = parser.parse_args(argv)
    model = load(args)
    summary = save_converted(model, args.output, source=args.input, push_to_hub=args.push_to_hub)
    print(json.dumps(summary))
    return summary
