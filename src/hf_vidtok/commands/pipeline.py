"""``hf-vidtok pipeline``: a tokenizer + a generator -> a diffusers pipeline folder (``model_index.json``,
``tokenizer/``, ``generator/``, the pipeline card) that ``ClassToVideoPipeline.from_pretrained`` (or
``FramePredictionPipeline.from_pretrained`` for a frame-prediction generator) and ``hf-vidtok generate --model``
load. The parts are hf_vidtok folders, Hub repo ids or official LARP exports (converted exactly)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import CLIError, add_command, add_model_arguments, load_model, set_threads

__all__ = ["register", "run"]


def register(sub) -> None:
    p = add_command(sub, "pipeline", "save a tokenizer + generator as one pipeline folder (model_index.json)")
    p.add_argument("--tokenizer", required=True, help="tokenizer folder, Hub repo id or official LARP export")
    p.add_argument("--generator", required=True, help="generator folder, Hub repo id or official LARP AR export")
    p.add_argument("--output", required=True, help="pipeline folder to write (new, or one this command wrote)")
    p.add_argument("--push_to_hub", default=None, metavar="REPO", help="also upload the folder to this Hub repo")
    add_model_arguments(p)
    p.set_defaults(func=run)


def _check_output(output: Path, sources: list[str]) -> None:
    """The folder must be new, empty, or a pipeline folder (``model_index.json``): nothing else is overwritten."""
    for source in sources:
        if Path(source).expanduser().exists() and output.resolve() == Path(source).expanduser().resolve():
            raise CLIError(f"--output {output} is one of the input models: refusing to overwrite it")
    if output.is_file():
        raise CLIError(f"--output {output} is a file, expected a folder")
    if output.is_dir() and any(output.iterdir()) and not (output / "model_index.json").is_file():
        raise CLIError(f"--output {output} is a non-empty folder that is not a pipeline folder: choose a new folder")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from hf_vidtok.pipelines import ClassToVideoPipeline, FramePredictionPipeline

    output = Path(args.output).expanduser()
    _check_output(output, [args.tokenizer, args.generator])
    tokenizer = load_model(args.tokenizer, "tokenizer", args.revision, args.device)
    generator = load_model(args.generator, "generator", args.revision, args.device)
    set_threads(args, tokenizer, generator)
    cls = FramePredictionPipeline if generator.config.frame_prediction else ClassToVideoPipeline
    try:
        pipe = cls(tokenizer=tokenizer, generator=generator)
    except (TypeError, ValueError) as err:
        raise CLIError(f"{args.tokenizer} cannot decode what {args.generator} generates: {err}") from None
    if args.push_to_hub:
        info = pipe.save_pretrained(output, push_to_hub=True, repo_id=args.push_to_hub)
    else:
        pipe.save_pretrained(output)
        info = None
    result = {
        "output": str(output),
        "pipeline": cls.__name__,
        "parameters": sum(p.numel() for p in tokenizer.parameters()) + sum(p.numel() for p in generator.parameters()),
        "load_with": f"{cls.__name__}.from_pretrained({str(output)!r})",
    }
    if info is not None:
        result.update(pushed_to=args.push_to_hub, commit=info.oid)
    return result
