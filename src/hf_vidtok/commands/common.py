"""What the ``hf-vidtok`` sub-commands share: the user-facing error, model loading through the Auto classes,
argument types and file checks."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

__all__ = [
    "GENERATOR_TYPES",
    "TOKENIZER_TYPES",
    "VIDEO_SUFFIXES",
    "CLIError",
    "HelpFormatter",
    "add_command",
    "add_model_arguments",
    "check_files",
    "check_output",
    "existing_file_or_none",
    "folder_or_repo_id",
    "export_video",
    "load_model",
    "load_model_config",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "print_json",
    "read_json",
    "set_threads",
]

# model_type of the models each role accepts (the Auto classes resolve the class).
TOKENIZER_TYPES = ("larp_tokenizer", "evatok_tokenizer")
GENERATOR_TYPES = ("video_ar",)
# official LARP export kind each role accepts (hf_vidtok.models.convert_utils.official_export_kind)
_OFFICIAL_KIND_OF_ROLE = {"tokenizer": "tokenizer", "generator": "ar"}
# Containers PyAV writes from the file name (``export_to_video``).
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every flag's default (``(default: X)``), except None / False (an unset option or a switch)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


def add_command(sub, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
    """A sub-command parser whose ``--help`` shows the defaults (:class:`HelpFormatter`)."""
    return sub.add_parser(name, help=help, description=description or help, formatter_class=HelpFormatter)


def print_json(data: dict[str, Any]) -> None:
    """One JSON object on stdout (non-finite floats as strings)."""
    clean = {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in data.items()}
    print(json.dumps(clean, default=str))


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CLIError(f"{path} is not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict):
        raise CLIError(f"{path} must hold a JSON object")
    return data


def _first_line(err: BaseException) -> str:
    return (str(err).strip() or type(err).__name__).splitlines()[0].strip()


def folder_or_repo_id(spec: str, missing: str) -> str:
    """``spec`` as a local folder path (``~`` expanded) when it is one, else as a Hub repo id (checked with
    ``huggingface_hub.utils.validate_repo_id``); ``CLIError(missing)`` when it is neither."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path)
    try:
        validate_repo_id(spec)
    except HFValidationError:
        raise CLIError(missing) from None
    return spec


def _official_model(spec: str, role: str, revision: str | None):
    """The model of an official LARP export in ``spec`` (folder or Hub repo id), or None when it holds none."""
    from hf_vidtok.models.hub_mixin import OFFICIAL_EXPORT_CLASSES, official_export_config

    location = folder_or_repo_id(spec, f"no such model folder: {spec}")
    official = official_export_config(location, revision=revision)
    if official is None:
        return None
    kind = official[0]
    if kind != _OFFICIAL_KIND_OF_ROLE[role]:
        raise CLIError(f"{spec} is an official LARP {'tokenizer' if kind == 'tokenizer' else 'AR'} export, expected a {role}")
    import hf_vidtok

    return getattr(hf_vidtok, OFFICIAL_EXPORT_CLASSES[kind][1]).from_pretrained(location, revision=revision)


def load_model_config(spec: str, role: str, revision: str | None = None):
    """``(typed config, subfolder)`` of ``spec``: a model folder / Hub repo (``config.json``) or a pipeline
    folder / repo whose ``<role>/config.json`` holds the model (``AutoConfig.from_pretrained(subfolder=...)``)."""
    from transformers import AutoConfig

    path = Path(spec).expanduser()
    if path.is_file():
        raise CLIError(f"--model must be a model folder or a Hub repo id, got the file {spec}")
    location = folder_or_repo_id(spec, f"no such model folder: {spec}")
    errors = []
    for subfolder in ("", role):
        try:
            return AutoConfig.from_pretrained(location, subfolder=subfolder, revision=revision), subfolder
        except (OSError, ValueError) as err:  # missing file / repo, or a config transformers cannot read
            errors.append(err)
    if path.is_dir():
        if (path / "config.json").is_file() or (path / role / "config.json").is_file():
            raise CLIError(f"{spec}: {_first_line(errors[0] if (path / 'config.json').is_file() else errors[1])}")
        raise CLIError(f"{spec} holds neither config.json nor {role}/config.json: not a saved hf_vidtok model")
    raise CLIError(f"model {spec!r} not found: {_first_line(errors[0])}")


def load_model(spec: str, role: str, revision: str | None = None, device: str = "cpu"):
    """A tokenizer (``role="tokenizer"``) or generator (``role="generator"``) in eval mode, from a model
    folder, a pipeline folder (its ``<role>/`` sub-folder), a Hub repo or an official LARP export:
    ``AutoModel.from_pretrained`` after checking the model type."""
    from transformers import AutoModel

    from hf_vidtok.training.checkpointing import quiet_hf_progress

    if Path(spec).expanduser().is_file():
        raise CLIError(f"--model must be a model folder or a Hub repo id, got the file {spec}")
    with quiet_hf_progress():  # no "Loading weights" bar before the command's own output
        official = _official_model(spec, role, revision)
    if official is not None:
        return official.to(device).eval()
    config, subfolder = load_model_config(spec, role, revision)
    expected = TOKENIZER_TYPES if role == "tokenizer" else GENERATOR_TYPES
    if config.model_type not in expected:
        raise CLIError(
            f"{spec} is a {config.model_type} model, expected a {role} (model_type {' or '.join(expected)})"
        )
    location = folder_or_repo_id(spec, f"no such model folder: {spec}")
    with quiet_hf_progress():
        model = AutoModel.from_pretrained(location, subfolder=subfolder, revision=revision)
    return model.to(device).eval()


def set_threads(args: argparse.Namespace, *models) -> int:
    """The CPU threads of the command (``--torch_num_threads``, else the policy of
    :func:`hf_vidtok.training.threads.set_torch_num_threads` for ``models``)."""
    from hf_vidtok.training.threads import set_torch_num_threads

    return set_torch_num_threads(getattr(args, "torch_num_threads", None), models)


def check_files(paths: Sequence[str], what: str = "video") -> list[Path]:
    """The paths as ``Path`` objects; ``CLIError`` for a directory or a path that does not exist."""
    out = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            raise CLIError(f"{p} is a directory, expected a {what} file (give the files, e.g. {Path(p) / '*.mp4'})")
        if not path.is_file():
            raise CLIError(f"no such {what} file: {p}")
        out.append(path)
    return out


def check_output(output: str, inputs: Sequence[Path], flag: str = "--output", suffixes: Sequence[str] = ()) -> Path:
    """``output`` as a ``Path`` after checking it is none of ``inputs`` (nothing a user gave is overwritten), not a
    directory, and ends in one of ``suffixes`` (when given); ``CLIError`` otherwise."""
    path = Path(output).expanduser()
    resolved = path.resolve()
    for source in inputs:
        if resolved == Path(source).expanduser().resolve():
            raise CLIError(f"{flag} {output} is one of the inputs: refusing to overwrite it; choose another file")
    if path.is_dir():
        raise CLIError(f"{flag} {output} is a directory, expected a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise CLIError(f"{flag} must end in {' or '.join(suffixes)}, got {output!r}")
    return path


def export_video(frames, path: Path, fps: float) -> str:
    """Write ``frames`` (T, H, W, C) in [0, 1] as an mp4 (``hf_vidtok.pipelines.export_to_video``)."""
    from hf_vidtok.pipelines import export_to_video

    path.parent.mkdir(parents=True, exist_ok=True)
    return export_to_video(frames, str(path), fps=fps)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of the model")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--torch_num_threads", type=positive_int, default=None,
                   help="intra-op CPU threads (default: from the model size, hf_vidtok.training.threads)")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def existing_file_or_none(value: str | None, flag: str) -> None:
    if value is not None and not os.path.isfile(value):
        raise CLIError(f"--{flag}: no such file: {value}")
