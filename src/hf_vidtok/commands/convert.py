"""``hf-vidtok convert``: official LARP tokenizer / AR export -> hf_vidtok folder with its model card (and,
with ``--push_to_hub``, the same folder on the Hub). The converters do the work (``models/*/convert_*.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import GENERATOR_TYPES, TOKENIZER_TYPES, CLIError, add_command, check_files, folder_or_repo_id, read_json

__all__ = ["register", "run"]


def register(sub) -> None:
    p = add_command(sub, "convert", "convert an official LARP tokenizer or AR export to an hf_vidtok folder")
    p.add_argument("--input", required=True, help="official export folder, Hub repo id, or AR training .pth")
    p.add_argument("--output", required=True, help="output folder (safetensors + config.json + README.md)")
    p.add_argument(
        "--kind", choices=("auto", "tokenizer", "ar"), default="auto", help="what --input holds (auto: read its config.json)"
    )
    p.add_argument("--revision", default=None, help="Hub revision of --input")
    p.add_argument("--drop_prior", action="store_true", help="tokenizer: do not keep the GPTC prior")
    p.add_argument("--id2label", default=None, help="AR: JSON file {id: class name} (default: UCF-101 names for 101 classes)")
    p.add_argument("--push_to_hub", default=None, metavar="REPO", help="also push the converted model to this repo")
    p.set_defaults(func=run)


def official_kind(source: str, revision: str | None) -> str:
    """"tokenizer" or "ar": what an official export holds, from its ``config.json`` (local or Hub)."""
    path = Path(source)
    if path.is_file():
        if path.suffix in (".pth", ".pt", ".ckpt"):
            return "ar"  # official training checkpoints are AR ones; tokenizer exports are folders
        raise CLIError(f"--input must be an official export folder, a Hub repo id or an AR .pth checkpoint: {source}")
    location = folder_or_repo_id(source, f"no such folder: {source}")
    from transformers.utils import cached_file

    try:
        config = read_json(Path(cached_file(location, "config.json", revision=revision)))
    except OSError:
        raise CLIError(f"{source!r} holds no config.json: not an official LARP export") from None
    from hf_vidtok.models.convert_utils import official_export_kind

    kind = official_export_kind(config)
    if kind is not None:
        return kind
    if config.get("model_type") in TOKENIZER_TYPES + GENERATOR_TYPES:
        raise CLIError(
            f"{source} is already an hf_vidtok model (model_type {config['model_type']}); "
            "from_pretrained loads it, nothing to convert"
        )
    raise CLIError(f"{source}: config.json is neither an official LARP tokenizer nor an official LARP AR model")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from hf_vidtok.models.convert_utils import save_converted

    source = Path(args.input).expanduser()
    if source.exists() and source.resolve() == Path(args.output).expanduser().resolve():
        raise CLIError(f"--output {args.output} is the --input folder: refusing to overwrite the official export")
    kind = official_kind(args.input, args.revision) if args.kind == "auto" else args.kind
    if kind == "tokenizer":
        from hf_vidtok.models.larp.convert_larp_original_to_hf import load_original_model

        model = load_original_model(args.input, revision=args.revision, drop_prior=args.drop_prior)
    else:
        from hf_vidtok.models.video_ar.convert_larp_ar_original_to_hf import load_original_model, read_id2label

        id2label = read_id2label(str(check_files([args.id2label], "id2label")[0])) if args.id2label else None
        model = load_original_model(args.input, revision=args.revision, id2label=id2label)
    return {"kind": kind, **save_converted(model, args.output, source=args.input, push_to_hub=args.push_to_hub)}
