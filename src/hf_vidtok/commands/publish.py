"""``hf-vidtok publish``: a saved model or pipeline folder + its model card -> a Hub repo
(``hf_vidtok.hub.publish_folder``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import CLIError, add_command, existing_file_or_none

__all__ = ["register", "run"]


def register(sub) -> None:
    p = add_command(sub, "publish", "upload a saved model or pipeline folder with its model card")
    p.add_argument("folder", help="folder written by save_pretrained / training / convert / `hf-vidtok pipeline`")
    p.add_argument("--repo_id", required=True, help="Hub repo to upload to: user/name (created if missing)")
    p.add_argument("--eval_results", default=None, help="eval_results.json (default: found next to the folder)")
    p.add_argument("--training_config", default=None, help="training configuration JSON/YAML")
    p.add_argument("--card", default=None, help="use this README.md as the model card")
    p.add_argument("--regenerate_card", action="store_true", help="replace the folder's README.md by a new card")
    p.add_argument("--license", default="mit", help="license of the card's metadata")
    p.add_argument("--base_model", default=None, help="Hub id of the model this one derives from (card metadata)")
    p.add_argument("--datasets", nargs="*", default=None, help="Hub ids of the training datasets (card metadata)")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--revision", default=None, help="branch to push to (created if missing; default main)")
    p.add_argument("--commit_message", default=None, help="commit message (default: Upload <folder> with hf_vidtok)")
    p.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN / the stored login)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from hf_vidtok.hub import publish_folder

    if not Path(args.folder).is_dir():
        raise CLIError(f"no such folder: {args.folder}")
    for name in ("eval_results", "training_config", "card"):
        existing_file_or_none(getattr(args, name), name)
    info = publish_folder(
        args.folder,
        args.repo_id,
        private=args.private or None,
        revision=args.revision,
        commit_message=args.commit_message,
        token=args.token,
        eval_results=args.eval_results,
        training_config=args.training_config,
        model_card=args.card,
        regenerate_card=args.regenerate_card,
        license=args.license,
        base_model=args.base_model,
        datasets=args.datasets,
    )
    return {"repo_id": args.repo_id, "revision": args.revision or "main", "commit": info.oid, "url": str(info.commit_url)}
