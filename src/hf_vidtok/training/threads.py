"""How many intra-op CPU threads a script uses: the one policy of every ``training/*.py`` script and ``hf-vidtok``
command (``--torch_num_threads`` overrides it).

torch's default is one thread per core. For the small tensors of the tiny recipes (a few million parameters,
batches of 8-32 clips of 8x32x32) the work per operation is too small to split: the threads spend their time
synchronising, and on a machine whose cores are shared (other processes, or several processes of one
``accelerate launch``) a waiting OpenMP thread spins on a core another process needs. ``bench/bench_threads.py``
prints the step times at every thread count; on a shared 2-core AMD EPYC machine (load average about 8) one thread
was 3.6x (eval batch) / 2.3x (training step) faster than two for the quick-start tokenizer (0.3M parameters), and
still 1.8x / 2.3x faster for a 22M-parameter one.

Policy (:func:`default_torch_num_threads`): one thread per :data:`PARAMETERS_PER_THREAD` parameters of the
models the script runs, at least 1 and at most the cores of this process divided by the processes per machine.
An explicit ``--torch_num_threads`` always wins; so does ``OMP_NUM_THREADS`` when it is set (torch reads it at
start, and ``accelerate launch`` sets it for multi-process runs).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import torch

__all__ = ["PARAMETERS_PER_THREAD", "available_cores", "default_torch_num_threads", "set_torch_num_threads"]

logger = logging.getLogger(__name__)

#: Parameters per intra-op thread: models below this run single-threaded.
PARAMETERS_PER_THREAD = 20_000_000


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _processes_per_machine() -> int:
    """Processes of this launch on this machine (``LOCAL_WORLD_SIZE`` of torchrun / accelerate, else 1)."""
    for name in ("LOCAL_WORLD_SIZE", "ACCELERATE_NUM_PROCESSES_PER_MACHINE"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def default_torch_num_threads(num_parameters: int, *, processes_per_machine: int | None = None,
                              cores: int | None = None) -> int:  # fmt: skip
    """Intra-op threads for models of ``num_parameters`` parameters (see the module docstring)."""
    if num_parameters < 0:
        raise ValueError(f"`num_parameters` must be >= 0, got {num_parameters}")
    processes = processes_per_machine or _processes_per_machine()
    per_process = max(1, (cores or available_cores()) // max(1, processes))
    return max(1, min(per_process, num_parameters // PARAMETERS_PER_THREAD))


def set_torch_num_threads(requested: int | None, models: Iterable[torch.nn.Module] = ()) -> int:
    """Set torch's intra-op threads and return the count: ``requested`` (``--torch_num_threads``) when given, else
    torch's current count when ``OMP_NUM_THREADS`` is set, else :func:`default_torch_num_threads` of the parameters
    of ``models``. ``requested`` must be a positive int."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"`--torch_num_threads` must be a positive integer, got {requested!r}")
        threads = requested
    elif os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    else:
        seen, total = set(), 0
        for model in models:
            for p in model.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        threads = default_torch_num_threads(total)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
        logger.info("using %d intra-op CPU thread(s)", threads)
    return threads
