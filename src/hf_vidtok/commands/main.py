"""The ``hf-vidtok`` command: one sub-command per module of ``hf_vidtok.commands``, each a thin layer over
library functions.

    hf-vidtok convert      official LARP tokenizer / AR export -> hf_vidtok folder (+ model card)
    hf-vidtok encode       video file(s) -> token ids (safetensors) and tokens/second
    hf-vidtok reconstruct  video -> reconstructed mp4 + PSNR / SSIM
    hf-vidtok generate     class names or ids -> mp4 files
    hf-vidtok pipeline     tokenizer + generator -> pipeline folder (model_index.json)
    hf-vidtok evaluate     two folders of videos -> PSNR / SSIM / LPIPS / FVD
    hf-vidtok publish      saved folder + model card -> Hub repo
    hf-vidtok pack         folder / CSV of videos -> webdataset or Parquet shards + dataset card (-> Hub dataset repo)

Every sub-command prints one JSON object on stdout. Errors print one line ``hf-vidtok <cmd>: error: ...``
on stderr and exit with status 1 (2 for wrong command-line usage); set ``HF_VIDTOK_DEBUG=1`` for the
full traceback. Flags are spelled with underscores (``--num_frames``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from . import convert, encode, evaluate, generate, pack, pipeline, publish, reconstruct
from .common import CLIError, print_json

__all__ = ["PROG", "build_parser", "main"]

PROG = "hf-vidtok"
COMMANDS = (convert, encode, reconstruct, generate, pipeline, evaluate, publish, pack)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("hf_vidtok")
    except Exception:  # not installed as a distribution
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="LARP / EVATok video tokenizers and AR video generators: convert, encode, reconstruct, "
        "generate, pipeline, evaluate, publish; pack videos into shards. Each command prints one JSON object.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    first = text.splitlines()[0].strip()
    if isinstance(err, (CLIError, ValueError, TypeError, FileNotFoundError)):
        return first
    return f"{type(err).__name__}: {first}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hf-vidtok``; returns the exit status (0 ok, 1 error, 2 usage, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except Exception as err:
        if os.environ.get("HF_VIDTOK_DEBUG"):  # full traceback for bug reports
            raise
        print(f"{PROG} {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    print_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
