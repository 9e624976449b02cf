"""The ``hf-vidtok`` sub-commands, one module each (convert, encode, reconstruct, generate, pipeline,
evaluate, publish, pack); :func:`main` is the console entry point."""

from .common import CLIError
from .main import build_parser, main

__all__ = ["CLIError", "build_parser", "main"]
