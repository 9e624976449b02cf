"""Shared training code of the ``training/*.py`` scripts, one concern per module:

* :mod:`.arguments`: flag groups, YAML recipes, argument validation;
* :mod:`.accelerator`: the ``Accelerator``, logging, trackers, the ``main`` preamble;
* :mod:`.optimization`: learning-rate schedules (diffusers' plus LARP's);
* :mod:`.checkpointing`: atomic ``checkpoint-<step>/`` folders with ``save_pretrained`` sub-folders, exact
  resume without pickles;
* :mod:`.validation`: reconstruction metrics, codebook usage, side-by-side videos;
* :mod:`.token_data`: extracted token datasets for AR training;
* :mod:`.sample_data`: the bundled sample videos as demo datasets;
* :mod:`.assignment_sampling`: EVATok token-count assignments and length-grouped micro-batches;
* :mod:`.threads`: the intra-op CPU thread count every script and command picks (``--torch_num_threads``).

The resumable clip stream is :mod:`hf_vidtok.data.clip_stream`; EMA is ``diffusers.training_utils.EMAModel``;
losses are in :mod:`hf_vidtok.losses`. Needs the ``train`` extra (accelerate, diffusers, datasets, pyyaml).
"""

from .accelerator import AUTOCAST_DTYPES, autocast_dtype, bare_model, check_output_dir_writable, init_trackers, run_training, setup_accelerator
from .arguments import load_yaml_config, parse_args_with_config, validate_args
from .checkpointing import (
    CHECKPOINT_PREFIX,
    LATEST_POINTER,
    CheckpointState,
    TrainingProgress,
    checkpoint_or_stop,
    clean_partial_checkpoints,
    end_stopped_run,
    find_unsafe_pickles,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    quiet_hf_progress,
    resolve_resume_checkpoint,
    save_checkpoint,
    write_json_atomic,
)
from .optimization import LARP_SCHEDULER, LR_SCHEDULERS, get_lr_scheduler, larp_lr_multiplier
from .validation import codebook_usage, evaluate_reconstruction, reduce_sums, save_side_by_side_video

__all__ = [
    "AUTOCAST_DTYPES",
    "CHECKPOINT_PREFIX",
    "LARP_SCHEDULER",
    "LATEST_POINTER",
    "LR_SCHEDULERS",
    "CheckpointState",
    "TrainingProgress",
    "autocast_dtype",
    "bare_model",
    "check_output_dir_writable",
    "checkpoint_or_stop",
    "clean_partial_checkpoints",
    "codebook_usage",
    "end_stopped_run",
    "evaluate_reconstruction",
    "find_unsafe_pickles",
    "get_lr_scheduler",
    "init_trackers",
    "larp_lr_multiplier",
    "list_checkpoints",
    "load_checkpoint",
    "load_yaml_config",
    "parse_args_with_config",
    "prune_checkpoints",
    "reduce_sums",
    "resolve_resume_checkpoint",
    "run_training",
    "save_checkpoint",
    "save_side_by_side_video",
    "setup_accelerator",
    "validate_args",
    "write_json_atomic",
]
