"""Accelerator setup shared by the training scripts: the ``accelerate.Accelerator``, logging, seeding,
trackers and the output folder."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .unwrap import bare_model

__all__ = [
    "AUTOCAST_DTYPES",
    "autocast_dtype",
    "bare_model",
    "check_output_dir_writable",
    "distributed_state",
    "setup_accelerator",
    "warn_if_cpu_launch_ignores_num_processes",
    "training_logging",
    "init_trackers",
    "run_training",
]

#: ``--mixed_precision`` -> autocast dtype (None: full precision).
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(mixed_precision: str | None) -> torch.dtype | None:
    return AUTOCAST_DTYPES.get(mixed_precision or "no")


def check_output_dir_writable(path: str | os.PathLike) -> str:
    """Create ``path`` if needed and check a file can be written there; raise ``ValueError`` otherwise."""
    path = os.path.abspath(os.fspath(path))
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise ValueError(f"`--output_dir` {path!r} is not writable: {err}") from err
    return path


def _launcher_arguments(pid: int) -> list[str] | None:
    """The command line of process ``pid`` when it is ``accelerate launch`` (``accelerate`` console script or
    ``python -m accelerate.commands.launch``): the arguments after ``launch``; else None (also off Linux)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None
    for i, arg in enumerate(argv):
        if arg == "accelerate.commands.launch" or (arg == "launch" and i > 0 and os.path.basename(argv[i - 1]).startswith("accelerate")):
            return argv[i + 1 :]
    return None


def warn_if_cpu_launch_ignores_num_processes(logger=None) -> int | None:
    """Warn when this process was started by ``accelerate launch --cpu --num_processes N`` with N > 1.

    Accelerate's launcher then starts ONE process (its simple launcher) and nothing inside the script says
    so: the run silently trains with a fraction of the requested data parallelism. The launcher's own command
    line (the parent process) is parsed with accelerate's launch parser. Returns the requested N when it
    warned, else None.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    launch_args = _launcher_arguments(os.getppid())
    if launch_args is None:
        return None
    try:
        from accelerate.commands.launch import launch_command_parser

        known, _ = launch_command_parser().parse_known_args(launch_args)
    except (Exception, SystemExit):  # noqa: BLE001 - an unparsable launcher line is not ours to judge
        return None
    requested = getattr(known, "num_processes", None) or 1
    if not (getattr(known, "cpu", False) and requested > 1):
        return None
    message = (
        f"`accelerate launch --cpu --num_processes {requested}` started ONE process (accelerate's launcher ignores "
        f"--num_processes with --cpu), so this run uses 1 process, not {requested}. For {requested} CPU processes "
        f"run `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes {requested} ...`."
    )
    (logger or logging.getLogger("hf_vidtok.training")).warning(message)
    return requested


def _wants_cpu_processes(cpu: bool) -> bool:
    """CPU (gloo) mode for a multi-process launch on a machine without GPUs (see :func:`setup_accelerator`)."""
    return cpu or (int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available())


def _check_world(num_processes: int, distributed_type) -> None:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and num_processes != world_size:
        raise RuntimeError(
            f"{world_size} processes were launched but accelerate sees {num_processes} "
            f"(distributed type {distributed_type}); they would not share the work. On CPU use "
            "`ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N ...`."
        )


def distributed_state(cpu: bool = False):
    """``accelerate.PartialState`` of the scripts that do not train (scoring, extraction, evaluation).

    Like :func:`setup_accelerator`: a multi-process launch without GPUs is put in CPU (gloo) mode (accelerate's
    launcher passes ``ACCELERATE_USE_CPU=False`` to the processes unless ``--cpu`` is given, and every process
    would then believe it is alone and do all the work), a process count that does not match the launch
    raises, and ``accelerate launch --cpu --num_processes N`` gets a warning.
    """
    from accelerate import PartialState

    warn_if_cpu_launch_ignores_num_processes()
    state = PartialState(cpu=_wants_cpu_processes(cpu))
    _check_world(state.num_processes, state.distributed_type)
    return state


def end_distributed(state) -> None:
    """The end of a :func:`distributed_state` script: every process waits for the others, then the process group is
    destroyed (as ``Accelerator.end_training`` does for the training scripts), so that no process exits while the
    backend's threads still run (gloo then aborts a process at exit: "terminate called without an active
    exception")."""
    state.wait_for_everyone()
    state.destroy_process_group()


def setup_accelerator(
    output_dir: str,
    *,
    gradient_accumulation_steps: int = 1,
    mixed_precision: str | None = None,
    report_to: str | None = None,
    logging_dir: str | None = None,
    cpu: bool = False,
    find_unused_parameters: bool = False,
    dynamo_backend: str | None = None,
    dynamo_fullgraph: bool = False,
):
    """An ``accelerate.Accelerator`` writing to ``output_dir`` (checkpoint folders are named, made atomic
    and pruned by :mod:`hf_vidtok.training.checkpointing`).

    Multi-process CPU trap (stack.md §4): ``accelerate launch --multi_gpu --num_processes 2`` on a
    machine without GPUs starts 2 processes that each believe they are alone (``DistributedType.NO``),
    so gradients are silently never synchronised. When the launcher's ``WORLD_SIZE`` > 1 and no GPU is
    visible this asks accelerate for CPU (gloo) mode, and it raises if accelerate still sees fewer
    processes than were launched. ``accelerate launch --cpu --num_processes 2`` starts only ONE process; that
    is detected from the launcher's command line and warned about
    (:func:`warn_if_cpu_launch_ignores_num_processes`); use ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu ...``.

    ``dynamo_backend`` (``inductor``, ``aot_eager``, ``eager``; None = no compilation): accelerate compiles every
    prepared model with it; ``dynamo_fullgraph=True`` makes a graph break an error instead of a silent split (for
    models that compile whole, such as EVATok's tokenizer and router).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration, TorchDynamoPlugin

    warn_if_cpu_launch_ignores_num_processes()
    cpu = _wants_cpu_processes(cpu)
    project_config = ProjectConfiguration(
        project_dir=output_dir, logging_dir=logging_dir or os.path.join(output_dir, "logs"),
        automatic_checkpoint_naming=False,
    )
    accelerator = Accelerator(
        gradient_accumulation_steps=gradient_accumulation_steps,
        mixed_precision=None if mixed_precision in (None, "", "no") else mixed_precision,
        log_with=None if report_to in (None, "", "none") else report_to,
        project_config=project_config,
        cpu=cpu,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
        dynamo_plugin=TorchDynamoPlugin(backend=(dynamo_backend or "no").upper(), fullgraph=bool(dynamo_fullgraph) or None),
    )
    _check_world(accelerator.num_processes, accelerator.distributed_type)
    return accelerator


@contextlib.contextmanager
def training_logging(accelerator) -> Iterator[None]:
    """Log records of ``hf_vidtok`` to stderr (INFO on the main process, WARNING elsewhere; the training
    loggers are ``accelerate.logging.get_logger`` adapters, main process only unless asked), with
    ``datasets``/``transformers`` and the data builder's per-file summaries quieted to warnings, as the
    diffusers examples do; the previous settings come back on exit (``main`` may run inside tests)."""
    import datasets
    import transformers

    root, data = logging.getLogger("hf_vidtok"), logging.getLogger("hf_vidtok.data")
    saved = (root.level, root.propagate, datasets.logging.get_verbosity(), transformers.logging.get_verbosity(), data.level)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO if accelerator.is_main_process else logging.WARNING)
    root.propagate = False
    data.setLevel(logging.WARNING)
    datasets.logging.set_verbosity_warning()
    transformers.logging.set_verbosity_warning()
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        root.propagate = saved[1]
        datasets.logging.set_verbosity(saved[2])
        transformers.logging.set_verbosity(saved[3])
        data.setLevel(saved[4])


def init_trackers(accelerator, args, project_name: str) -> None:
    """Start the trackers (scalar arguments as their config) and write ``training_config.json`` (main process)."""
    if not accelerator.is_main_process:
        return
    config = dict(vars(args))
    accelerator.init_trackers(project_name, config={k: v for k, v in config.items() if isinstance(v, (int, float, str, bool))})
    with open(os.path.join(args.output_dir, "training_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=True, default=str)


def run_training(args, train_fn: Callable[[Any, Any], Any], **accelerator_kwargs) -> Any:
    """What every training script's ``main`` does around its loop: check the output dir, set TF32, build the
    accelerator (``--mixed_precision``, ``--report_to``, ``--torch_compile`` ...), set up logging,
    seed every process identically, remove unfinished checkpoint folders, then ``train_fn(args, accelerator)`` (which
    sets the CPU threads once its models exist: :func:`hf_vidtok.training.threads.set_torch_num_threads`)."""
    from accelerate.logging import get_logger
    from accelerate.utils import set_seed

    from .checkpointing import clean_partial_checkpoints

    args.output_dir = check_output_dir_writable(args.output_dir)
    if getattr(args, "allow_tf32", False) and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    accelerator = setup_accelerator(
        args.output_dir,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        report_to=args.report_to,
        logging_dir=args.logging_dir,
        dynamo_backend=getattr(args, "torch_compile_backend", "inductor") if getattr(args, "torch_compile", False) else None,
        **accelerator_kwargs,
    )
    with training_logging(accelerator):
        set_seed(args.seed)  # same initial weights on every process
        if accelerator.is_main_process:
            removed = clean_partial_checkpoints(args.output_dir)
            if removed:
                get_logger(__name__).warning("removed unfinished checkpoint folders %s", removed)
        return train_fn(args, accelerator)
